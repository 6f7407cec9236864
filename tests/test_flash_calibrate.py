"""Carryover calibration against the simulator's ground truth; bad calibration folders."""
import shutil
import tracemalloc

import numpy as np
import pytest
import tifffile

from camcorr.errors import CamcorrError
from camcorr.flash import (calibrate_folder, correct_interleaved, crop_params, dark_moments,
                           fit_levels, parse_settings, read_params, write_params)
from camcorr.flash.demo import carryover_removed
from camcorr.io import iter_planes
from camcorr.simulate import lls


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    folder = tmp_path_factory.mktemp("calib")
    ct = lls.write_calibration_folder(folder, seed=4, roi=(2000, 1000, 2047, 1039),
                                      n_dark_files=10, dark_planes=100, outlier_fraction=0.002)
    return ct, calibrate_folder(folder)


def test_calibration_accuracy(calibrated):
    ct, cal = calibrated
    t = ct.truth
    # pixels with enough dynamic range: plateau well above the noise, curve bends in range
    good = (t.A > 10) & (t.B * max(ct.bright_levels) > 3)
    assert good.mean() > 0.8
    rel_a = np.abs(cal.A - t.A)[good] / t.A[good]
    rel_b = np.abs(cal.B - t.B)[good] / t.B[good]
    assert np.median(rel_a) < 0.05
    assert np.median(rel_b) < 0.10
    assert np.percentile(np.abs(cal.offset - t.offset), 99) < 0.2
    assert np.median(np.abs(cal.offset - t.offset)) < 0.1
    assert np.median(np.abs(cal.noise - t.noise) / t.noise) < 0.05
    assert cal.n_failed == int(np.count_nonzero(cal.status)) <= 0.01 * cal.A.size
    assert np.nanmedian(cal.gof) < 2.0
    assert cal.roi == (2000, 1000, 2047, 1039) and cal.serial == "100740" and cal.date == "20240517"
    assert cal.n_levels == len(lls.DEFAULT_POWERS) and cal.n_dark_frames == 1000


def test_calibration_then_correction_removes_carryover(calibrated, tmp_path):
    ct, cal = calibrated
    path = write_params(cal, tmp_path)
    params = read_params(path)
    acq = lls.write_acquisition(tmp_path / "acq", roi=(2010, 1003, 2041, 1030), seed=21,
                                camera_seed=4, n_planes=14)
    cut = crop_params(params, parse_settings(acq.settings))
    cor = correct_interleaved(list(acq.raw[0]), cut)
    assert carryover_removed(cor[1], acq.raw[0, 1], acq.raw_nocarry[0, 1], cut.offset) >= 0.95
    resid = cor[0] - (acq.raw_nocarry[0, 0] - cut.offset.astype(np.float64))
    assert np.sqrt(np.mean(resid ** 2)) < np.median(cut.noise)


def test_fit_numba_matches_numpy(calibrated):
    ct, cal = calibrated
    x, y = cal.level_x[:, :10, :12], cal.level_y[:, :10, :12]
    counts = np.full(x.shape[0], ct.n_planes, float)
    a1, b1, g1, s1 = fit_levels(x, y, counts, backend="numba")
    a2, b2, g2, s2 = fit_levels(x, y, counts, backend="numpy")
    np.testing.assert_allclose(a1, a2, rtol=1e-3, atol=1e-2)
    np.testing.assert_allclose(b1, b2, rtol=1e-3, atol=1e-7)
    np.testing.assert_allclose(g1, g2, rtol=1e-3, atol=1e-3)
    np.testing.assert_array_equal(s1, s2)


def test_fit_is_robust_to_an_aberrant_level(rng):
    xs = np.array([0, 5, 10, 25, 50, 100, 200, 400, 800, 1500, 2500, 5000], float)
    A, B = 120.0, 0.002
    y = A * (1 - np.exp(-B * xs)) + rng.normal(0, 0.3, xs.size)
    y[6] += 60.0                                # light leak in one level
    a, b, g, s = fit_levels(xs[:, None], y[:, None], np.full(xs.size, 50.0))
    assert abs(a[0] - A) / A < 0.03 and abs(b[0] - B) / B < 0.06 and s[0] == 0


