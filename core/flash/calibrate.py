"""Flash4.0 carryover calibration: streamed offset/noise maps and per-pixel curve fits.

Input (Lambert, LLSpy camera corrections documentation, llspy.readthedocs.io/en/latest/camera.html): a folder of bright ``*_ch0_*`` / dark ``*_ch1_*`` stack
pairs at many laser powers (ch1 plane k is the frame right after ch0 plane k), files whose names
contain ``dark`` (offset and read-noise frames) and a ``*Settings.txt`` (camera serial, ROI).

Method
------
1. Offset and read noise: per-pixel mean and standard deviation of all dark frames, streamed with
   :class:`camcorr.stats.RunningMoments` (memory independent of the number of frames; partial
   results merge exactly, so chunks can be computed in parallel).
2. Levels: pairs are grouped by acquisition (file name before ``_ch0_``; one group per laser power
   in the usual layout).  Each group is read a block of planes at a time; per pixel, the median
   over the block of x = ch0 - offset and y = ch1 - offset (robust to cosmic rays and RTS jumps)
   is accumulated, weighted by the block's number of planes.  Memory: one block plus
   3 x (number of groups) maps, independent of the number of frames.
3. Fit: per pixel, y = A * (1 - exp(-B * x)) through the group means, weighted by their plane
   counts, with LLSpy's bounds A in [0, 800] ADU, B in [0, 0.01] 1/ADU (LLSpy ``camcalib``; LLSpy
   camera corrections documentation, llspy.readthedocs.io/en/latest/camera.html).  A is linear given B, so B is found by a log-spaced grid search followed by
   golden-section refinement of the profiled cost (variable projection; Golub & Pereyra 2003,
   doi:10.1088/0266-5611/19/2/201), inside iteratively reweighted least squares with Huber
   weights (Huber 1964, doi:10.1214/aoms/1177703732) scaled by the residuals' MAD, so a whole
   aberrant level is down-weighted.  All pixels at once in a numba-parallel kernel (numpy
   reference :func:`fit_levels_numpy`).
4. Quality: ``gof`` = weighted RMS residual of the group means about the curve (ADU); a pixel
   fails (``status`` != 0) when it has fewer than 3 levels, a parameter sits on its upper bound, or
   the fit is not finite.
"""
from __future__ import annotations

import math
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import date as _date
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple

import numba
import numpy as np
import tifffile

from ..errors import CamcorrError, Limits
from ..io import iter_planes
from ..progress import Progress
from ..stats import RunningMoments
from .params import as_roi
from .settings import find_settings, parse_settings, roi_shape

__all__ = ["dark_moments", "calibrate_folder", "FlashCalibration", "LevelStats", "level_stats",
           "fit_levels", "fit_levels_numpy", "find_calibration_files", "CalibrationFiles",
           "A_BOUNDS", "B_BOUNDS", "STATUS"]

#: Planes per block read from the calibration stacks (memory: two blocks of frames at a time).
DEFAULT_CHUNK = 16
#: Allowed block sizes.
LIMITS = {"chunk": Limits(low=1)}

A_BOUNDS = (0.0, 800.0)
B_BOUNDS = (0.0, 0.01)
#: Meaning of the status codes of the fit.
STATUS = {0: "ok", 1: "fewer than 3 intensity levels", 2: "A at its upper bound",
          3: "B at its upper bound", 4: "not finite"}

_N_GRID = 24
_GRID_LO = 1e-5
_N_GOLDEN = 18
_N_IRLS = 4
_HUBER = 1.345


