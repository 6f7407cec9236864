"""Flash4.0 carryover parameter files (LLSpy-compatible) and camera-ROI alignment.

File format (kept compatible with LLSpy both ways; facts read from LLSpy 0.5.1's
``camera.CameraParameters``, BSD-3, github.com/tlambert03/LLSpy):

* a float32 ImageJ TIFF with 4 planes ``[A, B, offset, noise]``, each of shape
  (Right - Left + 1, Bot - Top + 1) of the calibration ROI (the camera is rotated by 90 degrees);
* named ``FlashParam_sn{serial}_roi{L}-{T}-{R}-{B}_date{YYYYMMDD}.tif``: the ROI lives only in the
  name (LLSpy parses ``roi(\\d+)-(\\d+)-(\\d+)-(\\d+)`` from it).

camcorr writes exactly those 4 planes (LLSpy reads the first 3) and puts its own metadata (serial,
ROI, date, fit summary) in the ImageJ ``Info`` string, which LLSpy ignores.  Files with only
3 planes (no noise map) and files with extra planes are read too.

ROI alignment
-------------
Image row ``r`` of an ROI (L, T, R, B) sees sensor column ``R - r`` and image column ``c`` sees
sensor row ``T + c`` (LLSpy's empirical ``get_subroi`` rule: rows counted from the calibration's
Right edge, columns from its Top edge).  A data ROI inside a calibration ROI therefore maps to the
calibration rows ``[Rc - Rd, Rc - Ld]`` and columns ``[Td - Tc, Bd - Tc]``.  LLSpy computes the same
window with negative slice ends, which become empty when the data shares the calibration's Left or
Bottom edge (or equals it); here every placement works.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from datetime import date as _date
from pathlib import Path
from typing import Callable, Optional, Sequence, Tuple, Union

import numpy as np
import tifffile

from ..errors import CamcorrError, check_finite
from ..io import write_tiff
from .settings import LLSSettings, roi_shape

__all__ = ["FlashParams", "read_params", "write_params", "crop_params", "param_filename",
           "parse_param_filename", "roi_window", "as_roi", "prepare_params", "PLANES"]

PLANES = ("A", "B", "offset", "noise")
PLANE_LABELS = ("A carryover plateau (ADU)", "B carryover rate (1/ADU)", "offset (ADU)",
                "read noise (ADU)")
ROI = Tuple[int, int, int, int]

_NAME_ROI = re.compile(r"roi(\d+)-(\d+)-(\d+)-(\d+)")
_NAME_SN = re.compile(r"_sn([^_]+)_")
_NAME_DATE = re.compile(r"date(\d{8})")


@dataclass
class FlashParams:
    """Per-pixel carryover parameters of one camera over one ROI.

    Attributes
    ----------
    A : ndarray, float32, (Y, X)
        Carryover plateau in ADU (carryover = A * (1 - exp(-B * x))).
    B : ndarray, float32, (Y, X)
        Carryover rate in 1/ADU.
    offset : ndarray, float32, (Y, X)
        Camera offset in ADU.
    noise : ndarray, float32, (Y, X) or None
        Read noise (standard deviation) in ADU; None if the file had no noise plane.
    roi : (left, top, right, bottom) or None
        Camera ROI the arrays cover (sensor pixels, inclusive).
    serial : str or None
        Camera serial number.
    date : str or None
        Calibration date ``YYYYMMDD``.
    path : pathlib.Path or None
        File read from.
    """

    A: np.ndarray
    B: np.ndarray
    offset: np.ndarray
    noise: Optional[np.ndarray] = None
    roi: Optional[ROI] = None
    serial: Optional[str] = None
    date: Optional[str] = None
    path: Optional[Path] = None

    @property
    def shape(self) -> Tuple[int, int]:
        """(Y, X) of the parameter maps."""
        return tuple(self.A.shape)

    def validate(self, argument: str = "params") -> "FlashParams":
        """Check shapes, finiteness and signs; returns self.

        Raises
        ------
        CamcorrError
            On NaN/inf, negative A or B, or maps of different shapes.
        """
        where = f" ({self.path})" if self.path else ""
        for name in ("A", "B", "offset") + (("noise",) if self.noise is not None else ()):
            arr = getattr(self, name)
            if np.ndim(arr) != 2:
                raise CamcorrError(f"parameter map {name} is not 2D", argument=argument,
                                   expected="(Y, X) maps", received=f"shape {np.shape(arr)}{where}")
            if arr.shape != self.A.shape:
                raise CamcorrError(f"parameter map {name} has another shape than A", argument=argument,
                                   expected=f"shape {self.A.shape}", received=f"shape {arr.shape}{where}")
            check_finite(arr, f"{argument} ({name} plane{where})",
                         fix="The parameter file is damaged or was fitted badly: recalibrate with "
                             "'camcorr flash calibrate'")
        for name in ("A", "B"):
            if np.any(getattr(self, name) < 0):
                raise CamcorrError(f"negative carryover parameter {name}", argument=argument,
                                   expected=f"{name} >= 0 everywhere",
                                   received=f"minimum {float(getattr(self, name).min())}{where}")
        if self.roi is not None and roi_shape(self.roi) != self.shape:
            raise CamcorrError("parameter maps do not match their ROI", argument=argument,
                               expected=f"maps of shape {roi_shape(self.roi)} for ROI {self.roi} "
                                        "(rows Left..Right, columns Top..Bot)",
                               received=f"maps of shape {self.shape}{where}")
        return self


def as_roi(roi, argument: str = "roi") -> ROI:
    """Normalise an ROI given as (L, T, R, B), an :class:`LLSSettings` or a string 'L-T-R-B'."""
    if isinstance(roi, LLSSettings):
        return roi.roi
    if isinstance(roi, str):
        roi = re.split(r"[-,\s]+", roi.strip())
    try:
        vals = tuple(int(v) for v in roi)
    except (TypeError, ValueError):
        raise CamcorrError("not a camera ROI", argument=argument,
                           expected="four integers (left, top, right, bottom)",
                           received=repr(roi)) from None
    if len(vals) != 4 or vals[2] < vals[0] or vals[3] < vals[1] or min(vals) < 0:
        raise CamcorrError("not a valid camera ROI", argument=argument,
                           expected="(left, top, right, bottom) with right >= left, bottom >= top",
                           received=repr(roi))
    return vals


def param_filename(serial: Optional[str], roi: ROI, date: Optional[str] = None) -> str:
    """LLSpy's parameter file name ``FlashParam_sn{serial}_roi{L}-{T}-{R}-{B}_date{YYYYMMDD}.tif``."""
    date = date or _date.today().strftime("%Y%m%d")
    roi_txt = "-".join(str(int(v)) for v in roi)
    sn = f"sn{serial}_" if serial else ""
    return f"FlashParam_{sn}roi{roi_txt}_date{date}.tif"


