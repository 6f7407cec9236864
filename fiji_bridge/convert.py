"""numpy <-> ImagePlus for plain ImageJ 1.x through JPype (also works inside a pyimagej session).

Axes follow camcorr: (Y, X) for one plane, (Z, Y, X) for a stack (an ImagePlus with Z slices; pass
``axes='TYX'`` or ``'CYX'`` to make them frames or channels).  Hyperstacks keep their axes with
ImageJ's (and tifffile's) axis letters ``'TZCYX'`` minus the size-1 axes, e.g. ``'ZCYX'`` for a
2-channel Z stack: :func:`imageplus_axes`, ``imageplus_to_numpy(imp, keep_axes=True)`` and
``numpy_to_imageplus(array, axes='ZCYX')``.  Pixel types map one to one:
uint8 <-> 8-bit (``ByteProcessor``), uint16 <-> 16-bit (``ShortProcessor``), float32 <-> 32-bit
(``FloatProcessor``); other dtypes raise :class:`~camcorr.errors.CamcorrError` rather than being
converted silently.  The spatial calibration (pixel width/height/depth and unit) travels as a dict
``{'pixel_width', 'pixel_height', 'pixel_depth', 'unit'}``.

Java is imported only inside the functions: importing this module never starts a JVM.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np

from camcorr.errors import CamcorrError

__all__ = ["numpy_to_imageplus", "imageplus_to_numpy", "imageplus_axes", "imageplus_calibration",
           "start_ij1", "find_ij_jar", "SUPPORTED_DTYPES", "IMAGEJ_AXES"]

SUPPORTED_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32))
_BITDEPTH = {np.dtype(np.uint8): 8, np.dtype(np.uint16): 16, np.dtype(np.float32): 32}
#: ImageJ's hyperstack axes, slowest first (the stack runs channels fastest, then slices, frames).
IMAGEJ_AXES = "TZCYX"


def find_ij_jar() -> Optional[str]:
    """``$IJ_JAR`` or Debian's ``/usr/share/java/ij.jar`` (``libij-java``), if present."""
    for cand in (os.environ.get("IJ_JAR"), "/usr/share/java/ij.jar"):
        if cand and Path(cand).is_file():
            return cand
    return None


def start_ij1(ij_jar: Optional[str] = None, *, plugins_dir=None, gui: bool = False):
    """Start a JVM with ImageJ 1.x (if none runs yet) and return the ``ij.IJ`` class.

    Parameters
    ----------
    ij_jar : str, optional
        Path of ``ij.jar`` (default: :func:`find_ij_jar`).
    plugins_dir : path-like, optional
        ImageJ folder whose ``plugins/`` ImageJ should read (sets the ``plugins.dir`` property).
    gui : bool
        Create the ImageJ instance (menus; no window is shown).  Needs a display (Xvfb).

    Notes
    -----
    One JVM per process: JPype cannot restart it.  End such a process with ``os._exit`` (ImageJ's
    threads keep a normal exit waiting).
    """
    import jpype
    import jpype.imports  # noqa: F401  (enables `from ij import ...`)

    if not jpype.isJVMStarted():
        jar = ij_jar or find_ij_jar()
        if jar is None:
            raise CamcorrError("ImageJ 1.x not found", argument="ij_jar",
                               expected="the path of ij.jar", received="nothing",
                               fix="Install libij-java (Debian/Ubuntu) or set IJ_JAR")
        jpype.startJVM(classpath=[str(jar)], convertStrings=False)
    from java.lang import System

    if plugins_dir is not None:
        System.setProperty("plugins.dir", str(Path(plugins_dir).resolve()))
    from ij import IJ, ImageJ

    if gui and IJ.getInstance() is None:
        ImageJ(ImageJ.NO_SHOW)
    return IJ


def _java_array(plane: np.ndarray):
    from jpype import JArray, JByte, JFloat, JShort

    flat = np.ascontiguousarray(plane).ravel()
    if flat.dtype == np.uint8:
        return JArray(JByte)(flat.view(np.int8))
    if flat.dtype == np.uint16:
        return JArray(JShort)(flat.view(np.int16))
    return JArray(JFloat)(flat)


