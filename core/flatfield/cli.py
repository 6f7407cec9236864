"""Command-line runners of ``camcorr flatfield estimate`` and ``camcorr flatfield apply``."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List

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


def run_apply(values: Dict) -> int:
    """Command-line runner of ``camcorr flatfield apply``."""
    from ..errors import CamcorrError
    from ..io import read_tiff, write_tiff
    from . import apply_flatfield, load_profiles, read_profiles

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
    for i, path in enumerate(tiles):
        data, info = read_tiff(path, argument=f"tile {i + 1}")
        corrected = apply_flatfield(data, profiles, baseline=values.get("baseline") or "auto",
                                    index=i, clip=bool(values.get("clip", True)), dtype=dtype,
                                    resample=bool(values.get("resample")),
                                    argument=f"tile {i + 1} ({path})")
        kw = info.write_kwargs() if corrected.ndim == data.ndim else {}
        write_tiff(outdir / names[i], corrected, inputs=tiles, **kw)
    print(f"{len(tiles)} tile(s) corrected into {outdir}")
    return 0