def parse_param_filename(name) -> dict:
    """``{'roi': (L, T, R, B) or None, 'serial': str or None, 'date': str or None}`` from a name."""
    base = Path(name).name
    m = _NAME_ROI.search(base)
    s = _NAME_SN.search(base)
    d = _NAME_DATE.search(base)
    return {"roi": tuple(int(v) for v in m.groups()) if m else None,
            "serial": s.group(1) if s else None, "date": d.group(1) if d else None}


def write_params(calibration, path, *, inputs: Sequence = ()) -> Path:
    """Write parameters as an LLSpy-compatible float32 ImageJ TIFF.

    Parameters
    ----------
    calibration : FlashParams or FlashCalibration
        Anything with ``A``, ``B``, ``offset``, ``noise`` (Y, X) maps and optional ``roi``,
        ``serial``, ``date``.
    path : path-like
        Destination file, or a folder: then the LLSpy name :func:`param_filename` is used in it.
        Written atomically; never over one of `inputs`.

    Returns
    -------
    pathlib.Path
        The file written.

    Notes
    -----
    Planes are [A, B, offset, noise]; a missing noise map is written as zeros (LLSpy never reads
    it).  If the name has no ``roi..`` part LLSpy cannot use the file; camcorr still reads the ROI
    from the metadata.
    """
    p = Path(path)
    roi = getattr(calibration, "roi", None)
    if p.is_dir() or p.suffix.lower() not in (".tif", ".tiff"):
        if roi is None:
            raise CamcorrError("no camera ROI to name the parameter file", argument="output",
                               expected="a calibration with an ROI, or an explicit file name",
                               received=str(p))
        p = p / param_filename(getattr(calibration, "serial", None), roi,
                               getattr(calibration, "date", None))
    noise = calibration.noise if getattr(calibration, "noise", None) is not None \
        else np.zeros_like(calibration.A)
    stack = np.stack([np.asarray(calibration.A), np.asarray(calibration.B),
                      np.asarray(calibration.offset), np.asarray(noise)]).astype(np.float32)
    meta = {"software": "camcorr", "planes": list(PLANES),
            "model": "carryover = A * (1 - exp(-B * (previous raw - offset)))",
            "roi": list(roi) if roi is not None else None,
            "serial": getattr(calibration, "serial", None), "date": getattr(calibration, "date", None)}
    for key in ("n_failed", "n_levels", "n_dark_frames", "n_pairs"):
        if getattr(calibration, key, None) is not None:
            meta[key] = int(getattr(calibration, key))
    return write_tiff(p, stack, inputs=inputs, axes="ZYX", extra_metadata=meta,
                      imagej_metadata={"Labels": list(PLANE_LABELS)})


