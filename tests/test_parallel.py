"""camcorr.parallel: dask streaming of the statistics equals the in-memory engine paths."""
import numpy as np
import pytest
import tifffile

from camcorr import CamcorrError
from camcorr.stats import RunningMoments

from conftest import require_module

da = require_module("dask.array", "dask (the 'dask' extra)")
P = require_module("camcorr.parallel")


@pytest.fixture
def dark(rng):
    """Dark frames of a camera with known offset and noise maps (uint16 ADU)."""
    off = 100 + 3 * rng.standard_normal((24, 20))
    noise = 1.6 * np.exp(0.3 * rng.standard_normal((24, 20)))
    frames = off + noise * rng.standard_normal((203, 24, 20))
    return np.clip(np.rint(frames), 0, 65535).astype(np.uint16), off, noise


def test_moments_equal_in_memory_running_moments(dark):
    frames, off, noise = dark
    ref = RunningMoments().update(frames)
    for chunk, tile in ((16, None), (7, (8, 6)), (500, None)):
        m = P.moments(frames, chunk_frames=chunk, tile=tile)
        assert m.count == 203
        np.testing.assert_allclose(m.mean, ref.mean, rtol=1e-13, atol=0)
        np.testing.assert_allclose(m.m2, ref.m2, rtol=1e-11, atol=0)


def test_offset_noise_recovers_truth(dark):
    frames, off, noise = dark
    o, n = P.offset_noise(da.from_array(frames, chunks=(32, 24, 20)), chunk_frames=32)
    assert np.median(np.abs(o - off)) < 0.2  # ADU
    assert np.median(np.abs(n / noise - 1)) < 0.1  # ~ 1/sqrt(2 x 203) per pixel, plus rounding
    assert o.dtype == n.dtype == np.float32


def test_same_bits_on_every_scheduler_and_for_numpy_and_dask(dark):
    frames, _, _ = dark
    a = P.moments(frames, chunk_frames=16, scheduler="sync")
    b = P.moments(da.from_array(frames, chunks=(50, 24, 20)), chunk_frames=16)
    c = P.moments(frames, chunk_frames=16, scheduler="threads")
    for m in (b, c):
        assert np.array_equal(a.mean, m.mean) and np.array_equal(a.m2, m.m2)


def test_flash_dark_moments_agree(dark):
    flash = require_module("camcorr.flash")
    if not hasattr(flash, "dark_moments"):
        pytest.skip("camcorr.flash.dark_moments not in this build")
    frames, _, _ = dark
    ref = flash.dark_moments(iter(frames[i:i + 10] for i in range(0, 203, 10)))
    m = P.dark_moments(frames, chunk_frames=10)
    np.testing.assert_allclose(m.mean, ref.mean, rtol=1e-13)
    np.testing.assert_allclose(m.m2, ref.m2, rtol=1e-10)


def test_tiff_files_are_read_lazily_in_blocks(tmp_path, dark):
    frames, _, _ = dark
    tifffile.imwrite(tmp_path / "a.tif", frames[:100])
    tifffile.imwrite(tmp_path / "b.tif", frames[100:], compression="zlib")
    arr = P.tiff_frames([tmp_path / "a.tif", tmp_path / "b.tif"], chunk_frames=30)
    assert arr.shape == frames.shape and arr.chunks[0] == (30, 30, 30, 10, 30, 30, 30, 13)
    m = P.moments([tmp_path / "a.tif", tmp_path / "b.tif"], chunk_frames=30)
    np.testing.assert_allclose(m.mean, frames.mean(axis=0), rtol=1e-12)


def test_normalization_stats_equal_engine(rng):
    apost = require_module("camcorr.aposteriori")
    gain = 1 + 0.05 * rng.standard_normal((16, 18))
    frames = rng.poisson(50 * gain, (120, 16, 18)).astype(np.float32)
    frames[7] = 0  # a blank frame to reject
    frames[30] *= 3  # a deviant frame
    ref = apost.compute_stats(frames)
    got = P.normalization_stats(da.from_array(frames, chunks=(25, 16, 18)), chunk_frames=25)
    np.testing.assert_array_equal(got.accepted, ref.accepted)
    np.testing.assert_array_equal(got.half, ref.half)
    assert not got.accepted[7] and not got.accepted[30]
    for which in ("a", "b", "full"):
        m1, s1 = ref.mean_sigma(which)
        m2, s2 = got.mean_sigma(which)
        np.testing.assert_allclose(m2, m1, rtol=1e-12)
        np.testing.assert_allclose(s2, s1, rtol=1e-10)


