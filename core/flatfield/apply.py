"""Apply a flat-field model: ``(I - darkfield) / flatfield - baseline``, clipped, dtype kept.

The flat-field may first be rescaled (:func:`rescale_flatfield`), as CellProfiler's
CorrectIlluminationCalculate offers: divided by its minimum, so that dividing by it never makes
a pixel brighter and nothing is pushed past the ceiling of the input's type ('ceiling'), or
to mean 1 ('mean'), or used as it is ('none').  Pixels clipped at 0 or at the ceiling of an
integer output are counted, never clipped silently.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
from scipy import ndimage as ndi

from ..errors import CamcorrError, describe
from ..io import cast_to_dtype, resolve_dtype
from .profiles import Profiles, check_profiles

__all__ = ["apply_flatfield", "resample_profiles", "rescale_flatfield", "BASELINE_MODES",
           "RESCALE_MODES"]

BASELINE_MODES = ("auto", "subtract", "none")
RESCALE_MODES = ("ceiling", "mean", "none")


def rescale_flatfield(flatfield, mode: str, *, argument: str = "rescale"):
    """The flat-field divided by its minimum (``'ceiling'``), by its mean (``'mean'``), by a given
    positive number, or as it is (``'none'``); returns ``(rescaled float64 array, factor)``.

    With ``'ceiling'`` every value is >= 1, so ``(I - darkfield) / flatfield <= I - darkfield``:
    no corrected pixel exceeds the input's range (CellProfiler's CorrectIlluminationCalculate
    "Rescale the illumination function? Yes" gives the same guarantee for its Divide option).

    Raises
    ------
    CamcorrError
        Unknown mode, or a flat-field whose minimum is not positive.

    Examples
    --------
    >>> import numpy as np
    >>> flat, factor = rescale_flatfield(np.array([0.5, 1.0, 1.5]), "ceiling")
    >>> flat.tolist(), factor
    ([1.0, 2.0, 3.0], 0.5)
    """
    flat = np.asarray(flatfield, dtype=np.float64)
    if isinstance(mode, (int, float, np.floating)) and not isinstance(mode, bool):
        factor = float(mode)  # a factor found earlier (e.g. over a whole 3D flat-field)
    elif mode not in RESCALE_MODES:
        raise CamcorrError("unknown rescale mode", argument=argument,
                           expected="one of " + ", ".join(RESCALE_MODES), received=repr(mode))
    elif mode == "none":
        return flat, 1.0
    else:
        factor = float(np.min(flat)) if mode == "ceiling" else float(np.mean(flat))
    if not np.isfinite(factor) or factor <= 0:
        raise CamcorrError("flat-field cannot be rescaled", argument=argument,
                           expected="a flat-field with positive values",
                           received=f"{'minimum' if mode == 'ceiling' else 'mean'} {factor!r}")
    return flat / factor, factor


def resample_profiles(profiles: Profiles, shape) -> Profiles:
    """Profiles resampled (bilinear, in float64) to the (Y, X) `shape`.

    The flat-field keeps mean 1; the darkfield keeps its ADU values.  Only the profiles are
    resampled, never the data, so integer and float tiles behave alike.

    Examples
    --------
    >>> import numpy as np
    >>> prof = Profiles(flatfield=np.array([[0.8, 1.0], [1.0, 1.2]]))
    >>> r = resample_profiles(prof, (4, 4))
    >>> r.flatfield.shape, round(float(r.flatfield.mean()), 6)
    ((4, 4), 1.0)
    """
    check_profiles(profiles)
    ny, nx = (int(v) for v in shape[-2:])
    if ny < 1 or nx < 1:
        raise CamcorrError("cannot resample to an empty shape", argument="shape",
                           expected="positive (Y, X)", received=str(tuple(shape)))

    def _resize(img):
        img = np.asarray(img, dtype=np.float64)
        factors = (1.0,) * (img.ndim - 2) + (ny / img.shape[-2], nx / img.shape[-1])
        out = ndi.zoom(img, factors, order=1, mode="nearest", grid_mode=True)
        return out[..., :ny, :nx]

    flat = _resize(profiles.flatfield)
    flat = flat / flat.mean()
    return Profiles(flatfield=flat, darkfield=_resize(profiles.darkfield),
                    baseline=profiles.baseline, source=profiles.source,
                    quality=dict(profiles.quality),
                    meta={**profiles.meta, "resampled_from": list(profiles.flatfield.shape)})


def apply_flatfield(image, profiles: Profiles, *, baseline: str = "none",
                    index: Optional[int] = None, clip: bool = True, dtype=None,
                    resample: bool = False, rescale: str = "ceiling",
                    counts: Optional[dict] = None, argument: str = "image") -> np.ndarray:
    """Correct one tile with a flat-field model.

    Parameters
    ----------
    image : array_like, shape (Y, X) or (Z, Y, X)
        Raw tile, ADU.  A 2D flat-field is applied to every plane.
    profiles : Profiles
        Flat-field (mean 1), darkfield (ADU) and baseline (ADU).
    baseline : {'none', 'auto', 'subtract'}
        ``'none'`` (default): do not subtract (the data keep their level; nothing is clipped
        at 0 that was above the darkfield); ``'auto'``: subtract a scalar baseline, ignore a
        per-image one (BaSiCPy's per-image baseline is a time-lapse intensity level, not a
        background); ``'subtract'``: subtract the scalar baseline, or the per-image value
        number `index`.
    index : int, optional
        0-based position of this image in the fitted series (for a per-image baseline).
    clip : bool
        Clip negative results to 0 (always for unsigned integer output, whose range is also
        clipped at the top instead of wrapping).
    dtype : dtype-like or 'keep', optional
        Output dtype; default: the input dtype.
    resample : bool
        If the tile's (Y, X) differs from the profiles', resample the profiles to it (bilinear).
        Off by default: a size mismatch is usually the wrong profile.
    rescale : {'ceiling', 'mean', 'none'} or float
        Rescale the flat-field first (:func:`rescale_flatfield`); ``'ceiling'`` (default, the
        default of every front end): divided by its minimum, so no pixel is brightened or
        pushed past the range; 'none' divides by it as given;
        a number divides the flat-field by that factor (blocks of one tile share the factor).
    counts : dict, optional
        If given, filled with ``clipped_low`` (pixels set to 0), ``clipped_high`` (pixels set
        to the maximum of an integer output type), ``rescale_factor`` (what the flat-field was
        divided by) and ``baseline`` (ADU actually subtracted).
    argument : str
        Name used in error messages.

    Returns
    -------
    ndarray
        Same shape as `image`, dtype `dtype` (default the input's).

    Raises
    ------
    CamcorrError
        Shape mismatch (without `resample`), NaN/inf in a float image, a per-image baseline
        without `index` or with an index beyond it.

    Examples
    --------
    >>> import numpy as np
    >>> flat = np.array([[0.8, 1.0], [1.0, 1.2]])
    >>> prof = Profiles(flatfield=flat, darkfield=np.full((2, 2), 100.0))
    >>> raw = (100 + 1000 * flat).astype(np.uint16)  # a uniform 1000 ADU scene, shaded
    >>> apply_flatfield(raw, prof, rescale="none")
    array([[1000, 1000],
           [1000, 1000]], dtype=uint16)
    >>> apply_flatfield(raw, prof)  # default 'ceiling': flat-field / its minimum, never brighter
    array([[800, 800],
           [800, 800]], dtype=uint16)
    """
    img = np.asarray(image)
    if img.ndim not in (2, 3):
        raise CamcorrError("image must be 2D (Y, X) or 3D (Z, Y, X)", argument=argument,
                           expected="a 2D or 3D image", received=describe(img))
    if img.dtype.kind not in "biuf":
        raise CamcorrError("image is not numeric", argument=argument,
                           expected="integer or float pixels", received=str(img.dtype))
    if baseline not in BASELINE_MODES:
        raise CamcorrError("unknown baseline mode", argument="baseline",
                           expected="one of " + ", ".join(BASELINE_MODES), received=repr(baseline))
    check_profiles(profiles)
    if img.dtype.kind == "f":
        n_bad = int(np.count_nonzero(~np.isfinite(img)))
        if n_bad:
            raise CamcorrError("image contains NaN or infinite values", argument=argument,
                               expected="finite pixel values", received=f"{n_bad} non-finite pixel(s)")
    flat, dark = profiles.flatfield, profiles.darkfield
    if flat.ndim == 3 and (img.ndim != 3 or img.shape[0] != flat.shape[0]):
        raise CamcorrError("3D flat-field needs a stack with as many planes", argument=argument,
                           expected=f"a (Z, Y, X) stack with Z = {flat.shape[0]}",
                           received=describe(img))
    if img.shape[-2:] != flat.shape[-2:]:
        if not resample:
            raise CamcorrError("image and flat-field differ in size", argument=argument,
                               expected=f"(Y, X) = {flat.shape[-2:]} like the flat-field",
                               received=f"(Y, X) = {img.shape[-2:]}",
                               fix="Use the profiles estimated for this camera/ROI, or ask for "
                                   "resampling (--resample) if the tiles were binned or cropped "
                                   "consistently")
        rp = resample_profiles(profiles, img.shape[-2:])
        flat, dark = rp.flatfield, rp.darkfield
    flat, factor = rescale_flatfield(flat, rescale)
    out = (img.astype(np.float32) - dark) / flat
    base = 0.0
    if baseline != "none":
        if profiles.per_image_baseline:
            if baseline == "subtract":
                values = np.asarray(profiles.baseline)
                if index is None or not 0 <= int(index) < values.size:
                    raise CamcorrError("per-image baseline needs the image's index",
                                       argument="baseline",
                                       expected=f"an index from 0 to {values.size - 1}",
                                       received=repr(index),
                                       fix="Apply to the images in the order they were fitted, "
                                           "or use baseline 'auto'/'none'")
                base = float(values[int(index)])
        else:
            base = float(profiles.baseline)
    if base:
        out -= np.float32(base)
    low = 0
    if clip:
        low = int(np.count_nonzero(out < 0))
        np.maximum(out, 0, out=out)
    result, n_low, n_high = cast_to_dtype(out, resolve_dtype(img.dtype, dtype),
                                          return_counts=True)
    if counts is not None:
        counts.update(clipped_low=low + int(n_low), clipped_high=int(n_high),
                      rescale_factor=factor, baseline=base)
    return result
