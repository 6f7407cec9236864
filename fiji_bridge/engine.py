"""Run an operation in this Python process on numpy arrays (what
:func:`fiji_bridge.run_operation` does).

Operations in :data:`IN_MEMORY` run on the array itself (:func:`run_in_memory`: the command
line's translation, :meth:`camcorr.operations.Operation.engine_kwargs`, and its engine function
or the command line's in-memory twin in ``camcorr`` (e.g.
:func:`camcorr.aposteriori.cli.normalize_array`); no temporary file).  The others, and
hyperstacks (axes other than (Y, X) / (Z, Y, X)), call the operation's command-line runner in
process with the array written to a temporary TIFF (and outputs read back); the temporary
folder is always removed.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import numpy as np

from camcorr.errors import CamcorrError
from camcorr.operations import Operation, RunResult, get_operation, run_status

from .generate import _roles, _temp_outputs

__all__ = ["run_on_array", "run_in_memory", "IN_MEMORY"]

#: Operations that run on an in-memory array without temporary files: {name: the numbers of
#: dimensions they take there} ((Z, Y, X) stacks; the FRC's first image and flat-field apply
#: also (Y, X)).
IN_MEMORY_NDIM = {"median": (3,), "gain-estimate": (3,), "flatfield-apply": (2, 3),
                  "gain-normalize": (3,), "flash-correct": (3,), "frc": (2,)}
IN_MEMORY = tuple(IN_MEMORY_NDIM)


def run_in_memory(operation: Union[str, Operation], image: np.ndarray,
                  values: Optional[Dict] = None) -> RunResult:
    """Run `operation` on the array `image` in this process, without temporary files.

    The command line's translation (:meth:`~camcorr.operations.Operation.engine_kwargs`) and
    engine function, so the pixels are the command line's (tested against it).

    Parameters
    ----------
    operation : str or Operation
        One of :data:`IN_MEMORY`.
    image : ndarray, shape (Z, Y, X) or (Y, X)
        The stack in ADU (one channel; hyperstacks go through :func:`run_on_array`);
        ``flatfield-apply`` also takes one (Y, X) image, ``frc`` takes the first image (Y, X)
        (the second is the file ``values['b']``).  Big-endian data are converted first.
    values : dict, optional
        Other parameters by name (missing ones take their defaults).

    Returns
    -------
    RunResult
        ``arrays['output']``: the corrected stack (the input's dtype); ``median`` also
        ``arrays['mask']`` (bool, Y, X) and the numbers ``flagged``/``percent``;
        ``gain-estimate``: the gain (float32, Y, X) and the report's numbers (in-sample and
        ``heldout.*``); ``flatfield-apply``: the corrected image (the input's dtype unless
        ``dtype`` says otherwise) and the numbers ``clipped_low``/``clipped_high`` (pixels
        clipped at 0 and at the top of the output range) and ``rescale_factor``;
        ``gain-normalize``: the corrected stack (rounded and clipped to the input's dtype
        unless ``dtype='float32'``), the numbers ``sigma0``, ``i0``, ``n_accepted``,
        ``clipped_low``/``clipped_high`` and the command line's clipping warning among its
        notes (the statistics are written only to ``values['stats']``, when given);
        ``flash-correct``: the corrected stack (a single-channel acquisition, as the command
        line corrects one stack file; its note says so); ``frc``: the curves
        (``arrays['frequency']``, ``['frc']``, ``['threshold']``) and the numbers
        ``crossover``, ``fraction_above``.

    Raises
    ------
    CamcorrError
        An operation without an in-memory path, an array of the wrong dimensions, or bad
        values (as the command line).
    """
    return _in_memory(operation, image, values)[0]


def _in_memory(operation, image, values):
    """(RunResult, the FRC's full result as the command line's JSON dict or None)."""
    from camcorr.io import native_byte_order

    op = get_operation(operation) if isinstance(operation, str) else operation
    if op.name not in IN_MEMORY:
        raise CamcorrError("no in-memory path for this operation", argument="operation",
                           expected=" or ".join(IN_MEMORY), received=op.name,
                           fix="Use fiji_bridge.engine.run_on_array")
    arr = native_byte_order(image)
    ndims = IN_MEMORY_NDIM[op.name]
    if arr.ndim not in ndims:
        shapes = {2: "a (Y, X) image", 3: "a (Z, Y, X) array"}
        raise CamcorrError("not a stack" if 3 in ndims else "not a 2D image", argument="image",
                           expected=" or ".join(shapes[n] for n in ndims),
                           received=f"shape {arr.shape}")
    current, _, _ = _roles(op)
    vals = dict(values or {})
    vals[current.name] = ["<array in memory>"] if current.kind == "images" else "<array in memory>"
    validated = op.validate(vals, frontend="fiji")
    if op.name == "gain-estimate":
        return _gain_in_memory(op, arr, validated), None
    if op.name == "flatfield-apply":
        return _flatfield_apply_in_memory(arr, validated), None
    if op.name == "gain-normalize":
        from camcorr.aposteriori.cli import normalize_array

        return normalize_array(validated, arr), None
    if op.name == "flash-correct":
        from camcorr.flash.cli import correct_array

        return correct_array(validated, arr), None
    if op.name == "frc":
        from camcorr.aposteriori.cli import frc_array

        result, res = frc_array(validated, arr)
        return result, res.to_dict()
    from camcorr.median.selective import selective_median
    from camcorr.operations import kwargs_for

    kwargs = op.engine_kwargs(validated, image_shape=arr.shape[-2:])

    res = selective_median(arr, **kwargs_for(selective_median, kwargs))
    mask = np.asarray(res.mask, dtype=bool)
    return RunResult(arrays={"output": res.corrected, "mask": mask},
                     numbers={"flagged": int(mask.sum()),
                              "percent": 100.0 * float(mask.mean())}), None


def _gain_in_memory(op: Operation, movie: np.ndarray, validated: Dict) -> RunResult:
    """``gain-estimate`` on an in-memory movie: the command line's checks, translation and
    engine call, with the frames fed in the same blocks of 4 as from a file."""
    from camcorr.gain.cli import read_gain_ref
    from camcorr.gain.estimate import estimate_gain, prepare_gain_ref

    ref = None
    if validated.get("gain_ref"):
        ref = read_gain_ref(validated["gain_ref"])
        prepare_gain_ref(ref, orientation=validated["ref_orientation"], argument="gain_ref")
    offset = validated.get("offset") or 0.0
    if offset and movie.size and offset >= float(np.median(movie[:4])):
        level = float(np.median(movie[:4]))
        raise CamcorrError("offset at or above the data", argument="offset",
                           expected=f"an offset below the data (median of the first frames: "
                                    f"{level:.6g} ADU)", received=f"{offset:.6g} ADU",
                           fix="Give the camera's dark level, usually 100 ADU for sCMOS cameras")
    kwargs = op.engine_kwargs(validated, argument="sigmas", gain_ref=ref)
    res = estimate_gain(lambda: (movie[i:i + 4] for i in range(0, movie.shape[0], 4)), **kwargs)

    report = dict(res.report)
    numbers = {k: v for k, v in report.items() if isinstance(v, (int, float, dict))}
    return RunResult(arrays={"output": np.asarray(res.gain, dtype=np.float32)}, numbers=numbers)


def _flatfield_apply_in_memory(image: np.ndarray, validated: Dict) -> RunResult:
    """``flatfield-apply`` on an in-memory image: the command line's profiles and arguments
    (:func:`camcorr.flatfield.cli.apply_setup`) and engine call on the whole image (the
    command line applies the same call block by block, bit-identically)."""
    from camcorr.flatfield import apply_flatfield
    from camcorr.flatfield.cli import apply_setup

    profiles, kwargs = apply_setup(validated)
    counts: Dict = {}
    out = apply_flatfield(image, profiles, index=0, counts=counts, argument="image", **kwargs)
    return RunResult(arrays={"output": out},
                     numbers={k: counts[k] for k in ("clipped_low", "clipped_high",
                                                     "rescale_factor")})


def run_on_array(operation: Union[str, Operation], image: Optional[np.ndarray] = None,
                 values: Optional[Dict] = None, *, calibration: Optional[Dict] = None,
                 axes: Optional[str] = None, return_axes: bool = False):
    """Run `operation` on `image` and return its image output(s).

    Parameters
    ----------
    operation : str or Operation
        Operation name (``'median'``, ...) or definition.
    image : ndarray, optional
        The current image in ADU, axes (Y, X) or (Z, Y, X) unless `axes` says otherwise.
        Required when the operation takes an image.
    values : dict, optional
        Other parameters by name (missing ones take their defaults).
    calibration : dict, optional
        ``pixel_width``/``pixel_height``/``unit`` written with the temporary input.
    axes : str, optional
        ImageJ axes of `image` (letters of ``'TZCYX'`` in that order, e.g. ``'ZCYX'`` for a
        2-channel Z stack, see :func:`fiji_bridge.convert.imageplus_axes`), stored in the temporary
        TIFF so that the operation sees the hyperstack's channels and frames.  Default: the
        trailing part of ``'TZCYX'`` (``'YX'``, ``'ZYX'``, ...).
    return_axes : bool
        Return ``(array, axes)`` pairs (axes as read back from the output TIFF) instead of arrays.

    Returns
    -------
    ndarray, (ndarray, str), a list of these, dict or None
        The output image (or the images of an output folder, sorted by file name); for
        ``flatfield-estimate`` the estimated flat-field (float32, Y, X; the profiles are also
        written to ``values['output']`` when given); for ``frc`` the FRC numbers as a dict
        (:meth:`camcorr.aposteriori.frc.FRCResult.to_dict`); None when the operation has no
        image output in Fiji.

    Raises
    ------
    CamcorrError
        Bad parameters, missing image, or the operation failed.
    """
    from camcorr.io import read_tiff, write_tiff

    op = get_operation(operation) if isinstance(operation, str) else operation
    nd = np.ndim(image) if image is not None else 0
    if (nd in IN_MEMORY_NDIM.get(op.name, ())
            and (axes is None or str(axes).upper() == "ZYX"[3 - nd:])):
        result, frc_dict = _in_memory(op, image, values)
        if frc_dict is not None:
            return frc_dict
        out = result.arrays["output"]
        return (out, "ZYX"[3 - nd:]) if return_axes else out
    current, dialog, hidden = _roles(op)
    vals = dict(values or {})
    with tempfile.TemporaryDirectory(prefix="camcorr-fiji-") as tmp:
        tmp = Path(tmp)
        if current is not None:
            if image is None:
                raise CamcorrError("no image", argument=current.text() or current.name,
                                   expected="an image", received="nothing",
                                   fix="Open or pass the image to correct")
            arr = np.asarray(image)
            if axes is not None and (len(axes) != arr.ndim or not _in_imagej_order(axes)):
                raise CamcorrError("axes do not match the image", argument="axes",
                                   expected=f"{arr.ndim} axis letters of 'TZCYX', in that order, "
                                            "ending in 'YX'",
                                   received=f"{axes!r} for shape {arr.shape}")
            resolution = None
            meta = None
            if calibration and calibration.get("pixel_width"):
                resolution = (1.0 / calibration["pixel_width"],
                              1.0 / calibration.get("pixel_height", calibration["pixel_width"]))
                meta = {"unit": calibration.get("unit", "")}
            path = write_tiff(tmp / "input.tif", arr, axes=axes, resolution=resolution,
                              imagej_metadata=meta)
            vals[current.name] = [str(path)] if current.kind == "images" else str(path)
        outputs = []
        for p, name in _temp_outputs(hidden):
            if p.kind == "output_folder":
                (tmp / name).mkdir()
            vals[p.name] = str(tmp / name)
            outputs.append((p, tmp / name))
        if op.name == "frc":  # the FRC numbers come back as a dict
            vals["json"] = str(tmp / "frc.json")
        if op.name == "flatfield-estimate" and not vals.get("output"):
            vals["output"] = str(tmp / "profiles.npz")  # the flat-field comes back as an array
        validated = op.validate(vals, frontend="fiji")
        result = op.load_runner()(validated)
        if isinstance(result, RunResult):
            result.print()
        status = run_status(result)
        if status:
            raise CamcorrError("the operation failed", argument=op.title,
                               expected="exit status 0", received=str(status))
        if op.name == "frc":
            import json

            with open(validated["json"], encoding="utf-8") as fh:
                return json.load(fh)
        results: List[Tuple[np.ndarray, str]] = []
        if op.name == "flatfield-estimate":
            from camcorr.flatfield import read_profiles

            flat = np.asarray(read_profiles(validated["output"], argument="output").flatfield,
                              dtype=np.float32)
            results.append((flat, "YX"))
        for p, path in outputs:
            if p.kind == "output_folder":
                files = sorted(path.glob("*.tif*"))
            elif path.suffix.lower() in (".tif", ".tiff") and path.exists():
                files = [path]
            else:
                files = []
            for f in files:
                data, info = read_tiff(f, argument=p.name)
                results.append((data, str(info.axes or "")))
    if not results:
        return None
    if not return_axes:
        results = [r[0] for r in results]
    return results[0] if len(results) == 1 else results


def _in_imagej_order(axes: str) -> bool:
    """True when `axes` is ``'TZCYX'`` with some of T, Z, C left out (ImageJ's TIFF order)."""
    it = iter("TZCYX")
    return str(axes).upper().endswith("YX") and all(a in it for a in str(axes).upper())