def test_sampled_median_and_flatfield_planes(rng):
    flat = np.linspace(0.7, 1.2, 40)[None, :] * np.ones((30, 1))
    flat /= flat.mean()
    planes = rng.poisson(400 * flat, (90, 30, 40)).astype(np.uint16)
    idx = np.arange(0, 90, 3)
    med = P.sampled_median(da.from_array(planes, chunks=(10, 30, 40)), idx, rows_per_chunk=7)
    np.testing.assert_array_equal(med, np.median(planes[idx], axis=0))
    ff = P.flatfield_planes(planes, idx, rows_per_chunk=8, sigma=2)
    assert abs(ff.mean() - 1) < 1e-6
    assert np.sqrt(np.mean((ff - flat) ** 2)) < 0.02


def test_flatfield_planes_equal_engine_statistic(rng):
    ff_mod = require_module("camcorr.flatfield")
    flat = np.linspace(0.6, 1.3, 32)[None, :] * np.ones((28, 1))
    planes = rng.poisson(300 * flat, (60, 28, 32)).astype(np.float32)
    engine = ff_mod.estimate_from_empty_tiles([planes], [1], sigma=2.0, n_planes=60,
                                              normalize_planes=False)
    mine = P.flatfield_planes(planes, None, sigma=2.0)
    # same statistic (pixel-wise median of all planes, Gaussian sigma 2, mean 1)
    assert np.max(np.abs(np.asarray(engine.flatfield) - mine)) < 0.02


def test_generic_stream_reduce_with_two_aligned_stacks(rng):
    class PairSums:
        """Sum of x and of x*y per pixel: a stand-in for per-level calibration sums."""

        def __init__(self):
            self.sx = self.sxy = 0.0

        def update(self, x, y):
            self.sx = self.sx + x.astype(np.float64).sum(axis=0)
            self.sxy = self.sxy + (x.astype(np.float64) * y).sum(axis=0)
            return self

        def merge(self, other):
            self.sx = self.sx + other.sx
            self.sxy = self.sxy + other.sxy
            return self

    x = rng.integers(0, 1000, (77, 9, 11))
    y = rng.integers(0, 50, (77, 9, 11))
    acc = P.stream_reduce((x, da.from_array(y, chunks=(10, 9, 11))), PairSums, chunk_frames=12)
    np.testing.assert_array_equal(acc.sx, x.sum(axis=0))
    np.testing.assert_array_equal(acc.sxy, (x * y).sum(axis=0))
    with pytest.raises(CamcorrError, match="differ in number of frames"):
        P.stream_reduce((x, y[:50]), PairSums)


def test_bad_inputs(tmp_path):
    with pytest.raises(CamcorrError, match=r"chunk_frames: value out of range.*\[1, inf\]"):
        P.moments(np.zeros((4, 3, 3)), chunk_frames=0)
    with pytest.raises(CamcorrError, match="dimensions"):
        P.moments(np.zeros(5))
    with pytest.raises(CamcorrError, match="file not found"):
        P.moments([tmp_path / "nope.tif"])
    # photometric given: tifffile would store a (3, 4, 4) array as an RGBA image otherwise
    tifffile.imwrite(tmp_path / "a.tif", np.zeros((3, 4, 4), np.uint16), photometric="minisblack")
    tifffile.imwrite(tmp_path / "b.tif", np.zeros((3, 5, 4), np.uint16), photometric="minisblack")
    with pytest.raises(CamcorrError, match="differ in size"):
        P.tiff_frames([tmp_path / "a.tif", tmp_path / "b.tif"])
    with pytest.raises(CamcorrError, match="out of range"):
        P.sampled_median(np.zeros((4, 3, 3)), [0, 9])
    with pytest.raises(CamcorrError, match="too few usable frames"):
        P.normalization_stats(np.zeros((6, 3, 3)))


