"""Command-line runners of ``camcorr gain normalize`` and ``camcorr frc``."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

import numpy as np

from ..errors import CamcorrError
from ..io import cast_to_dtype, ensure_not_input, inspect_tiff, read_image
from ..operations import RunResult, kwargs_for
from ..streaming import PlaneReader, blocks, parse_memory, planes_per_block, write_planes
from .frc import frc
from .normalize import NormalizationStats, compute_stats, normalize
from .operations import FRC, GAIN_NORMALIZE

__all__ = ["run_normalize", "run_frc", "normalize_array", "frc_array"]


def run_normalize(values: Dict[str, Any]) -> RunResult:
    """Measure (or load) the statistics, then write every input file corrected."""
    paths = [Path(p) for p in values["frames"]]
    outdir = Path(values["outdir"])
    outputs = [outdir / p.name for p in paths]
    if len({o.name for o in outputs}) != len(outputs):
        raise CamcorrError("two inputs have the same file name", argument="FRAMES",
                           expected="distinct file names (outputs keep the input names)",
                           received=", ".join(str(p) for p in paths))
    for o in outputs:
        ensure_not_input(o, paths, argument="--output")
    first_dtype = np.dtype(inspect_tiff(paths[0], argument="FRAMES").dtype) if paths else None
    _check_targets(values, first_dtype)
    memory = parse_memory(values.get("memory"))
    stats_path = Path(values["stats"]) if values.get("stats") else outdir / "normalization_stats.npz"
    ensure_not_input(stats_path, paths, argument="--stats")
    kwargs = GAIN_NORMALIZE.engine_kwargs(values)
    stats, source = _measure_or_load(values, kwargs, lambda: _file_blocks(paths, memory))
    if not values.get("from_stats"):
        stats.save(stats_path, inputs=paths)
    result, s0, c0 = _targets(values, kwargs, stats, source, first_dtype)
    for src, dst in zip(paths, outputs):
        with PlaneReader(src, argument="FRAMES") as reader:
            info = reader.info
            dtype = reader.dtype if values["dtype"] == "keep" else np.dtype(np.float32)
            block = _normalize_block(memory, reader.plane_shape, reader.dtype, dtype,
                                     reader.n_planes)
            clipped = [0, 0, 0]  # below, above, values
            norm_kw = dict(kwargs_for(normalize, kwargs), sigma0=s0, i0=c0, dtype=np.float64)
            # any error (shape against the statistics, values) before the output exists
            normalize(reader.read(0, 1), stats, **norm_kw)
            write_planes(dst, info.shape, dtype,
                         _corrected(reader.read, reader.n_planes, block, stats, norm_kw, dtype,
                                    clipped),
                         inputs=paths, argument="--output", **info.write_kwargs())
        _clip_note(result, src.name, dtype, clipped)
        result.outputs.append(str(dst))
    if not values.get("from_stats"):
        result.outputs.append(str(stats_path))
    result.say(f"camcorr gain normalize: wrote {len(outputs)} file(s) to {outdir}"
               + ("" if values.get("from_stats") else f"; statistics in {stats_path}"))
    return result


def normalize_array(values: Dict[str, Any], frames: np.ndarray) -> RunResult:
    """``gain normalize`` of one in-memory (Z, Y, X) stack, as the command line corrects a
    single file holding it: the same checks, statistics (measured in the same blocks of
    frames), targets, rounding and clipping; nothing written but the statistics file when
    ``values['stats']`` is given.

    Parameters
    ----------
    values : dict
        Validated values of ``gain-normalize`` (``frames`` and ``outdir`` are not used).
    frames : ndarray, shape (Z, Y, X)
        The data set in ADU.

    Returns
    -------
    RunResult
        ``arrays['output']``: the corrected stack (the input's dtype with ``dtype='keep'``,
        rounded and clipped, never wrapped; else float32); numbers ``sigma0``, ``i0``,
        ``n_frames``, ``n_accepted``, ``n_zero_sigma``, ``clipped_low``, ``clipped_high``;
        the command line's messages (the clipping warning among them).

    Raises
    ------
    CamcorrError
        As ``camcorr gain normalize``; a `frames` that is not 3-D.
    """
    frames = np.asarray(frames)
    if frames.ndim != 3:
        raise CamcorrError("not a stack", argument="frames", expected="a (Z, Y, X) array",
                           received=f"shape {frames.shape}")
    _check_targets(values, frames.dtype)
    memory = parse_memory(values.get("memory"))
    kwargs = GAIN_NORMALIZE.engine_kwargs(values)
    stats, source = _measure_or_load(values, kwargs, lambda: _array_blocks(frames, memory))
    if values.get("stats") and not values.get("from_stats"):
        stats.save(values["stats"])
    result, s0, c0 = _targets(values, kwargs, stats, source, frames.dtype)
    dtype = frames.dtype if values["dtype"] == "keep" else np.dtype(np.float32)
    block = _normalize_block(memory, frames.shape[1:], frames.dtype, dtype, frames.shape[0])
    norm_kw = dict(kwargs_for(normalize, kwargs), sigma0=s0, i0=c0, dtype=np.float64)
    clipped = [0, 0, 0]
    out = np.empty(frames.shape, dtype)
    i = 0
    for res in _corrected(lambda i0, i1: frames[i0:i1], frames.shape[0], block, stats, norm_kw,
                          dtype, clipped):
        out[i:i + len(res)] = res
        i += len(res)
    _clip_note(result, "the stack", dtype, clipped)
    result.numbers.update(clipped_low=clipped[0], clipped_high=clipped[1])
    result.arrays["output"] = out
    if values.get("stats") and not values.get("from_stats"):
        result.outputs.append(str(values["stats"]))
        result.say(f"camcorr gain normalize: statistics in {values['stats']}")
    return result


def _check_targets(values: Dict[str, Any], in_dtype) -> None:
    """The checks of sigma0 and I0 before any statistics are computed or saved."""
    out_dtype = in_dtype if values["dtype"] == "keep" else np.dtype(np.float32)
    if values.get("sigma0") is not None and values["sigma0"] <= 0:
        raise CamcorrError("value out of range", argument="--sigma0",
                           expected="a positive standard deviation", received=repr(values["sigma0"]))
    if values.get("i0") is not None and out_dtype is not None:
        check_levels_fit(out_dtype, values.get("sigma0") or 0.0, values["i0"])


def _measure_or_load(values: Dict[str, Any], kwargs: Dict[str, Any], blocks_of):
    """(statistics, where they come from): loaded from ``from_stats`` or measured over the
    blocks of frames ``blocks_of()`` yields."""
    if values.get("from_stats"):
        stats = NormalizationStats.load(values["from_stats"], argument="--from-stats")
        return stats, f"statistics from {values['from_stats']}"
    stats = compute_stats(blocks_of, **kwargs_for(compute_stats, kwargs))
    source = (f"{stats.n_accepted} of {stats.n_frames} frames used "
              f"({stats.n_rejected} rejected as blank/deviant"
              + (": frames " + ", ".join(str(i) for i in np.flatnonzero(~stats.accepted)[:10])
                 + (" ..." if stats.n_rejected > 10 else "") if stats.n_rejected else "")
              + ")")
    return stats, source


def _targets(values, kwargs, stats, source, in_dtype):
    """The RunResult with the run's numbers, and the target sigma0 and I0 (checked against the
    output type; dead pixels counted, or refused with ``zero_sigma='error'``)."""
    out_dtype = in_dtype if values["dtype"] == "keep" else np.dtype(np.float32)
    n_dead = stats.n_zero_sigma()
    sigma0, i0 = kwargs["sigma0"], kwargs["i0"]
    s0 = stats.sigma0() if sigma0 is None else sigma0
    c0 = stats.i0() if i0 is None else i0
    result = RunResult(numbers={"sigma0": s0, "i0": c0, "n_frames": stats.n_frames,
                                "n_accepted": stats.n_accepted, "n_zero_sigma": n_dead})
    result.say(f"camcorr gain normalize: {source}; sigma0 = {s0:.4g} ADU, I0 = {c0:.4g} ADU")
    if n_dead:
        if kwargs["zero_sigma"] == "error":
            normalize(np.zeros((1,) + stats.shape), stats,
                      **dict(kwargs_for(normalize, kwargs), sigma0=s0, i0=c0))
        result.say(f"camcorr gain normalize: {n_dead} dead pixel(s) (sigma 0) set to I0")
    if out_dtype is not None:
        check_levels_fit(out_dtype, s0, c0, given_i0=i0 is not None)
    return result, s0, c0


def _normalize_block(memory: int, plane_shape, in_dtype, out_dtype, n_planes: int) -> int:
    """Planes per block of the correction pass: the input, the float64 working copies of
    normalize_frame and the rounding/clipping of cast_to_dtype, and the output."""
    px = int(np.prod(plane_shape))
    return planes_per_block(memory, px, np.dtype(in_dtype).itemsize + 6 * 8
                            + np.dtype(out_dtype).itemsize, fixed_bytes=4 * 8 * px,
                            n_planes=n_planes)


def _corrected(read, n_planes: int, block: int, stats, norm_kw, dtype, clipped):
    """The corrected blocks of ``read(i0, i1)`` (one block in memory at a time), cast to
    `dtype`; counts the values clipped below/above and all values in `clipped`."""
    for i0, i1 in blocks(n_planes, block):
        res = normalize(read(i0, i1), stats, **norm_kw)
        res, n_low, n_high = cast_to_dtype(res, dtype, return_counts=True)
        clipped[0] += n_low
        clipped[1] += n_high
        clipped[2] += res.size
        yield res
        del res


def _clip_note(result: RunResult, name: str, dtype, clipped) -> None:
    """The warning when values of `name` were clipped to the output type's range."""
    n_low, n_high, n_values = clipped
    if n_low or n_high:
        share = 100.0 * (n_low + n_high) / max(1, n_values)
        result.note(f"camcorr gain normalize: warning: {share:.3g} % of the values of "
                    f"{name} clipped to the {np.dtype(dtype)} range ({n_low} below, "
                    f"{n_high} above); use --dtype float32 to keep them")


