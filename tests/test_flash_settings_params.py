"""Settings.txt parsing, FlashParam file I/O (LLSpy compatibility) and ROI alignment."""
import re

import numpy as np
import pytest
import tifffile

from camcorr.errors import CamcorrError
from camcorr.flash import (FlashParams, crop_params, param_filename, parse_param_filename,
                           parse_settings, read_params, roi_window, write_params)
from camcorr.flash.params import params_from_arrays
from camcorr.simulate import lls


# ------------------------------------------------------------------ Settings.txt (real files)
def test_parse_sample_settings(shared_data):
    s = parse_settings(shared_data / "llspy_settings" / "sample_Settings.txt")
    assert s.roi == (905, 937, 1160, 1136)
    assert s.serial == "100740"
    assert s.model == "C11440-22C"
    assert [c.laser for c in s.channels] == [488, 642]
    assert [c.power for c in s.channels] == [5.0, 15.0]
    assert [c.n_stacks for c in s.channels] == [10, 10]
    assert s.cycle_lasers == "per Z" and s.interleaved_per_z
    assert s.z_motion == "Sample piezo"
    assert s.n_planes == 61
    assert s.shape == (256, 200)
    assert s.date.year == 2017 and s.date.month == 10 and s.date.day == 30
    assert s.twin_cam is True and s.synchronous_readout is True


def test_parse_example_settings(shared_data):
    s = parse_settings(shared_data / "llspy_settings" / "example_Settings.txt")
    assert s.roi == (913, 901, 1232, 1156)
    assert s.serial == "100740"
    assert [c.laser for c in s.channels] == [488, 560]
    assert s.n_planes == 88
    assert s.shape == (320, 256)
    assert s.twin_cam is False


def test_simulated_settings_roundtrip(tmp_path):
    p = lls.write_settings(tmp_path / "x_Settings.txt", (10, 20, 59, 49), serial="123",
                           n_planes=7, cycle="per stack", lasers=(488, 560, 642), powers=(1, 2, 3))
    s = parse_settings(p)
    assert s.roi == (10, 20, 59, 49) and s.serial == "123" and s.n_planes == 7
    assert not s.interleaved_per_z and len(s.channels) == 3


def test_settings_errors(tmp_path):
    with pytest.raises(CamcorrError, match="not found"):
        parse_settings(tmp_path / "missing_Settings.txt")
    bad = tmp_path / "bad_Settings.txt"
    bad.write_text("***** ***** ***** Camera ***** ***** *****\nModel :\tX\n")
    with pytest.raises(CamcorrError, match="no camera ROI"):
        parse_settings(bad)


# ------------------------------------------------------------------ parameter files
def _params(roi, seed=1):
    t = lls.sensor_maps(roi, seed=seed)
    return params_from_arrays(t.A, t.B, t.offset, t.noise, roi=roi, serial="100740", date="20240517")


def test_param_filename_roundtrip():
    name = param_filename("100740", (513, 769, 1536, 1280), "20161219")
    assert name == "FlashParam_sn100740_roi513-769-1536-1280_date20161219.tif"
    assert parse_param_filename(name) == {"roi": (513, 769, 1536, 1280), "serial": "100740",
                                          "date": "20161219"}


def test_write_read_ours_and_as_llspy_reads_it(tmp_path):
    roi = (100, 200, 131, 223)
    p = _params(roi)
    path = write_params(p, tmp_path)
    assert path.name == "FlashParam_sn100740_roi100-200-131-223_date20240517.tif"
    # as LLSpy 0.5.1 reads it: tifffile.imread, first planes A, B, offset, ROI from the name,
    # roi width (R-L+1) == shape[1], roi height (B-T+1) == shape[2]
    data = tifffile.imread(path)
    assert data.dtype == np.float32 and data.shape == (4, 32, 24)
    L, T, R, B = (int(v) for v in re.search(r"roi(\d+)-(\d+)-(\d+)-(\d+)", str(path)).groups())
    assert (R - L + 1, B - T + 1) == data.shape[1:]
    np.testing.assert_array_equal(data[0], p.A)
    np.testing.assert_array_equal(data[1], p.B)
    np.testing.assert_array_equal(data[2], p.offset)
    np.testing.assert_array_equal(data[3], p.noise)
    with tifffile.TiffFile(path) as tif:
        assert tif.is_imagej
    back = read_params(path)
    assert back.roi == roi and back.serial == "100740" and back.date == "20240517"
    np.testing.assert_array_equal(back.B, p.B)


def test_read_llspy_layout_file(tmp_path):
    """A file written as LLSpy's camcalib writes it (imagej TIFF, 4 planes, ROI in the name)."""
    roi = (513, 769, 552, 800)
    p = _params(roi)
    stack = np.stack([p.A, p.B, p.offset, p.noise]).astype(np.float32)
    path = tmp_path / "FlashParam_sn100740_roi513-769-552-800_date20161219.tif"
    tifffile.imwrite(path, stack, imagej=True, resolution=(1 / 0.104, 1 / 0.104),
                     metadata={"unit": "micron", "hyperstack": "true", "mode": "composite"})
    back = read_params(path)
    assert back.roi == roi and back.serial == "100740" and back.date == "20161219"
    np.testing.assert_array_equal(back.A, p.A)
    np.testing.assert_array_equal(back.offset, p.offset)
    np.testing.assert_array_equal(back.noise, p.noise)
    # LLSpy also accepts 3 planes (no noise map)
    path3 = tmp_path / "FlashParam_roi513-769-552-800_date20161219.tif"
    tifffile.imwrite(path3, stack[:3], imagej=True)
    back3 = read_params(path3)
    assert back3.noise is None and back3.serial is None


