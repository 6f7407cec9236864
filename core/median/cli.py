"""Command-line runner of ``camcorr median`` (see :data:`camcorr.median.operations.MEDIAN`)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

import numpy as np

from ..errors import CamcorrError
from ..io import ensure_not_input, read_tiff, write_tiff
from .selective import selective_median

__all__ = ["run_median", "default_output"]


def default_output(src: Path) -> Path:
    """``STACK_median.tif`` beside the input (never the input itself)."""
    name = src.name
    for ext in (".ome.tiff", ".ome.tif", ".tiff", ".tif"):
        if name.lower().endswith(ext):
            return src.with_name(name[: -len(ext)] + "_median" + ext)
    return src.with_name(name + "_median.tif")


def run_median(values: Dict[str, Any]) -> int:
    """Read the stack, run the selective median, write the corrected stack (and mask)."""
    src = Path(values["image"])
    out = Path(values["output"]) if values.get("output") else default_output(src)
    mask_out = Path(values["mask_out"]) if values.get("mask_out") else None
    ensure_not_input(out, [src], argument="--output")
    if mask_out is not None:
        ensure_not_input(mask_out, [src], argument="--mask-out")
        if mask_out.resolve() == out.resolve():
            raise CamcorrError("same file for the corrected stack and the mask",
                               argument="--mask-out", expected="a path different from --output",
                               received=str(mask_out))
    data, info = read_tiff(src, argument="STACK")
    kwargs = dict(rule=values["rule"], k=values["k"], mean_pass=values["mean_pass"],
                  mean_k=values.get("mean_k"))
    axes = info.axes or ""
    if "C" in axes and data.shape[axes.index("C")] > 1:
        # channels differ in brightness: judge each channel's pixels over its own planes
        cax = axes.index("C")
        corrected = np.empty_like(data)
        mask = np.zeros(data.shape[-2:], bool)
        flagged = []
        for c in range(data.shape[cax]):
            res = selective_median(np.take(data, c, axis=cax), **kwargs)
            idx = [slice(None)] * data.ndim
            idx[cax] = c
            corrected[tuple(idx)] = res.corrected
            mask |= res.mask
            flagged.append(res.counts["flagged"])
        detail = ", ".join(f"channel {c}: {n}" for c, n in enumerate(flagged))
        summary = (f"replaced {int(mask.sum())} pixel(s) ({100 * mask.mean():.3f} %) in every "
                   f"plane ({detail})")
    else:
        res = selective_median(data, **kwargs)
        corrected, mask = res.corrected, res.mask
        t = res.thresholds
        thr = (f"noise > {t['std_ratio']:.2f} x local median" if t.get("std_ratio")
               else f"|std - local median| > {t['std']:.3g} ADU")
        summary = (f"replaced {res.counts['flagged']} pixel(s) ({res.counts['percent']:.3f} %) "
                   f"in every plane; threshold: {thr}"
                   + (f"; mean pass flagged {res.counts['flagged_mean']}" if kwargs["mean_pass"]
                      else ""))
    write_tiff(out, corrected, inputs=[src], **info.write_kwargs())
    print(f"camcorr median: {summary}")
    print(f"camcorr median: wrote {out}")
    if mask_out is not None:
        write_tiff(mask_out, mask.astype(np.uint8) * 255, inputs=[src, out])
        print(f"camcorr median: wrote mask {mask_out}")
    return 0
