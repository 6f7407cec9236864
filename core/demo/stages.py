"""Engine stages of ``camcorr demo``: calibration, flash correction, the engine chain, gain and
FRC, and the run manifest."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
import tifffile

from ..io import write_tiff
from ..jsonio import jsonable
from .simulation import SERIAL

__all__ = ["calibrate", "flash_stage", "run_engine_chain", "gain_and_frc",
           "write_run_manifest"]


def calibrate(calib_dir: Path, quiet: bool = False, scheduler: Optional[str] = None) -> Path:
    """Fit the carryover of the simulated camera; returns the parameter file.

    With `scheduler` (a dask scheduler address) the streamed statistics of the calibration run
    on that cluster (:func:`camcorr.parallel.calibrate_folder`).
    """
    from .. import flash

    if scheduler:
        from ..parallel import calibrate_folder as dask_calibrate
        from ..parallel.options import connect

        with connect(scheduler) as client:
            cal = dask_calibrate(calib_dir, client=client)
    else:
        cal = flash.calibrate_folder(calib_dir)
    name = flash.param_filename(getattr(cal, "serial", SERIAL), tuple(cal.roi))
    path = flash.write_params(cal, calib_dir / name)
    return Path(path)


def _params_for(params_file: Path, data_roi):
    from .. import flash

    params = flash.read_params(params_file)
    return flash.crop_params(params, data_roi)


def flash_stage(sim: Dict[str, Any], params_file: Path, out: Path,
                cfg: Dict[str, Any]) -> List[List[np.ndarray]]:
    """Flash carryover correction alone, with the engine (``OUT/stages/flash``).

    Its output is compared with the simulator's carryover-free frames, whichever runner does
    the chain.  Returns ``[t][c]`` float32 stacks.
    """
    from .. import flash

    params = _params_for(params_file, cfg["roi"])
    flash_dir = out / "stages" / "flash"
    result = []
    for row in sim["files"]:
        fl = flash.correct_interleaved([tifffile.imread(f) for f in row], params)
        for c in range(len(row)):
            write_tiff(flash_dir / row[c].name, fl[c], inputs=row)
        result.append([np.asarray(a, np.float32) for a in fl])
    return result


def run_engine_chain(sim: Dict[str, Any], flashed: List[List[np.ndarray]], out: Path,
                     cfg: Dict[str, Any], quiet: bool = False) -> Dict[str, Any]:
    """Selective median -> flat-field (empty z-ranges) with the engine, after the flash stage."""
    from .. import flatfield, median

    corrected_dir = out / "corrected"
    masks: Dict[int, np.ndarray] = {}
    stack_masks: List = []
    median_out: Dict[int, List[np.ndarray]] = {0: [], 1: []}
    for t, row in enumerate(sim["files"]):
        for c in range(2):
            res = median.selective_median(flashed[t][c])
            masks.setdefault(c, np.zeros(res.mask.shape, bool))
            masks[c] |= np.asarray(res.mask, bool)
            stack_masks.append((row[c].name, np.asarray(res.mask, bool)))
            median_out[c].append(np.asarray(res.corrected, np.float32))
    profiles = {}
    for c in range(2):
        prof = flatfield.estimate_from_z_ranges(median_out[c], cfg["z_levels"])
        profiles[c] = prof
        for t, row in enumerate(sim["files"]):
            corr = flatfield.apply_flatfield(median_out[c][t], prof, baseline="none",
                                             rescale="none")
            write_tiff(corrected_dir / row[c].name, np.asarray(corr, np.float32), inputs=row)
    return {"masks": masks, "stack_masks": stack_masks,
            "flat": {c: np.asarray(p.flatfield, np.float32) for c, p in profiles.items()},
            "profiles": profiles}


def gain_and_frc(out: Path, sim: Dict[str, Any], quiet: bool = False) -> Dict[str, Any]:
    """Residual gain of the gain-check movie and FRC of its half-set averages before/after."""
    from .. import aposteriori, gain

    movie = tifffile.imread(out / "gain" / "gain_check_movie.tif")
    off = sim["movie_offset"]
    # the frames show independent fields: blind estimate + pooled mean (all spatial scales)
    res = gain.estimate_gain(movie, offset=off, fields="independent")
    g = np.asarray(res.gain, np.float32)
    write_tiff(out / "gain" / "gain.tif", g)
    rep = getattr(res, "report", None) or gain.gain_report(g)
    (out / "gain" / "gain_report.json").write_text(
        json.dumps(jsonable(rep, max_array=16), indent=2))
    frames = movie.astype(np.float32) - off
    stats = aposteriori.compute_stats(frames)
    raw_a, raw_b, cor_a, cor_b = aposteriori.half_set_averages(frames, stats)
    before = aposteriori.frc(raw_a, raw_b)
    after = aposteriori.frc(cor_a, cor_b)
    n = min(len(before.frequency), len(after.frequency))
    curves = {"frequency": np.asarray(before.frequency[:n]).tolist(),
              "before": np.asarray(before.frc[:n]).tolist(),
              "after": np.asarray(after.frc[:n]).tolist(),
              "threshold": np.asarray(before.threshold[:n]).tolist(),
              "title": "FRC of half-set averages of the gain-check movie"}
    (out / "frc").mkdir(parents=True, exist_ok=True)
    (out / "frc" / "frc.json").write_text(json.dumps(curves))
    return {"gain": g, "report": rep}


def _empty_planes_mean(out: Path, files, z_levels):
    """Mean of the empty planes of channel 1 (flash stage, then the engine's selective median),
    and its per-pixel standard error (ADU), for the flat-field check.

    Hot and random-telegraph pixels are replaced first, as the chain does before estimating the
    flat-field: a telegraph pixel's mean excess (75-200 ADU on a 150 ADU background) inside a
    4 x 4 corner or centre patch of the tiny demo moved its corner/centre ratio by up to 6 %
    with the *true* flat-field (a check that then failed at random).  Not the runner's saved output:
    the CellProfiler chain subtracts a scalar baseline and saves 16-bit, so near-background
    pixels are clipped at 0, which biases a background mean.
    """
    from .. import median

    lo, hi = z_levels
    planes = []
    for r in files:
        stack = tifffile.imread(out / "stages" / "flash" / r[1].name).astype(np.float32)
        clean = np.asarray(median.selective_median(stack).corrected, np.float64)
        planes.append(np.concatenate([clean[:lo], clean[hi + 1:]]))
    planes = np.concatenate(planes)
    n = planes.shape[0]
    se = planes.std(axis=0, ddof=1) / np.sqrt(n) if n > 1 else np.zeros(planes.shape[1:])
    return planes.mean(axis=0), se


def write_run_manifest(out: Path, sim: Dict[str, Any], params_file: Path, chain: Dict[str, Any],
                       cfg: Dict[str, Any], runner: str, timings: Dict[str, float]) -> None:
    """The run manifest the report reads (see :mod:`camcorr.report.manifest`)."""
    from ..report.manifest import write_manifest

    rel = lambda p: str(Path(p).relative_to(out))  # noqa: E731
    off = _params_for(params_file, cfg["roi"]).offset
    write_tiff(out / "stages" / "offset_roi.tif", np.asarray(off, np.float32))
    files = sim["files"]
    ch1, ch0 = files[0][1], files[0][0]
    mask = chain["masks"][1] | chain["masks"][0]
    write_tiff(out / "median" / "bad_pixel_mask.tif", mask.astype(np.uint8))
    per_stack = []
    for name, m in chain.get("stack_masks") or []:
        path = out / "median" / f"mask_{Path(name).stem}.tif"
        write_tiff(path, np.asarray(m, np.uint8))
        per_stack.append(rel(path))
    from .. import flatfield

    (out / "flatfield").mkdir(parents=True, exist_ok=True)
    if chain.get("profiles"):
        flatfield.save_profiles(chain["profiles"][1], out / "flatfield" / "profiles_ch1.npz")
    elif 1 in chain.get("flat", {}):
        np.savez(out / "flatfield" / "profiles_ch1.npz", flatfield=chain["flat"][1])
    before, se = _empty_planes_mean(out, files, cfg["z_levels"])
    flat1 = chain["flat"].get(1) if chain.get("flat") else None
    after = before / flat1 if flat1 is not None else before
    write_tiff(out / "flatfield" / "empty_planes_before.tif", before.astype(np.float32))
    write_tiff(out / "flatfield" / "empty_planes_after.tif", after.astype(np.float32))
    write_tiff(out / "flatfield" / "empty_planes_before_se.tif", se.astype(np.float32))
    manifest = {
        "title": f"camcorr demo ({cfg['name']}, runner: {runner})",
        "flash": {"calibration_dir": "calibration", "params": rel(params_file)},
        "projections": [
            {"label": "channel 642 nm after the bright 488 nm channel: flash carryover correction",
             "before": rel(ch1), "after": rel(out / "stages" / "flash" / ch1.name),
             "offset": "stages/offset_roi.tif", "title_after": "flash-corrected"},
            {"label": "channel 642 nm: raw vs the whole chain (flash, median, flat-field)",
             "before": rel(ch1), "after": rel(out / "corrected" / ch1.name),
             "offset": "stages/offset_roi.tif", "title_after": f"corrected ({runner})",
             "difference": False},
            {"label": "channel 488 nm: raw vs the whole chain",
             "before": rel(ch0), "after": rel(out / "corrected" / ch0.name),
             "offset": "stages/offset_roi.tif", "title_after": f"corrected ({runner})",
             "difference": False},
        ],
        "median": {"mask": "median/bad_pixel_mask.tif", "stack_masks": per_stack},
        "gain": {"image": "gain/gain.tif", "report": "gain/gain_report.json"},
        "frc": {"curves": "frc/frc.json"},
        "flatfield": {"profiles": "flatfield/profiles_ch1.npz",
                      "before": "flatfield/empty_planes_before.tif",
                      "after": "flatfield/empty_planes_after.tif",
                      "before_standard_error": "flatfield/empty_planes_before_se.tif"},
        "truth": {
            "flash": "truth/flash_truth.npz", "hot_mask": "truth/hot_mask.tif",
            "gain": "truth/gain.tif", "flatfield": "truth/flatfield.tif",
            "carryover": [{"label": "642 nm channel, timepoint 0, flash stage",
                           "raw": rel(ch1), "corrected": rel(out / "stages" / "flash" / ch1.name),
                           "clean": "truth/clean_ch1_t0.tif",
                           "carryover": "truth/carryover_ch1_t0.tif",
                           "offset": "stages/offset_roi.tif"}]},
        "qc": {"runner": runner, "size": cfg["name"], "read_noise_source": sim["noise_source"],
               "seconds": {k: round(v, 2) for k, v in timings.items()},
               **({"cellprofiler_measurements": chain["measurements"]}
                  if chain.get("measurements") else {})},
    }
    write_manifest(out, manifest)


# --------------------------------------------------------------------------- main
