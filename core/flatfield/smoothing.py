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
smaller image side; the statistics are 'median' and 'mean' on empty planes.  When every tile
holds specimen (the mean follows the cells) they are 'median' and 'quantiles':

* 'quantiles' fits each pixel's intensity distribution over the planes as an affine map of the
  field's distribution, ``q_j(y, x) = z(y, x) + v(y, x) Q_j`` for the deciles ``j``
  (:func:`affine_fit`), so the flat-field is the slope ``v`` and the additive term ``z`` (flare
  or veiling glare, out-of-focus haze, an offset the user did not give) is subtracted before
  dividing.  This is the gain/offset model of CIDRE (Smith K. et al. (2015) CIDRE: an
  illumination-correction method for optical microscopy. Nat Methods 12:404-406.
  doi:10.1038/nmeth.3323), fitted here by least squares on deciles instead of CIDRE's
  regularised energy.  The median alone cannot tell a shaded specimen from an additive term
  that is shaded differently: on CellProfiler's example images the background is vignetted
  to 0.60 at the corners but the cells much less, and a flat-field from the background
  over-corrects the cells (benchmarks/bench_cp_illumination.py).
* With specimen in the planes the held-out target is the whole distribution: the criterion is
  the mean CV of the other half's decile maps once corrected (:func:`distribution_criterion`),
  so the flat-field must make every intensity level, cells as well as background, independent
  of position.  The 'quantiles' model is a candidate only when the distribution's spread is
  well above what noise alone gives (:func:`specimen_spread_ratio`): on empty or nearly empty
  planes the deciles are noise quantiles, whose spread follows the square root of the
  shading, and their slope is not the flat-field.
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from ..errors import CamcorrError

__all__ = ["sigma_grid", "smooth_normalise", "heldout_criterion", "choose_smoothing",
           "affine_fit", "smooth_affine", "distribution_criterion", "specimen_spread_ratio",
           "SIGMA_MIN", "AUTO", "QUANTILE_LEVELS", "MIN_SPECIMEN_SPREAD"]

