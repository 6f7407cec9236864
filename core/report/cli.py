"""Command-line runner of ``camcorr report``."""
from __future__ import annotations

from typing import Any, Dict

from .report import build_report

__all__ = ["run_report"]


def run_report(values: Dict[str, Any]) -> int:
    """Runner of ``camcorr report``."""
    res = build_report(values["run_dir"], values.get("output"), pixel=values.get("pixel"))
    print(f"Report written: {res.index.resolve()}")
    if res.missing:
        print("Not in this run: " + ", ".join(res.missing))
    failed = [c["name"] for c in res.qc.get("checks", []) if not c["pass"]]
    if failed:
        print("Checks against the truth that failed: " + "; ".join(failed))
    return 0
