"""Command-line-only operation of :mod:`camcorr.report`: ``camcorr report``."""
from __future__ import annotations

from ..operations import Operation, Param

__all__ = ["OPERATIONS", "REPORT"]

_CLI = ("cli",)

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
    runner="camcorr.report.cli:run_report",
    engine=("camcorr.report.report:build_report",),
    frontends=_CLI,
    epilog="Example: camcorr report demo_output -o demo_output/report",
)

OPERATIONS = [REPORT]
