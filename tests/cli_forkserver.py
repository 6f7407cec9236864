"""Run many ``camcorr`` command lines cheaply: import once, fork one child per command line.

Started as ``python tests/cli_forkserver.py N`` (N children at a time).  Reads JSON lines
``{"id": ..., "argv": [...], "cwd": ..., "stdout": path, "stderr": path, "env": {...}}`` on
stdin and writes ``{"id": ..., "status": int}`` lines on stdout as children finish.

Each child is a real process running :func:`camcorr.cli.main` exactly as the ``camcorr``
console script does (fresh file descriptors, its own signal handlers, exit status through
``os._exit``); only the imports are shared, so 150+ command lines take seconds, not minutes.
The server imports camcorr and every runner module but runs no kernel before forking.
"""
from __future__ import annotations

import json
import os
import sys


def _child(case) -> int:
    os.chdir(case["cwd"])
    for k, v in (case.get("env") or {}).items():
        os.environ[k] = v
    out = os.open(case["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    err = os.open(case["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(out, 1)
    os.dup2(err, 2)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    sys.stdout = open(1, "w", closefd=False)
    sys.stderr = open(2, "w", closefd=False)
    sys.argv = ["camcorr"] + list(case["argv"])
    from camcorr.cli import main

    try:
        status = main(case["argv"])
    except SystemExit as exc:  # argparse usage errors, --help
        status = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    except BaseException:  # what the console script would show: an uncaught traceback
        import traceback

        traceback.print_exc()
        status = 1
    sys.stdout.flush()
    sys.stderr.flush()
    return int(status or 0)


def serve(parallel: int) -> None:
    from camcorr.cli import build_parser
    from camcorr.operations import all_operations

    build_parser()
    for op in all_operations().values():
        if "cli" in op.frontends and op.runner:
            try:
                op.load_runner()
            except Exception:
                pass
    running = {}
    lines = iter(sys.stdin.readline, "")

    def reap(block: bool):
        pid, status = os.waitpid(-1, 0 if block else os.WNOHANG)
        if pid:
            case_id = running.pop(pid)
            code = os.waitstatus_to_exitcode(status)
            sys.stdout.write(json.dumps({"id": case_id, "status": code}) + "\n")
            sys.stdout.flush()

    for line in lines:
        if not line.strip():
            continue
        case = json.loads(line)
        while len(running) >= parallel:
            reap(True)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            try:
                code = _child(case)
            finally:
                pass
            os._exit(code)
        running[pid] = case["id"]
    while running:
        reap(True)


if __name__ == "__main__":
    serve(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
