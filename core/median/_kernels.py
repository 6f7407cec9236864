"""Numba kernels of the selective median filter and their numpy references.

Every kernel here has a numpy twin with the same signature and result (``*_numpy``); the tests
check that they agree.  Axes are (Z, Y, X).
"""
from __future__ import annotations

import numba
import numpy as np

__all__ = [
    "local_stats_numba",
    "local_stats_numpy",
    "replace_numba",
    "sort8_numba",
    "mean_std_numba",
    "mean_std_numpy",
    "MeanStdAccumulator",
    "neighbour_medians_numba",
    "neighbour_medians_numpy",
]

# 8-neighbourhood and the 16-pixel ring around it (used when all 8 neighbours are flagged).
_RING1 = np.array([(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)],
                  dtype=np.int64)
_RING2 = np.array([(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                   if max(abs(dy), abs(dx)) == 2], dtype=np.int64)


# --------------------------------------------------------------------------- projections
@numba.njit(parallel=True, cache=True)
def _mean_std_kernel(stack):
    nz, ny, nx = stack.shape
    mean = np.empty((ny, nx), np.float64)
    std = np.empty((ny, nx), np.float64)
    for y in numba.prange(ny):
        shift = np.empty(nx, np.float64)
        s1 = np.zeros(nx, np.float64)
        s2 = np.zeros(nx, np.float64)
        for x in range(nx):
            shift[x] = stack[0, y, x]
        for z in range(nz):
            for x in range(nx):
                d = stack[z, y, x] - shift[x]
                s1[x] += d
                s2[x] += d * d
        for x in range(nx):
            m = s1[x] / nz
            mean[y, x] = shift[x] + m
            v = (s2[x] - nz * m * m) / (nz - 1)
            std[y, x] = np.sqrt(v) if v > 0.0 else 0.0
    return mean, std


def mean_std_numba(stack: np.ndarray):
    """Per-pixel mean and standard deviation (ddof=1) over axis 0, float64, one pass.

    Values are shifted by the first plane before accumulation (shifted-data algorithm), which
    keeps the single pass accurate for camera data.

    Parameters
    ----------
    stack : ndarray, shape (Z, Y, X), Z >= 2
        Any real dtype; C-contiguous is fastest.

    Returns
    -------
    mean, std : ndarray, float64, shape (Y, X)
    """
    return _mean_std_kernel(np.ascontiguousarray(stack))


def mean_std_numpy(stack: np.ndarray):
    """numpy reference of :func:`mean_std_numba`."""
    data = np.asarray(stack, dtype=np.float64)
    return data.mean(axis=0), data.std(axis=0, ddof=1)


@numba.njit(parallel=True, cache=True)
def _mean_std_update_kernel(block, shift, s1, s2):
    nz, ny, nx = block.shape
    for y in numba.prange(ny):
        for z in range(nz):
            for x in range(nx):
                d = block[z, y, x] - shift[y, x]
                s1[y, x] += d
                s2[y, x] += d * d


@numba.njit(parallel=True, cache=True)
def _mean_std_finish_kernel(shift, s1, s2, nz):
    ny, nx = shift.shape
    mean = np.empty((ny, nx), np.float64)
    std = np.empty((ny, nx), np.float64)
    for y in numba.prange(ny):
        for x in range(nx):
            m = s1[y, x] / nz
            mean[y, x] = shift[y, x] + m
            v = (s2[y, x] - nz * m * m) / (nz - 1)
            std[y, x] = np.sqrt(v) if v > 0.0 else 0.0
    return mean, std


class MeanStdAccumulator:
    """Streamed per-pixel mean and std (ddof=1): the one-pass algorithm of :func:`mean_std_numba`.

    Blocks of planes are added in order with :meth:`update`; the accumulation per pixel (shift
    by the first plane, sums of the shifted values and of their squares, in plane order) is the
    one of :func:`mean_std_numba`, so the result is bit-identical to it for the same planes,
    however they are cut into blocks.  Memory: three float64 maps of the plane size.

    Parameters
    ----------
    backend : {'numba', 'numpy'}
        numba kernels, or numpy (reference; same formulas, same order of additions per pixel).
    """

    def __init__(self, backend: str = "numba"):
        self.backend = backend
        self.count = 0
        self.shift = self.s1 = self.s2 = None

    def update(self, block: np.ndarray) -> "MeanStdAccumulator":
        """Add a block of planes, shape (n, Y, X) (any real dtype)."""
        block = np.ascontiguousarray(block)
        if block.shape[0] == 0:
            return self
        if self.shift is None:
            self.shift = block[0].astype(np.float64)
            self.s1 = np.zeros(block.shape[1:], np.float64)
            self.s2 = np.zeros(block.shape[1:], np.float64)
        if self.backend == "numba":
            _mean_std_update_kernel(block, self.shift, self.s1, self.s2)
        else:
            for plane in block:
                d = plane - self.shift
                self.s1 += d
                self.s2 += d * d
        self.count += int(block.shape[0])
        return self

    def result(self):
        """``(mean, std)`` float64 maps (Y, X); needs at least 2 planes."""
        if self.backend == "numba":
            return _mean_std_finish_kernel(self.shift, self.s1, self.s2, self.count)
        nz = self.count
        m = self.s1 / nz
        v = (self.s2 - nz * m * m) / (nz - 1)
        return self.shift + m, np.sqrt(np.where(v > 0.0, v, 0.0))


# --------------------------------------------------------------------------- small sorts
@numba.njit(cache=True, inline="always")
def _sort8(a0, a1, a2, a3, a4, a5, a6, a7):
    """Sort 8 values with Batcher's odd-even merge network (19 branchless min/max pairs)."""
    a0, a2 = min(a0, a2), max(a0, a2)
    a1, a3 = min(a1, a3), max(a1, a3)
    a4, a6 = min(a4, a6), max(a4, a6)
    a5, a7 = min(a5, a7), max(a5, a7)
    a0, a4 = min(a0, a4), max(a0, a4)
    a1, a5 = min(a1, a5), max(a1, a5)
    a2, a6 = min(a2, a6), max(a2, a6)
    a3, a7 = min(a3, a7), max(a3, a7)
    a0, a1 = min(a0, a1), max(a0, a1)
    a2, a3 = min(a2, a3), max(a2, a3)
    a4, a5 = min(a4, a5), max(a4, a5)
    a6, a7 = min(a6, a7), max(a6, a7)
    a2, a4 = min(a2, a4), max(a2, a4)
    a3, a5 = min(a3, a5), max(a3, a5)
    a1, a4 = min(a1, a4), max(a1, a4)
    a3, a6 = min(a3, a6), max(a3, a6)
    a1, a2 = min(a1, a2), max(a1, a2)
    a3, a4 = min(a3, a4), max(a3, a4)
    a5, a6 = min(a5, a6), max(a5, a6)
    return a0, a1, a2, a3, a4, a5, a6, a7


@numba.njit(cache=True)
def sort8_numba(values):
    """Sorted copy of 8 values through :func:`_sort8` (exposed for the tests)."""
    r = _sort8(values[0], values[1], values[2], values[3], values[4], values[5], values[6],
               values[7])
    out = np.empty(8, np.float64)
    for i in range(8):
        out[i] = r[i]
    return out


@numba.njit(cache=True)
def _median_inplace(buf, n):
    # insertion sort of buf[:n]; n <= 16 (borders and flagged neighbours only)
    for i in range(1, n):
        v = buf[i]
        j = i - 1
        while j >= 0 and buf[j] > v:
            buf[j + 1] = buf[j]
            j -= 1
        buf[j + 1] = v
    h = n // 2
    if n % 2 == 1:
        return buf[h]
    return 0.5 * (buf[h - 1] + buf[h])


# --------------------------------------------------------------------------- 3x3 statistics
@numba.njit(parallel=True, cache=True)
def _local_stats_kernel(img):
    ny, nx = img.shape
    med9 = np.empty((ny, nx), np.float64)
    third = np.empty((ny, nx), np.float64)
    for y in numba.prange(ny):
        ym = y - 1 if y > 0 else 1          # mirrored borders: -1 -> 1, n -> n - 2
        yp = y + 1 if y < ny - 1 else ny - 2
        for x in range(nx):
            xm = x - 1 if x > 0 else 1
            xp = x + 1 if x < nx - 1 else nx - 2
            s = _sort8(img[ym, xm], img[ym, x], img[ym, xp], img[y, xm], img[y, xp],
                       img[yp, xm], img[yp, x], img[yp, xp])
            c = img[y, x]
            # 5th smallest of the 9 values = the centre clamped to [4th, 5th] of the 8 others
            med9[y, x] = min(max(c, s[3]), s[4])
            third[y, x] = s[5]
    return med9, third


def local_stats_numba(image: np.ndarray):
    """3x3 median (centre included) and third-largest of the 8 neighbours, mirrored borders.

    Parameters
    ----------
    image : ndarray, shape (Y, X), Y, X >= 2

    Returns
    -------
    median9, third_largest : ndarray, float64, shape (Y, X)
    """
    return _local_stats_kernel(np.ascontiguousarray(image, dtype=np.float64))


def local_stats_numpy(image: np.ndarray):
    """scipy reference of :func:`local_stats_numba`."""
    from scipy import ndimage as ndi

    img = np.asarray(image, dtype=np.float64)
    ring = np.ones((3, 3), bool)
    ring[1, 1] = False
    return (ndi.median_filter(img, size=3, mode="mirror"),
            ndi.rank_filter(img, 5, footprint=ring, mode="mirror"))


# --------------------------------------------------------------------------- replacement
@numba.njit(cache=True)
def _gather(ys, xs, mask, ring1, ring2):
    """Flat indices of the neighbours used for each bad pixel: (nbad, 16), counts, level."""
    ny, nx = mask.shape
    nbad = ys.size
    flat = np.zeros((nbad, 16), np.int64)
    counts = np.zeros(nbad, np.int64)
    level = np.zeros(nbad, np.int64)
    for i in range(nbad):
        y = ys[i]
        x = xs[i]
        n = 0
        for k in range(ring1.shape[0]):
            yy = y + ring1[k, 0]
            xx = x + ring1[k, 1]
            if 0 <= yy < ny and 0 <= xx < nx and not mask[yy, xx]:
                flat[i, n] = yy * nx + xx
                n += 1
        if n == 0:  # every neighbour flagged: use the unflagged pixels of the 5x5 ring
            level[i] = 1
            for k in range(ring2.shape[0]):
                yy = y + ring2[k, 0]
                xx = x + ring2[k, 1]
                if 0 <= yy < ny and 0 <= xx < nx and not mask[yy, xx]:
                    flat[i, n] = yy * nx + xx
                    n += 1
        if n == 0:  # still none: the 8 neighbours, flagged or not
            level[i] = 2
            for k in range(ring1.shape[0]):
                yy = y + ring1[k, 0]
                xx = x + ring1[k, 1]
                if 0 <= yy < ny and 0 <= xx < nx:
                    flat[i, n] = yy * nx + xx
                    n += 1
        counts[i] = n
    return flat, counts, level


@numba.njit(cache=True, inline="always")
def _neighbour_median(plane, flat, counts, i, buf):
    n = counts[i]
    if n == 8:
        f = flat[i]
        s = _sort8(np.float64(plane[f[0]]), np.float64(plane[f[1]]), np.float64(plane[f[2]]),
                   np.float64(plane[f[3]]), np.float64(plane[f[4]]), np.float64(plane[f[5]]),
                   np.float64(plane[f[6]]), np.float64(plane[f[7]]))
        return 0.5 * (s[3] + s[4])
    for k in range(n):
        buf[k] = plane[flat[i, k]]
    return _median_inplace(buf, n)


@numba.njit(parallel=True, cache=True)
def _medians_kernel(stack, flat, counts):
    nz = stack.shape[0]
    nbad = counts.size
    out = np.empty((nz, nbad), np.float64)
    for z in numba.prange(nz):
        buf = np.empty(16, np.float64)
        plane = stack[z].ravel()
        for i in range(nbad):
            if counts[i] == 0:  # no other pixel in the image (1 x 1): keep the value
                out[z, i] = plane[0]
            else:
                out[z, i] = _neighbour_median(plane, flat, counts, i, buf)
    return out


@numba.njit(parallel=True, cache=True)
def _replace_kernel(stack, flat, counts, ys, xs, out, lo, hi, to_int):
    nz = stack.shape[0]
    nbad = counts.size
    for z in numba.prange(nz):
        buf = np.empty(16, np.float64)
        plane = stack[z].ravel()
        oplane = out[z]
        for i in range(nbad):
            if counts[i] == 0:  # no other pixel in the image (1 x 1): keep the value
                continue
            v = _neighbour_median(plane, flat, counts, i, buf)
            if to_int:  # round half to even, clip to the dtype's range
                v = min(max(np.rint(v), lo), hi)
            oplane[ys[i], xs[i]] = v
    return out


def replace_numba(planes: np.ndarray, mask: np.ndarray):
    """Copy of `planes` (N, Y, X) with the flagged pixels replaced; dtype kept.

    Same values as :func:`neighbour_medians_numba` written into a copy, integer dtypes rounded
    half to even and clipped.  Returns ``(out, level)``.
    """
    planes = np.ascontiguousarray(planes)
    mask = np.ascontiguousarray(mask, dtype=np.bool_)
    out = planes.copy()
    ys, xs = np.nonzero(mask)
    ys = ys.astype(np.int64)
    xs = xs.astype(np.int64)
    flat, counts, level = _gather(ys, xs, mask, _RING1, _RING2)
    if ys.size:
        if planes.dtype.kind in "ui":
            info = np.iinfo(planes.dtype)
            lo, hi, to_int = float(info.min), float(info.max), True
        else:
            lo, hi, to_int = -np.inf, np.inf, False
        _replace_kernel(planes, flat, counts, ys, xs, out, lo, hi, to_int)
    return out, level


def neighbour_medians_numba(stack: np.ndarray, mask: np.ndarray):
    """Median of the unflagged 8-neighbours of every flagged pixel, in every plane.

    Parameters
    ----------
    stack : ndarray, shape (Z, Y, X)
    mask : ndarray of bool, shape (Y, X)
        Flagged (bad) pixels.

    Returns
    -------
    ys, xs : ndarray of int64, shape (n_bad,)
        Coordinates of the flagged pixels (row-major order).
    values : ndarray, float64, shape (Z, n_bad)
        Replacement values: the median of the in-image, unflagged 8-neighbours (pixel itself
        excluded; the mean of the two middle values for an even count).  If all of them are
        flagged, the unflagged pixels of the surrounding 5x5 ring are used; if those are flagged
        too, all in-image 8-neighbours.
    level : ndarray of int64, shape (n_bad,)
        0: 8-neighbours, 1: 5x5 ring, 2: flagged 8-neighbours were used.
    """
    mask = np.ascontiguousarray(mask, dtype=np.bool_)
    ys, xs = np.nonzero(mask)
    ys = ys.astype(np.int64)
    xs = xs.astype(np.int64)
    flat, counts, level = _gather(ys, xs, mask, _RING1, _RING2)
    if ys.size == 0:
        return ys, xs, np.empty((stack.shape[0], 0)), level
    values = _medians_kernel(np.ascontiguousarray(stack), flat, counts)
    return ys, xs, values, level


def neighbour_medians_numpy(stack: np.ndarray, mask: np.ndarray):
    """numpy reference of :func:`neighbour_medians_numba` (same outputs)."""
    mask = np.asarray(mask, dtype=bool)
    ny, nx = mask.shape
    ys, xs = np.nonzero(mask)
    ys = ys.astype(np.int64)
    xs = xs.astype(np.int64)
    nbad = ys.size
    level = np.zeros(nbad, np.int64)
    if nbad == 0:
        return ys, xs, np.empty((stack.shape[0], 0)), level

    def candidates(offsets):
        yy = ys[:, None] + offsets[None, :, 0]
        xx = xs[:, None] + offsets[None, :, 1]
        inside = (yy >= 0) & (yy < ny) & (xx >= 0) & (xx < nx)
        yc, xc = np.clip(yy, 0, ny - 1), np.clip(xx, 0, nx - 1)
        return yc, xc, inside

    y1, x1, in1 = candidates(_RING1)
    ok1 = in1 & ~mask[y1, x1]
    y2, x2, in2 = candidates(_RING2)
    ok2 = in2 & ~mask[y2, x2]
    use1 = ok1.any(axis=1)
    use2 = ~use1 & ok2.any(axis=1)
    use3 = ~use1 & ~use2
    level[use2] = 1
    level[use3] = 2
    data = np.asarray(stack, dtype=np.float64)
    values = np.empty((data.shape[0], nbad))
    for sel, yc, xc, ok in ((use1, y1, x1, ok1), (use2, y2, x2, ok2), (use3, y1, x1, in1)):
        if not sel.any():
            continue
        v = data[:, yc[sel], xc[sel]]  # (Z, n, k)
        v = np.where(ok[sel][None], v, np.nan)
        none = ~ok[sel].any(axis=1)  # no other pixel in the image (1 x 1): keep the value
        if none.any():
            v[:, none, 0] = data[:, ys[sel][none], xs[sel][none]]
        values[:, sel] = np.nanmedian(v, axis=2)
    return ys, xs, values, level