def test_read_params_errors(tmp_path):
    roi = (0, 0, 15, 11)
    p = _params(roi)
    with pytest.raises(CamcorrError, match="not found"):
        read_params(tmp_path / "nope.tif")
    # NaN in parameters
    bad = np.stack([p.A, p.B, p.offset, p.noise]).astype(np.float32)
    bad[0, 3, 4] = np.nan
    f = tmp_path / "FlashParam_roi0-0-15-11_date20240101.tif"
    tifffile.imwrite(f, bad, imagej=True)
    with pytest.raises(CamcorrError, match="NaN"):
        read_params(f)
    # maps that do not match the ROI in the name
    f2 = tmp_path / "FlashParam_roi0-0-20-11_date20240101.tif"
    tifffile.imwrite(f2, np.stack([p.A, p.B, p.offset]), imagej=True)
    with pytest.raises(CamcorrError, match="do not match their ROI"):
        read_params(f2)
    # a 2D image is not a parameter file
    f3 = tmp_path / "FlashParam_roi0-0-15-11_date20240102.tif"
    tifffile.imwrite(f3, p.A)
    with pytest.raises(CamcorrError, match="not a carryover parameter file"):
        read_params(f3)
    # negative B
    neg = np.stack([p.A, -p.B, p.offset]).astype(np.float32)
    f4 = tmp_path / "FlashParam_roi0-0-15-11_date20240103.tif"
    tifffile.imwrite(f4, neg, imagej=True)
    with pytest.raises(CamcorrError, match="negative"):
        read_params(f4)


# ------------------------------------------------------------------ ROI alignment
CAL = (1000, 2000, 1039, 2029)   # 40 rows (Left..Right) x 30 columns (Top..Bot)


def _placements():
    L, T, R, B = CAL
    return {
        "identical": CAL,
        "interior": (L + 5, T + 4, R - 9, B - 6),
        "shares_left": (L, T + 3, R - 10, B - 3),
        "shares_right": (L + 10, T + 3, R, B - 3),
        "shares_top": (L + 4, T, R - 4, B - 8),
        "shares_bottom": (L + 4, T + 8, R - 4, B),
        "corner_left_top": (L, T, L + 9, T + 9),
        "corner_right_bottom": (R - 9, B - 9, R, B),
        "corner_left_bottom": (L, B - 5, L + 6, B),
        "single_pixel": (R, B, R, B),
        "full_width_strip": (L, T + 10, R, T + 12),
    }


@pytest.mark.parametrize("name", sorted(_placements()))
def test_crop_every_placement(name):
    """Cropping the calibration equals the camera seen directly through the data ROI."""
    data_roi = _placements()[name]
    params = _params(CAL, seed=7)
    cut = crop_params(params, data_roi)
    truth = lls.sensor_maps(data_roi, seed=7)   # computed from sensor coordinates, no slicing
    assert cut.roi == data_roi
    assert cut.shape == (data_roi[2] - data_roi[0] + 1, data_roi[3] - data_roi[1] + 1)
    np.testing.assert_array_equal(cut.A, truth.A)
    np.testing.assert_array_equal(cut.B, truth.B)
    np.testing.assert_array_equal(cut.offset, truth.offset)
    np.testing.assert_array_equal(cut.noise, truth.noise)


def test_roi_window_matches_llspy_where_llspy_works():
    """Same window as LLSpy's get_subroi arithmetic (rows from Right, columns from Top)."""
    L, T, R, B = CAL
    data = (L + 5, T + 4, R - 9, B - 6)
    rows, cols = roi_window(CAL, data)
    # LLSpy: rows diff[0]+vshift : diff[2]+vshift, cols diff[1] : diff[3] (negative ends)
    diff = np.subtract(data, CAL)
    vshift = L + R - data[0] - data[2]
    n_rows, n_cols = R - L + 1, B - T + 1
    r_llspy = range(n_rows)[diff[0] + vshift: diff[2] + vshift]
    c_llspy = range(n_cols)[diff[1]: diff[3]]
    assert (rows.start, rows.stop) == (r_llspy.start, r_llspy.stop)
    assert (cols.start, cols.stop) == (c_llspy.start, c_llspy.stop)


@pytest.mark.parametrize("side", [0, 1, 2, 3])
def test_data_roi_outside_calibration(side):
    L, T, R, B = CAL
    roi = [L + 2, T + 2, R - 2, B - 2]
    roi[side] += (-3 if side < 2 else 3)
    params = _params(CAL)
    with pytest.raises(CamcorrError, match="outside the calibration"):
        crop_params(params, tuple(roi))


def test_crop_without_calibration_roi():
    t = lls.sensor_maps((0, 0, 9, 9))
    p = params_from_arrays(t.A, t.B, t.offset)
    with pytest.raises(CamcorrError, match="calibration ROI is unknown"):
        crop_params(p, (0, 0, 4, 4))
    assert crop_params(p, (2, 3, 5, 7), calib_roi=(0, 0, 9, 9)).shape == (4, 5)


def test_flashparams_validate_shapes():
    a = np.ones((4, 5), np.float32)
    with pytest.raises(CamcorrError, match="another shape"):
        FlashParams(A=a, B=np.ones((4, 4), np.float32), offset=a).validate()
