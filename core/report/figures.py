"""PNG figures of the quality report (matplotlib, object API with the Agg canvas).

Each function takes numpy arrays, writes one PNG atomically and returns its path.  No global
matplotlib state is touched (no pyplot), so the figures can be drawn from CellProfiler, a
notebook or a worker thread.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Sequence

import numpy as np

from ..io import atomic_write

__all__ = [
    "carryover_pixel_figure",
    "projections_figure",
    "hot_pixel_figure",
    "gain_figure",
    "frc_figure",
    "flatfield_figure",
    "diagonal_profile",
]

_DPI = 110


def _figure(w: float, h: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path) -> Path:
    path = Path(path)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=_DPI), suffix=".png")
    return path


def _limits(*images, lo=0.5, hi=99.9):
    data = np.concatenate([np.asarray(im, np.float64).ravel() for im in images])
    data = data[np.isfinite(data)]
    if data.size == 0:
        return 0.0, 1.0
    a, b = np.percentile(data, [lo, hi])
    return float(a), float(b if b > a else a + 1)


def carryover_pixel_figure(path, x, y, *, pixel, A=None, B=None, A_true=None, B_true=None,
                           noise=None) -> Path:
    """Calibration data of one pixel and its fit, as LLSpy's camera-correction
    documentation plots it (llspy.readthedocs.io/en/latest/camera.html).

    Parameters
    ----------
    x : ndarray, (n,)
        Bright-frame intensity minus offset, ADU.
    y : ndarray, (n,)
        Following dark-frame intensity minus offset (carryover), ADU.
    pixel : (int, int)
        Row and column of the pixel (in the calibration frame).
    A, B : float, optional
        Fitted carryover model ``A * (1 - exp(-B * x))``.
    A_true, B_true : float, optional
        Simulator truth, drawn dashed.
    noise : float, optional
        Read noise of the pixel (ADU): a +-1 sigma band around the fit.
    """
    fig = _figure(6.4, 4.4)
    ax = fig.add_subplot()
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    ax.plot(x, y, ".", ms=3, alpha=0.45, color="#1f77b4", label=f"image pairs (n={x.size})")
    xs = np.linspace(0, max(1.0, float(np.nanmax(x)) if x.size else 1.0), 400)
    if A is not None and B is not None:
        fit = A * (1 - np.exp(-B * xs))
        ax.plot(xs, fit, "-", color="#d62728", lw=2.2,
                label=f"fit: A={A:.1f} ADU, B={B:.2e} /ADU")
        if noise is not None and np.isfinite(noise):
            ax.fill_between(xs, fit - noise, fit + noise, color="#d62728", alpha=0.12,
                            label=f"fit +- read noise ({noise:.1f} ADU)")
    if A_true is not None and B_true is not None:
        ax.plot(xs, A_true * (1 - np.exp(-B_true * xs)), "--", color="k", lw=1.4,
                label=f"truth: A={A_true:.1f}, B={B_true:.2e}")
    ax.set_xlabel("intensity of bright image, minus offset (ADU)")
    ax.set_ylabel("intensity of following dark image, minus offset (ADU)")
    ax.set_title(f"Carryover of pixel (row {pixel[0]}, col {pixel[1]})")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)


def projections_figure(path, before, after, *, title_before="raw (offset subtracted)",
                       title_after="corrected", label="", difference=True) -> Path:
    """Maximum projections before and after correction, scaled identically (as in LLSpy's
    camera-correction documentation, llspy.readthedocs.io/en/latest/camera.html).

    Parameters
    ----------
    before, after : ndarray, (Y, X)
        Maximum projections over Z (deskew-free), ADU above offset.
    """
    n = 3 if difference else 2
    h, w = np.asarray(before).shape
    fig = _figure(min(15, 4.6 * n), 4.6 * h / w + 0.9)
    vmin, vmax = _limits(before, after, lo=1, hi=99.8)
    axes = fig.subplots(1, n)
    for ax, im, title in zip(axes, (before, after), (title_before, title_after)):
        art = ax.imshow(im, cmap="gray", vmin=vmin, vmax=vmax, interpolation="nearest")
        ax.set_title(title, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(art, ax=axes[:2].tolist(), shrink=0.8, label="ADU")
    if difference:
        diff = np.asarray(before, np.float64) - np.asarray(after, np.float64)
        lo, hi = _limits(diff, lo=0.5, hi=99.8)
        art2 = axes[2].imshow(diff, cmap="magma", vmin=max(0.0, lo), vmax=hi,
                              interpolation="nearest")
        axes[2].set_title("removed (before - after)", fontsize=10)
        axes[2].set_xticks([])
        axes[2].set_yticks([])
        fig.colorbar(art2, ax=axes[2], shrink=0.8, label="ADU")
    if label:
        fig.suptitle(label, fontsize=11)
    return _save(fig, path)


def hot_pixel_figure(path, mask, *, truth=None, tolerated=None, background=None) -> Path:
    """Bad-pixel mask; with `truth`, hits / misses / false alarms in three colours.

    Parameters
    ----------
    mask : ndarray of bool, (Y, X)
        Pixels flagged by the selective median filter.
    truth : ndarray of bool, (Y, X), optional
        Pixels the simulator made hot or noisy.
    tolerated : ndarray of bool, (Y, X), optional
        Moderately noisy pixels that may be flagged or not (drawn in orange when flagged).
    background : ndarray, (Y, X), optional
        Shown faintly beneath (e.g. the std projection).
    """
    mask = np.asarray(mask, bool)
    h, w = mask.shape
    fig = _figure(6.4, max(3.5, 5.6 * h / w + 0.6))
    ax = fig.add_subplot()
    rgb = np.ones((h, w, 3))
    if background is not None:
        lo, hi = _limits(background, lo=1, hi=99)
        g = np.clip((np.asarray(background, np.float64) - lo) / (hi - lo), 0, 1)
        rgb = np.repeat((0.85 + 0.15 * (1 - g))[..., None], 3, axis=2)
    from matplotlib.patches import Patch

    if truth is None:
        rgb[mask] = (0.84, 0.15, 0.16)
        handles = [Patch(color=(0.84, 0.15, 0.16), label=f"flagged ({mask.sum()} px)")]
    else:
        truth = np.asarray(truth, bool)
        tol = np.zeros_like(truth) if tolerated is None else np.asarray(tolerated, bool)
        hit, miss = mask & truth, truth & ~mask
        noisy, false = mask & tol & ~truth, mask & ~truth & ~tol
        rgb[hit] = (0.17, 0.63, 0.17)
        rgb[miss] = (0.84, 0.15, 0.16)
        rgb[noisy] = (1.0, 0.5, 0.05)
        rgb[false] = (0.12, 0.47, 0.71)
        handles = [Patch(color=(0.17, 0.63, 0.17), label=f"bad, found ({hit.sum()})"),
                   Patch(color=(0.84, 0.15, 0.16), label=f"bad, missed ({miss.sum()})"),
                   Patch(color=(1.0, 0.5, 0.05), label=f"noisy, flagged ({noisy.sum()})"),
                   Patch(color=(0.12, 0.47, 0.71), label=f"clean, flagged ({false.sum()})")]
    # enlarge isolated pixels so they are visible at page size
    from scipy import ndimage

    marked = np.any(rgb != rgb[..., :1], axis=2) | (rgb.sum(axis=2) < 2.4)
    if h * w > 128 * 128:
        grown = ndimage.grey_dilation(rgb * marked[..., None], size=(3, 3, 1))
        sel = ndimage.binary_dilation(marked, iterations=1) & ~marked
        rgb[sel] = grown[sel]
    ax.imshow(rgb, interpolation="nearest")
    ax.set_title(f"Bad-pixel mask: {mask.sum()} of {mask.size} pixels "
                 f"({100 * mask.mean():.3f} %)", fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(handles=handles, loc="upper right", fontsize=8, framealpha=0.9)
    return _save(fig, path)


def gain_figure(path, gain, report: Dict, *, truth=None) -> Path:
    """Residual gain image and histogram with the three flag thresholds.

    Parameters
    ----------
    gain : ndarray, (Y, X)
        Estimated residual gain (mean 1; recorded = ideal x gain).
    report : dict
        Gain report: ``std``, ``p2.5``, ``p97.5``, ``max`` and the flags (keys as written by
        :func:`camcorr.gain.gain_report`; missing values are computed here).
    truth : ndarray, optional
        True residual gain: a third panel plots estimate against truth.
    """
    g = np.asarray(gain, np.float64)
    n = 3 if truth is not None else 2
    fig = _figure(5.0 * n, 5.2)
    axes = fig.subplots(1, n)
    p2, p97 = np.percentile(g, [2.5, 97.5])
    std, gmax = float(g.std()), float(g.max())
    lo, hi = _limits(g, lo=0.5, hi=99.5)
    art = axes[0].imshow(g, cmap="RdBu_r", vmin=min(lo, 2 - hi), vmax=max(hi, 2 - lo),
                         interpolation="nearest")
    axes[0].set_title("residual gain (estimate)", fontsize=10)
    axes[0].set_xticks([])
    axes[0].set_yticks([])
    fig.colorbar(art, ax=axes[0], shrink=0.8)
    ax = axes[1]
    ax.hist(g.ravel(), bins=int(np.clip(g.size // 50, 20, 200)), color="0.35", log=True)
    ax.axvline(p2, color="#1f77b4", lw=1.5, label=f"p2.5 = {p2:.3f}")
    ax.axvline(p97, color="#1f77b4", lw=1.5, ls="--", label=f"p97.5 = {p97:.3f}")
    ax.axvline(p2 * 1.15, color="#ff7f0e", lw=1.5, ls=":",
               label=f"flag if p97.5 > 1.15 x p2.5 = {p2 * 1.15:.3f}")
    if 4.5 * p97 < max(gmax, p97) * 1.6:
        ax.axvline(4.5 * p97, color="#d62728", lw=1.5, ls=":",
                   label=f"flag if max > 4.5 x p97.5 = {4.5 * p97:.2f}")
    ax.axvspan(1 - 0.04, 1 + 0.04, color="#2ca02c", alpha=0.15, label="1 +- 0.04 (std flag scale)")
    # the flags, from the image itself (Sorzano et al. thresholds)
    gm = g / g.mean()
    q2, q97 = np.percentile(gm, [2.5, 97.5])
    vals = {"std > 0.04": (gm.std(), 0.04), "p97.5/p2.5 > 1.15": (q97 / q2, 1.15),
            "max/p97.5 > 4.5": (gm.max() / q97, 4.5)}
    lines = [f"std = {gm.std():.4f}  (flag > 0.04)",
             f"p97.5/p2.5 = {q97 / q2:.3f}  (flag > 1.15)",
             f"max/p97.5 = {gm.max() / q97:.2f}  (flag > 4.5)"]
    floor = report.get("noise_floor", report.get("noise_floor_std"))
    if isinstance(floor, (int, float)):
        lines.append(f"noise floor of the estimate = {floor:.4f}")
    raised = [k for k, (v, thr) in vals.items() if v > thr]
    lines.append("flags raised: " + (", ".join(raised) if raised else "none"))
    ax.text(0.02, 0.98, "\n".join(lines), transform=ax.transAxes, va="top", fontsize=8,
            family="monospace", bbox=dict(boxstyle="round", fc="white", alpha=0.85))
    ax.set_xlabel("gain")
    ax.set_ylabel("pixels")
    ax.set_title("histogram and flag thresholds", fontsize=10)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), fontsize=7, ncol=2, frameon=False)
    ax.set_ylim(top=ax.get_ylim()[1] * 30)  # room for the numbers above the bars
    if truth is not None:
        t = np.asarray(truth, np.float64)
        ax3 = axes[2]
        sel = np.random.default_rng(0).choice(t.size, min(t.size, 20000), replace=False)
        ax3.plot(t.ravel()[sel], g.ravel()[sel], ",", alpha=0.5, color="#1f77b4")
        lim = [min(t.min(), g.min()), max(t.max(), g.max())]
        ax3.plot(lim, lim, "k--", lw=1)
        r = np.corrcoef(t.ravel(), g.ravel())[0, 1]
        ax3.set_title(f"estimate vs truth (R^2 = {r * r:.3f})", fontsize=10)
        ax3.set_xlabel("true residual gain")
        ax3.set_ylabel("estimated residual gain")
        ax3.grid(alpha=0.3)
    return _save(fig, path)


def frc_figure(path, frequency, curves: Dict[str, Sequence[float]], threshold=None,
               *, title="Fourier ring correlation of half-set averages") -> Path:
    """FRC curves (e.g. ``{'before': ..., 'after': ...}``) with the 3-sigma noise curve.

    Parameters
    ----------
    frequency : ndarray, (n,)
        Spatial frequency, fraction of Nyquist (0..1) or cycles/pixel (0..0.5).
    curves : dict of name -> (n,)
    threshold : ndarray, (n,), optional
        3-sigma noise curve.
    """
    fig = _figure(6.4, 4.2)
    ax = fig.add_subplot()
    colors = {"before": "#d62728", "after": "#2ca02c"}
    f = np.asarray(frequency, np.float64)
    s = slice(1, None) if f.size > 2 and f[0] == 0 else slice(None)  # ring 0 (mean) is not data
    for name, c in curves.items():
        ax.plot(f[s], np.asarray(c)[s], lw=1.8, label=name, color=colors.get(name))
    if threshold is not None:
        ax.plot(f[s], np.asarray(threshold)[s], "k--", lw=1.2, label="3-sigma noise curve")
    ax.axhline(0, color="0.6", lw=0.8)
    f = np.asarray(frequency)
    ax.set_xlabel("spatial frequency (fraction of Nyquist)" if f.max() > 0.55
                  else "spatial frequency (cycles / pixel)")
    ax.set_ylabel("FRC")
    lows = [float(np.nanmin(np.asarray(c)[s])) for c in curves.values() if np.size(c)]
    ax.set_ylim(max(-1.05, min([-0.4] + [v - 0.05 for v in lows])), 1.05)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def diagonal_profile(image, n: int = 200) -> np.ndarray:
    """Values along the diagonal from the top-left corner through the centre to the bottom-right.

    Returns
    -------
    ndarray, (n,)
        Bilinear samples, normalised to the value at the centre (mean of the middle 5 %).
    """
    from scipy import ndimage

    im = np.asarray(image, np.float64)
    if im.ndim > 2:
        im = im.reshape((-1,) + im.shape[-2:]).mean(axis=0)
    h, w = im.shape
    im = ndimage.uniform_filter(im, size=max(3, min(h, w) // 32), mode="nearest")
    t = np.linspace(0, 1, n)
    prof = ndimage.map_coordinates(im, [t * (h - 1), t * (w - 1)], order=1, mode="nearest")
    # robust centre level: the median of the central 20 % (a bead at the centre must not set it)
    mid = np.median(prof[int(0.4 * n):int(0.6 * n) + 1])
    return prof / mid if mid else prof


def flatfield_figure(path, flatfield, before, after, *, truth=None) -> Path:
    """Flat-field image and the corner-centre-corner profile of an image before and after.

    Parameters
    ----------
    flatfield : ndarray, (Y, X)
        Estimated flat-field (mean 1).
    before, after : ndarray, (Y, X) or (Z, Y, X)
        An image (mean over Z for stacks) before and after flat-field correction.
    truth : ndarray, (Y, X), optional
        True flat-field; its profile is drawn too.
    """
    fig = _figure(11, 4.2)
    ax0, ax1 = fig.subplots(1, 2, width_ratios=[1, 1.4])
    art = ax0.imshow(flatfield, cmap="viridis", interpolation="nearest")
    h, w = np.asarray(flatfield).shape
    ax0.plot([0, w - 1], [0, h - 1], "w--", lw=1)
    ax0.set_title("estimated flat-field (mean 1), profile line dashed", fontsize=10)
    ax0.set_xticks([])
    ax0.set_yticks([])
    fig.colorbar(art, ax=ax0, shrink=0.8)
    t = np.linspace(0, 1, 200)
    ax1.plot(t, diagonal_profile(before), color="#d62728", lw=1.8, label="before correction")
    ax1.plot(t, diagonal_profile(after), color="#2ca02c", lw=1.8, label="after correction")
    ax1.plot(t, diagonal_profile(flatfield), color="#1f77b4", lw=1.2, ls="--",
             label="estimated flat-field")
    if truth is not None:
        ax1.plot(t, diagonal_profile(truth), color="k", lw=1, ls=":", label="true flat-field")
    ax1.axhline(1, color="0.6", lw=0.8)
    ax1.set_xticks([0, 0.5, 1])
    ax1.set_xticklabels(["top-left corner", "centre", "bottom-right corner"])
    ax1.set_ylabel("relative to centre")
    ax1.set_title("corner / centre profile (smoothed)", fontsize=10)
    ax1.grid(alpha=0.3)
    ax1.legend(fontsize=8)
    return _save(fig, path)
