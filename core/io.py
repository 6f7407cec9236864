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

import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Optional, Sequence, Tuple, Union

import numpy as np
import tifffile

from .errors import CamcorrError, check_finite

__all__ = [
    "TiffInfo",
    "read_tiff",
    "read_image",
    "inspect_tiff",
    "check_array",
    "iter_planes",
    "count_planes",
    "write_tiff",
    "tiff_write_kwargs",
    "atomic_write",
    "cast_to_dtype",
    "native_byte_order",
    "resolve_dtype",
    "ensure_not_input",
    "atomic_output",
    "preflight_output",
    "explain_write_error",
    "remove_stale_temps",
    "remove_active_temps",
    "is_stale_temp",
    "install_signal_handlers",
    "Interrupted",
    "TEMP_PATTERN",
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


class _TiffLog(logging.Handler):
    """Collects what tifffile logs while a file is opened (corrupt or truncated structures)."""

    def __init__(self):
        super().__init__(level=logging.WARNING)
        self.messages: list = []

    def emit(self, record):  # noqa: D102
        try:
            self.messages.append(record.getMessage())
        except Exception:  # pragma: no cover
            self.messages.append(str(record.msg))


@contextmanager
def _open_tiff(p: Path, argument: str):
    """Open a TIFF with tifffile, its log captured (not printed); yields (TiffFile, log)."""
    logger = logging.getLogger("tifffile")
    handler = _TiffLog()
    old_propagate = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        try:
            size = p.stat().st_size
        except OSError as exc:
            raise CamcorrError("cannot read the file", argument=argument, expected="a readable TIFF file",
                               received=f"{p} ({exc.strerror})") from None
        if size == 0:
            raise CamcorrError("empty file (0 bytes)", argument=argument,
                               expected="a TIFF image", received=str(p),
                               fix="The file was probably not written completely; copy or export "
                                   "it again")
        try:
            tif = tifffile.TiffFile(p)
        except PermissionError:
            raise CamcorrError("permission denied", argument=argument,
                               expected="a TIFF file you can read", received=str(p)) from None
        except Exception as exc:  # tifffile raises many types for a broken file
            raise CamcorrError("cannot read as TIFF", argument=argument, expected="a TIFF file",
                               received=f"{p} ({type(exc).__name__}: {exc})") from None
        with tif:
            yield tif, handler
    finally:
        logger.removeHandler(handler)
        logger.propagate = old_propagate


_TRUNCATION_HINTS = ("invalid page offset", "corrupted", "truncat", "failed to read",
                     "invalid tag", "mmap length")
_COLOUR = {2: "an RGB colour image", 3: "a palette (indexed colour) image",
           5: "a CMYK colour image", 6: "a YCbCr colour image"}


def _truncated(p: Path, argument: str, msg: str, expected_planes=None, got_planes=None
               ) -> CamcorrError:
    msg = re.sub(r"^<[^>]*>\s*", "", msg or "")
    rec = f"{p} ({p.stat().st_size} bytes" + (
        f"; about {got_planes} of {expected_planes} planes present" if expected_planes else "") + ")"
    return CamcorrError("truncated or damaged file", argument=argument,
                        expected="a complete TIFF file", received=rec,
                        fix="The file was probably not copied or written completely; copy or "
                            "export it again" + (f" (tifffile: {msg})" if msg else ""))


def _planes_present(tif, p: Path, dtype: np.dtype, plane_shape) -> Optional[int]:
    try:
        first = int(tif.pages[0].dataoffsets[0])
    except Exception:
        return None
    plane = int(np.prod(plane_shape)) * dtype.itemsize
    return max(0, p.stat().st_size - first) // max(1, plane)


def _grey_lut(page) -> bool:
    """Whether a palette page's colour map is a grey ramp (R = G = B, rising), as many
    microscopes and CellProfiler's example images store 8-bit greyscale data."""
    try:
        cm = np.asarray(page.colormap, dtype=np.int64)
    except Exception:
        return False
    if cm.ndim != 2 or cm.shape[0] != 3 or cm.shape[1] < 2:
        return False
    return bool((cm[0] == cm[1]).all() and (cm[1] == cm[2]).all()
                and (np.diff(cm[0]) >= 0).all() and cm[0, -1] > cm[0, 0])


def _check_header(tif, log: _TiffLog, p: Path, argument: str) -> "tifffile.TiffPageSeries":
    """The input gate for a TIFF file, before any pixel is read; returns the first series.

    Refuses colour images (RGB, palette, CMYK, YCbCr: several samples per pixel), pixel types
    other than integers and floats, and truncated or damaged files (pages missing, data running
    past the end of the file), each with what was expected and what was found.
    """
    if not len(tif.series) or not len(tif.pages):
        raise CamcorrError("contains no image", argument=argument, expected="a TIFF image",
                           received=str(p))
    series = tif.series[0]
    page = tif.pages[0]
    photometric = int(getattr(page, "photometric", 1) or 1)
    samples = int(getattr(page, "samplesperpixel", 1) or 1)
    if photometric == 3 and samples == 1 and _grey_lut(page):
        photometric = 1  # a greyscale look-up table: the stored values are the intensities
    if photometric in _COLOUR or samples > 1 or "S" in series.axes:
        what = _COLOUR.get(photometric, f"an image with {samples} samples per pixel")
        fix = ("Convert it to greyscale (Fiji: Image > Type > 8-bit) if its values are "
               "intensities, or use the camera's original greyscale file" if photometric == 3 else
               "Split the channels (Fiji: Image > Color > Split Channels) and give the camera "
               "channel you want corrected; camcorr works on raw greyscale camera data")
        raise CamcorrError(f"is {what}", argument=argument,
                           expected="a single-channel greyscale image (one value per pixel)",
                           received=f"{p} (shape {tuple(series.shape)}, axes {series.axes})",
                           fix=fix)
    dtype = np.dtype(series.dtype) if series.dtype is not None else None
    if dtype is None or dtype.kind not in "uif":
        raise CamcorrError("unsupported pixel type", argument=argument,
                           expected="integer or floating-point pixels (uint8, uint16, float32, ...)",
                           received=f"{p} ({dtype})")
    n_planes = int(np.prod(series.shape[:-2])) if len(series.shape) > 2 else 1
    hint = next((m for m in log.messages if any(h in m.lower() for h in _TRUNCATION_HINTS)), None)
    ij = tif.imagej_metadata or {}
    ij_images = int(ij.get("images", 0) or 0) if isinstance(ij, dict) else 0
    err = None
    if ij_images > n_planes:
        err = _truncated(p, argument, hint or "", ij_images,
                         _planes_present(tif, p, dtype, series.shape[-2:]))
    elif hint:
        have = _planes_present(tif, p, dtype, series.shape[-2:])
        err = _truncated(p, argument, hint or "", n_planes if have is not None and
                         have < n_planes else None, have)
    else:
        offset = getattr(series, "dataoffset", None)
        if offset is not None:
            need = int(offset) + int(np.prod(series.shape)) * dtype.itemsize
            if need > p.stat().st_size:
                err = _truncated(p, argument, "", n_planes,
                                 _planes_present(tif, p, dtype, series.shape[-2:]))
    if err is not None:
        raise err
    return series


def _check_values(data: np.ndarray, argument: str, p, finite: str) -> np.ndarray:
    if finite == "allow" or data.dtype.kind != "f":
        return data
    return check_finite(data, argument, where=str(p),
                        fix="Replace or mask the non-finite pixels (e.g. Fiji: Process > Math > "
                            "Remove NaNs) before correcting")


def check_array(data, argument: str, *, ndim: Optional[Sequence[int]] = None,
                finite: str = "refuse", multichannel: bool = False) -> np.ndarray:
    """The input gate for an image given as an array (CellProfiler, Fiji, Python API).

    Parameters
    ----------
    data : array_like
        Pixels, axes (..., Z, Y, X).
    argument : str
        How the front end names the image (CellProfiler setting text, Fiji parameter, ...).
    ndim : sequence of int, optional
        Accepted numbers of dimensions.
    finite : {'refuse', 'allow'}
        Refuse NaN and infinity (default) or let them through.
    multichannel : bool
        The host says the image is a colour/multichannel image (CellProfiler's
        ``image.multichannel``, an RGB ImagePlus): refused with the fix "split channels".

    Returns
    -------
    ndarray
        `data` as an array (not copied).

    Raises
    ------
    CamcorrError
        Colour image, unsupported dtype (complex, bool, object), wrong number of dimensions,
        non-finite values; the message names `argument`, the expected and the received value.
    """
    arr = np.asarray(data)
    if multichannel:
        raise CamcorrError("is a colour (multichannel) image", argument=argument,
                           expected="a single-channel greyscale image",
                           received=f"an image of shape {arr.shape}",
                           fix="Split the channels first (CellProfiler: ColorToGray with 'Split'; "
                               "Fiji: Image > Color > Split Channels) and give one channel")
    if arr.dtype.kind not in "uif":
        raise CamcorrError("unsupported pixel type", argument=argument,
                           expected="integer or floating-point pixels",
                           received=f"{arr.dtype} data of shape {arr.shape}")
    if ndim is not None and arr.ndim not in tuple(ndim):
        names = {2: "2D (Y, X)", 3: "3D (Z, Y, X)", 4: "4D (T, Z, Y, X)"}
        raise CamcorrError("wrong number of dimensions", argument=argument,
                           expected=" or ".join(names.get(n, f"{n}D") for n in ndim),
                           received=f"{arr.ndim}D data of shape {arr.shape}")
    return _check_values(arr, argument, "the image", finite)


def inspect_tiff(path: PathLike, *, argument: str = "input") -> TiffInfo:
    """Check a TIFF file through the input gate without reading its pixels; return its metadata.

    Raises
    ------
    CamcorrError
        Missing, empty, not a TIFF, colour (RGB/palette), unsupported pixel type, truncated.
    """
    p = _check_readable(path, argument)
    with _open_tiff(p, argument) as (tif, log):
        series = _check_header(tif, log, p, argument)
        return TiffInfo(path=p, shape=tuple(series.shape), dtype=np.dtype(series.dtype),
                        axes=series.axes, imagej=dict(tif.imagej_metadata or {}),
                        resolution=_resolution(tif))


def read_tiff(path: PathLike, *, argument: str = "input",
              finite: str = "refuse") -> Tuple[np.ndarray, TiffInfo]:
    """Read a TIFF file (all pages of its first series) with its metadata, through the input gate.

    Parameters
    ----------
    path : str or path-like
        TIFF file.
    argument : str
        Name used in error messages.
    finite : {'refuse', 'allow'}
        Refuse floating-point data holding NaN or infinity (default), or let it through for a
        caller that excludes such values itself (and reports how many).

    Returns
    -------
    data : ndarray
        Pixels, axes as stored (ImageJ order ``TZCYX`` minus singleton axes).
    info : TiffInfo
        Metadata to pass back to :func:`write_tiff`.

    Raises
    ------
    CamcorrError
        If the file is missing, empty, not a TIFF, a colour (RGB, palette) image, of an
        unsupported pixel type, truncated, or holds non-finite values.
    """
    p = _check_readable(path, argument)
    with _open_tiff(p, argument) as (tif, log):
        series = _check_header(tif, log, p, argument)
        try:
            data = series.asarray()
        except CamcorrError:
            raise
        except MemoryError:
            raise
        except Exception as exc:
            raise CamcorrError("truncated or damaged file", argument=argument,
                               expected="a complete TIFF file",
                               received=f"{p} ({type(exc).__name__}: {exc})",
                               fix="The file was probably not copied or written completely; "
                                   "copy or export it again") from None
        if any("truncat" in m.lower() or "failed to read" in m.lower() for m in log.messages):
            raise CamcorrError("truncated or damaged file", argument=argument,
                               expected="a complete TIFF file", received=str(p))
        info = TiffInfo(path=p, shape=tuple(data.shape), dtype=data.dtype,
                        axes=series.axes, imagej=dict(tif.imagej_metadata or {}),
                        resolution=_resolution(tif))
    _check_values(data, argument, p, finite)
    return data, info


def read_image(path: PathLike, *, argument: str = "input", finite: str = "refuse") -> np.ndarray:
    """Read a TIFF file's pixels only, through the input gate; see :func:`read_tiff`."""
    return read_tiff(path, argument=argument, finite=finite)[0]


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
    shape = inspect_tiff(path, argument=argument).shape
    return int(np.prod(shape[:-2])) if len(shape) > 2 else 1


def iter_planes(paths: Union[PathLike, Sequence[PathLike]], *, chunk: int = 16,
                argument: str = "input", finite: str = "refuse") -> Iterator[np.ndarray]:
    """Yield blocks of 2D planes, (n <= chunk, Y, X), from one or many TIFF files.

    Only one block is held in memory at a time (the file is memory-mapped where it is stored
    uncompressed and contiguously), so statistics over many frames can be streamed.

    Parameters
    ----------
    paths : path or sequence of paths
        TIFF files; all planes of all files are yielded in order.
    chunk : int
        Maximum number of planes per block.
    argument : str
        Name used in error messages.
    finite : {'refuse', 'allow'}
        Refuse blocks holding NaN or infinity (default), or pass them on.

    Raises
    ------
    CamcorrError
        Every file goes through the input gate (:func:`inspect_tiff`) before its first block.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    paths = list(paths)
    for path in paths:  # the gate for every file before the first block is yielded
        inspect_tiff(path, argument=argument)
    for path in paths:
        blocks = _iter_file_planes(Path(path), chunk)
        while True:
            try:
                block = next(blocks)
            except StopIteration:
                break
            except (MemoryError, KeyboardInterrupt):
                raise
            except Exception as exc:  # a damaged page the header check could not see
                raise CamcorrError("truncated or damaged file", argument=argument,
                                   expected="a complete TIFF file",
                                   received=f"{path} ({type(exc).__name__}: {exc})",
                                   fix="The file was probably not copied or written completely; "
                                       "copy or export it again") from None
            yield _check_values(block, argument, path, finite)


def _iter_file_planes(p: Path, chunk: int) -> Iterator[np.ndarray]:
    try:
        arr = tifffile.memmap(p, mode="r")
    except Exception:
        arr = None
    if arr is not None:
        planes = arr.reshape((-1,) + arr.shape[-2:]) if arr.ndim > 2 else arr[None]
        for i in range(0, planes.shape[0], chunk):
            yield np.asarray(planes[i:i + chunk])
        del arr, planes
        return
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


def atomic_write(path: PathLike, writer, *, suffix: str = "", inputs: Iterable[PathLike] = (),
                 argument: str = "output"):
    """Call ``writer(tmp_path)`` then rename the temporary file to `path` atomically.

    Thin wrapper of :func:`atomic_output` for writers that take a path.

    Parameters
    ----------
    path : path-like
        Final file.
    writer : callable
        ``writer(tmp_path)`` writes the whole file to `tmp_path` (a :class:`str`).
    suffix : str
        Extension of the temporary file (``'.png'``, ``'.tif'``) for writers that infer the format
        from the name.
    inputs : iterable of path-like
        Files `path` must not overwrite.
    argument : str
        Name of the output in error messages (``'--output'``).

    Returns
    -------
    pathlib.Path
        `path`.
    """
    with atomic_output(path, suffix=suffix, inputs=inputs, argument=argument) as tmp:
        writer(str(tmp))
    return Path(path)


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


def native_byte_order(array) -> np.ndarray:
    """`array` as a plain ndarray in native byte order: the one conversion before numba kernels,
    which take native arrays only.

    Big-endian data (TIFFs as ImageJ writes them) are converted (a copy); anything else is
    returned as it is (a memory-mapped array as a plain ndarray view).

    Examples
    --------
    >>> big = np.arange(3, dtype=">u2")
    >>> out = native_byte_order(big)
    >>> out.dtype.isnative, out.tolist()
    (True, [0, 1, 2])
    >>> a = np.zeros(3, np.float32)
    >>> native_byte_order(a) is a
    True
    """
    a = np.asarray(array)
    return a if a.dtype.isnative else a.astype(a.dtype.newbyteorder("="))


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


def tiff_write_kwargs(ndim: int, dtype, *, axes: Optional[str] = None,
                      imagej_metadata: Optional[dict] = None, resolution=None,
                      imagej: Optional[bool] = None, compression=None,
                      extra_metadata: Optional[dict] = None) -> dict:
    """Keyword arguments of ``tifffile.imwrite`` for an array of `ndim` dimensions and `dtype`.

    The one place that decides how camcorr stores an output (ImageJ hyperstack when the dtype
    allows it, metadata, resolution, compression); used by :func:`write_tiff` and by the
    streaming writer (:mod:`camcorr.streaming`), so both write the same file.  Parameters as in
    :func:`write_tiff`.
    """
    dtype = np.dtype(dtype)
    if imagej is None:
        imagej = dtype in [np.dtype(t) for t in _IMAGEJ_DTYPES] and ndim <= 6
    kwargs = {}
    if imagej:
        meta = dict(imagej_metadata or {})
        ax = axes.replace("Q", "").upper() if axes else _DEFAULT_AXES.get(ndim)
        if ax and "S" in ax[:-1] and "Z" not in ax:
            ax = ax.replace("S", "Z")  # planar samples of a plain TIFF: planes of a stack
        order = [("TZCYXS".find(a)) for a in (ax or "")]
        if (ax and len(ax) == ndim and set(ax) <= set("TZCYXS") and len(set(ax)) == len(ax)
                and order == sorted(order)):
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
    return kwargs


def write_tiff(path: PathLike, data, *, inputs: Iterable[PathLike] = (), dtype=None,
               axes: Optional[str] = None, imagej_metadata: Optional[dict] = None,
               resolution=None, imagej: Optional[bool] = None, compression=None,
               extra_metadata: Optional[dict] = None, argument: str = "output") -> Path:
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
    argument : str
        Name of the output in error messages (``'--output'``).

    Returns
    -------
    pathlib.Path
        The written file.
    """
    ensure_not_input(path, inputs, argument=argument)
    arr = np.asarray(data)
    if dtype is not None:
        arr = cast_to_dtype(arr, dtype)
    kwargs = tiff_write_kwargs(arr.ndim, arr.dtype, axes=axes, imagej_metadata=imagej_metadata,
                               resolution=resolution, imagej=imagej, compression=compression,
                               extra_metadata=extra_metadata)

    def _writer(tmp):
        tifffile.imwrite(tmp, arr, **kwargs)

    return atomic_write(path, _writer, suffix=".tif", argument=argument)


# ---------------------------------------------------------------------------------------------
# Output safety: temporary files, pre-flight, write errors, signals
# ---------------------------------------------------------------------------------------------
#
# Every file camcorr writes goes through :func:`atomic_output`: a temporary file in the
# destination folder named ``.<name>.camcorr-<pid>-<host>-<random>.part<suffix>`` (hidden, and
# recognisably camcorr's), created with mode 0666 minus the umask, renamed over the final name
# only when complete.  Temporary files of this process are registered, so the SIGTERM/SIGINT
# handler (:func:`install_signal_handlers`) and the exit hook can remove them; temporary files
# left by a killed run (its process gone) are removed by :func:`remove_stale_temps`, which
# :func:`preflight_output` calls for every destination folder.

import atexit
import errno
import re
import secrets
import shutil
import signal
import socket
import threading
import time
from contextlib import contextmanager

_HOST = re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname().split(".")[0])[:32] or "host"
#: Temporary files of camcorr: ``.<name>.camcorr-<pid>-<host>-<random>.part[.ext]``.
TEMP_PATTERN = re.compile(
    r"^\.(?P<name>.+)\.camcorr-(?P<pid>\d+)-(?P<host>[A-Za-z0-9_]+)-[A-Za-z0-9]{8}"
    r"\.part(?:\.[A-Za-z0-9]{1,8})?$")
