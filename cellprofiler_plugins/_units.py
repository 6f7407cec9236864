"""CellProfiler intensities <-> camera ADU.

CellProfiler hands modules floating-point images scaled to [0, 1]: a uint16 file is divided by
65535, a uint8 file by 255, or by the range NamesAndTypes was told to use.  ``image.scale`` keeps
that factor.  camcorr's engines work in ADU (raw camera counts), so every plugin converts on the
way in (:func:`to_adu`) and back on the way out (:func:`from_adu`) with the *input's* scale; the
output image is created with the same scale, so SaveImages writes the same units it read.
"""
from __future__ import annotations

import numpy as np

from camcorr.errors import CamcorrError


def image_scale(image, argument: str) -> float:
    """The factor that turns the CellProfiler intensities of `image` into ADU."""
    scale = getattr(image, "scale", None)
    if scale is None or not np.isfinite(scale) or scale <= 0:
        raise CamcorrError(
            "the image has no intensity scale, so its values cannot be turned into camera counts",
            argument=argument, expected="an image loaded by NamesAndTypes (or derived from one)",
            received=f"scale={scale!r}",
            fix="Load the raw files with NamesAndTypes and 'Set intensity range from: Image "
                "bit-depth', and put camcorr modules before modules that rescale intensities")
    return float(scale)


def to_adu(image, argument: str, *, pixel_data=None) -> np.ndarray:
    """Pixel data of a CellProfiler image in ADU, float32.

    Values that are integers to within 1e-3 ADU (raw camera data read from an integer file) are
    rounded back to those integers, so engines see exactly the recorded counts.
    """
    scale = image_scale(image, argument)
    data = image.pixel_data if pixel_data is None else pixel_data
    adu = np.asarray(data, dtype=np.float64) * scale
    rounded = np.rint(adu)
    if adu.size and np.max(np.abs(adu - rounded)) < 1e-3:
        adu = rounded
    return adu.astype(np.float32)


def from_adu(data, scale: float) -> np.ndarray:
    """ADU back to CellProfiler's scaled float32 intensities (``data / scale``)."""
    return (np.asarray(data, dtype=np.float64) / float(scale)).astype(np.float32)