AUTO = "auto"
SIGMA_MIN = 2.0
"""Smallest sigma of the grid, pixels (the block size of the binned statistic)."""
QUANTILE_LEVELS = (10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0)
"""Percent levels of the per-pixel intensity distribution used by the 'quantiles' model."""
MIN_SPECIMEN_SPREAD = 2.0
"""The 'quantiles' model is a candidate only when the 10-50 % spread of the per-pixel
distribution is at least this many times the spread of noise alone
(:func:`specimen_spread_ratio`).  Measured: CellProfiler's example images 2.8; simulated cells
covering 10-35 % of every field 0.8-0.9 (the lower half of each pixel's distribution is the
background's noise, whose quantiles spread as the square root of the shading), 45 % 2.4."""


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
        # float32 throughout (the flat-field is float32; the sums below are float64)
        trend = quadratic_trend(stat) if trend is None else trend
        smooth = _gaussian(np.divide(stat, trend, dtype=np.float32), sigma)
        np.multiply(smooth, trend, out=smooth, casting="same_kind")
    else:
        smooth = stat.astype(np.float32)
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
    """Gaussian filter (mirrored borders; :func:`~camcorr.flatfield._kernels.gaussian_reflect`),
    in the dtype of `image`; for sigma > 4 on k x k block means (k = sigma // 2), interpolated
    back: the box widens the kernel by under 1 %, and costs k^3 times less."""
    from ._kernels import gaussian_reflect

    k = int(sigma // 2) if sigma > 4 else 1
    if k <= 1 or min(image.shape) < 4 * k:
        return gaussian_reflect(image, sigma)
    from .empty import bin2d, unbin2d  # (empty imports this module)

    small = gaussian_reflect(bin2d(image, k), sigma / k)
    return unbin2d(small, k, image.shape).astype(image.dtype, copy=False)


def _trend_axes(ny: int, nx: int):
    """Normalised coordinates of the quadratic trend: centred, in units of the image size."""
    y = (np.arange(ny, dtype=np.float64) - (ny - 1) / 2) / max(1, ny)
    x = (np.arange(nx, dtype=np.float64) - (nx - 1) / 2) / max(1, nx)
    return y, x


def quadratic_trend_lstsq(stat: np.ndarray) -> np.ndarray:
    """Reference of :func:`quadratic_trend`: ``numpy.linalg.lstsq`` on the full (Y X, 6)
    design matrix (same result to rounding; tested in tests/test_kernels_hypothesis.py)."""
    ny, nx = stat.shape
    if ny < 3 or nx < 3:
        return np.ones_like(stat, dtype=np.float64)
    y, x = _trend_axes(ny, nx)
    y, x = np.meshgrid(y, x, indexing="ij")
    design = np.stack([np.ones_like(y), y, x, y * y, x * y, x * x], axis=-1).reshape(-1, 6)
    coef, *_ = np.linalg.lstsq(design, stat.reshape(-1).astype(np.float64), rcond=None)
    trend = (design @ coef).reshape(ny, nx)
    if not np.all(trend > 0):
        return np.ones_like(stat, dtype=np.float64)
    return trend


#: Exponents (of y, of x) of the quadratic trend's terms: 1, y, x, y^2, xy, x^2.
_TREND_TERMS = ((0, 0), (1, 0), (0, 1), (2, 0), (1, 1), (0, 2))


def quadratic_trend(stat: np.ndarray) -> np.ndarray:
    """Least-squares quadratic surface ``c0 + c1 y + c2 x + c3 y^2 + c4 xy + c5 x^2`` fitted to
    `stat` (float64, same shape); ones where the fit is not positive everywhere.

    The design is separable (every term is ``y^a x^b``), so the normal equations are formed
    from one product of `stat` with the columns ``1, x, x^2`` (O(Y X), no (Y X, 6) design
    matrix) and the power sums of the coordinates; solved in float64 on normalised centred
    coordinates (condition number of the 6 x 6 system below 400 at every image size).  Same
    solution as :func:`quadratic_trend_lstsq` to rounding.
    """
    ny, nx = stat.shape
    if ny < 3 or nx < 3:
        return np.ones_like(stat, dtype=np.float64)
    y, x = _trend_axes(ny, nx)
    py = np.stack([y ** p for p in range(5)])  # (5, Y) powers 0..4
    px = np.stack([x ** p for p in range(5)])
    sy, sx = py.sum(axis=1), px.sum(axis=1)
    gram = np.array([[sy[a + c] * sx[b + d] for c, d in _TREND_TERMS] for a, b in _TREND_TERMS])
    rows = np.asarray(stat, dtype=np.float64) @ px[:3].T  # (Y, 3): sum_x x^b stat
    rhs = np.array([py[a] @ rows[:, b] for a, b in _TREND_TERMS])
    coef = np.linalg.solve(gram, rhs)
    c0, c1, c2, c3, c4, c5 = coef
    trend = ((c0 + c1 * y + c3 * y * y)[:, None] + (c2 + c4 * y)[:, None] * x[None, :]
             + (c5 * x * x)[None, :])
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


def affine_fit(q: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Per-pixel least-squares line of the quantile maps against the field's quantiles.

    Parameters
    ----------
    q : ndarray (J, Y, X)
        Quantile maps: ``q[j]`` is the :data:`QUANTILE_LEVELS` ``[j]`` percentile of each
        pixel's values over the planes.

    Returns
    -------
    v, z : ndarray (Y, X) float64
        Slope and intercept of ``q[:, y, x] = z + v * Q`` with ``Q[j]`` the median of ``q[j]``
        over the pixels (the field's distribution).
    """
    q = np.asarray(q, dtype=np.float64)
    levels = np.median(q.reshape(q.shape[0], -1), axis=1)
    qc = levels - levels.mean()
    den = float(np.sum(qc ** 2))
    if not den > 0:
        raise CamcorrError("the planes' intensity distribution has no spread",
                           argument="statistic", expected="planes whose pixel values vary",
                           received="identical quantiles", fix="Use statistic 'median'")
    v = np.tensordot(qc, q - q.mean(axis=0), axes=(0, 0)) / den
    z = q.mean(axis=0) - v * levels.mean()
    return v, z


def smooth_affine(q: np.ndarray, sigma: float, argument: str = "tiles"):
    """Flat-field (mean 1) and additive term of the 'quantiles' model, smoothed by `sigma`.

    The slope is smoothed like any statistic (:func:`smooth_normalise`, trend-relative), the
    intercept with a plain Gaussian.  ``(x - z) / flat`` is the corrected value (up to one
    constant factor, the slope's mean).

    Returns
    -------
    flat : ndarray (Y, X) float32, mean 1
    z : ndarray (Y, X) float64, units of `q`

    Raises
    ------
    CamcorrError
        If the quantiles do not spread or the slope is not positive on average or after
        smoothing.
    """
    v, z = affine_fit(q)
    if not float(v.mean()) > 0:
        raise CamcorrError("the intensity distribution does not grow with the field's",
                           argument=argument, expected="a positive slope on average",
                           received=f"mean slope {float(v.mean()):.3g}",
                           fix="Use statistic 'median'")
    flat = smooth_normalise(v, sigma, argument)
    zs = _gaussian(z, sigma) if sigma > 0 else z
    return flat, zs


def _corrected_cv(q: np.ndarray, flat: np.ndarray, z) -> float:
    # decile maps of a few dozen planes are far noisier than a median map: their CV is taken
    # after a Gaussian of 1/32 of the side, as the quality figures are (shading, not noise)
    from .quality import smoothed_cv

    return float(np.mean([smoothed_cv((qj - z) / flat) for qj in q]))


def distribution_criterion(q_a: np.ndarray, q_b: np.ndarray, model_a, model_b) -> float:
    """Mean over deciles of the CV of ``(q_b - z_a) / flat_a`` and vice versa (lower is
    flatter): every intensity level of the held-out half, not just its background."""
    return 0.5 * (_corrected_cv(q_b, *model_a) + _corrected_cv(q_a, *model_b))


def specimen_spread_ratio(q: np.ndarray, noise: float) -> float:
    """10-50 % spread of the per-pixel distribution (median over pixels) over the spread that
    Gaussian noise of standard deviation `noise` alone gives (1.2816 `noise`).

    The lower half: a sparse specimen reaches only the top deciles, and the rest of the
    distribution is noise; the affine model is identified only when specimen spreads the
    whole distribution.
    """
    q = np.asarray(q, dtype=np.float64)
    lo = QUANTILE_LEVELS.index(10.0)
    hi = QUANTILE_LEVELS.index(50.0)
    spread = float(np.median(q[hi] - q[lo]))
    if not noise > 0:
        return float("inf") if spread > 0 else 0.0
    return spread / (1.2816 * float(noise))


def _model(stats: Dict[str, np.ndarray], name: str, sigma: float, argument: str, trend=None):
    """(flat, additive term) of candidate `name` at `sigma` (pixels of the statistic)."""
    if name == "quantiles":
        return smooth_affine(stats[name], sigma, argument)
    return smooth_normalise(stats[name], sigma, argument, trend), 0.0


def _normalised(smooth: np.ndarray) -> np.ndarray:
    """`smooth` divided by its mean, float32 (as :func:`smooth_normalise` returns it)."""
    return (smooth / float(smooth.mean(dtype=np.float64))).astype(np.float32)


def _trend_candidates(stat_a, stat_b, trend_a, trend_b, ref_a, ref_b, sigmas, binning):
    """Yield ``(sigma, criterion, smooth_a, smooth_b)`` for every candidate sigma of one
    statistic: :func:`heldout_criterion` of the :func:`smooth_normalise` flat-fields (CV is
    scale-free, so the un-normalised ``smooth`` serves; criterion None where a flat-field is
    not positive everywhere)."""
    from ._kernels import trend_heldout

    ratio_a = np.divide(stat_a, trend_a, dtype=np.float32)
    ratio_b = np.divide(stat_b, trend_b, dtype=np.float32)
    for s in sigmas:
        sig = s / binning
        if not sig > 0:
            try:
                fa, fb = (smooth_normalise(stat_a, 0.0), smooth_normalise(stat_b, 0.0))
            except CamcorrError:
                yield s, None, None, None
                continue
            yield s, heldout_criterion(ref_a, ref_b, fa, fb), fa, fb
            continue
        sa, min_a, cv_b = trend_heldout(_gaussian(ratio_a, sig), trend_a, ref_b)
        sb, min_b, cv_a = trend_heldout(_gaussian(ratio_b, sig), trend_b, ref_a)
        c = 0.5 * (cv_b + cv_a)
        if not (min_a > 0 and min_b > 0 and np.isfinite(c)):
            yield s, None, None, None
            continue
        yield s, c, sa, sb


def choose_smoothing(stats_a: Dict[str, np.ndarray], stats_b: Dict[str, np.ndarray],
                     ref_a: np.ndarray, ref_b: np.ndarray, sigmas: Sequence[float], binning: int,
                     *, argument: str = "tiles", quantiles_a: Optional[np.ndarray] = None,
                     quantiles_b: Optional[np.ndarray] = None, models: Optional[dict] = None):
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
    quantiles_a, quantiles_b : ndarray (J, Yb, Xb), optional
        Decile maps of each half (planes holding specimen): the criterion is then
        :func:`distribution_criterion` for every candidate, else :func:`heldout_criterion`.
        A 'quantiles' entry of `stats_a` / `stats_b` is the 'quantiles' model's candidate.
    models : dict, optional
        Filled with ``{(statistic, sigma): (model_a, model_b)}`` of the winning candidate
        (each model a (flat-field, additive term) pair), for the caller's held-out figures.

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
    distribution = quantiles_a is not None and quantiles_b is not None
    for name in stats_a:
        ta = tb = None
        if name != "quantiles":
            ta, tb = quadratic_trend(stats_a[name]), quadratic_trend(stats_b[name])
        if not distribution and name != "quantiles":
            # the same criterion in fewer passes (the ratio to the trend once per statistic;
            # smoothing, trend, positivity and held-out CV fused, :func:`_trend_candidates`)
            for s, c, ma, mb in _trend_candidates(stats_a[name], stats_b[name], ta, tb, ref_a,
                                                  ref_b, sigmas, binning):
                table.append({"sigma": float(s), "statistic": name, "criterion": c})
                if c is not None and (best is None or c < best[0]):
                    best = (c, float(s), name)
                    if models is not None:
                        models.clear()
                        models[(name, float(s))] = (_normalised(ma), 0.0), (_normalised(mb), 0.0)
            continue
        for s in sigmas:
            try:
                ma = _model(stats_a, name, s / binning, argument, ta)
                mb = _model(stats_b, name, s / binning, argument, tb)
            except CamcorrError:
                table.append({"sigma": float(s), "statistic": name, "criterion": None})
                continue
            if distribution:
                c = distribution_criterion(quantiles_a, quantiles_b, ma, mb)
            else:
                c = heldout_criterion(ref_a, ref_b, ma[0], mb[0])
            table.append({"sigma": float(s), "statistic": name, "criterion": c})
            if best is None or c < best[0]:
                best = (c, float(s), name)
                if models is not None:
                    models.clear()
                    models[(name, float(s))] = (ma, mb)
    if best is None:
        raise CamcorrError("no smoothing gives a positive flat-field", argument=argument,
                           expected="planes with background light above the darkfield",
                           received="a statistic <= 0 at every sigma",
                           fix="Check the darkfield/offset and that the planes are not dark")
    return best[1], best[2], table