# Written by earlier camcorr versions (tempfile.mkstemp: 8 random characters, then .part[.ext]); only
# removed when the file has not been touched for STALE_FOREIGN_SECONDS.
_LEGACY_PATTERN = re.compile(r"^\..+\.[a-z0-9_]{8}\.part(?:\.(?:tif|tiff|npz|json|png|txt))?$")
#: A temporary file of another machine (shared file system) is stale once untouched this long.
STALE_FOREIGN_SECONDS = 24 * 3600
#: Free space kept in reserve on top of the estimated output size by :func:`preflight_output`.
FREE_SPACE_MARGIN = 16 * 2**20

_ACTIVE: set = set()
_ACTIVE_LOCK = threading.RLock()  # re-entrant: the signal handler runs in the main thread
_CLEANED_DIRS: set = set()

_DISK_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC), errno.EFBIG}
_NO_PERMISSION = {errno.EACCES, errno.EPERM, errno.EROFS}


def _temp_name(dest: Path, suffix: str) -> str:
    name = dest.name
    if len(name.encode()) > 150:  # keep the temporary name under NAME_MAX (255 bytes)
        name = name.encode()[:150].decode("utf-8", "ignore")
    return f".{name}.camcorr-{os.getpid()}-{_HOST}-{secrets.token_hex(4)}.part{suffix}"


