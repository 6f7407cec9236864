"""Hamamatsu Flash4.0 synchronous-readout charge carryover: calibration and correction.

Model (Lambert, LLSpy camera corrections documentation, llspy.readthedocs.io/en/latest/camera.html): the frame after a bright frame carries
``A * (1 - exp(-B * x))`` ADU of residual charge, x = previous raw frame minus offset, with
per-pixel A (plateau, ADU) and B (rate, 1/ADU).  ``calibrate_folder`` fits A and B from
bright/dark pairs; ``correct_interleaved`` / ``correct_frame`` subtract the predicted carryover.
"""
from .settings import Channel, LLSSettings, find_settings, parse_settings, roi_shape
from .params import (FlashParams, as_roi, crop_params, param_filename, parse_param_filename,
                     read_params, roi_window, write_params)
from .correct import DEFAULT_DAMPENING, acquisition_order, carryover, correct_frame, correct_interleaved

__all__ = [
    "Channel", "LLSSettings", "parse_settings", "find_settings", "roi_shape",
    "FlashParams", "read_params", "write_params", "crop_params", "param_filename",
    "parse_param_filename", "roi_window", "as_roi",
    "DEFAULT_DAMPENING", "correct_interleaved", "correct_frame", "carryover", "acquisition_order",
]
from .calibrate import (FlashCalibration, calibrate_folder, dark_moments, find_calibration_files,
                        fit_levels)

__all__ += ["FlashCalibration", "calibrate_folder", "dark_moments", "find_calibration_files",
            "fit_levels"]