def read_params(path, *, roi=None) -> FlashParams:
    """Read a FlashParam TIFF (LLSpy's or camcorr's).

    Parameters
    ----------
    path : path-like
        ``FlashParam_sn.._roi{L}-{T}-{R}-{B}_date...tif``.
    roi : (L, T, R, B), optional
        Calibration ROI when the file name has none.

    Returns
    -------
    FlashParams
        Maps as float32; ROI from the name (else the camcorr metadata, else `roi`).

    Raises
    ------
    CamcorrError
        Missing or unreadable file, fewer than 3 planes, maps not matching the ROI in the name,
        NaN/inf or negative A/B.
    """
    p = Path(path)
    if not p.is_file():
        raise CamcorrError("parameter file not found", argument="params",
                           expected="a FlashParam_*.tif file from 'camcorr flash calibrate' or LLSpy",
                           received=str(p))
    from ..io import inspect_tiff

    inspect_tiff(p, argument="params")  # the input gate: colour, empty, truncated, pixel type
    info = {}
    try:
        with tifffile.TiffFile(p) as tif:
            data = tif.series[0].asarray()
            ij = tif.imagej_metadata or {}
            if "Info" in ij:
                try:
                    info = json.loads(ij["Info"])
                except (TypeError, ValueError):
                    info = {}
    except Exception as exc:
        raise CamcorrError("cannot read the parameter file as TIFF", argument="params",
                           received=f"{p} ({type(exc).__name__}: {exc})") from None
    data = np.asarray(data)
    if data.ndim > 3:
        data = data.reshape((-1,) + data.shape[-2:])
    if data.ndim != 3 or data.shape[0] < 3:
        raise CamcorrError("not a carryover parameter file", argument="params",
                           expected="a stack of at least 3 planes [A, B, offset(, noise)]",
                           received=f"an image of shape {data.shape} in {p}")
    if data.dtype.kind not in "fiu":
        raise CamcorrError("parameter file has a non-numeric dtype", argument="params",
                           expected="float32 planes", received=f"{data.dtype} in {p}")
    fields = parse_param_filename(p.name)
    file_roi = fields["roi"] or (tuple(info["roi"]) if info.get("roi") else None)
    if roi is not None:
        roi = as_roi(roi)
        if file_roi is not None and tuple(file_roi) != roi:
            raise CamcorrError("ROI given differs from the parameter file's", argument="roi",
                               expected=f"{file_roi} (from {p.name})", received=f"{roi}")
    final_roi = tuple(int(v) for v in file_roi) if file_roi is not None else roi
    data = data.astype(np.float32, copy=False)
    params = FlashParams(A=data[0], B=data[1], offset=data[2],
                         noise=data[3] if data.shape[0] >= 4 else None, roi=final_roi,
                         serial=fields["serial"] or info.get("serial"),
                         date=fields["date"] or info.get("date"), path=p)
    return params.validate()


def roi_window(calib_roi, data_roi) -> Tuple[slice, slice]:
    """Rows and columns of the calibration maps that a data ROI sees.

    Parameters
    ----------
    calib_roi, data_roi : (left, top, right, bottom)
        Sensor ROIs, inclusive; the data ROI must lie inside the calibration ROI.

    Returns
    -------
    rows, cols : slice
        ``params_map[rows, cols]`` has the data's (Y, X) shape (see the module notes).

    Raises
    ------
    CamcorrError
        If the data ROI is not inside the calibration ROI.
    """
    cl, ct, cr, cb = as_roi(calib_roi, "calibration ROI")
    dl, dt, dr, db = as_roi(data_roi, "data ROI")
    if dl < cl or dt < ct or dr > cr or db > cb:
        raise CamcorrError("the data ROI lies outside the calibration ROI", argument="settings",
                           expected=f"a data ROI inside the calibration's Left={cl} Top={ct} "
                                    f"Right={cr} Bot={cb}",
                           received=f"Left={dl} Top={dt} Right={dr} Bot={db}",
                           fix="Calibrate with a camera ROI that covers all your acquisitions, or "
                               "check that the Settings.txt belongs to this data")
    return slice(cr - dr, cr - dl + 1), slice(dt - ct, db - ct + 1)


