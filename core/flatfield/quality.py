"""Quality numbers of a flat-field: residual non-uniformity before and after correction.

Two figures, computed on a *reference* image that should be uniform once corrected (the
median of the empty planes, or of all images):

* ``cv``: coefficient of variation (std / mean) of the reference smoothed with a Gaussian of
  ``sigma = min(Y, X) / 32`` pixels, so pixel noise does not count, only shading;
* ``corner_centre``: mean of the four corner patches (each 1/8 of the height and width) over the
  mean of the central patch of the same size; 1 is uniform, vignetting gives < 1.

Both are given before correction (reference - darkfield) and after ((reference - darkfield) /
flatfield).  A good flat-field brings ``corner_centre_after`` to 1 +- 0.03 and ``cv_after`` to a
small fraction of ``cv_before``.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
from scipy import ndimage as ndi

from ..errors import CamcorrError, check_ndim

__all__ = ["flatfield_quality", "corner_centre_ratio", "smoothed_cv", "split_halves", "mean_quality",
           "combine_quality", "overfitting", "format_quality", "otsu_threshold", "segment_cells",
           "cell_position_dependence"]


def _patch(n: int, fraction: float) -> int:
    return max(1, int(round(n * fraction)))


def corner_centre_ratio(image, *, fraction: float = 1 / 8) -> float:
    """Mean of the four corner patches over the mean of the central patch.

    Parameters
    ----------
    image : array_like, shape (Y, X)
    fraction : float
        Patch size as a fraction of the height and width.

    Examples
    --------
    >>> import numpy as np
    >>> yy, xx = np.mgrid[:64, :64]
    >>> vignetted = 1 - 0.15 * ((yy - 31.5) ** 2 + (xx - 31.5) ** 2) / 31.5 ** 2
    >>> round(corner_centre_ratio(vignetted), 2), corner_centre_ratio(np.ones((64, 64)))
    (0.76, 1.0)
    """
    img = np.asarray(check_ndim(image, (2,), "image"), dtype=np.float64)
    ny, nx = img.shape
    py, px = _patch(ny, fraction), _patch(nx, fraction)
    corners = [img[:py, :px], img[:py, -px:], img[-py:, :px], img[-py:, -px:]]
    cy, cx = ny // 2, nx // 2
    centre = img[cy - py // 2: cy - py // 2 + py, cx - px // 2: cx - px // 2 + px]
    c = float(centre.mean())
    if c == 0:
        return float("nan")
    return float(np.mean([k.mean() for k in corners]) / c)


def smoothed_cv(image, *, sigma: Optional[float] = None) -> float:
    """Coefficient of variation of `image` smoothed by a Gaussian (default min(Y, X) / 32 px)."""
    img = np.asarray(check_ndim(image, (2,), "image"), dtype=np.float64)
    s = sigma if sigma is not None else max(1.0, min(img.shape) / 32)
    # Block-average by f ~ sigma / 4 first (exact enough for a smooth shading figure, and
    # O(Y X) instead of O(Y X sigma)).
    f = int(max(1, s // 4))
    if f > 1:
        ny, nx = (img.shape[0] // f) * f, (img.shape[1] // f) * f
        img = img[:ny, :nx].reshape(ny // f, f, nx // f, f).mean(axis=(1, 3))
        s = s / f
    # scipy, not the numba kernel: this figure is also the BaSiCPy path's, which must not pay
    # numba's start-up (0.3-0.5 s in a fresh process, measured) for one small filter
    sm = ndi.gaussian_filter(img, s, mode="reflect")
    m = sm.mean()
    return float(sm.std() / m) if m != 0 else float("nan")


def flatfield_quality(reference, flatfield, darkfield=0.0, *, sigma: Optional[float] = None,
                      fraction: float = 1 / 8) -> dict:
    """Residual non-uniformity of `reference` before and after flat-field correction.

    Parameters
    ----------
    reference : array_like, shape (Y, X)
        An image that is uniform once corrected (ADU): median of empty planes, mean of many
        images of a sparse specimen, ...
    flatfield : array_like, shape (Y, X)
        Relative illumination (mean 1).
    darkfield : float or array_like, shape (Y, X)
        ADU subtracted before dividing.
    sigma : float, optional
        Gaussian smoothing for the CV (default min(Y, X) / 32 pixels).
    fraction : float
        Corner and centre patch size as a fraction of the image size.

    Returns
    -------
    dict
        ``cv_before``, ``cv_after``, ``corner_centre_before``, ``corner_centre_after`` (floats)
        and ``improvement`` (cv_before / cv_after).

    Examples
    --------
    >>> import numpy as np
    >>> yy, xx = np.mgrid[:64, :64]
    >>> flat = 1 - 0.15 * ((yy - 31.5) ** 2 + (xx - 31.5) ** 2) / 31.5 ** 2
    >>> q = flatfield_quality(500 * flat, flat / flat.mean())
    >>> sorted(q)
    ['corner_centre_after', 'corner_centre_before', 'cv_after', 'cv_before', 'improvement']
    >>> round(q["corner_centre_before"], 2), round(q["corner_centre_after"], 2)
    (0.76, 1.0)
    """
    ref = np.asarray(check_ndim(reference, (2,), "reference"), dtype=np.float64)
    flat = np.asarray(flatfield, dtype=np.float64)
    if flat.ndim == 3:
        flat = flat.mean(axis=0)
    if flat.shape != ref.shape:
        raise CamcorrError("flat-field and reference image differ in shape",
                           argument="flatfield", expected=f"shape {ref.shape}",
                           received=f"shape {flat.shape}")
    dark = np.asarray(darkfield, dtype=np.float64)
    if dark.ndim == 3:
        dark = dark.mean(axis=0)
    before = ref - dark
    after = before / flat
    cvb, cva = smoothed_cv(before, sigma=sigma), smoothed_cv(after, sigma=sigma)
    return {
        "cv_before": cvb,
        "cv_after": cva,
        "corner_centre_before": corner_centre_ratio(before, fraction=fraction),
        "corner_centre_after": corner_centre_ratio(after, fraction=fraction),
        "improvement": float(cvb / cva) if cva > 0 else float("inf"),
    }


# ---------------------------------------------------------------------------------------------
# held-out validation
# ---------------------------------------------------------------------------------------------
OVERFIT_CV_RATIO = 1.5
"""Held-out CV after correction above this multiple of the in-sample one (plus
:data:`OVERFIT_CV_FLOOR`) is reported as over-fitting."""
OVERFIT_CV_FLOOR = 0.003
OVERFIT_NOISE_RATIO = 1.25
"""...and above this multiple of ``hypot(in-sample CV, noise floor)``: a flat-field that copies
its own half's noise or specimen shows ``sqrt(2)`` times the floor held-out."""
OVERFIT_CC_MARGIN = 0.02
"""Held-out corner/centre this much further from 1 than the in-sample one is over-fitting."""

