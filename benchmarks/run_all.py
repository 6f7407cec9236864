"""Run every benchmark at its documented size in one go, check it, and regenerate the table.

    .venv/bin/python benchmarks/run_all.py             # full sizes (see benchmarks/README.md)
    .venv/bin/python benchmarks/run_all.py --quick     # small sizes: does everything still run?

From the repository root, unattended.  Steps:

1. prepare the peer tools once (``benchmarks/llspy_env.sh`` builds LLSpy 0.5.1's own virtual
   environment the first time; its build time is not part of any benchmark);
2. run each benchmark (:data:`BENCHMARKS`) in its own process, in order, its output written to
   ``RESULTS/logs/NAME.log`` and echoed; record its wall time, exit status and the machine's
   load average before and after;
3. check it: exit status 0 and a JSON file written by this run that parses (each benchmark checks
   its own outputs and exit statuses before timing and exits non-zero if one is wrong);
4. write ``RESULTS/run_all.json`` (the run: mode, start, durations, loads, failures) and run
   ``benchmarks/make_table.py``, which merges the JSON files into ``benchmarks/last_run.json``
   and rewrites the one table of benchmarks/README.md (``--no-table``: leave them alone).

A failing benchmark does not stop the others (its row says FAILED and the exit status is 1).
``--only``/``--skip`` take benchmark names (comma separated); ``--no-stream`` skips the 3.2 GB
file-to-file benchmark (about a third of the full run); ``--results DIR`` writes the JSON files
and logs elsewhere (then the README is only updated with ``--table``).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HERE = ROOT / "benchmarks"
RESULTS = HERE / "results"

#: (name, arguments at full size, arguments with --quick).  Order: the cold-start benchmark first
#: (it uses its own fresh clone, so the others' caches do not matter), the long file-to-file one
#: last.
BENCHMARKS = [
    ("bench_coldstart", [], ["--quick"]),
    ("bench_flash", [], ["--quick"]),
    ("bench_median", [], ["--quick"]),
    ("bench_median_recall", [], ["--quick"]),
    ("bench_gain", [], ["--quick"]),
    ("bench_flatfield", ["--repeat", "2"], ["--quick"]),
    ("bench_cp_illumination", [], []),
    ("bench_dask", [], ["--quick"]),
    ("bench_stream", [], ["--planes", "48", "--size", "256"]),
]
#: Benchmarks whose JSON is not written by benchmarks/_common.save (given with --json FILE).
JSON_FLAG = {"bench_median_recall", "bench_cp_illumination"}


def _load():
    return [round(v, 2) for v in os.getloadavg()]


def _now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def run_one(name: str, extra, results: Path, log_dir: Path) -> dict:
    """Run one benchmark, tee its output to a log, check exit status and JSON."""
    out_json = results / f"{name}.json"
    if out_json.exists():
        out_json.unlink()   # a stale file must not pass for this run's output
    cmd = [sys.executable, str(HERE / f"{name}.py"), *extra, "--json", str(out_json)]
    log = log_dir / f"{name}.log"
    rec = {"command": " ".join([".venv/bin/python" if c == sys.executable else c for c in cmd]),
           "started_utc": _now(), "load_before": _load()}
    print(f"\n=== {name}: {rec['command']}  (load {rec['load_before'][0]:.1f})", flush=True)
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, bufsize=1)
        for line in proc.stdout:
            fh.write(line)
            sys.stdout.write("    " + line)
        rc = proc.wait()
    rec.update(seconds=round(time.perf_counter() - t0, 1), exit_status=rc, load_after=_load(),
               log=str(log.relative_to(ROOT) if log.is_relative_to(ROOT) else log))
    problem = None
    if rc != 0:
        problem = f"exit status {rc}"
    elif not out_json.is_file():
        problem = f"no results file {out_json.name}"
    else:
        try:
            data = json.loads(out_json.read_text())
        except ValueError as exc:
            problem = f"unreadable results file ({exc})"
        else:   # benchmarks that do not record it themselves: the load and date of this run
            if isinstance(data, dict) and "load_end" not in data:
                data.update(load_end=rec["load_after"], date_utc=rec["started_utc"][:16],
                            cpus=os.cpu_count())
                out_json.write_text(json.dumps(data, indent=2))
    rec["ok"] = problem is None
    if problem:
        rec["problem"] = problem
    print(f"=== {name}: {'ok' if rec['ok'] else 'FAILED: ' + problem} in {rec['seconds']:.0f} s "
          f"(load {rec['load_after'][0]:.1f})", flush=True)
    return rec


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes of every benchmark")
    ap.add_argument("--only", default="", help="comma-separated benchmark names to run")
    ap.add_argument("--skip", default="", help="comma-separated benchmark names to leave out")
    ap.add_argument("--no-stream", action="store_true",
                    help="leave out bench_stream (3.2 GB file to file, ~10 GB of disk)")
    ap.add_argument("--results", type=Path, default=RESULTS,
                    help="folder for the JSON files and logs (default benchmarks/results)")
    table = ap.add_mutually_exclusive_group()
    table.add_argument("--no-table", action="store_true",
                       help="do not touch benchmarks/README.md and last_run.json")
    table.add_argument("--table", action="store_true",
                       help="update the README table even with --results elsewhere")
    args = ap.parse_args(argv)

    known = [n for n, _, _ in BENCHMARKS]
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    skip = [s.strip() for s in args.skip.split(",") if s.strip()]
    if args.no_stream:
        skip.append("bench_stream")
    for n in only + skip:
        if n not in known:
            print(f"run_all: unknown benchmark {n!r}; known: {', '.join(known)}", file=sys.stderr)
            return 2
    todo = [(n, q if args.quick else f) for n, f, q in BENCHMARKS
            if (not only or n in only) and n not in skip]

    results = args.results.resolve()
    log_dir = results / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    run = {"mode": "quick" if args.quick else "full", "started_utc": _now(),
           "load_start": _load(), "cpus": os.cpu_count(), "python": sys.executable,
           "benchmarks": {}}
    previous_file = results / "run_all.json"
    if (only or skip) and previous_file.is_file():
        # a partial run (--only/--skip/--no-stream) adds to the last run of the same mode: the
        # benchmarks it leaves out keep their entries (each with its own start time)
        try:
            previous = json.loads(previous_file.read_text())
        except ValueError:
            previous = {}
        if previous.get("mode") == run["mode"]:
            run["benchmarks"] = {n: r for n, r in previous.get("benchmarks", {}).items()
                                 if n not in dict(todo)}
            run["started_utc"] = previous.get("started_utc", run["started_utc"])
            run["load_start"] = previous.get("load_start", run["load_start"])
    t_start = time.perf_counter()

    print(f"run_all ({run['mode']}): {', '.join(n for n, _ in todo)}; load {run['load_start']}")
    t0 = time.perf_counter()
    env_ok = subprocess.run(["bash", str(HERE / "llspy_env.sh")], cwd=ROOT, capture_output=True,
                            text=True)
    run["llspy_env"] = {"seconds": round(time.perf_counter() - t0, 1),
                        "ok": env_ok.returncode == 0}
    if env_ok.returncode != 0:
        print("LLSpy environment could not be built (LLSpy figures will be missing):\n"
              + env_ok.stderr[-1500:], file=sys.stderr)

    for name, extra in todo:
        run["benchmarks"][name] = run_one(name, extra, results, log_dir)
        run["total_seconds"] = round(sum(r["seconds"] for r in run["benchmarks"].values()), 1)
        (results / "run_all.json").write_text(json.dumps(run, indent=1))

    run["finished_utc"] = _now()
    run["load_end"] = _load()
    run["total_seconds"] = round(sum(r["seconds"] for r in run["benchmarks"].values()), 1)
    (results / "run_all.json").write_text(json.dumps(run, indent=1))
    failed = [n for n, r in run["benchmarks"].items() if not r["ok"]]

    print(f"\nrun_all ({run['mode']}) finished in {(time.perf_counter() - t_start) / 60:.1f} min "
          f"(benchmarks in the table: {run['total_seconds'] / 60:.1f} min); "
          f"load {run['load_end']}")
    for n, r in run["benchmarks"].items():
        print(f"  {n:<22s} {r['seconds']:7.0f} s  load {r['load_before'][0]:4.1f} -> "
              f"{r['load_after'][0]:4.1f}  {'ok' if r['ok'] else 'FAILED: ' + r['problem']}")
    if not args.no_table and (args.table or results == RESULTS.resolve()):
        subprocess.run([sys.executable, str(HERE / "make_table.py"), "--results", str(results)],
                       cwd=ROOT, check=True)
    elif not args.no_table:
        subprocess.run([sys.executable, str(HERE / "make_table.py"), "--results", str(results),
                        "--print-only"], cwd=ROOT, check=True)
    if failed:
        print(f"FAILED: {', '.join(failed)} (logs in {log_dir})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
