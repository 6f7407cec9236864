"""``camcorr gain estimate``: files in, gain TIFF and JSON report out; bad input exits 2."""
from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

from camcorr.cli import main
from camcorr.operations import get_operation
from camcorr.simulate import camera as C

from conftest import require_module


@pytest.fixture(scope="module")
def movie_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("gain_cli")
    gm = C.gain_map((64, 64), column_std=0.08, row_std=0.05, rng=1)
    mv = C.counting_movie(gm.gain, 24, dose_per_frame=2.0, contrast=0.1, rng=2)
    tifffile.imwrite(d / "a.tif", mv.frames[:12].astype(np.uint16))
    tifffile.imwrite(d / "b.tif", mv.frames[12:].astype(np.uint16))
    tifffile.imwrite(d / "ref.tif", gm.gain.astype(np.float32))
    bad = gm.gain.astype(np.float32).copy()
    bad[3, 3] = 0
    tifffile.imwrite(d / "ref_zero.tif", bad)
    tifffile.imwrite(d / "ref_shape.tif", np.ones((64, 60), np.float32))
    tifffile.imwrite(d / "one.tif", mv.frames[0].astype(np.uint16))
    nanm = mv.frames[:4].astype(np.float32)
    nanm[1, 2, 2] = np.nan
    tifffile.imwrite(d / "nan.tif", nanm, photometric="minisblack")
    const = np.full((4, 64, 64), 5, np.uint16)
    tifffile.imwrite(d / "const.tif", const, photometric="minisblack")
    return d, gm


def test_operation_definition():
    op = get_operation("gain-estimate")
    assert op.command == ("gain", "estimate")
    assert op.cellprofiler_module == "EstimateResidualGain"
    assert op.title == "Estimate Residual Gain"
    for p in op.params:
        assert p.label and p.help, p.name


def test_cli_blind_and_residual(movie_files, tmp_path, capsys):
    d, gm = movie_files
    out, rep = tmp_path / "gain.tif", tmp_path / "gain_report.json"
    assert main(["gain", "estimate", str(d / "a.tif"), str(d / "b.tif"), "-o", str(out),
                 "--report", str(rep), "--sigmas", "0 0.5 1 2 3"]) == 0
    g = tifffile.imread(out)
    assert g.dtype == np.float32 and g.shape == (64, 64)
    assert g.mean() == pytest.approx(1.0, abs=1e-4)
    assert np.corrcoef(g.ravel(), gm.gain.ravel())[0, 1] > 0.7  # not the inverse
    report = json.loads(rep.read_text())
    assert report["n_frames"] == 24 and report["mode"] == "blind"
    assert report["sigma_grid"] == [0.0, 0.5, 1.0, 2.0, 3.0]
    assert "noise_floor_counting" in report and "flag_std" in report
    out2 = tmp_path / "residual.tif"
    assert main(["gain", "estimate", str(d / "a.tif"), str(d / "b.tif"), "--gain-ref",
                 str(d / "ref.tif"), "-o", str(out2), "--iterations", "1"]) == 0
    r = tifffile.imread(out2)
    assert abs(np.corrcoef(r.ravel(), gm.gain.ravel())[0, 1]) < 0.3
    assert "residual gain from 24 frames" in capsys.readouterr().out


def test_cli_mrc_movie(movie_files, tmp_path):
    mrcfile = require_module("mrcfile", "mrcfile (extra 'mrc')")
    d, gm = movie_files
    frames = tifffile.imread(d / "a.tif")
    with mrcfile.new(tmp_path / "m.mrc") as m:
        m.set_data(frames.astype(np.int16))
    out = tmp_path / "g.tif"
    assert main(["gain", "estimate", str(tmp_path / "m.mrc"), "-o", str(out),
                 "--iterations", "1"]) == 0
    tif = tmp_path / "g_tif.tif"
    assert main(["gain", "estimate", str(d / "a.tif"), "-o", str(tif), "--iterations", "1"]) == 0
    np.testing.assert_allclose(tifffile.imread(out), tifffile.imread(tif), rtol=1e-6)


@pytest.mark.parametrize("args, words", [
    (["one.tif"], "too few frames"),
    (["const.tif"], "constant frame"),
    (["nan.tif"], "NaN"),
    (["a.tif", "--gain-ref", "ref_zero.tif"], "zero or negative"),
    (["a.tif", "--gain-ref", "ref_shape.tif"], "shape"),
    (["missing.tif"], "not found"),
    (["a.tif", "--sigmas", "0,-1"], "sigma"),
    (["a.tif", "--iterations", "0"], "out of range"),
])
def test_cli_bad_input_exits_2_without_traceback(movie_files, tmp_path, capsys, args, words):
    d, _ = movie_files
    argv = ["gain", "estimate"] + [str(d / a) if a.endswith(".tif") else a for a in args]
    argv += ["-o", str(tmp_path / "out.tif")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err
    assert not (tmp_path / "out.tif").exists()


def test_cli_never_overwrites_input(movie_files, capsys):
    d, _ = movie_files
    before = (d / "a.tif").read_bytes()
    assert main(["gain", "estimate", str(d / "a.tif"), "-o", str(d / "a.tif")]) == 2
    assert (d / "a.tif").read_bytes() == before
    assert "overwrite" in capsys.readouterr().err
