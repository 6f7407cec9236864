"""Selective median filter: find hot, noisy and aberrant-gain pixels and replace only those.

Method (Amat et al. 2015, supplementary note; as described for LLSpy's "Do Median Filter"):

1. Per-pixel standard deviation over the planes (the *std projection*) of a (Z, Y, X) stack or of
   a set of 2D frames.
2. Its deviation from the 3x3 median of the std projection, with **mirrored** borders (``d c b |
   a b c d``, so corner and edge pixels are compared with real neighbours, not with zeros).
3. An automatic threshold on the deviations:

   * ``rule='mad'`` (default): the deviation is measured as the log ratio
     ``log((std + eps) / (median3x3(std) + eps))`` (``eps`` = 0.1 x the median std), because
     temporal noise scales with the local signal (shot noise, in-focus structure); a pixel is
     flagged if its log ratio exceeds ``median + k x 1.4826 x MAD`` of all log ratios (a robust
     z-score above `k`, default 5).  On defect-free Gaussian noise this flags about nothing (the
     tail beyond 5 robust sigmas), while a pixel 5x noisier than its neighbours is far beyond it.
     *Spike guard*: a pixel is flagged only if its std also exceeds that of at least 6 of its 8
     neighbours.  Hot and RTS pixels are isolated spikes (clusters of up to 3 still pass), whereas
     the flank of real in-focus structure (a bead imaged through focus) always has uphill
     neighbours, so its large std is never mistaken for a noisy pixel.
   * ``rule='knee'`` (parity with LLSpy 0.5.1): the deviation is ``|std - median3x3(std)|`` and
     the threshold is the value at the "knee" of the sorted deviations: the point farthest
     (vertically) from the straight line joining the smallest and the largest deviation.  This
     rule always flags a few percent of pixels, even on clean data (3.6-8 % on simulated clean
     stacks, see ``tests/test_median.py``).
   * ``rule='chi2'``: no neighbour comparison; every pixel's variance is tested against the
     variance a good pixel shows at its mean level (shot plus read noise: a per-pixel read-noise
     variance map if given, and a photon-transfer line fitted robustly on the data), with a
     chi-square test at the false-positive rate ``fpr`` (:mod:`camcorr.median.noise_model`).
     Works from a few planes of a static scene; a z-stack through a specimen is not one.

4. Optional second pass on the *mean* projection (pixels of aberrant gain or offset): deviation
   ``mean - median3x3(mean)`` (mirrored borders), flagged two-sided beyond
   ``k x 1.4826 x MAD`` (``rule='mad'``) or beyond the knee of ``|deviation|`` (``rule='knee'``).
   (LLSpy's version thresholds ``|mean - median/median|``, i.e. ``|mean - 1|``: a bug.)  Sharp
   in-focus structure (beads, smaller than about 3 pixels) also deviates from its 3x3 median in the
   mean projection; use this pass on data without such structure (dark frames, flat fields,
   sparse samples).
5. Every flagged pixel, in every plane, is replaced by the median of its 8 neighbours (the pixel
   itself excluded).  Neighbours outside the image are skipped (no padding) and flagged
   neighbours are skipped too, so two adjacent hot pixels do not contaminate each other; if all 8
   neighbours are flagged the unflagged pixels of the 5x5 ring are used, and failing those the 8
   neighbours regardless of their flag.

Estimation (:func:`find_bad_pixels`) is separate from application (:func:`replace_bad_pixels`):
a mask found on one stack (or a set of dark frames) can be applied to others.

References
----------
Amat, F., Höckendorf, B., Wan, Y., Lemon, W. C., McDole, K. & Keller, P. J. (2015). Efficient
processing and analysis of large-scale light-sheet microscopy data. Nature Protocols 10,
1679-1696. doi:10.1038/nprot.2015.111
Rousseeuw, P. J. & Croux, C. (1993). Alternatives to the median absolute deviation. JASA 88,
1273-1283. doi:10.1080/01621459.1993.10476408 (MAD consistency factor 1.4826)
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple

import numpy as np

from ..errors import (CamcorrError, Limits, check_choice, check_finite, check_frame_block,
                      describe)
from ..io import cast_to_dtype, native_byte_order
from . import _kernels, noise_model
from .noise_model import DEFAULT_FPR, DEFAULT_MAP_FACTOR

__all__ = [
    "BadPixels",
    "MedianResult",
    "RULES",
    "DEFAULT_K",
    "LIMITS",
    "projections",
    "median3x3",
    "knee_threshold",
    "mad_threshold",
    "find_bad_pixels",
    "replace_bad_pixels",
    "selective_median",
]

RULES = ("mad", "knee", "chi2")
#: Default robust z-score threshold of rule ``"mad"`` (flags < 0.1 % of clean pixels).
DEFAULT_K = 5.0
#: Allowed values of the thresholds (any positive number of robust standard deviations).
LIMITS = {"k": Limits(low=0.0, low_inclusive=False),
          "mean_k": Limits(low=0.0, low_inclusive=False), **noise_model.NOISE_LIMITS}
BACKENDS = ("numba", "numpy")
_MAD_SCALE = 1.482602218505602  # 1 / Phi^-1(3/4): MAD -> standard deviation for normal data


@dataclass
class BadPixels:
    """Bad pixels found by :func:`find_bad_pixels`.

    Attributes
    ----------
    mask : ndarray of bool, shape (Y, X)
        Pixels to replace (union of both passes).
    std_mask : ndarray of bool, shape (Y, X)
        Flagged by the std-projection pass.
    mean_mask : ndarray of bool, shape (Y, X) or None
        Flagged by the mean-projection pass (None if it was not run).
    counts : dict
        ``flagged``, ``flagged_std``, ``flagged_mean``, ``flagged_map`` (rule ``'chi2'`` with
        a variance map), ``pixels`` and ``percent``.
    thresholds : dict
        ``std``: threshold on the std statistic (log ratio for ``mad``, ADU for ``knee``, the
        chi-square quantile for ``chi2``);
        ``std_ratio``: for ``mad``, the same threshold as a factor over the local median std
        (for ``chi2``: over the expected std);
        ``mean``: threshold on ``|mean - median3x3(mean)|`` in ADU (None without mean pass);
        rule ``chi2`` also: ``fpr``, ``gain`` and ``intercept`` (the fitted model) and, with a
        map, ``map_factor``.
    rule : str
        Threshold rule used.
    n_planes : int
        Number of planes (frames) the projections were computed from.
    std : ndarray, float64, shape (Y, X)
        Std projection (ADU).
    mean : ndarray, float64, shape (Y, X)
        Mean projection (ADU).
    map_mask : ndarray of bool, shape (Y, X) or None
        Rule ``'chi2'`` with a variance map: pixels flagged by the map itself (``map_factor``).
    model : NoiseModel or None
        Rule ``'chi2'``: the fitted mean-variance relation of good pixels.
    """

    mask: np.ndarray
    std_mask: np.ndarray
    mean_mask: Optional[np.ndarray]
    counts: Dict[str, float]
    thresholds: Dict[str, Optional[float]]
    rule: str
    n_planes: int
    std: np.ndarray = field(repr=False, default=None)
    mean: np.ndarray = field(repr=False, default=None)
    map_mask: Optional[np.ndarray] = field(repr=False, default=None)
    model: Optional[noise_model.NoiseModel] = None


@dataclass
class MedianResult:
    """Result of :func:`selective_median`.

    Attributes
    ----------
    corrected : ndarray
        The input with flagged pixels replaced in every plane; same shape and dtype.
    mask : ndarray of bool, shape (Y, X)
        Replaced pixels.
    counts : dict
        As :attr:`BadPixels.counts`, plus ``ring_fallback``: flagged pixels whose 8 neighbours
        were all flagged.
    thresholds : dict
        As :attr:`BadPixels.thresholds`.
    bad : BadPixels
        The full estimation result.
    """

    corrected: np.ndarray
    mask: np.ndarray
    counts: Dict[str, float]
    thresholds: Dict[str, Optional[float]]
    bad: BadPixels = field(repr=False, default=None)


# --------------------------------------------------------------------------- input checks
def _as_stack(data, argument: str) -> np.ndarray:
    """Validate an in-memory stack and view it as (N, Y, X) (at least 2 planes of 3 x 3)."""
    arr = np.asarray(data)
    stack = check_frame_block(arr, argument, min_size=3)
    if stack.shape[0] < 2:
        raise CamcorrError("only one frame", argument=argument,
                           expected="at least 2 planes (Z, Y, X) to measure the temporal noise "
                                    "of every pixel",
                           received=(f"a single 2D image of shape {arr.shape}" if arr.ndim == 2
                                     else f"shape {arr.shape}"),
                           fix="Pass the whole stack (or several frames); to apply a mask found "
                               "elsewhere to one image use replace_bad_pixels")
    stack = _native(stack)
    check_finite(stack, argument)
    return stack


def _native(arr: np.ndarray) -> np.ndarray:
    """Native byte order (big-endian TIFF data) and float16 -> float32, for the kernels."""
    if arr.dtype == np.float16:
        return arr.astype(np.float32)
    return native_byte_order(arr)


def projections(data, *, backend: str = "numba", argument: str = "stack"
                ) -> Tuple[np.ndarray, np.ndarray, int]:
    """Mean and standard-deviation projections over all planes.

    Parameters
    ----------
    data : ndarray (..., Z, Y, X) or iterable of 2D frames / (n, Y, X) blocks
        A stack (every leading axis is treated as planes), or frames streamed one block at a time
        (memory does not grow with their number; :class:`~camcorr.median._kernels.MeanStdAccumulator`,
        bit-identical to the in-memory result for the same planes however they are blocked).
    backend : {'numba', 'numpy'}
        Kernels.

    Returns
    -------
    mean, std : ndarray, float64, shape (Y, X)
        Per-pixel mean and standard deviation (ddof=1), ADU.
    n_planes : int

    Raises
    ------
    CamcorrError
        Fewer than 2 planes, non-finite values, unsupported dtype, frames of different shapes.

    Examples
    --------
    >>> import numpy as np
    >>> mean, std, n = projections(np.arange(27.0).reshape(3, 3, 3), backend="numpy")
    >>> mean[0].tolist(), std[0].tolist(), n
    ([9.0, 10.0, 11.0], [9.0, 9.0, 9.0], 3)
    """
    check_choice(backend, BACKENDS, "backend")
    if isinstance(data, np.ndarray) or (hasattr(data, "shape") and hasattr(data, "dtype")):
        stack = _as_stack(data, argument)
        if backend == "numba":
            mean, std = _kernels.mean_std_numba(stack)
        else:
            mean, std = _kernels.mean_std_numpy(stack)
        return mean, std, int(stack.shape[0])
    if isinstance(data, (list, tuple)) and data and all(np.ndim(f) == 2 for f in data):
        shapes = {np.shape(f) for f in data}
        if len(shapes) > 1:
            raise CamcorrError("frame shapes differ", argument=argument,
                               expected="frames of one shape",
                               received=", ".join(str(s) for s in sorted(shapes)))
        return projections(np.stack(data), backend=backend, argument=argument)
    # the one-pass algorithm of the in-memory kernel: bit-identical results however the
    # frames are cut into blocks (streamed files, camcorr median)
    acc = _kernels.MeanStdAccumulator(backend)
    shape = None
    for block in data:
        b = check_frame_block(block, argument, shape=shape, finite=True)
        shape = b.shape[1:]
        acc.update(_native(b))
    if acc.count < 2:
        raise CamcorrError("only one frame", argument=argument,
                           expected="at least 2 frames to measure the temporal noise of every "
                                    "pixel", received=f"{acc.count} frame(s)")
    if shape[0] < 3 or shape[1] < 3:
        raise CamcorrError("image too small", argument=argument,
                           expected="frames of at least 3 x 3 pixels", received=f"{shape}")
    mean, std = acc.result()
    return mean, std, int(acc.count)


def median3x3(image: np.ndarray, *, backend: str = "numba") -> np.ndarray:
    """3x3 median filter with mirrored borders (``d c b | a b c d``), float64.

    Examples
    --------
    >>> import numpy as np
    >>> img = np.full((5, 5), 10.0)
    >>> img[2, 2] = 1000.0
    >>> float(median3x3(img)[2, 2])
    10.0
    """
    return _local_stats(image, backend)[0]


def _local_stats(image, backend):
    if backend == "numba":
        return _kernels.local_stats_numba(image)
    return _kernels.local_stats_numpy(image)


def knee_threshold(values: np.ndarray) -> float:
    """Value at the knee of the sorted `values` (LLSpy-compatible rule).

    The knee is the sorted value with the largest vertical distance to the straight line
    joining the smallest and the largest value (concept as in LLSpy 0.5.1; all values are used,
    no sub-sampling).

    Parameters
    ----------
    values : array_like
        Finite values (any shape).

    Returns
    -------
    float
    """
    v = np.sort(np.asarray(values, dtype=np.float64).ravel())
    if v.size == 0:
        raise CamcorrError("no values to threshold", argument="values",
                           expected="a non-empty array", received="an empty array")
    chord = np.linspace(v[0], v[-1], v.size)
    return float(v[int(np.argmax(np.abs(v - chord)))])


def mad_threshold(values: np.ndarray, k: float) -> Tuple[float, float, float]:
    """Robust centre and scale: ``(median, 1.4826 x MAD, median + k x scale)``."""
    v = np.asarray(values, dtype=np.float64).ravel()
    centre = float(np.median(v))
    scale = _MAD_SCALE * float(np.median(np.abs(v - centre)))
    if scale == 0.0:  # more than half the values identical: fall back on the standard deviation
        scale = float(np.std(v))
    return centre, scale, centre + k * scale


def find_bad_pixels(stack, *, rule: str = "mad", k: float = DEFAULT_K, mean_pass: bool = False,
                    mean_k: Optional[float] = None, fpr: float = DEFAULT_FPR,
                    variance_map=None, map_factor: float = DEFAULT_MAP_FACTOR,
                    backend: str = "numba") -> BadPixels:
    """Find hot, noisy (and optionally aberrant-gain) pixels of a stack or set of frames.

    Parameters
    ----------
    stack : ndarray (Z, Y, X) or iterable of 2D frames
        Raw data in ADU (offset subtracted or not).  A 4D (T, Z, Y, X) array is treated as T x Z
        planes.  Frames may be streamed as an iterable of (Y, X) frames or (n, Y, X) blocks.
    rule : {'mad', 'knee', 'chi2'}
        Threshold rule (see the module docstring).  ``'mad'`` is robust and flags almost
        nothing on clean data; ``'knee'`` reproduces LLSpy's behaviour; ``'chi2'`` tests every
        pixel's noise against shot plus read noise (:mod:`camcorr.median.noise_model`): best
        for short stacks of repeated frames of a static scene (not for z-stacks through a
        specimen).
    k : float
        For ``rule='mad'``: robust z-score above which a pixel is flagged (> 0; default 5).
    mean_pass : bool
        Also flag pixels whose mean deviates from the 3x3 median of the mean projection (aberrant
        gain/offset).  Off by default: sharp in-focus structure also deviates.
    mean_k : float, optional
        Robust z-score of the mean pass (default: `k`).
    fpr : float
        For ``rule='chi2'``: false-positive rate per clean pixel, in (0, 0.5] (default 5e-4).
    variance_map : ndarray (Y, X) or path, optional
        For ``rule='chi2'``: the camera's per-pixel read-noise variance (ADU^2, same region as
        the data; TIFF, ``.npy`` or ``.mat`` file).  Without it the read variance is fitted from
        the data as one value for all pixels.
    map_factor : float
        With a `variance_map`: also flag pixels whose read-noise std in the map is at least
        this factor x the map's median std (default 5; 0 = off).
    backend : {'numba', 'numpy'}
        Kernel for the projections.

    Returns
    -------
    BadPixels

    Raises
    ------
    CamcorrError
        Only one frame, constant frames (no temporal noise anywhere), NaN/infinite values,
        unsupported dtype, frames of different shapes, bad `rule` or `k`.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> stack = rng.poisson(400, (12, 16, 16)).astype(np.uint16)
    >>> stack[:, 5, 7] = rng.integers(0, 4000, 12)          # one very noisy (RTS) pixel
    >>> bad = find_bad_pixels(stack)
    >>> [tuple(int(i) for i in yx) for yx in np.argwhere(bad.mask)]
    [(5, 7)]
    >>> clean = replace_bad_pixels(stack, bad.mask)
    >>> clean.dtype, bool((clean[:, 5, 7] < 500).all()), bool((clean[:, 0] == stack[:, 0]).all())
    (dtype('uint16'), True, True)
    """
    check_choice(rule, RULES, "rule")
    LIMITS["k"].check(k, "k")
    mean_k = k if mean_k is None else mean_k
    LIMITS["mean_k"].check(mean_k, "mean_k")
    if variance_map is not None and rule != "chi2":
        raise CamcorrError("a variance map needs rule 'chi2'", argument="variance_map",
                           expected="rule='chi2' when a read-noise variance map is given",
                           received=f"rule={rule!r}", fix="Use rule 'chi2' or drop the map")
    if rule == "chi2":
        noise_model._check_fpr(fpr)
        LIMITS["map_factor"].check(map_factor, "map_factor")
        if isinstance(variance_map, (str, os.PathLike)):
            variance_map = noise_model.read_variance_map(variance_map, argument="variance_map")
    mean, std, n = projections(stack, backend=backend)
    if not np.any(std > 0):
        raise CamcorrError("constant frames", argument="stack",
                           expected="planes that differ (temporal noise to compare pixels by)",
                           received=f"{n} identical planes",
                           fix="Pass the raw stack, not a projection or a repeated image")
    thresholds: Dict[str, Optional[float]] = {"std": None, "std_ratio": None, "mean": None}
    map_mask = None
    model = None
    if rule == "chi2":
        read = (None if variance_map is None
                else noise_model.check_variance_map(variance_map, std.shape))
        var = std * std
        model = noise_model.fit_noise_model(mean, var, n, read_variance=read)
        expected = model.expected_variance(mean, read)
        std_mask, stat, q = noise_model.chi2_test(var, expected, n, fpr)
        thresholds.update(std=q, std_ratio=float(np.sqrt(q / (n - 1))), fpr=float(fpr),
                          gain=model.gain, intercept=model.intercept,
                          dispersion=noise_model.dispersion(stat, n))
        if read is not None:
            map_mask = noise_model.map_outliers(read, map_factor)
            thresholds["map_factor"] = float(map_factor)
    elif rule == "mad":
        med, third = _local_stats(std, backend)
        positive = std[std > 0]
        eps = 0.1 * float(np.median(positive))
        stat = np.log((std + eps) / (med + eps))
        _, _, t = mad_threshold(stat, k)
        thresholds["std"] = t
        thresholds["std_ratio"] = float(np.exp(t))
    else:
        med, _ = _local_stats(std, backend)
        stat = np.abs(std - med)
        t = knee_threshold(stat)
        thresholds["std"] = t
    if rule != "chi2":
        std_mask = stat > t
    if rule == "mad":
        std_mask &= std > third
    mean_mask = None
    if mean_pass:
        dev = mean - median3x3(mean, backend=backend)
        if rule in ("mad", "chi2"):
            centre, scale, _ = mad_threshold(dev, mean_k)
            dev = dev - centre
            tm = mean_k * scale
        else:
            tm = knee_threshold(np.abs(dev))
        mean_mask = np.abs(dev) > tm
        thresholds["mean"] = float(tm)
    mask = std_mask.copy()
    for extra in (mean_mask, map_mask):
        if extra is not None:
            mask |= extra
    counts = {
        "flagged": int(mask.sum()),
        "flagged_std": int(std_mask.sum()),
        "flagged_mean": int(mean_mask.sum()) if mean_mask is not None else 0,
        "flagged_map": int(map_mask.sum()) if map_mask is not None else 0,
        "pixels": int(mask.size),
        "percent": 100.0 * float(mask.sum()) / mask.size,
    }
    return BadPixels(mask=mask, std_mask=std_mask, mean_mask=mean_mask, counts=counts,
                     thresholds=thresholds, rule=rule, n_planes=n, std=std, mean=mean,
                     map_mask=map_mask, model=model)


def replace_bad_pixels(stack, mask, *, backend: str = "numba", return_fallback: bool = False):
    """Replace flagged pixels, in every plane, by the median of their unflagged 8 neighbours.

    Parameters
    ----------
    stack : ndarray, shape (..., Y, X)
        A stack (Z, Y, X), a set of frames (N, Y, X) or one image (Y, X); any real dtype.
    mask : ndarray of bool, shape (Y, X)
        Pixels to replace (e.g. :attr:`BadPixels.mask`).
    backend : {'numba', 'numpy'}
    return_fallback : bool
        Also return how many flagged pixels had all 8 neighbours flagged (5x5 ring used).

    Returns
    -------
    ndarray
        A new array, same shape and dtype (integer results rounded half to even and clipped).
        The input is never modified.

    Raises
    ------
    CamcorrError
        Mask and image shapes differ, NaN/infinite values, unsupported dtype.

    Examples
    --------
    >>> import numpy as np
    >>> img = np.full((5, 5), 10.0)
    >>> img[2, 2] = 1000.0
    >>> mask = np.zeros((5, 5), bool)
    >>> mask[2, 2] = True
    >>> float(replace_bad_pixels(img, mask)[2, 2])
    10.0
    """
    check_choice(backend, BACKENDS, "backend")
    arr = np.asarray(stack)
    if arr.dtype.kind not in "uif":
        raise CamcorrError("unsupported pixel type", argument="stack",
                           expected="integer or floating-point pixels", received=describe(arr))
    m = np.asarray(mask)
    if m.ndim != 2:
        raise CamcorrError("wrong number of dimensions", argument="mask",
                           expected="a 2D (Y, X) mask", received=describe(m))
    if arr.ndim < 2 or arr.shape[-2:] != m.shape:
        raise CamcorrError("shapes differ", argument="stack/mask",
                           expected=f"planes of shape {m.shape} like the mask",
                           received=f"stack of shape {arr.shape}",
                           fix="Use the mask found on data from the same camera region (ROI)")
    m = m.astype(bool)
    out_dtype = arr.dtype
    planes = _native(arr).reshape((-1,) + arr.shape[-2:])
    check_finite(planes, "stack")
    if backend == "numba":
        out, level = _kernels.replace_numba(planes, m)
    else:
        out = planes.copy()
        ys, xs, values, level = _kernels.neighbour_medians_numpy(planes, m)
        out[:, ys, xs] = cast_to_dtype(values, arr.dtype)
    fallback = int(np.count_nonzero(level))
    out = out.reshape(arr.shape)
    if out.dtype != out_dtype:  # float16 input: back to float16 (values are medians of it)
        out = out.astype(out_dtype)
    return (out, fallback) if return_fallback else out


def selective_median(stack, *, rule: str = "mad", k: float = DEFAULT_K, mean_pass: bool = False,
                     mean_k: Optional[float] = None, fpr: float = DEFAULT_FPR,
                     variance_map=None, map_factor: float = DEFAULT_MAP_FACTOR,
                     backend: str = "numba") -> MedianResult:
    """Selective median filter of a stack: :func:`find_bad_pixels` then :func:`replace_bad_pixels`.

    Parameters
    ----------
    stack : ndarray, shape (Z, Y, X) or (N, Y, X) (set of 2D frames), or (T, Z, Y, X)
        Raw data in ADU, any real dtype.
    rule, k, mean_pass, mean_k, fpr, variance_map, map_factor, backend
        See :func:`find_bad_pixels`.

    Returns
    -------
    MedianResult
        ``corrected`` (same shape and dtype), ``mask`` (Y, X), ``counts``, ``thresholds``.

    References
    ----------
    Amat et al. (2015), doi:10.1038/nprot.2015.111

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> stack = rng.poisson(100, (20, 32, 32)).astype(np.uint16)
    >>> stack[::2, 5, 7] += 1000  # a random-telegraph pixel
    >>> r = selective_median(stack)
    >>> r.corrected.shape, r.corrected.dtype, np.argwhere(r.mask).tolist()
    ((20, 32, 32), dtype('uint16'), [[5, 7]])
    >>> bool(r.corrected[:, 5, 7].std() < 30)  # replaced by its 3 x 3 median in every plane
    True
    """
    bad = find_bad_pixels(stack, rule=rule, k=k, mean_pass=mean_pass, mean_k=mean_k, fpr=fpr,
                          variance_map=variance_map, map_factor=map_factor, backend=backend)
    corrected, fallback = replace_bad_pixels(stack, bad.mask, backend=backend,
                                             return_fallback=True)
    counts = dict(bad.counts, ring_fallback=fallback)
    return MedianResult(corrected=corrected, mask=bad.mask, counts=counts,
                        thresholds=dict(bad.thresholds), bad=bad)
