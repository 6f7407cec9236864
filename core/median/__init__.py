"""Selective median filter for hot, noisy and aberrant-gain pixels (Amat et al. 2015).

Public API (arrays in ADU, axes (Z, Y, X); a set of 2D frames is (N, Y, X) or an iterable):

* :func:`find_bad_pixels` -> :class:`BadPixels` (mask, counts, thresholds): estimation.
* :func:`replace_bad_pixels` (stack, mask) -> corrected array (dtype kept): application.
* :func:`selective_median` -> :class:`MedianResult` (corrected, mask, counts, thresholds).
* ``rule='chi2'``: per-pixel chi-square test against shot plus read noise, for few planes
  (:mod:`camcorr.median.noise_model`: :func:`chi2_power`, :func:`fit_noise_model`,
  :func:`read_variance_map`).

Reference: Amat, F. et al. (2015) Nature Protocols 10, 1679-1696. doi:10.1038/nprot.2015.111
"""
from .noise_model import (DEFAULT_FPR, DEFAULT_MAP_FACTOR, NoiseModel, chi2_power,
                          chi2_threshold, fit_noise_model, read_variance_map)
from .selective import (RULES, BadPixels, MedianResult, find_bad_pixels, knee_threshold,
                        mad_threshold, median3x3, projections, replace_bad_pixels,
                        selective_median)

__all__ = [
    "RULES",
    "BadPixels",
    "MedianResult",
    "find_bad_pixels",
    "replace_bad_pixels",
    "selective_median",
    "projections",
    "median3x3",
    "knee_threshold",
    "mad_threshold",
    "DEFAULT_FPR",
    "DEFAULT_MAP_FACTOR",
    "NoiseModel",
    "chi2_power",
    "chi2_threshold",
    "fit_noise_model",
    "read_variance_map",
]
