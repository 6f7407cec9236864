"""Command-line operations of :mod:`camcorr.parallel`: streamed statistics on a dask cluster.

``camcorr parallel dark`` and ``camcorr parallel calibrate`` take ``--scheduler ADDRESS`` (a
running dask distributed scheduler) and ``--chunk-frames N``; without ``--scheduler`` they run
on this machine's threads, still chunk by chunk (memory bounded by the chunk size).
"""
from __future__ import annotations

from ..flash.calibrate import DEFAULT_CHUNK, LIMITS as CALIBRATE_LIMITS
from ..operations import Operation, Param
from .options import CHUNK_PARAM, SCHEDULER_PARAM

__all__ = ["OPERATIONS", "PARALLEL_DARK", "PARALLEL_CALIBRATE"]

_CLI = ("cli",)

PARALLEL_DARK = Operation(
    name="parallel-dark",
    title="Dark Frame Statistics (dask)",
    command=("parallel", "dark"),
    summary="Offset and read-noise maps of any number of dark frames, streamed with dask.",
    description="""
        Reads the dark frames (TIFF files; every plane is a frame) chunk by chunk, computes
        per-pixel count, mean and sum of squared deviations of every chunk and merges them in a
        tree (Chan et al.), on a dask cluster with --scheduler.  Writes a float32 TIFF with two
        planes: offset (mean, ADU) and read noise (standard deviation, ADU).  Memory per worker
        thread is about one chunk of frames, whatever the number of frames.
        """,
    params=(
        Param("frames", "images", required=True, label="Dark frames", metavar="DARK.tif",
              help="TIFF files of dark frames (same camera ROI).", frontends=_CLI),
        Param("output", "output_file", required=True, cli="--output", short="-o",
              label="Output file", metavar="OFFSET_NOISE.tif",
              help="Float32 TIFF with planes [offset, noise] in ADU.", frontends=_CLI),
        SCHEDULER_PARAM,
        CHUNK_PARAM,
    ),
    references=("Chan, Golub & LeVeque (1983) Am. Stat. 37(3), 242-247. "
                "doi:10.1080/00031305.1983.10483115",),
    runner="camcorr.parallel.cli:run_dark",
    engine=("camcorr.parallel.stream:moments",),
    frontends=_CLI,
)

PARALLEL_CALIBRATE = Operation(
    name="parallel-calibrate",
    title="Flash Carryover Calibrate (dask)",
    command=("parallel", "calibrate"),
    summary="Flash4.0 carryover calibration with the streamed statistics on a dask cluster.",
    description="""
        Same folder, checks, fit and parameter file as 'camcorr flash calibrate'; the dark-frame
        statistics and the per-level sums of the bright/dark pairs run chunk by chunk on dask
        (on the cluster given by --scheduler; the files must be readable by the workers).
        """,
    params=(
        Param("calib_dir", "folder", required=True, label="Calibration folder",
              metavar="CALIB_DIR", help="Folder of bright/dark pairs, dark frames and Settings.txt.",
              frontends=_CLI),
        Param("output", "output_file", default=None, cli="--output", short="-o",
              label="Parameter file", metavar="PARAMS.tif",
              help="Where to write the parameter file; default: in CALIB_DIR with LLSpy's name.",
              frontends=_CLI),
        SCHEDULER_PARAM,
        Param("chunk_frames", "int", default=DEFAULT_CHUNK, limits=CALIBRATE_LIMITS["chunk"],
              cli="--chunk-frames", label="Planes per block", metavar="N", engine_arg="chunk",
              help="Planes per block and per robust median, as 'flash calibrate' uses them.",
              frontends=_CLI),
    ),
    runner="camcorr.parallel.cli:run_calibrate",
    engine=("camcorr.parallel.calibration:calibrate_folder",),
    frontends=_CLI,
)

OPERATIONS = [PARALLEL_DARK, PARALLEL_CALIBRATE]
