"""First-run times of the command line from a fresh clone: cold numba cache, then after warm-up.

What it measures
----------------
A user who clones the repository and runs ``make test`` / ``make demo`` gets ``camcorr warmup``
as part of the set-up; one who installs by hand and skips it pays numba's compilation on the
first run of every command.  This benchmark reproduces both, in fresh processes:

1. ``git clone`` of the repository's committed HEAD into a scratch folder (no ``__pycache__``,
   no numba cache: numba keys its cache by source path), imported through a path entry that
   maps ``camcorr`` to the clone's ``core/`` (the way ``setup.cfg`` maps it);
2. **cold**: each command once on tiny files (`camcorr median`, `camcorr flash correct`,
   `camcorr gain estimate`, `camcorr flatfield estimate` + `apply`), wall time of the process;
3. ``camcorr warmup`` (timed: the set-up cost ``make test`` pays once);
4. **warm**: the same commands again in fresh processes (first run after the warm-up, then the
   best of two more), and ``camcorr --version`` (interpreter start + imports only).

Every command's exit status is checked and its output file must exist.  Printed: one row per
command (cold, warm first run, warm best, cold - warm), the warm-up time; saved to
``benchmarks/results/bench_coldstart.json`` (``--json`` elsewhere).  ``--no-clone`` uses the
working tree itself with empty ``NUMBA_CACHE_DIR`` / ``PYTHONPYCACHEPREFIX`` folders instead
(uncommitted changes included).

Run from the repository root:  .venv/bin/python benchmarks/bench_coldstart.py
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from _common import load, save  # noqa: E402


def make_inputs(d: Path) -> None:
    """Tiny input files of every command (uint16, as cameras write them)."""
    from camcorr.simulate.samples import write_cli_samples

    write_cli_samples(d)


def commands(d: Path):
    """(name, argv after 'camcorr', output that must exist)."""
    tiles = [str(d / f"tile_{i + 1}.tif") for i in range(6)]
    return [
        ("median", ["median", str(d / "stack.tif"), "-o", str(d / "out" / "clean.tif")],
         d / "out" / "clean.tif"),
        ("flash correct", ["flash", "correct", str(d / "stack.tif"), "-p", str(d / "params.tif"),
                           "-o", str(d / "out" / "flash")], d / "out" / "flash"),
        ("gain estimate", ["gain", "estimate", str(d / "movie.tif"), "-o",
                           str(d / "out" / "gain.tif")], d / "out" / "gain.tif"),
        ("flatfield estimate", ["flatfield", "estimate", *tiles, "--method", "empty-tiles",
                                "--empty-tiles", "1-6", "--offset", "100", "-o",
                                str(d / "out" / "profiles.npz")], d / "out" / "profiles.npz"),
        ("flatfield apply", ["flatfield", "apply", tiles[0], "--profiles",
                             str(d / "out" / "profiles.npz"), "-o", str(d / "out" / "flat")],
         d / "out" / "flat"),
    ]


def run(argv, env, out: Path = None) -> float:
    """Wall seconds of ``python -m camcorr ARGV`` in a fresh process; raise if it fails."""
    if out is not None and out.exists():
        shutil.rmtree(out) if out.is_dir() else out.unlink()
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "camcorr", *argv], env=env, capture_output=True,
                         text=True, cwd=env["CAMCORR_BENCH_CWD"])
    dt = time.perf_counter() - t0
    if res.returncode != 0:
        raise RuntimeError(f"camcorr {' '.join(argv[:2])} exited {res.returncode}:\n"
                           f"{res.stderr[-3000:]}")
    if out is not None and not out.exists():
        raise RuntimeError(f"camcorr {' '.join(argv[:2])} wrote no {out}")
    return dt


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--no-clone", action="store_true",
                    help="use this working tree with empty numba/bytecode cache folders")
    ap.add_argument("--quick", action="store_true", help="accepted for run_all (same sizes)")
    ap.add_argument("--json", type=Path, default=None, help="write the results here")
    args = ap.parse_args(argv)

    scratch = Path(tempfile.mkdtemp(prefix="camcorr_coldstart_"))
    try:
        env = dict(os.environ)
        env.pop("NUMBA_CACHE_DIR", None)
        if args.no_clone:
            source = "working tree, empty NUMBA_CACHE_DIR and PYTHONPYCACHEPREFIX"
            env["NUMBA_CACHE_DIR"] = str(scratch / "numba_cache")
            env["PYTHONPYCACHEPREFIX"] = str(scratch / "pycache")
            core = ROOT / "core"
            path_dir = scratch / "path"
            path_dir.mkdir()
            (path_dir / "camcorr").symlink_to(core)
            (path_dir / "fiji_bridge").symlink_to(ROOT / "fiji_bridge")
        else:
            clone = scratch / "clone"
            subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(ROOT), str(clone)],
                           check=True)
            head = subprocess.run(["git", "-C", str(clone), "rev-parse", "--short", "HEAD"],
                                  capture_output=True, text=True, check=True).stdout.strip()
            source = f"fresh clone of commit {head}"
            path_dir = scratch / "path"
            path_dir.mkdir()
            (path_dir / "camcorr").symlink_to(clone / "core")
            (path_dir / "fiji_bridge").symlink_to(clone / "fiji_bridge")
            core = clone / "core"
        env["PYTHONPATH"] = str(path_dir)
        data = scratch / "data"
        data.mkdir()
        (data / "out").mkdir()
        env["CAMCORR_BENCH_CWD"] = str(data)
        check = subprocess.run([sys.executable, "-c", "import camcorr; print(camcorr.__file__)"],
                               env=env, capture_output=True, text=True, check=True)
        if not Path(check.stdout.strip()).resolve().is_relative_to(core.resolve()):
            raise RuntimeError(f"camcorr imported from {check.stdout.strip()}, not {core}")
        make_inputs(data)
        cmds = commands(data)

        print(f"load average at start: {load()} on {os.cpu_count()} cores; source: {source}")
        results = {"source": source, "load_start": load(), "commands": {}}
        t_version_cold = run(["--version"], env)
        for name, cmd, out in cmds:
            results["commands"][name] = {"cold_s": run(cmd, env, out), "load_cold": load()}
        t0 = time.perf_counter()
        run(["warmup"], env)
        results["warmup_s"] = time.perf_counter() - t0
        results["load_after_warmup"] = load()
        t_version = min(run(["--version"], env) for _ in range(3))
        for name, cmd, out in cmds:
            first = run(cmd, env, out)
            again = min(run(cmd, env, out) for _ in range(2))
            results["commands"][name].update(warm_first_s=first, warm_best_s=again,
                                              load_warm=load())
        results["version_cold_s"] = t_version_cold
        results["version_warm_s"] = t_version

        print(f"\n{'command (tiny files, fresh process)':<38s} {'cold':>8s} {'warm 1st':>9s} "
              f"{'warm best':>10s} {'cold-warm':>10s}")
        for name, r in results["commands"].items():
            print(f"{'camcorr ' + name:<38s} {r['cold_s']:7.2f}s {r['warm_first_s']:8.2f}s "
                  f"{r['warm_best_s']:9.2f}s {r['cold_s'] - r['warm_first_s']:9.2f}s")
        print(f"{'camcorr --version (start + imports)':<38s} {t_version_cold:7.2f}s "
              f"{t_version:8.2f}s")
        print(f"\ncamcorr warmup (once, in make test / make demo set-up): "
              f"{results['warmup_s']:.1f} s")
        print(f"load average at the end: {load()}")
        save("bench_coldstart", results, args.json)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
