"""Accuracy of the gain at all spatial scales (fields='independent') against the specimen contrast.

Prints, per specimen contrast, camera mode and seed, R^2 of the estimate against the true gain,
of the blind estimate alone, of an *oracle* that knows the true gain and weights the same two
estimates (blind, pooled mean) per DCT coefficient by their actual errors (a bound no estimator
built from these two can beat with the same weighting), the report's ``r2_expected`` and
``noise_limited``, and the high-pass R^2 (both divided by their Gaussian blur, sigma 2 px) of the
estimate and of the blind estimate.  Forward model as tests/test_gain_scales.py: DED-like gain
(camcorr.simulate.camera.ded_gain_map), 256 x 160 px, 20 frames, integrating camera at 200
e/px/frame, counting camera at 200 counts/px in total.

Usage: python benchmarks/bench_gain_scales.py [--contrasts 0.1,0.2,0.3] [--seeds 0,1,2]
       [--frames 20] [--json out.json]
"""
from __future__ import annotations

import argparse
import json

import numpy as np
from scipy.fft import dctn, idctn
from scipy.ndimage import gaussian_filter

from camcorr.gain import GainAccumulator
from camcorr.gain.scales import pooled_mean
from camcorr.simulate import camera as sc

SHAPE = (256, 160)


def _hp(a):
    return a / gaussian_filter(a, 2, mode="nearest")


def oracle_r2(blind, pooled, truth):
    """R^2 of the per-coefficient best weighting of `blind` and `pooled`, knowing `truth`."""
    ls, lp, lg = (np.log(a / a.mean()) for a in (blind, pooled, truth))
    a = dctn(ls - lg, norm="ortho")
    b = dctn(lp - lg, norm="ortho")
    w = a * a / np.maximum(a * a + b * b, 1e-300)
    return sc.r_squared(np.exp(ls + idctn(w * dctn(lp - ls, norm="ortho"), norm="ortho")), truth)


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
    return {"contrast": contrast, "mode": mode, "seed": seed, "frames": n_frames,
            "r2": sc.r_squared(res.gain, g), "r2_blind": sc.r_squared(blind, g),
            "r2_oracle": oracle_r2(blind, pooled, g), "r2_expected": s["r2_expected"],
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
    print("contrast mode        seed  R2     blind  oracle expected limited  hpR2   hp blind")
    for c in (float(x) for x in a.contrasts.split(",")):
        for mode in ("integrating", "counting"):
            for seed in (int(x) for x in a.seeds.split(",")):
                r = one(c, mode, seed, a.frames)
                rows.append(r)
                print(f"{c:<8g} {mode:<11s} {seed:>4d}  {r['r2']:.3f}  {r['r2_blind']:.3f}  "
                      f"{r['r2_oracle']:.3f}  {r['r2_expected']:.3f}    {str(r['noise_limited']):<7s}"
                      f"  {r['hp_r2']:.3f}  {r['hp_r2_blind']:.3f}", flush=True)
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(rows, fh, indent=2)


if __name__ == "__main__":
    main()
