"""Helpers shared by the benchmarks: checked runs, cold/warm timing, load, results JSON.

Rules every benchmark follows (benchmarks/README.md):

* a run that fails (non-zero exit, exception, output missing or wrong) stops the benchmark
  before any figure is printed: :func:`run_checked`, :func:`cli_checked`;
* every kernel variant that is timed is called once before timing (warm), and the first call
  is reported too (cold): :func:`cold_warm`;
* the machine's load average is stored with every figure (:func:`load`);
* results go to ``benchmarks/results/<name>.json`` (:func:`save`), from which
  ``benchmarks/make_table.py`` writes the one table of benchmarks/README.md.
"""
from __future__ import annotations

import contextlib
import datetime
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Sequence

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def load() -> List[float]:
    """1, 5 and 15 minute load averages."""
    return [round(v, 2) for v in os.getloadavg()]


def cold_warm(fn: Callable[[], object], n: int) -> Dict[str, float]:
    """Seconds of the first call (cold: JIT compilation or cache loading included) and the best
    of `n` further calls (warm)."""
    t0 = time.perf_counter()
    fn()
    cold = time.perf_counter() - t0
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return {"cold_s": cold, "warm_s": min(ts), "n": n}


def best(fn: Callable[[], object], n: int) -> float:
    """Best of `n` calls, seconds (the caller has warmed `fn`)."""
    return cold_warm(fn, n)["warm_s"] if n > 0 else float("nan")


def run_checked(cmd: Sequence[str], **kwargs) -> subprocess.CompletedProcess:
    """Run a command; raise with its stderr if it exits non-zero."""
    res = subprocess.run(list(map(str, cmd)), capture_output=True, text=True, **kwargs)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd[:4]))} ... exited {res.returncode}:\n"
                           f"{res.stderr[-3000:]}")
    return res


def cli_checked(args: Sequence[str]) -> None:
    """Run ``camcorr ARGS`` in this process (output discarded); raise unless it returns 0."""
    from camcorr.cli import main

    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        rc = main(list(map(str, args)))
    if rc != 0:
        raise RuntimeError(f"camcorr {' '.join(map(str, args[:3]))} ... returned {rc}:\n"
                           f"{err.getvalue()[-3000:]}")


def cli_cold(args: Sequence[str]) -> float:
    """Wall seconds of ``python -m camcorr ARGS`` in a fresh process (start-up and kernel
    loading included), checked."""
    t0 = time.perf_counter()
    run_checked([sys.executable, "-m", "camcorr", *args])
    return time.perf_counter() - t0


def save(name: str, results: dict, path: Path = None) -> Path:
    """Write ``results`` (plus date and load) to benchmarks/results/NAME.json (or `path`)."""
    out = Path(path) if path else RESULTS / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    results = dict(results)
    results.setdefault("date_utc", datetime.datetime.now(datetime.timezone.utc)
                       .strftime("%Y-%m-%d %H:%M"))
    results.setdefault("load_end", load())
    results.setdefault("cpus", os.cpu_count())
    out.write_text(json.dumps(results, indent=2, default=str))
    print(f"results: {out}")
    return out