# --------------------------------------------------------------------------------------------
# dark frames
# --------------------------------------------------------------------------------------------
def dark_moments(frames: Iterable, moments: Optional[RunningMoments] = None) -> RunningMoments:
    """Per-pixel mean and variance of dark frames, streamed.

    Parameters
    ----------
    frames : iterable of ndarray
        Blocks (N, Y, X) or single frames (Y, X) of raw dark frames (ADU), e.g.
        ``camcorr.io.iter_planes(files)``.  Only one block is held at a time.
    moments : RunningMoments, optional
        Partial result to continue (partials from separate chunks merge with
        ``RunningMoments.merge``).

    Returns
    -------
    RunningMoments
        ``.mean`` is the offset map, ``.std()`` the read-noise map (ADU).
    """
    acc = moments if moments is not None else RunningMoments()
    for block in frames:
        acc.update(block)
    return acc


# --------------------------------------------------------------------------------------------
# files
# --------------------------------------------------------------------------------------------
_CH = re.compile(r"^(?P<prefix>.*?)_ch(?P<ch>\d+)_(?:stack(?P<stack>\d+))?")


@dataclass
class CalibrationFiles:
    """Files of a calibration folder.

    Attributes
    ----------
    pairs : dict
        ``{group: [(ch0_file, ch1_file), ...]}`` in name order; a group is one acquisition
        (usually one laser power).
    darks : list of Path
    settings : Path or None
    """

    pairs: "OrderedDict[str, List[Tuple[Path, Path]]]"
    darks: List[Path]
    settings: Optional[Path]

    @property
    def n_pairs(self) -> int:
        return sum(len(v) for v in self.pairs.values())


def find_calibration_files(calib_dir) -> CalibrationFiles:
    """Sort a calibration folder into bright/dark pairs, dark frames and Settings.txt.

    Raises
    ------
    CamcorrError
        Folder missing or empty, no dark frames, no ch0/ch1 pairs, unpaired files.
    """
    d = Path(calib_dir)
    if not d.is_dir():
        raise CamcorrError("calibration folder not found", argument="CALIB_DIR",
                           expected="a folder of bright/dark pairs and dark frames", received=str(d))
    tifs = sorted(p for p in d.iterdir() if p.suffix.lower() in (".tif", ".tiff")
                  and not p.name.startswith(".") and not p.name.startswith("FlashParam")
                  and not p.name.startswith("FlashFitQuality"))
    if not tifs:
        raise CamcorrError("the calibration folder holds no TIFF files", argument="CALIB_DIR",
                           expected="*_ch0_*.tif / *_ch1_*.tif pairs and *dark*.tif frames",
                           received=f"an empty folder {d}" if not any(d.iterdir()) else f"no .tif in {d}")
    darks = [p for p in tifs if "dark" in p.name.lower()]
    rest = [p for p in tifs if "dark" not in p.name.lower()]
    ch0: Dict[Tuple[str, str], Path] = {}
    ch1: Dict[Tuple[str, str], Path] = {}
    for p in rest:
        m = _CH.match(p.name)
        if not m or m.group("ch") not in ("0", "1"):
            continue
        key = (m.group("prefix"), m.group("stack") or "")
        (ch0 if m.group("ch") == "0" else ch1)[key] = p
    if not darks:
        raise CamcorrError("no dark frames in the calibration folder", argument="CALIB_DIR",
                           expected="files whose names contain 'dark' (>= 2 frames; thousands "
                                    "recommended) for the offset and read-noise maps",
                           received=f"{len(tifs)} TIFF file(s) in {d}, none named *dark*",
                           fix="Record dark frames with the same camera ROI and put 'dark' in "
                               "their file names")
    if not ch0 or not ch1:
        raise CamcorrError("no bright/dark pairs in the calibration folder", argument="CALIB_DIR",
                           expected="*_ch0_* (bright) and *_ch1_* (dark, acquired right after) "
                                    "stacks at several laser powers",
                           received=f"{len(ch0)} ch0 and {len(ch1)} ch1 file(s) in {d}")
    unpaired = sorted(set(ch0) ^ set(ch1))
    if unpaired:
        names = [(ch0.get(k) or ch1.get(k)).name for k in unpaired[:3]]
        raise CamcorrError("bright/dark files without a partner", argument="CALIB_DIR",
                           expected="every *_ch0_stackNNNN* file with a matching *_ch1_stackNNNN*",
                           received=", ".join(names) + (" ..." if len(unpaired) > 3 else ""))
    pairs: "OrderedDict[str, List[Tuple[Path, Path]]]" = OrderedDict()
    for key in sorted(ch0):
        pairs.setdefault(key[0], []).append((ch0[key], ch1[key]))
    return CalibrationFiles(pairs, darks, find_settings(d, argument="CALIB_DIR"))


