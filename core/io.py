"""TIFF input/output with the safety rules every camcorr front end relies on.

Rules
-----
* Inputs are never overwritten: writing to a path that is one of the inputs raises
  :class:`~camcorr.errors.CamcorrError`.
* Outputs are written atomically: to a temporary file in the destination folder, then renamed,
  so an interrupted run never leaves a half-written image under the final name.
* The output keeps the input dtype unless another is asked for; values outside the range of an
  integer dtype are clipped (and counted), never wrapped; floats are rounded to the nearest integer.
* ImageJ hyperstack metadata (axes, spacing, unit, frame interval, resolution) is read and can be
  passed back when writing, so Fiji shows the result as it showed the input.

Axes follow the numpy/ImageJ convention: (..., Z, Y, X), with T and C before Z for hyperstacks.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Optional, Sequence, Tuple, Union

import numpy as np
import tifffile

from .errors import CamcorrError, describe

__all__ = [
    "TiffInfo",
    "read_tiff",
    "read_image",
    "iter_planes",
    "count_planes",
    "write_tiff",
    "atomic_write",
    "cast_to_dtype",
    "resolve_dtype",
    "ensure_not_input",
    "PathLike",
]

PathLike = Union[str, os.PathLike]

# dtypes ImageJ hyperstacks can hold; others are written as plain TIFF.
_IMAGEJ_DTYPES = (np.uint8, np.uint16, np.float32)
_DEFAULT_AXES = {2: "YX", 3: "ZYX", 4: "TZYX", 5: "TZCYX"}


@dataclass
class TiffInfo:
    """What we keep of a TIFF file besides its pixels.

    Attributes
    ----------
    path : pathlib.Path
        File read.
    shape : tuple of int
        Shape of the pixel array.
    dtype : numpy.dtype
        Stored pixel type.
    axes : str
        tifffile axes string, e.g. ``'ZYX'`` or ``'TZCYX'``.
    imagej : dict
        ImageJ metadata (``spacing``, ``unit``, ``finterval``, ...), empty if none.
    resolution : tuple or None
        (x, y) pixels per unit from the TIFF tags, if present.
    """

    path: Path
    shape: Tuple[int, ...]
    dtype: np.dtype
    axes: str = ""
    imagej: dict = field(default_factory=dict)
    resolution: Optional[Tuple[float, float]] = None

    def write_kwargs(self) -> dict:
        """Keyword arguments for :func:`write_tiff` that restore this file's metadata."""
        meta = {k: v for k, v in self.imagej.items()
                if k in ("spacing", "unit", "finterval", "fps", "xorigin", "yorigin", "zorigin",
                         "mode", "loop", "min", "max", "Labels", "Ranges", "LUTs")}
        return {"imagej_metadata": meta, "resolution": self.resolution, "axes": self.axes}


