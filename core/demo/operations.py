"""Operation definition of ``camcorr demo`` (command line only)."""
from __future__ import annotations

from ..operations import Operation, Param
from ..parallel.options import SCHEDULER_PARAM
from .run import LIMITS
from .simulation import SIZES

__all__ = ["OPERATIONS", "DEMO"]

_CLI = ("cli",)

DEMO = Operation(
    name="demo",
    title="Demo",
    command=("demo",),
    summary="Simulate a lattice light-sheet acquisition, correct it end to end and write a report.",
    description="""
        Builds a small realistic simulated lattice light-sheet acquisition (Flash4.0 carryover,
        hot and noisy pixels, a drifted camera gain and uneven illumination, all with known
        ground truth), calibrates the camera from a simulated calibration folder, runs the
        chained example pipeline (flash carryover -> selective median -> flat-field) headless
        with CellProfiler and our plugins, estimates the residual gain and the Fourier ring
        correlation with the engine, and writes a report folder (HTML page, PNG figures,
        qc.json) comparing every number with the simulator's truth.

        Open OUT/report/index.html in a browser when it finishes.  'camcorr report OUT' rebuilds
        the page from the run's files.
        """,
    params=(
        Param("out", "output_folder", default="demo_output", label="Output folder", cli="--out",
              short="-o", metavar="DIR",
              help="Folder for the simulated data, the corrected images and the report. "
                   "Created if needed; files of an earlier demo in it are replaced.",
              frontends=_CLI),
        Param("size", "choice", default="small", choices=tuple(SIZES), cli="--size",
              label="Size",
              help="'small' (the default, a few minutes on 2 cores) or 'tiny' (seconds; used by "
                   "the tests).", frontends=_CLI),
        Param("runner", "choice", default="cellprofiler", choices=("cellprofiler", "engine"),
              cli="--runner", label="Pipeline runner",
              help="'cellprofiler' runs pipelines/chain_flash_median_flatfield.cppipe headless "
                   "with CellProfiler and the camcorr plugins (needs the 'cellprofiler' extra); "
                   "'engine' runs the same chain with the camcorr engine directly (no "
                   "CellProfiler).", frontends=_CLI),
        Param("pipelines", "folder", default=None, cli="--pipelines", label="Pipelines folder",
              metavar="DIR",
              help="Folder of the example pipelines for the 'cellprofiler' runner (the "
                   "checkout's pipelines/; its cellprofiler_plugins/ beside it). Default: "
                   "$CAMCORR_PIPELINES, else pipelines/ in the current folder.",
              frontends=_CLI),
        Param("seed", "int", default=7, limits=LIMITS["seed"], cli="--seed", label="Random seed",
              help="Seed of the simulator, so every run gives the same data.", frontends=_CLI),
        SCHEDULER_PARAM,
        Param("open_browser", "bool", default=False, cli="--open", label="Open the report",
              help="Open the report in the default web browser at the end.", frontends=_CLI,
              engine_arg=None),
    ),
    runner="camcorr.demo.cli:run_demo",
    engine=("camcorr.demo.run:run_demo",),
    frontends=_CLI,
    epilog="Example: camcorr demo --out demo_output   (then open demo_output/report/index.html)",
)

OPERATIONS = [DEMO]
