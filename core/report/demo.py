"""``camcorr demo``: the whole product on a simulated lattice light-sheet acquisition.

Steps (each prints one line; the whole run takes a few minutes on 2 cores at ``size='small'``):

1. **Simulate** with the project's simulators (known truth everywhere): a Flash4.0 carryover
   calibration folder (:mod:`camcorr.simulate.lls`); an interleaved two-channel acquisition of
   beads on a fluorescent background, imaged through an uneven light-sheet illumination
   (:func:`camcorr.simulate.tiles.make_flatfield`), on a camera with carryover and with the real
   heavy-tailed sCMOS read-noise map (:mod:`camcorr.simulate.noise`; hot and noisy pixels); and
   a short movie of a textured specimen recorded through a drifted residual gain
   (:mod:`camcorr.simulate.camera`).
2. **Calibrate** the camera (:func:`camcorr.flash.calibrate_folder`).
3. **Correct**: the chained example pipeline flash carryover -> selective median -> flat-field
   (empty z-ranges), headless with CellProfiler and the camcorr plugins (default), or with the
   engine directly (``runner='engine'``).
4. **Check the camera**: residual gain (:func:`camcorr.gain.estimate_gain`) and Fourier ring
   correlation of half-set averages before/after a posteriori normalisation
   (:mod:`camcorr.aposteriori`).
5. **Report**: ``OUT/report/index.html`` with the figures and ``qc.json``, every number next
   to the simulator's truth (:func:`camcorr.report.build_report`).

The simulated residual gain is kept out of the light-sheet acquisition (it lives in the movie of
step 4), so that the flat-field and carryover truths stay unambiguous.
"""
from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
import tifffile

from ..errors import CamcorrError
from ..io import write_tiff

__all__ = ["run_demo", "run_cli", "DemoResult", "SIZES", "stage_availability",
           "find_pipelines_dir", "cellprofiler_command"]

#: Demo sizes.  ROIs are (left, top, right, bottom) on the simulated sensor; an image has
#: right-left+1 rows and bottom-top+1 columns (rotated camera, as LLS data).
SIZES: Dict[str, Dict[str, Any]] = {
    "small": dict(calib_roi=(1001, 1001, 1128, 1128), calib_planes=20, n_dark=4, dark_planes=100,
                  roi=(1009, 1011, 1120, 1106), n_z=48, n_t=2, z_levels=(9, 38), bead_z=(12, 36),
                  n_beads=(40, 30), gain_frames=100),
    "tiny": dict(calib_roi=(1001, 1011, 1048, 1050), calib_planes=8, n_dark=3, dark_planes=60,
                 roi=(1005, 1015, 1040, 1046), n_z=40, n_t=1, z_levels=(11, 28), bead_z=(13, 27),
                 n_beads=(12, 8), gain_frames=100),
}
LASERS = (488, 642)
PEAKS = (3000.0, 600.0)        # bead peak signal per channel, ADU above offset
BACKGROUND = (150.0, 150.0)    # fluorescent background per channel, ADU above offset
SERIAL = "100740"
NAME = "cell1"

# stage -> (module, attribute) it needs from the engine
_NEEDS = {
    "simulate": [("camcorr.simulate.lls", "write_calibration_folder"),
                 ("camcorr.simulate.tiles", "make_flatfield"),
                 ("camcorr.simulate.camera", "gain_map")],
    "calibrate": [("camcorr.flash", "calibrate_folder"), ("camcorr.flash", "write_params")],
    "flash": [("camcorr.flash", "correct_interleaved"), ("camcorr.flash", "crop_params")],
    "median": [("camcorr.median", "selective_median")],
    "flatfield": [("camcorr.flatfield", "estimate_from_z_ranges"),
                  ("camcorr.flatfield", "apply_flatfield")],
    "gain": [("camcorr.gain", "estimate_gain"), ("camcorr.gain", "gain_report")],
    "frc": [("camcorr.aposteriori", "frc"), ("camcorr.aposteriori", "half_set_averages")],
}


def _has(module: str, attr) -> bool:
    try:
        mod = importlib.import_module(module)
    except ImportError:
        return False
    return attr is None or hasattr(mod, attr)


def stage_availability() -> Dict[str, bool]:
    """Which demo stages the installed engine can run."""
    return {stage: all(_has(m, a) for m, a in needs) for stage, needs in _NEEDS.items()}


