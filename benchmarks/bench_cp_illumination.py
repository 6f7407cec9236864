"""camcorr flat-field vs CellProfiler's CorrectIlluminationCalculate on CellProfiler's example
images, held-out, judged on what users measure: cell intensity against position.

Data: the 72 Transfluor images of CellProfiler's illumination-correction example
(``../shared/data/cellprofiler_example_illum``, BBBC016; 512 x 512 uint8).  They are split in
two alternate halves (sorted file names, even / odd).  Every method estimates its illumination
function on one half and corrects the *other* half (and, for the in-sample column, the same
half); both directions are run and averaged.

Methods, side by side in one run:

* ``none``: no correction;
* ``camcorr auto``: ``camcorr.flatfield.estimate_from_empty_tiles(half, None, darkfield=offset)``
  with its defaults (every image holds cells: 'median' or 'quantiles' -- flat-field plus an
  additive term from each pixel's intensity distribution -- and sigma, chosen by held-out
  validation on the whole intensity distribution); images corrected as ``(I - D) / F`` with the
  profile's darkfield ``D`` (offset plus the additive term when 'quantiles' is chosen);
* ``camcorr median``: the same with the statistic fixed to 'median' (sigma chosen), the
  default before the 'quantiles' model;
* ``camcorr mean s10``: the smoothed mean of the images (statistic 'mean', sigma 10 px; the
  setting that over-corrects sparse specimens, see tests/test_flatfield_heldout.py);
* ``CP median 125`` and ``CP polynomial``: the real CorrectIlluminationCalculate module of the
  installed ``cellprofiler`` package (Regular, All, rescale Yes; Median Filter with a manual
  size of 125 px, or Fit Polynomial), driven through real cellprofiler_core Pipeline /
  Workspace objects, one cycle per image, then post_group.

Figures (held-out half):

* cell position dependence: each corrected image, ``(I - D) / F``, is segmented on its own
  (Otsu); the mean foreground intensity of every cell-sized patch is divided by the median patch
  of its image, and a quadratic surface of log intensity against position is fitted
  (:func:`camcorr.flatfield.cell_position_dependence`): its CV and corner/centre ratio (0 and 1
  are flat);
* background non-uniformity: CV and corner/centre of the smoothed per-pixel median of the
  corrected half (:func:`camcorr.flatfield.flatfield_quality`).

Target: the held-out position dependence of camcorr's default at most that of
CorrectIlluminationCalculate (median filter 125 and polynomial).  Usage::

    .venv/bin/python benchmarks/bench_cp_illumination.py [--figures DIR] [--json FILE]
        [--offset ADU] [--data DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CAMCORR_SHARED_DATA", ROOT.parent / "shared" / "data"))
DATA = SHARED / "cellprofiler_example_illum"


def load(folder: Path) -> list:
    import tifffile

    files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in (".tif", ".tiff"))
    if not files:
        sys.exit(f"bench_cp_illumination: no TIFF images in {folder}")
    return [tifffile.imread(p) for p in files]


# ---------------------------------------------------------------------------------------------
# CellProfiler's CorrectIlluminationCalculate, run as CellProfiler runs it
# ---------------------------------------------------------------------------------------------
def cp_illumination(images, smoothing: str, size: int = 125) -> np.ndarray:
    """Illumination function of CorrectIlluminationCalculate (Regular, All) over `images`.

    The images enter as CellProfiler's NamesAndTypes makes them from 8-bit files (values / 255,
    scale 255); the module runs once per cycle in one group, then post_group, through real
    cellprofiler_core objects.
    """
    import cellprofiler_core.preferences as cpprefs

    cpprefs.set_headless()
    from cellprofiler.modules.correctilluminationcalculate import CorrectIlluminationCalculate
    from cellprofiler_core.image import Image, ImageSetList
    from cellprofiler_core.measurement import Measurements
    from cellprofiler_core.module import Module
    from cellprofiler_core.object import ObjectSet
    from cellprofiler_core.pipeline import Pipeline
    from cellprofiler_core.workspace import Workspace

    class Inject(Module):
        module_name = "InjectImages"
        category = "Benchmark"
        variable_revision_number = 1

        def create_settings(self):
            self.frames = []

        def settings(self):
            return []

        def run(self, workspace):
            n = workspace.measurements.image_set_number
            img = np.asarray(self.frames[n - 1], np.float64) / 255.0
            workspace.image_set.add("GFP", Image(img.astype(np.float32), scale=255.0))

    inject = Inject()
    inject.frames = list(images)
    m = CorrectIlluminationCalculate()
    m.image_name.value = "GFP"
    m.illumination_image_name.value = "Illum"
    m.intensity_choice.value = "Regular"
    m.each_or_all.value = "All"
    m.rescale_option.value = "Yes"
    m.smoothing_method.value = smoothing
    if smoothing == "Median Filter":
        m.automatic_object_width.value = "Manually"
        m.size_of_smoothing_filter.value = int(size)
    pipeline = Pipeline()
    inject.set_module_num(1)
    m.set_module_num(2)
    pipeline.add_module(inject)
    pipeline.add_module(m)
    meas = Measurements()
    isl = ImageSetList()

    def ws(mod):
        return Workspace(pipeline, mod, meas, ObjectSet(), meas, isl)

    from cellprofiler_core.constants.measurement import GROUP_INDEX, GROUP_NUMBER

    numbers = list(range(1, len(images) + 1))
    for i in numbers:
        meas.add_measurement("Image", GROUP_NUMBER, 1, image_set_number=i)
        meas.add_measurement("Image", GROUP_INDEX, i, image_set_number=i)
    m.prepare_run(ws(m))
    m.prepare_group(ws(m), {}, numbers)
    for n in numbers:
        meas.next_image_set(n)
        for mod in pipeline.modules():
            mod.run(ws(mod))
    m.post_group(ws(m), {})
    illum = np.asarray(meas.get_image("Illum").pixel_data, np.float64)
    return illum / illum.mean()


# ---------------------------------------------------------------------------------------------
# methods
# ---------------------------------------------------------------------------------------------
def estimate(method: str, images, offset: float):
    """(flat-field of mean 1, darkfield in ADU, seconds, extra info) of `method` on `images`.

    The darkfield is `offset`, or camcorr's profile darkfield (`offset` plus the additive term
    of its 'quantiles' model, when chosen): images are corrected as ``(I - darkfield) / flat``,
    as ``camcorr flatfield apply`` and the CellProfiler module do.
    """
    from camcorr.flatfield import estimate_from_empty_tiles

    t = time.perf_counter()
    info = {}
    dark = offset
    if method == "none":
        flat = np.ones(images[0].shape)
    elif method == "camcorr auto":
        prof = estimate_from_empty_tiles(list(images), None, darkfield=offset)
        flat, dark = prof.flatfield, np.asarray(prof.darkfield, np.float64)
        info = {"sigma": prof.meta["sigma"], "statistic": prof.meta["statistic"],
                "quality": prof.quality, "specimen_spread": prof.meta.get("specimen_spread"),
                "table": prof.meta.get("smoothing_table")}
    elif method == "camcorr mean s10":
        prof = estimate_from_empty_tiles(list(images), None, darkfield=offset,
                                         statistic="mean", sigma=10)
        flat = prof.flatfield
        info = {"quality": prof.quality}
    elif method == "camcorr median":
        prof = estimate_from_empty_tiles(list(images), None, darkfield=offset,
                                         statistic="median")
        flat = prof.flatfield
        info = {"sigma": prof.meta["sigma"], "quality": prof.quality}
    elif method == "CP median 125":
        flat = cp_illumination(images, "Median Filter", 125)
    elif method == "CP polynomial":
        flat = cp_illumination(images, "Fit Polynomial")
    else:
        raise ValueError(method)
    return (np.asarray(flat, np.float64) / np.mean(flat), dark, time.perf_counter() - t, info)


METHODS = ("none", "camcorr auto", "camcorr median", "camcorr mean s10", "CP median 125",
           "CP polynomial")


def evaluate(flat, dark, images):
    """Cell position dependence and background non-uniformity of `images` corrected by `flat`
    after subtracting `dark` (ADU, a number or an image)."""
    from camcorr.flatfield import cell_position_dependence, flatfield_quality

    cells = cell_position_dependence(images, flat, dark)
    stack = np.stack([np.asarray(im, np.float64) for im in images])
    bg = flatfield_quality(np.median(stack, axis=0), flat, dark)
    return {"cell_cv": cells["cv"], "cell_corner_centre": cells["corner_centre"],
            "n_samples": cells["n_samples"], "bg_cv": bg["cv_after"],
            "bg_corner_centre": bg["corner_centre_after"], "map": cells["map"]}


def run(images, offset):
    halves = (images[0::2], images[1::2])
    results = {}
    for method in METHODS:
        rows = []
        for k in (0, 1):
            est, held = halves[k], halves[1 - k]
            flat, dark, secs, info = estimate(method, est, offset)
            rows.append({"held_out": evaluate(flat, dark, held),
                         "in_sample": evaluate(flat, dark, est),
                         "seconds": secs, "flat": flat, "info": info})
        results[method] = rows
    return results


def _avg(rows, where, key):
    return float(np.mean([r[where][key] for r in rows]))


def summary(results) -> dict:
    out = {}
    for method, rows in results.items():
        out[method] = {
            f"{where}_{key}": _avg(rows, where, key)
            for where in ("held_out", "in_sample")
            for key in ("cell_cv", "cell_corner_centre", "bg_cv", "bg_corner_centre")}
        out[method]["seconds"] = float(np.mean([r["seconds"] for r in rows]))
        out[method]["n_samples_held_out"] = int(np.mean([r["held_out"]["n_samples"] for r in rows]))
        sig = [r["info"].get("sigma") for r in rows if r["info"].get("sigma") is not None]
        if sig:
            out[method]["sigma_chosen"] = sig
            out[method]["statistic_chosen"] = [r["info"].get("statistic", "median") for r in rows]
        spr = [r["info"].get("specimen_spread") for r in rows]
        if any(v is not None for v in spr):
            out[method]["specimen_spread"] = spr
        ovf = [r["info"]["quality"]["overfit"] for r in rows if "quality" in r["info"]]
        if ovf:
            out[method]["camcorr_overfit_flag"] = ovf
    return out


def print_table(s: dict, offset: float, n: int):
    print(f"CellProfiler example images: {n} images, two alternate halves, estimate on one, "
          f"evaluate on the other (both ways, averaged); offset {offset:g} ADU subtracted.")
    print("Cell intensity vs position (quadratic fit of the Otsu foreground's mean per 16-px "
          "patch / image median): CV (0 = flat), corner/centre (1 = flat).  Background: "
          "smoothed median.")
    head = (f"{'method':<18} | {'held-out cells':^19} | {'in-sample cells':^19} | "
            f"{'held-out backgr.':^19} | {'in-sample backgr.':^19} | {'s/fit':>6}")
    print(head)
    print(f"{'':<18} | {'CV':>8} {'crn/ctr':>9}  | {'CV':>8} {'crn/ctr':>9}  | "
          f"{'CV':>8} {'crn/ctr':>9}  | {'CV':>8} {'crn/ctr':>9}  |")
    print("-" * len(head))
    for method, r in s.items():
        print(f"{method:<18} | {r['held_out_cell_cv']:8.4f} {r['held_out_cell_corner_centre']:9.3f}"
              f"  | {r['in_sample_cell_cv']:8.4f} {r['in_sample_cell_corner_centre']:9.3f}"
              f"  | {r['held_out_bg_cv']:8.4f} {r['held_out_bg_corner_centre']:9.3f}"
              f"  | {r['in_sample_bg_cv']:8.4f} {r['in_sample_bg_corner_centre']:9.3f}"
              f"  | {r['seconds']:6.2f}")
    a = s["camcorr auto"]
    if "sigma_chosen" in a:
        print(f"camcorr auto chose sigma {a['sigma_chosen']} px, statistic "
              f"{a['statistic_chosen']}; over-fitting flag {a.get('camcorr_overfit_flag')}; "
              f"specimen spread / noise spread {a.get('specimen_spread')}")
    best_cp = min(s["CP median 125"]["held_out_cell_cv"], s["CP polynomial"]["held_out_cell_cv"])
    cc_cp = min(abs(s["CP median 125"]["held_out_cell_corner_centre"] - 1),
                abs(s["CP polynomial"]["held_out_cell_corner_centre"] - 1))
    ok_cv = a["held_out_cell_cv"] <= best_cp
    ok_cc = abs(a["held_out_cell_corner_centre"] - 1) <= cc_cp
    print(f"target: camcorr held-out cell CV {a['held_out_cell_cv']:.4f} <= best CP "
          f"{best_cp:.4f}: {'met' if ok_cv else 'NOT met'}; |corner/centre - 1| "
          f"{abs(a['held_out_cell_corner_centre'] - 1):.3f} <= best CP {cc_cp:.3f}: "
          f"{'met' if ok_cc else 'NOT met'}")


def figures(results, outdir: Path):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    outdir.mkdir(parents=True, exist_ok=True)
    methods = list(results)
    fig = Figure(figsize=(3.0 * len(methods), 6.0))
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, len(methods))
    maps = [results[m][0]["held_out"]["map"] for m in methods]
    lo = min(float(m.min()) for m in maps)
    hi = max(float(m.max()) for m in maps)
    for j, m in enumerate(methods):
        ax = axes[0, j]
        im = ax.imshow(results[m][0]["flat"], cmap="viridis")
        ax.set_title(f"{m}\nflat-field (half A)", fontsize=9)
        ax.set_axis_off()
        fig.colorbar(im, ax=ax, fraction=0.046)
        ax = axes[1, j]
        r = results[m][0]["held_out"]
        im = ax.imshow(r["map"], cmap="RdBu_r", vmin=lo, vmax=hi)
        ax.set_title(f"cells of half B vs position\nCV {r['cell_cv']:.3f}, "
                     f"corner/centre {r['cell_corner_centre']:.3f}", fontsize=9)
        ax.set_axis_off()
        fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    path = outdir / "cp_illumination_heldout.png"
    fig.savefig(path, dpi=90)
    return path


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DATA, help="folder of the example images")
    ap.add_argument("--offset", type=float, default=0.0,
                    help="camera offset subtracted before estimating and measuring, ADU "
                         "(default 0: the 8-bit example images reach 0)")
    ap.add_argument("--figures", type=Path, default=None, help="write PNG figures here")
    ap.add_argument("--json", type=Path, default=None, help="write the numbers as JSON")
    args = ap.parse_args(argv)
    if not args.data.is_dir():
        sys.exit(f"bench_cp_illumination: data folder not found: {args.data}")
    images = load(args.data)
    results = run(images, args.offset)
    s = summary(results)
    print_table(s, args.offset, len(images))
    if args.figures:
        print(f"figure: {figures(results, args.figures)}")
    if args.json:
        args.json.write_text(json.dumps(s, indent=2))
        print(f"numbers: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
