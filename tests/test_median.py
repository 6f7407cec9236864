"""Selective median filter: ground truth from the real sCMOS variance map, kernels, bad input."""
from __future__ import annotations

import numpy as np
import pytest

from camcorr.errors import CamcorrError
from camcorr.median import (find_bad_pixels, knee_threshold, median3x3, projections,
                            replace_bad_pixels, selective_median)
from camcorr.median import _kernels
from camcorr.simulate import noise


@pytest.fixture(scope="module")
def variance_map(shared_data):
    return noise.load_variance_map(shared_data / "scmos_variance_gain_maps" / "varsub.mat")


# --------------------------------------------------------------------------- simulator
def test_variance_map_is_the_real_one(variance_map, shared_data):
    assert variance_map.shape == (512, 512)
    assert np.median(variance_map) == pytest.approx(4.63, abs=0.01)
    assert variance_map.max() == pytest.approx(1695.5, abs=0.1)
    gain = noise.load_gain_map(shared_data / "scmos_variance_gain_maps")
    assert gain.shape == (512, 512)


def test_variance_map_missing_file_is_clear(tmp_path):
    with pytest.raises(CamcorrError, match="not found"):
        noise.load_variance_map(tmp_path / "nothing.mat")


def test_simulated_noise_matches_variance_map(variance_map, rng):
    sim = noise.noisy_stack(variance_map[:128, :128], 400, dtype=np.float64, rng=rng)
    std = sim.stack.std(axis=0, ddof=1)
    rel = std / np.sqrt(variance_map[:128, :128])
    # sampling error of a std from 400 draws: 1/sqrt(2*399) = 3.5 %
    assert np.median(rel) == pytest.approx(1.0, abs=0.01)
    assert np.percentile(np.abs(rel - 1), 99) < 0.12


def test_telegraph_noise_statistics(rng):
    tele = noise.telegraph_noise(4000, 50, amplitude=20.0, p_switch=0.3, rng=rng)
    assert set(np.unique(tele)) <= {0.0, 20.0}
    # stationary two-level signal: std = amplitude / 2
    assert np.median(tele.std(axis=0)) == pytest.approx(10.0, rel=0.03)
    switches = np.mean(np.diff(tele, axis=0) != 0)
    assert switches == pytest.approx(0.3, abs=0.01)


# --------------------------------------------------------------------------- Must show
def test_flags_noisy_pixels_of_real_variance_map(variance_map, rng):
    sim = noise.noisy_stack(variance_map, 20, n_rts=300, rng=rng)
    res = selective_median(sim.stack)
    assert sim.truth.sum() > 3000  # the map's heavy tail: ~1.3 % of pixels are 5x noisier
    recall = (res.mask & sim.truth).sum() / sim.truth.sum()
    assert recall >= 0.99, recall
    # RTS pixels whose noise is 5x the median are found as well
    rts_truth = sim.truth & sim.rts
    assert (res.mask & rts_truth).sum() / rts_truth.sum() >= 0.97
    # replaced values are close to the offset (the median of ordinary neighbours)
    ys, xs = np.nonzero(sim.truth & res.mask)
    assert np.abs(res.corrected[:, ys, xs].astype(float) - sim.offset).mean() < 3.0
    # unflagged pixels are untouched
    assert np.array_equal(res.corrected[:, ~res.mask], sim.stack[:, ~res.mask])
    assert res.corrected.dtype == sim.stack.dtype


@pytest.mark.parametrize("n_planes", [10, 50])
def test_defect_free_data_flags_almost_nothing(rng, n_planes):
    stack = noise.clean_stack((n_planes, 256, 256), sigma=2.0, rng=rng)
    res = selective_median(stack)
    assert res.counts["percent"] < 0.1
    # LLSpy's knee rule, kept for parity, flags percents of clean pixels
    knee = find_bad_pixels(stack, rule="knee")
    assert knee.counts["percent"] > 1.0


