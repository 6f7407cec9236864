"""Command-line runners of ``camcorr flatfield estimate`` and ``camcorr flatfield apply``."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional

from ..operations import RunResult, kwargs_for
from ..streaming import PlaneReader, blocks, parse_memory, planes_per_block, write_planes
from .operations import APPLY, estimate_kwargs

__all__ = ["run_estimate", "run_apply", "apply_setup", "results_line", "quality_report", "write_report",
           "RESULT_COLUMNS"]


def run_estimate(values: Dict) -> RunResult:
    """Command-line runner of ``camcorr flatfield estimate``."""
    from . import estimate_flatfield, format_quality, save_profiles

    result = RunResult()

    kwargs = estimate_kwargs(values)
    tiles: List[str] = list(values["tiles"])
    profiles = estimate_flatfield(tiles, **kwargs)
    out = save_profiles(profiles, values["output"], inputs=tiles)
    result.outputs.append(str(out))
    result.arrays.update(flatfield=profiles.flatfield, darkfield=profiles.darkfield)
    result.numbers.update(profiles.quality or {})
    used = profiles.meta.get("tiles_used")
    result.say(f"flat-field ({profiles.source}) written to {out}")
    if used:
        result.say(f"tiles used: {','.join(str(u) for u in used)}; planes: "
                   f"{profiles.meta.get('n_planes_used')}")
    if profiles.meta.get("sigma") is not None:
        how = ("chosen by held-out validation" if profiles.meta.get("smoothing_chosen")
               else "as given")
        result.say(f"smoothing: sigma {profiles.meta['sigma']:g} px, statistic "
                   f"{profiles.meta.get('statistic')} ({how})")
        if profiles.meta.get("statistic") == "quantiles":
            dark = profiles.darkfield
            result.say(f"additive term (flare, haze) fitted with the flat-field; the stored "
                       f"darkfield includes it: {float(dark.min()):.1f} to "
                       f"{float(dark.max()):.1f} ADU")
    base = profiles.baseline
    result.say(f"baseline: {base:.2f} ADU" if not profiles.per_image_baseline
               else f"baseline: per image ({len(base)} values)")
    result.say(format_quality(profiles.quality))
    result.say(results_line(profiles))
    if values.get("report"):
        result.outputs.append(str(write_report(profiles, values["report"],
                                               inputs=tiles + [str(out)])))
        result.say(f"quality report (JSON) written to {values['report']}")
    return result


def _apply_file(path, out, profiles, *, index: int, inputs, memory: int, baseline: str,
                clip: bool, dtype, resample: bool, rescale: str = "none",
                counts: Optional[Dict] = None):
    """Flat-field correct one tile file to file in blocks of planes (see camcorr.streaming).

    Bit-identical to ``apply_flatfield`` on the whole tile: the profiles are resampled and
    rescaled once (if asked; the rescaling uses the whole flat-field) and a 3D flat-field is cut
    to the block's planes.  `counts` receives the clipped pixels of all blocks and the factor
    the flat-field was divided by.
    """
    import numpy as np

    from ..errors import CamcorrError
    from ..io import resolve_dtype
    from . import apply_flatfield, resample_profiles
    from .apply import rescale_flatfield
    from .profiles import Profiles, check_profiles

    check_profiles(profiles)
    argument = f"tile {index + 1} ({path})"
    with PlaneReader(path, argument=f"tile {index + 1}") as reader:
        info = reader.info
        shape = info.shape
        if len(shape) not in (2, 3):
            raise CamcorrError("image must be 2D (Y, X) or 3D (Z, Y, X)", argument=argument,
                               expected="a 2D or 3D image",
                               received=f"shape {shape}, dtype {reader.dtype}")
        flat = profiles.flatfield
        if flat.ndim == 3 and (len(shape) != 3 or shape[0] != flat.shape[0]):
            raise CamcorrError("3D flat-field needs a stack with as many planes",
                               argument=argument,
                               expected=f"a (Z, Y, X) stack with Z = {flat.shape[0]}",
                               received=f"shape {shape}, dtype {reader.dtype}")
        prof = profiles
        if resample and tuple(shape[-2:]) != tuple(flat.shape[-2:]):
            prof = resample_profiles(profiles, shape[-2:])  # once, not per block
        factor = rescale_flatfield(prof.flatfield, rescale)[1]  # over the whole flat-field
        target = resolve_dtype(reader.dtype, dtype)
        px = int(np.prod(reader.plane_shape))
        # input, float32 result and the float32 temporaries of clipping and casting, output
        block = planes_per_block(memory, px, reader.dtype.itemsize + 4 * 4 + target.itemsize,
                                 fixed_bytes=4 * 4 * px, n_planes=reader.n_planes)

        def _apply(z0, z1, tally=None):
            data = reader.read(z0, z1)
            p = prof
            if prof.flatfield.ndim == 3:
                p = Profiles(flatfield=prof.flatfield[z0:z1], darkfield=prof.darkfield[z0:z1],
                             baseline=prof.baseline, source=prof.source)
            img = data if len(shape) == 3 else data[0]
            return apply_flatfield(img, p, baseline=baseline, index=index, clip=clip,
                                   dtype=dtype, resample=resample, argument=argument,
                                   rescale=factor, counts=tally)

        _apply(0, 1)  # any error (size, baseline index) before the output exists

        total = {"clipped_low": 0, "clipped_high": 0}

        def _corrected():
            for z0, z1 in blocks(reader.n_planes, block):
                tally: Dict = {}
                res = _apply(z0, z1, tally)
                total["clipped_low"] += tally["clipped_low"]
                total["clipped_high"] += tally["clipped_high"]
                yield res
                del res  # one block in memory at a time

        write_planes(out, shape, target, _corrected(), inputs=inputs, argument="--output",
                     **info.write_kwargs())
    if counts is not None:
        counts.update(total, rescale_factor=factor)


RESULT_COLUMNS = (("CVBefore", None, "cv_before"), ("CVAfter", None, "cv_after"),
                  ("CornerCentreBefore", None, "corner_centre_before"),
                  ("CornerCentreAfter", None, "corner_centre_after"),
                  ("CVBeforeHeldOut", "held_out", "cv_before"),
                  ("CVAfterHeldOut", "held_out", "cv_after"),
                  ("CornerCentreBeforeHeldOut", "held_out", "corner_centre_before"),
                  ("CornerCentreAfterHeldOut", "held_out", "corner_centre_after"))
"""Columns of the one-line ``results:`` summary (the CellProfiler measurement names)."""


def results_line(profiles) -> str:
    """``results: CVBefore=... CVAfterHeldOut=... OverFitting=0|1 Sigma=...``: the quality
    figures as one machine-readable line (Fiji puts it in its Results table; NaN when not
    measured)."""
    q = profiles.quality or {}
    parts = []
    for col, sub, key in RESULT_COLUMNS:
        d = q.get(sub) if sub else q
        v = (d or {}).get(key)
        parts.append(f"{col}={float(v):.6g}" if v is not None else f"{col}=NaN")
    parts.append(f"OverFitting={int(bool(q.get('overfit')))}")
    sigma = (profiles.meta or {}).get("sigma")
    parts.append(f"Sigma={float(sigma):g}" if sigma is not None else "Sigma=NaN")
    return "results: " + " ".join(parts)


def quality_report(profiles) -> Dict:
    """The JSON report of an estimate: source, smoothing, in-sample and held-out quality."""
    from ..jsonio import jsonable

    meta = profiles.meta or {}
    return jsonable({
        "source": profiles.source,
        "smoothing": {k: meta.get(k) for k in ("sigma", "statistic", "binning",
                                               "smoothing_chosen", "smoothing_table")
                      if k in meta},
        "tiles_used": meta.get("tiles_used"),
        "n_planes_used": meta.get("n_planes_used"),
        "quality": profiles.quality,
    })


def write_report(profiles, path, *, inputs=()) -> Path:
    """Write :func:`quality_report` as JSON, atomically; never over an input."""
    import json

    from ..io import atomic_write, ensure_not_input

    p = Path(path)
    ensure_not_input(p, inputs)
    text = json.dumps(quality_report(profiles), indent=2)
    atomic_write(p, lambda tmp: Path(tmp).write_text(text), suffix=".json")
    return p


def apply_setup(values: Dict):
    """The profiles and the engine arguments of ``flatfield-apply`` from validated values.

    One translation for the command line (:func:`run_apply`, file to file in blocks) and the
    in-memory path of the Fiji bridge, so both apply the same flat-field the same way.

    Returns
    -------
    (Profiles, dict)
        The flat-field model, and ``baseline``, ``clip``, ``dtype`` (None: keep the input's),
        ``resample`` and ``rescale`` for :func:`camcorr.flatfield.apply_flatfield`.

    Raises
    ------
    CamcorrError
        Neither ``profiles`` nor ``models_folder`` given, or they cannot be read.
    """
    from ..errors import CamcorrError
    from . import apply_flatfield, load_profiles, read_profiles

    if values.get("profiles"):
        profiles = read_profiles(values["profiles"], argument="--profiles")
    elif values.get("models_folder"):
        profiles = load_profiles(values["models_folder"], values.get("channel"))
    else:
        raise CamcorrError("no flat-field given", argument="--profiles",
                           expected="--profiles profiles.npz, or --models-folder DIR --channel "
                                    "NAME", received="neither")
    kwargs = kwargs_for(apply_flatfield, APPLY.engine_kwargs(values))
    return profiles, {"baseline": kwargs["baseline"], "clip": bool(kwargs["clip"]),
                      "dtype": None if values.get("dtype") in (None, "keep") else values["dtype"],
                      "resample": bool(kwargs["resample"]),
                      "rescale": kwargs.get("rescale") or "none"}


def run_apply(values: Dict) -> RunResult:
    """Command-line runner of ``camcorr flatfield apply``."""
    result = RunResult()
    from ..errors import CamcorrError

    profiles, kwargs = apply_setup(values)
    outdir = Path(values["output"])
    tiles = list(values["tiles"])
    names = [Path(t).name for t in tiles]
    if len(set(names)) != len(names):
        raise CamcorrError("two tiles have the same file name", argument="TILES",
                           expected="distinct file names (outputs keep the input names)",
                           received=", ".join(sorted({n for n in names if names.count(n) > 1})))
    memory = parse_memory(values.get("memory"))
    for i, path in enumerate(tiles):
        counts: Dict = {}
        _apply_file(path, outdir / names[i], profiles, index=i, inputs=tiles, memory=memory,
                    counts=counts, **kwargs)
        result.outputs.append(str(outdir / names[i]))
        low, high = counts["clipped_low"], counts["clipped_high"]
        for key, n in (("clipped_low", low), ("clipped_high", high)):
            result.numbers[key] = result.numbers.get(key, 0) + n
        if low or high:
            result.note(f"{names[i]}: {low} pixel(s) clipped at 0, "
                        f"{high} at the top of the output range")
    result.say(f"{len(tiles)} tile(s) corrected into {outdir}")
    return result
