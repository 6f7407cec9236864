"""Per-pixel median over planes, block means and Gaussian smoothing: numba kernels and their
numpy/scipy references.

Two kernels: for up to 128 planes an odd-even transposition sorting network applied to 64
pixels at once (vectorised min/max), beyond that Wirth's selection algorithm per pixel
(N. Wirth, Algorithms + Data Structures = Programs, 1976, section 2.3.4), O(k) per pixel;
both in parallel over rows and both pick the same middle element(s).  ``numpy.median(stack, axis=0)`` is the reference (same result to
float32 rounding; tested in tests/test_flatfield.py).

The Gaussian filter (:func:`gaussian_reflect`) is separable, with mirrored borders, the
kernel truncated at 4 sigma and float64 accumulation: ``scipy.ndimage.gaussian_filter(image,
sigma, mode='reflect')`` is the reference (same result to float32 rounding; tested in
tests/test_kernels_hypothesis.py).  Symmetric taps are paired and contiguous rows vectorised.

The others, each beside its numpy reference (tested in tests/test_kernels_hypothesis.py):
subtract-and-bin of a raw plane (:func:`bin_subtract`), a plane's level (:func:`plane_level`:
quickselect on a regular subsample, ``numpy.median``'s value), bilinear un-binning
(:func:`unbin2d`) and one held-out candidate of the smoothing choice in one pass
(:func:`trend_heldout`: flat-field up to its mean, its minimum, the held-out CV).
"""
from __future__ import annotations

import numpy as np

from ..io import native_byte_order

__all__ = ["median_over_planes", "median_over_planes_numpy", "bin_subtract",
           "bin_subtract_numpy", "gaussian_reflect", "gaussian_reflect_scipy", "gaussian_weights",
           "trend_heldout", "trend_heldout_numpy", "plane_level", "plane_level_numpy",
           "unbin2d", "unbin2d_numpy"]

GAUSSIAN_TRUNCATE = 4.0
"""Gaussian kernels end at ``int(4 sigma + 0.5)`` pixels from the centre (scipy's default)."""


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

    @numba.njit(cache=True, nogil=True, inline="always")
    def _mirror(i, n):  # pragma: no cover - compiled
        # half-sample symmetric extension ('reflect': d c b a | a b c d | d c b a), any i
        m = i % (2 * n)
        return m if m < n else 2 * n - 1 - m

    @numba.njit(cache=True, parallel=True, nogil=True)
    def _gauss_axis0_kernel(img, w, out):  # pragma: no cover - compiled
        # along Y: each output row a weighted sum of whole input rows (contiguous, vectorised)
        ny, nx = img.shape
        r = (w.size - 1) // 2
        for y in numba.prange(ny):
            acc = np.empty(nx, dtype=np.float64)
            src = img[_mirror(y, ny)]
            for x in range(nx):
                acc[x] = w[r] * src[x]
            for k in range(1, r + 1):
                lo = img[_mirror(y - k, ny)]
                hi = img[_mirror(y + k, ny)]
                wk = w[r + k]
                for x in range(nx):
                    acc[x] += wk * (np.float64(lo[x]) + np.float64(hi[x]))
            for x in range(nx):
                out[y, x] = acc[x]

    @numba.njit(cache=True, parallel=True, nogil=True)
    def _gauss_axis1_kernel(img, w, out):  # pragma: no cover - compiled
        # along X: each row copied with its mirrored margins, then symmetric taps paired
        ny, nx = img.shape
        r = (w.size - 1) // 2
        for y in numba.prange(ny):
            buf = np.empty(nx + 2 * r, dtype=np.float64)
            for x in range(nx):
                buf[x + r] = img[y, x]
            for i in range(r):
                buf[i] = img[y, _mirror(i - r, nx)]
                buf[nx + r + i] = img[y, _mirror(nx + i, nx)]
            acc = np.empty(nx, dtype=np.float64)
            for x in range(nx):
                acc[x] = w[r] * buf[x + r]
            for k in range(1, r + 1):
                wk = w[r + k]
                lo = buf[r - k: r - k + nx]  # slices, as in the Y pass: vectorised
                hi = buf[r + k: r + k + nx]
                for x in range(nx):
                    acc[x] += wk * (lo[x] + hi[x])
            for x in range(nx):
                out[y, x] = acc[x]

    @numba.njit(cache=True, nogil=True, error_model="numpy")
    def _trend_heldout_kernel(g, trend, ref, out):  # pragma: no cover - compiled
        # out = g * trend (rounded to out's dtype); min(out); sums of (ref / out - shift) and of
        # its square (shifted by the first ratio: no cancellation in the variance)
        n = g.size
        gf, tf, rf, of = g.ravel(), trend.ravel(), ref.ravel(), out.ravel()
        mn = np.inf
        s1 = 0.0
        s2 = 0.0
        shift = 0.0
        for i in range(n):
            v = of.dtype.type(np.float64(gf[i]) * np.float64(tf[i]))
            of[i] = v
            if v < mn:
                mn = v
            r = np.float64(rf[i]) / np.float64(v)
            if i == 0:
                shift = r
            d = r - shift
            s1 += d
            s2 += d * d
        return mn, shift, s1, s2

    @numba.njit(cache=True, nogil=True)
    def _plane_level_kernel(plane, dark, step):  # pragma: no cover - compiled
        ny, nx = plane.shape
        my, mx = (ny + step - 1) // step, (nx + step - 1) // step
        k = my * mx
        buf = np.empty(k, dtype=np.float32)
        i = 0
        for y in range(0, ny, step):
            for x in range(0, nx, step):
                buf[i] = np.float32(plane[y, x]) - dark[y, x]
                i += 1
        m = k // 2
        upper = _select(buf, k, m)
        if k % 2 == 1:
            return upper
        lower = buf[0]
        for j in range(1, m):
            if buf[j] > lower:
                lower = buf[j]
        return np.float32(np.float32(lower + upper) / np.float32(2.0))

    @numba.njit(cache=True, nogil=True)
    def _unbin_kernel(v, iy, wy, ix, wx, out):  # pragma: no cover - compiled
        # columns first (float32, as the reference), then rows: two lerps per output pixel
        nby = v.shape[0]
        ny, nx = out.shape
        cols = np.empty((nby, nx), dtype=np.float32)
        for r in range(nby):
            for x in range(nx):
                w = wx[x]
                cols[r, x] = (v[r, ix[x]] * (np.float32(1.0) - w) + v[r, ix[x] + 1] * w)
        for y in range(ny):
            w = wy[y]
            a = cols[iy[y]]
            b = cols[iy[y] + 1]
            for x in range(nx):
                out[y, x] = a[x] * (np.float32(1.0) - w) + b[x] * w

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
    plane = native_byte_order(plane)
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