def crop_params(params: FlashParams, data_roi, calib_roi=None) -> FlashParams:
    """Cut the parameter maps to the camera ROI of a data set.

    Parameters
    ----------
    params : FlashParams
        Calibration over its ROI.
    data_roi : (L, T, R, B) or LLSSettings
        ROI of the data (from its Settings.txt).
    calib_roi : (L, T, R, B), optional
        Calibration ROI if `params` has none.

    Returns
    -------
    FlashParams
        Maps of the data's shape (R - L + 1, B - T + 1), ``roi=data_roi``.

    Raises
    ------
    CamcorrError
        No calibration ROI known, or data ROI outside the calibration.
    """
    croi = params.roi if calib_roi is None else as_roi(calib_roi, "calibration ROI")
    if croi is None:
        raise CamcorrError("the calibration ROI is unknown", argument="params",
                           expected="a FlashParam file whose name contains roi{L}-{T}-{R}-{B}",
                           received=str(params.path or "parameters without ROI"),
                           fix="Rename the file to LLSpy's pattern or pass calib_roi")
    droi = as_roi(data_roi, "data ROI")
    rows, cols = roi_window(croi, droi)
    crop = lambda a: None if a is None else np.ascontiguousarray(a[rows, cols])  # noqa: E731
    return replace(params, A=crop(params.A), B=crop(params.B), offset=crop(params.offset),
                   noise=crop(params.noise), roi=droi)


def params_from_arrays(A, B, offset, noise=None, *, roi=None, serial=None, date=None) -> FlashParams:
    """Build validated :class:`FlashParams` from arrays (ADU; (Y, X) each)."""
    f32 = lambda a: None if a is None else np.ascontiguousarray(a, dtype=np.float32)  # noqa: E731
    return FlashParams(A=f32(A), B=f32(B), offset=f32(offset), noise=f32(noise),
                       roi=None if roi is None else as_roi(roi), serial=serial, date=date).validate()


ParamsLike = Union[FlashParams, str, Path]


def prepare_params(params: FlashParams, image_shape, settings, *,
                   note: Callable[[str], None] = lambda message: None) -> FlashParams:
    """Cut `params` to the data's camera ROI (from `settings`) or check it has the images' shape.

    Parameters
    ----------
    params : FlashParams
        The calibration (its ROI from the file name).
    image_shape : (Y, X) or None
        Shape of the data's images; None: not known yet (no shape check).
    settings : LLSSettings or None
        The data's Settings.txt (camera ROI and serial number).
    note : callable
        Receives one-line messages for the user (camera serial mismatch, assumed ROI).

    Returns
    -------
    FlashParams

    Raises
    ------
    CamcorrError
        Data ROI outside the calibration ROI, images not of the ROI's shape, or no ROI to align
        a parameter file of another size.
    """
    if settings is not None and params.roi is not None:
        if params.serial and settings.serial and str(params.serial) != str(settings.serial):
            note(f"warning: the parameter file is for camera {params.serial} but the data were "
                 f"taken with camera {settings.serial}")
        cut = crop_params(params, settings.roi)
        if image_shape is not None and cut.shape != tuple(image_shape):
            raise CamcorrError("images do not match the camera ROI of their Settings.txt",
                               argument="settings",
                               expected=f"images of {cut.shape} (ROI {settings.roi})",
                               received=f"images of {tuple(image_shape)}",
                               fix="Check that the Settings.txt belongs to these stacks")
        return cut
    if image_shape is None or tuple(params.shape) == tuple(image_shape):
        if image_shape is not None and settings is None and params.roi is not None:
            note("note: no Settings.txt for the data; the parameter maps have the images' size, "
                 "so the data are assumed to use the calibration's camera ROI "
                 f"{params.roi}")
        return params
    raise CamcorrError("parameter file and images have different sizes", argument="params",
                       expected=f"parameter maps of the images' size {tuple(image_shape)}",
                       received=f"maps of {params.shape}"
                                + (f" (ROI {params.roi})" if params.roi else ""),
                       fix="Give the data's Settings.txt with --settings so the calibration can be "
                           "cut to the data's camera ROI" if params.roi else
                           "Use a parameter file whose name contains roi<L>-<T>-<R>-<B>, plus "
                           "--settings")