def test_local_cluster_gives_identical_results(dark, tmp_path):
    distributed = require_module("distributed", "dask distributed")
    from camcorr.parallel.options import connect

    frames, _, _ = dark
    ref = P.moments(frames, chunk_frames=16, scheduler="sync")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  protocol="tcp", host="127.0.0.1", scheduler_port=0,
                                  dashboard_address=None) as cluster:
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        with connect(cluster.scheduler_address) as client:
            m = P.moments(da.from_array(frames, chunks=(40, 24, 20)), chunk_frames=16,
                          client=client)
            tifffile.imwrite(tmp_path / "d.tif", frames)
            m2 = P.moments(tmp_path / "d.tif", chunk_frames=16, client=client)
    assert np.array_equal(m.mean, ref.mean) and np.array_equal(m.m2, ref.m2)
    assert np.array_equal(m2.mean, ref.mean) and np.array_equal(m2.m2, ref.m2)


def test_unreachable_scheduler_is_a_clear_error():
    require_module("distributed", "dask distributed")
    from camcorr.parallel.options import connect

    with pytest.raises(CamcorrError, match="cannot reach the dask scheduler"):
        with connect("tcp://127.0.0.1:9", timeout="2s"):
            pass


def test_flash_calibration_on_dask_equals_engine(tmp_path):
    flash = require_module("camcorr.flash")
    lls = require_module("camcorr.simulate.lls")
    cal = lls.write_calibration_folder(tmp_path / "calib", seed=3, n_planes=6, dark_planes=20,
                                       n_dark_files=2, powers=(0.0, 0.5, 2.0, 8.0, 30.0, 100.0))
    ref = flash.calibrate_folder(tmp_path / "calib", chunk=4)
    got = P.calibrate_folder(tmp_path / "calib", chunk=4, scheduler="threads")
    np.testing.assert_allclose(got.offset, ref.offset, rtol=1e-6)
    np.testing.assert_allclose(got.noise, ref.noise, rtol=1e-5)
    np.testing.assert_allclose(got.level_x, ref.level_x, rtol=1e-6, atol=1e-4)
    np.testing.assert_allclose(got.level_y, ref.level_y, rtol=1e-6, atol=1e-4)
    np.testing.assert_allclose(got.A, ref.A, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(got.B, ref.B, rtol=1e-4, atol=1e-8)
    assert (got.roi, got.serial, got.n_pairs, got.n_dark_frames) == (
        ref.roi, ref.serial, ref.n_pairs, ref.n_dark_frames)
    # and it is right: A within 5 % of the simulator's truth (median over pixels)
    assert np.median(np.abs(got.A / cal.truth.A - 1)) < 0.05


def test_cli_parallel_dark_and_calibrate_on_a_local_cluster(tmp_path, dark):
    distributed = require_module("distributed", "dask distributed")
    lls = require_module("camcorr.simulate.lls")
    from camcorr.cli import main

    frames, off, noise = dark
    tifffile.imwrite(tmp_path / "dark1.tif", frames[:120])
    tifffile.imwrite(tmp_path / "dark2.tif", frames[120:])
    lls.write_calibration_folder(tmp_path / "calib", seed=5, n_planes=4, dark_planes=10,
                                 n_dark_files=2, powers=(0.0, 1.0, 5.0, 30.0, 100.0))
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  protocol="tcp", host="127.0.0.1", scheduler_port=0,
                                  dashboard_address=None) as cluster:
        addr = cluster.scheduler_address
        assert main(["parallel", "dark", str(tmp_path / "dark1.tif"), str(tmp_path / "dark2.tif"),
                     "-o", str(tmp_path / "on.tif"), "--scheduler", addr,
                     "--chunk-frames", "25"]) == 0
        assert main(["parallel", "calibrate", str(tmp_path / "calib"), "-o", str(tmp_path),
                     "--scheduler", addr]) == 0
    on = tifffile.imread(tmp_path / "on.tif")
    ref = RunningMoments().update(frames)
    np.testing.assert_allclose(on[0], ref.mean, rtol=1e-6)
    np.testing.assert_allclose(on[1], ref.std(1), rtol=1e-5)
    written = list(tmp_path.glob("FlashParam_*.tif"))
    assert len(written) == 1 and tifffile.imread(written[0]).shape[0] >= 4
    assert main(["parallel", "dark", str(tmp_path / "dark1.tif"), "-o", str(tmp_path / "x.tif"),
                 "--chunk-frames", "0"]) == 2
