"""A posteriori per-pixel normalisation (Afanasyev et al.) and Fourier ring correlation.

Public API (frames (N, Y, X) in ADU):

* :func:`compute_stats` -> :class:`NormalizationStats` (streamed per-pixel mean/sigma in two
  half sets, blank/deviant frame rejection, mergeable, ``save``/``load``).
* :func:`normalize` (frames, stats, sigma0=..., i0=...) -> corrected frames.
* :func:`half_set_averages` -> two raw and two unbiasedly corrected averages for an FRC check.
* :func:`frc` (a, b) -> :class:`FRCResult` (frequencies, FRC, 3-sigma curve, cross-over,
  ``plot``, ``save_json``).

References: Afanasyev et al. (2015) Sci. Rep. 5, 10317, doi:10.1038/srep10317;
van Heel & Schatz (2005) J. Struct. Biol. 151, 250-262, doi:10.1016/j.jsb.2005.05.009.
"""
from .frc import WINDOWS, FRCResult, frc
from .normalize import (SPLITS, ZERO_SIGMA, NormalizationStats, compute_stats, frame_summary,
                        half_set_averages, normalize, normalize_frame, select_frames)

__all__ = [
    "NormalizationStats",
    "compute_stats",
    "frame_summary",
    "select_frames",
    "normalize",
    "normalize_frame",
    "half_set_averages",
    "frc",
    "FRCResult",
    "SPLITS",
    "ZERO_SIGMA",
    "WINDOWS",
]
