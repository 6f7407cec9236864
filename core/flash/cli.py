"""Command-line runners of ``camcorr flash calibrate`` and ``camcorr flash correct``."""
from __future__ import annotations

import re
from collections import OrderedDict
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

from ..errors import CamcorrError
from ..io import write_tiff
from ..operations import RunResult
from ..streaming import parse_memory
from .calibrate import STATUS, calibrate_folder
from .operations import CORRECT
from .params import FlashParams, param_filename, prepare_params, write_params
from .settings import find_settings, parse_settings
from .stream import correct_files

__all__ = ["run_calibrate", "run_correct", "correct_array", "group_lls_files", "quality_filename",
           "prepare_params", "hyperstack_to_tczyx", "SINGLE_CHANNEL_NOTE"]

_LLS = re.compile(r"^(?P<prefix>.*?)_ch(?P<ch>\d+)_stack(?P<stack>\d+)")


#: One-line note printed when a single single-channel stack is corrected (Fiji shows it in the log).
SINGLE_CHANNEL_NOTE = (
    "note: one single-channel stack given, so a single-channel acquisition is assumed (the frame "
    "before each plane is the previous plane of the same stack); for several channels give a "
    "hyperstack with C channels (Fiji: Image > Hyperstacks > Stack to Hyperstack) or the channel "
    "stacks in acquisition order")


