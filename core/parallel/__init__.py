"""Streamed statistics over dask arrays, chunk by chunk, optionally on a dask cluster.

Frames are cut into blocks of ``chunk_frames`` frames; a partial statistic is computed on every
block and the partials are merged in a fixed tree (Chan et al. for moments), so memory is
bounded by the chunk size, the work spreads over a dask distributed cluster when a ``client``
is given (``--scheduler ADDRESS`` on the command line, see :mod:`camcorr.parallel.options`),
and the result equals the in-memory computation.

Public functions
----------------
moments, dark_moments, offset_noise   per-pixel mean / variance of frames (dark frames)
stream_reduce                         any mergeable accumulator (a posteriori statistics,
                                      flash calibration sums, ...) over aligned stacks
normalization_stats                   a posteriori mean/sigma (camcorr.aposteriori), streamed
sampled_median, flatfield_planes      flat-field plane statistic (median of sampled planes)
calibrate_folder                      Flash4.0 calibration with dark moments and per-level
                                      sums on dask (calibration_level_stats)
as_frames, tiff_frames                numpy / dask / TIFF files -> chunked dask array

dask is imported only when one of these runs (install the ``dask`` extra).
"""
from .stream import (as_frames, dark_moments, moments, offset_noise, sampled_median,
                     stream_reduce, tiff_frames, tree_merge)
from .stats import normalization_stats, flatfield_planes
from .calibration import calibrate_folder, calibration_level_stats

__all__ = ["as_frames", "tiff_frames", "stream_reduce", "tree_merge", "moments", "dark_moments",
           "offset_noise", "sampled_median", "normalization_stats", "flatfield_planes",
           "calibrate_folder", "calibration_level_stats"]