def test_corners_and_borders_not_flagged_on_clean_data(rng):
    stack = noise.clean_stack((30, 64, 64), sigma=3.0, rng=rng)
    bad = find_bad_pixels(stack, rule="mad")
    border = np.ones((64, 64), bool)
    border[1:-1, 1:-1] = False
    assert bad.mask[border].sum() == 0


def test_hot_corner_pixel_detected_and_replaced_from_neighbours(rng):
    var = np.full((32, 32), 4.0)
    var[0, 0] = var[31, 31] = var[0, 17] = 400.0  # 10x noisier, at corners and an edge
    sim = noise.noisy_stack(var, 30, dtype=np.float32, rng=rng)
    res = selective_median(sim.stack)
    assert res.mask[0, 0] and res.mask[31, 31] and res.mask[0, 17]
    expected = np.median(np.stack([sim.stack[:, 0, 1], sim.stack[:, 1, 0],
                                   sim.stack[:, 1, 1]]), axis=0)
    assert np.allclose(res.corrected[:, 0, 0], expected)


def test_real_bead_stack_keeps_its_bead(shared_data):
    import tifffile

    stack = tifffile.imread(shared_data / "lls_raw_bead_stack" / "psf.tif")
    res = selective_median(stack)
    peak = float(stack.max())
    assert abs(float(res.corrected.max()) - peak) / peak <= 0.01
    z, y, x = np.unravel_index(np.argmax(stack), stack.shape)
    assert not res.mask[max(0, y - 2):y + 3, max(0, x - 2):x + 3].any()
    # a real Flash4 raw stack has a few hot pixels, not percents
    assert 0 < res.counts["percent"] < 3


def test_mean_pass_finds_aberrant_gain_pixels(rng):
    var = np.full((64, 64), 4.0)
    signal = np.full((64, 64), 200.0)
    gain_bad = np.zeros((64, 64), bool)
    gain_bad[10, 10] = gain_bad[40, 5] = gain_bad[63, 30] = True
    signal[gain_bad] *= np.array([0.7, 1.3, 0.8])  # low and high gain, same noise
    sim = noise.noisy_stack(var, 20, signal=signal, dtype=np.float32, rng=rng)
    without = find_bad_pixels(sim.stack)
    assert not without.mask[gain_bad].any()
    bad = find_bad_pixels(sim.stack, mean_pass=True)
    assert bad.mean_mask[gain_bad].all()
    assert bad.counts["flagged_mean"] <= 3 + 2
    assert bad.thresholds["mean"] > 0


def test_set_of_2d_frames_streams_like_a_stack(rng):
    var = np.full((40, 48), 4.0)
    var[5, 7] = 900.0
    sim = noise.noisy_stack(var, 12, rng=rng)
    whole = find_bad_pixels(sim.stack)
    frames = find_bad_pixels(iter(list(sim.stack)))  # a generator of 2D frames
    blocks = find_bad_pixels((sim.stack[i:i + 5] for i in range(0, 12, 5)))
    assert np.array_equal(whole.mask, frames.mask) and np.array_equal(whole.mask, blocks.mask)
    assert whole.mask[5, 7]
    np.testing.assert_allclose(frames.std, whole.std, rtol=1e-10)


def test_mask_from_dark_frames_applied_to_one_image(rng):
    var = np.full((32, 32), 4.0)
    var[3, 3] = 2500.0
    dark = noise.noisy_stack(var, 20, rng=rng).stack
    bad = find_bad_pixels(dark)
    image = dark[0].copy()
    image[3, 3] = 60000
    fixed = replace_bad_pixels(image, bad.mask)
    assert fixed.shape == image.shape and fixed.dtype == image.dtype
    # even count: mean of the two middle values, rounded half to even for integer data
    assert fixed[3, 3] == np.rint(np.median([image[2, 2], image[2, 3], image[2, 4], image[3, 2],
                                             image[3, 4], image[4, 2], image[4, 3], image[4, 4]]))
    assert image[3, 3] == 60000  # input untouched


