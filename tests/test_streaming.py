"""Streaming file-to-file equals the in-memory path, bit for bit, for every block size.

Each streamed command line (flash correct, median, flatfield apply, gain normalize) is run with
the block size forced to several values (1 plane, a size that does not divide the stack, the whole
stack) and compared with the engine function applied to the whole array read in memory.
"""
from __future__ import annotations

import numpy as np
import pytest
import tifffile

import camcorr.aposteriori.cli as apo_cli
import camcorr.flash.stream as flash_stream
import camcorr.flatfield.cli as ff_cli
import camcorr.median.cli as median_cli
from camcorr import streaming
from camcorr.aposteriori.normalize import compute_stats, normalize
from camcorr.cli import main
from camcorr.errors import CamcorrError
from camcorr.flash import correct_interleaved
from camcorr.flash.params import FlashParams
from camcorr.flatfield import apply_flatfield
from camcorr.flatfield.profiles import Profiles, save_profiles
from camcorr.io import read_tiff, write_tiff
from camcorr.median import selective_median

BLOCKS = (1, 3, 1000)  # one plane, a size that leaves a short last block, the whole stack


def _force_block(monkeypatch, module, size):
    monkeypatch.setattr(module, "planes_per_block", lambda *a, **k: size)


def _flash_params(shape, rng):
    ny, nx = shape
    return FlashParams(A=rng.uniform(20, 200, shape).astype(np.float32),
                       B=rng.uniform(1e-4, 1e-3, shape).astype(np.float32),
                       offset=rng.uniform(95, 105, shape).astype(np.float32))


def _camera_stack(rng, shape, offset=100.0):
    """Raw uint16 frames with structure, noise and the full range (clipping exercised)."""
    signal = rng.gamma(2.0, 300.0, shape)
    signal[..., 0, 0] = 70000.0  # beyond uint16: clipped in the file, kept at max
    raw = offset + signal + rng.normal(0, 3, shape)
    return np.clip(np.rint(raw), 0, 65535).astype(np.uint16)


# ----------------------------------------------------------------------------- reader/writer
def test_plane_reader_layouts(tmp_path, rng):
    data = rng.integers(0, 4000, (2, 3, 5, 7)).astype(np.uint16)
    plain = tmp_path / "plain.tif"
    tifffile.imwrite(plain, data, imagej=True, metadata={"axes": "TZYX"})
    big = tmp_path / "bigendian.tif"
    tifffile.imwrite(big, data.reshape(6, 5, 7), byteorder=">")
    comp = tmp_path / "zlib.tif"
    tifffile.imwrite(comp, data.reshape(6, 5, 7), compression="zlib")
    for path in (plain, big, comp):
        with streaming.PlaneReader(path) as r:
            assert r.n_planes == 6 and r.plane_shape == (5, 7) and r.dtype.isnative
            np.testing.assert_array_equal(r.read(1, 4), data.reshape(6, 5, 7)[1:4])
            planes, pos = r.read_unique([5, 0, 5, 1])
            np.testing.assert_array_equal(planes[pos], data.reshape(6, 5, 7)[[5, 0, 5, 1]])
            assert planes.shape[0] == 3  # each distinct plane read once
    with streaming.PlaneReader(plain) as r:
        assert r.info.axes == "TZYX" and r.info.shape == (2, 3, 5, 7)


def test_write_planes_is_write_tiff(tmp_path, rng):
    """Same bytes as the in-memory writer, for an ImageJ hyperstack and a plain TIFF."""
    for dtype, axes in ((np.uint16, "ZCYX"), (np.float64, "ZYX")):
        shape = (4, 2, 6, 5) if axes == "ZCYX" else (5, 6, 5)
        data = rng.normal(100, 10, shape).astype(dtype)
        meta = {"spacing": 0.3, "unit": "um"}
        a = write_tiff(tmp_path / f"a{axes}.tif", data, axes=axes, imagej_metadata=meta,
                       resolution=(2.0, 2.0))
        flat = data.reshape((-1,) + shape[-2:])
        b = streaming.write_planes(tmp_path / f"b{axes}.tif", shape, dtype,
                                   (flat[i:i + 3] for i in range(0, flat.shape[0], 3)),
                                   axes=axes, imagej_metadata=meta, resolution=(2.0, 2.0))
        assert a.read_bytes() == b.read_bytes()


