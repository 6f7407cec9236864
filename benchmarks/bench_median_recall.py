"""Bad pixels from few planes: recall and false positives of the selective median's rules.

    .venv/bin/python benchmarks/bench_median_recall.py            # 512 x 512, 2000 bad px/factor
    .venv/bin/python benchmarks/bench_median_recall.py --quick    # 256 x 256, 1000 bad px/factor

Data: :func:`camcorr.simulate.noise.camera_stack` -- repeated frames of a static scene (gain 2
ADU/e-, offset 100 ADU, 20-400 e- per pixel, or dark frames), per-pixel read noise (uniform
4.63 ADU^2, or the *real* sCMOS variance map of ../shared/data/scmos_variance_gain_maps), and
bad pixels whose noise std is exactly 2x, 4x or 5x what shot plus read noise predicts for them.
Recall is the fraction of those found; false positives (FP) the fraction of all other pixels
flagged.  Beside each recall: the chi-square limit ``P(chi2(n-1) > q / F^2)`` at the same
false-positive rate (the best any per-pixel test can do; camcorr.median.chi2_power).

Rules: ``chi2`` (default false-positive rate 5e-4; with the map, its map rule off here so that
FP measures the test alone) and today's local rule ``mad`` (k = 5) for comparison.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without install too

FACTORS = (2.0, 4.0, 5.0)
PLANES = (10, 20, 50)


def scenarios(shape):
    from camcorr.simulate import noise

    vmap = noise.load_variance_map()[: shape[0], : shape[1]]
    uniform = np.full(shape, 4.63)  # the real map's median read variance
    return [
        ("chi2, no map", "uniform read noise, scene 20-400 e-", uniform, (20.0, 400.0), False),
        ("chi2, variance map", "real sCMOS map, scene 20-400 e-", vmap, (20.0, 400.0), True),
        ("chi2, variance map", "real sCMOS map, dark frames", vmap, (0.0, 0.0), True),
        ("chi2, no map", "real sCMOS map, dark frames", vmap, (0.0, 0.0), False),
        ("mad (local, k=5)", "uniform read noise, scene 20-400 e-", uniform, (20.0, 400.0), None),
        ("mad (local, k=5)", "real sCMOS map, dark frames", vmap, (0.0, 0.0), None),
    ]


def run(shape, n_bad, seed, fpr):
    from camcorr.median import chi2_power, find_bad_pixels
    from camcorr.simulate import noise

    rows = []
    rng = np.random.default_rng(seed)
    for rule, data, read, electrons, use_map in scenarios(shape):
        for n in PLANES:
            sim = noise.camera_stack(read, n, electrons=electrons,
                                     bad={f: n_bad for f in FACTORS}, rng=rng)
            t0 = time.perf_counter()
            if use_map is None:
                bad = find_bad_pixels(sim.stack, rule="mad", k=5.0)
            else:
                bad = find_bad_pixels(sim.stack, rule="chi2", fpr=fpr, map_factor=0,
                                      variance_map=read if use_map else None)
            seconds = time.perf_counter() - t0
            clean = sim.factor == 1
            rows.append({
                "rule": rule, "data": data, "planes": n, "seconds": seconds,
                "fp_percent": 100 * float(bad.mask[clean].mean()),
                "recall_percent": {f"{f:g}x": 100 * float(bad.mask[sim.factor == f].mean())
                                   for f in FACTORS},
                "limit_percent": {f"{f:g}x": 100 * chi2_power(n, f, fpr) for f in FACTORS},
            })
    return rows


def table(rows, fpr):
    head = ("| rule | data | planes | " + " | ".join(f"{f:g}x found (limit)" for f in FACTORS)
            + " | FP on clean pixels |")
    lines = [head, "|" + "---|" * (4 + len(FACTORS))]
    for r in rows:
        cells = []
        for f in FACTORS:
            key = f"{f:g}x"
            cells.append(f"{r['recall_percent'][key]:.2f} % ({r['limit_percent'][key]:.2f} %)")
        lines.append(f"| {r['rule']} | {r['data']} | {r['planes']} | " + " | ".join(cells)
                     + f" | {r['fp_percent']:.3f} % |")
    lines.append("")
    lines.append(f"Limit: chi-square power at the false-positive rate {fpr:g} "
                 f"({100 * fpr:.3g} %), the same for every rule.")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="256 x 256, 1000 bad pixels/factor")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--fpr", type=float, default=None,
                        help="false-positive rate of rule chi2 (default: camcorr's)")
    parser.add_argument("--json", help="also save the numbers as JSON")
    args = parser.parse_args(argv)
    from camcorr.median import DEFAULT_FPR

    fpr = DEFAULT_FPR if args.fpr is None else args.fpr
    shape, n_bad = ((256, 256), 1000) if args.quick else ((512, 512), 2000)
    rows = run(shape, n_bad, args.seed, fpr)
    print(f"{shape[0]} x {shape[1]} pixels, {n_bad} bad pixels per factor, seed {args.seed}")
    print(table(rows, fpr))
    if args.json:
        Path(args.json).write_text(json.dumps({"fpr": fpr, "shape": shape, "rows": rows},
                                              indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