def _say(msg: str, quiet: bool = False):
    if not quiet:
        print(msg, flush=True)


@dataclass
class DemoResult:
    """What :func:`run_demo` made.

    Attributes
    ----------
    out : Path
        Run folder.
    report : Path or None
        ``report/index.html``.
    qc : dict
        The report's QC numbers.
    timings : dict
        Seconds per step.
    runner : str
        'cellprofiler' or 'engine'.
    """

    out: Path
    report: Optional[Path]
    qc: Dict[str, Any] = field(default_factory=dict)
    timings: Dict[str, float] = field(default_factory=dict)
    runner: str = "engine"
    skipped: List[str] = field(default_factory=list)


# --------------------------------------------------------------------------- locating things
def find_pipelines_dir() -> Optional[Path]:
    """The repository's ``pipelines/`` folder (``$CAMCORR_PIPELINES`` overrides).

    camcorr is installed from a checkout (editable, ``package_dir camcorr = core``), so the
    folder is found beside the package's source folder.
    """
    env = os.environ.get("CAMCORR_PIPELINES")
    if env:
        return Path(env)
    here = Path(__file__).resolve()
    for parent in here.parents:
        cand = parent / "pipelines"
        if (cand / "chain_flash_median_flatfield.cppipe").is_file() or (
                cand.is_dir() and (parent / "cellprofiler_plugins").is_dir()):
            return cand
    return None


def _plugins_dir(pipelines: Path) -> Path:
    env = os.environ.get("CAMCORR_PLUGINS")
    return Path(env) if env else pipelines.parent / "cellprofiler_plugins"


def _preferences_file(pipelines: Path) -> Optional[Path]:
    for name in ("cellprofiler_headless_preferences.json", "headless_preferences.json"):
        if (pipelines / name).is_file():
            return pipelines / name
    hits = sorted(pipelines.glob("*pref*"))
    return hits[0] if hits else None


def cellprofiler_command(pipeline: Path, inp: Path, out: Path, plugins: Path) -> List[str]:
    """The headless CellProfiler command line for one batch (this Python's CellProfiler)."""
    return [sys.executable, "-m", "cellprofiler", "-c", "-r", "-p", str(pipeline), "-i", str(inp),
            "-o", str(out), "--plugins-directory", str(plugins)]


# --------------------------------------------------------------------------- simulation
def _read_noise_map(shape, rng) -> (np.ndarray, str):
    """Read-noise std map (ADU): a crop of the real sCMOS variance map, or a synthetic one."""
    from ..simulate import noise as snoise

    try:
        var = snoise.load_variance_map()
        h, w = shape
        y0, x0 = 100, 150
        var = var[y0:y0 + h, x0:x0 + w]
        if var.shape == tuple(shape):
            return np.sqrt(var).astype(np.float32), "real sCMOS variance map (crop)"
    except CamcorrError:
        pass
    sigma = 1.6 * np.exp(0.25 * rng.standard_normal(shape))
    hot = rng.random(shape) < 0.004
    sigma[hot] *= rng.uniform(6, 20, hot.sum())
    return sigma.astype(np.float32), "synthetic heavy-tailed read noise"


def _beads(shape_zyx, z_range, n, peak, rng, sigma=1.6):
    nz, ny, nx = shape_zyx
    vol = np.zeros(shape_zyx, np.float64)
    z, y, x = np.ogrid[:nz, :ny, :nx]
    for _ in range(n):
        cz = rng.uniform(z_range[0] + 1.5, z_range[1] - 1.5)
        cy, cx = rng.uniform(2, ny - 2), rng.uniform(2, nx - 2)
        amp = peak * rng.uniform(0.4, 1.0)
        vol += amp * np.exp(-(((z - cz) / (sigma * 1.6)) ** 2 + ((y - cy) / sigma) ** 2
                              + ((x - cx) / sigma) ** 2) / 2)
    return vol


def _channel_file(folder: Path, c: int, t: int) -> Path:
    return folder / (f"{NAME}_CamA_ch{c}_stack{t:04d}_{LASERS[c]}nm_{t * 1000:07d}msec_"
                     f"{12345678 + t * 1000:010d}msecAbs.tif")