def _register(tmp: Path):
    with _ACTIVE_LOCK:
        _ACTIVE.add(str(tmp))


def _unregister(tmp: Path):
    with _ACTIVE_LOCK:
        _ACTIVE.discard(str(tmp))


def remove_active_temps() -> int:
    """Remove the temporary files this process is writing; return how many were removed.

    Called by the signal handler and at interpreter exit; safe to call from a signal handler
    (only ``os.unlink``).
    """
    with _ACTIVE_LOCK:
        paths = list(_ACTIVE)
        _ACTIVE.clear()
    n = 0
    for p in paths:
        try:
            os.unlink(p)
            n += 1
        except OSError:
            pass
    return n


atexit.register(remove_active_temps)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return True
    return True


def is_stale_temp(path: PathLike, *, now: Optional[float] = None) -> bool:
    """True if `path` is a camcorr temporary file whose writer is gone.

    A temporary file of this machine is stale when the process that wrote it no longer exists;
    one of another machine (or of an older camcorr) when it has not been modified for
    :data:`STALE_FOREIGN_SECONDS`.  Files not matching camcorr's own pattern are never stale.
    """
    p = Path(path)
    m = TEMP_PATTERN.match(p.name)
    if m is None and not _LEGACY_PATTERN.match(p.name):
        return False
    if str(p) in _ACTIVE:
        return False
    if m is not None and m.group("host") == _HOST:
        pid = int(m.group("pid"))
        return pid != os.getpid() and not _pid_alive(pid)
    try:
        age = (now or time.time()) - p.stat().st_mtime
    except OSError:
        return False
    return age > STALE_FOREIGN_SECONDS