def test_flagged_neighbours_are_not_used():
    stack = np.full((3, 9, 9), 10.0)
    stack[:, 4, 4] = stack[:, 4, 5] = 1000.0  # two adjacent hot pixels
    mask = np.zeros((9, 9), bool)
    mask[4, 4] = mask[4, 5] = True
    out = replace_bad_pixels(stack, mask)
    assert np.all(out[:, 4, 4] == 10.0) and np.all(out[:, 4, 5] == 10.0)
    # all 8 neighbours flagged: the 5x5 ring is used
    mask2 = np.zeros((9, 9), bool)
    mask2[3:6, 3:6] = True
    stack2 = np.full((2, 9, 9), 7.0)
    stack2[:, 3:6, 3:6] = 500.0
    out2, fallback = replace_bad_pixels(stack2, mask2, return_fallback=True)
    assert fallback == 1 and np.all(out2[:, 4, 4] == 7.0)


def test_integer_output_clipped_and_rounded():
    stack = np.zeros((2, 5, 5), np.uint8)
    stack[:, 0, 1] = 255
    stack[:, 1, 0] = 254
    mask = np.zeros((5, 5), bool)
    mask[0, 0] = True
    out = replace_bad_pixels(stack, mask)
    # neighbours 255, 254, 0 -> median 254
    assert out.dtype == np.uint8 and np.all(out[:, 0, 0] == 254)


# --------------------------------------------------------------------------- kernels
@pytest.mark.parametrize("dtype", [np.uint16, np.float32, np.float64])
def test_numba_and_numpy_kernels_agree(rng, dtype):
    var = rng.gamma(2.0, 2.0, size=(37, 41))
    var[rng.random((37, 41)) < 0.05] = 900.0
    stack = noise.noisy_stack(var, 7, dtype=dtype, rng=rng).stack
    m1, s1 = _kernels.mean_std_numba(stack)
    m2, s2 = _kernels.mean_std_numpy(stack)
    np.testing.assert_allclose(m1, m2, rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(s1, s2, rtol=1e-8, atol=1e-9)
    mask = rng.random((37, 41)) < 0.15
    mask[0:4, 0:4] = True  # a cluster that forces the ring fallbacks
    a = _kernels.neighbour_medians_numba(stack, mask)
    b = _kernels.neighbour_medians_numpy(stack, mask)
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y)
    r1 = selective_median(stack, backend="numba")
    r2 = selective_median(stack, backend="numpy")
    assert np.array_equal(r1.mask, r2.mask)
    assert np.array_equal(r1.corrected, r2.corrected)


def test_sorting_network_sorts(rng):
    for _ in range(300):
        v = rng.integers(0, 5, 8).astype(float)  # many ties
        np.testing.assert_array_equal(_kernels.sort8_numba(v), np.sort(v))
    np.testing.assert_array_equal(_kernels.sort8_numba(np.arange(8.0)[::-1]), np.arange(8.0))


@pytest.mark.parametrize("shape", [(2, 2), (3, 7), (41, 38)])
def test_local_stats_numba_matches_scipy(rng, shape):
    img = rng.integers(0, 6, shape).astype(float)  # ties everywhere
    a = _kernels.local_stats_numba(img)
    b = _kernels.local_stats_numpy(img)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    img = rng.standard_normal(shape)
    a = _kernels.local_stats_numba(img)
    b = _kernels.local_stats_numpy(img)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_fused_replacement_matches_numpy_reference(rng):
    stack = rng.integers(0, 65535, (5, 30, 33)).astype(np.uint16)
    mask = rng.random((30, 33)) < 0.2
    mask[:3, :3] = True
    out, level = _kernels.replace_numba(stack, mask)
    ys, xs, values, level2 = _kernels.neighbour_medians_numpy(stack, mask)
    ref = stack.copy()
    ref[:, ys, xs] = np.clip(np.rint(values), 0, 65535).astype(np.uint16)
    np.testing.assert_array_equal(out, ref)
    np.testing.assert_array_equal(level, level2)


