"""numpy <-> ImagePlus for plain ImageJ 1.x through JPype (also works inside a pyimagej session).

Axes follow camcorr: (Y, X) for one plane, (Z, Y, X) for a stack (an ImagePlus with Z slices; pass
``axes='TYX'`` or ``'CYX'`` to make them frames or channels).  Pixel types map one to one:
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

__all__ = ["numpy_to_imageplus", "imageplus_to_numpy", "imageplus_calibration", "start_ij1",
           "find_ij_jar", "SUPPORTED_DTYPES"]

SUPPORTED_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32))
_BITDEPTH = {np.dtype(np.uint8): 8, np.dtype(np.uint16): 16, np.dtype(np.float32): 32}


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


def numpy_to_imageplus(array, title: str = "image", *, axes: Optional[str] = None,
                       calibration: Optional[Dict] = None):
    """An ``ij.ImagePlus`` holding a copy of `array`.

    Parameters
    ----------
    array : ndarray, uint8, uint16 or float32, shape (Y, X) or (N, Y, X)
    title : str
    axes : {'YX', 'ZYX', 'TYX', 'CYX'}, optional
        Meaning of the first axis of a 3D array (default ``'ZYX'``).
    calibration : dict, optional
        ``pixel_width``, ``pixel_height``, ``pixel_depth`` (floats) and ``unit`` (str).

    Returns
    -------
    ij.ImagePlus

    Raises
    ------
    CamcorrError
        Unsupported dtype or number of dimensions.
    """
    arr = np.asarray(array)
    if arr.dtype not in SUPPORTED_DTYPES:
        raise CamcorrError("pixel type not supported by ImageJ", argument="array",
                           expected="uint8, uint16 or float32", received=str(arr.dtype),
                           fix="Convert first, e.g. array.astype(np.float32)")
    if arr.ndim not in (2, 3):
        raise CamcorrError("wrong number of dimensions", argument="array",
                           expected="(Y, X) or (Z, Y, X)", received=f"shape {arr.shape}")
    axes = axes or ("YX" if arr.ndim == 2 else "ZYX")
    if len(axes) != arr.ndim or axes[-2:] != "YX" or (arr.ndim == 3 and axes[0] not in "ZTC"):
        raise CamcorrError("axes do not match the array", argument="axes",
                           expected="'YX' for 2D, 'ZYX', 'TYX' or 'CYX' for 3D",
                           received=f"{axes!r} for shape {arr.shape}")
    import jpype.imports  # noqa: F401  (Java packages importable; pyimagej sessions too)
    from ij import ImagePlus, ImageStack
    from ij.process import ByteProcessor, FloatProcessor, ShortProcessor

    height, width = arr.shape[-2:]
    make = {8: lambda a: ByteProcessor(width, height, a),
            16: lambda a: ShortProcessor(width, height, a, None),
            32: lambda a: FloatProcessor(width, height, a)}[_BITDEPTH[arr.dtype]]
    planes = arr.reshape((-1, height, width))
    stack = ImageStack(width, height)
    for plane in planes:
        stack.addSlice("", make(_java_array(plane)))
    imp = ImagePlus(str(title), stack)
    n = planes.shape[0]
    if arr.ndim == 3:
        c, z, t = {"Z": (1, n, 1), "T": (1, 1, n), "C": (n, 1, 1)}[axes[0]]
        imp.setDimensions(c, z, t)
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


def imageplus_to_numpy(imp) -> np.ndarray:
    """The pixels of an ``ij.ImagePlus`` as a new array, (Y, X) or (N, Y, X).

    N runs over the ImageJ stack (channels fastest, then slices, then frames: ImageJ's order).

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
    return out[0] if n == 1 else out


def imageplus_calibration(imp) -> Dict:
    """``{'pixel_width', 'pixel_height', 'pixel_depth', 'unit'}`` of an ``ij.ImagePlus``."""
    cal = imp.getCalibration()
    return {"pixel_width": float(cal.pixelWidth), "pixel_height": float(cal.pixelHeight),
            "pixel_depth": float(cal.pixelDepth), "unit": str(cal.getUnit())}