def simulate(out: Path, size: str, seed: int, quiet: bool = False) -> Dict[str, Any]:
    """Write the calibration folder, the raw acquisition, the gain movie and the truth."""
    from ..simulate import camera as scam
    from ..simulate import lls
    from ..simulate import noise as snoise
    from ..simulate import tiles as stiles

    cfg = SIZES[size]
    rng = np.random.default_rng(seed)
    calib = lls.write_calibration_folder(out / "calibration", roi=cfg["calib_roi"], seed=seed,
                                         n_planes=cfg["calib_planes"], n_dark_files=cfg["n_dark"],
                                         dark_planes=cfg["dark_planes"], serial=SERIAL)
    cam = lls.sensor_maps(cfg["roi"], seed=seed, serial=SERIAL)
    shape = cam.shape
    noise, noise_source = _read_noise_map(shape, rng)
    cam.noise = noise
    flat = stiles.make_flatfield(shape)
    flat = np.asarray(flat, np.float64) / np.mean(flat)
    n_z, n_t = cfg["n_z"], cfg["n_t"]
    raw_dir = out / "raw"
    raw_dir.mkdir(parents=True, exist_ok=True)
    truth_dir = out / "truth"
    truth_dir.mkdir(parents=True, exist_ok=True)
    files = []
    raw0_ch1 = raw_ch1 = None
    # RTS (random telegraph) pixels: large two-level read-noise jumps, a camera property
    n_rts = max(4, int(round(0.003 * noise.size)))
    rts_idx = rng.choice(noise.size, n_rts, replace=False)
    rts_amp = rng.uniform(150.0, 400.0, n_rts)
    rts_var = np.zeros(noise.size)
    for t in range(n_t):
        sig = []
        for c in range(2):
            vol = BACKGROUND[c] + _beads((n_z,) + shape, cfg["bead_z"], cfg["n_beads"][c],
                                         PEAKS[c], rng)
            sig.append(vol * flat[None])
        seq = np.stack(sig, axis=1).reshape((-1,) + shape)  # ch0z0, ch1z0, ch0z1, ... ('per Z')
        raw, raw0 = lls.simulate_frames(seq, cam, rng, return_nocarry=True)
        tele = snoise.telegraph_noise(seq.shape[0], n_rts, amplitude=rts_amp, p_switch=0.5,
                                      rng=rng)
        rts_var[rts_idx] += tele.var(axis=0) / n_t
        for r in (raw, raw0):
            flat_view = r.reshape(r.shape[0], -1)
            flat_view[:, rts_idx] = np.clip(flat_view[:, rts_idx] + np.rint(tele), 0, 65535)
        raw = raw.reshape((n_z, 2) + shape)
        raw0 = raw0.reshape((n_z, 2) + shape)
        row = []
        for c in range(2):
            f = _channel_file(raw_dir, c, t)
            tifffile.imwrite(f, np.ascontiguousarray(raw[:, c]), imagej=True,
                             metadata={"axes": "ZYX"})
            row.append(f)
        files.append(row)
        if t == 0:
            raw_ch1, raw0_ch1 = raw[:, 1].copy(), raw0[:, 1].copy()
    lls.write_settings(raw_dir / f"{NAME}_Settings.txt", cfg["roi"], serial=SERIAL, lasers=LASERS,
                       powers=[5.0, 5.0], n_planes=n_z, n_stacks=n_t, cycle="per Z")
    # truth files for the report
    T = calib.truth
    np.savez(truth_dir / "flash_truth.npz", A=T.A, B=T.B, offset=T.offset, noise=T.noise,
             x_max=max(calib.bright_levels))
    off = cam.offset.astype(np.float32)
    tifffile.imwrite(truth_dir / "clean_ch1_t0.tif", (raw0_ch1.astype(np.float32) - off))
    tifffile.imwrite(truth_dir / "carryover_ch1_t0.tif",
                     raw_ch1.astype(np.float32) - raw0_ch1.astype(np.float32))
    # noisy pixels: total noise on the background (read + RTS + shot) >= 5 x the median
    total = np.sqrt(noise.astype(np.float64) ** 2 + rts_var.reshape(shape)
                    + BACKGROUND[1] * flat / lls.E_PER_ADU)
    ratio = total / np.median(total)
    hot = np.where(ratio >= 5, 2, np.where(ratio >= 1.5, 1, 0)).astype(np.uint8)
    tifffile.imwrite(truth_dir / "hot_mask.tif", hot)  # 2: >= 5x median noise, 1: 1.5-5x, 0: clean
    tifffile.imwrite(truth_dir / "flatfield.tif", flat.astype(np.float32))
    # the camera's drifted residual gain, seen in a movie of a textured specimen
    # drift of the per-column amplifiers of an sCMOS (readout stripes), some row and pixel terms
    gm = scam.gain_map(shape, column_std=0.06, row_std=0.02, smooth_amplitude=0.0,
                       pixel_std=0.01, rng=rng)
    tifffile.imwrite(truth_dir / "gain.tif", gm.gain.astype(np.float32))
    movie = scam.integrating_movie(gm.gain, cfg["gain_frames"], photons_per_px=2000.0,
                                   adu_per_e=1 / lls.E_PER_ADU, read_noise_adu=1.6, offset=100.0,
                                   motion="independent", rng=rng)
    gdir = out / "gain"
    gdir.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(gdir / "gain_check_movie.tif", movie.frames, imagej=True,
                     metadata={"axes": "TYX"})
    return {"calib": calib, "files": files, "cam": cam, "noise_source": noise_source,
            "flat": flat, "hot": hot, "movie_offset": 100.0, "gain_truth": gm.gain,
            "movie_params": movie.params}


