"""Stream a dataset several times larger than the memory used through dask statistics.

Two lazily generated datasets (dask ``map_blocks`` with a fixed seed per block, so any block can
be regenerated identically and nothing exists on disk or in memory beforehand):

* dark frames: uint16, offset ~100 ADU + per-pixel read noise  -> offset/noise maps
  (:func:`camcorr.parallel.offset_noise`, Chan et al. merges in a tree);
* flat-field planes: uint16, Poisson background through a vignetting flat-field ->
  the streamed per-pixel mean of every plane (:func:`camcorr.parallel.moments`) and the
  flat-field from the median of 200 sampled planes (:func:`camcorr.parallel.flatfield_planes`).

Each measurement runs in a fresh child process that reports its peak resident memory (RSS,
``getrusage``) and wall time; the dataset size divided by the peak RSS says how many times larger
than the memory used the data was.  ``--rlimit-mb`` additionally caps the child's address space
(``RLIMIT_AS``) so that exceeding it fails loudly.

Correctness on a subset that fits in memory: the dask results are compared with the in-memory
engine paths (:class:`camcorr.stats.RunningMoments` / :func:`camcorr.flash.dark_moments`,
``numpy.median``), and the throughput of both is printed side by side as a ratio.

    .venv/bin/python benchmarks/bench_dask.py            # 4000 x 512 x 512 frames per dataset (2 GiB each)
    .venv/bin/python benchmarks/bench_dask.py --quick    # 3000 x 256 x 256 (375 MiB each)
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

SEED = 20261121


# --------------------------------------------------------------------------- lazy datasets
def _dark_block(block_info=None, *, shape_yx, seed):
    loc = block_info[None]["array-location"]
    z0, z1 = loc[0]
    rng0 = np.random.default_rng(seed)  # camera maps: same for every block
    off = 100 + 3 * rng0.standard_normal(shape_yx)
    noise = 1.6 * np.exp(0.3 * rng0.standard_normal(shape_yx))
    rng = np.random.default_rng([seed, z0])
    data = off + noise * rng.standard_normal((z1 - z0,) + shape_yx, dtype=np.float32)
    return np.clip(np.rint(data), 0, 65535).astype(np.uint16)


def _flat_block(block_info=None, *, shape_yx, seed):
    loc = block_info[None]["array-location"]
    z0, z1 = loc[0]
    ny, nx = shape_yx
    y = np.linspace(-1, 1, ny)[:, None]
    x = np.linspace(-1, 1, nx)[None, :]
    flat = 1 - 0.35 * (x ** 2 + y ** 2) / 2
    rng = np.random.default_rng([seed, 1, z0])
    return (100 + rng.poisson(300 * flat, (z1 - z0,) + shape_yx)).astype(np.uint16)


def dataset(kind, n, ny, nx, chunk):
    import dask.array as da

    fn = _dark_block if kind == "dark" else _flat_block
    seed = SEED if kind == "dark" else SEED + 1
    chunks = ((chunk,) * (n // chunk) + ((n % chunk,) if n % chunk else ()), (ny,), (nx,))
    return da.map_blocks(fn, dtype=np.uint16, chunks=chunks, shape_yx=(ny, nx), seed=seed,
                         meta=np.empty((0, 0, 0), np.uint16))


# --------------------------------------------------------------------------- child jobs
def _peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _child(job, args, queue):
    try:
        if args.get("rlimit_mb"):
            lim = int(args["rlimit_mb"]) * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_AS, (lim, lim))
        import dask

        dask.config.set(num_workers=args["threads"])
        import camcorr.parallel as P

        base = _peak_rss_mb()
        arr = dataset(job, args["n"], args["ny"], args["nx"], args["chunk"])
        t0 = time.perf_counter()
        out = {}
        if job == "generate":  # the lazy generator alone: the floor of every timing here
            mx = arr.map_blocks(lambda b: np.full((1, 1, 1), b.max(), np.uint16),
                                chunks=(1, 1, 1), dtype=np.uint16).max().compute()
            out["max"] = int(mx)
        elif job == "dark":
            off, noise = P.offset_noise(arr, chunk_frames=args["chunk"])
            out["median_offset"] = float(np.median(off))
            out["median_noise"] = float(np.median(noise))
        elif job == "flat-mean":
            m = P.moments(arr, chunk_frames=args["chunk"])
            ff = m.mean - 100
            out["corner_centre"] = float(ff[:8, :8].mean() / ff[ff.shape[0] // 2 - 4:ff.shape[0] // 2 + 4,
                                                            ff.shape[1] // 2 - 4:ff.shape[1] // 2 + 4].mean())
        elif job == "flat-median":
            idx = np.linspace(0, args["n"] - 1, args["sample"]).astype(int)
            ff = P.flatfield_planes(arr - 100, idx, rows_per_chunk=64, sigma=2)
            out["flat_min"] = float(ff.min())
        dt = time.perf_counter() - t0
        nbytes = args["n"] * args["ny"] * args["nx"] * 2
        read = nbytes if job != "flat-median" else args["sample"] * args["ny"] * args["nx"] * 2
        out.update(seconds=dt, dataset_mb=nbytes / 2 ** 20, mb_per_s=read / 2 ** 20 / dt,
                   peak_rss_mb=_peak_rss_mb(), baseline_rss_mb=base)
        queue.put(out)
    except BaseException as exc:  # report, do not hang the parent
        queue.put({"error": f"{type(exc).__name__}: {exc}"})


def run_child(job, args):
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_child, args=(job, args, q))
    p.start()
    res = q.get()
    p.join()
    return res


# --------------------------------------------------------------------------- subset check
def subset_check(args):
    """Dask vs in-memory engine paths on a subset that fits in memory: equality and speed."""
    import camcorr.parallel as P
    from camcorr.stats import RunningMoments

    n = args["subset"]
    out = {}
    for kind in ("dark", "flat"):
        arr = dataset(kind, n, args["ny"], args["nx"], args["chunk"])
        mem = arr.compute()
        t0 = time.perf_counter()
        try:
            from camcorr.flash import dark_moments
            ref = dark_moments(iter(mem[i:i + args["chunk"]] for i in range(0, n, args["chunk"])))
            ref_name = "camcorr.flash.dark_moments"
        except ImportError:
            ref = RunningMoments().update(mem)
            ref_name = "RunningMoments.update"
        t_mem = time.perf_counter() - t0
        t0 = time.perf_counter()
        got = P.moments(mem, chunk_frames=args["chunk"])
        t_dask = time.perf_counter() - t0
        out[kind] = {
            "reference": ref_name,
            "frames": n,
            "max_rel_diff_mean": float(np.max(np.abs(got.mean - ref.mean) / np.abs(ref.mean))),
            "max_rel_diff_m2": float(np.max(np.abs(got.m2 - ref.m2) / np.abs(ref.m2))),
            "in_memory_s": t_mem, "dask_s": t_dask, "dask_over_memory_time": t_dask / t_mem,
        }
        if kind == "flat":
            idx = np.arange(0, n, 2)
            med = P.sampled_median(mem, idx, rows_per_chunk=32)
            out[kind]["median_identical"] = bool(np.array_equal(med, np.median(mem[idx], axis=0)))
        del mem
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (under a minute)")
    ap.add_argument("--frames", type=int, default=None)
    ap.add_argument("--size", type=int, default=None, help="frame edge (pixels)")
    ap.add_argument("--chunk", type=int, default=None, help="frames per dask chunk")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rlimit-mb", type=int, default=None,
                    help="cap the child's address space (RLIMIT_AS), MiB")
    ap.add_argument("--json", default=None, help="also write the results here")
    a = ap.parse_args(argv)
    n = a.frames or (3000 if a.quick else 4000)
    size = a.size or (256 if a.quick else 512)
    chunk = a.chunk or 16
    args = dict(n=n, ny=size, nx=size, chunk=chunk, threads=a.threads, rlimit_mb=a.rlimit_mb,
                sample=200, subset=min(n, 160 if a.quick else 200))
    print(f"datasets: {n} frames of {size} x {size} uint16 = {n * size * size * 2 / 2 ** 20:.0f} MiB "
          f"each, generated lazily; chunks of {chunk} frames; {a.threads} threads")
    results = {"config": args}
    jobs = [("generate", args), ("dark", args), ("dark", dict(args, n=max(args["chunk"], n // 4))),
            ("flat-mean", args), ("flat-median", args)]
    for job, jargs in jobs:
        r = run_child(job, jargs)
        if jargs["n"] != n:
            job = f"dark n/4"
        results[job] = r
        if "error" in r:
            print(f"{job:12s} FAILED: {r['error']}")
            continue
        ratio = r["dataset_mb"] / r["peak_rss_mb"]
        print(f"{job:12s} {r['seconds']:7.2f} s  {r['mb_per_s']:8.1f} MiB/s  peak RSS "
              f"{r['peak_rss_mb']:7.1f} MiB (after imports {r['baseline_rss_mb']:.0f})  "
              f"dataset / peak RSS = {ratio:5.1f}x")
    chk = subset_check(args)
    results["subset"] = chk
    for kind, c in chk.items():
        extra = f", median identical: {c['median_identical']}" if "median_identical" in c else ""
        print(f"subset {kind:5s} ({c['frames']} frames) moments vs {c['reference']}: max rel diff mean "
              f"{c['max_rel_diff_mean']:.1e}, M2 {c['max_rel_diff_m2']:.1e}{extra}; time dask / "
              f"in-memory = {c['dask_over_memory_time']:.2f}")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _common import save
    save("bench_dask", results, a.json)
    if "error" not in results["generate"] and "error" not in results["dark"]:
        print(f"dark-frame statistics / generation alone: "
              f"{results['dark']['seconds'] / results['generate']['seconds']:.2f}x the time")
    if "error" not in results["dark"] and "error" not in results["dark n/4"]:
        print(f"peak RSS with all frames / with a quarter of them: "
              f"{results['dark']['peak_rss_mb'] / results['dark n/4']['peak_rss_mb']:.2f} "
              f"(1.0 = memory independent of the number of frames)")
    ok = all("error" not in results[j] for j in ("dark", "flat-mean", "flat-median")) and all(
        c["max_rel_diff_mean"] < 1e-10 and c["max_rel_diff_m2"] < 1e-8 for c in chk.values()) and \
        chk["flat"]["median_identical"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
