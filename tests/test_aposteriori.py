"""A posteriori normalisation (Afanasyev et al. 2015): ground truth on simulated fixed pattern."""
from __future__ import annotations

import numpy as np
import pytest

from camcorr.aposteriori import (NormalizationStats, compute_stats, frame_summary, frc,
                                 half_set_averages, normalize, select_frames)
from camcorr.errors import CamcorrError
from camcorr.stats import RunningMoments


def fixed_pattern_frames(rng, n=400, shape=(96, 96), blank=(), bright=()):
    """Frames = offset(r) + gain(r) * (specimen_i(r)), specimen independent between frames.

    The camera pattern: random per-pixel gain (10 %) times a 2x2 Bayer-like checker (5 %), a
    column pattern every 4th column in the offset, random offsets.  The specimen of every frame
    is a fresh random texture (mean 200, std 20 ADU), so only the camera is common to frames.
    """
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    gain = (1 + 0.1 * rng.standard_normal(shape)) * (1 + 0.05 * ((yy % 2) ^ (xx % 2)))
    offset = 100 + 5 * rng.standard_normal(shape) + 3.0 * (xx % 4 == 0)
    frames = offset + gain * (200 + 20 * rng.standard_normal((n,) + shape))
    for i in blank:
        frames[i] = offset + rng.standard_normal(shape)  # shutter closed
    for i in bright:
        frames[i] += 400.0
    return frames, gain, offset


@pytest.fixture(scope="module")
def dataset():
    rng = np.random.default_rng(11)
    frames, gain, offset = fixed_pattern_frames(rng, blank=(17, 250), bright=(33,))
    return frames, gain, offset


def test_rejects_blank_and_deviant_frames(dataset):
    frames, _, _ = dataset
    stats = compute_stats(frames)
    assert set(np.flatnonzero(~stats.accepted)) == {17, 33, 250}
    assert stats.n_accepted == 397 and stats.n_rejected == 3
    # halves are disjoint, even/odd among the accepted frames
    assert stats.half_a.count + stats.half_b.count == 397
    assert abs(stats.half_a.count - stats.half_b.count) <= 1
    assert np.all(stats.half[~stats.accepted] == -1)


def test_corrected_pixel_vectors_have_target_mean_and_std(dataset):
    frames, _, _ = dataset
    stats = compute_stats(frames)
    i0, sigma0 = 300.0, 15.0
    corr = normalize(frames, stats, sigma0=sigma0, i0=i0, dtype=np.float64)[stats.accepted]
    mean = corr.mean(axis=0)
    std = corr.std(axis=0, ddof=1)
    assert np.max(np.abs(mean - i0)) / i0 < 0.01
    assert np.max(np.abs(std - sigma0)) / sigma0 < 0.01
    # the raw data were far from it: a gain pattern of ~11 % in sigma
    raw_std = frames[stats.accepted].std(axis=0, ddof=1)
    assert raw_std.std() / raw_std.mean() > 0.08


def test_cross_corrected_half_has_target_statistics(dataset):
    # frames of half A corrected by the statistics of half B (no self-influence)
    frames, _, _ = dataset
    stats = compute_stats(frames)
    a = frames[stats.half == 0]
    corr = normalize(a, stats, which="b", sigma0=15.0, i0=300.0, dtype=np.float64)
    std = corr.std(axis=0, ddof=1)
    assert abs(np.mean(std) - 15.0) / 15.0 < 0.01
    assert abs(np.mean(corr) - 300.0) / 300.0 < 0.01
    # per-pixel spread left is sampling error only (~ sqrt(2/200) = 10 %), not the camera's
    # 11 % gain pattern correlated with the truth
    _, gain, _ = dataset
    assert abs(np.corrcoef(std.ravel(), gain.ravel())[0, 1]) < 0.1


def test_default_targets_keep_contrast(dataset):
    frames, _, _ = dataset
    stats = compute_stats(frames)
    mean, sigma = stats.mean_sigma()
    assert stats.sigma0() == pytest.approx(sigma.mean())
    assert stats.i0() == pytest.approx(mean.mean())
    corr = normalize(frames[stats.accepted], stats, dtype=np.float64)
    assert corr.mean() == pytest.approx(stats.i0(), rel=1e-9)
    assert corr.std(axis=0, ddof=1).mean() == pytest.approx(stats.sigma0(), rel=1e-9)


def test_frc_of_half_set_averages_drops_to_noise_after_correction(dataset):
    frames, _, _ = dataset
    stats = compute_stats(frames)
    raw1, raw2, cor1, cor2 = half_set_averages(frames, stats, n_average=4)
    before = frc(raw1, raw2)
    after = frc(cor1, cor2)
    assert before.fraction_above > 0.9           # fixed pattern: correlated at every frequency
    assert np.median(before.frc[2:]) > 0.5
    assert after.fraction_above < 0.05            # independent after correction
    assert abs(np.mean(after.frc[2:])) < 0.03     # oscillates around 0


