"""Blind and residual camera-gain estimation (Sorzano et al., 2018) and its quality report.

Public API
----------
estimate_gain(frames, *, gain_ref=None, sigmas=..., ...) -> GainResult
    Gain (recorded = ideal x gain, mean 1) from the movie frames themselves, iterated; with
    ``gain_ref`` the residual gain left after correcting by a measured reference.
GainAccumulator
    The same, one frame at a time (state = numpy arrays), for hosts such as CellProfiler.
gain_report(gain, *, dose_e_per_px=...) -> dict
    std, 2.5/97.5 percentiles, max, the three Sorzano flags and the counting noise floor.
counting_noise_floor(dose_e_per_px, ...) -> float
sme_frame(frame, ...) -> (equalised, sigma_col, sigma_row)
    Smooth midway equalisation of one frame.
prepare_gain_ref(gain_ref, shape, orientation=...) -> ndarray
    Checked gain reference as a divisor.

(A posteriori normalisation and FRC live in :mod:`camcorr.aposteriori`.)

References
----------
Sorzano, C.O.S. et al. (2018). Blind estimation of DED camera gain in Electron Microscopy.
J. Struct. Biol. 203(2), 90-93. doi:10.1016/j.jsb.2018.03.007
"""
from .estimate import (DEFAULT_SIGMAS, GainAccumulator, GainResult, estimate_gain,
                       prepare_gain_ref, sme_frame)
from .qc import THRESHOLDS, counting_noise_floor, gain_report

__all__ = [
    "DEFAULT_SIGMAS",
    "GainAccumulator",
    "GainResult",
    "THRESHOLDS",
    "counting_noise_floor",
    "estimate_gain",
    "gain_report",
    "prepare_gain_ref",
    "sme_frame",
]
