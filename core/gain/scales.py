"""Gain at all spatial scales: the blind estimate's high frequencies, a pooled mean's low ones.

Why.  Smooth midway equalisation (:mod:`camcorr.gain.estimate`) estimates every column's (row's)
gain relative to a Gaussian-weighted neighbourhood of a few lines: a per-column gain ``c_x``
comes out as ``c_x / (w * c)_x``, a high-pass of it.  Structure that is smooth over the
neighbourhood (a slow modulation across columns, readout-sector steps, vignetting) is lost
(:func:`blind_spot`).  When the frames show *independent fields* (several movies, a moving
specimen), the mean of many frames sees the gain at every scale, but with the specimen's
fluctuation as noise, which is largest at low spatial frequencies of the specimen and falls
only as ``1/sqrt(N)``.  The two are complementary.

How (:func:`combine_scales`).  With ``S`` the blind estimate and ``M`` the pooled mean of the
frames (each frame divided by its mean), ``R = M / S`` holds what the blind estimate missed,
plus the specimen's fluctuation.  ``R`` is decomposed the way the blind estimate is blind: its
column profile (mean over rows), then the row profile of what is left, then a 2D remainder.
Each part is low-passed (Gaussian) at a crossover scale chosen *from the data* by two-fold
cross-validation between the even and the odd frames: the scale at which the low-passed part
of one half best predicts the other half (the other half's noise is independent, so this
minimises the squared error of the low-passed part).  "No correction" is a candidate and, by
the one-standard-error rule (Breiman et al. 1984, ch. 3.4), the smoothest candidate whose error
is within one standard error of the best is taken: where the two estimates agree within their
noise the blind estimate is kept.  The gain is

    G = S x profile_col(x) x profile_row(y) x lowpass_2D(x, y),  normalised to mean 1.

The smallest crossover is one line: finer structure is left to the blind estimate, which is
better there (its high-pass R^2 is kept).

When not.  With frames of one field (the same specimen in every frame: a single exposure's
movie), the pooled mean contains the specimen, which would be taken for gain; only the blind
estimate is used and the report says which periods it cannot see (:func:`blind_spot`).  The
pooled mean also contains any illumination that is the same in every frame (the beam's or the
light source's profile): with ``fields='independent'`` that profile ends up in the gain, as it
does in a flat-field.

References
----------
Sorzano, C.O.S. et al. (2018). Blind estimation of DED camera gain in Electron Microscopy.
J. Struct. Biol. 203(2), 90-93. doi:10.1016/j.jsb.2018.03.007
Breiman, L., Friedman, J.H., Olshen, R.A. & Stone, C.J. (1984). Classification and Regression
Trees. Wadsworth. doi:10.1201/9781315139470
Geyer, C.J. (1992). Practical Markov chain Monte Carlo. Stat. Sci. 7(4), 473-483.
doi:10.1214/ss/1177011137
Stone, M. (1974). Cross-validatory choice and assessment of statistical predictions.
J. R. Stat. Soc. B 36(2), 111-147. doi:10.1111/j.2517-6161.1974.tb00994.x
"""
from __future__ import annotations

import math
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
from scipy.ndimage import gaussian_filter, gaussian_filter1d

from ..errors import CamcorrError

__all__ = ["FIELDS", "DEFAULT_FIELDS", "PROFILE_SCALES", "AREA_SCALES", "N_GROUPS",
           "combine_scales", "pooled_mean", "blind_spot"]

#: How the frames relate: 'same' field in every frame, or 'independent' fields.
FIELDS = ("same", "independent")
DEFAULT_FIELDS = "same"
#: Crossover candidates (Gaussian sigma, lines) of the column and row profiles; None = no
#: correction (keep the blind estimate).
PROFILE_SCALES: Tuple[Optional[float], ...] = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, None)
#: Crossover candidates (pixels) of the 2D remainder.
AREA_SCALES: Tuple[Optional[float], ...] = (4.0, 8.0, 16.0, 32.0, 64.0, None)
#: Interleaved frame groups of the pooled mean (frame i goes to group i mod 4; groups 0, 2 are
#: the even frames, 1, 3 the odd ones).
N_GROUPS = 4


def check_fields(fields, argument: str = "fields") -> str:
    """Return `fields` if it is one of :data:`FIELDS`; raise :class:`CamcorrError` otherwise."""
    if fields not in FIELDS:
        raise CamcorrError("unknown kind of fields", argument=argument,
                           expected="'same' (one field of view in every frame) or "
                                    "'independent' (several movies, a moving specimen)",
                           received=repr(fields))
    return fields


