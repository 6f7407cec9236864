"""Command-line runner of ``camcorr demo``."""
from __future__ import annotations

import sys
from typing import Dict

from .run import run_demo as _run_demo, stage_availability

__all__ = ["run_demo"]


def run_demo(values: Dict) -> int:
    """Runner of ``camcorr demo``."""
    missing = [s for s, ok in stage_availability().items() if not ok]
    if missing:
        print("camcorr demo: these stages of the engine are not available in this build yet: "
              + ", ".join(missing) + ". Nothing was run.", file=sys.stderr)
        return 0
    res = _run_demo(values["out"], size=values["size"], runner=values["runner"],
                    seed=values["seed"], scheduler=values.get("scheduler"))
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
