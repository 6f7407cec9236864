"""Per-pixel median over planes: a numba kernel and its numpy reference.

Two kernels: for up to 128 planes an odd-even transposition sorting network applied to 64
pixels at once (vectorised min/max), beyond that Wirth's selection algorithm per pixel
(N. Wirth, Algorithms + Data Structures = Programs, 1976, section 2.3.4), O(k) per pixel;
both in parallel over rows and both pick the same middle element(s).  ``numpy.median(stack, axis=0)`` is the reference (same result to
float32 rounding; tested in tests/test_flatfield.py).
"""
from __future__ import annotations

import numpy as np

__all__ = ["median_over_planes", "median_over_planes_numpy", "bin_subtract",
           "bin_subtract_numpy"]


def median_over_planes_numpy(stack: np.ndarray) -> np.ndarray:
    """Reference: ``numpy.median`` over axis 0 of a (k, Y, X) stack, as float32."""
    return np.median(stack, axis=0).astype(np.float32)


_NET_CHUNK = 64
"""Pixels sorted side by side by the network kernel (k x 64 float32 stay in the L1/L2 cache)."""
_NET_MAX_PLANES = 128
"""Up to this many planes the sorting network is faster than per-pixel selection (O(k^2) vs
O(k) work per pixel, but vectorised: ~20x faster at k = 11, ~3x at k = 100, measured)."""


