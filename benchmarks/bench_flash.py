"""Flash4.0 carryover: camcorr vs LLSpy 0.5.1, side by side in one run, reported as ratios.

    .venv/bin/python benchmarks/bench_flash.py [--quick] [--no-llspy]

1. Correction in memory, 2 channels x 100 x 512 x 512 uint16: camcorr (numba parallel, uint16 and
   float32 output) vs LLSpy ``CameraParameters.correct_stacks`` targets 'cpu' (numba) and 'numpy'.
2. Correction file to file, per timepoint: ``camcorr flash correct`` on a folder vs LLSpy's
   ``correctTimepoint`` run sequentially ('cpu') and in a process pool over timepoints ('parallel',
   as ``LLSdir.correct_flash`` does).
3. Calibration time per pixel: ``calibrate_folder`` (whole ROI, streamed from files) vs LLSpy's
   per-pixel scipy least_squares in its multiprocessing pool (``camcalib.parallel_fit``) on a small
   crop of the same data (it is slow).
4. Calibration peak memory (peak RSS of a fresh process) at two numbers of frames.

LLSpy runs in its own environment (benchmarks/llspy_env.sh -> .bench_envs/llspy) through a
subprocess; both sides read the same files.  Timings are best-of-N wall clock.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import tifffile

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _common import cli_checked, cli_cold, cold_warm, load, save  # noqa: E402
from camcorr.flash import (calibrate_folder, correct_interleaved, read_params,  # noqa: E402
                           write_params)
from camcorr.flash.params import params_from_arrays  # noqa: E402
from camcorr.simulate import lls  # noqa: E402


def llspy_python(skip: bool):
    if skip:
        return None
    try:
        out = subprocess.run(["bash", str(ROOT / "benchmarks" / "llspy_env.sh")], check=True,
                             capture_output=True, text=True)
        return out.stdout.strip().splitlines()[-1]
    except subprocess.CalledProcessError as exc:
        print("LLSpy environment unavailable:", exc.stderr[-500:], file=sys.stderr)
        return None


def run_llspy(py, code: str, args: dict) -> dict:
    res = subprocess.run([py, "-c", textwrap.dedent(code), json.dumps(args)], capture_output=True,
                         text=True)
    if res.returncode != 0:
        raise RuntimeError(res.stderr[-2000:])
    return json.loads(res.stdout.strip().splitlines()[-1])


LLSPY_CORRECT = r"""
import json, sys, time, warnings
warnings.filterwarnings("ignore")
import numpy as np
from llspy.camera import CameraParameters
a = json.loads(sys.argv[1])
data = np.load(a["params"])
roi = a["roi"]
cp = CameraParameters(data=data, roi=roi)
stacks = [np.load(f) for f in a["stacks"]]
out = {}
for target in ("cpu", "numpy"):
    cp.correct_stacks(stacks, flashCorrectTarget=target)  # warm-up / JIT
    ts = []
    for _ in range(a["n"]):
        t = time.perf_counter(); cp.correct_stacks(stacks, flashCorrectTarget=target)
        ts.append(time.perf_counter() - t)
    out[target] = min(ts)
print(json.dumps(out))
"""

LLSPY_FILES = r"""
import json, sys, time, warnings, pathlib, shutil
warnings.filterwarnings("ignore")
from multiprocessing import Pool, cpu_count
from llspy.camera import CameraParameters
from llspy.llsdir import correctTimepoint, unwrapper
a = json.loads(sys.argv[1])
cp = CameraParameters(a["params"])
groups = a["groups"]
out = {}
warm = pathlib.Path(a["out"]) / "warmup"
warm.mkdir(parents=True, exist_ok=True)
correctTimepoint(groups[0], cp, warm, False, (0, 0), (0, 0), (0, 0))  # numba JIT of 'cpu'
shutil.rmtree(warm)
for target in ("cpu", "parallel"):
    ts = []
    for _ in range(a["n"]):
        outpath = pathlib.Path(a["out"]) / target
        shutil.rmtree(outpath, ignore_errors=True); outpath.mkdir(parents=True)
        t = time.perf_counter()
        if target == "cpu":
            for g in groups:
                correctTimepoint(g, cp, outpath, False, (0, 0), (0, 0), (0, 0))
        else:
            with Pool(processes=cpu_count()) as pool:
                pool.map(unwrapper, [(g, cp, outpath, False, (0, 0), (0, 0), (0, 0)) for g in groups])
        ts.append((time.perf_counter() - t) / len(groups))
    out[target] = min(ts)
