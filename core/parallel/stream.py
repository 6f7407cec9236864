"""Streamed statistics over dask arrays: map over blocks of frames, merge in a tree.

Every statistic here follows one pattern.  The frames, a (N, Y, X) array (numpy, dask, or TIFF
files read lazily), are cut into blocks of ``chunk_frames`` frames (and, for per-pixel moments,
optionally into spatial tiles).  A *partial* statistic is computed on every block
(``factory().update(block)``), and partials are merged pairwise-in-groups in a fixed tree
(fan-in ``split_every``) with their ``merge`` method: for :class:`~camcorr.stats.RunningMoments`
that is the update of Chan, Golub & LeVeque (1983), exact up to floating-point rounding.

* Memory is bounded by the chunk size: a worker thread holds one block of frames and a few
  partials of one frame's size, whatever the number of frames.
* The tree is fixed by the chunking alone, so the result is the same, bit for bit, on the local
  threaded scheduler, on a dask distributed cluster, and for a numpy array held in memory.
* A dask distributed ``Client`` (``client=``) runs the graph on its cluster; without one, dask's
  local threaded scheduler is used (``scheduler=`` picks another, e.g. ``'sync'``).

Any accumulator with ``update(*blocks) -> self`` and ``merge(other) -> self`` works with
:func:`stream_reduce` (RunningMoments, the a posteriori ``NormalizationStats``, the flash
calibration's per-level sums, ...).

References
----------
Chan, T. F., Golub, G. H. & LeVeque, R. J. (1983). Algorithms for computing the sample variance:
analysis and recommendations. The American Statistician 37(3), 242-247.
doi:10.1080/00031305.1983.10483115
"""
from __future__ import annotations

import os
from typing import Callable, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..errors import CamcorrError, Limits, check_frame_block
from ..io import inspect_tiff
from ..stats import RunningMoments

__all__ = [
    "as_frames",
    "tiff_frames",
    "stream_reduce",
    "moments",
    "dark_moments",
    "offset_noise",
    "sampled_median",
    "tree_merge",
    "DEFAULT_CHUNK_FRAMES",
    "LIMITS",
]

#: Frames per dask block: memory per worker thread is about this many frames x Y x X x 8 bytes.
DEFAULT_CHUNK_FRAMES = 64
#: Allowed block sizes.
LIMITS = {"chunk_frames": Limits(low=1)}


def _dask():
    try:
        import dask
        import dask.array as da
    except ImportError:  # pragma: no cover - dask is in the 'dask' extra
        raise CamcorrError("dask is not installed", argument="frames",
                           expected="the 'dask' extra for streamed statistics",
                           received="no dask", fix="pip install 'camcorr[dask]'") from None
    return dask, da


def _read_planes(path: str, start: int, stop: int) -> np.ndarray:
    """Planes [start, stop) of a TIFF file as (n, Y, X) (memory-mapped where possible).

    Raises :class:`CamcorrError` for NaN or infinite values (a NaN would spread into every
    statistic of its pixel).
    """
    import tifffile

    try:
        arr = tifffile.memmap(path, mode="r")
        planes = arr.reshape((-1,) + arr.shape[-2:]) if arr.ndim > 2 else arr[None]
        block = np.array(planes[start:stop])
    except Exception:
        with tifffile.TiffFile(path) as tif:
            pages = tif.series[0].pages if len(tif.series) else tif.pages
            block = np.stack([pages[i].asarray() for i in range(start, stop)]).reshape(
                (-1,) + tuple(pages[start].shape[-2:]))
    if block.dtype.kind == "f" and not np.isfinite(block).all():
        n_bad = int(np.count_nonzero(~np.isfinite(block)))
        raise CamcorrError("contains NaN or infinite values", argument="frames",
                           expected="finite numbers only",
                           received=f"{n_bad} non-finite value(s) in planes {start}-{stop - 1} "
                                    f"of {path}",
                           fix="Replace or mask the non-finite pixels before computing statistics")
    return block


