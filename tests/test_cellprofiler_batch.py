"""Batch semantics through the real command line (``python -m cellprofiler -c``).

A module that aggregates over a group (SelectiveMedian "2D frames of the group",
EstimateResidualGain, FlatfieldFromEmptyTiles, FlashCarryoverCorrect time series) must never
compute from part of a group: ``-f/-l`` (``--first-image-set/--last-image-set``) that cut a group
stop the run with the module's own message and no output.  Whole groups run as usual, including
the cluster route: CreateBatchFiles -> ``--get-batch-commands`` (one ``-f/-l`` range per group) and
``--get-batch-commands-new`` (``-g Metadata_Movie=...``), each command run on its own.
"""
from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

from conftest import require_module

require_module("cellprofiler", "CellProfiler (cellprofiler extra, headless package)")

import cp_helpers as h  # noqa: E402

PIPELINES = h.PIPELINES


def _frames(folder: Path, movies=("movA", "movB"), n=6, shape=(24, 20), seed=0):
    """MOVIE_tNNNN.tif 2D frames (Poisson around 200 ADU, one noisy pixel per movie)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    stacks = {}
    for i, mv in enumerate(movies):
        stack = rng.poisson(200.0, (n,) + shape).astype(np.float64)
        stack[:, 3 + i, 5] += rng.normal(0, 300, n)  # a telegraph-like pixel, different per movie
        stack = np.clip(np.rint(stack), 0, 65535).astype(np.uint16)
        stacks[mv] = stack
        for t in range(n):
            tifffile.imwrite(folder / f"{mv}_t{t:04d}.tif", stack[t])
    return stacks


def _tiles(folder: Path, n=63, shape=(16, 16)):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for k in range(1, n + 1):
        tifffile.imwrite(folder / f"tile{k:04d}.tif",
                         rng.poisson(300.0, shape).astype(np.uint16))


#: (pipeline, input builder, module, message, output glob)
PARTIAL = [
    ("selective_median_2d_frames.cppipe", _frames, "SelectiveMedian",
     "SelectiveMedian computes the bad-pixel mask from every image set of a group",
     "*_median.tif*"),
    ("residual_gain.cppipe", _frames, "EstimateResidualGain",
     "EstimateResidualGain computes the gain from every image set of a group", "*gain*.tif*"),
    ("flatfield_empty_tiles.cppipe", _tiles, "FlatfieldFromEmptyTiles",
     "FlatfieldFromEmptyTiles computes the flat-field from every image set of a group",
     "*_flatfield.tif*"),
    ("flash_carryover_timeseries.cppipe", h.write_flash_timeseries, "FlashCarryoverCorrect",
     "the time series starts in the middle of a group", "*_flash.tif*"),
]


@pytest.mark.parametrize("pipeline,make,module,message,outputs", PARTIAL,
                         ids=[p[2] for p in PARTIAL])
def test_partial_group_is_refused(tmp_path, pipeline, make, module, message, outputs):
    in_dir, out_dir = tmp_path / "in", tmp_path / "out"
    make(in_dir)
    proc = h.run_headless(PIPELINES / pipeline, in_dir, out_dir, extra=["-f", "2", "-l", "3"])
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0, h.explain(proc)
    assert message in text, h.explain(proc)
    assert module in text and "Group_Index 2" in text, h.explain(proc)
    assert not list(out_dir.glob(outputs)), sorted(p.name for p in out_dir.iterdir())


def test_first_image_set_alone_is_refused_too(tmp_path):
    """``--first-image-set`` without a last one also cuts the first group."""
    in_dir, out_dir = tmp_path / "in", tmp_path / "out"
    _frames(in_dir)
    proc = h.run_headless(PIPELINES / "residual_gain.cppipe", in_dir, out_dir,
                          extra=["--first-image-set", "4"])
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "EstimateResidualGain computes the gain from every image set of a group" in text, \
        h.explain(proc)
    assert "3 image set(s) starting at Group_Index 4" in text, h.explain(proc)


def test_whole_group_ranges_run(tmp_path):
    """-f/-l covering exactly one whole group (what --get-batch-commands writes) is fine."""
    import camcorr.median as median

    in_dir, out_dir = tmp_path / "in", tmp_path / "out"
    stacks = _frames(in_dir)
    proc = h.run_headless(PIPELINES / "selective_median_2d_frames.cppipe", in_dir, out_dir,
                          extra=["-f", "7", "-l", "12"])
    assert proc.returncode == 0, h.explain(proc)
    assert not list(out_dir.glob("movA_*_median.tif*"))
    ref = median.selective_median(stacks["movB"])
    mask = tifffile.imread(next(out_dir.glob("movB_badpixels.tif*"))) > 0
    np.testing.assert_array_equal(mask, ref.mask)
    assert mask[4, 5]  # the noisy pixel of movB


def _batch_pipeline(tmp_path: Path, source: Path) -> Path:
    """`source` with CreateBatchFiles appended, saved as a new .cppipe."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[3]); import cp_helpers as h;"
        "h.init_cellprofiler();"
        "from cellprofiler_core.pipeline import Pipeline;"
        "from cellprofiler.modules.createbatchfiles import CreateBatchFiles;"
        "p = Pipeline(); p.load(sys.argv[1]);"
        "cb = CreateBatchFiles(); cb.set_module_num(len(p.modules()) + 1); p.add_module(cb);"
        "fd = open(sys.argv[2], 'w'); p.dump(fd); fd.close()")
    target = tmp_path / "with_batch.cppipe"
    proc = subprocess.run([sys.executable, "-c", code, str(source), str(target),
                           str(Path(__file__).parent)], capture_output=True, text=True,
                          timeout=300, env=h.user_environment())
    assert proc.returncode == 0, proc.stderr[-3000:]
    return target