# --------------------------------------------------------------------------- steps
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
            corr = flatfield.apply_flatfield(median_out[c][t], prof, baseline="none")
            write_tiff(corrected_dir / row[c].name, np.asarray(corr, np.float32), inputs=row)
    return {"masks": masks, "stack_masks": stack_masks,
            "flat": {c: np.asarray(p.flatfield, np.float32) for c, p in profiles.items()},
            "profiles": profiles}


CHAIN_PIPELINE = "chain_flash_median_flatfield.cppipe"


def check_cellprofiler() -> Dict[str, Path]:
    """Locate the chained pipeline, the plugins, the preferences and CellProfiler itself.

    Returns
    -------
    dict with ``pipeline``, ``plugins``, ``preferences`` (may be None)

    Raises
    ------
    CamcorrError
        The pipeline or the plugins folder is not found, or CellProfiler is not installed.
    """
    pipes = find_pipelines_dir()
    pipeline = None if pipes is None else pipes / CHAIN_PIPELINE
    if pipeline is None or not pipeline.is_file():
        raise CamcorrError("the chained CellProfiler pipeline was not found", argument="--runner",
                           expected=f"pipelines/{CHAIN_PIPELINE} of the camcorr checkout "
                                    "(or $CAMCORR_PIPELINES pointing at that folder)",
                           received=str(pipeline) if pipeline else "no pipelines folder",
                           fix="Run from a camcorr checkout (make demo), set CAMCORR_PIPELINES, or "
                               "use --runner engine to run the same chain without CellProfiler")
    plugins = _plugins_dir(pipes)
    if not plugins.is_dir():
        raise CamcorrError("the camcorr CellProfiler plugins were not found", argument="--runner",
                           expected="a cellprofiler_plugins folder beside pipelines/ "
                                    "(or $CAMCORR_PLUGINS)", received=str(plugins),
                           fix="Use --runner engine, or set CAMCORR_PLUGINS")
    import importlib.util

    if importlib.util.find_spec("cellprofiler") is None or \
            importlib.util.find_spec("cellprofiler_core") is None:
        raise CamcorrError("CellProfiler is not installed in this Python", argument="--runner",
                           expected="the 'cellprofiler' extra (cellprofiler-core and the "
                                    "cellprofiler package, as 'make demo' installs them)",
                           received=sys.executable,
                           fix="Run 'make demo' (it installs CellProfiler into .venv), or use "
                               "--runner engine")
    return {"pipeline": pipeline, "plugins": plugins, "preferences": _preferences_file(pipes)}