def test_write_planes_atomic_on_error(tmp_path):
    def bad_blocks():
        yield np.zeros((1, 4, 4), np.uint16)
        raise CamcorrError("stop", argument="x", expected="y", received="z")

    with pytest.raises(CamcorrError):
        streaming.write_planes(tmp_path / "out.tif", (3, 4, 4), np.uint16, bad_blocks())
    assert list(tmp_path.iterdir()) == []  # no output, no temporary file left


def test_parse_memory_and_block_size():
    assert streaming.parse_memory(None) == streaming.DEFAULT_MEMORY == 1 << 30
    assert streaming.parse_memory("512M") == 512 << 20
    assert streaming.parse_memory("1.5G") == 3 << 29
    assert streaming.parse_memory("2GiB") == 2 << 30
    for bad in ("lots", "12Q", "10K"):
        with pytest.raises(CamcorrError) as err:
            streaming.parse_memory(bad)
        assert "--memory" in str(err.value)
    # 1 GiB budget, 1024^2 uint16 planes read with their previous frames into uint16 output
    n = streaming.planes_per_block(1 << 30, 1024 * 1024, 6)
    assert n == (1 << 30) // (6 * 1024 * 1024) and n * 6 * 1024 * 1024 <= 1 << 30
    assert streaming.planes_per_block(1, 1024 * 1024, 6) == 1          # at least one plane
    assert streaming.planes_per_block(1 << 30, 16, 6, n_planes=10) == 10  # never above the stack
    assert streaming.MEMORY_PARAM.default == "1G"


# ----------------------------------------------------------------------------- flash
def _run_flash(files, out_dir, params, cycle, dtype):
    return flash_stream.correct_files(files, [out_dir / f.name for f in files], params,
                                      prepare=lambda shape: params, cycle=cycle, dtype=dtype)


@pytest.mark.parametrize("block", BLOCKS)
@pytest.mark.parametrize("cycle", ["per Z", "per stack"])
def test_flash_channel_files_equal_in_memory(tmp_path, rng, monkeypatch, block, cycle):
    _force_block(monkeypatch, flash_stream, block)
    params = _flash_params((9, 11), rng)
    stacks = [_camera_stack(rng, (7, 9, 11)) for _ in range(3)]
    files = []
    for c, s in enumerate(stacks):
        files.append(tmp_path / f"ch{c}.tif")
        tifffile.imwrite(files[-1], s, imagej=True, metadata={"axes": "ZYX"})
    for dtype in ("keep", "float32"):
        out = tmp_path / dtype
        written = _run_flash(files, out, params, cycle, dtype)
        expected = correct_interleaved(stacks, params, cycle=cycle, dtype=dtype)
        for w, e in zip(written, expected):
            got, info = read_tiff(w)
            assert got.dtype == e.dtype and info.axes == "ZYX"
            np.testing.assert_array_equal(got, e)


@pytest.mark.parametrize("block", BLOCKS)
def test_flash_hyperstack_equal_in_memory(tmp_path, rng, monkeypatch, block):
    from camcorr.flash.cli import hyperstack_to_tczyx

    _force_block(monkeypatch, flash_stream, block)
    params = _flash_params((8, 6), rng)
    data = _camera_stack(rng, (2, 5, 3, 8, 6))  # T, Z, C, Y, X as ImageJ stores it
    src = tmp_path / "hyper.tif"
    tifffile.imwrite(src, data, imagej=True, metadata={"axes": "TZCYX"})
    (written,) = _run_flash([src], tmp_path / "out", params, "per Z", "keep")
    tczyx, restore = hyperstack_to_tczyx(data, "TZCYX")
    expected = restore(np.stack([np.stack(correct_interleaved(list(ch), params, dtype="keep"))
                                 for ch in tczyx]))
    got, info = read_tiff(written)
    assert info.axes == "TZCYX"
    np.testing.assert_array_equal(got, expected)