QUALITY_KEYS = ("cv_before", "cv_after", "corner_centre_before", "corner_centre_after",
                "improvement")


def split_halves(items):
    """Two alternate halves ``items[0::2], items[1::2]`` (estimate on one, evaluate on the other).

    Alternate halves keep both halves spread over the whole acquisition (all tiles, all
    depths), so the held-out half differs from the estimation half only by what was imaged
    where, not by a drift.
    """
    items = list(items)
    return items[0::2], items[1::2]


def mean_quality(*qualities: dict) -> dict:
    """Average of several :func:`flatfield_quality` dicts (e.g. both directions of a 2-fold split)."""
    out = {}
    for k in QUALITY_KEYS:
        vals = [float(q[k]) for q in qualities if q.get(k) is not None]
        out[k] = float(np.mean(vals)) if vals else None
    if out.get("cv_after"):
        out["improvement"] = float(out["cv_before"] / out["cv_after"])
    return out


def combine_quality(in_sample: dict, held_out: Optional[dict], *, split: str,
                    noise_floor: Optional[float] = None) -> dict:
    """The quality dict every estimate carries: in-sample figures, held-out ones, over-fitting.

    Parameters
    ----------
    in_sample : dict
        :func:`flatfield_quality` of the estimate on the images it was estimated from.
    held_out : dict or None
        The same figures for a flat-field estimated on one half of the inputs and evaluated on
        the other half (None: fewer than two inputs, no split possible).
    split : str
        How the inputs were split (printed with the figures).
    noise_floor : float, optional
        The held-out CV that a perfect flat-field would still show because the held-out
        reference has noise and specimen of its own: ``smoothed_cv(ref_b / ref_a) / sqrt(2)``
        for two half references (the shading cancels in their ratio).

    Returns
    -------
    dict
        The in-sample keys of :func:`flatfield_quality` at the top level (unchanged meaning),
        ``held_out`` (dict of the same keys, or None), ``split`` (str), ``overfit`` (bool) and
        ``overfit_note`` (str, empty when consistent); ``held_out['noise_floor']`` when given.
        Over-fitting (see :func:`overfitting`): the held-out CV after correction exceeds both
        ``1.5 x`` the in-sample one plus 0.003 and ``1.25 x`` what the in-sample CV and the
        noise floor explain together, or the held-out corner/centre is more than 0.02 further
        from 1 than the in-sample one.
    """
    q = {k: in_sample.get(k) for k in QUALITY_KEYS}
    q["held_out"] = None if held_out is None else {k: held_out.get(k) for k in QUALITY_KEYS}
    if q["held_out"] is not None and noise_floor is not None:
        q["held_out"]["noise_floor"] = float(noise_floor)
    q["split"] = split
    q["overfit"], q["overfit_note"] = overfitting(in_sample, q["held_out"])
    return q


