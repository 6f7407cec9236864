"""Flash4.0 carryover calibration with its statistics streamed through dask.

The two streamed statistics of :func:`camcorr.flash.calibrate_folder` — the dark-frame moments
(offset, read noise) and the per-level sums of the bright/dark pairs
(:class:`camcorr.flash.calibrate.LevelStats`) — are computed block by block on dask (a
cluster with ``client=``); the per-pixel fit then runs on the per-level means as in the engine
(it needs only ``levels x Y x X`` values).  Blocks are cut per file exactly as the engine cuts
them (``chunk`` planes from the start of each file, median over a block), so the result equals
the engine's up to floating-point summation order.
"""
from __future__ import annotations

import importlib
from typing import Optional

import numpy as np

from ..errors import CamcorrError
from ..flash.calibrate import DEFAULT_CHUNK, LIMITS
from .stream import _compute, moments, tiff_frames, tree_merge

__all__ = ["calibration_level_stats", "calibrate_folder", "LIMITS"]


class _LevelSums:
    """Sums of block-median x and y over the blocks of one level (mergeable by addition)."""

    def __init__(self, sx=0.0, sy=0.0, count=0):
        self.sx, self.sy, self.count = sx, sy, count

    def merge(self, other):
        return _LevelSums(self.sx + other.sx, self.sy + other.sy, self.count + other.count)


def _level_block(b0, b1, offset):
    m = b0.shape[0]
    med = (lambda b: b[0].astype(np.float64)) if m == 1 else (lambda b: np.median(b, axis=0))
    return _LevelSums((med(b0) - offset) * m, (med(b1) - offset) * m, m)


def calibration_level_stats(pairs, offset, *, chunk: int = DEFAULT_CHUNK, split_every: int = 8, client=None,
                            scheduler: Optional[str] = None):
    """Per-level sums of bright/dark pairs (:class:`~camcorr.flash.calibrate.LevelStats`), on dask.

    Parameters
    ----------
    pairs : dict
        ``{level: [(ch0_file, ch1_file), ...]}`` (from
        :func:`camcorr.flash.find_calibration_files`).
    offset : ndarray (Y, X)
        Offset map, ADU.
    chunk : int
        Planes per block (and per robust median), as in the engine.

    Returns
    -------
    camcorr.flash.calibrate.LevelStats
    """
    import dask

    cal = importlib.import_module("camcorr.flash.calibrate")
    off = np.asarray(offset, np.float64)
    off_d = dask.delayed(off)  # one copy in the graph, shared by every block
    roots = []
    for name, files in pairs.items():
        parts = []
        for f0, f1 in files:
            a0 = tiff_frames(f0, chunk_frames=chunk).to_delayed().ravel()
            a1 = tiff_frames(f1, chunk_frames=chunk).to_delayed().ravel()
            if len(a0) != len(a1):
                raise CamcorrError("bright and dark stacks of a pair differ in shape",
                                   argument="CALIB_DIR", expected=f"{f1} like {f0}",
                                   received="a different number of planes")
            parts += [dask.delayed(_level_block, pure=True)(b0, b1, off_d) for b0, b1 in zip(a0, a1)]
        roots.append(tree_merge(parts, split_every, delayed=dask.delayed))
    results = _compute(roots, client=client, scheduler=scheduler)
    shape = off.shape
    sx = np.stack([np.broadcast_to(r.sx, shape) for r in results]).astype(np.float64)
    sy = np.stack([np.broadcast_to(r.sy, shape) for r in results]).astype(np.float64)
    cnt = np.array([r.count for r in results], np.float64)
    return cal.LevelStats(sx, sy, cnt, list(pairs))


def calibrate_folder(calib_dir, *, roi=None, serial: Optional[str] = None,
                     chunk: int = DEFAULT_CHUNK,
                     client=None, scheduler: Optional[str] = None, backend: str = "numba"):
    """:func:`camcorr.flash.calibrate_folder` with the streamed statistics on dask.

    Same folder layout, same checks of the files (done by the engine's
    :func:`~camcorr.flash.find_calibration_files`), same fit; the dark-frame moments and the
    per-level sums run chunk by chunk on dask (``client``: a dask distributed cluster).

    Returns
    -------
    camcorr.flash.FlashCalibration
    """
    from datetime import date as _date

    flash = importlib.import_module("camcorr.flash")
    files = flash.find_calibration_files(calib_dir)
    date = None
    if files.settings is not None:
        st = flash.parse_settings(files.settings)
        roi_final = st.roi if roi is None else flash.as_roi(roi)
        serial = serial or st.serial
        date = st.date.strftime("%Y%m%d") if st.date else None
    elif roi is not None:
        roi_final = flash.as_roi(roi)
    else:
        raise CamcorrError("no Settings.txt in the calibration folder", argument="CALIB_DIR",
                           expected="a *Settings.txt (camera serial and ROI)",
                           received=f"none in {calib_dir}")
    dark = moments(files.darks, chunk_frames=chunk, client=client, scheduler=scheduler)
    if dark.count < 2:
        raise CamcorrError("too few dark frames", argument="CALIB_DIR",
                           expected="at least 2 dark frames", received=f"{dark.count}")
    if flash.roi_shape(roi_final) != dark.mean.shape:
        raise CamcorrError("images do not match the camera ROI", argument="CALIB_DIR",
                           expected=f"images of {flash.roi_shape(roi_final)} for ROI {roi_final}",
                           received=f"images of {dark.mean.shape}")
    offset, noise = dark.mean, dark.std(ddof=1)
    lv = calibration_level_stats(files.pairs, offset, chunk=chunk, client=client,
                                 scheduler=scheduler)
    A, B, gof, status = flash.fit_levels(lv.x, lv.y, lv.count, backend=backend)
    return flash.FlashCalibration(
        A=A, B=B, offset=offset.astype(np.float32), noise=noise.astype(np.float32), gof=gof,
        status=status, n_failed=int(np.count_nonzero(status)), serial=serial, roi=roi_final,
        date=date or _date.today().strftime("%Y%m%d"), n_levels=len(lv.names),
        n_pairs=files.n_pairs, n_dark_frames=int(dark.count), level_x=lv.x.astype(np.float32),
        level_y=lv.y.astype(np.float32))