def _tiff_shape(path: Path) -> Tuple[int, ...]:
    from ..io import inspect_tiff

    # the input gate: colour, empty, truncated, unsupported pixel type
    return tuple(inspect_tiff(path, argument=f"CALIB_DIR ({path.name})").shape)


# --------------------------------------------------------------------------------------------
# per-level statistics
# --------------------------------------------------------------------------------------------
@dataclass
class LevelStats:
    """Per-pixel sums per intensity level (mergeable: add the sums of the same level).

    Attributes
    ----------
    sum_x, sum_y : ndarray float64 (L, Y, X)
        Sums over planes of block-median x = ch0 - offset and y = ch1 - offset (ADU).
    count : ndarray float64 (L,)
        Planes per level.
    names : list of str
    """

    sum_x: np.ndarray
    sum_y: np.ndarray
    count: np.ndarray
    names: List[str] = field(default_factory=list)

    @property
    def x(self) -> np.ndarray:
        return self.sum_x / np.maximum(self.count, 1)[:, None, None]

    @property
    def y(self) -> np.ndarray:
        return self.sum_y / np.maximum(self.count, 1)[:, None, None]


def _block_median(block: np.ndarray) -> np.ndarray:
    if block.shape[0] == 1:
        return block[0].astype(np.float64)
    return np.median(block, axis=0)


def level_stats(pairs: "OrderedDict[str, List[Tuple[Path, Path]]]", offset: np.ndarray, *,
                chunk: int = DEFAULT_CHUNK, bar: Optional[Progress] = None) -> LevelStats:
    """Accumulate per-level x/y statistics from bright/dark pairs, one block of planes at a time.

    Parameters
    ----------
    pairs : dict
        ``{group: [(ch0, ch1), ...]}`` from :func:`find_calibration_files`.
    offset : ndarray (Y, X)
        Offset map (ADU).
    chunk : int
        Planes per block (the median is taken over a block).
    """
    L = len(pairs)
    shape = offset.shape
    sx = np.zeros((L,) + shape)
    sy = np.zeros((L,) + shape)
    cnt = np.zeros(L)
    off = np.asarray(offset, np.float64)
    for li, (name, files) in enumerate(pairs.items()):
        for f0, f1 in files:
            for b0, b1 in zip(iter_planes(f0, chunk=chunk, argument="CALIB_DIR"),
                              iter_planes(f1, chunk=chunk, argument="CALIB_DIR")):
                m = b0.shape[0]
                sx[li] += (_block_median(b0) - off) * m
                sy[li] += (_block_median(b1) - off) * m
                cnt[li] += m
                if bar is not None:
                    bar.update(2 * m)
    return LevelStats(sx, sy, cnt, list(pairs))


# --------------------------------------------------------------------------------------------
# fit
# --------------------------------------------------------------------------------------------
def _grid() -> np.ndarray:
    return np.geomspace(_GRID_LO, B_BOUNDS[1], _N_GRID)


@numba.njit(cache=True, fastmath=False)
def _profile(x, y, w, b, amax):
    """A(b) (clipped) and weighted cost for one pixel."""
    sgg = 0.0
    sgy = 0.0
    for l in range(x.shape[0]):
        g = 1.0 - math.exp(-b * x[l])
        sgg += w[l] * g * g
        sgy += w[l] * g * y[l]
    a = sgy / sgg if sgg > 0 else 0.0
    a = min(max(a, 0.0), amax)
    cost = 0.0
    for l in range(x.shape[0]):
        r = y[l] - a * (1.0 - math.exp(-b * x[l]))
        cost += w[l] * r * r
    return a, cost