def check_levels_fit(dtype, sigma0: float, i0: float, *, given_i0: bool = True):
    """Refuse target levels that saturate an integer output type (before any file is written).

    Raises
    ------
    CamcorrError
        If ``i0`` (the target mean) lies outside the range of `dtype`, or ``i0 +- 3 sigma0``
        does not fit in it at all (every pixel would be clipped).
    """
    dtype = np.dtype(dtype)
    if dtype.kind not in "ui":
        return
    info = np.iinfo(dtype)
    if not (info.min <= i0 <= info.max) or i0 + 3 * sigma0 < info.min or \
            i0 - 3 * sigma0 > info.max:
        raise CamcorrError("target level outside the output type's range",
                           argument="--i0" if given_i0 else "--sigma0/--i0",
                           expected=f"I0 within [{info.min}, {info.max}] for {dtype} output",
                           received=f"I0 = {i0:.6g} ADU, sigma0 = {sigma0:.6g} ADU: nearly every "
                                    f"pixel would be clipped to {info.max if i0 > info.max else info.min}",
                           fix="Choose an I0 inside the range, or write --dtype float32")


#: Planes per block of the statistics pass (the partial moments merged per block, so the
#: statistics depend on it at the last bit; fewer only if the memory budget needs it).
STATS_BLOCK = 16