def overfitting(in_sample: dict, held_out: Optional[dict]):
    """(flag, sentence): do in-sample and held-out figures disagree? See :func:`combine_quality`."""
    if not held_out or held_out.get("cv_after") is None or in_sample.get("cv_after") is None:
        return False, ""
    notes = []
    cv_in, cv_ho = float(in_sample["cv_after"]), float(held_out["cv_after"])
    floor = float(held_out.get("noise_floor") or 0.0)
    explained = OVERFIT_NOISE_RATIO * float(np.hypot(cv_in, floor))
    if cv_ho > OVERFIT_CV_RATIO * cv_in + OVERFIT_CV_FLOOR and cv_ho > explained:
        notes.append(f"held-out CV after correction {cv_ho:.4f} against {cv_in:.4f} in-sample")
    cc_in, cc_ho = in_sample.get("corner_centre_after"), held_out.get("corner_centre_after")
    if cc_in is not None and cc_ho is not None and \
            abs(cc_ho - 1) > abs(cc_in - 1) + OVERFIT_CC_MARGIN:
        notes.append(f"held-out corner/centre {cc_ho:.3f} against {cc_in:.3f} in-sample")
    if not notes:
        return False, ""
    return True, ("over-fitting: " + "; ".join(notes) + ". The flat-field follows the images "
                  "it was estimated from (specimen or noise); smooth more (a larger sigma, or "
                  "BaSiCPy smoothness), use "
                  "the median statistic, or estimate from more (or emptier) images.")