@numba.njit(cache=True)
def _golden(x, y, w, lo, hi, amax, n_iter):
    invphi = (math.sqrt(5.0) - 1.0) / 2.0
    a_ = math.log(lo)
    b_ = math.log(hi)
    c = b_ - invphi * (b_ - a_)
    d = a_ + invphi * (b_ - a_)
    fc = _profile(x, y, w, math.exp(c), amax)[1]
    fd = _profile(x, y, w, math.exp(d), amax)[1]
    for _ in range(n_iter):
        if fc <= fd:
            b_ = d
            d = c
            fd = fc
            c = b_ - invphi * (b_ - a_)
            fc = _profile(x, y, w, math.exp(c), amax)[1]
        else:
            a_ = c
            c = d
            fc = fd
            d = a_ + invphi * (b_ - a_)
            fd = _profile(x, y, w, math.exp(d), amax)[1]
    return math.exp((a_ + b_) / 2.0)


@numba.njit(cache=True)
def _fit_one(x, y, n, grid, amax, bmax, n_irls, n_golden):
    L = x.shape[0]
    h = np.ones(L)
    w = np.empty(L)
    absr = np.empty(L)
    nvalid = 0
    for l in range(L):
        if n[l] > 0:
            nvalid += 1
    if nvalid < 3:
        return 0.0, 0.0, np.nan, 1
    b = grid[0]
    a = 0.0
    for it in range(n_irls):
        for l in range(L):
            w[l] = n[l] * h[l]
        if it == 0:
            best = np.inf
            k = 0
            for j in range(grid.shape[0]):
                cst = _profile(x, y, w, grid[j], amax)[1]
                if cst < best:
                    best = cst
                    k = j
            lo = grid[k - 1] if k > 0 else grid[0] * 0.5
            hi = grid[k + 1] if k < grid.shape[0] - 1 else bmax
        else:
            lo = b / 1.5
            hi = min(b * 1.5, bmax)
        b = _golden(x, y, w, lo, hi, amax, n_golden)
        b = min(b, bmax)
        a = _profile(x, y, w, b, amax)[0]
        # Huber weights from the residuals' MAD
        m = 0
        for l in range(L):
            if n[l] > 0:
                absr[m] = abs(y[l] - a * (1.0 - math.exp(-b * x[l])))
                m += 1
        s = 1.4826 * np.median(absr[:m])
        s = max(s, 1e-3)
        for l in range(L):
            r = abs(y[l] - a * (1.0 - math.exp(-b * x[l])))
            h[l] = 1.0 if r <= _HUBER * s else _HUBER * s / r
    # goodness of fit: plane-weighted RMS residual of the level means
    num = 0.0
    den = 0.0
    for l in range(L):
        r = y[l] - a * (1.0 - math.exp(-b * x[l]))
        num += n[l] * r * r
        den += n[l]
    gof = math.sqrt(num / den)
    status = 0
    if not (math.isfinite(a) and math.isfinite(b) and math.isfinite(gof)):
        status = 4
    elif a >= amax * 0.999:
        status = 2
    elif b >= bmax * 0.999 and a > gof:
        status = 3
    return a, b, gof, status


@numba.njit(parallel=True, cache=True)
def _fit_kernel(x, y, n, grid, amax, bmax, n_irls, n_golden, A, B, G, S):
    L, P = x.shape
    for p in numba.prange(P):
        xp = np.empty(L)
        yp = np.empty(L)
        for l in range(L):
            xp[l] = max(x[l, p], 0.0)
            yp[l] = y[l, p]
        a, b, g, s = _fit_one(xp, yp, n, grid, amax, bmax, n_irls, n_golden)
        A[p] = a
        B[p] = b
        G[p] = g
        S[p] = s