def _stats_block(memory: int, plane_shape, dtype) -> int:
    """Planes per block of the statistics pass (at most :data:`STATS_BLOCK`): the block, its
    float64 copy and the moments' float64 temporaries.  The statistics depend on the blocks, so
    the file and the in-memory paths both take them from here."""
    px = int(np.prod(plane_shape))
    return planes_per_block(memory, px, np.dtype(dtype).itemsize + 3 * 8, fixed_bytes=8 * 8 * px,
                            n_planes=STATS_BLOCK)


def _file_blocks(paths, memory: int):
    """Blocks of at most :data:`STATS_BLOCK` planes of every file in turn, (n, Y, X)."""
    for path in paths:
        with PlaneReader(path, argument="FRAMES") as reader:
            size = _stats_block(memory, reader.plane_shape, reader.dtype)
            for i0, i1 in blocks(reader.n_planes, size):
                yield reader.read(i0, i1)


def _array_blocks(frames: np.ndarray, memory: int):
    """Blocks of an in-memory (Z, Y, X) stack, as :func:`_file_blocks` reads one file of it."""
    for i0, i1 in blocks(frames.shape[0], _stats_block(memory, frames.shape[1:], frames.dtype)):
        yield frames[i0:i1]


def _image2d(path, argument):
    img = np.asarray(read_image(path, argument=argument))
    img = np.squeeze(img)
    if img.ndim != 2:
        raise CamcorrError("not a 2D image", argument=argument,
                           expected="a single-plane image (Y, X)",
                           received=f"an image of shape {img.shape}",
                           fix="Save one plane, or an average of frames, as its own TIFF")
    return img