print(json.dumps(out))
"""

LLSPY_CALIB = r"""
import json, sys, time, warnings
warnings.filterwarnings("ignore")
import numpy as np
from llspy import camcalib
a = json.loads(sys.argv[1])
ch0, ch1 = camcalib.get_channel_list(a["folder"])
dark = np.load(a["offset"])
pre, post = camcalib.combine_stacks(ch0, ch1, dark)
r0, c0, n = a["r0"], a["c0"], a["n"]
pre = np.ascontiguousarray(pre[:, r0:r0 + n, c0:c0 + n]); post = np.ascontiguousarray(post[:, r0:r0 + n, c0:c0 + n])
t = time.perf_counter()
res = camcalib.parallel_fit(pre, post)
dt = time.perf_counter() - t
np.save(a["out"], res)
print(json.dumps({"fit_s": dt, "pixels": n * n, "points": int(pre.shape[0])}))
"""


def bench_correction(tmp: Path, py, quick: bool):
    nz, ny, nx = (50, 512, 512) if quick else (100, 512, 512)
    rng = np.random.default_rng(0)
    t = lls.sensor_maps((1000, 1000, 1000 + ny - 1, 1000 + nx - 1), seed=1)
    params = params_from_arrays(t.A, t.B, t.offset, t.noise, roi=t.roi)
    base = rng.poisson(60, (nz, ny, nx)).astype(np.uint16) + 100
    stacks = [base + rng.integers(0, 3000, (nz, ny, nx), dtype=np.uint16) * (c == 0)
              for c in range(2)]
    n = 3 if quick else 7
    keep = cold_warm(lambda: correct_interleaved(stacks, params, dtype="keep"), n)
    f32 = cold_warm(lambda: correct_interleaved(stacks, params, dtype="float32"), n)
    # validity: the output equals the float64 numpy reference to the polynomial exp's accuracy
    ref = correct_interleaved([s[:4] for s in stacks], params, dtype="float32", backend="numpy")
    got = correct_interleaved([s[:4] for s in stacks], params, dtype="float32")
    err = max(float(np.max(np.abs(a - b))) for a, b in zip(ref, got))
    if err > 0.05:
        raise RuntimeError(f"numba and numpy corrections differ by {err} ADU")
    ours_keep = keep["warm_s"]
    # both cores: the same call with one numba thread (stacks, and one frame as CellProfiler
    # and Fiji pass it)
    import numba
    from camcorr.flash import correct_frame
    threads = numba.get_num_threads()
    frame = lambda: correct_frame(stacks[0][1], stacks[0][0], params, dtype="keep")  # noqa: E731
    frame_par = cold_warm(frame, 3 * n)["warm_s"]
    numba.set_num_threads(1)
    try:
        one = cold_warm(lambda: correct_interleaved(stacks, params, dtype="keep"), n)["warm_s"]
        frame_one = cold_warm(frame, 3 * n)["warm_s"]
    finally:
        numba.set_num_threads(threads)
    print(f"flash correction {threads} threads {ours_keep:.3f} s, 1 thread {one:.3f} s -> "
          f"{one / ours_keep:.2f}x; one {ny} x {nx} frame {frame_par * 1e3:.2f} ms vs "
          f"{frame_one * 1e3:.2f} ms -> {frame_one / frame_par:.2f}x")
    res = {"shape": f"2 x {nz} x {ny} x {nx}", "camcorr_uint16_s": ours_keep,
           "threads": threads, "camcorr_uint16_1thread_s": one,
           "parallel_speedup": one / ours_keep, "frame_s": frame_par, "frame_1thread_s": frame_one,
           "frame_parallel_speedup": frame_one / frame_par,
           "camcorr_uint16_cold_s": keep["cold_s"], "camcorr_float32_s": f32["warm_s"],
           "camcorr_float32_cold_s": f32["cold_s"], "max_abs_err_vs_numpy_adu": err,
           "load": load()}
    if py:
        np.save(tmp / "p.npy", np.stack([params.A, params.B, params.offset, params.noise]))
        files = []
        for c, s in enumerate(stacks):
            np.save(tmp / f"s{c}.npy", s)
            files.append(str(tmp / f"s{c}.npy"))
        ll = run_llspy(py, LLSPY_CORRECT, {"params": str(tmp / "p.npy"), "roi": list(params.roi),
                                           "stacks": files, "n": n})
        res.update({"llspy_cpu_s": ll["cpu"], "llspy_numpy_s": ll["numpy"]})
        fastest = min(ll.values())
        res["speedup_vs_fastest_llspy"] = fastest / ours_keep
        res["speedup_vs_llspy_cpu"] = ll["cpu"] / ours_keep
    return res


def bench_files(tmp: Path, py, quick: bool):
    nt = 2 if quick else 4
    nz = 50 if quick else 100
    ny = nx = 512
    rng = np.random.default_rng(1)
    roi = (1000, 1000, 1000 + ny - 1, 1000 + nx - 1)
    t = lls.sensor_maps(roi, seed=1)
    params = params_from_arrays(t.A, t.B, t.offset, t.noise, roi=roi, serial="100740",
                                date="20240101")
    ppath = write_params(params, tmp)
    data = tmp / "data"
    data.mkdir()
    groups = []
    for ti in range(nt):
        g = []
        for c, las in enumerate((488, 642)):
            f = data / f"cell_CamA_ch{c}_stack{ti:04d}_{las}nm_0000000msec_0000000000msecAbs.tif"
            arr = (rng.poisson(60, (nz, ny, nx)) + 100 + (c == 0) * rng.integers(0, 3000, (nz, ny, nx)))
            # axes ZYX: a plain Z stack per channel (without them tifffile's ImageJ writer
            # makes a multi-channel hyperstack, which camcorr refuses among other stacks)
            tifffile.imwrite(f, arr.astype(np.uint16), imagej=True, metadata={"axes": "ZYX"})
            g.append(str(f))
        groups.append(g)
    lls.write_settings(data / "cell_Settings.txt", roi, n_planes=nz, n_stacks=nt)
    args = ["flash", "correct", str(data), "-p", str(ppath), "-o", str(tmp / "ours_out")]
    cold = cli_cold(args)  # fresh process: start-up, imports and kernel loading included
    # validity before timing: every output present and equal to the in-memory correction
    for g in groups:
        ref = correct_interleaved([tifffile.imread(f) for f in g], params, dtype="keep")
        for f, r in zip(g, ref):
            got = tifffile.imread(tmp / "ours_out" / Path(f).name)
            if got.shape != r.shape or not np.array_equal(got, r):
                raise RuntimeError(f"camcorr flash correct output {f} is wrong")
    n = 2 if quick else 3
    warm = cold_warm(lambda: cli_checked(args), n)
    res = {"timepoints": nt, "stack": f"2 x {nz} x {ny} x {nx}",
           "camcorr_per_timepoint_s": warm["warm_s"] / nt,
           "camcorr_first_run_fresh_process_s": cold, "load": load()}
    if py:
        ll = run_llspy(py, LLSPY_FILES, {"params": str(ppath), "groups": groups, "n": n,
                                         "out": str(tmp / "llspy_out")})
        for target in ("cpu", "parallel"):
            outs = sorted((tmp / "llspy_out" / target).glob("*.tif"))
            if len(outs) != 2 * nt or tifffile.imread(outs[0]).shape != (nz, ny, nx):
                raise RuntimeError(f"LLSpy ({target}) wrote {len(outs)} files, expected {2 * nt}")
        res.update({"llspy_cpu_per_timepoint_s": ll["cpu"], "llspy_parallel_per_timepoint_s": ll["parallel"],
                    "speedup_vs_fastest_llspy": min(ll.values()) / res["camcorr_per_timepoint_s"]})
    return res


def bench_calibration(tmp: Path, py, quick: bool):
    size = 128 if quick else 256
    roi = (1000, 1000, 1000 + size - 1, 1000 + size - 1)
    ct = lls.write_calibration_folder(tmp / "calib", roi=roi, seed=3, n_planes=40,
                                      n_dark_files=4, dark_planes=100)
    t0 = time.perf_counter()
    calibrate_folder(ct.folder)  # cold: kernels compiled or loaded from the cache
    cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    cal = calibrate_folder(ct.folder)
    ours = time.perf_counter() - t0
    good = ct.truth.A > 10
    res = {"pixels": size * size, "pairs_per_pixel": ct.n_planes * len(ct.powers),
           "camcorr_total_s": ours, "camcorr_total_cold_s": cold,
           "camcorr_per_pixel_ms": 1e3 * ours / (size * size), "load": load(),
           "camcorr_median_rel_err_A": float(np.median(np.abs(cal.A - ct.truth.A)[good] / ct.truth.A[good])),
           "camcorr_median_rel_err_B": float(np.median(np.abs(cal.B - ct.truth.B)[good] / ct.truth.B[good]))}
    if py:
        n = 8 if quick else 16
        np.save(tmp / "offset.npy", cal.offset.astype(np.float64))
        ll = run_llspy(py, LLSPY_CALIB, {"folder": str(ct.folder), "offset": str(tmp / "offset.npy"),
                                         "r0": 10, "c0": 10, "n": n, "out": str(tmp / "llfit.npy")})
        llfit = np.load(tmp / "llfit.npy")
        tA = ct.truth.A[10:10 + n, 10:10 + n]
        tB = ct.truth.B[10:10 + n, 10:10 + n]
        g = tA > 10
        res.update({"llspy_fit_pixels": ll["pixels"], "llspy_fit_s": ll["fit_s"],
                    "llspy_per_pixel_ms": 1e3 * ll["fit_s"] / ll["pixels"],
                    "llspy_median_rel_err_A": float(np.median(np.abs(llfit[0] - tA)[g] / tA[g])),
                    "llspy_median_rel_err_B": float(np.median(np.abs(llfit[1] - tB)[g] / tB[g]))})
        res["speedup_per_pixel"] = res["llspy_per_pixel_ms"] / res["camcorr_per_pixel_ms"]
    return res


MEM_CHILD = r"""
import json, re, sys, tracemalloc
from camcorr.flash import calibrate_folder

