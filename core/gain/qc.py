"""Quality report of an estimated (residual) gain image, with the noise floor that judges it.

Sorzano et al. (2018) flag a camera calibration as suspect when the residual gain (mean 1) has

* standard deviation > 0.04, or
* 97.5th / 2.5th percentile > 1.15, or
* maximum / 97.5th percentile > 4.5.

Shot noise alone exceeds these at low dose, so the report gives, beside the flags, the *noise
floor*: the standard deviation a perfectly flat gain would show, from counting statistics at the
data's dose.  Derivation: a pixel that received ``D`` electrons in total over ``N`` frames, each
read with Gaussian read noise ``r`` electrons, has a summed signal of variance ``D + N r**2``;
a gain estimated from it relative to the mean has relative variance ``(D + N r**2) / D**2``.
Over pixels with different doses (specimen texture, gain) the spread of a flat gain's estimate is
therefore

    floor = sqrt(mean_p((D_p + N r**2) / D_p**2)),

which for a uniform dose ``D`` without read noise is ``1 / sqrt(D)`` (8 e/px gives 0.35; 1000 e/px
0.032).  This is the floor of any per-pixel estimator (it is exactly the spread of the
flat-illumination oracle ``mean counts / global mean``; tests/test_gain.py checks it by simulation).
The blind estimator pools histograms over lines and is usually *below* it; its own measured floor is
the half-set floor (:attr:`GainResult.noise_floor_halfset`): the spread of the difference of the
gains estimated from even and odd frames, halved.
"""
from __future__ import annotations

import math
from typing import Optional, Union

import numpy as np

from ..errors import CamcorrError, check_finite, check_ndim
from . import _kernels as K

__all__ = ["gain_report", "counting_noise_floor", "THRESHOLDS"]

#: Sorzano et al. (2018) thresholds for a suspect calibration.
THRESHOLDS = {"std": 0.04, "percentile_ratio": 1.15, "max_ratio": 4.5}


def counting_noise_floor(dose_e_per_px: Union[float, np.ndarray], *, read_noise_e: float = 0.0,
                         n_frames: int = 1) -> float:
    """Standard deviation of a flat gain estimated at this dose (counting statistics).

    Parameters
    ----------
    dose_e_per_px : float or ndarray
        Total electrons (or photons) per pixel over all frames; an array gives the per-pixel dose.
    read_noise_e : float
        Read noise per frame, in electrons (0 for counting detectors).
    n_frames : int
        Number of frames summed (only matters with read noise).

    Returns
    -------
    float
        ``sqrt(mean((D + N r**2) / D**2))``; ``inf`` if some pixel received no signal.

    Raises
    ------
    CamcorrError
        If the dose is negative or not finite, or the read noise is negative.

    Examples
    --------
    >>> counting_noise_floor(10000.0)  # 1 / sqrt(dose): 1 % at 10^4 electrons per pixel
    0.01
    >>> round(counting_noise_floor(100.0, read_noise_e=2.0, n_frames=25), 4)
    0.1414
    """
    dose = np.asarray(dose_e_per_px, dtype=np.float64)
    if read_noise_e < 0 or not math.isfinite(read_noise_e):
        raise CamcorrError("invalid read noise", argument="read_noise_e",
                           expected="a number >= 0 (electrons)", received=repr(read_noise_e))
    if not dose.size:
        return math.nan
    # one fused parallel pass: mean variance and the counts of bad, negative and zero pixels
    _, mean_var, n_bad, n_negative, n_zero = K.dose_stats(dose, n_frames * read_noise_e ** 2)
    if n_bad:
        check_finite(dose, "dose_e_per_px")
    if n_negative:
        raise CamcorrError("negative dose", argument="dose_e_per_px",
                           expected="electrons per pixel >= 0", received=f"min {dose.min():g}")
    if n_zero:
        return math.inf
    return float(math.sqrt(mean_var))


def _gaussian_percentile_ratio(std: float) -> float:
    """p97.5 / p2.5 of a normal distribution with mean 1 and this std (inf if p2.5 <= 0)."""
    lo, hi = 1.0 - 1.959964 * std, 1.0 + 1.959964 * std
    return hi / lo if lo > 0 else math.inf


