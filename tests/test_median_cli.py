"""Command line of median, gain normalize and frc: outputs, safety, exit status 2 on bad input."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import tifffile

from camcorr.cli import main
from camcorr.operations import all_operations
from camcorr.simulate import noise


def run(args, capsys):
    status = main([str(a) for a in args])
    out = capsys.readouterr()
    return status, out.out, out.err


@pytest.fixture
def stack_file(tmp_path, rng):
    var = np.full((48, 48), 4.0)
    var[7, 9] = var[30, 0] = 1600.0
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, noise.noisy_stack(var, 20, rng=rng).stack, imagej=True,
                     metadata={"axes": "ZYX", "spacing": 0.2, "unit": "um"})
    return path


def test_operations_are_registered():
    ops = all_operations()
    assert ops["median"].command == ("median",)
    assert ops["gain-normalize"].command == ("gain", "normalize")
    assert ops["frc"].command == ("frc",)
    assert ops["median"].cellprofiler_module == "SelectiveMedian"
    for p in ops["median"].params:
        assert p.label and p.help


def test_median_cli_default_output_and_mask(stack_file, capsys):
    status, out, _ = run(["median", stack_file, "--mask-out", stack_file.parent / "m.tif"],
                         capsys)
    assert status == 0 and "replaced 2 pixel(s)" in out
    corrected = tifffile.imread(stack_file.parent / "stack_median.tif")
    raw = tifffile.imread(stack_file)
    assert corrected.dtype == raw.dtype and corrected.shape == raw.shape
    mask = tifffile.imread(stack_file.parent / "m.tif")
    assert set(np.flatnonzero(mask.ravel())) == {7 * 48 + 9, 30 * 48}
    with tifffile.TiffFile(stack_file.parent / "stack_median.tif") as tif:
        assert tif.imagej_metadata["spacing"] == pytest.approx(0.2)


def test_median_cli_refuses_to_overwrite_input(stack_file, capsys):
    before = stack_file.read_bytes()
    status, _, err = run(["median", stack_file, "-o", stack_file], capsys)
    assert status == 2 and "overwrite" in err and "Traceback" not in err
    assert stack_file.read_bytes() == before


@pytest.mark.parametrize("case", ["one_frame", "constant", "nan", "missing"])
def test_median_cli_bad_input_exits_2(tmp_path, capsys, case):
    path = tmp_path / "bad.tif"
    if case == "one_frame":
        tifffile.imwrite(path, np.zeros((16, 16), np.uint16))
    elif case == "constant":
        tifffile.imwrite(path, np.full((4, 16, 16), 9, np.uint16), photometric="minisblack")
    elif case == "nan":
        data = np.ones((4, 16, 16), np.float32)
        data[1, 2, 3] = np.nan
        tifffile.imwrite(path, data, photometric="minisblack")
    status, _, err = run(["median", path], capsys)
    assert status == 2 and "Traceback" not in err and "error" in err


def test_gain_normalize_cli(tmp_path, capsys, rng):
    gain = 1 + 0.1 * rng.standard_normal((32, 32))
    paths = []
    for i in range(3):
        p = tmp_path / f"m{i}.tif"
        tifffile.imwrite(p, (100 + gain * (200 + 10 * rng.standard_normal((30, 32, 32))))
                         .astype(np.float32))
        paths.append(p)
    out = tmp_path / "out"
    status, text, err = run(["gain", "normalize", *paths, "-o", out, "--sigma0", "10",
                             "--i0", "250", "--stats", tmp_path / "s.npz"], capsys)
    assert status == 0, err
    assert "90 of 90 frames used" in text
    data = np.concatenate([tifffile.imread(out / p.name) for p in paths])
    assert np.allclose(data.mean(axis=0), 250, atol=1e-3)
    assert np.allclose(data.std(axis=0, ddof=1), 10, atol=1e-3)
    assert (tmp_path / "s.npz").is_file()
    # re-use the saved statistics
    status, text, err = run(["gain", "normalize", paths[0], "-o", tmp_path / "out2",
                             "--from-stats", tmp_path / "s.npz", "--dtype", "float32"], capsys)
    assert status == 0, err


def test_gain_normalize_cli_bad_inputs(tmp_path, capsys, rng):
    a = tmp_path / "a.tif"
    b = tmp_path / "b.tif"
    tifffile.imwrite(a, rng.random((5, 16, 16)).astype(np.float32))
    tifffile.imwrite(b, rng.random((5, 16, 17)).astype(np.float32))
    status, _, err = run(["gain", "normalize", a, b, "-o", tmp_path / "o"], capsys)
    assert status == 2 and "shapes differ" in err and "Traceback" not in err
    status, _, err = run(["gain", "normalize", a, "-o", tmp_path], capsys)
    assert status == 2 and "overwrite" in err
    dead = tmp_path / "dead.tif"
    d = rng.random((10, 16, 16)).astype(np.float32)
    d[:, 2, 2] = 0.5
    tifffile.imwrite(dead, d)
    status, _, err = run(["gain", "normalize", dead, "-o", tmp_path / "o3", "--zero-sigma",
                          "error"], capsys)
    assert status == 2 and "zero-sigma" in err
    status, text, err = run(["gain", "normalize", dead, "-o", tmp_path / "o4"], capsys)
    assert status == 0 and "1 dead pixel(s)" in text


def test_frc_cli(tmp_path, capsys, rng):
    a, b = tmp_path / "a.tif", tmp_path / "b.tif"
    tifffile.imwrite(a, rng.standard_normal((64, 64)).astype(np.float32))
    tifffile.imwrite(b, rng.standard_normal((64, 64)).astype(np.float32))
    status, text, err = run(["frc", a, b, "--plot", tmp_path / "f.png", "--json",
                             tmp_path / "f.json"], capsys)
    assert status == 0, err
    assert "cross-over" in text
    assert json.loads((tmp_path / "f.json").read_text())["fraction_above_threshold"] < 0.1
    assert (tmp_path / "f.png").stat().st_size > 1000
    c = tmp_path / "c.tif"
    tifffile.imwrite(c, rng.standard_normal((64, 65)).astype(np.float32))
    status, _, err = run(["frc", a, c], capsys)
    assert status == 2 and "shapes differ" in err and "Traceback" not in err


def test_cli_subprocess_has_no_traceback(tmp_path):
    path = tmp_path / "one.tif"
    tifffile.imwrite(path, np.zeros((16, 16), np.uint16))
    proc = subprocess.run([sys.executable, "-m", "camcorr", "median", str(path)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "only one frame" in proc.stderr