def adapt_pipeline(text: str, *, params_name: str, settings_name: str, z_levels=None) -> str:
    """The chained pipeline with this run's parameter file, Settings.txt and z-levels.

    The shipped pipeline names an example parameter file and Settings.txt; the demo's files
    have their own names (ROI and date are part of a FlashParam name), so the names are
    substituted in a copy of the pipeline (the .cppipe is text).
    """
    import re

    text = re.sub(r"FlashParam_sn[^|\n\\/*]*?\.tiff?", params_name, text)
    text = re.sub(r"[A-Za-z0-9_.-]*_Settings\.txt", settings_name, text)
    if z_levels is not None:
        lo, hi = z_levels

        def zsub(m):
            return f"{m.group(1)}{lo}, {hi}"

        text = re.sub(r"((?i:[^\n]*z[- ]?(?:levels|range)[^\n:]*):)[ \t]*-?\d+[ \t]*,[ \t]*-?\d+",
                      zsub, text)
    return text


def run_cellprofiler_chain(sim: Dict[str, Any], params_file: Path, out: Path,
                           cfg: Dict[str, Any], quiet: bool = False) -> Dict[str, Any]:
    """The chained pipeline, headless with CellProfiler and the camcorr plugins.

    ``python -m cellprofiler -c -r -p chain.cppipe -i IN -o OUT --plugins-directory PLUGINS``
    with the headless preferences (TIFF without Bio-Formats), on an input folder holding the
    raw stacks, their Settings.txt and the parameter file.  The log is kept in
    ``OUT/cellprofiler/cellprofiler.log``.
    """
    found = check_cellprofiler()
    cp = out / "cellprofiler"
    inp, res = cp / "input", cp / "output"
    inp.mkdir(parents=True, exist_ok=True)
    res.mkdir(parents=True, exist_ok=True)
    for row in sim["files"]:
        for f in row:
            shutil.copy2(f, inp / f.name)
    settings = out / "raw" / f"{NAME}_Settings.txt"
    shutil.copy2(settings, inp / settings.name)
    shutil.copy2(params_file, inp / params_file.name)
    text = found["pipeline"].read_text()
    pipeline = cp / CHAIN_PIPELINE
    pipeline.write_text(adapt_pipeline(text, params_name=params_file.name,
                                       settings_name=settings.name, z_levels=cfg["z_levels"]))
    cmd = cellprofiler_command(pipeline, inp, res, found["plugins"])
    env = dict(os.environ)
    if found["preferences"] is not None:
        env.setdefault("CAMCORR_CELLPROFILER_PREFERENCES", str(found["preferences"]))
    env.setdefault("OMP_NUM_THREADS", "2")
    log = cp / "cellprofiler.log"
    with open(log, "w") as fh:
        fh.write(" ".join(cmd) + "\n\n")
        fh.flush()
        proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=cp,
                              timeout=1800)
    if proc.returncode != 0:
        tail = "\n".join(log.read_text().splitlines()[-15:])
        raise CamcorrError("the CellProfiler run failed", argument="--runner cellprofiler",
                           expected="exit status 0", received=f"{proc.returncode}; log {log}:\n{tail}",
                           fix="Read the log; --runner engine runs the chain without CellProfiler")
    return collect_cellprofiler_outputs(sim, res, out)


