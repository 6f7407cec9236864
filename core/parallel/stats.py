"""Streamed versions of the engine's statistics that live in other sub-packages.

They are thin: the statistic itself (its ``update``/``merge``) stays in the engine; this module
only feeds it blocks of a dask array through :func:`camcorr.parallel.stream.stream_reduce`.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from ..aposteriori.normalize import DEFAULT_REJECT_K, LIMITS as NORMALIZE_LIMITS
from ..errors import CamcorrError
from .stream import DEFAULT_CHUNK_FRAMES, sampled_median, stream_reduce

__all__ = ["normalization_stats", "flatfield_planes"]


def _frame_summary_block(b):
    flat = np.asarray(b).reshape(b.shape[0], -1).astype(np.float64)
    return np.stack([flat.mean(axis=1), flat.std(axis=1), flat.max(axis=1) - flat.min(axis=1)])


def normalization_stats(frames, *, reject_k: float = DEFAULT_REJECT_K, split: str = "even-odd", seed: int = 0,
                        chunk_frames: int = DEFAULT_CHUNK_FRAMES, client=None, scheduler: Optional[str] = None):
    """A posteriori per-pixel mean and sigma in two half sets, streamed with dask.

    The dask counterpart of :func:`camcorr.aposteriori.compute_stats` (same frame rejection,
    same half assignment, same result up to floating-point rounding): pass 1 computes every
    frame's mean and std block by block; pass 2 reduces the accepted frames of each half with
    :func:`camcorr.parallel.moments` (Chan et al. merges in a fixed tree).

    Parameters
    ----------
    frames : ndarray, dask array or TIFF paths, (N, Y, X)
        Frames of the dataset, ADU.
    reject_k, split, seed
        As in :func:`camcorr.aposteriori.compute_stats`.
    chunk_frames, client, scheduler
        See :func:`camcorr.parallel.stream.stream_reduce`.

    Returns
    -------
    camcorr.aposteriori.NormalizationStats

    Raises
    ------
    CamcorrError
        Fewer than 4 usable frames; NaN values; unknown split.
    """
    import importlib

    _norm = importlib.import_module("camcorr.aposteriori.normalize")
    from ..errors import check_choice
    from .stream import _compute, as_frames, moments

    check_choice(split, _norm.SPLITS, "split")
    NORMALIZE_LIMITS["reject_k"].check(reject_k, "reject_k")
    arr = as_frames(frames, chunk_frames=chunk_frames)
    summary = arr.map_blocks(_frame_summary_block, dtype=np.float64,
                             chunks=((3,), arr.chunks[0]), drop_axis=(1, 2), new_axis=0)
    (summ,) = _compute([summary], client=client, scheduler=scheduler)
    means, stds, ptp = (np.asarray(v) for v in summ)
    if not (np.all(np.isfinite(means)) and np.all(np.isfinite(stds))):
        raise CamcorrError("frames contain NaN or infinite values", argument="frames",
                           expected="finite pixel values", received="NaN/inf in some frames")
    if reject_k > 0:
        accepted = _norm.select_frames(means, stds, reject_k=reject_k)
    else:
        accepted = ptp > 0
        means = stds = np.zeros(0)
    if accepted.sum() < 4:
        raise CamcorrError("too few usable frames", argument="frames",
                           expected="at least 4 non-constant, non-deviant frames (2 per half)",
                           received=f"{accepted.size} frame(s), {int(accepted.sum())} usable")
    half = _norm._assign_halves(accepted, split, seed)
    halves = []
    for h in (0, 1):
        idx = np.flatnonzero(half == h)
        halves.append(moments(arr[idx], chunk_frames=chunk_frames, client=client,
                              scheduler=scheduler))
    return _norm.NormalizationStats(half_a=halves[0], half_b=halves[1], accepted=accepted,
                                    half=half, frame_means=means, frame_stds=stds,
                                    reject_k=float(reject_k), split=split)


def flatfield_planes(frames, indices: Optional[Sequence[int]] = None, *,
                     rows_per_chunk: int = 64, client=None, scheduler: Optional[str] = None,
                     sigma: float = 1.0) -> np.ndarray:
    """Flat-field from empty planes: smoothed per-pixel median of sampled planes, mean 1.

    The streamed counterpart of the flat-field engine's empty-tile / empty-z-range estimate
    (pixel-wise median, Gaussian smoothing with `sigma` pixels, division by the mean).

    Returns
    -------
    ndarray, float32, (Y, X)
    """
    from ..flatfield.smoothing import smooth_normalise

    med = sampled_median(frames, indices, rows_per_chunk=rows_per_chunk, client=client,
                         scheduler=scheduler)
    mean = med.mean()
    if not np.isfinite(mean) or mean <= 0:
        raise CamcorrError("empty planes have no signal", argument="frames",
                           expected="planes with a positive background", received=f"mean {mean}")
    # the flat-field engine's smoothing (relative to a fitted quadratic trend), so both agree
    return smooth_normalise(np.asarray(med, dtype=np.float64), float(sigma or 0.0), "frames")
