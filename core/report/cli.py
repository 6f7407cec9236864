"""Command-line runner of ``camcorr report``."""
from __future__ import annotations

from typing import Any, Dict

from ..operations import RunResult
from .report import build_report

__all__ = ["run_report"]


def run_report(values: Dict[str, Any]) -> RunResult:
    """Runner of ``camcorr report``."""
    result = RunResult()
    res = build_report(values["run_dir"], values.get("output"), pixel=values.get("pixel"))
    result.outputs.append(str(res.index))
    result.numbers.update(checks=res.qc.get("checks", []))
    result.say(f"Report written: {res.index.resolve()}")
    if res.missing:
        result.say("Not in this run: " + ", ".join(res.missing))
    failed = [c["name"] for c in res.qc.get("checks", []) if not c["pass"]]
    if failed:
        result.say("Checks against the truth that failed: " + "; ".join(failed))
    return result