def _check_readable(path: PathLike, argument: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise CamcorrError("file not found", argument=argument, expected="an existing TIFF file",
                           received=str(p), fix="Check the path and the current folder")
    if p.is_dir():
        raise CamcorrError("is a folder, not a file", argument=argument,
                           expected="a TIFF file", received=str(p))
    return p


def read_tiff(path: PathLike, *, argument: str = "input") -> Tuple[np.ndarray, TiffInfo]:
    """Read a TIFF file (all pages of its first series) with its metadata.

    Parameters
    ----------
    path : str or path-like
        TIFF file.
    argument : str
        Name used in error messages.

    Returns
    -------
    data : ndarray
        Pixels, axes as stored (ImageJ order ``TZCYX`` minus singleton axes).
    info : TiffInfo
        Metadata to pass back to :func:`write_tiff`.

    Raises
    ------
    CamcorrError
        If the file is missing or not a readable TIFF.
    """
    p = _check_readable(path, argument)
    try:
        with tifffile.TiffFile(p) as tif:
            series = tif.series[0]
            data = series.asarray()
            info = TiffInfo(path=p, shape=tuple(data.shape), dtype=data.dtype,
                            axes=series.axes, imagej=dict(tif.imagej_metadata or {}),
                            resolution=_resolution(tif))
    except CamcorrError:
        raise
    except Exception as exc:  # tifffile raises many types for a broken file
        raise CamcorrError("cannot read as TIFF", argument=argument, expected="a TIFF file",
                           received=f"{p} ({type(exc).__name__}: {exc})") from None
    return data, info


def read_image(path: PathLike, *, argument: str = "input") -> np.ndarray:
    """Read a TIFF file's pixels only; see :func:`read_tiff`."""
    return read_tiff(path, argument=argument)[0]


def _resolution(tif) -> Optional[Tuple[float, float]]:
    try:
        page = tif.pages[0]
        xr = page.tags.get("XResolution")
        yr = page.tags.get("YResolution")
        if xr is None or yr is None:
            return None
        x = xr.value[0] / xr.value[1]
        y = yr.value[0] / yr.value[1]
        return (float(x), float(y))
    except Exception:
        return None


def count_planes(path: PathLike, *, argument: str = "input") -> int:
    """Number of 2D planes in a TIFF file, without reading pixels."""
    p = _check_readable(path, argument)
    with tifffile.TiffFile(p) as tif:
        shape = tif.series[0].shape
    return int(np.prod(shape[:-2])) if len(shape) > 2 else 1


def iter_planes(paths: Union[PathLike, Sequence[PathLike]], *, chunk: int = 16,
                argument: str = "input") -> Iterator[np.ndarray]:
    """Yield blocks of 2D planes, (n <= chunk, Y, X), from one or many TIFF files.

    Only one block is held in memory at a time (the file is memory-mapped where it is stored
    uncompressed and contiguously), so statistics over many frames can be streamed.

    Parameters
    ----------
    paths : path or sequence of paths
        TIFF files; all planes of all files are yielded in order.
    chunk : int
        Maximum number of planes per block.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    for path in paths:
        p = _check_readable(path, argument)
        try:
            arr = tifffile.memmap(p, mode="r")
        except Exception:
            arr = None
        if arr is not None:
            planes = arr.reshape((-1,) + arr.shape[-2:]) if arr.ndim > 2 else arr[None]
            for i in range(0, planes.shape[0], chunk):
                yield np.asarray(planes[i:i + chunk])
            del arr, planes
            continue
        with tifffile.TiffFile(p) as tif:
            pages = tif.series[0].pages if len(tif.series) else tif.pages
            n = len(pages)
            for i in range(0, n, chunk):
                block = [pages[j].asarray() for j in range(i, min(n, i + chunk))]
                yield np.stack(block).reshape((-1,) + block[0].shape[-2:])


def ensure_not_input(output: PathLike, inputs: Iterable[PathLike], *, argument: str = "output"):
    """Raise if `output` names the same file as one of `inputs`.

    Raises
    ------
    CamcorrError
        When the output would overwrite an input.
    """
    out = Path(output)
    try:
        out_res = out.resolve()
    except OSError:
        out_res = out.absolute()
    for inp in inputs:
        try:
            same = out_res == Path(inp).resolve() or (out.exists() and Path(inp).exists()
                                                      and os.path.samefile(out, inp))
        except OSError:
            same = False
        if same:
            raise CamcorrError("would overwrite an input file", argument=argument,
                               expected="an output path different from every input",
                               received=str(output),
                               fix="Choose another output folder (e.g. -o corrected/)")


def atomic_write(path: PathLike, writer, *, suffix: str = ""):
    """Call ``writer(tmp_path)`` then rename the temporary file to `path` atomically.

    The temporary file lives in the destination folder (same file system, so the rename is
    atomic) and is removed if `writer` fails.
    """
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part" + suffix, dir=dest.parent)
    os.close(fd)
    try:
        writer(tmp)
        os.replace(tmp, dest)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return dest


def resolve_dtype(input_dtype, requested=None) -> np.dtype:
    """Output dtype: the input's unless `requested` ('keep', 'float32', 'uint16', ...) says otherwise."""
    if requested is None or str(requested) in ("keep", "same", ""):
        return np.dtype(input_dtype)
    try:
        return np.dtype(requested)
    except TypeError:
        raise CamcorrError("unknown dtype", argument="dtype",
                           expected="'keep', 'float32', 'uint16', 'uint8' or another numpy dtype",
                           received=repr(requested)) from None


def cast_to_dtype(data, dtype, *, return_counts: bool = False):
    """Convert to `dtype`, rounding and clipping to its range instead of wrapping.

    Parameters
    ----------
    data : array_like
        Values (any numeric dtype).
    dtype : dtype-like
        Target dtype.
    return_counts : bool
        Also return how many values were clipped below and above the range.

    Returns
    -------
    out : ndarray
        Converted array (NaN becomes 0 for integer targets).
    n_low, n_high : int
        Only if `return_counts`: number of values clipped at the bottom and top of the range.
    """
    dtype = np.dtype(dtype)
    arr = np.asarray(data)
    n_low = n_high = 0
    if dtype.kind in "ui":
        info = np.iinfo(dtype)
        if arr.dtype.kind == "f":
            work = np.rint(arr)
            nan = np.isnan(work)
            if nan.any():
                work = np.where(nan, 0, work)
        else:
            work = arr
        if return_counts:
            n_low = int(np.count_nonzero(work < info.min))
            n_high = int(np.count_nonzero(work > info.max))
        if arr.dtype != dtype:
            out = np.clip(work, info.min, info.max).astype(dtype)
        else:
            out = arr.copy()
    elif dtype.kind == "f":
        out = arr.astype(dtype, copy=True)
    elif dtype.kind == "b":
        out = arr.astype(bool)
    else:
        raise CamcorrError("unsupported output dtype", argument="dtype",
                           expected="an integer or floating dtype", received=str(dtype))
    if return_counts:
        return out, n_low, n_high
    return out


def write_tiff(path: PathLike, data, *, inputs: Iterable[PathLike] = (), dtype=None,
               axes: Optional[str] = None, imagej_metadata: Optional[dict] = None,
               resolution=None, imagej: Optional[bool] = None, compression=None,
               extra_metadata: Optional[dict] = None) -> Path:
    """Write `data` to a TIFF file atomically, never over one of `inputs`.

    Parameters
    ----------
    path : path-like
        Destination file; its folder is created if needed.
    data : array_like
        Pixels, axes (..., Z, Y, X).
    inputs : iterable of path-like
        Files that must not be overwritten.
    dtype : dtype-like, optional
        Convert to this dtype first with :func:`cast_to_dtype` (clip, do not wrap).
    axes : str, optional
        ImageJ axes of `data` (e.g. ``'ZYX'``); defaults to the trailing part of ``'TZCYX'``.
    imagej_metadata : dict, optional
        ImageJ metadata to store (spacing, unit, finterval, ...).
    resolution : (float, float), optional
        X/Y pixels per unit.
    imagej : bool, optional
        Write an ImageJ hyperstack; default: when the dtype allows it (uint8, uint16, float32).
    compression : str, optional
        tifffile compression (e.g. ``'zlib'``).
    extra_metadata : dict, optional
        Additional JSON-serialisable keys stored in the ImageJ ``Info`` string.

    Returns
    -------
    pathlib.Path
        The written file.
    """
    ensure_not_input(path, inputs)
    arr = np.asarray(data)
    if dtype is not None:
        arr = cast_to_dtype(arr, dtype)
    if imagej is None:
        imagej = arr.dtype in [np.dtype(t) for t in _IMAGEJ_DTYPES] and arr.ndim <= 6
    kwargs = {}
    if imagej:
        meta = dict(imagej_metadata or {})
        ax = axes.replace("Q", "").upper() if axes else _DEFAULT_AXES.get(arr.ndim)
        if ax and len(ax) == arr.ndim and set(ax) <= set("TZCYXS"):
            meta["axes"] = ax
        if extra_metadata:
            import json
            meta["Info"] = json.dumps(extra_metadata)
        kwargs.update(imagej=True, metadata=meta)
    else:
        meta = {}
        if axes:
            meta["axes"] = axes
        if extra_metadata:
            meta.update(extra_metadata)
        kwargs.update(metadata=meta or None)
    if resolution is not None:
        kwargs["resolution"] = tuple(resolution)
    if compression:
        kwargs["compression"] = compression

    def _writer(tmp):
        tifffile.imwrite(tmp, arr, **kwargs)

    return atomic_write(path, _writer, suffix=".tif")