def collect_cellprofiler_outputs(sim: Dict[str, Any], res: Path, out: Path) -> Dict[str, Any]:
    """Find the chain's saved images: corrected stacks, bad-pixel masks, flat-fields."""
    saved = sorted(p for p in res.rglob("*") if p.suffix.lower() in (".tif", ".tiff"))
    masks: Dict[int, np.ndarray] = {}
    flats: Dict[int, np.ndarray] = {}
    corrected_dir = out / "corrected"
    corrected_dir.mkdir(parents=True, exist_ok=True)
    rank = ("flatfield", "corrected", "chain", "median", "flash")
    for row in sim["files"]:
        for c, f in enumerate(row):
            stem = f.stem
            mine = [p for p in saved if p.stem.startswith(stem) and p.stem != stem]
            images = [p for p in mine if not any(k in p.stem.lower() for k in ("mask", "badpix"))]
            if not images:
                raise CamcorrError("CellProfiler saved no corrected image for a stack",
                                   argument="--runner cellprofiler",
                                   expected=f"an image named {stem}*.tif in {res}",
                                   received=", ".join(p.name for p in saved[:6]) or "nothing")
            images.sort(key=lambda p: next((i for i, k in enumerate(rank)
                                            if k in p.stem[len(stem):].lower()), len(rank)))
            shutil.copy2(images[0], corrected_dir / f.name)
            for p in mine:
                if any(k in p.stem.lower() for k in ("mask", "badpix")):
                    m = tifffile.imread(p) > 0
                    m = m.reshape((-1,) + m.shape[-2:]).any(axis=0)
                    masks[c] = masks.get(c, np.zeros(m.shape, bool)) | m
    for p in saved:
        low = p.stem.lower()
        if "flatfield" in low and not any(p.stem.startswith(r.stem) for row in sim["files"]
                                          for r in row):
            arr = tifffile.imread(p).astype(np.float32)
            arr = arr.reshape((-1,) + arr.shape[-2:])[0]
            c = 1 if ("ch1" in low or "642" in low) else (0 if ("ch0" in low or "488" in low) else None)
            for cc in ((c,) if c is not None else (0, 1)):
                flats.setdefault(cc, arr / arr.mean())
    measurements = _cellprofiler_measurements(res)
    stack_masks: List = []
    if not masks:
        # the chain does not save the SelectiveMedian mask: recompute it with the engine on the
        # same flash-corrected stacks (same algorithm and defaults as the plugin); the plugin's
        # own counts (Image.csv) are kept beside it in qc.json for comparison.
        from .. import median

        for row in sim["files"]:
            for c, f in enumerate(row):
                stack = tifffile.imread(out / "stages" / "flash" / f.name)
                m = np.asarray(median.find_bad_pixels(stack).mask, bool)
                masks[c] = masks.get(c, np.zeros(m.shape, bool)) | m
                stack_masks.append((f.name, m))
    return {"masks": masks, "stack_masks": stack_masks, "flat": flats, "profiles": None,
            "saved": [str(p) for p in saved], "measurements": measurements}


def _cellprofiler_measurements(res: Path) -> Dict[str, Any]:
    """The camcorr modules' measurements from the exported Image.csv (one entry per cycle)."""
    import csv

    files = sorted(res.glob("*Image.csv"))
    if not files:
        return {}
    out: Dict[str, Any] = {}
    with open(files[0], newline="") as fh:
        for i, row in enumerate(csv.DictReader(fh)):
            for k, v in row.items():
                if k.split("_")[0] in ("FlashCarryover", "SelectiveMedian", "Flatfield",
                                       "ResidualGain"):
                    try:
                        val = float(v)
                    except (TypeError, ValueError):
                        continue
                    out.setdefault(k, []).append(round(val, 6))
    return {k: (v[0] if len(v) == 1 else v) for k, v in out.items()}


