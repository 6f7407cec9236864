"""Lazy access to the planes of many tiles, and the seeded plane sampler.

A *tile* is a 2D (Y, X) image or a 3D (Z, Y, X) stack, given either as an array (CellProfiler,
Fiji, Python) or as a TIFF path (command line).  Paths are opened lazily: their shape is read
from the TIFF header, and only the planes that are sampled are read (memory-mapped where the
file is stored uncompressed and contiguously, page by page otherwise).  Memory therefore depends
on the number of *sampled* planes, never on the number of planes in the data.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np

from ..errors import CamcorrError, Limits

__all__ = ["TileSet", "sample_planes", "DEFAULT_MAX_PLANES", "SAMPLING_LIMITS"]

DEFAULT_MAX_PLANES = 200
#: Allowed number of sampled planes and sampler seed (shared by every estimation method).
SAMPLING_LIMITS = {"n_planes": Limits(low=1), "seed": Limits(low=0)}
"""Planes sampled when the caller asks for none in particular (the Fractal mesoSPIM flat-field
task samples 200)."""


class TileSet:
    """A list of tiles (arrays or TIFF paths), read lazily plane by plane.

    Parameters
    ----------
    tiles : sequence of array_like or path-like
        Each a 2D (Y, X) or 3D (Z, Y, X) image; all with the same (Y, X).
    argument : str
        Name used in error messages.

    only : sequence of int, optional
        0-based indices of the tiles to open and check (default all); the others are never
        touched (their ``n_planes`` entry is None).

    Attributes
    ----------
    n_planes : list of int
        Number of Z planes of each tile (1 for 2D tiles).
    shape : (int, int)
        Common (Y, X) of the planes.
    dtype : numpy.dtype
        dtype of the first tile.
    """

    def __init__(self, tiles: Sequence, *, argument: str = "tiles",
                 only: Optional[Sequence[int]] = None):
        self.argument = argument
        self._tiles = self.as_list(tiles)
        if not self._tiles:
            raise CamcorrError("no tiles given", argument=argument,
                               expected="at least one 2D or 3D image", received="none")
        self._handles = {}
        n = len(self._tiles)
        self.n_planes: List[Optional[int]] = [None] * n
        self.ndims: List[Optional[int]] = [None] * n
        self.dtypes: List[Optional[np.dtype]] = [None] * n
        self.dtype = None
        self.shape: Optional[Tuple[int, int]] = None
        probe = range(n) if only is None else sorted(set(int(i) for i in only))
        for i in probe:
            t = self._tiles[i]
            shape, dtype = self._shape_dtype(i, t)
            if len(shape) not in (2, 3):
                raise CamcorrError("tile must be 2D (Y, X) or 3D (Z, Y, X)",
                                   argument=f"{argument}: tile {i + 1}",
                                   expected="a 2D or 3D image",
                                   received=f"shape {tuple(shape)}" + (
                                       f" ({t})" if not hasattr(t, "shape") else ""))
            if dtype.kind not in "biuf":
                raise CamcorrError("tile is not numeric", argument=f"{argument}: tile {i + 1}",
                                   expected="integer or float pixels", received=str(dtype))
            self.n_planes[i] = 1 if len(shape) == 2 else int(shape[0])
            self.ndims[i] = len(shape)
            self.dtypes[i] = np.dtype(dtype)
            if self.shape is None:
                self.shape, self.dtype, first = tuple(shape[-2:]), np.dtype(dtype), i
            elif tuple(shape[-2:]) != self.shape:
                raise CamcorrError("tiles differ in size", argument=f"{argument}: tile {i + 1}",
                                   expected=f"(Y, X) = {self.shape} like tile {first + 1}",
                                   received=f"{tuple(shape[-2:])}")

    @staticmethod
    def as_list(tiles) -> list:
        """The tiles as a list: one path or 2D/3D array is one tile; a list is a list of tiles.

        A 3D array given directly is one (Z, Y, X) tile; give ``list(stack)`` for a stack of
        2D tiles.
        """
        if isinstance(tiles, TileSet):
            return list(tiles._tiles)
        if isinstance(tiles, (str, os.PathLike)) or (isinstance(tiles, np.ndarray)
                                                     and tiles.dtype != object):
            return [tiles]
        return list(tiles)

    # -- construction helpers -----------------------------------------------------------------
    def _shape_dtype(self, i, t):
        if hasattr(t, "shape") and hasattr(t, "dtype"):
            return tuple(t.shape), np.dtype(t.dtype)
        p = Path(t)
        if not p.is_file():
            raise CamcorrError("tile file not found", argument=f"{self.argument}: tile {i + 1}",
                               expected="an existing TIFF file", received=str(p))
        from ..io import _check_header, _check_readable, _open_tiff

        # one open: the input gate (colour, truncated, ...: as io.inspect_tiff) and, for an
        # uncompressed contiguous series, what its memory map needs (as tifffile.memmap)
        arg = f"{self.argument}: tile {i + 1}"
        p = _check_readable(p, arg)
        with _open_tiff(p, arg) as (tif, log):
            series = _check_header(tif, log, p, arg)
            offset = getattr(series, "dataoffset", None)
            mm_args = None if offset is None or series.dtype is None else (
                np.dtype(tif.byteorder + series.dtype.char), int(offset), tuple(series.shape))
        try:
            mm = None if mm_args is None else np.memmap(p, mm_args[0], "r", mm_args[1],
                                                        mm_args[2], "C")
        except Exception:
            mm = None
        shape = tuple(series.shape)
        while len(shape) > 2 and shape[0] == 1:  # drop singleton leading axes (T=1, C=1)
            shape = shape[1:]
        if len(shape) > 3:
            shape = (int(np.prod(shape[:-2])),) + shape[-2:]
        if mm is None:
            return shape, np.dtype(series.dtype)
        self._handles[i] = ("mm", mm.reshape((-1,) + mm.shape[-2:]))
        return shape, np.dtype(mm.dtype)

    # -- access ---------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._tiles)

    def name(self, i: int) -> str:
        """A printable name of tile `i` (0-based index)."""
        t = self._tiles[i]
        return str(t) if not hasattr(t, "shape") else f"tile {i + 1}"

    def is_path(self, i: int) -> bool:
        return not hasattr(self._tiles[i], "shape")

    def _handle(self, i: int):
        """Memory map or open TiffFile pages of tile `i` (kept until :meth:`close`)."""
        if i in self._handles:
            return self._handles[i]
        import tifffile

        p = Path(self._tiles[i])
        handle = None
        try:
            mm = tifffile.memmap(p, mode="r")
            handle = ("mm", mm.reshape((-1,) + mm.shape[-2:]))
        except Exception:
            tif = tifffile.TiffFile(p)
            series = tif.series[0]
            pages = series.pages if len(series.pages) == self.n_planes[i] else tif.pages
            handle = ("pages", (tif, pages))
        self._handles[i] = handle
        return handle

    def plane(self, i: int, z: int) -> np.ndarray:
        """Plane `z` of tile `i` (0-based both) as a 2D array (a view where possible)."""
        t = self._tiles[i]
        if hasattr(t, "shape"):
            arr = t
            return np.asarray(arr if arr.ndim == 2 else arr[z])
        kind, h = self._handle(i)
        if kind == "mm":
            data = h[z]
        else:
            tif, pages = h
            data = pages[z].asarray()
            data = data.reshape(data.shape[-2:]) if data.ndim > 2 else data
        if data.dtype.kind == "f" and not np.isfinite(data).all():
            raise CamcorrError("contains NaN or infinite values",
                               argument=f"{self.argument}: tile {i + 1}",
                               expected="finite numbers only",
                               received=f"{int(np.count_nonzero(~np.isfinite(data)))} non-finite "
                                        f"value(s) in plane {z + 1} of {self.name(i)}",
                               fix="Replace or mask the non-finite pixels before estimating")
        return data

    def tile(self, i: int) -> np.ndarray:
        """Tile `i` entirely (2D or 3D), read into memory."""
        t = self._tiles[i]
        if hasattr(t, "shape"):
            return np.asarray(t)
        from ..io import read_image

        data = read_image(t, argument=f"{self.argument}: tile {i + 1}")
        return data.reshape((-1,) + data.shape[-2:]) if data.ndim > 3 else data

    def close(self):
        """Release memory maps and open files."""
        for kind, h in self._handles.values():
            if kind == "pages":
                h[0].close()
        self._handles.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def sample_planes(candidates: Sequence[Tuple[int, Sequence[int]]], n_planes: Optional[int],
                  *, seed: int = 0, max_planes: int = DEFAULT_MAX_PLANES,
                  argument: str = "planes") -> List[Tuple[int, int]]:
    """Pick planes to estimate from, reproducibly.

    Parameters
    ----------
    candidates : sequence of (tile_index, z_indices)
        Eligible planes per tile (0-based); ``z_indices`` may be a ``range``.
    n_planes : int or None
        Exactly this many planes (error if fewer are eligible); None: every eligible plane if
        there are at most `max_planes`, otherwise `max_planes` of them.
    seed : int
        Seed of the generator; the same inputs and seed always give the same planes.
    max_planes : int
        Cap used when `n_planes` is None.

    Returns
    -------
    list of (tile_index, z)
        Sorted by tile then z (sequential reads).

    Notes
    -----
    Sampling is uniform without replacement over all eligible planes
    (``numpy.random.default_rng(seed).choice(N, k, replace=False)``, O(k) memory), so tiles
    with more eligible planes contribute proportionally more.

    Raises
    ------
    CamcorrError
        If no plane is eligible, or fewer than `n_planes`.
    """
    SAMPLING_LIMITS["seed"].check(seed, "seed")
    counts = np.array([len(z) for _, z in candidates], dtype=np.int64)
    total = int(counts.sum())
    if total == 0:
        raise CamcorrError("no planes to estimate from", argument=argument,
                           expected="at least one eligible plane", received="none",
                           fix="Check the z-levels and the tile list")
    if n_planes is not None:
        n_planes = int(SAMPLING_LIMITS["n_planes"].check(n_planes, argument))
        if n_planes > total:
            raise CamcorrError("fewer eligible planes than requested", argument=argument,
                               expected=f"at most {total} planes (the eligible planes of the "
                                        "tiles and z-levels given)",
                               received=str(n_planes),
                               fix="Ask for fewer planes, widen the z-levels or add tiles")
        k = n_planes
    else:
        k = min(total, int(max_planes))
    if k == total:
        flat_idx = np.arange(total)
    else:
        flat_idx = np.sort(np.random.default_rng(seed).choice(total, size=k, replace=False))
    bounds = np.cumsum(counts)
    which = np.searchsorted(bounds, flat_idx, side="right")
    out = []
    for f, w in zip(flat_idx, which):
        start = bounds[w] - counts[w]
        tile_index, zs = candidates[int(w)]
        out.append((int(tile_index), int(zs[int(f - start)])))
    return out
