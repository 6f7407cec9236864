"""Compile (or load from numba's cache) every kernel the command line and the plugins use.

numba compiles a kernel the first time it is called with given argument types and keeps the
machine code in its on-disk cache (``cache=True``).  A fresh install has an empty cache, so the
first real run of each command would pay seconds of compilation.  :func:`warmup` runs every
engine entry point the front ends call, on tiny simulated data, in the pixel types they pass:
the file's type (uint16 camera data, also uint8 and float32 files) on the command line, float32
ADU from CellProfiler and Fiji (``cellprofiler_plugins/_units.py``).  ``make test``, ``make demo``
and the README's install run ``camcorr warmup`` once; a second run only loads the cache.

The cache lives where numba puts it (``__pycache__`` beside the sources, or
``NUMBA_CACHE_DIR``); run the warm-up as the user who owns the install, or with the
``NUMBA_CACHE_DIR`` the users will have, so that a read-only install finds its cache.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

__all__ = ["warmup", "STEPS"]

#: Pixel types the front ends hand to the engine: files (uint16, uint8, float32) and the
#: plugins' float32 ADU.
DTYPES = (np.uint16, np.uint8, np.float32)


def _flash(tmp: Path):
    from ..flash import calibrate_folder, correct_frame, correct_interleaved
    from ..flash.params import params_from_arrays
    from ..flash.stream import correct_files
    from ..simulate import lls
    from ..streaming import write_planes

    roi = (1001, 1001, 1016, 1012)
    ct = lls.write_calibration_folder(tmp / "calib", roi=roi, n_planes=6, n_dark_files=1,
                                      dark_planes=6, powers=(0, 1, 10, 100))
    calibrate_folder(ct.folder, progress=False)
    t = lls.sensor_maps(roi)
    params = params_from_arrays(t.A, t.B, t.offset, t.noise, roi=roi)
    rng = np.random.default_rng(0)
    for dt in DTYPES:
        stacks = [(rng.integers(100, 200, (3,) + params.shape)).astype(dt) for _ in range(2)]
        for out in ("keep", "float32"):
            correct_interleaved(stacks, params, dtype=out)
        correct_frame(stacks[0][1], stacks[0][0], params)
        src = tmp / f"flash_{np.dtype(dt).name}.tif"
        write_planes(src, stacks[0].shape, stacks[0].dtype, [stacks[0]], axes="ZYX")
        for out in ("keep", "float32"):
            correct_files([src], [tmp / "flash_out" / f"{out}_{src.name}"], params,
                          prepare=lambda shape: params, dtype=out)


def _median(tmp: Path):
    from ..median import find_bad_pixels, replace_bad_pixels, selective_median

    rng = np.random.default_rng(1)
    for dt in DTYPES:
        stack = rng.normal(50, 5, (5, 12, 13)).clip(0, 255).astype(dt)
        for rule in ("mad", "knee"):
            selective_median(stack, rule=rule, mean_pass=True)
        bad = find_bad_pixels(iter([stack[:2], stack[2:]]))  # streamed projection
        replace_bad_pixels(stack[0], bad.mask)
        replace_bad_pixels(stack[:2], bad.mask)


def _gain(tmp: Path):
    from ..gain import GainAccumulator, estimate_gain

    rng = np.random.default_rng(2)
    for dt in DTYPES:   # the per-dtype kernels (frame checks, conversion) of every file type
        frames = rng.poisson(20.0, (2, 32, 36)).astype(dt)
        estimate_gain(frames, offset=1.0)
        estimate_gain(frames, gain_ref=np.ones((32, 36), np.float32))
    acc = GainAccumulator()  # the CellProfiler module's path: float32 ADU frames one by one
    for f in rng.poisson(20.0, (4, 32, 36)).astype(np.float32):
        acc.add(f)
    acc.result()
    # the parallel selection of full-size frames (report percentiles, the command line's median
    # of the first frame), which small frames leave to numpy
    from ..gain import _kernels as GK
    for dt in DTYPES + (np.float64,):
        x = rng.poisson(20.0, 1000).astype(dt)
        GK.order_statistics(x, [10, 500], float(x.min()), float(x.max()))


def _flatfield(tmp: Path):
    from ..flatfield import apply_flatfield, estimate_flatfield

    rng = np.random.default_rng(3)
    # 32 px and more: the held-out choice runs over several sigmas (its kernels compiled)
    yy, xx = np.mgrid[0:32, 0:36]
    flat = 1.0 + 0.2 * np.cos(yy / 9.0) * np.cos(xx / 11.0)
    for dt, writeable in ((np.uint16, True), (np.uint16, False), (np.float32, True)):
        tiles = [(100 + 400 * flat * rng.uniform(0.9, 1.1) + rng.normal(0, 3, flat.shape))
                 .astype(dt)[None] for _ in range(6)]
        for t in tiles:  # read-only: TIFF tiles are read-only memory maps
            t.flags.writeable = writeable
        prof = estimate_flatfield(tiles, method="empty-tiles", empty_tiles=list(range(1, 7)),
                                  darkfield=100.0)
        apply_flatfield(tiles[0], prof)
        apply_flatfield(tiles[0][0], prof)


def _aposteriori(tmp: Path):
    from ..aposteriori.normalize import compute_stats, normalize

    rng = np.random.default_rng(4)
    for dt in (np.uint16, np.float32):
        frames = rng.poisson(50.0, (8, 10, 12)).astype(dt)
        stats = compute_stats(frames)
        normalize(frames, stats, dtype=dt)


#: (name, function) of every warm-up step, in order.
STEPS: List[Tuple[str, Callable[[Path], None]]] = [
    ("flash", _flash),
    ("median", _median),
    ("gain", _gain),
    ("flatfield", _flatfield),
    ("aposteriori", _aposteriori),
]


def warmup(steps: Optional[List[str]] = None, *, report: Optional[Callable[[str], None]] = None
           ) -> Dict[str, float]:
    """Run the warm-up steps; returns the seconds each took.

    Parameters
    ----------
    steps : list of str, optional
        Names among :data:`STEPS` (default: all).
    report : callable, optional
        Called with one line per finished step.

    Raises
    ------
    CamcorrError
        Unknown step name.
    """
    from ..errors import CamcorrError

    names = [n for n, _ in STEPS]
    wanted = names if not steps else list(steps)
    for n in wanted:
        if n not in names:
            raise CamcorrError("unknown warm-up step", argument="--only",
                               expected="one of " + ", ".join(names), received=repr(n))
    times: Dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="camcorr-warmup-") as d:
        for name, fn in STEPS:
            if name not in wanted:
                continue
            t0 = time.perf_counter()
            (Path(d) / name).mkdir()
            fn(Path(d) / name)
            times[name] = time.perf_counter() - t0
            if report is not None:
                report(f"camcorr warmup: {name} kernels ready ({times[name]:.1f} s)")
    return times
