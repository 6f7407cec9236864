"""Quality report of a correction run: HTML page, PNG figures and a JSON of every QC number.

* :func:`build_report` (run folder -> ``index.html``, ``*.png``, ``qc.json``); the run folder is
  described by its manifest ``camcorr_run.json`` (:mod:`camcorr.report.manifest`).
* :func:`run_demo` (``camcorr demo``): a simulated lattice light-sheet acquisition corrected end
  to end, with its report.
"""
from .manifest import MANIFEST_NAME, read_manifest, update_manifest, write_manifest
from .report import ReportResult, build_report, truth_checks
from .demo import DemoResult, run_demo

__all__ = ["build_report", "ReportResult", "truth_checks", "read_manifest", "write_manifest",
           "update_manifest", "MANIFEST_NAME", "run_demo", "DemoResult"]
