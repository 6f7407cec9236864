"""Bad pixels from few planes: a per-pixel chi-square test against shot plus read noise.

The local rule of :mod:`camcorr.median.selective` compares each pixel's temporal noise with its
neighbours' *measured* noise; with few planes both are poor estimates, so its threshold must be
wide.  Here each pixel's noise is compared with what a good pixel at its mean level is *expected*
to show -- the photon-transfer relation (Janesick 2007)::

    expected variance  v0(y, x) = r(y, x) + a + b * mean(y, x)          (ADU^2)

* ``r``: the camera's per-pixel read-noise variance map (ADU^2), if one is given (e.g. measured
  on thousands of dark frames; Huang et al. 2013), else 0;
* ``a + b * mean``: fitted robustly on the data itself: ``b`` is the gain (ADU per electron:
  shot-noise variance grows by ``b`` ADU^2 per ADU of signal), ``a`` holds the read variance
  without a map (and ``-b x offset``; with a map, whatever the map misses, e.g. the 1/12 ADU^2 of
  integer rounding).

For Gaussian noise the sample variance ``s^2`` of ``n`` planes obeys
``(n - 1) s^2 / v0 ~ chi-square(n - 1)`` (Cochran 1934).  A pixel is flagged when that statistic
exceeds the ``1 - fpr`` quantile, so a clean pixel is flagged with probability ``fpr`` whatever
the number of planes, and a pixel whose noise std is ``F`` times the expected one is found with
probability ``P(chi2(n - 1) > q / F^2)`` (:func:`chi2_power`) -- the best any per-pixel test at
that false-positive rate can do (the variance test is uniformly most powerful for one normal
sample; Lehmann & Romano 2005, ch. 3).

Fit: pixels are sorted by their mean and cut into equal-count bins; in each bin the level ``S``
is found for which the *median* of ``s^2 / (r + S)`` equals the median of ``chi2(n-1)/(n-1)``
(a robust estimate: a few percent of noisy pixels move a median very little), and ``a + b *
mean`` is fitted to the bin levels by least squares (bins more than 4 robust sigmas off the line
dropped; ``b`` >= 0).  The fit is repeated once without the pixels that the first fit finds
noisier at a false-positive rate of 0.1 % (3 % of 4x-noisier pixels would otherwise lift the
fitted variance by about 1 %).  The fitted ``a``, ``b`` are reported.

The test assumes that the planes differ by noise only: repeated frames of a static scene, dark
frames, flat frames.  In a z-stack through a specimen the signal itself changes between planes,
and the test flags it; use the local rule there.

References
----------
Janesick, J. R. (2007). Photon Transfer, DN -> lambda. SPIE Press. doi:10.1117/3.725073
Huang, F. et al. (2013). Video-rate nanoscopy using sCMOS camera-specific single-molecule
localization algorithms. Nature Methods 10, 653-658. doi:10.1038/nmeth.2488
Cochran, W. G. (1934). The distribution of quadratic forms in a normal system. Math. Proc.
Cambridge Phil. Soc. 30, 178-191. doi:10.1017/S0305004100016595
Lehmann, E. L. & Romano, J. P. (2005). Testing Statistical Hypotheses, 3rd ed. Springer.
doi:10.1007/0-387-27605-X
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import numpy as np

from ..errors import CamcorrError, Limits, describe


def _chi2():
    """``scipy.stats.chi2``, imported on first use (``scipy.stats`` alone costs ~0.2 s, which
    every command line call paid at start-up)."""
    from scipy.stats import chi2
    return chi2

__all__ = [
    "DEFAULT_FPR",
    "DEFAULT_MAP_FACTOR",
    "DISPERSION_WARN",
    "NoiseModel",
    "chi2_threshold",
    "chi2_power",
    "fit_noise_model",
    "chi2_test",
    "map_outliers",
    "dispersion",
    "read_variance_map",
    "check_variance_map",
]

#: Default false-positive rate of the chi-square test (per clean pixel): 0.05 %, which leaves
#: the power to find 4x-noisier pixels in 10 planes at 99.4 % (:func:`chi2_power`).
DEFAULT_FPR = 5e-4
#: Default factor of the map rule: pixels whose read-noise std in the map is >= 5x its median.
DEFAULT_MAP_FACTOR = 5.0
#: Allowed false-positive rate (0, 0.5] and map noise factor (>= 0; 0 turns the map test off).
NOISE_LIMITS = {"fpr": Limits(0.0, 0.5, low_inclusive=False), "map_factor": Limits(low=0.0)}
#: A :func:`dispersion` above this means the model does not explain the pixels' noise
#: (measured: 1.02-1.06 on simulated clean cameras with 3 % bad pixels, 10-50 planes; 1.4-2.2 for
#: the real sCMOS read-noise map without the map; 1.56 for a z-stack through a bead).
DISPERSION_WARN = 1.25
#: Pixels beyond this false-positive rate of the first fit are left out of the second (so a few
#: percent of noisy pixels do not lift the medians; clean pixels lost: 0.1 %, which moves a
#: median by under 0.1 %).
REFIT_FPR = 1e-3
#: Fewest pixels per bin of the mean-variance fit.
MIN_PER_BIN = 256
#: Most bins of the mean-variance fit.
MAX_BINS = 32


@dataclass
class NoiseModel:
    """Expected temporal variance of a good pixel: ``read_variance + intercept + gain * mean``.

    Attributes
    ----------
    intercept : float
        ``a``, ADU^2.
    gain : float
        ``b``, ADU^2 per ADU of mean (the camera gain in ADU per electron), >= 0.
    n_bins : int
        Bins the fit used (after rejection).
    with_map : bool
        True if a per-pixel read-variance map was part of the model.
    """

    intercept: float
    gain: float
    n_bins: int
    with_map: bool

    def expected_variance(self, mean: np.ndarray, read_variance: Optional[np.ndarray] = None
                          ) -> np.ndarray:
        """``read_variance + intercept + gain * mean`` (ADU^2), float64, shape of `mean`."""
        v = self.intercept + self.gain * np.asarray(mean, dtype=np.float64)
        if read_variance is not None:
            v = v + read_variance
        return v


def chi2_threshold(n_planes: int, fpr: float) -> float:
    """Quantile ``q`` of chi-square(n - 1) exceeded with probability `fpr` (the test threshold).

    A pixel is flagged when ``(n - 1) s^2 / v0 > q``, i.e. when its measured noise std exceeds
    ``sqrt(q / (n - 1))`` times the expected one.

    Examples
    --------
    >>> q = chi2_threshold(10, 1e-6)  # chi-square quantile with 9 degrees of freedom
    >>> round(q, 1), round((q / 9) ** 0.5, 2)  # flagged above 2.23 x the expected noise std
    (44.8, 2.23)
    """
    _check_fpr(fpr)
    return float(_chi2().isf(fpr, int(n_planes) - 1))


def chi2_power(n_planes: int, factor: float, fpr: float) -> float:
    """Probability that the test finds a pixel whose noise std is `factor` x the expected one.

    ``P(chi2(n - 1) > q / factor^2)`` with ``q = chi2_threshold(n_planes, fpr)``: the statistical
    limit of any per-pixel test at false-positive rate `fpr` on `n_planes` Gaussian planes.

    Examples
    --------
    >>> round(chi2_power(10, 4.0, 5e-4), 4)
    0.9936
    """
    q = chi2_threshold(n_planes, fpr)
    return float(_chi2().sf(q / float(factor) ** 2, int(n_planes) - 1))


def _check_fpr(fpr):
    NOISE_LIMITS["fpr"].check(fpr, "fpr")


def _bin_level(var, read, ratio):
    """Level S with median(var / (read + S)) == ratio (bisection; S > -min(read))."""
    med_v = float(np.median(var))
    if not np.any(read):
        return med_v / ratio
    # f(S) = median(var / (read + S)) - ratio decreases with S; f(hi) < 0 as read >= 0
    lo = -float(read.min())
    hi = max(med_v / ratio, 1e-12) * 2.0 + 1e-12
    lo_eval = lo + 1e-9 * (hi - lo)
    if np.median(var / (read + lo_eval)) < ratio:  # the map alone over-predicts: no root above lo
        return lo_eval
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        if np.median(var / (read + mid)) > ratio:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def fit_noise_model(mean: np.ndarray, variance: np.ndarray, n_planes: int, *,
                    read_variance: Optional[np.ndarray] = None) -> NoiseModel:
    """Fit the mean-variance (photon-transfer) relation of good pixels, robustly.

    Parameters
    ----------
    mean, variance : ndarray, shape (Y, X)
        Per-pixel temporal mean (ADU) and sample variance (ddof=1, ADU^2) over `n_planes`.
    n_planes : int
        Number of planes (>= 2).
    read_variance : ndarray, shape (Y, X), optional
        Per-pixel read-noise variance map (ADU^2); the fit then models what the map does not.

    Returns
    -------
    NoiseModel

    Raises
    ------
    CamcorrError
        If the map predicts far more noise than the data hold (wrong camera, ROI or units).
    """
    k = int(n_planes) - 1
    ratio = float(_chi2().median(k)) / k  # median of s^2 / sigma^2 for a good pixel
    m = np.asarray(mean, dtype=np.float64).ravel()
    v = np.asarray(variance, dtype=np.float64).ravel()
    r = (np.zeros_like(v) if read_variance is None
         else np.asarray(read_variance, dtype=np.float64).ravel())
    keep = np.ones(m.size, bool)
    q_refit = float(_chi2().isf(REFIT_FPR, k))
    for _ in range(2):  # fit; drop pixels that are clearly noisier than that fit; fit again
        idx = np.flatnonzero(keep)
        order = idx[np.argsort(m[idx], kind="stable")]
        n_bins = int(np.clip(order.size // MIN_PER_BIN, 1, MAX_BINS))
        chunks = np.array_split(order, n_bins)
        xs = np.array([np.median(m[c]) for c in chunks])
        levels = np.array([_bin_level(v[c], r[c], ratio) for c in chunks])
        a, b, used = _robust_line(xs, levels)
        expected = r + a + b * m
        keep = ~(k * v > q_refit * np.maximum(expected, 1e-12))
        if keep.sum() < max(MIN_PER_BIN, m.size // 2):
            break
    model = NoiseModel(intercept=a, gain=b, n_bins=used, with_map=read_variance is not None)
    if read_variance is not None:
        typical = float(np.median(r))
        shot = model.expected_variance(xs)
        if typical > 0 and np.min(shot) < -0.5 * typical:
            data_var = float(np.median(v)) / ratio
            raise CamcorrError(
                "the variance map does not fit the data", argument="variance_map",
                expected="the read-noise variance (ADU^2) of this camera and region, at most "
                         "the noise the data show",
                received=f"a map with median {typical:.4g} ADU^2 for data whose typical noise "
                         f"variance is {data_var:.4g} ADU^2",
                fix="Use the map of this camera, cropped to the same region (ROI) and in ADU^2 "
                    "(a standard-deviation map must be squared), or run without a map")
    return model


def _robust_line(x, y):
    """Least-squares line through (x, y) with one round of 4-robust-sigma rejection, slope >= 0."""
    keep = np.ones(x.size, bool)
    for _ in range(2):
        a, b = _line(x[keep], y[keep])
        res = y - (a + b * x)
        mad = 1.482602218505602 * float(np.median(np.abs(res[keep] - np.median(res[keep]))))
        if mad == 0.0:
            break
        new = np.abs(res - np.median(res[keep])) <= 4.0 * mad
        if new.sum() < 2 or np.array_equal(new, keep):
            break
        keep = new
    a, b = _line(x[keep], y[keep])
    return a, b, int(keep.sum())


def _line(x, y):
    if x.size < 2 or float(np.ptp(x)) == 0.0:
        return float(np.mean(y)), 0.0
    b, a = np.polyfit(x, y, 1)
    if b < 0.0:  # shot noise cannot fall with the signal: a constant fits better
        return float(np.mean(y)), 0.0
    return float(a), float(b)


def chi2_test(variance: np.ndarray, expected: np.ndarray, n_planes: int, fpr: float):
    """Pixels whose sample variance exceeds the expected one beyond chance.

    Parameters
    ----------
    variance : ndarray
        Sample variance over `n_planes` (ddof=1), ADU^2.
    expected : ndarray
        Expected variance of a good pixel (same shape), ADU^2, > 0 where finite.
    n_planes : int
    fpr : float
        False-positive rate per clean pixel, in (0, 0.5].

    Returns
    -------
    flagged : ndarray of bool
    statistic : ndarray, float64
        ``(n - 1) variance / expected``.
    threshold : float
        ``chi2_threshold(n_planes, fpr)``.
    """
    q = chi2_threshold(n_planes, fpr)
    floor = 1e-6 * max(float(np.median(expected)), 1e-12)
    stat = (int(n_planes) - 1) * np.asarray(variance, np.float64) / np.maximum(expected, floor)
    return stat > q, stat, q


def dispersion(statistic: np.ndarray, n_planes: int) -> float:
    """Spread of the test statistic relative to chi-square: 1 when the model explains the noise.

    The interquartile range of ``log(statistic)`` over all pixels divided by that of
    ``log(chi2(n - 1))``.  Robust to a few percent of bad pixels; well above 1 when the pixels'
    noise varies more than shot plus read noise explain (read noise that differs from pixel to
    pixel without a map, planes that differ by more than noise).
    """
    k = int(n_planes) - 1
    lo, hi = _chi2().ppf([0.25, 0.75], k)
    stat = np.asarray(statistic, np.float64)
    stat = stat[stat > 0]
    if stat.size < 4:
        return float("nan")
    q25, q75 = np.percentile(np.log(stat), [25, 75])
    return float((q75 - q25) / (np.log(hi) - np.log(lo)))


def map_outliers(read_variance: np.ndarray, factor: float) -> np.ndarray:
    """Pixels whose read-noise std in the map is at least `factor` x the map's median std.

    ``factor <= 0`` returns no pixels.
    """
    if factor is None or factor <= 0:
        return np.zeros(np.shape(read_variance), bool)
    std = np.sqrt(np.asarray(read_variance, np.float64))
    return std >= float(factor) * float(np.median(std))


def check_variance_map(read_variance, shape, argument: str = "variance_map") -> np.ndarray:
    """Validate a read-noise variance map against the image shape; float64 (Y, X)."""
    arr = np.asarray(read_variance)
    if arr.dtype.kind not in "uif":
        raise CamcorrError("unsupported map type", argument=argument,
                           expected="a 2D array of variances (ADU^2)", received=describe(arr))
    arr = np.squeeze(arr).astype(np.float64)
    if arr.ndim != 2:
        raise CamcorrError("wrong number of dimensions", argument=argument,
                           expected="one 2D (Y, X) variance map", received=describe(arr))
    if tuple(arr.shape) != tuple(shape):
        raise CamcorrError("map and image sizes differ", argument=argument,
                           expected=f"a map of shape {tuple(shape)} like the image planes",
                           received=f"shape {arr.shape}",
                           fix="Crop the map to the camera region (ROI) of the data")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise CamcorrError("invalid variances in the map", argument=argument,
                           expected="finite values >= 0 (ADU^2)",
                           received=f"min {np.nanmin(arr):.4g}, "
                                    f"{int(np.count_nonzero(~np.isfinite(arr)))} non-finite")
    if not np.any(arr > 0):
        raise CamcorrError("the variance map is all zero", argument=argument,
                           expected="read-noise variances > 0 (ADU^2)", received="all zeros")
    return arr


def read_variance_map(path: Union[str, os.PathLike], argument: str = "--variance-map"
                      ) -> np.ndarray:
    """Read a read-noise variance map (ADU^2) from a TIFF, ``.npy`` or MATLAB ``.mat`` file.

    A ``.mat`` file must hold exactly one 2D numeric variable (or one named ``varsub``, as in the
    published sCMOS maps of Zhou et al. 2022).

    Returns
    -------
    ndarray, float64, shape (Y, X)

    Raises
    ------
    CamcorrError
        Missing or unreadable file, not exactly one 2D map.
    """
    p = Path(path)
    if not p.is_file():
        raise CamcorrError("variance map not found", argument=argument,
                           expected="an existing TIFF, .npy or .mat file", received=str(p))
    suffix = p.suffix.lower()
    try:
        if suffix == ".npy":
            arr = np.load(p, allow_pickle=False)
        elif suffix == ".mat":
            from scipy.io import loadmat
            mat = {k: v for k, v in loadmat(str(p)).items()
                   if not k.startswith("__") and isinstance(v, np.ndarray)
                   and v.dtype.kind in "uif" and np.squeeze(v).ndim == 2}
            if "varsub" in mat:
                arr = mat["varsub"]
            elif len(mat) == 1:
                arr = next(iter(mat.values()))
            else:
                raise CamcorrError("not exactly one 2D map in the MATLAB file", argument=argument,
                                   expected="one 2D numeric variable (or one named 'varsub')",
                                   received=", ".join(sorted(mat)) or "none")
        elif suffix in (".tif", ".tiff"):
            from ..io import read_tiff
            arr, _ = read_tiff(p, argument=argument)
        else:
            raise CamcorrError("unknown map file type", argument=argument,
                               expected="a .tif/.tiff, .npy or .mat file", received=str(p))
    except CamcorrError:
        raise
    except Exception as exc:  # numpy/scipy/tifffile raise several types on a bad file
        raise CamcorrError("cannot read the variance map", argument=argument,
                           expected="a readable TIFF, .npy or .mat file",
                           received=f"{p} ({type(exc).__name__}: {exc})") from None
    arr = np.squeeze(np.asarray(arr))
    if arr.ndim != 2 or arr.dtype.kind not in "uif":
        raise CamcorrError("not a 2D map", argument=argument,
                           expected="one 2D (Y, X) array of variances in ADU^2",
                           received=describe(arr))
    return arr.astype(np.float64)