def gaussian_weights(sigma: float, truncate: float = GAUSSIAN_TRUNCATE) -> np.ndarray:
    """Sampled Gaussian of `sigma` pixels over ``-R..R``, ``R = int(truncate sigma + 0.5)``,
    normalised to sum 1 (float64): the kernel of ``scipy.ndimage.gaussian_filter``."""
    radius = int(truncate * float(sigma) + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    w = np.exp(-0.5 * (x / float(sigma)) ** 2)
    return w / w.sum()


def gaussian_reflect_scipy(image: np.ndarray, sigma: float) -> np.ndarray:
    """Reference: ``scipy.ndimage.gaussian_filter(image, sigma, mode='reflect')``."""
    from scipy import ndimage as ndi

    return ndi.gaussian_filter(image, sigma, mode="reflect")


def gaussian_reflect(image: np.ndarray, sigma: float, *, backend: str = "numba") -> np.ndarray:
    """Gaussian filter of a 2D float image, mirrored borders, truncated at 4 sigma.

    Parameters
    ----------
    image : ndarray (Y, X), float32 or float64
        Other dtypes and dimensions go to the reference.
    sigma : float
        Standard deviation, pixels (0: a copy).
    backend : {'numba', 'scipy'}
        'scipy' is the reference (:func:`gaussian_reflect_scipy`).

    Returns
    -------
    ndarray (Y, X), the dtype of `image`
        Accumulated in float64 along each axis and rounded to `image`'s dtype between the two
        passes, as scipy does.
    """
    image = np.asarray(image)
    if not sigma > 0:
        return image.copy()
    if backend == "scipy" or not _HAVE_NUMBA or image.ndim != 2 or image.dtype.kind != "f":
        return gaussian_reflect_scipy(image, sigma)
    image = np.ascontiguousarray(image)
    w = gaussian_weights(sigma)
    tmp = np.empty_like(image)
    _gauss_axis0_kernel(image, w, tmp)
    out = np.empty_like(image)
    _gauss_axis1_kernel(tmp, w, out)
    return out


def _ratio_cv(mean: float, var: float) -> float:
    std = float(np.sqrt(max(var, 0.0)))
    return std / mean if mean > 0 else float("inf")


def trend_heldout_numpy(g: np.ndarray, trend: np.ndarray, ref: np.ndarray):
    """Reference of :func:`trend_heldout`."""
    smooth = (g.astype(np.float64) * trend).astype(g.dtype)
    with np.errstate(divide="ignore", invalid="ignore"):  # not positive: criterion unused
        ratio = ref.astype(np.float64) / smooth
        return smooth, float(smooth.min()), _ratio_cv(float(ratio.mean()), float(ratio.var()))


def trend_heldout(g: np.ndarray, trend: np.ndarray, ref: np.ndarray, *, backend: str = "numba"):
    """One candidate flat-field and its held-out criterion in one pass.

    Parameters
    ----------
    g : ndarray (Y, X) float32
        The smoothed ratio of a half's statistic to its quadratic trend.
    trend : ndarray (Y, X) float64
        That trend.
    ref : ndarray (Y, X)
        The other half's robust background (held-out target).
    backend : {'numba', 'numpy'}
        'numpy' is the reference (:func:`trend_heldout_numpy`).

    Returns
    -------
    smooth : ndarray (Y, X), dtype of `g`
        ``g * trend``: the flat-field up to its mean.
    minimum : float
        Smallest value of `smooth` (a candidate must be positive everywhere).
    cv : float
        Coefficient of variation (population std / mean) of ``ref / smooth``: the same as with
        the mean-1 flat-field (inf when the mean is not positive).
    """
    if backend == "numpy" or not _HAVE_NUMBA or g.size == 0:
        return trend_heldout_numpy(g, trend, ref)
    g = np.ascontiguousarray(g)
    out = np.empty_like(g)
    mn, shift, s1, s2 = _trend_heldout_kernel(
        g, np.ascontiguousarray(trend, dtype=np.float64), np.ascontiguousarray(ref), out)
    n = g.size
    return out, float(mn), _ratio_cv(shift + s1 / n, s2 / n - (s1 / n) ** 2)


LEVEL_SAMPLES = 8192
"""About this many pixels (a regular grid) give each plane's level."""


def _level_step(shape) -> int:
    return max(1, int(np.sqrt(shape[0] * shape[1] / LEVEL_SAMPLES)))


def plane_level_numpy(plane: np.ndarray, dark: np.ndarray) -> float:
    """Reference of :func:`plane_level`."""
    step = _level_step(plane.shape)
    sub = plane[::step, ::step].astype(np.float32) - dark[::step, ::step]
    return float(np.median(sub))


def plane_level(plane: np.ndarray, dark: np.ndarray, *, backend: str = "numba") -> float:
    """Median of ``plane - dark`` on a regular grid of about :data:`LEVEL_SAMPLES` pixels
    (every ``step``-th row and column), float32 arithmetic as numpy's (same value).

    Parameters
    ----------
    plane : ndarray (Y, X), any numeric dtype (finite)
    dark : ndarray (Y, X) float32
    backend : {'numba', 'numpy'}
        'numpy' is the reference (:func:`plane_level_numpy`).
    """
    if backend == "numpy" or not _HAVE_NUMBA or plane.size == 0:
        return plane_level_numpy(plane, dark)
    return float(_plane_level_kernel(native_byte_order(plane),
                                     np.asarray(dark, dtype=np.float32), _level_step(plane.shape)))


def _unbin_axis(n: int, nb: int, b: int):
    """Left block index (0 .. nb - 2) and float32 weight of each of `n` output positions:
    block values sit at the block centres; linear inside, extrapolated at the ends."""
    u = (np.arange(n) - (b - 1) / 2) / b
    i0 = np.clip(np.floor(u), 0, nb - 2).astype(np.intp)
    return i0, (u - i0).astype(np.float32)


def unbin2d_numpy(binned: np.ndarray, b: int, shape) -> np.ndarray:
    """Reference of :func:`unbin2d` (numpy, also for fewer than two blocks along an axis)."""
    if b <= 1:
        return binned
    out = np.asarray(binned, dtype=np.float32)
    # columns first (on the small array), then rows (whole-row gathers are cheap)
    for axis, n in ((1, shape[1]), (0, shape[0])):
        nb = out.shape[axis]
        if nb < 2:
            out = np.repeat(out, n, axis=axis)
            continue
        # linear inside, extrapolated over the outer half-block (shading is steepest at the
        # edges; holding the last block value there would flatten it)
        i0, w = _unbin_axis(n, nb, b)
        w = w.reshape((-1, 1) if axis == 0 else (1, -1))
        out = (np.take(out, i0, axis=axis) * (1 - w) + np.take(out, i0 + 1, axis=axis) * w)
    return out


def unbin2d(binned: np.ndarray, b: int, shape, *, backend: str = "numba") -> np.ndarray:
    """Bilinear interpolation of b x b block values (at the block centres) back to `shape`
    (linear extrapolation beyond the outermost block centres), float32.

    Parameters
    ----------
    binned : ndarray (ceil(Y / b), ceil(X / b))
    b : int
        Block size (1: `binned` is returned).
    shape : (int, int)
        (Y, X) of the result.
    backend : {'numba', 'numpy'}
        'numpy' is the reference (:func:`unbin2d_numpy`; the same float32 operations).
    """
    if b <= 1:
        return binned
    v = np.ascontiguousarray(binned, dtype=np.float32)
    if backend == "numpy" or not _HAVE_NUMBA or v.ndim != 2 or min(v.shape) < 2:
        return unbin2d_numpy(v, b, shape)
    iy, wy = _unbin_axis(int(shape[0]), v.shape[0], b)
    ix, wx = _unbin_axis(int(shape[1]), v.shape[1], b)
    out = np.empty((int(shape[0]), int(shape[1])), dtype=np.float32)
    _unbin_kernel(v, iy, wy, ix, wx, out)
    return out