def hyperstack_to_tczyx(data: np.ndarray, axes: str, *, argument: str = "images"):
    """View an ImageJ hyperstack as (T, C, Z, Y, X) and give the function that undoes it.

    Parameters
    ----------
    data : ndarray
        Pixels with tifffile axes `axes` (ImageJ order ``TZCYX`` minus singleton axes, e.g.
        ``'ZCYX'`` for a 2-channel Z stack saved by Fiji).
    axes : str
        Axes of `data`.  C runs over the channels of one timepoint in acquisition order.  The
        axis of consecutive camera frames is Z; an image without Z but with T (a 2D time
        series, ``'TCYX'``) uses T as that axis.  With both Z and T each timepoint is corrected
        on its own, as separate LLS stacks are.

    Returns
    -------
    tczyx : ndarray, shape (T, C, Z, Y, X)
        A view of `data`.
    restore : callable
        ``restore(array of shape (T, C, Z, Y, X))`` -> array with the axes of `data`.

    Raises
    ------
    CamcorrError
        Axes other than T, Z, C, Y, X (e.g. RGB samples), or axes that do not match `data`.
    """
    ax = (axes or "").upper()
    if (len(ax) != data.ndim or ax[-2:] != "YX" or len(set(ax)) != len(ax)
            or not set(ax) <= set("TZCYX")):
        raise CamcorrError("cannot tell the channel and plane axes of the image", argument=argument,
                           expected="an ImageJ hyperstack with axes among T, Z, C, Y, X",
                           received=f"axes {axes!r} for shape {data.shape}",
                           fix="Save the image as an ImageJ TIFF (Fiji: File > Save As > Tiff), "
                               "grayscale (no RGB)")
    if "Z" not in ax and "T" in ax:
        ax = ax.replace("T", "Z")  # 2D time series: consecutive frames along T
    missing = "".join(a for a in "TCZ" if a not in ax)
    full = data.reshape(data.shape + (1,) * len(missing))
    ax_full = ax + missing
    perm = [ax_full.index(a) for a in "TCZYX"]
    inverse = np.argsort(perm)
    shape = data.shape

    def restore(tczyx: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(np.transpose(tczyx, inverse).reshape(shape))

    return np.transpose(full, perm), restore


def quality_filename(param_path: Path) -> Path:
    """``FlashFitQuality_...tif`` beside ``FlashParam_...tif``."""
    name = param_path.name
    if name.startswith("FlashParam"):
        return param_path.with_name("FlashFitQuality" + name[len("FlashParam"):])
    return param_path.with_name(param_path.stem + "_fitquality.tif")


def run_calibrate(values: Dict) -> RunResult:
    """Runner of ``camcorr flash calibrate``."""
    result = RunResult()
    calib_dir = Path(values["calib_dir"])
    cal = calibrate_folder(calib_dir, progress=bool(values.get("progress", True)))
    out = values.get("output")
    if out is None:
        target = calib_dir / param_filename(cal.serial, cal.roi, cal.date)
    else:
        target = Path(out)
        if target.is_dir() or target.suffix.lower() not in (".tif", ".tiff"):
            target = target / param_filename(cal.serial, cal.roi, cal.date)
    path = write_params(cal, target)
    qpath = quality_filename(path)
    write_tiff(qpath, np.stack([cal.gof, cal.status.astype(np.float32)]).astype(np.float32),
               axes="ZYX", imagej_metadata={"Labels": ["fit RMS residual (ADU)", "status code"]},
               extra_metadata={"status_codes": {str(k): v for k, v in STATUS.items()}})
    n = cal.A.size
    result.note(f"levels: {cal.n_levels}, bright/dark pairs: {cal.n_pairs}, dark frames: "
         f"{cal.n_dark_frames}; median A {float(np.median(cal.A)):.1f} ADU, median B "
         f"{float(np.median(cal.B)):.2e} 1/ADU, median fit residual {float(np.nanmedian(cal.gof)):.2f} ADU; "
         f"failed fits: {cal.n_failed} of {n} pixels ({100.0 * cal.n_failed / n:.2f} %)")
    result.note(f"fit quality map: {qpath}")
    result.outputs += [str(path), str(qpath)]
    result.numbers.update(n_levels=cal.n_levels, n_pairs=cal.n_pairs, n_failed=cal.n_failed)
    result.say(path)
    return result


def group_lls_files(folder: Path) -> "OrderedDict[Tuple[str, str], List[Path]]":
    """Group the LLS stacks of a folder by (prefix with camera, stack number); channels in order."""
    groups: Dict[Tuple[str, str], Dict[int, Path]] = {}
    for p in sorted(folder.iterdir()):
        if p.suffix.lower() not in (".tif", ".tiff") or p.name.startswith((".", "FlashParam",
                                                                            "FlashFitQuality")):
            continue
        m = _LLS.match(p.name)
        if not m:
            continue
        key = (m.group("prefix"), m.group("stack"))
        ch = int(m.group("ch"))
        if ch in groups.setdefault(key, {}):
            raise CamcorrError("two files for one channel and timepoint", argument="images",
                               expected="one *_ch<c>_stack<t>_* file per channel and timepoint",
                               received=f"{groups[key][ch].name} and {p.name}")
        groups[key][ch] = p
    if not groups:
        raise CamcorrError("no LLS stacks in the folder", argument="images",
                           expected="files named like name_CamA_ch0_stack0000_488nm_....tif",
                           received=f"none in {folder}", fix="Or list the stack files themselves")
    out: "OrderedDict[Tuple[str, str], List[Path]]" = OrderedDict()
    for key in sorted(groups):
        out[key] = [groups[key][c] for c in sorted(groups[key])]
    return out


def run_correct(values: Dict) -> RunResult:
    """Runner of ``camcorr flash correct``."""
    result = RunResult()
    images = [Path(p) for p in values["images"]]
    if len(images) == 1 and images[0].is_dir():
        folder = images[0]
        groups = list(group_lls_files(folder).values())
    else:
        for p in images:
            if p.is_dir():
                raise CamcorrError("a folder among stack files", argument="images",
                                   expected="either one folder or a list of stack files",
                                   received=str(p))
        folder = images[0].parent
        groups = [images]
    settings_path = values.get("settings")
    if settings_path is None:
        found = find_settings(folder, argument="images")
        if found is not None:
            result.note(f"using {found}")
        settings = parse_settings(found) if found is not None else None
    else:
        settings = parse_settings(settings_path)
    out_dir = Path(values["output"]) if values.get("output") else folder / "flash_corrected"
    dtype = values["dtype"]
    notes: List[str] = []
    said = set()

    def engine_kwargs(image_shape):
        """The engine arguments for images of `image_shape` (parameters cut to their ROI)."""
        kw = CORRECT.engine_kwargs(values, image_shape=image_shape, settings=settings, notes=notes)
        for note in notes:
            if note not in said:  # each note once
                result.note(note)
                said.add(note)
        notes.clear()
        return kw

    all_inputs = [p for g in groups for p in g]
    memory = parse_memory(values.get("memory"))
    # dampening, laser cycle and the parameters cut to the data's ROI; the shape of every
    # stack is checked against them (and notes printed) once per shape
    base = engine_kwargs(None)
    written = 0
    noted = []

    def _note_single():
        if not noted:
            result.note(SINGLE_CHANNEL_NOTE)
            noted.append(True)

    cuts: Dict[tuple, FlashParams] = {}

    def _prepare(shape):
        if shape not in cuts:
            cuts[shape] = engine_kwargs(shape)["params"]
        return cuts[shape]

    for files in groups:
        out = correct_files(files, [out_dir / f.name for f in files], base["params"],
                            prepare=_prepare, dampening=base["dampening"], cycle=base["cycle"],
                            dtype=dtype, memory=memory, inputs=all_inputs,
                            on_single_channel=_note_single)
        result.outputs += [str(o) for o in out]
        written += len(out)
    result.note(f"corrected {written} stack(s) in {len(groups)} timepoint group(s) "
         f"(dampening {values['dampening']}, output {dtype})")
    result.numbers["written"] = written
    result.say(out_dir)
    return result


def correct_array(values: Dict, stack: np.ndarray) -> RunResult:
    """``flash correct`` of one in-memory single-channel (Z, Y, X) stack, as the command line
    corrects a single stack file (same translation, notes and engine; no file written).

    Parameters
    ----------
    values : dict
        Validated values of ``flash-correct`` (``images`` and ``output`` are not used; without
        ``settings`` there is no folder to find a Settings.txt in, so the parameter file must
        have the stack's size or ``settings`` must be given).
    stack : ndarray, shape (Z, Y, X)
        Raw stack in ADU (uint16, or float32).

    Returns
    -------
    RunResult
        ``arrays['output']``: the corrected stack (the input's dtype with ``dtype='keep'``,
        rounded and clipped at 0 and the type maximum; float32 otherwise); the notes (the
        single-channel note among them) as the command line prints them.

    Raises
    ------
    CamcorrError
        As ``camcorr flash correct`` (parameter file, ROI, dampening, stack shape).
    """
    from ..io import native_byte_order
    from .correct import correct_interleaved

    result = RunResult()
    settings = parse_settings(values["settings"]) if values.get("settings") else None
    notes: List[str] = []
    kw = CORRECT.engine_kwargs(values, image_shape=tuple(np.shape(stack)[-2:]),
                               settings=settings, notes=notes)
    for note in dict.fromkeys(notes):  # each note once
        result.note(note)
    result.note(SINGLE_CHANNEL_NOTE)
    out = correct_interleaved([native_byte_order(stack)], kw["params"], dampening=kw["dampening"],
                              cycle=kw["cycle"], dtype=values["dtype"])[0]
    result.arrays["output"] = out
    result.note(f"corrected 1 stack(s) in 1 timepoint group(s) (dampening {values['dampening']}, "
                f"output {values['dtype']})")
    return result