def test_fit_flags_failures():
    xs = np.array([0, 100, 1000, 5000.0])
    y = np.array([0, 900, 900, 900.0])          # plateau above LLSpy's bound A <= 800
    a, b, g, s = fit_levels(xs[:, None], y[:, None], np.ones(4))
    assert s[0] == 2 and a[0] == pytest.approx(800, rel=1e-3)
    a, b, g, s = fit_levels(xs[:2, None], y[:2, None], np.ones(2))
    assert s[0] == 1


def test_dark_moments_streamed_and_mergeable(rng):
    frames = rng.normal(100, 2, (50, 6, 7))
    whole = dark_moments([frames])
    part = dark_moments([frames[:20]])
    part.merge(dark_moments(frames[20:]))
    np.testing.assert_allclose(part.mean, frames.mean(0))
    np.testing.assert_allclose(part.std(), frames.std(0, ddof=1))
    np.testing.assert_allclose(whole.std(), part.std())


def _peak_memory(folder):
    tracemalloc.start()
    calibrate_folder(folder)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def test_calibration_memory_independent_of_frame_count(tmp_path):
    kw = dict(roi=(0, 0, 63, 63), powers=(0, 1, 5, 20, 60, 100), n_dark_files=2)
    small = lls.write_calibration_folder(tmp_path / "a", n_planes=16, dark_planes=32, **kw)
    big = lls.write_calibration_folder(tmp_path / "b", n_planes=128, dark_planes=256, **kw)
    calibrate_folder(small.folder)   # compile/cache first
    p_small, p_big = _peak_memory(small.folder), _peak_memory(big.folder)
    # 8x the frames: the peak stays within 25 % (one 16-plane block + per-level maps)
    assert p_big < 1.25 * p_small


# ------------------------------------------------------------------ bad calibration folders
@pytest.fixture
def small_folder(tmp_path):
    ct = lls.write_calibration_folder(tmp_path / "c", roi=(0, 0, 11, 9), powers=(0, 1, 10, 100),
                                      n_planes=4, n_dark_files=1, dark_planes=4)
    return ct


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(CamcorrError, match="no TIFF"):
        calibrate_folder(tmp_path / "empty")
    with pytest.raises(CamcorrError, match="not found"):
        calibrate_folder(tmp_path / "missing")


def test_no_dark_frames(small_folder):
    for f in small_folder.dark_files:
        f.unlink()
    with pytest.raises(CamcorrError, match="no dark frames"):
        calibrate_folder(small_folder.folder)


def test_no_pairs(small_folder):
    for f0, f1 in small_folder.pair_files:
        f0.unlink()
        f1.unlink()
    with pytest.raises(CamcorrError, match="no bright/dark pairs"):
        calibrate_folder(small_folder.folder)


def test_unpaired_file(small_folder):
    small_folder.pair_files[1][1].unlink()
    with pytest.raises(CamcorrError, match="without a partner"):
        calibrate_folder(small_folder.folder)


def test_unequal_pair_shapes(small_folder):
    f1 = small_folder.pair_files[2][1]
    tifffile.imwrite(f1, np.zeros((3, 12, 10), np.uint16), imagej=True)
    with pytest.raises(CamcorrError, match="differ in shape"):
        calibrate_folder(small_folder.folder)


def test_images_not_matching_settings_roi(small_folder):
    for s in small_folder.folder.glob("*Settings.txt"):
        lls.write_settings(s, (0, 0, 20, 9))
    with pytest.raises(CamcorrError, match="do not match the camera ROI"):
        calibrate_folder(small_folder.folder)


def test_no_settings_needs_roi(small_folder):
    for s in small_folder.folder.glob("*Settings.txt"):
        s.unlink()
    with pytest.raises(CamcorrError, match="no Settings.txt"):
        calibrate_folder(small_folder.folder)
    cal = calibrate_folder(small_folder.folder, roi=(0, 0, 11, 9), serial="42")
    assert cal.roi == (0, 0, 11, 9) and cal.serial == "42"
