"""Quality report of a correction run: HTML page, PNG figures and a JSON of every QC number.

* :func:`build_report` (run folder -> ``index.html``, ``*.png``, ``qc.json``); the run folder is
  described by its manifest ``camcorr_run.json`` (:mod:`camcorr.report.manifest`).

``camcorr demo`` (a simulated acquisition corrected end to end, with its report) lives in
:mod:`camcorr.demo`.
"""
from .manifest import MANIFEST_NAME, read_manifest, update_manifest, write_manifest
from .report import ReportResult, build_report, truth_checks

__all__ = ["build_report", "ReportResult", "truth_checks", "read_manifest", "write_manifest",
           "update_manifest", "MANIFEST_NAME"]
