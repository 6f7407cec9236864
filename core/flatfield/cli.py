"""Command-line runners of ``camcorr flatfield estimate`` and ``camcorr flatfield apply``."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List

from ..streaming import PlaneReader, blocks, parse_memory, planes_per_block, write_planes
from .operations import estimate_kwargs

__all__ = ["run_estimate", "run_apply"]


def _format_quality(q: Dict) -> str:
    if not q:
        return "quality: not measured (no tiles)"
    return (f"quality: CV of smoothed background {q['cv_before']:.4f} -> {q['cv_after']:.4f}; "
            f"corner/centre {q['corner_centre_before']:.3f} -> {q['corner_centre_after']:.3f}")


def run_estimate(values: Dict) -> int:
    """Command-line runner of ``camcorr flatfield estimate``."""
    from . import estimate_flatfield, save_profiles

    kwargs = estimate_kwargs(values)
    tiles: List[str] = list(values["tiles"])
    profiles = estimate_flatfield(tiles, **kwargs)
    out = save_profiles(profiles, values["output"], inputs=tiles)
    used = profiles.meta.get("tiles_used")
    print(f"flat-field ({profiles.source}) written to {out}")
    if used:
        print(f"tiles used: {','.join(str(u) for u in used)}; planes: "
              f"{profiles.meta.get('n_planes_used')}")
    base = profiles.baseline
    print(f"baseline: {base:.2f} ADU" if not profiles.per_image_baseline
          else f"baseline: per image ({len(base)} values)")
    print(_format_quality(profiles.quality))
    return 0


def _apply_file(path, out, profiles, *, index: int, inputs, memory: int, baseline: str,
                clip: bool, dtype, resample: bool):
    """Flat-field correct one tile file to file in blocks of planes (see camcorr.streaming).

    Bit-identical to ``apply_flatfield`` on the whole tile: the profiles are resampled once (if
    asked) and a 3D flat-field is cut to the block's planes.
    """
    import numpy as np

    from ..errors import CamcorrError
    from ..io import resolve_dtype
    from . import apply_flatfield, resample_profiles
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
        target = resolve_dtype(reader.dtype, dtype)
        px = int(np.prod(reader.plane_shape))
        # input, float32 result and the float32 temporaries of clipping and casting, output
        block = planes_per_block(memory, px, reader.dtype.itemsize + 4 * 4 + target.itemsize,
                                 fixed_bytes=4 * 4 * px, n_planes=reader.n_planes)

        def _apply(z0, z1):
            data = reader.read(z0, z1)
            p = prof
            if prof.flatfield.ndim == 3:
                p = Profiles(flatfield=prof.flatfield[z0:z1], darkfield=prof.darkfield[z0:z1],
                             baseline=prof.baseline, source=prof.source)
            img = data if len(shape) == 3 else data[0]
            return apply_flatfield(img, p, baseline=baseline, index=index, clip=clip,
                                   dtype=dtype, resample=resample, argument=argument)

        _apply(0, 1)  # any error (size, baseline index) before the output exists

        def _corrected():
            for z0, z1 in blocks(reader.n_planes, block):
                res = _apply(z0, z1)
                yield res
                del res  # one block in memory at a time

        write_planes(out, shape, target, _corrected(), inputs=inputs, argument="--output",
                     **info.write_kwargs())


def run_apply(values: Dict) -> int:
    """Command-line runner of ``camcorr flatfield apply``."""
    from ..errors import CamcorrError
    from . import load_profiles, read_profiles

    if values.get("profiles"):
        profiles = read_profiles(values["profiles"], argument="--profiles")
    elif values.get("models_folder"):
        profiles = load_profiles(values["models_folder"], values.get("channel"))
    else:
        raise CamcorrError("no flat-field given", argument="--profiles",
                           expected="--profiles profiles.npz, or --models-folder DIR --channel "
                                    "NAME", received="neither")
    outdir = Path(values["output"])
    tiles = list(values["tiles"])
    names = [Path(t).name for t in tiles]
    if len(set(names)) != len(names):
        raise CamcorrError("two tiles have the same file name", argument="TILES",
                           expected="distinct file names (outputs keep the input names)",
                           received=", ".join(sorted({n for n in names if names.count(n) > 1})))
    dtype = None if values.get("dtype") in (None, "keep") else values["dtype"]
    memory = parse_memory(values.get("memory"))
    for i, path in enumerate(tiles):
        _apply_file(path, outdir / names[i], profiles, index=i, inputs=tiles, memory=memory,
                    baseline=values.get("baseline") or "auto", clip=bool(values.get("clip", True)),
                    dtype=dtype, resample=bool(values.get("resample")))
    print(f"{len(tiles)} tile(s) corrected into {outdir}")
    return 0