def hwm():  # peak RSS of this process image in MiB (VmHWM restarts at exec, unlike ru_maxrss)
    txt = open("/proc/self/status").read()
    return int(re.search(r"VmHWM:\s+(\d+)", txt).group(1)) / 1024

base = hwm()
tracemalloc.start()
calibrate_folder(sys.argv[1])
peak = tracemalloc.get_traced_memory()[1] / 2**20
print(json.dumps({"peak_rss_mb": hwm(),
                  "rss_after_imports_mb": base, "peak_traced_mb": peak}))
"""


def bench_memory(tmp: Path, quick: bool):
    size = 128 if quick else 256
    roi = (0, 0, size - 1, size - 1)
    out = {}
    for planes in ((16, 128) if quick else (25, 200)):
        f = tmp / f"mem{planes}"
        lls.write_calibration_folder(f, roi=roi, n_planes=planes, n_dark_files=2,
                                     dark_planes=2 * planes, powers=(0, 1, 3, 10, 30, 100))
        r = subprocess.run([sys.executable, "-c", MEM_CHILD, str(f)], capture_output=True,
                           text=True, check=True)
        n_frames = 2 * planes * 6 + 4 * planes
        out[n_frames] = json.loads(r.stdout.strip().splitlines()[-1])
    frames = sorted(out)
    return {"image": f"{size} x {size}", "by_frames": out,
            "ratio_peak_rss": out[frames[-1]]["peak_rss_mb"] / out[frames[0]]["peak_rss_mb"],
            "ratio_peak_traced": out[frames[-1]]["peak_traced_mb"] / out[frames[0]]["peak_traced_mb"],
            "ratio_frames": frames[-1] / frames[0]}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller sizes, fewer repeats")
    ap.add_argument("--no-llspy", action="store_true", help="camcorr only")
    ap.add_argument("--json", type=Path, help="write the results here instead of "
                                              "benchmarks/results/bench_flash.json")
    args = ap.parse_args(argv)
    load_start = load()
    py = llspy_python(args.no_llspy)
    results = {}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for name, fn in (("correction_in_memory", lambda: bench_correction(tmp / "c", py, args.quick)),
                         ("correction_files", lambda: bench_files(tmp / "f", py, args.quick)),
                         ("calibration", lambda: bench_calibration(tmp / "k", py, args.quick)),
                         ("calibration_memory", lambda: bench_memory(tmp / "m", args.quick))):
            (tmp / name[0]).mkdir(exist_ok=True)
            results[name] = fn()
            print(f"{name}: " + json.dumps(results[name], indent=1), flush=True)
    c, f, k, m = (results[n] for n in ("correction_in_memory", "correction_files", "calibration",
                                       "calibration_memory"))
    print("\nSummary (ratios > 1: camcorr faster)")
    if "speedup_vs_fastest_llspy" in c:
        print(f"  correction {c['shape']}: camcorr {c['camcorr_uint16_s']:.3f} s warm "
              f"({c['camcorr_uint16_cold_s']:.3f} s cold), LLSpy cpu "
              f"{c['llspy_cpu_s']:.3f} s, numpy {c['llspy_numpy_s']:.3f} s -> "
              f"{c['speedup_vs_fastest_llspy']:.1f}x the fastest LLSpy target (target >= 3x)")
    if "speedup_vs_fastest_llspy" in f:
        print(f"  file to file per timepoint: camcorr {f['camcorr_per_timepoint_s']:.3f} s warm "
              f"(first run in a fresh process {f['camcorr_first_run_fresh_process_s']:.2f} s for "
              f"{f['timepoints']} timepoints), LLSpy cpu "
              f"{f['llspy_cpu_per_timepoint_s']:.3f} s, parallel {f['llspy_parallel_per_timepoint_s']:.3f} s"
              f" -> {f['speedup_vs_fastest_llspy']:.1f}x")
    if "speedup_per_pixel" in k:
        print(f"  calibration per pixel: camcorr {k['camcorr_per_pixel_ms']:.4f} ms, LLSpy "
              f"{k['llspy_per_pixel_ms']:.3f} ms -> {k['speedup_per_pixel']:.0f}x (target >= 30x)")
    print(f"  calibration peak RSS: {m['ratio_peak_rss']:.2f}x, peak traced allocations "
          f"{m['ratio_peak_traced']:.2f}x for {m['ratio_frames']:.0f}x the frames"
          " (flat = memory independent of the number of frames)")
    results["load_start"] = load_start
    results["quick"] = args.quick
    results["llspy"] = "LLSpy 0.5.1, same run" if py else "not run"
    save("bench_flash", results, args.json)
    print(f"machine: {os.cpu_count()} cores, load average at the end {load()}")
    return results


if __name__ == "__main__":
    main()