def test_streaming_equals_in_memory_and_memory_does_not_grow(dataset):
    frames, _, _ = dataset
    whole = compute_stats(frames)
    blocks = compute_stats(lambda: (frames[i:i + 7] for i in range(0, len(frames), 7)))
    for which in ("a", "b", "full"):
        m1, s1 = whole.mean_sigma(which)
        m2, s2 = blocks.mean_sigma(which)
        np.testing.assert_allclose(m1, m2, rtol=1e-12)
        np.testing.assert_allclose(s1, s2, rtol=1e-10)
    # the state is a fixed number of (Y, X) maps plus one number per frame
    maps = [v for v in blocks.to_dict().values() if np.ndim(v) == 2]
    assert len(maps) == 4 and all(m.shape == frames.shape[1:] for m in maps)


def test_merge_chunks_and_save_load(dataset, tmp_path):
    frames, _, _ = dataset
    s1 = compute_stats(frames[:200], reject_k=0)
    s2 = compute_stats(frames[200:], reject_k=0)
    merged = s1.merge(s2)
    ref = RunningMoments().update(frames[merged.half == 0])
    np.testing.assert_allclose(merged.half_a.mean, ref.mean, rtol=1e-12)
    path = merged.save(tmp_path / "stats.npz")
    back = NormalizationStats.load(path)
    np.testing.assert_array_equal(back.half_b.m2, merged.half_b.m2)
    assert back.n_frames == 400 and back.split == "even-odd"


def test_random_split_is_reproducible(dataset):
    frames, _, _ = dataset
    a = compute_stats(frames[:60], split="random", seed=3)
    b = compute_stats(frames[:60], split="random", seed=3)
    assert np.array_equal(a.half, b.half)
    assert not np.array_equal(a.half[a.accepted], np.arange(a.n_accepted) % 2)


def test_select_frames_rule():
    means = np.array([100.0, 101, 99, 100.5, 99.5, 100.2, 20.0])
    stds = np.array([10.0, 10.1, 9.9, 10.0, 10.2, 9.8, 10.0])
    keep = select_frames(means, stds, reject_k=5)
    assert keep.tolist() == [True] * 6 + [False]
    assert select_frames(means, stds, reject_k=0).all()
    stds[2] = 0.0
    assert not select_frames(means, stds, reject_k=0)[2]


# --------------------------------------------------------------------------- bad input
def test_zero_sigma_pixels_fill_or_error(rng):
    frames = 100 + rng.standard_normal((40, 16, 16))
    frames[:, 3, 4] = 55.0  # dead pixel
    stats = compute_stats(frames)
    assert stats.n_zero_sigma() == 1
    out = normalize(frames, stats, i0=10.0, sigma0=1.0, dtype=np.float64)
    assert np.all(out[:, 3, 4] == 10.0) and np.all(np.isfinite(out))
    with pytest.raises(CamcorrError, match="zero-sigma"):
        normalize(frames, stats, zero_sigma="error")


def test_one_frame_and_constant_frames_are_refused(rng):
    with pytest.raises(CamcorrError, match="one frame"):
        compute_stats(rng.random((16, 16)))
    with pytest.raises(CamcorrError, match="too few usable frames"):
        compute_stats(rng.random((1, 16, 16)))
    with pytest.raises(CamcorrError, match="too few usable frames"):
        compute_stats(np.full((10, 16, 16), 7.0))


def test_shape_mismatch_is_refused(rng):
    stats = compute_stats(rng.random((10, 16, 16)))
    with pytest.raises(CamcorrError, match="shapes differ"):
        normalize(rng.random((3, 16, 17)), stats)
    with pytest.raises(CamcorrError, match="frame shapes differ"):
        compute_stats([rng.random((16, 16))] * 5 + [rng.random((16, 17))])


def test_nan_and_bad_targets_are_refused(rng):
    frames = rng.random((10, 8, 8))
    frames[4, 2, 2] = np.nan
    with pytest.raises(CamcorrError, match="NaN"):
        compute_stats(frames)
    stats = compute_stats(rng.random((10, 8, 8)))
    with pytest.raises(CamcorrError, match="sigma0"):
        normalize(rng.random((2, 8, 8)), stats, sigma0=-1.0)
    with pytest.raises(CamcorrError, match="NaN"):
        normalize(np.full((1, 8, 8), np.nan), stats)
    with pytest.raises(CamcorrError, match="read only once"):
        compute_stats(iter(rng.random((10, 8, 8))))


def test_negative_values_are_valid(rng):
    # offset-subtracted data: a linear correction is indifferent to the sign of the values
    frames = rng.standard_normal((30, 8, 8)) * 3 - 1
    stats = compute_stats(frames)
    out = normalize(frames, stats, sigma0=2.0, i0=-5.0, dtype=np.float64)
    assert out.mean(axis=0) == pytest.approx(np.full((8, 8), -5.0), abs=1e-9)


def test_frame_summary_values(rng):
    frames = rng.random((5, 4, 6))
    means, stds, shape = frame_summary(frames)
    np.testing.assert_allclose(means, frames.reshape(5, -1).mean(axis=1))
    np.testing.assert_allclose(stds, frames.reshape(5, -1).std(axis=1))
    assert shape == (4, 6)