def test_flash_previous_frames_is_the_acquisition_order():
    """The frame before each (channel, plane) is the one before it in acquisition order."""
    from camcorr.flash.correct import acquisition_order

    for cycle in ("per Z", "per stack"):
        order = acquisition_order(3, 4, cycle)
        prev = flash_stream.previous_frames(3, 4, cycle)
        expected = np.full((3, 4), -1)
        for (c0, z0), (c1, z1) in zip(order[:-1], order[1:]):
            expected[c1, z1] = c0 * 4 + z0
        np.testing.assert_array_equal(prev, expected)


# ----------------------------------------------------------------------------- median
def _noisy_stack(rng, shape):
    noise = np.full(shape[-2:], 4.0)
    noise[rng.integers(0, shape[-2], 12), rng.integers(0, shape[-1], 12)] = 40.0  # RTS/hot
    return np.clip(rng.normal(300, noise, shape), 0, None).astype(np.uint16)


@pytest.mark.parametrize("block", BLOCKS)
def test_median_stack_equal_in_memory(tmp_path, rng, monkeypatch, block):
    _force_block(monkeypatch, median_cli, block)
    data = _noisy_stack(rng, (11, 24, 20))
    src = tmp_path / "stack.tif"
    tifffile.imwrite(src, data, imagej=True, metadata={"axes": "ZYX"})
    out = tmp_path / "clean.tif"
    assert main(["median", str(src), "-o", str(out)]) == 0
    expected = selective_median(data)
    assert expected.counts["flagged"] >= 10  # the noisy pixels were found
    got, info = read_tiff(out)
    assert got.dtype == np.uint16 and info.axes == "ZYX"
    np.testing.assert_array_equal(got, expected.corrected)


@pytest.mark.parametrize("block", BLOCKS)
def test_median_channels_equal_in_memory(tmp_path, rng, monkeypatch, block):
    _force_block(monkeypatch, median_cli, block)
    data = _noisy_stack(rng, (6, 2, 16, 18))  # Z, C, Y, X
    data[:, 1] //= 3  # the channels differ in brightness
    src = tmp_path / "zc.tif"
    tifffile.imwrite(src, data, imagej=True, metadata={"axes": "ZCYX"})
    out = tmp_path / "clean.tif"
    mask_out = tmp_path / "mask.tif"
    assert main(["median", str(src), "-o", str(out), "--mask-out", str(mask_out),
                 "--rule", "knee", "--mean-pass"]) == 0
    expected = data.copy()
    mask = np.zeros(data.shape[-2:], bool)
    for c in range(2):
        res = selective_median(data[:, c], rule="knee", mean_pass=True)
        expected[:, c] = res.corrected
        mask |= res.mask
    np.testing.assert_array_equal(read_tiff(out)[0], expected)
    np.testing.assert_array_equal(read_tiff(mask_out)[0] > 0, mask)


def test_streamed_projection_equals_in_memory(rng):
    """The accumulator reproduces the in-memory projection bit for bit, however blocked."""
    from camcorr.median import _kernels
    from camcorr.median.selective import projections

    data = rng.normal(1000, 30, (13, 10, 9)).astype(np.float32)
    mean, std = _kernels.mean_std_numba(data)
    for size in (1, 4, 13):
        for backend in ("numba", "numpy"):
            m, s, n = projections((data[i:i + size] for i in range(0, 13, size)),
                                  backend=backend)
            assert n == 13
            np.testing.assert_array_equal(m, mean)
            np.testing.assert_array_equal(s, std)
    np.testing.assert_allclose(std, data.astype(np.float64).std(axis=0, ddof=1), rtol=1e-10)


