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

__all__ = ["flatfield_quality", "corner_centre_ratio", "smoothed_cv"]


def _patch(n: int, fraction: float) -> int:
    return max(1, int(round(n * fraction)))


def corner_centre_ratio(image, *, fraction: float = 1 / 8) -> float:
    """Mean of the four corner patches over the mean of the central patch.

    Parameters
    ----------
    image : array_like, shape (Y, X)
    fraction : float
        Patch size as a fraction of the height and width.
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
