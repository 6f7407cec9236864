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
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from ..errors import CamcorrError, Limits
from .cellprofiler import check_cellprofiler, run_cellprofiler_chain
from .simulation import SIZES, simulate
from .stages import calibrate, flash_stage, gain_and_frc, run_engine_chain, write_run_manifest

__all__ = ["run_demo", "DemoResult", "stage_availability", "LIMITS"]

#: Allowed simulator seed (numpy generators take non-negative seeds).
LIMITS = {"seed": Limits(low=0)}


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

# --------------------------------------------------------------------------- main
def run_demo(out, *, size: str = "small", runner: str = "cellprofiler", seed: int = 7,
             scheduler: Optional[str] = None, quiet: bool = False,
             pipelines=None) -> DemoResult:
    """Run the demo into folder `out`; see the module docstring.

    `pipelines` is the folder of the example pipelines for ``runner='cellprofiler'``
    (default: ``$CAMCORR_PIPELINES``, else ``pipelines/`` in the current folder).

    Raises
    ------
    CamcorrError
        Unknown size or runner; CellProfiler missing for ``runner='cellprofiler'``; a stage of
        the engine missing.
    """
    LIMITS["seed"].check(seed, "--seed")
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
        check_cellprofiler(pipelines)  # fail before minutes of work, with a clear message
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
        chain = run_cellprofiler_chain(sim, params_file, out, cfg, quiet, pipelines=pipelines)
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
    from ..report import build_report

    rep = build_report(out)
    timings["report"] = time.perf_counter() - t0
    return DemoResult(out=out, report=rep.index, qc=rep.qc, timings=timings, runner=runner)