def _run_batch_command(line: str, out_dir: Path) -> subprocess.CompletedProcess:
    """One line printed by --get-batch-commands, run with this Python's CellProfiler, the
    plugins and the TIFF reader option added (what a cluster job script does)."""
    args = shlex.split(line)
    assert args[0] == "CellProfiler", line
    cmd = [sys.executable, "-m", "cellprofiler", *args[1:], "-o", str(out_dir),
           "--plugins-directory", str(h.portable_plugins()), *h.READERS]
    return subprocess.run(cmd, cwd=h._portable["cwd"], env=h.user_environment(),
                          capture_output=True, text=True, timeout=600)


def test_createbatchfiles_and_batch_commands(tmp_path):
    """CreateBatchFiles -> Batch_data.h5 -> --get-batch-commands (-f/-l per group) and
    --get-batch-commands-new (-g Metadata_Movie=...): every command runs one whole group, and
    the result equals the engine on that group's frames."""
    import camcorr.median as median

    in_dir, batch_dir = tmp_path / "in", tmp_path / "batch"
    stacks = _frames(in_dir)
    pipeline = _batch_pipeline(tmp_path, PIPELINES / "selective_median_2d_frames.cppipe")
    proc = h.run_headless(pipeline, in_dir, batch_dir)
    batch = batch_dir / "Batch_data.h5"
    # CellProfiler 5 stops the run at CreateBatchFiles and exits 1 by design; the file counts
    assert batch.is_file(), h.explain(proc)
    assert not list(batch_dir.glob("*_median.tif*"))

    commands = {}
    for flag in ("--get-batch-commands", "--get-batch-commands-new"):
        got = subprocess.run([sys.executable, "-m", "cellprofiler", flag, str(batch)],
                             capture_output=True, text=True, timeout=300,
                             env=h.user_environment())
        assert got.returncode == 0, got.stderr[-2000:]
        commands[flag] = [ln for ln in got.stdout.splitlines() if ln.startswith("CellProfiler")]
    assert [ln.split(" -f ")[1] for ln in commands["--get-batch-commands"]] == \
        ["1 -l 6", "7 -l 12"]
    assert [ln.split(" -g ")[1] for ln in commands["--get-batch-commands-new"]] == \
        ["Metadata_Movie=movA", "Metadata_Movie=movB"]

    for flag, lines in commands.items():
        for line in lines:
            out_dir = tmp_path / f"run{flag.count('new')}_{lines.index(line)}"
            proc = _run_batch_command(line, out_dir)
            assert proc.returncode == 0, (line, h.explain(proc))
            movie = "movA" if lines.index(line) == 0 else "movB"
            other = "movB" if movie == "movA" else "movA"
            assert len(list(out_dir.glob(f"{movie}_t*_median.tif*"))) == 6, line
            assert not list(out_dir.glob(f"{other}_*")), line
            ref = median.selective_median(stacks[movie])
            mask = tifffile.imread(next(out_dir.glob(f"{movie}_badpixels.tif*"))) > 0
            np.testing.assert_array_equal(mask, ref.mask)
            for t in (0, 5):
                got = tifffile.imread(next(out_dir.glob(f"{movie}_t{t:04d}_median.tif*")))
                assert np.abs(got.astype(np.int64) - ref.corrected[t].astype(np.int64)).max() <= 1

    # a batch command cut inside a group is refused like any other run
    line = commands["--get-batch-commands"][1].replace("-f 7", "-f 9")
    proc = _run_batch_command(line, tmp_path / "cut")
    assert proc.returncode != 0
    assert "SelectiveMedian computes the bad-pixel mask from every image set of a group" in \
        proc.stdout + proc.stderr, h.explain(proc)


def test_group_option_with_metadata_prefix(tmp_path):
    """The README's example: ``-g Metadata_Movie=movB`` on the pipeline itself."""
    in_dir, out_dir = tmp_path / "in", tmp_path / "out"
    _frames(in_dir)
    proc = h.run_headless(PIPELINES / "residual_gain.cppipe", in_dir, out_dir,
                          extra=["-g", "Metadata_Movie=movB"])
    assert proc.returncode == 0, h.explain(proc)
    rows = h.read_image_csv(out_dir)
    assert {r["Metadata_Movie"] for r in rows} == {"movB"} and len(rows) == 6
    assert list(out_dir.glob("movB_gain.tif*")) and not list(out_dir.glob("movA_*"))