def pooled_mean(sums: np.ndarray, counts: Sequence[int]) -> Tuple[np.ndarray, np.ndarray]:
    """Robust pooled mean and the means of the even and odd frames.

    Parameters
    ----------
    sums : ndarray, shape (4, Y, X)
        Sums of the frames (each divided by its mean) of the groups ``i mod 4``.
    counts : sequence of 4 int
        Frames per group.

    Returns
    -------
    pooled : ndarray, shape (Y, X)
        Per pixel, the mean of the middle two of the four group means (robust to a bright or
        dark feature that sits on a pixel in the frames of one group); the plain mean if a
        group is empty.
    halves : ndarray, shape (2, Y, X)
        Plain means of the even (groups 0, 2) and of the odd frames (groups 1, 3).
    """
    s = np.asarray(sums, dtype=np.float64)
    n = np.asarray(counts, dtype=np.float64)
    halves = np.stack([(s[0] + s[2]) / max(n[0] + n[2], 1), (s[1] + s[3]) / max(n[1] + n[3], 1)])
    if np.all(n > 0):
        means = np.sort(s / n[:, None, None], axis=0)
        pooled = 0.5 * (means[1] + means[2])
    else:
        pooled = s.sum(axis=0) / max(n.sum(), 1)
    return pooled, halves


def _norm(a: np.ndarray) -> np.ndarray:
    m = float(np.mean(a))
    return a / m if m > 0 else np.ones_like(a)


def _smooth1(p: np.ndarray, s: Optional[float]) -> np.ndarray:
    if s is None:
        return np.full_like(p, float(np.mean(p)))
    return gaussian_filter1d(p, s, mode="nearest")


def _smooth2(p: np.ndarray, s: Optional[float]) -> np.ndarray:
    if s is None:
        return np.full_like(p, float(np.mean(p)))
    return gaussian_filter(p, s, mode="nearest")


