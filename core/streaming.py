"""File-to-file streaming: read blocks of planes, compute, write blocks; memory bounded by a budget.

The command-line runners of the per-plane operations (``flash correct``, ``median``'s
application, ``flatfield apply``, ``gain normalize``) never hold a whole stack: they read a
block of 2D planes from the input TIFF, compute the block with the same engine function the
in-memory path uses, and append it to the output, which is written to a temporary file and
renamed when complete (:func:`camcorr.io.atomic_write`).  Statistics passes (the median's std
projection) stream the same blocks through an accumulator.  The result is bit-identical to the
in-memory path (same kernels, same order of operations per pixel) whatever the block size.

Memory
------
The number of planes per block is chosen so that the blocks an operation holds at once (its
input planes, output planes and temporaries, counted per pixel by the caller) fit in the
``--memory`` budget, :data:`DEFAULT_MEMORY` (1 GiB) unless given.  The budget covers the data
blocks and the per-pixel state of a statistics pass; the process also needs the interpreter,
numpy, numba and tifffile (about 200-250 MiB, :data:`PROCESS_OVERHEAD_MIB`), which the budget does
not count.  A block holds at least one plane, so a budget smaller than one plane's working set
is exceeded by that much.

Reading
-------
Uncompressed contiguous TIFF data (what ImageJ, tifffile and camcorr write) are read with
positioned reads straight into a reusable buffer: no memory map, so the page cache of a file
larger than the memory is never counted in the process's resident memory.  Other layouts
(compressed or tiled pages) are decoded page by page.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Callable, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import tifffile

from .errors import CamcorrError
from .io import (PathLike, TiffInfo, _check_values, atomic_write, ensure_not_input,
                 tiff_write_kwargs)
from .operations import Param

__all__ = [
    "DEFAULT_MEMORY",
    "PROCESS_OVERHEAD_MIB",
    "MEMORY_PARAM",
    "parse_memory",
    "planes_per_block",
    "PlaneReader",
    "write_planes",
    "blocks",
]

#: Default memory budget of a streamed command, bytes (1 GiB).  The one owner of this default:
#: the ``--memory`` option of every streaming command reads it from here (:data:`MEMORY_PARAM`).
DEFAULT_MEMORY = 1 << 30

#: Resident memory of the process besides the data blocks (interpreter, numpy, numba, tifffile,
#: the compiled kernels), MiB, measured on Linux x86-64 with Python 3.11
#: (``benchmarks/bench_stream.py``).  Peak RSS <= budget + this + small per-pixel maps.
PROCESS_OVERHEAD_MIB = 256

_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mb": 1 << 20,
          "mib": 1 << 20, "g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30, "t": 1 << 40,
          "tb": 1 << 40, "tib": 1 << 40}


def _format_default(nbytes: int) -> str:
    for unit, size in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if nbytes % size == 0:
            return f"{nbytes // size}{unit}"
    return str(nbytes)


#: The ``--memory`` option shared by every streaming command.
MEMORY_PARAM = Param(
    "memory", "str", default=_format_default(DEFAULT_MEMORY), cli="--memory", metavar="SIZE",
    label="Memory budget",
    help="Memory for the blocks of planes read, computed and written at a time (e.g. 512M, 4G; "
         "units K, M, G of 1024). Files of any size are processed in blocks that fit; the "
         "process needs about 250 MB more for itself. The output is the same for every budget.",
    frontends=("cli",), engine_arg=None)


def parse_memory(value, *, argument: str = "--memory") -> int:
    """Bytes of a memory size such as ``'1G'``, ``'512M'``, ``'1.5GiB'`` or ``1073741824``.

    Parameters
    ----------
    value : str, int, float or None
        Size; units K, M, G, T are powers of 1024 (``'1G'`` = 1 GiB); None: the default.
    argument : str
        Name used in error messages.

    Returns
    -------
    int
        Bytes (>= 1 MiB).

    Raises
    ------
    CamcorrError
        Unreadable size or a size below 1 MiB.
    """
    if value is None:
        return DEFAULT_MEMORY
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        nbytes = int(value)
    else:
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*", str(value))
        if not m or m.group(2).lower() not in _UNITS:
            raise CamcorrError("cannot read the memory size", argument=argument,
                               expected="a size such as 512M, 2G or 1.5G (units K, M, G, T)",
                               received=repr(value), fix=f"e.g. {argument} 2G")
        nbytes = int(float(m.group(1)) * _UNITS[m.group(2).lower()])
    if nbytes < (1 << 20):
        raise CamcorrError("memory budget too small", argument=argument,
                           expected="at least 1M", received=repr(value),
                           fix=f"Give {argument} 256M or more")
    return nbytes


def planes_per_block(budget: int, plane_pixels: int, bytes_per_pixel: float, *,
                     fixed_bytes: int = 0, n_planes: Optional[int] = None) -> int:
    """Planes per block so that the blocks fit in `budget` bytes (at least 1).

    Parameters
    ----------
    budget : int
        Memory budget, bytes.
    plane_pixels : int
        Pixels of one plane (Y * X).
    bytes_per_pixel : float
        Bytes the operation holds per pixel of a block: its input, output and temporaries.
    fixed_bytes : int
        Memory held whatever the block size (per-pixel maps), subtracted from the budget first.
    n_planes : int, optional
        Planes to process; the block is never larger.
    """
    avail = budget - fixed_bytes
    n = int(avail // max(1.0, plane_pixels * bytes_per_pixel)) if avail > 0 else 1
    n = max(1, n)
    if n_planes is not None:
        n = max(1, min(n, int(n_planes)))
    return n


def blocks(n: int, size: int) -> Iterator[Tuple[int, int]]:
    """``(start, stop)`` of consecutive blocks of at most `size` items covering ``range(n)``."""
    size = max(1, int(size))
    for start in range(0, n, size):
        yield start, min(n, start + size)


def _runs(indices: np.ndarray) -> List[Tuple[int, int, int]]:
    """Contiguous runs of sorted unique `indices`: ``(position, first, stop)``."""
    runs = []
    if indices.size == 0:
        return runs
    breaks = np.flatnonzero(np.diff(indices) != 1) + 1
    starts = np.concatenate(([0], breaks))
    stops = np.concatenate((breaks, [indices.size]))
    for a, b in zip(starts, stops):
        runs.append((int(a), int(indices[a]), int(indices[b - 1]) + 1))
    return runs


class PlaneReader:
    """Read 2D planes of the first series of a TIFF file, by flat plane index.

    Planes are numbered in storage order (C order of the leading axes), as
    ``read_tiff(path)[0].reshape(-1, Y, X)`` numbers them.

    Parameters
    ----------
    path : path-like
        TIFF file.
    argument : str
        Name used in error messages.

    Attributes
    ----------
    info : TiffInfo
        Shape, dtype (native byte order), axes and metadata, as :func:`camcorr.io.read_tiff`.
    n_planes : int
        Number of (Y, X) planes.
    plane_shape : (int, int)
    dtype : numpy.dtype
        Pixel type of the planes returned (native byte order).

    Raises
    ------
    CamcorrError
        Missing or unreadable file (the input gate of :func:`camcorr.io.inspect_tiff`), planes
        that are not grayscale, or non-finite values in floating-point data (checked when the
        file is opened, 64 MiB at a time, so nothing is written from a file that would fail).
    """

    def __init__(self, path: PathLike, *, argument: str = "input"):
        from .io import _resolution, inspect_tiff

        # the input gate of camcorr.io (missing, empty, colour, unsupported type, truncated)
        p = Path(inspect_tiff(path, argument=argument).path)
        self.path = p
        self.argument = argument
        try:
            self._tif = tifffile.TiffFile(p)
            series = self._tif.series[0]
            shape = tuple(int(s) for s in series.shape)
            axes = series.axes
            stored = np.dtype(series.dtype)
            self.info = TiffInfo(path=p, shape=shape, dtype=stored.newbyteorder("="), axes=axes,
                                 imagej=dict(self._tif.imagej_metadata or {}),
                                 resolution=_resolution(self._tif))
        except CamcorrError:
            raise
        except Exception as exc:  # tifffile raises many types for a broken file
            self.close()
            raise CamcorrError("cannot read as TIFF", argument=argument, expected="a TIFF file",
                               received=f"{p} ({type(exc).__name__}: {exc})") from None
        if len(shape) < 2 or (len(axes) == len(shape) and axes.upper()[-2:] != "YX"):
            self.close()
            raise CamcorrError("not a grayscale image", argument=argument,
                               expected="grayscale planes (..., Y, X); colour samples last "
                                        "(RGB) are not camera data",
                               received=f"axes {axes!r}, shape {shape} in {p}",
                               fix="Convert the image to grayscale (Fiji: Image > Type > 16-bit)")
        self.plane_shape = shape[-2:]
        self.n_planes = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
        self.dtype = self.info.dtype
        self._file_dtype = stored.newbyteorder(self._tif.byteorder)
        self._offset = series.dataoffset  # None unless uncompressed and contiguous
        self._pages = None
        self._fh = None
        if self._offset is not None:
            self._fh = open(p, "rb", buffering=0)
            self._tif.close()
            self._tif = None
        else:
            pages = list(series.pages)
            if len(pages) == self.n_planes and all(
                    pg is not None and tuple(pg.shape[-2:]) == self.plane_shape for pg in pages):
                self._pages = pages
            else:  # unusual layout: decode the whole series once (memory not bounded)
                self._all = series.asarray().reshape((-1,) + self.plane_shape)
        if self.dtype.kind == "f":
            # refuse NaN/inf before anything is written (as read_tiff does), 64 MiB at a time
            step = max(1, (64 << 20) // max(1, self.plane_bytes))
            try:
                for i0 in range(0, self.n_planes, step):
                    self.read(i0, min(self.n_planes, i0 + step))
            except BaseException:
                self.close()
                raise

    # -- context manager
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        """Close the file."""
        fh, self._fh = getattr(self, "_fh", None), None
        if fh is not None:
            fh.close()
        tif = getattr(self, "_tif", None)
        if tif is not None:
            tif.close()
            self._tif = None

    @property
    def plane_bytes(self) -> int:
        """Bytes of one plane."""
        return int(np.prod(self.plane_shape)) * self.dtype.itemsize

    def _read_run(self, first: int, stop: int, out: np.ndarray):
        """Planes [first, stop) into `out` (shape (stop - first, Y, X), native dtype)."""
        if self._fh is not None:
            pb = self.plane_bytes
            view = memoryview(out.reshape(-1).view(np.uint8))
            pos = self._offset + first * pb
            done = 0
            want = (stop - first) * pb
            while done < want:
                got = os.preadv(self._fh.fileno(), [view[done:want]], pos + done)
                if got <= 0:
                    raise CamcorrError("file ends before its image data", argument=self.argument,
                                       expected=f"{self.n_planes} planes of {self.plane_shape}",
                                       received=f"a truncated file {self.path}",
                                       fix="Copy the file again from its source")
                done += got
            if not self._file_dtype.isnative:
                out.byteswap(inplace=True)
        elif self._pages is not None:
            for j, i in enumerate(range(first, stop)):
                out[j] = self._pages[i].asarray()
        else:
            out[:] = self._all[first:stop]
        _check_values(out, self.argument, self.path, "refuse")  # no NaN/inf, as read_tiff

    def read(self, start: int, stop: int, out: Optional[np.ndarray] = None) -> np.ndarray:
        """Planes ``[start, stop)`` as an (n, Y, X) array (into `out` if given)."""
        start, stop = int(start), int(stop)
        if not 0 <= start <= stop <= self.n_planes:
            raise CamcorrError("plane range out of the file", argument=self.argument,
                               expected=f"planes within 0..{self.n_planes}",
                               received=f"[{start}, {stop})")
        if out is None:
            out = np.empty((stop - start,) + self.plane_shape, self.dtype)
        self._read_run(start, stop, out)
        return out

    def read_unique(self, indices: Sequence[int]) -> Tuple[np.ndarray, np.ndarray]:
        """The distinct planes among `indices`, read once each.

        Returns
        -------
        planes : ndarray, shape (m, Y, X)
            The distinct planes in increasing index order.
        position : ndarray of int64, shape (len(indices),)
            Row of ``planes`` holding each of `indices`.
        """
        idx = np.asarray(indices, dtype=np.int64).ravel()
        uniq, position = np.unique(idx, return_inverse=True)
        out = np.empty((uniq.size,) + self.plane_shape, self.dtype)
        for pos, first, stop in _runs(uniq):
            self.read(first, stop, out[pos:pos + stop - first])
        return out, position.astype(np.int64).ravel()


def write_planes(path: PathLike, shape: Sequence[int], dtype, planes: Iterable[np.ndarray], *,
                 inputs: Iterable[PathLike] = (), axes: Optional[str] = None,
                 imagej_metadata: Optional[dict] = None, resolution=None,
                 extra_metadata: Optional[dict] = None, argument: str = "output") -> Path:
    """Write a TIFF file of `shape` and `dtype` from blocks of planes, atomically.

    The file is written to a temporary name in the destination folder and renamed when all
    planes are written (removed on error or interruption), never over one of `inputs`.  The
    file layout and metadata are those :func:`camcorr.io.write_tiff` writes for an array of the
    same shape, dtype and metadata.

    Parameters
    ----------
    path : path-like
        Destination.
    shape : sequence of int
        Shape of the whole image, (..., Y, X).
    dtype : dtype-like
        Pixel type; every block must have it.
    planes : iterable of ndarray
        Blocks of planes (n, Y, X) in storage order, ``prod(shape[:-2])`` planes in all.  A
        block is released before the next one is asked for, so a generator that also drops its
        references after ``yield`` holds one block at a time.
    inputs, axes, imagej_metadata, resolution, extra_metadata, argument
        As in :func:`camcorr.io.write_tiff`.

    Returns
    -------
    pathlib.Path
    """
    ensure_not_input(path, inputs, argument=argument)
    shape = tuple(int(s) for s in shape)
    dtype = np.dtype(dtype)
    kwargs = tiff_write_kwargs(len(shape), dtype, axes=axes, imagej_metadata=imagej_metadata,
                               resolution=resolution, extra_metadata=extra_metadata)
    n_total = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    plane_shape = shape[-2:]

    def _pages():
        n = 0
        source = iter(planes)
        while True:
            block = plane = None  # drop the last block before the next one is computed
            block = next(source, None)
            if block is None:
                break
            block = np.asarray(block)
            if block.dtype != dtype or block.shape[-2:] != plane_shape:
                raise CamcorrError("internal error: block of the wrong type or size",
                                   argument="planes", expected=f"{dtype} planes of {plane_shape}",
                                   received=f"{block.dtype} block of {block.shape}")
            for plane in block.reshape((-1,) + plane_shape):
                n += 1
                # tifffile keeps the first item for the whole write: a copy, not a view that
                # would keep the first block alive
                yield plane.copy() if n == 1 else plane
        if n != n_total:
            raise CamcorrError("internal error: wrong number of planes", argument="planes",
                               expected=str(n_total), received=str(n))

    def _writer(tmp):
        tifffile.imwrite(tmp, data=_pages(), shape=shape, dtype=dtype, **kwargs)

    return atomic_write(path, _writer, suffix=".tif", inputs=inputs, argument=argument)