def _check_axes(axes: Optional[str], shape) -> str:
    """Validated axes of an array of `shape` for ImageJ (default: ``'YX'``/``'ZYX'``)."""
    ndim = len(shape)
    if axes is None:
        if ndim in (2, 3):
            return "YX" if ndim == 2 else "ZYX"
        raise CamcorrError("wrong number of dimensions", argument="array",
                           expected="(Y, X) or (Z, Y, X); 4D/5D hyperstacks need axes, "
                                    "e.g. axes='ZCYX'", received=f"shape {shape}",
                           fix="Pass axes= (letters of 'TZCYX')")
    ax = str(axes).upper()
    if (len(ax) != ndim or ax[-2:] != "YX" or len(set(ax)) != len(ax)
            or not set(ax[:-2]) <= set("TZC")):
        raise CamcorrError("axes do not match the array", argument="axes",
                           expected="'YX' for 2D, then one letter each of T, Z, C before 'YX' "
                                    "(e.g. 'ZYX', 'CYX', 'ZCYX', 'TZCYX')",
                           received=f"{axes!r} for shape {shape}")
    return ax


def numpy_to_imageplus(array, title: str = "image", *, axes: Optional[str] = None,
                       calibration: Optional[Dict] = None):
    """An ``ij.ImagePlus`` holding a copy of `array`.

    Parameters
    ----------
    array : ndarray, uint8, uint16 or float32, 2 to 5 dimensions
        (Y, X), (N, Y, X), or a hyperstack such as (Z, C, Y, X) or (T, Z, C, Y, X).
    title : str
    axes : str, optional
        Axis letters of `array`: ``'YX'``, or some of ``T``, ``Z``, ``C`` (each once, any order)
        followed by ``'YX'``, e.g. ``'ZYX'`` (default for 3D), ``'TYX'``, ``'CYX'``, ``'ZCYX'``,
        ``'TZCYX'``.  Required for 4D and 5D arrays.
    calibration : dict, optional
        ``pixel_width``, ``pixel_height``, ``pixel_depth`` (floats) and ``unit`` (str).

    Returns
    -------
    ij.ImagePlus
        With dimensions (channels, slices, frames) set; a 4D/5D array gives a hyperstack (planes
        in ImageJ order: channels fastest, then slices, then frames).

    Raises
    ------
    CamcorrError
        Unsupported dtype or number of dimensions, or axes that do not fit the array.
    """
    arr = np.asarray(array)
    if arr.dtype not in SUPPORTED_DTYPES:
        raise CamcorrError("pixel type not supported by ImageJ", argument="array",
                           expected="uint8, uint16 or float32", received=str(arr.dtype),
                           fix="Convert first, e.g. array.astype(np.float32)")
    if arr.ndim not in (2, 3, 4, 5):
        raise CamcorrError("wrong number of dimensions", argument="array",
                           expected="(Y, X), (Z, Y, X) or a 4D/5D hyperstack with axes",
                           received=f"shape {arr.shape}")
    axes = _check_axes(axes, arr.shape)
    # to ImageJ's order (T, Z, C, Y, X), missing axes of size 1
    present = [a for a in IMAGEJ_AXES[:3] if a in axes]
    tzc = arr.transpose([axes.index(a) for a in present] + [arr.ndim - 2, arr.ndim - 1])
    size = {a: tzc.shape[i] for i, a in enumerate(present)}
    c, z, t = size.get("C", 1), size.get("Z", 1), size.get("T", 1)
    import jpype.imports  # noqa: F401  (Java packages importable; pyimagej sessions too)
    from ij import ImagePlus, ImageStack
    from ij.process import ByteProcessor, FloatProcessor, ShortProcessor

    height, width = arr.shape[-2:]
    make = {8: lambda a: ByteProcessor(width, height, a),
            16: lambda a: ShortProcessor(width, height, a, None),
            32: lambda a: FloatProcessor(width, height, a)}[_BITDEPTH[arr.dtype]]
    planes = tzc.reshape((-1, height, width))
    stack = ImageStack(width, height)
    for plane in planes:
        stack.addSlice("", make(_java_array(plane)))
    imp = ImagePlus(str(title), stack)
    if arr.ndim >= 3:
        imp.setDimensions(c, z, t)
    if arr.ndim >= 4:
        imp.setOpenAsHyperStack(True)
    imp.resetDisplayRange()  # display range = data range, as File > Open does
    if calibration:
        cal = imp.getCalibration()
        if calibration.get("pixel_width") is not None:
            cal.pixelWidth = float(calibration["pixel_width"])
        if calibration.get("pixel_height") is not None:
            cal.pixelHeight = float(calibration["pixel_height"])
        if calibration.get("pixel_depth") is not None:
            cal.pixelDepth = float(calibration["pixel_depth"])
        if calibration.get("unit"):
            cal.setUnit(str(calibration["unit"]))
    return imp