def fit_levels(x: np.ndarray, y: np.ndarray, counts: np.ndarray, *, backend: str = "numba"):
    """Fit y = A * (1 - exp(-B * x)) per pixel through per-level means.

    Parameters
    ----------
    x, y : ndarray (L, ...) float
        Per-level mean previous-frame signal and carryover (ADU) of every pixel.
    counts : ndarray (L,)
        Planes per level (fit weights); levels with 0 are ignored.
    backend : {'numba', 'numpy'}

    Returns
    -------
    A, B, gof : ndarray (...) float32
        Plateau (ADU), rate (1/ADU), weighted RMS residual (ADU).
    status : ndarray (...) uint8
        0 ok, else a code of :data:`STATUS`.
    """
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    if x.shape != y.shape:
        raise CamcorrError("x and y differ in shape", argument="levels",
                           expected=f"shape {x.shape}", received=f"shape {y.shape}")
    counts = np.asarray(counts, np.float64)
    L = x.shape[0]
    shape = x.shape[1:]
    if backend == "numpy":
        A, B, G, S = fit_levels_numpy(x.reshape(L, -1), y.reshape(L, -1), counts)
    elif backend == "numba":
        P = int(np.prod(shape))
        A = np.empty(P)
        B = np.empty(P)
        G = np.empty(P)
        S = np.empty(P, np.uint8)
        _fit_kernel(np.ascontiguousarray(x.reshape(L, P)), np.ascontiguousarray(y.reshape(L, P)),
                    counts, _grid(), A_BOUNDS[1], B_BOUNDS[1], _N_IRLS, _N_GOLDEN, A, B, G, S)
    else:
        raise CamcorrError("unknown backend", argument="backend", expected="'numba' or 'numpy'",
                           received=repr(backend))
    return (A.reshape(shape).astype(np.float32), B.reshape(shape).astype(np.float32),
            G.reshape(shape).astype(np.float32), S.reshape(shape).astype(np.uint8))


def fit_levels_numpy(x: np.ndarray, y: np.ndarray, counts: np.ndarray):
    """Vectorised numpy reference of the fit kernel; x, y (L, P); returns A, B, gof, status (P,)."""
    amax, bmax = A_BOUNDS[1], B_BOUNDS[1]
    x = np.maximum(np.asarray(x, np.float64), 0.0)
    y = np.asarray(y, np.float64)
    n = np.asarray(counts, np.float64)[:, None]
    L, P = x.shape
    valid = n[:, 0] > 0
    if valid.sum() < 3:
        return np.zeros(P), np.zeros(P), np.full(P, np.nan), np.ones(P, np.uint8)

    def profile(b, w):  # b (P,), w (L, P)
        g = 1.0 - np.exp(-b[None] * x)
        sgg = (w * g * g).sum(0)
        sgy = (w * g * y).sum(0)
        with np.errstate(invalid="ignore", divide="ignore"):
            a = np.where(sgg > 0, sgy / np.where(sgg > 0, sgg, 1), 0.0)
        a = np.clip(a, 0.0, amax)
        r = y - a[None] * g
        return a, (w * r * r).sum(0)

    grid = _grid()
    h = np.ones((L, P))
    b = np.full(P, grid[0])
    a = np.zeros(P)
    invphi = (np.sqrt(5.0) - 1.0) / 2.0
    for it in range(_N_IRLS):
        w = n * h
        if it == 0:
            costs = np.stack([profile(np.full(P, g), w)[1] for g in grid])
            k = np.argmin(costs, axis=0)
            lo = np.where(k > 0, grid[np.maximum(k - 1, 0)], grid[0] * 0.5)
            hi = np.where(k < len(grid) - 1, grid[np.minimum(k + 1, len(grid) - 1)], bmax)
        else:
            lo = b / 1.5
            hi = np.minimum(b * 1.5, bmax)
        la, lb = np.log(lo), np.log(hi)
        c = lb - invphi * (lb - la)
        d = la + invphi * (lb - la)
        fc = profile(np.exp(c), w)[1]
        fd = profile(np.exp(d), w)[1]
        for _ in range(_N_GOLDEN):
            left = fc <= fd
            lb = np.where(left, d, lb)
            la = np.where(left, la, c)
            new_c = lb - invphi * (lb - la)
            new_d = la + invphi * (lb - la)
            c_next = np.where(left, new_c, d)
            d_next = np.where(left, c, new_d)
            f_new = profile(np.exp(np.where(left, new_c, new_d)), w)[1]
            fc, fd = np.where(left, f_new, fd), np.where(left, fc, f_new)
            c, d = c_next, d_next
        b = np.minimum(np.exp((la + lb) / 2.0), bmax)
        a = profile(b, w)[0]
        r = np.abs(y - a[None] * (1.0 - np.exp(-b[None] * x)))
        s = np.maximum(1.4826 * np.median(r[valid], axis=0), 1e-3)
        with np.errstate(divide="ignore", invalid="ignore"):
            h = np.where(r <= _HUBER * s[None], 1.0, _HUBER * s[None] / r)
    r = y - a[None] * (1.0 - np.exp(-b[None] * x))
    gof = np.sqrt((n * r * r).sum(0) / n.sum())
    status = np.zeros(P, np.uint8)
    status[(b >= bmax * 0.999) & (a > gof)] = 3
    status[a >= amax * 0.999] = 2
    status[~(np.isfinite(a) & np.isfinite(b) & np.isfinite(gof))] = 4
    return a, b, gof, status