def tiff_frames(paths: Union[str, os.PathLike, Sequence], *,
                chunk_frames: int = DEFAULT_CHUNK_FRAMES):
    """Lazy dask array (N, Y, X) of every plane of one or many TIFF files.

    Each block is read by the worker that needs it (on a cluster the files must be on a
    file system the workers see), so nothing is loaded until the statistic runs.

    Raises
    ------
    CamcorrError
        No files, or planes of different sizes or types.
    """
    dask, da = _dask()
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    paths = [os.fspath(p) for p in paths]
    if not paths:
        raise CamcorrError("no input files", argument="frames", expected="one or more TIFF files",
                           received="an empty list")
    parts = []
    first = None
    for path in paths:
        if not os.path.isfile(path):
            raise CamcorrError("file not found", argument="frames", expected="an existing TIFF file",
                               received=path)
        info = inspect_tiff(path, argument="frames")  # the input gate (colour, truncated, ...)
        shape, dtype = tuple(info.shape), np.dtype(info.dtype)
        n = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
        yx = shape[-2:]
        if first is None:
            first = (yx, dtype)
        elif (yx, dtype) != first:
            raise CamcorrError("frames differ in size or type", argument="frames",
                               expected=f"planes of {first[0]} {first[1]} like the first file",
                               received=f"{path}: {yx} {dtype}")
        for start in range(0, n, chunk_frames):
            stop = min(n, start + chunk_frames)
            block = dask.delayed(_read_planes, pure=True)(path, start, stop)
            parts.append(da.from_delayed(block, shape=(stop - start,) + tuple(yx), dtype=dtype))
    return da.concatenate(parts, axis=0)


def as_frames(frames, *, chunk_frames: int = DEFAULT_CHUNK_FRAMES, tile: Optional[Tuple[int, int]] = None):
    """Any stack of frames as a dask array (N, Y, X) chunked by `chunk_frames` frames.

    Parameters
    ----------
    frames : ndarray, dask array, path or list of paths
        (..., Y, X); leading axes are flattened into frames.  Paths are TIFF files read lazily.
    chunk_frames : int
        Frames per block.
    tile : (int, int), optional
        Spatial tile (rows, columns) per block; default: whole frames.

    Raises
    ------
    CamcorrError
        Fewer than 2 dimensions, or a non-positive chunk size.

    Examples
    --------
    >>> import numpy as np
    >>> as_frames(np.zeros((5, 4, 4)), chunk_frames=2).chunks
    ((2, 2, 1), (4,), (4,))
    """
    dask, da = _dask()
    LIMITS["chunk_frames"].check(chunk_frames, "chunk_frames")
    if isinstance(frames, (str, os.PathLike)) or (
            isinstance(frames, (list, tuple)) and frames and isinstance(frames[0], (str, os.PathLike))):
        arr = tiff_frames(frames, chunk_frames=chunk_frames)
    elif isinstance(frames, da.Array):
        arr = frames
    else:
        arr = check_frame_block(frames, "frames")  # (N, Y, X), numeric
        arr = da.from_array(arr, chunks=(-1,) * arr.ndim)
    if arr.ndim < 2:
        raise CamcorrError("wrong number of dimensions", argument="frames",
                           expected="frames of shape (N, Y, X)", received=f"shape {arr.shape}")
    if arr.ndim == 2:
        arr = arr[None]
    elif arr.ndim > 3:
        arr = arr.reshape((-1,) + arr.shape[-2:])
    chunks = (int(chunk_frames),) + ((-1, -1) if tile is None else tuple(int(t) for t in tile))
    return arr.rechunk(chunks)


def _partial(factory, *blocks):
    return factory().update(*blocks)


def _merge_group(*partials):
    acc = partials[0]
    for p in partials[1:]:
        acc = acc.merge(p)
    return acc