def test_knee_threshold_of_a_known_curve():
    values = np.concatenate([np.linspace(0, 1, 90), np.linspace(10, 100, 10)])
    assert knee_threshold(values) == pytest.approx(1.0)


def test_median3x3_mirrors_borders():
    img = np.zeros((5, 5))
    img[0, 0] = 100.0
    assert median3x3(img)[0, 0] == 0.0
    ramp = np.arange(25.0).reshape(5, 5)
    assert median3x3(ramp)[0, 0] == pytest.approx(ramp[0, 0] + 0.0 + 6.0, abs=6.0)


# --------------------------------------------------------------------------- bad input
def test_one_frame_is_refused():
    with pytest.raises(CamcorrError, match="one frame"):
        selective_median(np.zeros((1, 16, 16), np.uint16))
    with pytest.raises(CamcorrError, match="one frame"):
        find_bad_pixels(np.zeros((16, 16), np.uint16))
    with pytest.raises(CamcorrError, match="one frame"):
        find_bad_pixels(iter([np.zeros((16, 16))]))


def test_constant_frames_are_refused():
    with pytest.raises(CamcorrError, match="constant frames"):
        selective_median(np.full((5, 16, 16), 100, np.uint16))


def test_nan_is_refused():
    stack = np.ones((4, 8, 8), np.float32)
    stack[2, 3, 3] = np.nan
    with pytest.raises(CamcorrError, match="NaN"):
        selective_median(stack)
    with pytest.raises(CamcorrError, match="NaN"):
        replace_bad_pixels(stack, np.zeros((8, 8), bool))


def test_negative_values_are_valid_data(rng):
    # offset-subtracted float data are negative half the time: not an error, same result
    var = np.full((32, 32), 4.0)
    var[9, 9] = 900.0
    sim = noise.noisy_stack(var, 20, offset=0.0, dtype=np.float32, rng=rng)
    assert (sim.stack < 0).mean() > 0.3
    res = selective_median(sim.stack)
    shifted = selective_median(sim.stack + np.float32(1000))
    assert res.mask[9, 9] and np.array_equal(res.mask, shifted.mask)


def test_shape_mismatch_and_bad_parameters():
    with pytest.raises(CamcorrError, match="shapes differ"):
        replace_bad_pixels(np.zeros((3, 10, 10)), np.zeros((10, 11), bool))
    with pytest.raises(CamcorrError, match="frame shapes differ"):
        find_bad_pixels([np.zeros((8, 8)), np.ones((8, 9))])
    with pytest.raises(CamcorrError, match="rule"):
        find_bad_pixels(np.random.default_rng(0).random((3, 8, 8)), rule="otsu")
    with pytest.raises(CamcorrError, match="k"):
        find_bad_pixels(np.random.default_rng(0).random((3, 8, 8)), k=-1)
    with pytest.raises(CamcorrError, match="pixel type"):
        find_bad_pixels(np.zeros((3, 8, 8), bool))
    with pytest.raises(CamcorrError, match="too small"):
        find_bad_pixels(np.random.default_rng(0).random((3, 2, 8)))


def test_projections_of_4d_data(rng):
    data = rng.normal(100, 2, size=(2, 3, 8, 8))
    mean, std, n = projections(data)
    assert n == 6
    np.testing.assert_allclose(std, data.reshape(6, 8, 8).std(axis=0, ddof=1))


@pytest.mark.parametrize("dtype", [">u2", np.float16, np.int16, np.uint8])
def test_other_dtypes_and_byte_orders(rng, dtype):
    var = np.full((24, 24), 1.0)
    var[4, 4] = 400.0
    data = noise.noisy_stack(var, 12, offset=50, dtype=np.float64, rng=rng).stack
    stack = np.clip(np.rint(data), 0, 255).astype(dtype)
    res = selective_median(stack)
    assert res.mask[4, 4]
    assert res.corrected.shape == stack.shape
    assert np.dtype(res.corrected.dtype).kind == np.dtype(dtype).kind
    assert res.corrected.dtype.itemsize == np.dtype(dtype).itemsize
