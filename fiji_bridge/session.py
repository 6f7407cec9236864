"""Fiji driven from Python with pyimagej, offline, from a local Fiji.app.

The settings that make pyimagej 1.8 start without a network (found by trying
pyimagej 1.8 against the trimmed offline Fiji; see also the pyimagej documentation,
pyimagej.readthedocs.io):
``scyjava.config.set_java_constraints(fetch="auto")`` (the default downloads a JRE; ``"never"``
crashes pyimagej 1.8.0), ``scyjava.config.endpoints.clear()`` after ``import imagej`` (or imglyb
asks Maven), and ``jpype.config.destroy_jvm = False`` with ``os._exit`` at the end of the process
(ImageJ 1.x thread pools keep the exit waiting).  One JVM per process.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from camcorr.errors import CamcorrError

__all__ = ["start_fiji", "run_operation", "to_numpy"]


def start_fiji(fiji_dir=None, *, mode: str = "headless", add_legacy: bool = True):
    """Start ImageJ2/Fiji from a local Fiji.app with pyimagej, without network access.

    Parameters
    ----------
    fiji_dir : path-like, optional
        The Fiji.app folder (default: ``$FIJI_DIR``).
    mode : {'headless', 'interactive'}
        pyimagej mode (``'interactive'`` needs a display).
    add_legacy : bool
        Enable the ImageJ 1.x layer (ImagePlus, macros, ``IJ.run``).

    Returns
    -------
    imagej.ImageJ gateway (``ij``).

    Raises
    ------
    CamcorrError
        The folder is not a Fiji installation, or pyimagej is not installed.
    """
    from .install import detect_installation

    fiji_dir = fiji_dir or os.environ.get("FIJI_DIR")
    if not fiji_dir:
        raise CamcorrError("no Fiji folder", argument="fiji_dir", expected="the Fiji.app folder",
                           received="nothing", fix="Pass it or set FIJI_DIR")
    root = Path(fiji_dir).expanduser().absolute()
    if detect_installation(root) != "fiji":
        raise CamcorrError("not a Fiji installation", argument="fiji_dir",
                           expected="a Fiji.app folder with jars/", received=str(root))
    try:
        import jpype
        import scyjava
    except ImportError as exc:
        raise CamcorrError("pyimagej is not installed", argument="fiji_dir",
                           expected="pip install camcorr[fiji]", received=str(exc)) from None
    jpype.config.destroy_jvm = False
    scyjava.config.set_java_constraints(fetch="auto")
    import imagej

    scyjava.config.endpoints.clear()
    # Tell ImageJ where its application folder is (scripts/, plugins/), rather than letting it
    # derive it from the location of its jars (which follows symbolic links).
    scyjava.config.add_option(f"-Dimagej.dir={root}")
    scyjava.config.add_option(f"-Dscijava.app.directory={root}")
    if add_legacy:
        scyjava.config.add_option("-Dimagej.legacy.enabled=true")
    return imagej.init(str(root), mode=mode, add_legacy=add_legacy)


def to_numpy(image, ij=None, *, keep_axes: bool = False):
    """Pixels and calibration of an ImagePlus, Dataset/ImgPlus or array: ``(array, calibration)``.

    With `keep_axes`, ``(array, calibration, axes)``: the array keeps the hyperstack's axes
    (``'TZCYX'`` minus size-1 axes, e.g. ``'ZCYX'``; see
    :func:`fiji_bridge.convert.imageplus_axes`); axes is None for a numpy array.
    """
    import numpy as np

    from .convert import imageplus_calibration, imageplus_to_numpy

    if isinstance(image, np.ndarray):
        return (image, None, None) if keep_axes else (image, None)
    cls = str(image.getClass().getName()) if hasattr(image, "getClass") else ""
    if not (cls == "ij.ImagePlus" or hasattr(image, "getProcessor")):
        if ij is None:
            raise CamcorrError("need the ImageJ gateway to convert this image", argument="image",
                               expected="an ImagePlus, or pass ij=", received=cls)
        image = ij.py.to_imageplus(image)
    if keep_axes:
        array, axes = imageplus_to_numpy(image, keep_axes=True)
        return array, imageplus_calibration(image), axes
    return imageplus_to_numpy(image), imageplus_calibration(image)


def run_operation(name: str, image=None, *, ij=None, show: bool = False, title: Optional[str] = None,
                  **values):
    """Run a camcorr operation on an ImageJ image and return the result as an ImagePlus.

    Parameters
    ----------
    name : str
        Operation name, e.g. ``'median'``.
    image : ij.ImagePlus, net.imagej.Dataset or ndarray, optional
        Input (Dataset/ImgPlus need `ij`); ``None`` for operations without an image.
    ij : imagej gateway, optional
    show : bool
        Show the result in Fiji.
    title : str, optional
        Result title (default: ``'<input title without .tif> (<operation title>)'``, as the Fiji
        commands name their results).
    **values
        Parameters of the operation by name; the rest take their defaults.

    Returns
    -------
    ij.ImagePlus, list of ij.ImagePlus, dict or None
        With the input's calibration (``frc``: the numbers as a dict; ``flatfield-estimate``:
        the flat-field, with the profiles written to ``output=`` when given).  Hyperstack axes
        are kept: a (Z, C, Y, X) input reaches
        the operation as a ``'ZCYX'`` TIFF and its result comes back as a hyperstack.
    """
    from camcorr.operations import get_operation

    from .convert import numpy_to_imageplus
    from .engine import run_on_array

    op = get_operation(name)
    array, calibration, axes = ((None, None, None) if image is None
                                else to_numpy(image, ij, keep_axes=True))
    result = run_on_array(op, array, values, calibration=calibration, axes=axes,
                          return_axes=True)
    if result is None or isinstance(result, dict):
        return result  # no image output; the FRC numbers as a dict
    import re

    # as the Fiji commands name their results: "<title without .tif> (<command>)"
    base = str(image.getTitle()) if hasattr(image, "getTitle") else "image"
    base = re.sub(r"\.tiff?$", "", base, flags=re.IGNORECASE)
    results = result if isinstance(result, list) else [result]
    imps = []
    for i, (arr, ax) in enumerate(results):
        t = title or f"{base} ({op.title})" + (f" {i + 1}" if len(results) > 1 else "")
        imp = numpy_to_imageplus(arr, t, axes=_imagej_axes(ax, arr.ndim), calibration=calibration)
        if show:
            imp.show()
        imps.append(imp)
    return imps[0] if len(imps) == 1 else imps


def _imagej_axes(axes: str, ndim: int) -> Optional[str]:
    """`axes` read from an output TIFF if ImageJ can show them, else None (the default: 'YX' or
    'ZYX'; e.g. tifffile's 'QYX' for a plain multi-page TIFF)."""
    ax = (axes or "").upper()
    if len(ax) == ndim and ax.endswith("YX") and set(ax[:-2]) <= set("TZC") and len(set(ax)) == ndim:
        return ax
    return None