try:  # numba is a hard dependency of camcorr, but keep the module importable without it
    import numba

    @numba.njit(cache=True, nogil=True)
    def _select(buf, k, m):  # pragma: no cover - compiled
        lo, hi = 0, k - 1
        while lo < hi:
            x = buf[m]
            i, j = lo, hi
            while True:
                while buf[i] < x:
                    i += 1
                while x < buf[j]:
                    j -= 1
                if i <= j:
                    t = buf[i]
                    buf[i] = buf[j]
                    buf[j] = t
                    i += 1
                    j -= 1
                if i > j:
                    break
            if j < m:
                lo = i
            if m < i:
                hi = j
        return buf[m]

    @numba.njit(cache=True, parallel=True, nogil=True)
    def _median_kernel(stack, out):  # pragma: no cover - compiled
        k, ny, nx = stack.shape
        m = k // 2
        for y in numba.prange(ny):
            buf = np.empty(k, dtype=np.float32)
            for x in range(nx):
                for j in range(k):
                    buf[j] = stack[j, y, x]
                upper = _select(buf, k, m)
                if k % 2 == 1:
                    out[y, x] = upper
                else:
                    lower = buf[0]
                    for j in range(1, m):
                        if buf[j] > lower:
                            lower = buf[j]
                    out[y, x] = 0.5 * (lower + upper)

    @numba.njit(cache=True, parallel=True, nogil=True)
    def _median_network_kernel(stack, out):  # pragma: no cover - compiled
        # Odd-even transposition sort (k passes of compare-exchange of neighbours, which sorts
        # any k values; D. E. Knuth, TAOCP vol. 3, section 5.3.4) applied to _NET_CHUNK pixels
        # at once: branch-free min/max over contiguous columns, which the compiler vectorises.
        k, ny, nx = stack.shape
        m = k // 2
        for y in numba.prange(ny):
            buf = np.empty((k, _NET_CHUNK), dtype=np.float32)
            for x0 in range(0, nx, _NET_CHUNK):
                w = min(_NET_CHUNK, nx - x0)
                for j in range(k):
                    for x in range(w):
                        buf[j, x] = stack[j, y, x0 + x]
                for p in range(k):
                    for i in range(p % 2, k - 1, 2):
                        for x in range(w):
                            a = buf[i, x]
                            b = buf[i + 1, x]
                            buf[i, x] = min(a, b)
                            buf[i + 1, x] = max(a, b)
                if k % 2 == 1:
                    for x in range(w):
                        out[y, x0 + x] = buf[m, x]
                else:
                    for x in range(w):
                        out[y, x0 + x] = 0.5 * (buf[m - 1, x] + buf[m, x])

    @numba.njit(cache=True, nogil=True)
    def _bin_subtract_kernel(plane, dark, b, scale, out):  # pragma: no cover - compiled
        ny, nx = plane.shape
        nby, nbx = out.shape
        out[:] = 0.0
        diff = np.empty(nx, dtype=np.float32)
        for y in range(ny):
            by = y // b
            for x in range(nx):  # contiguous, vectorised
                diff[x] = np.float32(plane[y, x]) - dark[y, x]
            if b == 2:  # the default (sigma = 2): pairs summed without an inner loop
                for bx in range(nx // 2):
                    out[by, bx] += diff[2 * bx] + diff[2 * bx + 1]
                if nx % 2:
                    out[by, nbx - 1] += diff[nx - 1]
            else:
                for bx in range(nbx):
                    x0 = bx * b
                    x1 = min(x0 + b, nx)
                    acc = np.float32(0.0)
                    for x in range(x0, x1):
                        acc += diff[x]
                    out[by, bx] += acc
        for by in range(nby):
            cy = min(b, ny - by * b)
            for bx in range(nbx):
                cx = min(b, nx - bx * b)
                out[by, bx] *= scale / (cy * cx)

    _HAVE_NUMBA = True
except ImportError:  # pragma: no cover
    _HAVE_NUMBA = False


def median_over_planes(stack: np.ndarray, *, backend: str = "numba") -> np.ndarray:
    """Per-pixel median over axis 0 of a float32 (k, Y, X) stack (NaN-free), as float32 (Y, X).

    Parameters
    ----------
    stack : ndarray, shape (k, Y, X), float32
    backend : {'numba', 'numpy', 'network', 'select'}
        'numba' picks the faster numba kernel for k: a vectorised sorting network up to
        128 planes ('network'), Wirth's selection beyond ('select'); 'numpy' is the reference.
    """
    if stack.shape[0] == 1:
        return stack[0].astype(np.float32, copy=True)
    if backend == "numpy" or not _HAVE_NUMBA:
        return median_over_planes_numpy(stack)
    out = np.empty(stack.shape[1:], dtype=np.float32)
    stack = np.ascontiguousarray(stack, dtype=np.float32)
    if backend == "network" or (backend == "numba" and stack.shape[0] <= _NET_MAX_PLANES):
        _median_network_kernel(stack, out)
    else:
        _median_kernel(stack, out)
    return out


def bin_subtract_numpy(plane: np.ndarray, dark: np.ndarray, b: int, scale: float) -> np.ndarray:
    """Reference: ``scale * block_mean(plane - dark, b)`` as float32 (partial edge blocks too)."""
    diff = plane.astype(np.float32) - dark
    ny, nx = diff.shape
    rs = np.add.reduceat(np.add.reduceat(diff, np.arange(0, ny, b), axis=0),
                         np.arange(0, nx, b), axis=1)
    cy = np.minimum(b, ny - np.arange(0, ny, b)).astype(np.float32)
    cx = np.minimum(b, nx - np.arange(0, nx, b)).astype(np.float32)
    return (rs / cy[:, None] / cx[None, :] * np.float32(scale)).astype(np.float32)


def bin_subtract(plane: np.ndarray, dark: np.ndarray, b: int, scale: float, out=None,
                 *, backend: str = "numba") -> np.ndarray:
    """``scale * block_mean(plane - dark, b)``: one pass over a raw plane (any numeric dtype).

    Parameters
    ----------
    plane : ndarray (Y, X)
        Raw plane (ADU).
    dark : ndarray (Y, X) float32
        Darkfield (ADU).
    b : int
        Block size (1: no binning).
    scale : float
        Factor applied after averaging (1 / plane level when normalising).
    out : ndarray (ceil(Y / b), ceil(X / b)) float32, optional
    """
    plane = np.asarray(plane)  # plain ndarray (not a memmap subclass)
    if not plane.dtype.isnative:  # e.g. big-endian TIFFs: numba needs native byte order
        plane = plane.astype(plane.dtype.newbyteorder("="))
    ny, nx = plane.shape
    shape = (-(-ny // b), -(-nx // b))
    if backend == "numpy" or not _HAVE_NUMBA:
        res = bin_subtract_numpy(plane, dark, b, scale)
        if out is not None:
            out[...] = res
            return out
        return res
    if out is None:
        out = np.empty(shape, dtype=np.float32)
    _bin_subtract_kernel(plane, np.ascontiguousarray(dark, dtype=np.float32), int(b),
                         np.float32(scale), out)
    return out
