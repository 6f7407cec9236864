"""Accuracy of the gain at all spatial scales (fields='independent') against the specimen contrast.

Prints, per specimen contrast, camera mode and seed, R^2 of the estimate against the true gain,
of the blind estimate alone, of the pooled mean alone, of two *oracles* that know the true gain
(camcorr.simulate.camera.gain_oracle_r2: the same two estimates weighted per DCT coefficient by
their actual errors, "coef"; the same with its 2D part shrunk towards the truth by the
least-squares factor over 9 x 9 coefficients, "+shrink": what the method's own form could reach
knowing the truth), the report's ``r2_expected`` and ``noise_limited``, and the high-pass R^2
(both divided by their Gaussian blur, sigma 2 px) of the estimate and of the blind estimate.  Forward model as tests/test_gain_scales.py: DED-like gain
(camcorr.simulate.camera.ded_gain_map), 256 x 160 px, 20 frames, integrating camera at 200
e/px/frame, counting camera at 200 counts/px in total.

Usage: python benchmarks/bench_gain_scales.py [--contrasts 0.1,0.2,0.3] [--seeds 0,1,2]
       [--frames 20] [--json out.json]
"""
from __future__ import annotations

import argparse
import json

import numpy as np
from scipy.ndimage import gaussian_filter

from camcorr.gain import GainAccumulator
from camcorr.gain.scales import pooled_mean
from camcorr.simulate import camera as sc

SHAPE = (256, 160)


def _hp(a):
    return a / gaussian_filter(a, 2, mode="nearest")


def one(contrast, mode, seed, n_frames):
    gm = sc.ded_gain_map(SHAPE, rng=seed)
    if mode == "integrating":
        mv = sc.integrating_movie(gm.gain, n_frames, photons_per_px=200.0, contrast=contrast,
                                  rng=1000 + seed)
        off = 100.0
    else:
        mv = sc.counting_movie(gm.gain, n_frames, dose_per_frame=10.0, contrast=contrast,
                               rng=1000 + seed)
        off = 0.0
    acc = GainAccumulator(offset=off, fields="independent").add(mv.frames)
    res = acc.result()
    blind = acc.gain()
    pooled, _ = pooled_mean(acc.pooled, acc.pooled_n)
    s = res.report["scales"]
    g = gm.gain
    orc = sc.gain_oracle_r2(blind, pooled, g)
    return {"contrast": contrast, "mode": mode, "seed": seed, "frames": n_frames,
            "r2": sc.r_squared(res.gain, g), "r2_blind": sc.r_squared(blind, g),
            "r2_pooled": sc.r_squared(pooled, g),
            "r2_oracle": orc["per_coefficient"], "r2_oracle_shrunk": orc["per_coefficient_shrunk"],
            "r2_expected": s["r2_expected"],
            "noise_limited": s["noise_limited"],
            "hp_r2": sc.r_squared(_hp(res.gain), _hp(g)),
            "hp_r2_blind": sc.r_squared(_hp(blind), _hp(g))}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--contrasts", default="0.1,0.2,0.3")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--frames", type=int, default=20)
    ap.add_argument("--json")
    a = ap.parse_args(argv)
    rows = []
    print("contrast mode        seed  R2     blind  pooled oracle: coef  +shrink  "
          "expected limited  hpR2   hp blind")
    for c in (float(x) for x in a.contrasts.split(",")):
        for mode in ("integrating", "counting"):
            for seed in (int(x) for x in a.seeds.split(",")):
                r = one(c, mode, seed, a.frames)
                rows.append(r)
                print(f"{c:<8g} {mode:<11s} {seed:>4d}  {r['r2']:.3f}  {r['r2_blind']:.3f}  "
                      f"{r['r2_pooled']:.3f}          {r['r2_oracle']:.3f}  "
                      f"{r['r2_oracle_shrunk']:.3f}    "
                      f"{r['r2_expected']:.3f}    {str(r['noise_limited']):<7s}"
                      f"  {r['hp_r2']:.3f}  {r['hp_r2_blind']:.3f}", flush=True)
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(rows, fh, indent=2)


if __name__ == "__main__":
    main()
