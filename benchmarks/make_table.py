"""Write the one results table of benchmarks/README.md from the last run's JSON files.

    .venv/bin/python benchmarks/make_table.py [--results DIR] [--print-only]

Reads ``benchmarks/results/bench_*.json`` (written by each benchmark) and ``run_all.json``
(written by ``benchmarks/run_all.py``: mode, durations, loads, failures), merges them into
``benchmarks/last_run.json`` (kept in git, so the table can be traced to its numbers) and
replaces the text between ``<!-- results-table -->`` and ``<!-- /results-table -->`` in
benchmarks/README.md.  A benchmark that was not run shows as "not run", one that failed in the
last run_all as FAILED.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
NAMES = ("bench_coldstart", "bench_flash", "bench_stream", "bench_median",
         "bench_median_recall", "bench_gain", "bench_flatfield", "bench_cp_illumination",
         "bench_dask")
START, END = "<!-- results-table -->", "<!-- /results-table -->"


def _load(v) -> str:
    return "%.1f" % v[0] if isinstance(v, (list, tuple)) and v else "?"


def _f(v, fmt="%.3g", suffix=""):
    return (fmt % v) + suffix if isinstance(v, (int, float)) else "-"


def rows(r: dict):
    out = []
    cs = r.get("bench_coldstart")
    if cs:
        for name, c in cs.get("commands", {}).items():
            out.append((f"first run of camcorr {name} (tiny files, fresh process), "
                        f"{cs.get('source', '').split(',')[0]}",
                        f"cold cache {_f(c.get('cold_s'))} s; after camcorr warmup "
                        f"{_f(c.get('warm_first_s'))} s (best {_f(c.get('warm_best_s'))} s)",
                        f"camcorr warmup once: {_f(cs.get('warmup_s'), '%.0f')} s; "
                        f"camcorr --version {_f(cs.get('version_warm_s'))} s",
                        _f(c["cold_s"] / c["warm_first_s"], "%.1f", "x")
                        if c.get("warm_first_s") else "-", "no cold start after set-up",
                        _load(c.get("load_warm"))))
    f = r.get("bench_flash")
    if f:
        c, ff, k, m = (f.get(n, {}) for n in ("correction_in_memory", "correction_files",
                                              "calibration", "calibration_memory"))
        ll = "LLSpy 0.5.1, same run" if "llspy_cpu_s" in c else "not run"
        out.append(("flash correction in memory, " + c.get("shape", ""),
                    f"{_f(c.get('camcorr_uint16_s'))} s warm, {_f(c.get('camcorr_uint16_cold_s'))} s cold",
                    f"{ll}: cpu {_f(c.get('llspy_cpu_s'))} s, numpy {_f(c.get('llspy_numpy_s'))} s",
                    _f(c.get("speedup_vs_fastest_llspy"), "%.1f", "x"), ">= 3x", _load(c.get("load"))))
        if "parallel_speedup" in c:
            out.append((f"flash correction, {c.get('threads')} threads vs 1 thread, "
                        + c.get("shape", "") + "; one 512 x 512 frame",
                        f"{_f(c.get('camcorr_uint16_s'))} s vs {_f(c.get('camcorr_uint16_1thread_s'))}"
                        f" s; frame {_f(c.get('frame_s', 0) * 1e3, '%.2f', ' ms')} vs "
                        f"{_f(c.get('frame_1thread_s', 0) * 1e3, '%.2f', ' ms')}", "",
                        _f(c.get("parallel_speedup"), "%.2f", "x") + "; frame "
                        + _f(c.get("frame_parallel_speedup"), "%.2f", "x"), "reported",
                        _load(c.get("load"))))
        out.append(("flash file to file, per timepoint " + ff.get("stack", ""),
                    f"{_f(ff.get('camcorr_per_timepoint_s'))} s warm; first run in a fresh process "
                    f"{_f(ff.get('camcorr_first_run_fresh_process_s'))} s for {ff.get('timepoints', '?')}",
                    f"LLSpy correctTimepoint cpu {_f(ff.get('llspy_cpu_per_timepoint_s'))} s, "
                    f"process pool {_f(ff.get('llspy_parallel_per_timepoint_s'))} s",
                    _f(ff.get("speedup_vs_fastest_llspy"), "%.1f", "x"), "reported", _load(ff.get("load"))))
        out.append(("flash calibration, per pixel",
                    f"{_f(k.get('camcorr_per_pixel_ms'), '%.3g', ' ms')} (cold run "
                    f"{_f(k.get('camcorr_total_cold_s'))} s, warm {_f(k.get('camcorr_total_s'))} s)",
                    f"LLSpy parallel_fit {_f(k.get('llspy_per_pixel_ms'), '%.3g', ' ms')}",
                    _f(k.get("speedup_per_pixel"), "%.0f", "x"), ">= 30x", _load(k.get("load"))))
        out.append(("flash calibration peak RSS, 8x the frames", _f(m.get("ratio_peak_rss"), "%.2f", "x"),
                    "", "", "flat (~1)", _load(f.get("load_end"))))
    s = r.get("bench_stream")
    if s:
        gb = s.get("file_bytes", 0) / 1e9
        lim = s.get("memory_budget_mib", 0) + s.get("process_overhead_mib", 0)
        shape = " x ".join(str(v) for v in s.get("shape", []))
        for op, key, peer in (("flash correct", "flash", "llspy_files"), ("median", "median", None)):
            st, mem = s.get(f"{key}_stream"), s.get(f"{key}_memory")
            if not st or not mem:
                continue
            peer_txt = "in memory (read_tiff + engine + write_tiff): " \
                       f"{_f(mem['wall_s'], '%.0f')} s, {_f(mem['peak_rss_mib'], '%.0f')} MiB"
            ratio = f"RSS {mem['peak_rss_mib'] / st['peak_rss_mib']:.1f}x less, time " \
                    f"{mem['wall_s'] / st['wall_s']:.2f}x"
            L = s.get(peer) if peer else None
            if L and "wall_s" in L:
                peer_txt += f"; LLSpy correctTimepoint, same file: {_f(L['wall_s'], '%.0f')} s, " \
                            f"{_f(L['peak_rss_mib'], '%.0f')} MiB"
                ratio += f"; {L['wall_s'] / st['wall_s']:.1f}x LLSpy"
                if L.get("note"):
                    peer_txt += " (LLSpy: " + L["note"].split(":")[0] + ")"
            elif peer:
                peer_txt += "; LLSpy: " + (L or {}).get("error", "not run")[:80]
            out.append((f"{op} file to file, {shape} uint16 ({gb:.2f} GB), --memory "
                         f"{s.get('memory_budget_mib', 0) / 1024:.0f}G",
                         f"{_f(st['wall_s'], '%.0f')} s, peak RSS {_f(st['peak_rss_mib'], '%.0f')} MiB",
                         peer_txt, ratio, f"RSS <= {lim:.0f} MiB: "
                         f"{'yes' if st['peak_rss_mib'] <= lim else 'NO'}", _load(st.get("load"))))
    md = r.get("bench_median")
    if md:
        c, ll = md.get("camcorr", {}), md.get("llspy")
        out.append(("selective median, " + " x ".join(str(v) for v in md.get("shape", [])),
                    f"{_f(c.get('seconds'))} s warm, {_f(c.get('seconds_cold'))} s cold",
                    f"LLSpy 0.5.1 (shimmed), same run: {_f(ll.get('seconds'))} s" if ll else "not run",
                    _f(md.get("speedup"), "%.1f", "x"), ">= 10x", _load(md.get("load_end"))))
    g = r.get("bench_gain")
    if g:
        sp = g.get("speed", {}).get("8", {})
        big = "1024" if g.get("quick") else "4096"
        cli, cli1 = g.get("cli"), g.get("cli_one_thread")
        if cli:
            out.append((f"camcorr gain estimate (command line, fresh process), {big}^2 x 8 frames",
                        f"{_f(cli.get('wall_s'))} s wall, peak RSS "
                        f"{_f(cli.get('peak_rss_mb'), '%.0f')} MB",
                        f"1 thread: {_f((cli1 or {}).get('wall_s'))} s",
                        _f(g.get("cli_parallel_speedup"), "%.2f", "x on 2 cores"),
                        "< 15 s (4096^2, quiet machine)", _load(g.get("load_average_at_start"))))
        out.append((f"gain, {big}^2 x 8 frames, full sigma search",
                    f"{_f(sp.get('seconds'))} s, peak RSS {_f(sp.get('peak_rss_mb'), '%.0f')} MB "
                    f"(warm-up/cold {_f(sp.get('warmup_cold_s'))} s)",
                    f"Xmipp {g.get('xmipp', {}).get('quoted_4k8_s', '?')} s QUOTED, not run "
                    "(cannot be built here)",
                    _f(g.get("xmipp", {}).get("quoted_4k8_s", 0) / sp["seconds"], "%.1f", "x")
                    if sp.get("seconds") and not g.get("quick") else "-", "< 15 s",
                    _load(g.get("load_average_at_start"))))
        if "parallel_speedup_warm" in g:
            out.append((f"gain estimate, 2 cores vs 1 thread, same file, {g.get('repeat', 1)} "
                        "interleaved pairs: computation (second run in the process, memory "
                        "faulted in)",
                        _f(g.get("parallel_speedup_warm"), "%.2f", "x") + " (best), median "
                        + _f(g.get("parallel_speedup_warm_median"), "%.2f", "x"),
                        "CPU time 2 cores / 1 thread: "
                        + _f(g["cpu_seconds_second_run"]["all"] / g["cpu_seconds_second_run"]["one"],
                             "%.2f"), "", ">= 1.8x", _load(g.get("load_end"))))
            ft = g.get("first_touch", {})
            out.append(("gain estimate, 2 cores vs 1 thread, first run of a fresh process "
                        "(page faults of ~1.5 GB included)",
                        _f(g.get("parallel_speedup"), "%.2f", "x") + " (best), median "
                        + _f(g.get("parallel_speedup_median"), "%.2f", "x"),
                        f"1 thread {_f(g.get('one_thread_s'))} s; fresh memory written at "
                        f"{_f(ft.get('first_write_gb_s'), '%.2f')} GB/s, rewritten at "
                        f"{_f(ft.get('rewrite_gb_s'), '%.0f')} GB/s", "", ">= 1.8x",
                        _load(g.get("load_end"))))
        else:
            out.append((f"gain estimate, 2 cores vs 1 thread, same file, best of {g.get('repeat', 1)}",
                        _f(g.get("parallel_speedup"), "%.2f", "x"),
                        f"1 thread {_f(g.get('one_thread_s'))} s", "", ">= 1.8x",
                        _load(g.get("load_end"))))
        out.append(("gain memory, 16 vs 8 frames", _f(g.get("memory_growth_16_over_8"), "%.2f"),
                    "", "", "flat (1.0)", _load(g.get("load_end"))))
        for a in g.get("accuracy", []):
            both = a.get("camcorr_independent_r2")
            out.append((f"gain accuracy R^2, {a.get('case')}", _f(a.get("camcorr_r2"), "%.3f")
                        + (f"; fields='independent' {_f(both, '%.3f')}" if both is not None else ""),
                        f"RELION's estimator, same run: {_f(a.get('relion_r2'), '%.3f')}", "",
                        "", _load(g.get("load_end"))))
    ff = r.get("bench_flatfield")
    if ff:
        for label, d in ff.get("datasets", {}).items():
            out.append((f"flat-field, empty tiles, {label}",
                        f"{_f(d.get('camcorr_empty_s', 0) * 1e3, '%.1f', ' ms')}",
                        f"BaSiCPy fit, same run: {_f(d.get('basicpy_all_s', 0) * 1e3, '%.0f', ' ms')}"
                        if "basicpy_all_s" in d else "not run",
                        _f(d.get("speedup_vs_basicpy_all"), "%.1f", "x"), ">= 20x",
                        _load(ff.get("load_end"))))
            if "basicpy_path_over_direct" in d:
                own = d.get("basicpy_path_over_own_fit")
                ho = d.get("basicpy_path_heldout_over_direct")
                out.append((f"flat-field, our BaSiCPy path / direct BaSiCPy, {label}",
                            _f(d["basicpy_path_over_direct"], "%.3f")
                            + (f" (best of {ff.get('repeat', '?')} each)"),
                            ("our overhead: path / its own BaSiC.fit " + _f(own, "%.3f")
                             if own else "")
                            + ("; default path with the held-out refit (QC): "
                               + _f(ho, "%.2f", "x direct") if ho else ""),
                            "", "<= 1.05", _load(ff.get("load_end"))))
    mr = r.get("bench_median_recall")
    if mr:
        for row in mr.get("rows", []):
            if row.get("planes") == 10 and row.get("rule") == "chi2":
                rec, lim = row.get("recall_percent", {}), row.get("limit_percent", {})
                out.append((f"bad pixels found in 10 planes, rule chi2, {row.get('data')} "
                            f"({' x '.join(str(v) for v in mr.get('shape', []))})",
                            "4x: " + _f(rec.get("4x"), "%.2f", " %") + ", 2x: "
                            + _f(rec.get("2x"), "%.2f", " %"),
                            "chi-square limit: 4x " + _f(lim.get("4x"), "%.2f", " %") + ", 2x "
                            + _f(lim.get("2x"), "%.2f", " %"), "",
                            "FP " + _f(row.get("fp_percent"), "%.3f", " %") + " (rate "
                            + _f(100 * mr.get("fpr", 0), "%.3g", " %") + ")",
                            _load(mr.get("load_end"))))
    cp = r.get("bench_cp_illumination")
    if cp and "camcorr auto" in cp and "CP median 125" in cp:
        a, m = cp["camcorr auto"], cp["CP median 125"]
        out.append(("flat-field vs CorrectIlluminationCalculate, CP example 72 x 512x512, "
                    "held-out cells CV / background CV",
                    f"camcorr defaults {_f(a.get('held_out_cell_cv'), '%.4f')} / "
                    f"{_f(a.get('held_out_bg_cv'), '%.3f')}",
                    f"CellProfiler median filter 125, same run: "
                    f"{_f(m.get('held_out_cell_cv'), '%.4f')} / {_f(m.get('held_out_bg_cv'), '%.3f')}",
                    "", "lower is flatter", _load(cp.get("load_end"))))
    dk = r.get("bench_dask")
    if dk and "dark" in dk and "dark n/4" in dk and "error" not in dk["dark"]:
        out.append(("dask dark statistics, peak RSS all / quarter of the frames",
                    _f(dk["dark"]["peak_rss_mb"] / dk["dark n/4"]["peak_rss_mb"], "%.2f"), "", "",
                    "flat (1.0)", _load(dk.get("load_end"))))
    return out


def header(merged: dict, run: dict) -> str:
    """The sentence above the table: which run, when, how loaded."""
    cpus = run.get("cpus") or next(iter(merged.values()), {}).get("cpus", "?")
    if run:
        per = ", ".join(f"{n.replace('bench_', '')} {r['seconds'] / 60:.1f} min"
                        for n, r in run.get("benchmarks", {}).items())
        return (f"Last run: `benchmarks/run_all.py{' --quick' if run.get('mode') == 'quick' else ''}`"
                f" ({run.get('mode')} sizes), started {run.get('started_utc')} UTC, "
                f"{run.get('total_seconds', 0) / 60:.1f} min in all ({per}); {cpus} cores, load "
                f"average {_load(run.get('load_start'))} at the start and "
                f"{_load(run.get('load_end'))} at the end; the load column is the 1-minute load "
                "average when the row was measured. Numbers: `benchmarks/last_run.json`.")
    dates = sorted({d.get("date_utc", "?") for d in merged.values()})
    return (f"Last run: {', '.join(dates) or 'none'} (UTC), {cpus} cores shared with other jobs; "
            "the load column is the 1-minute load average when the row was measured. Numbers: "
            "`benchmarks/last_run.json`.")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--results", type=Path, default=RESULTS, help="folder of the JSON files")
    ap.add_argument("--print-only", action="store_true",
                    help="print the table; leave README.md and last_run.json alone")
    args = ap.parse_args(argv)
    merged = {}
    for name in NAMES:
        p = args.results / f"{name}.json"
        if p.is_file():
            merged[name] = json.loads(p.read_text())
    run_file = args.results / "run_all.json"
    run = json.loads(run_file.read_text()) if run_file.is_file() else {}
    if run:
        merged["run_all"] = run
    lines = [START, "", header(merged, run), "",
             "| benchmark | camcorr | peer / reference, same run unless QUOTED | ratio | target | load |",
             "|---|---|---|---|---|---|"]
    failed = {n: r for n, r in run.get("benchmarks", {}).items() if not r.get("ok")}
    for n, r in failed.items():
        merged.pop(n, None)
        lines.append(f"| {n} | FAILED: {r.get('problem')} (log: `{r.get('log')}`) | | | | "
                     f"{_load(r.get('load_after'))} |")
    for row in rows(merged):
        lines.append("| " + " | ".join(str(c).replace("|", "/") for c in row) + " |")
    missing = [n for n in NAMES if n not in merged and n not in failed]
    if missing:
        lines += ["", "Not run in the last run: " + ", ".join(missing) + "."]
    lines += ["", END]
    print("\n".join(lines))
    if args.print_only:
        return 0
    (HERE / "last_run.json").write_text(json.dumps(merged, indent=1))
    readme = HERE / "README.md"
    text = readme.read_text()
    if START in text and END in text:
        a, b = text.index(START), text.index(END) + len(END)
        text = text[:a] + "\n".join(lines) + text[b:]
    else:
        raise SystemExit(f"{readme} has no {START} ... {END} markers")
    readme.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