def gain_report(gain, *, dose_e_per_px=None, read_noise_e: float = 0.0, n_frames: int = 1,
                noise_floor_halfset: Optional[float] = None, mask=None) -> dict:
    """Statistics, Sorzano flags and noise floor of a (residual) gain image.

    Parameters
    ----------
    gain : ndarray, shape (Y, X)
        Gain image (orientation recorded = ideal x gain); it is normalised to mean 1 here.
    dose_e_per_px : float or ndarray, optional
        Total electrons per pixel over all frames (scalar or per-pixel); gives the counting floor.
    read_noise_e : float
        Read noise per frame in electrons (integrating cameras); 0 for counting.
    n_frames : int
        Number of frames behind the estimate.
    noise_floor_halfset : float, optional
        Measured floor of the estimator (from :class:`~camcorr.gain.GainResult`).
    mask : ndarray of bool, optional
        Pixels to include (default all).

    Returns
    -------
    dict
        JSON-serialisable: ``mean``, ``std``, ``min``, ``p2_5``, ``p97_5``, ``max``,
        ``percentile_ratio`` (p97.5/p2.5), ``max_ratio`` (max/p97.5), ``flag_std``,
        ``flag_percentile_ratio``, ``flag_max_ratio``, ``flagged`` (any flag), ``thresholds``,
        ``dose_e_per_px`` (mean), ``noise_floor_counting``, ``noise_floor_halfset``,
        ``noise_floor`` (the one used to judge: half-set if given, else counting),
        ``std_above_noise`` (sqrt(std**2 - floor**2), 0 if below), ``noise_percentile_ratio``
        (p97.5/p2.5 a flat gain would show at that floor), ``flags_within_noise`` (every raised
        flag is explained by noise: std <= 1.5 x floor), ``n_pixels``.

    Raises
    ------
    CamcorrError
        If `gain` is not a finite 2D image with a positive mean.

    Examples
    --------
    >>> import numpy as np
    >>> gain = 1 + 0.01 * np.random.default_rng(0).standard_normal((64, 64))  # 1 % noise only
    >>> rep = gain_report(gain, dose_e_per_px=10000.0)
    >>> round(rep["std"], 3), rep["noise_floor"], rep["flagged"], rep["n_pixels"]
    (0.01, 0.01, False, 4096)
    """
    g = np.asarray(gain, dtype=np.float64)
    check_ndim(g, (2,), "gain")
    if mask is not None:
        m = np.asarray(mask, dtype=bool)
        if m.shape != g.shape:
            raise CamcorrError("mask shape differs from the gain", argument="mask",
                               expected=f"shape {g.shape}", received=f"shape {m.shape}")
        values = g[m]
    else:
        values = g.ravel()
    # fused parallel passes (numba) instead of numpy's whole-image temporaries
    mean, _, glo, ghi, n_bad = K.moments(g)
    if n_bad:
        check_finite(g, "gain")
    if mask is not None:
        mean, _, glo, ghi, _ = K.moments(values)
    if not values.size:
        mean = 0.0
    if not mean > 0:
        raise CamcorrError("gain image has no positive mean", argument="gain",
                           expected="a gain image with mean > 0", received=f"mean {mean:g}")
    # statistics of v = values / mean (the mean-1 gain) without allocating v; the percentiles
    # are numpy's, from a parallel selection instead of np.percentile's serial partition
    _, std, vmin, vmax, _ = K.moments(values, divisor=mean)
    p2_5, p97_5 = K.percentiles(values, [2.5, 97.5], glo, ghi, divisor=mean)
    n_values = values.size
    pr = p97_5 / p2_5 if p2_5 > 0 else math.inf
    mr = vmax / p97_5 if p97_5 > 0 else math.inf
    floor_c = None
    dose_mean = None
    if dose_e_per_px is not None:
        floor_c = counting_noise_floor(dose_e_per_px, read_noise_e=read_noise_e, n_frames=n_frames)
        dose_mean = K.moments(dose_e_per_px)[0]
    floor = noise_floor_halfset if noise_floor_halfset is not None else floor_c
    flags = {"flag_std": std > THRESHOLDS["std"],
             "flag_percentile_ratio": pr > THRESHOLDS["percentile_ratio"],
             "flag_max_ratio": mr > THRESHOLDS["max_ratio"]}
    flagged = any(flags.values())
    rep = {
        "n_pixels": int(n_values),
        "mean": 1.0,
        "std": std,
        "min": vmin,
        "p2_5": p2_5,
        "p97_5": p97_5,
        "max": vmax,
        "percentile_ratio": _finite_or_none(pr),
        "max_ratio": _finite_or_none(mr),
        **flags,
        "flagged": flagged,
        "thresholds": dict(THRESHOLDS),
        "dose_e_per_px": dose_mean,
        "noise_floor_counting": _finite_or_none(floor_c),
        "noise_floor_halfset": _finite_or_none(noise_floor_halfset),
        "noise_floor": _finite_or_none(floor),
        "std_above_noise": (None if floor is None or not math.isfinite(floor)
                            else float(math.sqrt(max(std * std - floor * floor, 0.0)))),
        "noise_percentile_ratio": (None if floor is None
                                   else _finite_or_none(_gaussian_percentile_ratio(floor))),
        "flags_within_noise": (None if floor is None
                               else bool(flagged and std <= 1.5 * floor)),
    }
    return rep


def _finite_or_none(x):
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None