def format_quality(q: dict) -> str:
    """Lines of text with the in-sample and held-out figures (CLI output, logs)."""
    if not q or q.get("cv_after") is None:
        return "quality: not measured (no tiles)"

    def line(name, d):
        return (f"{name}: CV of smoothed background {d['cv_before']:.4f} -> {d['cv_after']:.4f}; "
                f"corner/centre {d['corner_centre_before']:.3f} -> "
                f"{d['corner_centre_after']:.3f}")

    lines = [line("quality, in-sample", q)]
    ho = q.get("held_out")
    if ho and ho.get("cv_after") is not None:
        lines.append(line("quality, held-out ", ho) + f" ({q.get('split', '')})")
    else:
        lines.append(f"quality, held-out : not measured ({q.get('split') or 'one input'})")
    if q.get("overfit"):
        lines.append("WARNING " + q["overfit_note"])
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# what users measure: cell intensity against position
# ---------------------------------------------------------------------------------------------
def otsu_threshold(values, bins: int = 256) -> float:
    """Otsu's threshold of `values` (maximum between-class variance over a histogram).

    Reference: Otsu N. (1979) A threshold selection method from gray-level histograms. IEEE
    Trans Syst Man Cybern 9:62-66. doi:10.1109/TSMC.1979.4310076
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    lo, hi = float(v.min()), float(v.max())
    if hi <= lo:
        return lo
    hist, edges = np.histogram(v, bins=bins, range=(lo, hi))
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist).astype(np.float64)
    w1 = w0[-1] - w0
    s0 = np.cumsum(hist * centres)
    m0 = s0 / np.maximum(w0, 1)
    m1 = (s0[-1] - s0) / np.maximum(w1, 1)
    between = w0 * w1 * (m0 - m1) ** 2
    return float(edges[1:][int(np.argmax(between[:-1]))])


def segment_cells(image, *, min_area: int = 20, smooth: float = 1.0):
    """Label the bright objects of `image` (Otsu threshold of the Gaussian-smoothed image).

    Returns
    -------
    labels : ndarray (Y, X) int
    n : int
        Number of objects of at least `min_area` pixels (smaller ones are removed).
    """
    img = np.asarray(check_ndim(image, (2,), "image"), dtype=np.float64)
    sm = ndi.gaussian_filter(img, smooth) if smooth > 0 else img
    mask = sm > otsu_threshold(sm)
    labels, n = ndi.label(mask)
    if n == 0:
        return labels, 0
    area = np.bincount(labels.ravel(), minlength=n + 1)
    keep = area >= min_area
    keep[0] = False
    remap = np.zeros(n + 1, dtype=np.int64)
    remap[keep] = np.arange(1, int(keep.sum()) + 1)
    return remap[labels], int(keep.sum())


def cell_position_dependence(images, flatfield=None, darkfield=0.0, *, patch: Optional[int] = None,
                             smooth: float = 1.0,
                             min_fill: float = 0.25, grid: int = 16,
                             fraction: float = 1 / 8) -> dict:
    """How much a cell's measured intensity depends on where it sits in the field.

    Each image is corrected, ``(image - darkfield) / flatfield``, and segmented on its own
    (Otsu threshold of the slightly smoothed image), as a user would.  Cells of dense
    specimens touch, so instead of connected objects the field is cut into cell-sized patches
    (`patch` pixels): every patch with at least `min_fill` of its pixels in the foreground
    gives one sample, the mean corrected intensity of its foreground pixels, divided by the
    median sample of its image (so images of brighter or dimmer wells count alike).  A
    quadratic surface is fitted (least squares) to the logarithms of these ratios against the
    patch centres and evaluated on a ``grid x grid`` lattice: the smoothed map of cell
    intensity against position, 1 everywhere when intensities do not depend on position.

    Parameters
    ----------
    images : sequence of array_like (Y, X)
        Images in ADU (held-out images: not those the flat-field was estimated from).
    flatfield : array_like (Y, X), optional
        Mean-1 flat-field to divide by (None: uncorrected).
    darkfield : float or array_like (Y, X)
        Offset subtracted first, ADU.
    patch : int, optional
        Patch side, pixels (default ``max(8, min(Y, X) // 32)``).
    min_fill : float
        Smallest foreground fraction of a patch that counts.
    grid : int
        Map lattice size.
    fraction : float
        Corner and centre patch size as a fraction of the field, as in
        :func:`corner_centre_ratio`.

    Returns
    -------
    dict
        ``n_samples`` (patches used); ``cv`` (std / mean of the map); ``corner_centre``
        (corner patches over the centre patch of the map); ``map`` (ndarray (grid, grid)).

    Raises
    ------
    CamcorrError
        If no image has at least 3 foreground patches.
    """
    ys, xs, vals = [], [], []
    shape = None
    for k, im in enumerate(images):
        img = np.asarray(check_ndim(im, (2,), f"image {k + 1}"), dtype=np.float64)
        shape = img.shape
        corr = img - np.asarray(darkfield, dtype=np.float64)
        if flatfield is not None:
            corr = corr / np.asarray(flatfield, dtype=np.float64)
        sm = ndi.gaussian_filter(corr, smooth) if smooth > 0 else corr
        fg = sm > otsu_threshold(sm)
        b = int(patch) if patch else max(8, min(shape) // 32)
        py, px = shape[0] // b, shape[1] // b
        if py == 0 or px == 0:
            continue
        f = fg[:py * b, :px * b].reshape(py, b, px, b)
        c = corr[:py * b, :px * b].reshape(py, b, px, b)
        n = f.sum(axis=(1, 3))
        s = (c * f).sum(axis=(1, 3))
        ok = n >= min_fill * b * b
        mean = np.where(ok, s / np.maximum(n, 1), 0.0)
        ok &= mean > 0
        if ok.sum() < 3:
            continue
        rel = np.log(mean[ok] / np.median(mean[ok]))
        cy, cx = np.nonzero(ok)
        ys.append((cy + 0.5) * b), xs.append((cx + 0.5) * b), vals.append(rel)
    if not vals:
        raise CamcorrError("no cells found", argument="images",
                           expected="images with bright objects (Otsu threshold)",
                           received="no image with 3 or more foreground patches")
    y, x, v = np.concatenate(ys), np.concatenate(xs), np.concatenate(vals)
    ny, nx = shape
    # smooth map: least-squares quadratic surface of log intensity against position (a
    # polynomial has no boundary bias at the corners, where a kernel smoother averages inward)
    def design(yy, xx):
        yy = (yy - (ny - 1) / 2) / ny
        xx = (xx - (nx - 1) / 2) / nx
        return np.stack([np.ones_like(yy), yy, xx, yy * yy, xx * yy, xx * xx], axis=-1)

    coef, *_ = np.linalg.lstsq(design(y, x), v, rcond=None)
    gy, gx = np.meshgrid((np.arange(grid) + 0.5) * ny / grid, (np.arange(grid) + 0.5) * nx / grid,
                         indexing="ij")
    m = np.exp(design(gy, gx) @ coef)
    p = max(1, int(round(grid * fraction)))
    corners = [m[:p, :p], m[:p, -p:], m[-p:, :p], m[-p:, -p:]]
    c0 = grid // 2 - p // 2
    centre = m[c0:c0 + p, c0:c0 + p]
    return {"n_samples": int(v.size), "cv": float(m.std() / m.mean()),
            "corner_centre": float(np.mean([c.mean() for c in corners]) / centre.mean()),
            "map": m}