# --------------------------------------------------------------------------------------------
# whole folder
# --------------------------------------------------------------------------------------------
@dataclass
class FlashCalibration:
    """Result of :func:`calibrate_folder` (maps (Y, X) float32 in ADU).

    Attributes
    ----------
    A, B, offset, noise : ndarray
        Carryover plateau (ADU), rate (1/ADU), offset (ADU), read noise (ADU).
    gof : ndarray
        Weighted RMS residual of the level means about the fitted curve (ADU).
    status : ndarray uint8
        0 where the fit succeeded (codes in :data:`STATUS`).
    n_failed : int
        Pixels whose fit failed.
    serial, roi, date
        From the folder's Settings.txt (date YYYYMMDD of the acquisition).
    n_levels, n_pairs, n_dark_frames : int
    level_x, level_y : ndarray (L, Y, X) float32
        Per-level means the fit used (for plots and QC).
    """

    A: np.ndarray
    B: np.ndarray
    offset: np.ndarray
    noise: np.ndarray
    gof: np.ndarray
    status: np.ndarray
    n_failed: int
    serial: Optional[str]
    roi: Optional[Tuple[int, int, int, int]]
    date: Optional[str]
    n_levels: int = 0
    n_pairs: int = 0
    n_dark_frames: int = 0
    level_x: Optional[np.ndarray] = None
    level_y: Optional[np.ndarray] = None


