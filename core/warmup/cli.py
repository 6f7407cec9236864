"""Command-line runner of ``camcorr warmup``."""
from __future__ import annotations

import sys
import time
from typing import Dict

from ..operations import RunResult
from . import warmup

__all__ = ["run_warmup"]


def run_warmup(values: Dict) -> RunResult:
    """Runner of ``camcorr warmup``: compile (or load) the kernels, one progress line per step.

    The per-step lines go to standard error as they happen (a cold warm-up takes tens of
    seconds); the summary and the seconds per step come back in the result.
    """
    only = values.get("only")
    steps = [s.strip() for s in only.split(",") if s.strip()] if only else None
    t0 = time.perf_counter()
    times = warmup(steps, report=lambda line: print(line, file=sys.stderr, flush=True))
    result = RunResult()
    result.numbers["seconds"] = dict(times)
    result.say(f"camcorr warmup: done in {time.perf_counter() - t0:.1f} s")
    return result
