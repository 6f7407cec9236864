"""The input gate of the Python API (camcorr.io): files and arrays, before any pixel is used."""
from __future__ import annotations

import numpy as np
import pytest
import tifffile

from camcorr.errors import CamcorrError
from camcorr.io import check_array, inspect_tiff, iter_planes, read_tiff


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    out = {}
    out["rgb"] = tmp_path / "rgb.tif"
    tifffile.imwrite(out["rgb"], rng.integers(0, 255, (8, 8, 3), dtype=np.uint8),
                     photometric="rgb")
    out["palette"] = tmp_path / "pal.tif"
    tifffile.imwrite(out["palette"], rng.integers(0, 255, (8, 8), dtype=np.uint8),
                     photometric="palette",
                     colormap=rng.integers(0, 65535, (3, 256), dtype=np.uint16))  # colours
    out["grey_palette"] = tmp_path / "grey_pal.tif"
    tifffile.imwrite(out["grey_palette"], rng.integers(0, 255, (8, 8), dtype=np.uint8),
                     photometric="palette",
                     colormap=np.tile(np.arange(256, dtype=np.uint16) * 257, (3, 1)))
    long = rng.integers(0, 1000, (100, 16, 16)).astype(np.uint16)
    out["truncated"] = tmp_path / "trunc.tif"
    tifffile.imwrite(out["truncated"], long, imagej=True, metadata={"axes": "ZYX"})
    data = out["truncated"].read_bytes()
    out["truncated"].write_bytes(data[: len(data) // 2])
    out["empty"] = tmp_path / "empty.tif"
    out["empty"].write_bytes(b"")
    nan = rng.random((4, 8, 8)).astype(np.float32)
    nan[2, 3, 4] = np.nan
    out["nan"] = tmp_path / "nan.tif"
    tifffile.imwrite(out["nan"], nan, photometric="minisblack")  # not tifffile's RGB guess
    out["good"] = tmp_path / "good.tif"
    tifffile.imwrite(out["good"], long[:10])
    return out


@pytest.mark.parametrize("kind, pattern", [
    ("rgb", "RGB colour image.*Split"), ("palette", "palette"),
    ("truncated", r"truncated.*about \d+ of 100 planes"), ("empty", r"empty file \(0 bytes\)"),
    ("nan", r"1 non-finite value.*index \(2, 3, 4\)")])
def test_read_tiff_refuses(files, kind, pattern):
    with pytest.raises(CamcorrError, match=pattern) as info:
        read_tiff(files[kind], argument="STACK")
    assert info.value.argument == "STACK"


def test_iter_planes_checks_every_file_before_the_first_block(files):
    it = iter_planes([files["good"], files["rgb"]], argument="MOVIE")
    with pytest.raises(CamcorrError, match="RGB"):
        next(it)
    blocks = list(iter_planes(files["good"], chunk=4))
    assert [b.shape[0] for b in blocks] == [4, 4, 2]
    with pytest.raises(CamcorrError, match="non-finite"):
        list(iter_planes(files["nan"], chunk=1))
    assert len(list(iter_planes(files["nan"], chunk=1, finite="allow"))) == 4


def test_grey_palette_is_greyscale(files):
    """8-bit data with a grey look-up table (e.g. CellProfiler's example images) is greyscale."""
    data, info = read_tiff(files["grey_palette"])
    assert data.shape == (8, 8) and data.dtype == np.uint8


def test_inspect_reads_no_pixels(files):
    info = inspect_tiff(files["good"])
    assert info.shape == (10, 16, 16) and info.dtype == np.uint16


def test_check_array():
    assert check_array(np.ones((3, 3)), "x", ndim=(2,)).shape == (3, 3)
    with pytest.raises(CamcorrError, match="colour"):
        check_array(np.ones((4, 4)), "Input image", multichannel=True)
    with pytest.raises(CamcorrError, match="pixel type"):
        check_array(np.ones((4, 4), complex), "Input image")
    with pytest.raises(CamcorrError, match="dimensions"):
        check_array(np.ones(4), "Input image", ndim=(2, 3))
    with pytest.raises(CamcorrError, match="non-finite"):
        check_array(np.array([[np.inf, 1.0]]), "Input image")
