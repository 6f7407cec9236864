"""Smoothing chosen by the data: the flat-field sigma and statistic that generalise best.

The planes are split in two alternate halves A and B (:func:`~camcorr.flatfield.quality.split_halves`).
For every candidate (sigma, statistic) the flat-field estimated on A corrects the robust
background of B (the per-pixel median of B's planes) and vice versa; the criterion is the mean
coefficient of variation of the two corrected backgrounds, at the resolution of the statistic
(no further smoothing, so noise left in a flat-field that is smoothed too little counts as much
as specimen left in it or shading smoothed away).  Because B's own noise and specimen are
the same for every candidate, the comparison is paired and the minimum is the candidate whose
flat-field predicts unseen images best: two-fold cross-validation (Stone M. (1974)
Cross-validatory choice and assessment of statistical predictions. J R Stat Soc B 36:111-147.
doi:10.1111/j.2517-6161.1974.tb00994.x).

The grid is small and fixed (:func:`sigma_grid`): sigma doubles from 2 pixels up to 1/8 of the
smaller image side; the statistics are 'median' and 'mean', or 'median' alone when every tile
holds specimen (a sparse specimen: the mean follows the cells).
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

import numpy as np
from scipy import ndimage as ndi

from ..errors import CamcorrError

__all__ = ["sigma_grid", "smooth_normalise", "heldout_criterion", "choose_smoothing",
           "SIGMA_MIN", "AUTO"]

AUTO = "auto"
SIGMA_MIN = 2.0
"""Smallest sigma of the grid, pixels (the block size of the binned statistic)."""


def sigma_grid(shape: Tuple[int, int]) -> Tuple[float, ...]:
    """Candidate sigmas (pixels): 2, 4, 8, ... up to ``min(Y, X) / 8`` (at least ``(2,)``)."""
    top = min(int(shape[0]), int(shape[1])) / 8.0
    out = [SIGMA_MIN]
    while out[-1] * 2 <= top:
        out.append(out[-1] * 2)
    return tuple(out)


def smooth_normalise(stat: np.ndarray, sigma: float, argument: str = "tiles",
                     trend: Optional[np.ndarray] = None) -> np.ndarray:
    """Gaussian-smoothed `stat` (sigma in pixels of `stat`), divided by its mean (float32).

    `trend` is :func:`quadratic_trend` of `stat` when the caller already has it.

    Raises
    ------
    CamcorrError
        If the result has zero or negative pixels (planes without background light).
    """
    if sigma > 0:
        # Smooth the ratio to a fitted quadratic surface and multiply back: a plain Gaussian
        # with mirrored borders pulls steep shading at the image edges toward the interior
        # (+5 % at the corners of a vignetted field at sigma 4 on 128 px); the ratio is nearly
        # flat, so mirroring it is harmless.
        trend = quadratic_trend(stat) if trend is None else trend
        smooth = _gaussian(stat / trend, sigma) * trend
    else:
        smooth = stat.copy()
    mean = float(smooth.mean(dtype=np.float64))
    if not mean > 0 or np.any(smooth <= 0):
        raise CamcorrError("empty planes give a flat-field with zero or negative pixels",
                           argument=argument,
                           expected="planes with background light above the darkfield",
                           received=f"statistic between {float(stat.min()):.3g} and "
                                    f"{float(stat.max()):.3g}",
                           fix="Check the darkfield/offset and that the planes are not dark")
    return (smooth / mean).astype(np.float32)


def _gaussian(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian filter (mirrored borders); for sigma > 4 on k x k block means (k = sigma // 2),
    interpolated back: the box widens the kernel by under 1 %, and costs k^3 times less."""
    k = int(sigma // 2) if sigma > 4 else 1
    if k <= 1 or min(image.shape) < 4 * k:
        return ndi.gaussian_filter(image, sigma, mode="reflect")
    from .empty import bin2d, unbin2d  # (empty imports this module)

    small = ndi.gaussian_filter(bin2d(image.astype(np.float32), k), sigma / k, mode="reflect")
    return unbin2d(small, k, image.shape).astype(np.float64)


def quadratic_trend(stat: np.ndarray) -> np.ndarray:
    """Least-squares quadratic surface ``c0 + c1 y + c2 x + c3 y^2 + c4 xy + c5 x^2`` fitted to
    `stat` (float64, same shape); `stat` itself where the fit is not positive everywhere."""
    ny, nx = stat.shape
    if ny < 3 or nx < 3:
        return np.ones_like(stat, dtype=np.float64)
    y, x = np.mgrid[0:ny, 0:nx]
    y = (y - (ny - 1) / 2) / max(1, ny)
    x = (x - (nx - 1) / 2) / max(1, nx)
    design = np.stack([np.ones_like(y), y, x, y * y, x * y, x * x], axis=-1).reshape(-1, 6)
    coef, *_ = np.linalg.lstsq(design, stat.reshape(-1).astype(np.float64), rcond=None)
    trend = (design @ coef).reshape(ny, nx)
    if not np.all(trend > 0):
        return np.ones_like(stat, dtype=np.float64)
    return trend


def _cv(a: np.ndarray) -> float:
    m = float(a.mean(dtype=np.float64))
    return float(a.std(dtype=np.float64) / m) if m > 0 else float("inf")


def heldout_criterion(ref_a: np.ndarray, ref_b: np.ndarray, flat_a: np.ndarray,
                      flat_b: np.ndarray) -> float:
    """Mean CV of ``ref_b / flat_a`` and ``ref_a / flat_b`` (pixel level; lower is flatter)."""
    return 0.5 * (_cv(ref_b / flat_a) + _cv(ref_a / flat_b))


def choose_smoothing(stats_a: Dict[str, np.ndarray], stats_b: Dict[str, np.ndarray],
                     ref_a: np.ndarray, ref_b: np.ndarray, sigmas: Sequence[float], binning: int,
                     *, argument: str = "tiles"):
    """The (sigma, statistic) of the grid with the lowest held-out non-uniformity.

    Parameters
    ----------
    stats_a, stats_b : dict of str -> ndarray (Yb, Xb)
        Per-pixel statistic of each half, by statistic name (binned by `binning`).
    ref_a, ref_b : ndarray (Yb, Xb)
        Robust background of each half (per-pixel median), the held-out targets.
    sigmas : sequence of float
        Candidate sigmas, full-resolution pixels.
    binning : int
        Block size of the statistics (sigma / binning is used on them).

    Returns
    -------
    sigma : float
    statistic : str
    table : list of dict
        One row per candidate: ``sigma``, ``statistic``, ``criterion`` (None when that
        candidate gives a non-positive flat-field).
    """
    table = []
    best: Optional[Tuple[float, float, str]] = None
    for name in stats_a:
        ta, tb = quadratic_trend(stats_a[name]), quadratic_trend(stats_b[name])
        for s in sigmas:
            try:
                fa = smooth_normalise(stats_a[name], s / binning, argument, ta)
                fb = smooth_normalise(stats_b[name], s / binning, argument, tb)
            except CamcorrError:
                table.append({"sigma": float(s), "statistic": name, "criterion": None})
                continue
            c = heldout_criterion(ref_a, ref_b, fa, fb)
            table.append({"sigma": float(s), "statistic": name, "criterion": c})
            if best is None or c < best[0]:
                best = (c, float(s), name)
    if best is None:
        raise CamcorrError("no smoothing gives a positive flat-field", argument=argument,
                           expected="planes with background light above the darkfield",
                           received="a statistic <= 0 at every sigma",
                           fix="Check the darkfield/offset and that the planes are not dark")
    return best[1], best[2], table
