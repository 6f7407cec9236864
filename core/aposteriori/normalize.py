"""A posteriori per-pixel normalisation of a large image data set (Afanasyev et al. 2015).

Every pixel's *pixel vector* (its values over all frames of a large, statistically homogeneous
data set) is normalised to a common mean and standard deviation::

    I_c = (I_m - mean) / sigma * sigma0 + I0                                (Afanasyev eq. 2)

with ``mean`` and ``sigma`` the per-pixel mean and standard deviation over the data set, ``sigma0``
the average of ``sigma`` over the pixels and ``I0`` the average density of the data set (both
can be given).  This removes fixed-pattern offset and gain differences that an a priori
(flat-field) correction left behind.

Streaming
    Statistics are accumulated block by block with :class:`camcorr.stats.RunningMoments`
    (Chan et al. pairwise update): memory is a few (Y, X) float64 maps whatever the number of
    frames.

Frame rejection
    Blank or deviant frames (shutter closed, empty field, a burst) disturb the statistics;
    Afanasyev et al. discard them "after studying histograms of the average densities and/or
    the standard deviations of the individual images".  Here the rule is explicit and robust: a
    first pass records every frame's mean and standard deviation; a frame is rejected if either
    lies more than ``reject_k`` (default 5) robust standard deviations (1.4826 x MAD over frames)
    from the median over frames, or if the frame is constant (std 0).  ``reject_k=0`` disables
    rejection (single pass).

Half sets
    Accepted frames are split into two halves (``'even-odd'`` by their order among accepted
    frames, or ``'random'`` with a seed).  Each half has its own statistics, so frames can be
    corrected by statistics they did not contribute to (:meth:`NormalizationStats.moments`
    ``which='a'|'b'``); this is what makes an FRC validation unbiased (Afanasyev et al., Methods).
    :func:`half_set_averages` builds the two averages of disjoint groups of half A corrected by the
    statistics of half B.

Dead pixels
    A pixel whose value never changes (sigma = 0) carries no information and cannot be divided
    by.  ``zero_sigma='fill'`` (default) sets it to ``I0`` in every corrected frame and reports
    their number (:attr:`NormalizationStats.n_zero_sigma`); ``zero_sigma='error'`` raises
    instead.

Axes are (N, Y, X) for frames; values in ADU (or any linear unit).

References
----------
Afanasyev, P., Ravelli, R. B. G., Matadeen, R. et al. (2015). A posteriori correction of camera
characteristics from large image data sets. Scientific Reports 5, 10317. doi:10.1038/srep10317
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Optional, Sequence, Tuple, Union

import numpy as np

from ..errors import CamcorrError, Limits, check_choice, check_frame_block, describe
from ..stats import RunningMoments

__all__ = [
    "DEFAULT_REJECT_K",
    "LIMITS",
    "NormalizationStats",
    "frame_summary",
    "select_frames",
    "compute_stats",
    "normalize",
    "normalize_frame",
    "half_set_averages",
    "SPLITS",
    "ZERO_SIGMA",
]

SPLITS = ("even-odd", "random")
ZERO_SIGMA = ("fill", "error")
#: Default frame rejection: robust z-score of a frame's mean or std beyond which it is rejected.
DEFAULT_REJECT_K = 5.0
#: Allowed frame rejection (0 keeps every non-constant frame) and target sigma (positive).
LIMITS = {"reject_k": Limits(low=0.0), "sigma0": Limits(low=0.0, low_inclusive=False)}
_MAD_SCALE = 1.482602218505602

FramesLike = Union[np.ndarray, Sequence[np.ndarray], Callable[[], Iterable[np.ndarray]]]


# --------------------------------------------------------------------------- frame sources
def _blocks(frames: FramesLike, argument: str = "frames") -> Iterator[np.ndarray]:
    """Yield validated (n, Y, X) blocks of one frame shape from an array, a sequence or a
    factory (:func:`camcorr.errors.check_frame_block`)."""
    if callable(frames):
        source = frames()
    elif isinstance(frames, np.ndarray):
        if frames.ndim == 2:
            raise CamcorrError("only one frame", argument=argument,
                               expected="a set of frames (N, Y, X), at least 2",
                               received=f"a single 2D image of shape {frames.shape}")
        source = [frames]
    else:
        source = frames
    shape = None
    for block in source:
        b = check_frame_block(block, argument, shape=shape, finite=True)
        shape = b.shape[1:]
        yield b


def frame_summary(frames: FramesLike) -> Tuple[np.ndarray, np.ndarray, Tuple[int, int]]:
    """Mean and standard deviation of every frame (first pass of the rejection).

    Returns
    -------
    means, stds : ndarray, float64, shape (N,)
    shape : (Y, X)
    """
    means, stds = [], []
    shape = None
    for b in _blocks(frames):
        shape = b.shape[1:]
        flat = b.reshape(b.shape[0], -1).astype(np.float64)
        means.append(flat.mean(axis=1))
        stds.append(flat.std(axis=1))
    if shape is None:
        raise CamcorrError("no frames", argument="frames", expected="at least 2 frames",
                           received="none")
    return np.concatenate(means), np.concatenate(stds), tuple(shape)


def _robust_z(values: np.ndarray) -> np.ndarray:
    centre = np.median(values)
    scale = _MAD_SCALE * np.median(np.abs(values - centre))
    if scale == 0.0:
        scale = np.std(values)
    if scale == 0.0:
        return np.zeros_like(values)
    return (values - centre) / scale


def select_frames(means: np.ndarray, stds: np.ndarray, *, reject_k: float = DEFAULT_REJECT_K) -> np.ndarray:
    """Frames to keep: robust z-score of mean and std within `reject_k`, and std > 0.

    Parameters
    ----------
    means, stds : ndarray, shape (N,)
        Per-frame mean and standard deviation (:func:`frame_summary`).
    reject_k : float
        Robust z-score limit (median +/- k x 1.4826 x MAD over frames); 0 keeps every
        non-constant frame.

    Returns
    -------
    ndarray of bool, shape (N,)

    Examples
    --------
    >>> import numpy as np
    >>> select_frames(np.array([10.0, 10.1, 9.9, 10.0, 30.0]), np.ones(5), reject_k=5)
    array([ True,  True,  True,  True, False])
    """
    LIMITS["reject_k"].check(reject_k, "reject_k")
    means = np.asarray(means, np.float64)
    stds = np.asarray(stds, np.float64)
    keep = stds > 0
    if reject_k > 0 and keep.sum() >= 3:
        z_mean = np.zeros_like(means)
        z_std = np.zeros_like(stds)
        z_mean[keep] = _robust_z(means[keep])
        z_std[keep] = _robust_z(stds[keep])
        keep &= (np.abs(z_mean) <= reject_k) & (np.abs(z_std) <= reject_k)
    return keep


# --------------------------------------------------------------------------- statistics
@dataclass
class NormalizationStats:
    """Streamed per-pixel statistics of a data set, in two disjoint halves.

    Attributes
    ----------
    half_a, half_b : RunningMoments
        Statistics of the accepted frames of each half.
    accepted : ndarray of bool, shape (N,)
        Frames used (False: rejected as blank/deviant/constant).
    half : ndarray of int8, shape (N,)
        0 for half A, 1 for half B, -1 for rejected frames.
    frame_means, frame_stds : ndarray, shape (N,)
        Per-frame mean and std (empty if rejection was off).
    reject_k : float
    split : str
    """

    half_a: RunningMoments = field(default_factory=RunningMoments)
    half_b: RunningMoments = field(default_factory=RunningMoments)
    accepted: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    half: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int8))
    frame_means: np.ndarray = field(default_factory=lambda: np.zeros(0))
    frame_stds: np.ndarray = field(default_factory=lambda: np.zeros(0))
    reject_k: float = DEFAULT_REJECT_K
    split: str = "even-odd"

    @property
    def n_frames(self) -> int:
        """Frames seen (accepted or not)."""
        return int(self.accepted.size)

    @property
    def n_accepted(self) -> int:
        """Frames used in the statistics."""
        return int(self.half_a.count + self.half_b.count)

    @property
    def n_rejected(self) -> int:
        """Frames rejected as blank/deviant/constant."""
        return self.n_frames - self.n_accepted

    @property
    def shape(self) -> Tuple[int, int]:
        """(Y, X) of the frames."""
        m = self.half_a.mean if self.half_a.mean is not None else self.half_b.mean
        return tuple(m.shape)

    def moments(self, which: str = "full") -> RunningMoments:
        """Statistics of ``'full'`` (both halves merged), ``'a'`` or ``'b'``."""
        check_choice(which, ("full", "a", "b"), "which")
        if which == "a":
            return self.half_a
        if which == "b":
            return self.half_b
        full = RunningMoments()
        full.merge(self.half_a)
        full.merge(self.half_b)
        return full

    def mean_sigma(self, which: str = "full") -> Tuple[np.ndarray, np.ndarray]:
        """Per-pixel mean and standard deviation (ddof=1), float64 (Y, X)."""
        m = self.moments(which)
        if m.count < 2:
            raise CamcorrError("not enough frames", argument="frames",
                               expected=f"at least 2 accepted frames in {which!r}",
                               received=f"{m.count}",
                               fix="Provide more frames (a large data set: hundreds or more)")
        return m.mean, m.std(ddof=1)

    def n_zero_sigma(self, which: str = "full") -> int:
        """Number of pixels whose value never changed (sigma 0: dead pixels)."""
        return int(np.count_nonzero(self.mean_sigma(which)[1] == 0))

    def sigma0(self, which: str = "full") -> float:
        """Default target std: mean of sigma over the pixels with sigma > 0 (Afanasyev)."""
        s = self.mean_sigma(which)[1]
        return float(s[s > 0].mean())

    def i0(self, which: str = "full") -> float:
        """Default target mean: the average density of the data set."""
        return float(self.mean_sigma(which)[0].mean())

    def merge(self, other: "NormalizationStats") -> "NormalizationStats":
        """Merge the statistics of another chunk of frames (in place; frames appended)."""
        self.half_a.merge(other.half_a)
        self.half_b.merge(other.half_b)
        self.accepted = np.concatenate([self.accepted, other.accepted])
        self.half = np.concatenate([self.half, other.half])
        self.frame_means = np.concatenate([self.frame_means, other.frame_means])
        self.frame_stds = np.concatenate([self.frame_stds, other.frame_stds])
        return self

    def to_dict(self) -> dict:
        """Plain arrays for ``np.savez``."""
        out = {"accepted": self.accepted, "half": self.half, "frame_means": self.frame_means,
               "frame_stds": self.frame_stds, "reject_k": np.asarray(self.reject_k),
               "split": np.asarray(self.split)}
        for key, m in (("a", self.half_a), ("b", self.half_b)):
            for k, v in m.to_dict().items():
                out[f"{key}_{k}"] = v if v is not None else np.zeros(0)
        return out

    def save(self, path, *, inputs=()):
        """Write an ``.npz`` file atomically (never over an input)."""
        from ..io import atomic_write, ensure_not_input

        ensure_not_input(path, inputs, argument="stats")
        data = self.to_dict()

        def _w(tmp):
            with open(tmp, "wb") as fh:
                np.savez(fh, **data)

        return atomic_write(path, _w, suffix=".npz")

    @classmethod
    def load(cls, path, *, argument: str = "stats") -> "NormalizationStats":
        """Read a file written by :meth:`save`; `argument` names it in error messages."""
        from pathlib import Path

        p = Path(path)
        if not p.is_file():
            raise CamcorrError("statistics file not found", argument=argument,
                               expected="an .npz file written by 'camcorr gain normalize'",
                               received=str(p))
        try:
            with np.load(p, allow_pickle=False) as d:
                halves = []
                for key in ("a", "b"):
                    halves.append(RunningMoments.from_dict(
                        {"count": d[f"{key}_count"], "mean": d[f"{key}_mean"],
                         "m2": d[f"{key}_m2"]}))
                return cls(half_a=halves[0], half_b=halves[1], accepted=d["accepted"],
                           half=d["half"], frame_means=d["frame_means"],
                           frame_stds=d["frame_stds"], reject_k=float(d["reject_k"]),
                           split=str(d["split"]))
        except CamcorrError:
            raise
        except Exception as exc:
            raise CamcorrError("cannot read statistics file", argument=argument,
                               expected="an .npz file written by 'camcorr gain normalize'",
                               received=f"{p} ({type(exc).__name__}: {exc})") from None


def _assign_halves(accepted: np.ndarray, split: str, seed: int) -> np.ndarray:
    half = np.full(accepted.size, -1, np.int8)
    idx = np.flatnonzero(accepted)
    if split == "even-odd":
        half[idx] = (np.arange(idx.size) % 2).astype(np.int8)
    else:
        rng = np.random.default_rng(seed)
        labels = np.zeros(idx.size, np.int8)
        labels[rng.permutation(idx.size)[: idx.size // 2]] = 1
        half[idx] = labels
    return half


def compute_stats(frames: FramesLike, *, reject_k: float = DEFAULT_REJECT_K, split: str = "even-odd",
                  seed: int = 0) -> NormalizationStats:
    """Per-pixel mean and sigma of a data set, streamed, with frame rejection and half sets.

    Parameters
    ----------
    frames : ndarray (N, Y, X), sequence of frames/blocks, or callable
        The data set.  For data that do not fit in memory pass a zero-argument callable
        returning a fresh iterator of 2D frames or (n, Y, X) blocks (e.g. ``lambda:
        camcorr.io.iter_planes(paths)``); it is called twice when rejection is on.
    reject_k : float
        Robust z-score limit of the frame rejection (see the module docstring); 0: off.
    split : {'even-odd', 'random'}
        How accepted frames are split into halves A and B.
    seed : int
        Seed of the random split.

    Returns
    -------
    NormalizationStats

    Raises
    ------
    CamcorrError
        Fewer than 4 frames accepted (2 per half), frames of different shapes, NaN/infinite
        values, a one-shot iterator given while rejection is on.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> offset, sigma = rng.normal(100, 5, (16, 16)), rng.uniform(1, 3, (16, 16))
    >>> frames = offset + sigma * rng.standard_normal((200, 16, 16))  # dark frames
    >>> stats = compute_stats(frames)
    >>> stats.n_frames, int(stats.half_a.count + stats.half_b.count)
    (200, 200)
    """
    check_choice(split, SPLITS, "split")
    LIMITS["reject_k"].check(reject_k, "reject_k")
    if not callable(frames) and not isinstance(frames, (np.ndarray, list, tuple)):
        if reject_k > 0:
            raise CamcorrError("frames can be read only once", argument="frames",
                               expected="an array, a list, or a callable returning a fresh "
                                        "iterator (rejection needs two passes)",
                               received=type(frames).__name__, fix="Pass reject_k=0 or a callable")
        frames = list(frames)
    if reject_k > 0:
        means, stds, shape = frame_summary(frames)
        accepted = select_frames(means, stds, reject_k=reject_k)
    else:
        means = stds = np.zeros(0)
        accepted = None
    stats = NormalizationStats(reject_k=float(reject_k), split=split)
    start = 0
    all_flags = []
    for b in _blocks(frames):
        n = b.shape[0]
        if accepted is not None:
            acc = accepted[start:start + n]
        else:
            flat = b.reshape(n, -1)
            acc = flat.max(axis=1) > flat.min(axis=1)  # constant frames never help
        all_flags.append(acc)
        start += n
    flags = np.concatenate(all_flags) if all_flags else np.zeros(0, bool)
    if flags.sum() < 4:
        raise CamcorrError("too few usable frames", argument="frames",
                           expected="at least 4 non-constant, non-deviant frames (2 per half; "
                                    "Afanasyev et al. use thousands)",
                           received=f"{flags.size} frame(s), {int(flags.sum())} usable",
                           fix="Provide more frames, or lower the rejection with --reject-k 0")
    half = _assign_halves(flags, split, seed)
    start = 0
    for b in _blocks(frames):
        n = b.shape[0]
        h = half[start:start + n]
        if np.any(h == 0):
            stats.half_a.update(b[h == 0])
        if np.any(h == 1):
            stats.half_b.update(b[h == 1])
        start += n
    stats.accepted = flags
    stats.half = half
    stats.frame_means = means
    stats.frame_stds = stds
    return stats


# --------------------------------------------------------------------------- correction
def _targets(stats, which, sigma0, i0):
    mean, sigma = stats.mean_sigma(which)
    s0 = stats.sigma0(which) if sigma0 is None else float(sigma0)
    c0 = stats.i0(which) if i0 is None else float(i0)
    LIMITS["sigma0"].check(s0, "sigma0",
                           fix="sigma0 is the target standard deviation of every pixel vector")
    if not np.isfinite(c0):
        raise CamcorrError("not a finite number", argument="i0", expected="a finite number",
                           received=repr(i0))
    return mean, sigma, s0, c0


def normalize_frame(frame, mean, sigma, sigma0: float, i0: float, *,
                    zero_sigma: str = "fill") -> np.ndarray:
    """Apply ``(frame - mean) / sigma * sigma0 + i0`` to one frame or a block (float64).

    Pixels with ``sigma == 0`` become `i0` (``zero_sigma='fill'``) or raise (``'error'``).

    Examples
    --------
    >>> import numpy as np
    >>> normalize_frame(np.array([[12.0]]), np.array([[10.0]]), np.array([[2.0]]), 1.0, 100.0)
    array([[101.]])
    """
    check_choice(zero_sigma, ZERO_SIGMA, "zero_sigma")
    dead = sigma == 0
    if dead.any() and zero_sigma == "error":
        ys, xs = np.nonzero(dead)
        raise CamcorrError("zero-sigma (dead) pixels", argument="frames",
                           expected="pixels whose value varies over the data set",
                           received=f"{int(dead.sum())} pixel(s) that never change, the first "
                                    f"at (y={int(ys[0])}, x={int(xs[0])})",
                           fix="Replace dead pixels first (camcorr median), or use "
                               "--zero-sigma fill to set them to I0")
    scale = np.where(dead, 0.0, sigma0 / np.where(dead, 1.0, sigma))
    out = (np.asarray(frame, dtype=np.float64) - mean) * scale + i0
    return out


def normalize(frames, stats: NormalizationStats, *, sigma0: Optional[float] = None,
              i0: Optional[float] = None, which: str = "full", zero_sigma: str = "fill",
              dtype=np.float32) -> np.ndarray:
    """A posteriori correction ``I_c = (I_m - mean) / sigma * sigma0 + I0`` of frames.

    Parameters
    ----------
    frames : ndarray, shape (N, Y, X) or (Y, X)
        Frames to correct (ADU).
    stats : NormalizationStats
        From :func:`compute_stats`.
    sigma0, i0 : float, optional
        Target per-pixel std and mean; default: the mean sigma over pixels and the average
        density of the data set (Afanasyev et al., eq. 2).
    which : {'full', 'a', 'b'}
        Statistics to use: both halves, or one half (to correct the other half's frames
        without bias).
    zero_sigma : {'fill', 'error'}
        Handling of dead pixels (sigma 0): set to `i0`, or raise.
    dtype : dtype-like
        Output dtype (float32 by default; integer dtypes are rounded and clipped).

    Returns
    -------
    ndarray, same shape as `frames`

    Raises
    ------
    CamcorrError
        Shape mismatch with the statistics, NaN/infinite values, dead pixels with
        ``zero_sigma='error'``, sigma0 <= 0.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> offset, sigma = rng.normal(100, 5, (16, 16)), rng.uniform(1, 3, (16, 16))
    >>> frames = offset + sigma * rng.standard_normal((200, 16, 16))
    >>> out = normalize(frames, compute_stats(frames), sigma0=2.0, i0=100.0)
    >>> out.dtype, out.shape, round(float(out.mean()), 1), round(float(out.std()), 1)
    (dtype('float32'), (200, 16, 16), 100.0, 2.0)
    """
    from ..io import cast_to_dtype

    arr = np.asarray(frames)
    mean, sigma, s0, c0 = _targets(stats, which, sigma0, i0)
    check_frame_block(arr, "frames", shape=mean.shape, finite=True,
                      fix="Use statistics computed from the same camera region (ROI)")
    out = normalize_frame(arr, mean, sigma, s0, c0, zero_sigma=zero_sigma)
    return cast_to_dtype(out, dtype)


def half_set_averages(frames: np.ndarray, stats: NormalizationStats, *,
                      n_average: Optional[int] = None, sigma0: Optional[float] = None,
                      i0: Optional[float] = None, zero_sigma: str = "fill"):
    """Two averages of disjoint frame groups, raw and corrected without bias, for an FRC check.

    The groups are taken alternately from the accepted frames of half A; the corrected
    averages use the statistics of half B only, to which they did not contribute (Afanasyev et
    al., Methods).  Their residual correlation through the shared statistics is about
    ``n_average / (n_average + n_B)``; keep `n_average` small against half B.

    Parameters
    ----------
    frames : ndarray, shape (N, Y, X)
        The same frames the statistics were computed from (same order).
    stats : NormalizationStats
    n_average : int, optional
        Frames per group (default: ``max(1, n_B // 50)``, i.e. about 2 % residual correlation).

    Returns
    -------
    raw1, raw2, corrected1, corrected2 : ndarray, float64, shape (Y, X)
    """
    arr = np.asarray(frames)
    if arr.ndim != 3 or arr.shape[0] != stats.n_frames:
        raise CamcorrError("frames do not match the statistics", argument="frames",
                           expected=f"the {stats.n_frames} frames the statistics came from",
                           received=describe(arr))
    idx = np.flatnonzero(stats.half == 0)
    n_b = stats.half_b.count
    n = max(1, n_b // 50) if n_average is None else int(n_average)
    if n < 1 or 2 * n > idx.size:
        raise CamcorrError("not enough frames for two groups", argument="n_average",
                           expected=f"between 1 and {idx.size // 2}", received=repr(n_average))
    g1, g2 = idx[0:2 * n:2], idx[1:2 * n:2]
    mean, sigma, s0, c0 = _targets(stats, "b", sigma0, i0)
    raw1 = arr[g1].astype(np.float64).mean(axis=0)
    raw2 = arr[g2].astype(np.float64).mean(axis=0)
    cor1 = normalize_frame(raw1, mean, sigma, s0, c0, zero_sigma=zero_sigma)
    cor2 = normalize_frame(raw2, mean, sigma, s0, c0, zero_sigma=zero_sigma)
    return raw1, raw2, cor1, cor2
