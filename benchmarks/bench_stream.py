"""File to file on a stack larger than the memory budget: peak RSS and wall time, in one run.

    .venv/bin/python benchmarks/bench_stream.py [--planes 1600] [--size 1024] [--memory 1G]
                                                [--dir SCRATCH] [--no-llspy] [--json FILE]

Writes a (planes x size x size) uint16 stack (default 1600 x 1024 x 1024 = 3.36 GB) and a
matching FlashParam file, then, each in a fresh process (peak RSS = VmHWM of that process):

1. ``camcorr flash correct STACK -p P -o OUT --memory M`` (streamed),
2. the in-memory path on the same file: ``read_tiff`` + ``correct_interleaved`` + ``write_tiff``,
3. LLSpy 0.5.1's file-to-file path, ``llspy.llsdir.correctTimepoint`` (reads the whole file,
   corrects, writes; own environment, ``benchmarks/llspy_env.sh``),
4. ``camcorr median STACK -o OUT --memory M`` (streamed std projection, then replacement),
5. the in-memory path: ``read_tiff`` + ``selective_median`` + ``write_tiff``.

Every run's exit status is checked, and the streamed outputs are compared with the in-memory
outputs plane block by plane block (they must be identical) before any figure is printed.
LLSpy's run must exit 0 and write one stack of the input's shape.  Large files are deleted at the end.  Not part of the test suite.
The machine's load (``os.getloadavg``) is printed with the figures.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from camcorr.flash.params import params_from_arrays, write_params  # noqa: E402
from camcorr.simulate import lls  # noqa: E402
from camcorr.streaming import PROCESS_OVERHEAD_MIB, PlaneReader, parse_memory, write_planes  # noqa: E402

CHILD = textwrap.dedent(r"""
    import json, re, sys, time
    t0 = time.perf_counter()
    def hwm():
        return int(re.search(r"VmHWM:\s+(\d+)", open("/proc/self/status").read()).group(1)) / 1024
    mode, args = sys.argv[1], json.loads(sys.argv[2])
    if mode == "cli":
        from camcorr.cli import main
        rc = main(args)
    elif mode == "flash_memory":
        import numpy as np
        from camcorr.io import read_tiff, write_tiff
        from camcorr.flash import correct_interleaved, read_params
        data, info = read_tiff(args["src"])
        out = correct_interleaved([data], read_params(args["params"]), dtype="keep")[0]
        del data
        write_tiff(args["out"], out, inputs=[args["src"]], **info.write_kwargs())
        rc = 0
    elif mode == "median_memory":
        from camcorr.io import read_tiff, write_tiff
        from camcorr.median import selective_median
        data, info = read_tiff(args["src"])
        res = selective_median(data)
        del data
        write_tiff(args["out"], res.corrected, inputs=[args["src"]], **info.write_kwargs())
        rc = 0
    elif mode == "imports":
        import camcorr.cli, camcorr.flash, camcorr.median, camcorr.streaming, tifffile  # noqa
        rc = 0
    print(json.dumps({"rc": rc, "peak_rss_mib": hwm(), "inner_s": time.perf_counter() - t0}))
""")

LLSPY_CHILD = textwrap.dedent(r"""
    import json, pathlib, re, sys, time, warnings
    warnings.filterwarnings("ignore")
    t0 = time.perf_counter()
    from llspy.camera import CameraParameters
    from llspy.llsdir import correctTimepoint
    a = json.loads(sys.argv[1])
    cp = CameraParameters(a["params"])
    correctTimepoint([a["src"]], cp, pathlib.Path(a["out"]), False, (0, 0), (0, 0), (0, 0))
    hwm = int(re.search(r"VmHWM:\s+(\d+)", open("/proc/self/status").read()).group(1)) / 1024
    print(json.dumps({"rc": 0, "peak_rss_mib": hwm, "inner_s": time.perf_counter() - t0}))