def tree_merge(partials: List, split_every: int = 8, delayed=None):
    """Merge a list of partial statistics in a fixed tree of fan-in `split_every`.

    With ``delayed`` (``dask.delayed``) the partials are delayed objects and so is the result;
    otherwise the merge runs now.  The grouping depends only on ``len(partials)``.
    """
    if not partials:
        raise CamcorrError("no frames", argument="frames", expected="at least one frame",
                           received="none")
    level = list(partials)
    split_every = max(2, int(split_every))
    while len(level) > 1:
        groups = [level[i:i + split_every] for i in range(0, len(level), split_every)]
        if delayed is not None:
            level = [delayed(_merge_group, pure=True)(*g) if len(g) > 1 else g[0] for g in groups]
        else:
            level = [_merge_group(*g) for g in groups]
    return level[0]


def _compute(objs, client=None, scheduler=None):
    dask, _ = _dask()
    if client is not None:
        futures = client.compute(list(objs))
        return client.gather(futures)
    return dask.compute(*objs, scheduler=scheduler or "threads")


def stream_reduce(arrays, factory: Callable, *, chunk_frames: int = DEFAULT_CHUNK_FRAMES, split_every: int = 8,
                  client=None, scheduler: Optional[str] = None):
    """Reduce aligned frame stacks block by block with a mergeable accumulator.

    Parameters
    ----------
    arrays : array or sequence of arrays
        One or several (N, Y, X) stacks with the same number of frames (numpy, dask or TIFF
        paths, see :func:`as_frames`); block ``i`` of every array is passed together to
        ``update``.  Pass a tuple/list of arrays for several; a single array otherwise.
    factory : callable
        ``factory()`` returns an empty accumulator with ``update(*blocks) -> self`` and
        ``merge(other) -> self``.
    chunk_frames : int
        Frames per block: the memory a worker needs is about ``chunk_frames`` frames per array.
    split_every : int
        Fan-in of the merge tree.
    client : distributed.Client, optional
        Run on this cluster.
    scheduler : str, optional
        dask scheduler when no client is given (``'threads'`` by default, ``'sync'``...).

    Returns
    -------
    The merged accumulator.

    Raises
    ------
    CamcorrError
        When the stacks differ in number of frames.
    """
    dask, da = _dask()
    many = isinstance(arrays, (tuple, list)) and len(arrays) > 0 and not isinstance(
        arrays[0], (str, os.PathLike)) and not np.isscalar(arrays[0])
    arrs = [as_frames(a, chunk_frames=chunk_frames) for a in (arrays if many else [arrays])]
    n = arrs[0].shape[0]
    for i, a in enumerate(arrs[1:], 1):
        if a.shape[0] != n:
            raise CamcorrError("stacks differ in number of frames", argument=f"arrays[{i}]",
                               expected=f"{n} frames like arrays[0]", received=f"{a.shape[0]}")
    blocks = [a.to_delayed().ravel().tolist() for a in arrs]
    partials = [dask.delayed(_partial, pure=True)(factory, *bs) for bs in zip(*blocks)]
    root = tree_merge(partials, split_every, delayed=dask.delayed)
    (result,) = _compute([root], client=client, scheduler=scheduler)
    return result


_SUB = 8  # frames converted to float64 at a time inside a block (bounds the temporaries)


def _moments_block(block):
    acc = RunningMoments()
    for i in range(0, block.shape[0], _SUB):
        acc.merge(RunningMoments().update(block[i:i + _SUB]))
    return acc