# ----------------------------------------------------------------------------- flat-field
@pytest.mark.parametrize("block", BLOCKS)
def test_flatfield_apply_equal_in_memory(tmp_path, rng, monkeypatch, block):
    _force_block(monkeypatch, ff_cli, block)
    yy, xx = np.mgrid[0:12, 0:14]
    flat = 1.0 + 0.3 * np.cos(yy / 6.0) * np.sin(xx / 7.0)
    prof = Profiles(flatfield=flat / flat.mean(), darkfield=np.full((12, 14), 7.0), baseline=3.0)
    npz = tmp_path / "profiles.npz"
    save_profiles(prof, npz)
    stack = _camera_stack(rng, (5, 12, 14), offset=7.0)
    tile2d = _camera_stack(rng, (12, 14), offset=7.0)
    small = _camera_stack(rng, (4, 6, 7), offset=7.0)  # resampled profiles
    names = []
    for name, arr in (("stack.tif", stack), ("tile.tif", tile2d), ("small.tif", small)):
        tifffile.imwrite(tmp_path / name, arr, photometric="minisblack")
        names.append(str(tmp_path / name))
    for dtype in ("keep", "float32"):
        out = tmp_path / f"out_{dtype}"
        assert main(["flatfield", "apply", *names, "--profiles", str(npz), "-o", str(out),
                     "--dtype", dtype, "--resample"]) == 0
        for i, (name, arr) in enumerate((("stack.tif", stack), ("tile.tif", tile2d),
                                         ("small.tif", small))):
            exp = apply_flatfield(arr, prof, index=i, dtype=None if dtype == "keep" else dtype,
                                  resample=True, rescale="ceiling")  # the CLI's default
            got = read_tiff(out / name)[0]
            assert got.dtype == exp.dtype and got.shape == exp.shape
            np.testing.assert_array_equal(got, exp)


# ----------------------------------------------------------------------------- normalize
@pytest.mark.parametrize("block", BLOCKS)
def test_normalize_equal_in_memory(tmp_path, rng, monkeypatch, block):
    # force the block of the writing pass; the statistics pass keeps its blocks of 16 planes
    monkeypatch.setattr(apo_cli, "planes_per_block", lambda *a, n_planes=None, **k:
                        n_planes if n_planes == apo_cli.STATS_BLOCK else block)
    gain = rng.uniform(0.8, 1.2, (10, 12))
    frames = [np.clip(rng.poisson(200 * gain, (n, 10, 12)) + 100, 0, None).astype(np.uint16)
              for n in (20, 17)]
    paths = []
    for k, f in enumerate(frames):
        paths.append(tmp_path / f"movie{k}.tif")
        tifffile.imwrite(paths[-1], f)
    out = tmp_path / "out"
    assert main(["gain", "normalize", *map(str, paths), "-o", str(out), "--dtype", "float32"]) == 0
    # the in-memory reference: statistics over blocks of 16 planes per file, as before streaming
    stats = compute_stats(lambda: (f[i:i + 16] for f in frames for i in range(0, len(f), 16)))
    for p, f in zip(paths, frames):
        exp = normalize(f, stats, dtype=np.float32)
        np.testing.assert_array_equal(read_tiff(out / p.name)[0], exp)


# ----------------------------------------------------------------------------- memory
@pytest.mark.parametrize("command", ["flash", "median"])
def test_peak_memory_follows_the_budget_not_the_file(tmp_path, rng, command):
    """Peak traced allocations stay within --memory (plus one plane's worth of slack) for a
    stack several times the budget, where the in-memory path needs twice the file."""
    import tracemalloc

    from camcorr.flash.params import params_from_arrays, write_params

    shape = (160, 256, 256)  # 21 MB of uint16
    stack = _noisy_stack(rng, shape)
    src = tmp_path / "stack.tif"
    tifffile.imwrite(src, stack, imagej=True, metadata={"axes": "ZYX"})
    del stack
    budget = 12 << 20
    if command == "flash":
        p = _flash_params(shape[1:], rng)
        ppath = write_params(params_from_arrays(p.A, p.B, p.offset, None), tmp_path / "P.tif")
        args = ["flash", "correct", str(src), "-p", str(ppath), "-o", str(tmp_path / "out")]
    else:
        args = ["median", str(src), "-o", str(tmp_path / "clean.tif")]
    main(args + ["--memory", "12M"])  # kernels compiled/loaded outside the measurement
    tracemalloc.start()
    try:
        assert main(args + ["--memory", "12M"]) == 0
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    plane = 256 * 256 * 8
    assert peak <= budget + 4 * plane, f"peak {peak / 2**20:.1f} MiB for a 12 MiB budget"
    assert src.stat().st_size > budget  # the file does not fit the budget
