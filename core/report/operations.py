"""Command-line-only operations of :mod:`camcorr.report`: ``camcorr demo`` and ``camcorr report``."""
from __future__ import annotations

from ..operations import Operation, Param
from ..parallel.options import SCHEDULER_PARAM

__all__ = ["OPERATIONS", "DEMO", "REPORT"]

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
        Param("size", "choice", default="small", choices=("small", "tiny"), cli="--size",
              label="Size",
              help="'small' (the default, a few minutes on 2 cores) or 'tiny' (seconds; used by "
                   "the tests).", frontends=_CLI),
        Param("runner", "choice", default="cellprofiler", choices=("cellprofiler", "engine"),
              cli="--runner", label="Pipeline runner",
              help="'cellprofiler' runs pipelines/chain_flash_median_flatfield.cppipe headless "
                   "with CellProfiler and the camcorr plugins (needs the 'cellprofiler' extra); "
                   "'engine' runs the same chain with the camcorr engine directly (no "
                   "CellProfiler).", frontends=_CLI),
        Param("seed", "int", default=7, minval=0, cli="--seed", label="Random seed",
              help="Seed of the simulator, so every run gives the same data.", frontends=_CLI),
        SCHEDULER_PARAM,
        Param("open_browser", "bool", default=False, cli="--open", label="Open the report",
              help="Open the report in the default web browser at the end.", frontends=_CLI),
    ),
    runner="camcorr.report.demo:run_cli",
    frontends=_CLI,
    epilog="Example: camcorr demo --out demo_output   (then open demo_output/report/index.html)",
)

REPORT = Operation(
    name="report",
    title="Report",
    command=("report",),
    summary="Write the quality report (HTML, PNG figures, qc.json) of a correction run.",
    description="""
        RUN_DIR is a folder holding a run manifest, camcorr_run.json (written by 'camcorr demo'
        and described in the README section 'Quality report'), which lists the run's files:
        flash calibration folder and parameter file, raw and corrected stacks, bad-pixel mask,
        gain image and report, FRC curves, flat-field profiles and images before/after.  Any
        subset works: the page shows what the run has and says what it lacks.  Without a
        manifest, known file names in RUN_DIR are picked up (FlashParam_*.tif, profiles.npz,
        gain.tif, gain_report.json, frc.json, *mask*.tif).
        """,
    params=(
        Param("run_dir", "folder", required=True, label="Run folder", metavar="RUN_DIR",
              help="Folder of the run (with camcorr_run.json).", frontends=_CLI),
        Param("output", "output_folder", default=None, cli="--output", short="-o",
              label="Report folder", metavar="REPORT_DIR",
              help="Where to write index.html, the PNG figures and qc.json. "
                   "Default: RUN_DIR/report.", frontends=_CLI),
        Param("pixel", "int_pair", default=None, cli="--pixel", label="Pixel (row col)",
              metavar=("ROW", "COL"),
              help="Pixel whose carryover calibration data is plotted; default: the pixel with "
                   "the largest fitted carryover amplitude.", frontends=_CLI),
    ),
    runner="camcorr.report.report:run_cli",
    frontends=_CLI,
    epilog="Example: camcorr report demo_output -o demo_output/report",
)

OPERATIONS = [DEMO, REPORT]