def remove_stale_temps(folder: PathLike) -> list:
    """Remove camcorr temporary files left in `folder` by killed runs; return their paths.

    Only regular files matching camcorr's temporary-name pattern (see :func:`is_stale_temp`)
    are removed; nothing else in the folder is touched.
    """
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for e in entries:
        if ".part" not in e.name or not e.name.startswith("."):
            continue
        try:
            if not e.is_file(follow_symlinks=False):
                continue
        except OSError:
            continue
        if is_stale_temp(e.path):
            try:
                os.unlink(e.path)
                removed.append(Path(e.path))
            except OSError:
                pass
    return removed


def _fmt_bytes(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024.0
    return f"{n:.1f} TiB"  # pragma: no cover


def _existing_ancestor(p: Path) -> Path:
    """The path itself or its nearest existing ancestor (a file or a folder)."""
    q = p
    while True:
        try:
            os.stat(q)
            return q
        except FileNotFoundError:
            pass
        except NotADirectoryError:
            pass
        except OSError:
            return q
        if q.parent == q:
            return q
        q = q.parent


def _probe_writable(folder: Path) -> Optional[OSError]:
    """Create and remove a tiny file in `folder`; return the error, if any (root-proof)."""
    probe = folder / _temp_name(Path("probe"), "")
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        return exc
    os.close(fd)
    try:
        os.unlink(probe)
    except OSError:
        pass
    return None


def explain_write_error(exc: BaseException, dest: PathLike, *, argument: str = "output",
                        free: Optional[int] = None) -> Optional[CamcorrError]:
    """Turn an error while writing `dest` into a :class:`CamcorrError`, or ``None`` if unknown.

    Disk full (ENOSPC, EDQUOT, EFBIG, or a short write that some libraries report without an
    errno), permission denied and read-only file systems are recognised.  The message names the
    final file, never the temporary one.
    """
    if not isinstance(exc, OSError):
        return None
    dest = Path(dest)
    folder = dest.parent
    code = exc.errno
    text = str(exc)
    short_write = code is None and re.search(r"requested and \d+ written|No space", text)
    if code in _DISK_FULL or short_write:
        if free is None:
            try:
                free = shutil.disk_usage(_existing_ancestor(folder)).free
            except OSError:
                free = None
        return CamcorrError(
            "disk full while writing the output; the partial file was removed", argument=argument,
            expected="enough free space in the destination",
            received=f"{dest} ({_fmt_bytes(free)} free)" if free is not None else str(dest),
            fix="Free some space or choose another destination, then run again")
    if code in _NO_PERMISSION:
        what = "read-only file system" if code == errno.EROFS else "permission denied"
        return CamcorrError(
            f"cannot write the output ({what})", argument=argument,
            expected="a destination folder you can write to",
            received=str(dest),
            fix="Choose another output folder, or ask the owner of the folder for write access")
    if code in (errno.ENOTDIR, errno.EEXIST, errno.EISDIR, errno.ENAMETOOLONG, errno.ENOENT):
        return CamcorrError(
            f"cannot write the output ({os.strerror(code)})", argument=argument,
            expected="a file path whose folders are folders", received=str(dest),
            fix="Check the output path")
    if code is not None:
        return CamcorrError(
            f"cannot write the output ({os.strerror(code)})", argument=argument,
            expected="a writable destination", received=str(dest),
            fix="Check the destination and the file system, then run again")
    return None


def preflight_output(path: PathLike, *, argument: str = "output",
                     inputs: Iterable[PathLike] = (), expected_bytes: int = 0,
                     folder: bool = False, clean_stale: bool = True) -> Path:
    """Check before any computation that `path` can be written; return it as a Path.

    Parameters
    ----------
    path : path-like
        Output file (or output folder with ``folder=True``).
    argument : str
        Name of the output option in messages (``'--output'``).
    inputs : iterable of path-like
        Input images and parameter files the output must not overwrite.
    expected_bytes : int
        Estimated size of what will be written there; the destination file system must have
        that much free space plus :data:`FREE_SPACE_MARGIN`.
    folder : bool
        `path` is a folder that will hold the outputs.
    clean_stale : bool
        Remove camcorr temporary files of killed runs from the destination folder.

    Raises
    ------
    CamcorrError
        If the output is an input, is a folder (file expected) or a file (folder expected), lies
        under a regular file, cannot be created (permissions, read-only file system), or the
        file system lacks the space.  Nothing is created on disk.
    """
    if path is None or str(path).strip() == "":
        raise CamcorrError("empty output path", argument=argument, expected="a path",
                           received=repr(path))
    p = Path(path)
    if not folder:
        ensure_not_input(p, inputs, argument=argument)
        if p.is_dir():
            raise CamcorrError("is a folder, not a file", argument=argument,
                               expected="an output file name", received=str(p),
                               fix=f"Give a file name inside it, e.g. {p / 'result.tif'}")
        dest_dir = p.parent
    else:
        if p.exists() and not p.is_dir():
            raise CamcorrError("is a file, not a folder", argument=argument,
                               expected="an output folder", received=str(p))
        dest_dir = p
    anc = _existing_ancestor(dest_dir)
    if not anc.is_dir():
        raise CamcorrError("lies under a file, not a folder", argument=argument,
                           expected="a path whose parent folders are folders",
                           received=f"{p} ({anc} is a file)",
                           fix="Choose another output path")
    err = _probe_writable(anc)
    if err is not None:
        what = ("read-only file system" if err.errno == errno.EROFS else
                "permission denied" if err.errno in (errno.EACCES, errno.EPERM) else
                os.strerror(err.errno or 0))
        raise CamcorrError(f"destination cannot be written ({what})", argument=argument,
                           expected="a folder you can write to", received=str(anc),
                           fix="Choose another output folder, or ask its owner for write access")
    if clean_stale and anc == dest_dir and str(anc.absolute()) not in _CLEANED_DIRS:
        _CLEANED_DIRS.add(str(anc.absolute()))
        removed = remove_stale_temps(anc)
        if removed:
            import sys
            print(f"camcorr: removed {len(removed)} temporary file(s) left by an interrupted run "
                  f"in {anc}", file=sys.stderr)
    if expected_bytes:
        try:
            free = shutil.disk_usage(anc).free
        except OSError:
            free = None
        if free is not None and free < int(expected_bytes) + FREE_SPACE_MARGIN:
            raise CamcorrError("not enough free space for the output", argument=argument,
                               expected=f"about {_fmt_bytes(expected_bytes + FREE_SPACE_MARGIN)} "
                                        "free",
                               received=f"{_fmt_bytes(free)} free in {anc}",
                               fix="Free some space or choose another destination")
    return p


@contextmanager
def atomic_output(path: PathLike, *, suffix: Optional[str] = None,
                  inputs: Iterable[PathLike] = (), argument: str = "output") -> Iterator[Path]:
    """Context manager: write to a temporary file beside `path`, rename it on success.

    ::

        with atomic_output(out, suffix=".tif", inputs=[src], argument="--output") as tmp:
            with tifffile.TiffWriter(tmp) as tw:
                for block in blocks:
                    tw.write(block, contiguous=True)

    The temporary file (``.<name>.camcorr-<pid>-<host>-<random>.part<suffix>``) is created in
    the destination folder (so the final rename is atomic) with mode ``0666 & ~umask`` (group
    members of a shared folder can read results as the umask allows); it is registered so
    SIGTERM/SIGINT (:func:`install_signal_handlers`) and interpreter exit remove it.  On any
    exception in the block it is removed and OS errors about writing (disk full, permission,
    read-only file system) are re-raised as one :class:`CamcorrError` naming the final file.

    Parameters
    ----------
    path : path-like
        Final file; its folder is created if needed.
    suffix : str, optional
        Extension of the temporary file; default: that of `path` (``'.tif'``), so libraries
        that pick the format from the name do the right thing.
    inputs : iterable of path-like
        Files `path` must never overwrite.
    argument : str
        Name of the output in error messages.

    Yields
    ------
    pathlib.Path
        The temporary file (already created, empty); write it completely (open it with ``'wb'``).

    Raises
    ------
    CamcorrError
        Output is an input; cannot be created or written (with the reason).
    """
    dest = Path(path)
    ensure_not_input(dest, inputs, argument=argument)
    if suffix is None:
        suffix = dest.suffix if re.fullmatch(r"\.[A-Za-z0-9]{1,8}", dest.suffix or "") else ""
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        err = explain_write_error(exc, dest, argument=argument)
        if err is None:
            raise
        raise err from None
    if dest.is_dir():
        raise CamcorrError("is a folder, not a file", argument=argument,
                           expected="an output file name", received=str(dest))
    folder = str(dest.parent.absolute())
    if folder not in _CLEANED_DIRS:  # once per folder and process, whatever the front end
        _CLEANED_DIRS.add(folder)
        remove_stale_temps(folder)
    while True:
        tmp = dest.parent / _temp_name(dest, suffix)
        # registered before it exists: a signal at any moment finds it (or finds nothing yet)
        _register(tmp)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # umask applies
            break
        except FileExistsError:
            _unregister(tmp)
            continue
        except BaseException as exc:
            _unregister(tmp)
            err = explain_write_error(exc, dest, argument=argument) \
                if isinstance(exc, OSError) else None
            if err is None:
                raise
            raise err from None
    try:
        os.close(fd)
        yield tmp
        os.replace(tmp, dest)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        err = explain_write_error(exc, dest, argument=argument) if isinstance(exc, OSError) \
            and _concerns(exc, tmp, dest) else None
        if err is not None:
            raise err from None
        raise
    finally:
        _unregister(tmp)


def _concerns(exc: OSError, tmp: Path, dest: Path) -> bool:
    """Whether an OSError raised inside :func:`atomic_output` is about writing the output."""
    names = {str(tmp), str(dest), os.fspath(tmp), os.fspath(dest)}
    if exc.filename is not None:
        return str(exc.filename) in names or str(exc.filename2) in names
    # no file name: writes through an open file object (disk full, quota, EIO, short writes)
    return exc.errno in _DISK_FULL or exc.errno in _NO_PERMISSION or exc.errno is None


class Interrupted(KeyboardInterrupt):
    """Raised in the main thread when SIGTERM or SIGINT arrives (after temporary files are removed).

    Subclasses :class:`KeyboardInterrupt`, so code that already cleans up on Ctrl-C does the same
    for a scheduler's SIGTERM.  ``exit_status`` is the conventional ``128 + signal number``
    (143 for SIGTERM, 130 for SIGINT).
    """

    def __init__(self, signum: int):
        self.signum = int(signum)
        self.exit_status = 128 + self.signum
        try:
            name = signal.Signals(signum).name
        except ValueError:  # pragma: no cover
            name = f"signal {signum}"
        self.signal_name = name
        super().__init__(name)


def _on_signal(signum, frame):
    remove_active_temps()
    raise Interrupted(signum)


def install_signal_handlers(signals=(signal.SIGTERM, signal.SIGINT)) -> bool:
    """Make SIGTERM and SIGINT remove camcorr's temporary files and raise :class:`Interrupted`.

    Only installed from the main thread and only over the default handlers (a host such as
    CellProfiler or Fiji that set its own keeps it).  Returns whether anything was installed.
    """
    if threading.current_thread() is not threading.main_thread():
        return False
    done = False
    for s in signals:
        try:
            current = signal.getsignal(s)
        except (ValueError, OSError):  # pragma: no cover
            continue
        if current in (signal.SIG_DFL, signal.default_int_handler, None) or current is _on_signal:
            signal.signal(s, _on_signal)
            done = True
    return done