def imageplus_axes(imp) -> str:
    """Axis letters of an ``ij.ImagePlus``: ``'TZCYX'`` without its size-1 axes.

    ImageJ stores the planes channels fastest, then slices, then frames, so the flat stack
    reshapes to (T, Z, C, Y, X); e.g. a 2-channel Z stack gives ``'ZCYX'``, a plane ``'YX'``.
    A stack whose dimensions do not multiply to its size counts as a Z stack (``'ZYX'``).
    """
    n = int(imp.getStackSize())
    dims = {"T": int(imp.getNFrames()), "Z": int(imp.getNSlices()), "C": int(imp.getNChannels())}
    if dims["T"] * dims["Z"] * dims["C"] != n:
        return "YX" if n == 1 else "ZYX"
    return "".join(a for a in IMAGEJ_AXES[:3] if dims[a] > 1) + "YX"


def imageplus_to_numpy(imp, keep_axes: bool = False):
    """The pixels of an ``ij.ImagePlus`` as a new array.

    Parameters
    ----------
    imp : ij.ImagePlus
    keep_axes : bool
        False (default): (Y, X) or (N, Y, X), N running over the ImageJ stack (channels fastest,
        then slices, then frames: ImageJ's order).  True: return ``(array, axes)`` with the array
        shaped by :func:`imageplus_axes`, e.g. (Z, C, Y, X) and ``'ZCYX'``.

    Returns
    -------
    ndarray, or (ndarray, str) when `keep_axes`

    Raises
    ------
    CamcorrError
        No image, or an RGB/colour image (``bitDepth() == 24``).
    """
    if imp is None:
        raise CamcorrError("no image", argument="image", expected="an open image",
                           received="nothing", fix="Open an image first")
    bits = int(imp.getBitDepth())
    if bits not in (8, 16, 32):
        raise CamcorrError("wrong image type", argument=str(imp.getTitle()),
                           expected="an 8-, 16- or 32-bit grayscale image",
                           received=f"{bits}-bit RGB/colour",
                           fix="Convert it with Image > Type")
    dtype = {8: np.uint8, 16: np.uint16, 32: np.float32}[bits]
    width, height = int(imp.getWidth()), int(imp.getHeight())
    stack = imp.getStack()
    n = int(stack.getSize())
    out = np.empty((n, height, width), dtype=dtype)
    for i in range(n):
        pixels = np.asarray(stack.getPixels(i + 1))
        out[i] = pixels.view(dtype).reshape(height, width)
    if not keep_axes:
        return out[0] if n == 1 else out
    axes = imageplus_axes(imp)
    if axes == "ZYX":
        return out, axes
    sizes = {"T": int(imp.getNFrames()), "Z": int(imp.getNSlices()), "C": int(imp.getNChannels())}
    return out.reshape(tuple(sizes[a] for a in axes[:-2]) + (height, width)), axes


def imageplus_calibration(imp) -> Dict:
    """``{'pixel_width', 'pixel_height', 'pixel_depth', 'unit'}`` of an ``ij.ImagePlus``."""
    cal = imp.getCalibration()
    return {"pixel_width": float(cal.pixelWidth), "pixel_height": float(cal.pixelHeight),
            "pixel_depth": float(cal.pixelDepth), "unit": str(cal.getUnit())}