def moments(frames, *, chunk_frames: int = DEFAULT_CHUNK_FRAMES, tile: Optional[Tuple[int, int]] = None,
            split_every: int = 8, client=None, scheduler: Optional[str] = None) -> RunningMoments:
    """Per-pixel count, mean and M2 of a stack of frames, streamed block by block.

    Parameters
    ----------
    frames : ndarray, dask array, path or list of paths
        (N, Y, X) in any unit (ADU for camera frames); see :func:`as_frames`.
    chunk_frames : int
        Frames per block.
    tile : (int, int), optional
        Spatial tile per block (rows, columns) so that very large frames also stream; each tile
        is reduced on its own and the tiles are stitched.  Default: whole frames.
    split_every, client, scheduler
        See :func:`stream_reduce`.

    Returns
    -------
    RunningMoments
        ``count`` (int), ``mean`` and ``m2`` (float64, (Y, X)).

    Examples
    --------
    >>> import numpy as np
    >>> m = moments(np.arange(24.0).reshape(6, 2, 2), chunk_frames=2)  # 3 blocks, merged
    >>> m.count, m.mean.tolist()
    (6, [[10.0, 11.0], [12.0, 13.0]])
    """
    dask, da = _dask()
    arr = as_frames(frames, chunk_frames=chunk_frames, tile=tile)
    grid = arr.to_delayed()  # (n_t, n_y, n_x) of delayed blocks
    roots = []
    for j in range(grid.shape[1]):
        for k in range(grid.shape[2]):
            parts = [dask.delayed(_moments_block, pure=True)(b) for b in grid[:, j, k]]
            roots.append(tree_merge(parts, split_every, delayed=dask.delayed))
    results = _compute(roots, client=client, scheduler=scheduler)
    if len(results) == 1:
        return results[0]
    ny, nx = grid.shape[1], grid.shape[2]
    rows_m = [np.concatenate([results[j * nx + k].mean for k in range(nx)], axis=1)
              for j in range(ny)]
    rows_2 = [np.concatenate([results[j * nx + k].m2 for k in range(nx)], axis=1)
              for j in range(ny)]
    return RunningMoments(results[0].count, np.concatenate(rows_m, axis=0),
                          np.concatenate(rows_2, axis=0))


def dark_moments(frames, **kwargs) -> RunningMoments:
    """Moments of dark frames (camera offset and read noise), streamed; see :func:`moments`.

    The dask counterpart of :func:`camcorr.flash.dark_moments` for stacks that do not fit in
    memory or that live on a cluster.
    """
    return moments(frames, **kwargs)


def offset_noise(frames, *, ddof: int = 1, **kwargs) -> Tuple[np.ndarray, np.ndarray]:
    """Per-pixel offset (mean, ADU) and read noise (standard deviation, ADU) of dark frames.

    Parameters
    ----------
    frames : see :func:`moments`
        Dark frames (N, Y, X), raw ADU.
    ddof : int
        Delta degrees of freedom of the standard deviation (1: unbiased variance).

    Returns
    -------
    offset, noise : ndarray, float32, (Y, X)
    """
    m = moments(frames, **kwargs)
    return m.mean.astype(np.float32), m.std(ddof).astype(np.float32)


def sampled_median(frames, indices=None, *, rows_per_chunk: int = 64, client=None,
                   scheduler: Optional[str] = None) -> np.ndarray:
    """Per-pixel median over selected planes, computed one band of rows at a time.

    The flat-field statistic of the empty-tile / empty-z-range scenarios: the pixel-wise median
    of sampled planes.  A median does not merge, so instead of blocks of frames the work is cut
    into bands of rows: a worker holds ``len(indices) x rows_per_chunk x X`` values.

    Parameters
    ----------
    frames : see :func:`as_frames`
        (N, Y, X) planes.
    indices : sequence of int, optional
        Planes to use (e.g. from the flat-field engine's seeded sampler); default all.
    rows_per_chunk : int
        Rows per band.

    Returns
    -------
    ndarray, float64, (Y, X)
    """
    dask, da = _dask()
    arr = as_frames(frames, chunk_frames=max(1, min(256, int(rows_per_chunk))))
    if indices is not None:
        idx = np.asarray(indices, dtype=np.int64)
        if idx.size == 0 or idx.min() < 0 or idx.max() >= arr.shape[0]:
            raise CamcorrError("plane index out of range", argument="indices",
                               expected=f"indices in [0, {arr.shape[0] - 1}]",
                               received=f"{idx.size} indices, range "
                                        f"[{idx.min() if idx.size else '-'}, "
                                        f"{idx.max() if idx.size else '-'}]")
        arr = arr[idx]
    arr = arr.rechunk((-1, int(rows_per_chunk), -1))
    med = arr.map_blocks(lambda b: np.median(b, axis=0).astype(np.float64)[None],
                         dtype=np.float64, chunks=((1,),) + arr.chunks[1:])
    (out,) = _compute([med], client=client, scheduler=scheduler)
    return np.asarray(out)[0]
