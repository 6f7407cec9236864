"""Write the one results table of benchmarks/README.md from the last run's JSON files.

    .venv/bin/python benchmarks/make_table.py

Reads ``benchmarks/results/bench_*.json`` (written by each benchmark), merges them into
``benchmarks/last_run.json`` (kept in git, so the table can be traced to its numbers) and
replaces the text between ``<!-- results-table -->`` and ``<!-- /results-table -->`` in
benchmarks/README.md.  A benchmark that was not run shows as "not run".
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
NAMES = ("bench_flash", "bench_stream", "bench_median", "bench_gain", "bench_flatfield",
         "bench_dask")
START, END = "<!-- results-table -->", "<!-- /results-table -->"


def _load(v) -> str:
    return "%.1f" % v[0] if isinstance(v, (list, tuple)) and v else "?"


def _f(v, fmt="%.3g", suffix=""):
    return (fmt % v) + suffix if isinstance(v, (int, float)) else "-"


def rows(r: dict):
    out = []
    f = r.get("bench_flash")
    if f:
        c, ff, k, m = (f.get(n, {}) for n in ("correction_in_memory", "correction_files",
                                              "calibration", "calibration_memory"))
        ll = "LLSpy 0.5.1, same run" if "llspy_cpu_s" in c else "not run"
        out.append(("flash correction in memory, " + c.get("shape", ""),
                    f"{_f(c.get('camcorr_uint16_s'))} s warm, {_f(c.get('camcorr_uint16_cold_s'))} s cold",
                    f"{ll}: cpu {_f(c.get('llspy_cpu_s'))} s, numpy {_f(c.get('llspy_numpy_s'))} s",
                    _f(c.get("speedup_vs_fastest_llspy"), "%.1f", "x"), ">= 3x", _load(c.get("load"))))
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
        out.append((f"gain, {big}^2 x 8 frames, full sigma search",
                    f"{_f(sp.get('seconds'))} s, peak RSS {_f(sp.get('peak_rss_mb'), '%.0f')} MB "
                    f"(warm-up/cold {_f(sp.get('warmup_cold_s'))} s)",
                    f"Xmipp {g.get('xmipp', {}).get('quoted_4k8_s', '?')} s QUOTED, not run "
                    "(cannot be built here)",
                    _f(g.get("xmipp", {}).get("quoted_4k8_s", 0) / sp["seconds"], "%.1f", "x")
                    if sp.get("seconds") and not g.get("quick") else "-", "< 15 s",
                    _load(g.get("load_average_at_start"))))
        out.append(("gain, 2 cores vs 1 thread, same file", _f(g.get("parallel_speedup"), "%.2f", "x"),
                    f"1 thread {_f(g.get('one_thread_s'))} s", "", ">= 1.8x",
                    _load(g.get("load_end"))))
        out.append(("gain memory, 16 vs 8 frames", _f(g.get("memory_growth_16_over_8"), "%.2f"),
                    "", "", "flat (1.0)", _load(g.get("load_end"))))
        for a in g.get("accuracy", []):
            out.append((f"gain accuracy R^2, {a.get('case')}", _f(a.get("camcorr_r2"), "%.3f"),
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
    dk = r.get("bench_dask")
    if dk and "dark" in dk and "dark n/4" in dk and "error" not in dk["dark"]:
        out.append(("dask dark statistics, peak RSS all / quarter of the frames",
                    _f(dk["dark"]["peak_rss_mb"] / dk["dark n/4"]["peak_rss_mb"], "%.2f"), "", "",
                    "flat (1.0)", _load(dk.get("load_end"))))
    return out


def main() -> int:
    merged = {}
    for name in NAMES:
        p = RESULTS / f"{name}.json"
        if p.is_file():
            merged[name] = json.loads(p.read_text())
    (HERE / "last_run.json").write_text(json.dumps(merged, indent=1))
    dates = sorted({d.get("date_utc", "?") for d in merged.values()})
    lines = [START, "",
             f"Last run: {', '.join(dates) or 'none'} (UTC), {next(iter(merged.values()), {}).get('cpus', '?')} "
             "cores shared with other jobs; the load column is the 1-minute load average when the "
             "row was measured. Numbers: `benchmarks/last_run.json`.", "",
             "| benchmark | camcorr | peer / reference, same run unless QUOTED | ratio | target | load |",
             "|---|---|---|---|---|---|"]
    for row in rows(merged):
        lines.append("| " + " | ".join(str(c).replace("|", "/") for c in row) + " |")
    missing = [n for n in NAMES if n not in merged]
    if missing:
        lines += ["", "Not run in the last run: " + ", ".join(missing) + "."]
    lines += ["", END]
    readme = HERE / "README.md"
    text = readme.read_text()
    if START in text and END in text:
        a, b = text.index(START), text.index(END) + len(END)
        text = text[:a] + "\n".join(lines) + text[b:]
    else:
        raise SystemExit(f"{readme} has no {START} ... {END} markers")
    readme.write_text(text)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
