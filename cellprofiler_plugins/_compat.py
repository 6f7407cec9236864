"""Compatibility fix for CellProfiler's SaveImages with current tifffile.

SaveImages (CellProfiler 4.2 and 5.0 nightly) writes every *volume* (and every TIFF with
"lossless compression") with ``skimage.io.imsave(..., compression=(8, 6))``: a (code, level)
tuple that tifffile deprecated in 2022 and no longer accepts (tifffile >= 2023: "ValueError:
COMPRESSION: invalid argument (8, 6)"), so 3D results cannot be saved at all.  camcorr needs
tifffile >= 2023.7.10, so the plugins translate that one tuple into the current spelling
(``compression='zlib', compressionargs={'level': 6}``: the same lossless Deflate) before it reaches
tifffile.  Nothing else is changed; with an old tifffile nothing is patched.
"""
from __future__ import annotations

import functools
import logging

LOGGER = logging.getLogger("camcorr.cellprofiler")


def _tifffile_rejects_tuples() -> bool:
    try:
        import tifffile
    except Exception:  # pragma: no cover
        return False
    try:
        from tifffile.tifffile import enumarg
        enumarg(tifffile.COMPRESSION, (8, 6))
    except Exception:
        return True
    return False


def patch_saveimages_compression() -> bool:
    """Translate ``compression=(code, level)`` in skimage.io.imsave; returns True if patched."""
    try:
        import skimage.io
    except ImportError:  # pragma: no cover
        return False
    if getattr(skimage.io.imsave, "_camcorr_patched", False):
        return True
    if not _tifffile_rejects_tuples():
        return False
    original = skimage.io.imsave

    @functools.wraps(original)
    def imsave(fname, arr, *args, **kwargs):
        comp = kwargs.get("compression")
        if isinstance(comp, tuple) and len(comp) == 2:
            code, level = comp
            kwargs["compression"] = "zlib" if code in (8, 32946) else code
            kwargs["compressionargs"] = {"level": level}
        return original(fname, arr, *args, **kwargs)

    imsave._camcorr_patched = True
    skimage.io.imsave = imsave
    LOGGER.info("camcorr: SaveImages TIFF compression tuple translated for tifffile >= 2023")
    return True