def calibrate_folder(calib_dir, *, roi=None, serial: Optional[str] = None,
                     chunk: int = DEFAULT_CHUNK,
                     progress: bool = False, backend: str = "numba") -> FlashCalibration:
    """Calibrate the Flash4.0 carryover from a folder of bright/dark pairs and dark frames.

    Parameters
    ----------
    calib_dir : path-like
        Folder laid out as in LLSpy's documentation (see the module notes).
    roi : (left, top, right, bottom), optional
        Camera ROI, when the folder has no Settings.txt.
    serial : str, optional
        Camera serial, when the folder has no Settings.txt.
    chunk : int
        Planes read at a time (and per robust median).
    progress : bool
        Draw a progress bar on stderr.
    backend : {'numba', 'numpy'}
        Fit implementation.

    Returns
    -------
    FlashCalibration

    Raises
    ------
    CamcorrError
        Empty folder, no dark frames, no pairs, unpaired files, stacks of unequal shapes, images
        not matching the Settings.txt ROI, no ROI known.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from camcorr.simulate import lls
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     sim = lls.write_calibration_folder(folder, n_planes=4, dark_planes=6, n_dark_files=1)
    ...     cal = calibrate_folder(folder, backend="numpy")
    >>> cal.A.shape, cal.n_failed, cal.serial
    ((48, 40), 0, '100740')
    >>> float(np.median(np.abs(cal.A - sim.truth.A) / sim.truth.A)) < 0.02  # median error of A
    True
    """
    LIMITS["chunk"].check(chunk, "chunk")
    files = find_calibration_files(calib_dir)
    date = None
    if files.settings is not None:
        st = parse_settings(files.settings)
        roi_final = st.roi if roi is None else as_roi(roi)
        serial = serial or st.serial
        date = st.date.strftime("%Y%m%d") if st.date else None
    elif roi is not None:
        roi_final = as_roi(roi)
    else:
        raise CamcorrError("no Settings.txt in the calibration folder", argument="CALIB_DIR",
                           expected="a *Settings.txt (camera serial and ROI, needed to align the "
                                    "calibration with data)", received=f"none in {calib_dir}",
                           fix="Copy the Settings.txt of the calibration acquisition into the folder")
    date = date or _date.today().strftime("%Y%m%d")

    # shapes, before reading any pixel
    shapes = {}
    for f0, f1 in (pair for v in files.pairs.values() for pair in v):
        s0, s1 = _tiff_shape(f0), _tiff_shape(f1)
        if s0 != s1:
            raise CamcorrError("bright and dark stacks of a pair differ in shape", argument="CALIB_DIR",
                               expected=f"{f1.name} with the shape {s0} of {f0.name}",
                               received=f"shape {s1}",
                               fix="Each ch0 stack needs a ch1 stack with the same planes and size")
        shapes[f0] = s0
    dark_shapes = {f: _tiff_shape(f) for f in files.darks}
    yx = {s[-2:] for s in list(shapes.values()) + list(dark_shapes.values())}
    if len(yx) != 1:
        raise CamcorrError("calibration images differ in size", argument="CALIB_DIR",
                           expected="all pairs and dark frames with the same (Y, X)",
                           received="sizes " + ", ".join(str(s) for s in sorted(yx)))
    img_shape = yx.pop()
    if roi_shape(roi_final) != img_shape:
        raise CamcorrError("images do not match the camera ROI", argument="CALIB_DIR",
                           expected=f"images of {roi_shape(roi_final)} for ROI {roi_final} "
                                    "(rows Left..Right, columns Top..Bot)",
                           received=f"images of {img_shape}")
    n_dark = sum(int(np.prod(s[:-2])) if len(s) > 2 else 1 for s in dark_shapes.values())
    if n_dark < 2:
        raise CamcorrError("too few dark frames", argument="CALIB_DIR",
                           expected="at least 2 dark frames (thousands recommended)",
                           received=f"{n_dark}")
    n_pair_planes = sum(2 * (int(np.prod(s[:-2])) if len(s) > 2 else 1) for s in shapes.values())

    bar = Progress(n_dark + n_pair_planes, "flash calibrate", enabled=progress)
    with bar:
        acc = RunningMoments()
        for block in iter_planes(files.darks, chunk=chunk, argument="CALIB_DIR"):
            acc.update(block)
            bar.update(block.shape[0])
        offset = acc.mean
        noise = acc.std(ddof=1)
        lv = level_stats(files.pairs, offset, chunk=chunk, bar=bar)
    A, B, gof, status = fit_levels(lv.x, lv.y, lv.count, backend=backend)
    n_failed = int(np.count_nonzero(status))
    return FlashCalibration(A=A, B=B, offset=offset.astype(np.float32), noise=noise.astype(np.float32),
                            gof=gof, status=status, n_failed=n_failed, serial=serial, roi=roi_final,
                            date=date, n_levels=len(lv.names), n_pairs=files.n_pairs,
                            n_dark_frames=n_dark, level_x=lv.x.astype(np.float32),
                            level_y=lv.y.astype(np.float32))
