"""Command-line runner of ``camcorr demo``."""
from __future__ import annotations

from typing import Dict

from ..operations import RunResult
from .run import run_demo as _run_demo, stage_availability

__all__ = ["run_demo"]


def run_demo(values: Dict) -> RunResult:
    """Runner of ``camcorr demo``."""
    result = RunResult()
    missing = [s for s, ok in stage_availability().items() if not ok]
    if missing:
        result.note("camcorr demo: these stages of the engine are not available in this build "
                    "yet: " + ", ".join(missing) + ". Nothing was run.")
        return result
    res = _run_demo(values["out"], size=values["size"], runner=values["runner"],
                    seed=values["seed"], scheduler=values.get("scheduler"),
                    pipelines=values.get("pipelines"))
    checks = res.qc.get("checks", [])
    result.outputs.append(str(res.report))
    result.numbers["timings"] = dict(res.timings)
    result.say("")
    result.say(f"Done in {sum(res.timings.values()):.0f} s. Open the report:")
    result.say(f"  {res.report.resolve()}")
    result.say(f"Corrected stacks: {(res.out / 'corrected').resolve()}")
    if checks:
        ok = sum(c["pass"] for c in checks)
        result.say(f"Checks against the simulator's truth: {ok} of {len(checks)} pass")
        for c in checks:
            result.say(f"  [{'pass' if c['pass'] else 'FAIL'}] {c['name']}: {c['value']} (target {c['target']})")
    if values.get("open_browser"):
        import webbrowser

        webbrowser.open(res.report.resolve().as_uri())
    return result