""")


def load() -> str:
    return "load average %.2f %.2f %.2f" % os.getloadavg()


def run_child(cmd) -> dict:
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise RuntimeError(f"{cmd[:3]} failed (exit {res.returncode}):\n{res.stderr[-3000:]}")
    out = json.loads(res.stdout.strip().splitlines()[-1])
    if out["rc"] != 0:
        raise RuntimeError(f"{cmd[:3]} returned {out['rc']}:\n{res.stderr[-3000:]}")
    out["wall_s"] = wall
    out["load"] = os.getloadavg()
    return out


def camcorr_child(mode: str, args) -> dict:
    return run_child([sys.executable, "-c", CHILD, mode, json.dumps(args)])


def same_planes(a: Path, b: Path, block: int = 64) -> bool:
    """True if the two TIFF files hold the same planes (read block by block)."""
    with PlaneReader(a) as ra, PlaneReader(b) as rb:
        if ra.info.shape != rb.info.shape or ra.dtype != rb.dtype:
            return False
        for i in range(0, ra.n_planes, block):
            j = min(ra.n_planes, i + block)
            if not np.array_equal(ra.read(i, j), rb.read(i, j)):
                return False
    return True


def make_stack(path: Path, planes: int, size: int, seed: int = 0):
    """Camera-like uint16 stack: offset ~100, structured signal moving with z, noise, hot pixels.

    16 noise planes are drawn once and cycled (cheap to write 3 GB; the data's statistics do
    not matter for the timing, only that the kernels see realistic values)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    sig = (400 + 250 * np.sin(yy / 37.0) * np.cos(xx / 53.0)).astype(np.uint16)
    noise = rng.integers(0, 40, (16, size, size), dtype=np.uint16)
    hot = rng.random((size, size)) < 2e-4
    hot_values = rng.integers(2000, 9000, (16, int(hot.sum()))).astype(np.uint16)

    def planes_iter():
        for z in range(planes):
            p = np.roll(sig, 3 * z, axis=0) + noise[z % 16]
            p[hot] = hot_values[z % 16]
            yield p[None]

    write_planes(path, (planes, size, size), np.uint16, planes_iter(), axes="ZYX")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--planes", type=int, default=1600)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--memory", default="1G")
    ap.add_argument("--dir", type=Path, default=None, help="scratch folder (needs ~5x the stack)")
    ap.add_argument("--no-llspy", action="store_true")
    ap.add_argument("--stack", type=Path, help="use this existing uint16 (Z, Y, X) stack")
    ap.add_argument("--params", type=Path, help="FlashParam file for --stack")
    ap.add_argument("--only", choices=("flash", "median"), help="run one command only")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    budget_mib = parse_memory(args.memory) / 2**20
    res = {"shape": [args.planes, args.size, args.size], "memory_budget_mib": budget_mib,
           "process_overhead_mib": PROCESS_OVERHEAD_MIB, "load_start": os.getloadavg()}
    llspy = None
    if not args.no_llspy:
        try:
            llspy = subprocess.run(["bash", str(ROOT / "benchmarks" / "llspy_env.sh")], check=True,
                                   capture_output=True, text=True).stdout.strip().splitlines()[-1]
        except subprocess.CalledProcessError as exc:
            print("LLSpy environment unavailable:", exc.stderr[-500:], file=sys.stderr)
    scratch = Path(tempfile.mkdtemp(prefix="camcorr-bench-stream-", dir=args.dir))
    try:
        if args.stack:
            src = args.stack.resolve()
            with PlaneReader(src) as r:
                res["shape"] = [r.n_planes, *r.plane_shape]
        else:
            src = scratch / "stack.tif"
            t0 = time.perf_counter()
            make_stack(src, args.planes, args.size)
            print(f"wrote {src} in {time.perf_counter() - t0:.0f} s; {load()}", flush=True)
        res["file_bytes"] = src.stat().st_size
        print(f"stack {src}: {res['file_bytes'] / 1e9:.2f} GB", flush=True)
        if args.params:
            ppath = args.params.resolve()
        else:
            roi = (1, 1, res["shape"][2], res["shape"][1])
            t = lls.sensor_maps(roi, seed=1)
            assert t.A.shape == tuple(res["shape"][1:])
            ppath = write_params(params_from_arrays(t.A, t.B, t.offset, t.noise, roi=roi,
                                                    serial="100740", date="20260101"), scratch)
        res["imports"] = camcorr_child("imports", [])
        print("imports only:", res["imports"], flush=True)

        if args.only in (None, "flash"):
            # --- flash correct
            out_s = scratch / "flash_stream"
            r = camcorr_child("cli", ["flash", "correct", str(src), "-p", str(ppath), "-o",
                                      str(out_s), "--memory", args.memory])
            res["flash_stream"] = r
            print("flash streamed:", r, flush=True)
            out_m = scratch / "flash_memory.tif"
            r = camcorr_child("flash_memory", {"src": str(src), "params": str(ppath), "out": str(out_m)})
            res["flash_memory"] = r
            print("flash in memory:", r, flush=True)
            res["flash_identical"] = same_planes(out_s / src.name, out_m)
            print("flash streamed == in memory:", res["flash_identical"], flush=True)
            if not res["flash_identical"]:
                raise RuntimeError("streamed flash output differs from the in-memory output")
            os.unlink(out_m)
            if llspy:
                out_l = scratch / "llspy"
                out_l.mkdir()
                try:
                    r = run_child([llspy, "-c", LLSPY_CHILD, json.dumps(
                        {"src": str(src), "params": str(ppath), "out": str(out_l)})])
                    written = sorted(out_l.rglob("*.tif"))
                    if len(written) != 1:
                        raise RuntimeError(f"LLSpy wrote {len(written)} files: {written}")
                    with PlaneReader(written[0]) as rl, PlaneReader(out_s / src.name) as rc:
                        ok_shape = (rl.n_planes, *rl.plane_shape) == (rc.n_planes, *rc.plane_shape)
                    r["output_shape_ok"] = bool(ok_shape)
                    if not ok_shape:
                        raise RuntimeError("LLSpy output has another shape")
                    res["llspy_files"] = r
                    print("LLSpy correctTimepoint:", r, flush=True)
                except RuntimeError as exc:
                    res["llspy_files"] = {"error": str(exc)[-800:]}
                    print("LLSpy failed:", str(exc)[-800:], flush=True)
                shutil.rmtree(out_l, ignore_errors=True)
            shutil.rmtree(out_s, ignore_errors=True)

        if args.only in (None, "median"):
            # --- median
            out_s = scratch / "median_stream.tif"
            r = camcorr_child("cli", ["median", str(src), "-o", str(out_s), "--memory", args.memory])
            res["median_stream"] = r
            print("median streamed:", r, flush=True)
            out_m = scratch / "median_memory.tif"
            r = camcorr_child("median_memory", {"src": str(src), "out": str(out_m)})
            res["median_memory"] = r
            print("median in memory:", r, flush=True)
            res["median_identical"] = same_planes(out_s, out_m)
            print("median streamed == in memory:", res["median_identical"], flush=True)
            if not res["median_identical"]:
                raise RuntimeError("streamed median output differs from the in-memory output")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    res["load_end"] = os.getloadavg()
    limit = budget_mib + PROCESS_OVERHEAD_MIB
    print(f"\nSummary ({args.planes} x {args.size} x {args.size} uint16, "
          f"{res['file_bytes'] / 1e9:.2f} GB; budget {args.memory} + {PROCESS_OVERHEAD_MIB} MiB "
          f"process = {limit:.0f} MiB; imports alone {res['imports']['peak_rss_mib']:.0f} MiB; "
          f"{load()})")
    rows = [("flash correct", "flash_stream", "flash_memory", "llspy_files"),
            ("median", "median_stream", "median_memory", None)]
    for label, s, m, l in rows:
        if s not in res:
            continue
        S, M = res[s], res[m]
        line = (f"  {label}: streamed {S['wall_s']:.1f} s, peak RSS {S['peak_rss_mib']:.0f} MiB "
                f"({'<=' if S['peak_rss_mib'] <= limit else '>'} {limit:.0f}); in memory "
                f"{M['wall_s']:.1f} s, {M['peak_rss_mib']:.0f} MiB -> memory "
                f"{M['peak_rss_mib'] / S['peak_rss_mib']:.1f}x less, time "
                f"{M['wall_s'] / S['wall_s']:.2f}x")
        if l and "wall_s" in res.get(l, {}):
            L = res[l]
            line += (f"; LLSpy file to file {L['wall_s']:.1f} s, {L['peak_rss_mib']:.0f} MiB -> "
                     f"{L['wall_s'] / S['wall_s']:.1f}x faster")
        print(line)
        res[f"{s}_within_budget"] = S["peak_rss_mib"] <= limit
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=2))
    return res


if __name__ == "__main__":
    main()