def gain_and_frc(out: Path, sim: Dict[str, Any], quiet: bool = False) -> Dict[str, Any]:
    """Residual gain of the gain-check movie and FRC of its half-set averages before/after."""
    from .. import aposteriori, gain

    movie = tifffile.imread(out / "gain" / "gain_check_movie.tif")
    off = sim["movie_offset"]
    res = gain.estimate_gain(movie, offset=off)
    g = np.asarray(res.gain, np.float32)
    write_tiff(out / "gain" / "gain.tif", g)
    rep = getattr(res, "report", None) or gain.gain_report(g)
    (out / "gain" / "gain_report.json").write_text(json.dumps(_jsonable(rep), indent=2))
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


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist() if obj.size <= 16 else f"array{obj.shape}"
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def write_run_manifest(out: Path, sim: Dict[str, Any], params_file: Path, chain: Dict[str, Any],
                       cfg: Dict[str, Any], runner: str, timings: Dict[str, float]) -> None:
    """The run manifest the report reads (see :mod:`camcorr.report.manifest`)."""
    from .manifest import write_manifest

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
    lo, hi = cfg["z_levels"]
    # Mean of the empty planes of channel 1 after the flash stage, and the same divided by the
    # flat-field the runner estimated.  (Not the runner's saved output: the CellProfiler chain
    # subtracts a scalar baseline and saves 16-bit, so near-background pixels are clipped at 0,
    # which biases a background mean.)
    before = np.mean([np.concatenate([s[:lo], s[hi + 1:]]).mean(axis=0)
                      for s in (tifffile.imread(out / "stages" / "flash" / r[1].name)
                                for r in files)], axis=0)
    flat1 = chain["flat"].get(1) if chain.get("flat") else None
    after = before / flat1 if flat1 is not None else before
    write_tiff(out / "flatfield" / "empty_planes_before.tif", before.astype(np.float32))
    write_tiff(out / "flatfield" / "empty_planes_after.tif", after.astype(np.float32))
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
                      "after": "flatfield/empty_planes_after.tif"},
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
def run_demo(out, *, size: str = "small", runner: str = "cellprofiler", seed: int = 7,
             scheduler: Optional[str] = None, quiet: bool = False) -> DemoResult:
    """Run the demo into folder `out`; see the module docstring.

    Raises
    ------
    CamcorrError
        Unknown size or runner; CellProfiler missing for ``runner='cellprofiler'``; a stage of
        the engine missing.
    """
    if size not in SIZES:
        raise CamcorrError("unknown demo size", argument="--size", expected=", ".join(SIZES),
                           received=repr(size))
    if runner not in ("cellprofiler", "engine"):
        raise CamcorrError("unknown runner", argument="--runner",
                           expected="cellprofiler or engine", received=repr(runner))
    avail = stage_availability()
    missing = [s for s, ok in avail.items() if not ok]
    if missing:
        raise CamcorrError("the engine in this build lacks stages the demo needs",
                           argument="camcorr demo", expected="every engine stage",
                           received="missing: " + ", ".join(missing),
                           fix="Update camcorr (the stages are being written)")
    if runner == "cellprofiler":
        check_cellprofiler()  # fail before minutes of work, with a clear message
    cfg = dict(SIZES[size], name=size)
    out = Path(out).resolve()  # CellProfiler runs in another folder: absolute paths only
    for sub in ("calibration", "raw", "corrected", "stages", "median", "flatfield", "gain", "frc",
                "truth", "report", "cellprofiler"):
        if (out / sub).exists():
            shutil.rmtree(out / sub)
    out.mkdir(parents=True, exist_ok=True)
    timings: Dict[str, float] = {}
    t0 = time.perf_counter()
    _say(f"[1/5] simulating a lattice light-sheet acquisition ({size}) in {out} ...", quiet)
    sim = simulate(out, size, seed, quiet)
    timings["simulate"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    _say("[2/5] calibrating the camera's carryover from the calibration folder ...", quiet)
    params_file = calibrate(out / "calibration", quiet, scheduler)
    timings["calibrate"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    _say(f"[3/5] correcting: flash -> selective median -> flat-field ({runner}) ...", quiet)
    flashed = flash_stage(sim, params_file, out, cfg)
    if runner == "cellprofiler":
        chain = run_cellprofiler_chain(sim, params_file, out, cfg, quiet)
    else:
        chain = run_engine_chain(sim, flashed, out, cfg, quiet)
    del flashed
    timings["correct"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    _say("[4/5] estimating the residual gain and the Fourier ring correlation ...", quiet)
    gain_and_frc(out, sim, quiet)
    timings["gain_frc"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    _say("[5/5] writing the report ...", quiet)
    write_run_manifest(out, sim, params_file, chain, cfg, runner, timings)
    from .report import build_report

    rep = build_report(out)
    timings["report"] = time.perf_counter() - t0
    return DemoResult(out=out, report=rep.index, qc=rep.qc, timings=timings, runner=runner)


def run_cli(values: Dict) -> int:
    """Runner of ``camcorr demo``."""
    missing = [s for s, ok in stage_availability().items() if not ok]
    if missing:
        print("camcorr demo: these stages of the engine are not available in this build yet: "
              + ", ".join(missing) + ". Nothing was run.", file=sys.stderr)
        return 0
    res = run_demo(values["out"], size=values.get("size") or "small",
                   runner=values.get("runner") or "cellprofiler", seed=values.get("seed") or 7,
                   scheduler=values.get("scheduler"))
    checks = res.qc.get("checks", [])
    print()
    print(f"Done in {sum(res.timings.values()):.0f} s. Open the report:")
    print(f"  {res.report.resolve()}")
    print(f"Corrected stacks: {(res.out / 'corrected').resolve()}")
    if checks:
        ok = sum(c["pass"] for c in checks)
        print(f"Checks against the simulator's truth: {ok} of {len(checks)} pass")
        for c in checks:
            print(f"  [{'pass' if c['pass'] else 'FAIL'}] {c['name']}: {c['value']} (target {c['target']})")
    if values.get("open_browser"):
        import webbrowser

        webbrowser.open(res.report.resolve().as_uri())
    return 0
