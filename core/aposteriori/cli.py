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

__all__ = ["run_normalize", "run_frc"]


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
    out_dtype = first_dtype if values["dtype"] == "keep" else np.dtype(np.float32)
    if values.get("sigma0") is not None and values["sigma0"] <= 0:
        raise CamcorrError("value out of range", argument="--sigma0",
                           expected="a positive standard deviation", received=repr(values["sigma0"]))
    if values.get("i0") is not None:  # before the statistics are computed or saved
        check_levels_fit(out_dtype, values.get("sigma0") or 0.0, values["i0"])
    memory = parse_memory(values.get("memory"))
    stats_path = Path(values["stats"]) if values.get("stats") else outdir / "normalization_stats.npz"
    ensure_not_input(stats_path, paths, argument="--stats")
    kwargs = GAIN_NORMALIZE.engine_kwargs(values)
    if values.get("from_stats"):
        stats = NormalizationStats.load(values["from_stats"], argument="--from-stats")
        source = f"statistics from {values['from_stats']}"
    else:
        stats = compute_stats(lambda: _file_blocks(paths, memory),
                              **kwargs_for(compute_stats, kwargs))
        source = (f"{stats.n_accepted} of {stats.n_frames} frames used "
                  f"({stats.n_rejected} rejected as blank/deviant"
                  + (": frames " + ", ".join(str(i) for i in np.flatnonzero(~stats.accepted)[:10])
                     + (" ..." if stats.n_rejected > 10 else "") if stats.n_rejected else "")
                  + ")")
        stats.save(stats_path, inputs=paths)
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
    check_levels_fit(out_dtype, s0, c0, given_i0=i0 is not None)
    for src, dst in zip(paths, outputs):
        norm_kw = dict(kwargs_for(normalize, kwargs), sigma0=s0, i0=c0, dtype=np.float64)
        with PlaneReader(src, argument="FRAMES") as reader:
            info = reader.info
            dtype = reader.dtype if values["dtype"] == "keep" else np.dtype(np.float32)
            px = int(np.prod(reader.plane_shape))
            # float64 working copies of normalize_frame and the rounding/clipping of cast_to_dtype
            block = planes_per_block(memory, px, reader.dtype.itemsize + 6 * 8 + dtype.itemsize,
                                     fixed_bytes=4 * 8 * px, n_planes=reader.n_planes)
            clipped = [0, 0, 0]  # below, above, values
            # any error (shape against the statistics, values) before the output exists
            normalize(reader.read(0, 1), stats, **norm_kw)

            def _corrected(reader=reader, block=block, dtype=dtype, clipped=clipped):
                for i0, i1 in blocks(reader.n_planes, block):
                    res = normalize(reader.read(i0, i1), stats, **norm_kw)
                    res, n_low, n_high = cast_to_dtype(res, dtype, return_counts=True)
                    clipped[0] += n_low
                    clipped[1] += n_high
                    clipped[2] += res.size
                    yield res
                    del res  # one block in memory at a time

            write_planes(dst, info.shape, dtype, _corrected(), inputs=paths, argument="--output",
                         **info.write_kwargs())
        n_low, n_high, n_values = clipped
        if n_low or n_high:
            share = 100.0 * (n_low + n_high) / max(1, n_values)
            result.note(f"camcorr gain normalize: warning: {share:.3g} % of the values of "
                        f"{src.name} clipped to the {np.dtype(dtype)} range ({n_low} below, "
                        f"{n_high} above); use --dtype float32 to keep them")
        result.outputs.append(str(dst))
    if not values.get("from_stats"):
        result.outputs.append(str(stats_path))
    result.say(f"camcorr gain normalize: wrote {len(outputs)} file(s) to {outdir}"
               + ("" if values.get("from_stats") else f"; statistics in {stats_path}"))
    return result


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


def _file_blocks(paths, memory: int):
    """Blocks of at most :data:`STATS_BLOCK` planes of every file in turn, (n, Y, X)."""
    for path in paths:
        with PlaneReader(path, argument="FRAMES") as reader:
            px = int(np.prod(reader.plane_shape))
            # the block, its float64 copy and the moments' float64 temporaries
            size = planes_per_block(memory, px, reader.dtype.itemsize + 3 * 8,
                                    fixed_bytes=8 * 8 * px, n_planes=STATS_BLOCK)
            for i0, i1 in blocks(reader.n_planes, size):
                yield reader.read(i0, i1)


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
    cross = (f"{res.crossover:.4f} cycles/pixel ({res.resolution:.2f} pixels)"
             if res.crossover else "none (above the noise curve up to Nyquist)")
    result = RunResult(arrays={"frequency": res.frequency, "frc": res.frc,
                               "threshold": res.threshold},
                       numbers={"crossover": res.crossover, "fraction_above": res.fraction_above})
    result.say(f"camcorr frc: cross-over with the {res.n_sigma:g}-sigma curve: {cross}; "
               f"{100 * res.fraction_above:.1f} % of rings above the curve")
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
