"""Command-line runner of ``camcorr median`` (see :data:`camcorr.median.operations.MEDIAN`)."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Dict

import numpy as np

from ..errors import CamcorrError
from ..io import ensure_not_input, read_tiff, write_tiff
from .noise_model import DISPERSION_WARN, check_variance_map, chi2_power, read_variance_map
from .selective import selective_median

__all__ = ["run_median", "default_output", "chi2_summary", "chi2_warnings",
           "CHI2_WARN_PERCENT"]

#: Rule chi2: warn when the test flags more than this percentage of pixels (clean data: the
#: false-positive rate, 0.05 % by default; the real Flash4 bead z-stack of ../shared/data:
#: 4.5 % in 10 planes, 7.5 % in 61).
CHI2_WARN_PERCENT = 2.0


def default_output(src: Path) -> Path:
    """``STACK_median.tif`` beside the input (never the input itself)."""
    name = src.name
    for ext in (".ome.tiff", ".ome.tif", ".tiff", ".tif"):
        if name.lower().endswith(ext):
            return src.with_name(name[: -len(ext)] + "_median" + ext)
    return src.with_name(name + "_median.tif")


def chi2_summary(bad) -> str:
    """One line on a rule-'chi2' result: threshold, fitted model, map rule, statistical power."""
    t, n = bad.thresholds, bad.n_planes
    power = ", ".join(f"{f:g}x: {100 * chi2_power(n, f, t['fpr']):.1f} %" for f in (2, 4, 5))
    text = (f"noise > {t['std_ratio']:.2f} x expected (chi-square, false-positive rate "
            f"{t['fpr']:g}, {n} planes; fitted gain {t['gain']:.4g} ADU/e-, intercept "
            f"{t['intercept']:.4g} ADU^2; dispersion {t['dispersion']:.2f}, 1 = noise as "
            f"modelled); chance of finding a pixel with noise {power}")
    if t.get("map_factor") is not None:
        text += (f"; variance map: {bad.counts['flagged_map']} pixel(s) with read noise >= "
                 f"{t['map_factor']:g} x its median")
    return text


def chi2_warnings(dispersions, percents, with_map: bool):
    """Warnings on a rule-'chi2' result whose noise the model does not explain.

    `dispersions` and `percents` (pixels flagged by the test itself, not by the map rule): one
    value per channel.
    """
    out = []
    worst = max(dispersions) if dispersions else 1.0
    percent = max(percents) if percents else 0.0
    if worst > DISPERSION_WARN:
        out.append(f"the pixels' noise varies {worst:.2f}x more than shot plus read noise "
                   f"explain (1.0 expected): "
                   + ("the planes may differ by more than noise (a z-stack through a specimen, "
                      "a moving scene): use --rule mad" if with_map else
                      "read noise that differs from pixel to pixel (give --variance-map) or "
                      "planes that differ by more than noise (a z-stack through a specimen, a "
                      "moving scene: use --rule mad)"))
    elif percent > CHI2_WARN_PERCENT:
        out.append(f"the test found {percent:.1f} % of the pixels noisier than shot plus read "
                   "noise explain; if the planes differ by more than noise (a z-stack through "
                   "a specimen, a moving scene), use --rule mad")
    return out


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
    rule = values["rule"]
    vmap_path = values.get("variance_map")
    if vmap_path and rule != "chi2":
        raise CamcorrError("a variance map needs rule 'chi2'", argument="--variance-map",
                           expected="--rule chi2 together with --variance-map",
                           received=f"--rule {rule}", fix="Add --rule chi2 or drop the map")
    data, info = read_tiff(src, argument="STACK")
    kwargs = dict(rule=rule, k=values["k"], mean_pass=values["mean_pass"],
                  mean_k=values.get("mean_k"))
    if rule == "chi2":
        kwargs.update(fpr=values.get("fpr"), map_factor=values.get("map_factor"))
        kwargs = {k: v for k, v in kwargs.items() if v is not None}
        if vmap_path:
            kwargs["variance_map"] = check_variance_map(
                read_variance_map(vmap_path, argument="--variance-map"), data.shape[-2:],
                argument="--variance-map")
    dispersions, percents = [], []
    axes = info.axes or ""
    if "C" in axes and data.shape[axes.index("C")] > 1:
        # channels differ in brightness: judge each channel's pixels over its own planes
        cax = axes.index("C")
        corrected = np.empty_like(data)
        mask = np.zeros(data.shape[-2:], bool)
        flagged = []
        for c in range(data.shape[cax]):
            res = selective_median(np.take(data, c, axis=cax), **kwargs)
            dispersions.append(res.thresholds.get("dispersion") or 1.0)
            percents.append(100.0 * res.counts["flagged_std"] / res.counts["pixels"])
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
        dispersions.append(res.thresholds.get("dispersion") or 1.0)
        percents.append(100.0 * res.counts["flagged_std"] / res.counts["pixels"])
        t = res.thresholds
        if rule == "chi2":
            thr = chi2_summary(res.bad)
        else:
            thr = (f"noise > {t['std_ratio']:.2f} x local median" if t.get("std_ratio")
                   else f"|std - local median| > {t['std']:.3g} ADU")
        summary = (f"replaced {res.counts['flagged']} pixel(s) ({res.counts['percent']:.3f} %) "
                   f"in every plane; threshold: {thr}"
                   + (f"; mean pass flagged {res.counts['flagged_mean']}" if kwargs["mean_pass"]
                      else ""))
    write_tiff(out, corrected, inputs=[src], **info.write_kwargs())
    print(f"camcorr median: {summary}")
    if rule == "chi2":
        for text in chi2_warnings(dispersions, percents,
                                  bool(kwargs.get("variance_map") is not None)):
            print(f"camcorr median: warning: {text}", file=sys.stderr)
    print(f"camcorr median: wrote {out}")
    if mask_out is not None:
        write_tiff(mask_out, mask.astype(np.uint8) * 255, inputs=[src, out])
        print(f"camcorr median: wrote mask {mask_out}")
    return 0