def run_frc(values: Dict[str, Any]) -> RunResult:
    """FRC of two TIFF images; print a summary, write the JSON and plot if asked."""
    a = _image2d(values["a"], "A")
    b = _image2d(values["b"], "B")
    inputs = [values["a"], values["b"]]
    for key, flag in (("plot", "--plot"), ("json", "--json")):
        if values.get(key):
            ensure_not_input(values[key], inputs, argument=flag)
    res = frc(a, b, **FRC.engine_kwargs(values))
    result = _frc_result(res)
    if values.get("json"):
        res.save_json(values["json"], inputs=inputs)
        result.outputs.append(str(values["json"]))
        result.say(f"camcorr frc: wrote {values['json']}")
    if values.get("plot"):
        res.plot(values["plot"], inputs=inputs,
                 title=f"FRC {Path(values['a']).name} vs {Path(values['b']).name}")
        result.outputs.append(str(values["plot"]))
        result.say(f"camcorr frc: wrote {values['plot']}")
    return result


def frc_array(values: Dict[str, Any], a: np.ndarray):
    """``frc`` of an in-memory image `a` and the image file ``values['b']``, as the command line
    computes it for two files (the same reading of B, squeezing to 2-D and engine call); no
    file written.

    Parameters
    ----------
    values : dict
        Validated values of ``frc`` (``a``, ``plot`` and ``json`` are not used).
    a : ndarray
        The first image (Y, X), or any array that squeezes to it (a single-plane stack).

    Returns
    -------
    (RunResult, FRCResult)
        The command line's RunResult (numbers ``crossover``, ``fraction_above``; its summary
        line) and the full FRC result (:meth:`~camcorr.aposteriori.frc.FRCResult.to_dict` is
        the command line's JSON).

    Raises
    ------
    CamcorrError
        `a` not 2-D after squeezing, B unreadable or of another size, bad values.
    """
    a = np.squeeze(np.asarray(a))
    if a.ndim != 2:
        raise CamcorrError("not a 2D image", argument="A", expected="a single-plane image (Y, X)",
                           received=f"an image of shape {a.shape}",
                           fix="Use one plane, or an average of frames")
    b = _image2d(values["b"], "B")
    res = frc(a, b, **FRC.engine_kwargs(values))
    return _frc_result(res), res


def _frc_result(res) -> RunResult:
    """The RunResult of an FRC: its curves, numbers and summary line."""
    cross = (f"{res.crossover:.4f} cycles/pixel ({res.resolution:.2f} pixels)"
             if res.crossover else "none (above the noise curve up to Nyquist)")
    result = RunResult(arrays={"frequency": res.frequency, "frc": res.frc,
                               "threshold": res.threshold},
                       numbers={"crossover": res.crossover, "fraction_above": res.fraction_above})
    result.say(f"camcorr frc: cross-over with the {res.n_sigma:g}-sigma curve: {cross}; "
               f"{100 * res.fraction_above:.1f} % of rings above the curve")
    return result