def _autocorrelation_time(d: np.ndarray, axis: int) -> float:
    """``1 + 2 sum(rho_k)`` along `axis`, summed over the initial positive lags (Geyer 1992)."""
    x = np.moveaxis(np.asarray(d, dtype=np.float64), axis, -1)
    x = x - x.mean()
    var = float(np.mean(x * x))
    n = x.shape[-1]
    if var <= 0 or n < 3:
        return 1.0
    tau = 1.0
    for k in range(1, n // 2):
        rho = float(np.mean(x[..., k:] * x[..., :-k])) / var
        if rho <= 0:
            break
        tau += 2 * rho
    return tau


def _standard_error(d: np.ndarray) -> float:
    """Standard error of ``mean(d)`` for a spatially correlated 1D or 2D array ``d``.

    The number of independent elements is ``d.size / tau`` with ``tau`` the integrated
    autocorrelation time along each axis (their product in 2D): neighbouring elements share
    specimen features and the low-pass, so a plain ``std / sqrt(n)`` would be too small.
    """
    tau = 1.0
    for axis in range(d.ndim):
        tau *= _autocorrelation_time(d, axis)
    n_eff = max(d.size / tau, 1.0)
    return float(np.std(d) / math.sqrt(max(n_eff - 1.0, 1.0)))


def _cross_validate(even, odd, scales, smooth) -> Tuple[Optional[float], Dict[str, float]]:
    """Two-fold cross-validated crossover scale, with the one-standard-error rule.

    The error of a candidate is the mean squared difference between the low-pass of one half and
    the other half (both ways).  The chosen scale is the *smoothest* candidate (no correction
    first, then the largest sigma) whose error is within one standard error of the smallest;
    the standard error is that of the mean per-element difference of the two errors, with the
    elements' spatial correlation taken into account (:func:`_standard_error`).
    """
    losses, errors = {}, {}
    for s in scales:
        loss = (smooth(even, s) - odd) ** 2 + (smooth(odd, s) - even) ** 2
        losses[s] = loss / 2
        errors["none" if s is None else f"{s:g}"] = float(np.mean(loss) / 2)
    best = min(scales, key=lambda s: float(np.mean(losses[s])))
    best_err = float(np.mean(losses[best]))
    order = sorted(scales, key=lambda s: -math.inf if s is None else -s)  # smoothest first
    for s in order:
        se = _standard_error(losses[s] - losses[best])
        if float(np.mean(losses[s])) <= best_err + se:
            return s, errors
    return best, errors


def _safe_ratio(a, b):
    out = np.ones(np.shape(a), dtype=np.float64)
    np.divide(a, b, out=out, where=np.asarray(b) > 0)
    return out


def combine_scales(sme: np.ndarray, sme_halves: np.ndarray, pooled: np.ndarray,
                   pooled_halves: np.ndarray, *,
                   profile_scales: Sequence[Optional[float]] = PROFILE_SCALES,
                   area_scales: Sequence[Optional[float]] = AREA_SCALES):
    """Blind estimate at high, pooled mean at low spatial frequencies (see the module text).

    Parameters
    ----------
    sme : ndarray, shape (Y, X)
        Blind (smooth midway equalisation) estimate, mean 1.
    sme_halves : ndarray, shape (2, Y, X)
        The blind estimates from the even and the odd frames.
    pooled : ndarray, shape (Y, X)
        Pooled mean of the frames (:func:`pooled_mean`), any positive scale.
    pooled_halves : ndarray, shape (2, Y, X)
        Pooled means of the even and the odd frames.
    profile_scales, area_scales : sequence of float or None
        Crossover candidates (Gaussian sigma in lines / pixels; None = no correction).

    Returns
    -------
    gain : ndarray, float64, shape (Y, X)
        Combined estimate, mean 1.
    halves : ndarray, float64, shape (2, Y, X)
        The same combination from the even and from the odd frames alone (at the crossovers
        chosen on all frames), for held-out validation.
    info : dict
        ``crossover_col``, ``crossover_row``, ``crossover_2d`` (sigma or None = not used),
        the cross-validation errors of every candidate, and ``low_frequency_std`` (std of the
        correction applied to the blind estimate).
    """
    S = np.asarray(sme, dtype=np.float64)
    Sh = np.asarray(sme_halves, dtype=np.float64)
    R = _norm(_safe_ratio(pooled, S))
    Rh = [_norm(_safe_ratio(pooled_halves[k], Sh[k])) for k in range(2)]
    info: Dict[str, object] = {}
    corr = np.ones_like(S)
    corr_h = [np.ones_like(S), np.ones_like(S)]
    # 1. column profile (mean over rows), 2. row profile of the rest, 3. 2D remainder
    for name, axis in (("col", 0), ("row", 1)):
        prof = R.mean(axis=axis)
        ph = [r.mean(axis=axis) for r in Rh]
        s, errs = _cross_validate(ph[0], ph[1], profile_scales, _smooth1)
        info[f"crossover_{name}"] = s
        info[f"cv_errors_{name}"] = errs
        expand = (lambda p: p[None, :]) if axis == 0 else (lambda p: p[:, None])
        c = expand(_norm(_smooth1(prof, s)))
        ch = [expand(_norm(_smooth1(p, s))) for p in ph]
        R = R / c
        Rh = [Rh[k] / ch[k] for k in range(2)]
        corr = corr * c
        corr_h = [corr_h[k] * ch[k] for k in range(2)]
    s, errs = _cross_validate(Rh[0], Rh[1], area_scales, _smooth2)
    info["crossover_2d"] = s
    info["cv_errors_2d"] = errs
    corr = corr * _norm(_smooth2(R, s))
    corr_h = [corr_h[k] * _norm(_smooth2(Rh[k], s)) for k in range(2)]
    corr = _norm(corr)
    info["low_frequency_std"] = float(np.std(corr))
    gain = _norm(S * corr)
    halves = np.stack([_norm(Sh[k] * _norm(corr_h[k])) for k in range(2)])
    return gain, halves, info


def _loo_transfer(sigma: float, freqs: np.ndarray) -> np.ndarray:
    """Transfer function of the leave-one-out Gaussian neighbourhood mean at `freqs`."""
    half = max(1, int(math.ceil(4 * sigma)))
    j = np.arange(1, half + 1)
    w = np.exp(-0.5 * (j / sigma) ** 2)
    w = w / (2 * w.sum())
    return 2 * (w[None, :] * np.cos(2 * np.pi * freqs[:, None] * j[None, :])).sum(axis=1)


def blind_spot(sigma_grid: Sequence[float], counts: Sequence[int]) -> Optional[float]:
    """Period (lines) above which the blind estimate recovers less than half of a gain's amplitude.

    A per-line gain ``c`` is estimated as ``c / (w * c)`` with ``w`` the leave-one-out Gaussian
    neighbourhood of the sigma chosen for the frame, so a sinusoid of frequency ``f`` is
    recovered with amplitude ``1 - W(f)`` (``W`` the transfer function of ``w``), averaged
    over the frames' chosen sigmas (frames with sigma 0 are not equalised and recover nothing).

    Parameters
    ----------
    sigma_grid : sequence of float
        The sigma candidates.
    counts : sequence of int
        How often each was chosen.

    Returns
    -------
    float or None
        The period in lines (columns or rows) where the mean recovered amplitude falls to 0.5;
        None if no frame was equalised.
    """
    grid = np.asarray(sigma_grid, dtype=np.float64)
    cnt = np.asarray(counts, dtype=np.float64)
    total = cnt.sum()
    if total <= 0 or not np.any(cnt[grid > 0] > 0):
        return None
    freqs = np.linspace(0.5, 0.001, 2000)  # from the Nyquist frequency down
    response = np.zeros_like(freqs)
    for s, c in zip(grid, cnt):
        if s > 0 and c > 0:
            response += c * (1 - _loo_transfer(float(s), freqs))
    response /= total
    below = np.nonzero(response < 0.5)[0]
    if below.size == 0:
        return None
    return float(1.0 / freqs[below[0]])
