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

Reference scenario (``--reference``): a case measured on data the tests do not generate
(blind R^2 0.70, plain mean of the frames 0.81, a quick combination 0.91).  Here: integrating
camera at 200 e/px/frame, 20 frames, specimen contrast 10 % (:data:`REFERENCE_CONTRAST`, where
the plain mean's R^2 is 0.76-0.81 on seeds 0-9, mean 0.79).  Prints per seed the R^2 of the estimate, of the blind
estimate, of the plain mean and of that case's quick combination (blind estimate times the
Gaussian blur, sigma 2 px, of the mean image's ratio to it).

``--breakdown`` also prints where the error lies (camcorr.simulate.camera.gain_error_parts): the
error power in the column profile, the row profile and the 2D rest (log domain, as a share of the
true log gain's variance), for the estimate and for the "+shrink" oracle.

Usage: python benchmarks/bench_gain_scales.py [--contrasts 0.1,0.2,0.3] [--seeds 0,1,2]
       [--frames 20] [--json out.json] [--reference] [--breakdown]
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
#: Specimen contrast and camera mode of the reference scenario (see the module text).
REFERENCE_CONTRAST, REFERENCE_MODE = 0.1, "integrating"


def _hp(a):
    return a / gaussian_filter(a, 2, mode="nearest")


def quick_combination(blind, pooled):
    """The quick combination: blind estimate x Gaussian blur (sigma 2 px) of mean / blind."""
    return blind * gaussian_filter(pooled / blind, 2, mode="nearest")


def reference(seed, n_frames=20):
    """R^2 of the estimate, the blind estimate, the plain mean and the quick combination in the
    reference scenario (:data:`REFERENCE_CONTRAST`, :data:`REFERENCE_MODE`)."""
    r = one(REFERENCE_CONTRAST, REFERENCE_MODE, seed, n_frames)
    return {"seed": seed, "r2": r["r2"], "r2_blind": r["r2_blind"], "r2_pooled": r["r2_pooled"],
            "r2_quick": r["r2_quick"], "r2_expected": r["r2_expected"],
            "noise_limited": r["noise_limited"]}


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
    orc = sc.gain_oracle_r2(blind, pooled, g, return_estimates=True)
    parts = sc.gain_error_parts(res.gain, g)
    parts_oracle = sc.gain_error_parts(orc["estimate_per_coefficient_shrunk"], g)
    return {"contrast": contrast, "mode": mode, "seed": seed, "frames": n_frames,
            "r2": sc.r_squared(res.gain, g), "r2_blind": sc.r_squared(blind, g),
            "r2_pooled": sc.r_squared(pooled, g),
            "r2_oracle": orc["per_coefficient"], "r2_oracle_shrunk": orc["per_coefficient_shrunk"],
            "r2_expected": s["r2_expected"],
            "noise_limited": s["noise_limited"],
            "hp_r2": sc.r_squared(_hp(res.gain), _hp(g)),
            "hp_r2_blind": sc.r_squared(_hp(blind), _hp(g)),
            "r2_quick": sc.r_squared(quick_combination(blind, pooled), g),
            "error_parts": parts, "error_parts_oracle": parts_oracle}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--contrasts", default="0.1,0.2,0.3")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--frames", type=int, default=20)
    ap.add_argument("--json")
    ap.add_argument("--breakdown", action="store_true",
                    help="also print where the error lies (column profile, row profile, 2D) "
                         "for the estimate and the '+shrink' oracle")
    ap.add_argument("--reference", action="store_true",
                    help="only the reference scenario (see the module text)")
    a = ap.parse_args(argv)
    rows = []
    if a.reference:
        print(f"reference scenario: {REFERENCE_MODE}, contrast {REFERENCE_CONTRAST:g}, "
              f"{a.frames} frames")
        print("seed  R2     blind  mean   quick  expected limited")
        for seed in (int(x) for x in a.seeds.split(",")):
            r = reference(seed, a.frames)
            rows.append(r)
            print(f"{seed:>4d}  {r['r2']:.3f}  {r['r2_blind']:.3f}  {r['r2_pooled']:.3f}  "
                  f"{r['r2_quick']:.3f}  {r['r2_expected']:.3f}    {r['noise_limited']}",
                  flush=True)
        if a.json:
            with open(a.json, "w") as fh:
                json.dump(rows, fh, indent=2)
        return
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
                if a.breakdown:
                    p, q = r["error_parts"], r["error_parts_oracle"]
                    print("    error / log-gain variance (estimate | +shrink oracle): "
                          + "  ".join(f"{k} {p[k]:.4f} | {q[k]:.4f}" for k in ("col", "row", "2d")),
                          flush=True)
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(rows, fh, indent=2)


if __name__ == "__main__":
    main()
