"""Command-line runner of ``camcorr median`` (see :data:`camcorr.median.operations.MEDIAN`)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List

import numpy as np

from ..errors import CamcorrError
from ..io import ensure_not_input, write_tiff
from ..operations import RunResult
from ..streaming import PlaneReader, blocks, parse_memory, planes_per_block, write_planes
from .noise_model import DISPERSION_WARN, chi2_power
from .operations import MEDIAN
from .selective import BadPixels, find_bad_pixels, replace_bad_pixels

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


def run_median(values: Dict[str, Any]) -> RunResult:
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
    memory = parse_memory(values.get("memory"))
    with PlaneReader(src, argument="STACK") as reader:
        info = reader.info
        kwargs = MEDIAN.engine_kwargs(values, image_shape=reader.plane_shape)
        _, results, _ = _stream_median(reader, out, memory, kwargs)
    dispersions = [r.thresholds.get("dispersion") or 1.0 for r in results]
    percents = [100.0 * r.counts["flagged_std"] / r.counts["pixels"] for r in results]
    if len(results) > 1:
        # channels differ in brightness: each channel's pixels were judged over its own planes
        mask = np.zeros(info.shape[-2:], bool)
        for r in results:
            mask |= r.mask
        detail = ", ".join(f"channel {c}: {r.counts['flagged']}" for c, r in enumerate(results))
        summary = (f"replaced {int(mask.sum())} pixel(s) ({100 * mask.mean():.3f} %) in every "
                   f"plane ({detail})")
    else:
        res = results[0]
        mask = res.mask
        t = res.thresholds
        if rule == "chi2":
            thr = chi2_summary(res)
        else:
            thr = (f"noise > {t['std_ratio']:.2f} x local median" if t.get("std_ratio")
                   else f"|std - local median| > {t['std']:.3g} ADU")
        summary = (f"replaced {res.counts['flagged']} pixel(s) ({res.counts['percent']:.3f} %) "
                   f"in every plane; threshold: {thr}"
                   + (f"; mean pass flagged {res.counts['flagged_mean']}" if kwargs["mean_pass"]
                      else ""))
    # the corrected stack was streamed to its file (never whole in memory): arrays hold the mask
    result = RunResult(arrays={"mask": mask},
                       numbers={"flagged": int(mask.sum()), "percent": 100.0 * float(mask.mean())})
    result.outputs.append(str(out))
    result.say(f"camcorr median: {summary}")
    if rule == "chi2":
        for text in chi2_warnings(dispersions, percents,
                                  bool(kwargs.get("variance_map") is not None)):
            result.note(f"camcorr median: warning: {text}")
    result.say(f"camcorr median: wrote {out}")
    if mask_out is not None:
        write_tiff(mask_out, mask.astype(np.uint8) * 255, inputs=[src, out])
        result.outputs.append(str(mask_out))
        result.say(f"camcorr median: wrote mask {mask_out}")
    return result


def _stream_median(reader: PlaneReader, out: Path, memory: int, kwargs: Dict[str, Any]):
    """Statistics pass then application pass over blocks of planes; writes `out` atomically.

    A stack with a C axis of more than one channel is judged channel by channel (each channel's
    std projection over its own planes), as its channels differ in brightness.  The result is
    bit-identical to :func:`~camcorr.median.selective_median` on the whole stack (or channel).

    Returns
    -------
    out : pathlib.Path
    results : list of BadPixels
        One per channel (one for a stack without channels), with ``counts['ring_fallback']``.
    channel : ndarray of int, shape (n_planes,)
        Channel of every plane in storage order.
    """
    info = reader.info
    shape = info.shape
    axes = (info.axes or "").upper()
    n = reader.n_planes
    flat = np.arange(n, dtype=np.int64).reshape(shape[:-2] if len(shape) > 2 else (1,))
    channel = np.zeros(n, np.int64)
    if "C" in axes and len(axes) == len(shape) and shape[axes.index("C")] > 1:
        cax = axes.index("C")
        groups = [np.take(flat, c, axis=cax).ravel() for c in range(shape[cax])]
        for c, g in enumerate(groups):
            channel[g] = c
    else:
        groups = [flat.ravel()]
    px = int(np.prod(reader.plane_shape))
    item = reader.dtype.itemsize
    # per-pixel maps of the statistics (accumulators, projections, 3x3 statistics, masks)
    fixed = 16 * 8 * px
    results: List[BadPixels] = []
    stat_block = planes_per_block(memory, px, 2 * item + 1, fixed_bytes=fixed, n_planes=n)
    for g in groups:
        def _blocks(g=g):
            for i0, i1 in blocks(g.size, stat_block):
                planes, pos = reader.read_unique(g[i0:i1])
                yield planes[pos] if not np.array_equal(pos, np.arange(pos.size)) else planes
                del planes
        results.append(find_bad_pixels(_blocks(), **kwargs))
    masks = [r.mask for r in results]
    fallback = [0] * len(results)
    apply_block = planes_per_block(memory, px, 2 * item + 4, fixed_bytes=fixed, n_planes=n)

    def _corrected():
        for i0, i1 in blocks(n, apply_block):
            block = reader.read(i0, i1)
            chans = channel[i0:i1]
            if len(masks) == 1:
                res, fallback[0] = replace_bad_pixels(block, masks[0], return_fallback=True)
            else:
                res = np.empty_like(block)
                for c in np.unique(chans):
                    sel = chans == c
                    res[sel], fallback[c] = replace_bad_pixels(block[sel], masks[c],
                                                               return_fallback=True)
            del block
            yield res
            del res  # one block in memory at a time

    write_planes(out, shape, reader.dtype, _corrected(), inputs=[reader.path],
                 argument="--output", **info.write_kwargs())
    for r, f in zip(results, fallback):
        r.counts["ring_fallback"] = f
    return out, results, channel
