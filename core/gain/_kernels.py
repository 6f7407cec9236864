"""Kernels of the smooth midway equalisation (SME), in numba and in plain numpy.

Vocabulary
----------
The equalisation works on *lines*: the columns of a frame for the column operator (the frame is
transposed first, so every line is contiguous in memory) and its rows for the row operator.  An
array ``L`` of shape (n_lines, n) holds one line per row.

* :func:`sort_lines` sorts every line: ``S[l] = sorted(L[l])`` and ``order[l]`` the pixel index of
  every rank (an argsort).
* :func:`equalise_lines` smooths the sorted lines with Gaussian weights over neighbouring lines
  (missing neighbours at the edges are skipped and the weights renormalised), then gives every pixel
  the smoothed value at its rank; tied pixels (equal values, common in integer and counting data)
  get the *mean* of the smoothed values over their tied ranks (mid-rank rule).
* :func:`total_variation` is the sum over lines ``l >= 1`` of ``|E[l] - E[l-1]|``, i.e. the total
  variation *across* lines, which is what the equalisation along that direction should reduce.

Every numba kernel has a numpy twin with the suffix ``_numpy``; the tests check that they agree.
The numba kernels are parallel over lines; the sort is a least-significant-digit radix argsort on
the order-preserving 32-bit integer image of float32 values (8-bit digits, constant digits
skipped), which is several times faster than a comparison sort for the 4096-pixel lines of a
4K frame.

References
----------
Sorzano, C.O.S. et al. (2018). Blind estimation of DED camera gain in Electron Microscopy.
J. Struct. Biol. 203(2), 90-93. doi:10.1016/j.jsb.2018.03.007
Tendero, Y., Landeau, S. & Gilles, J. (2012). Non-uniformity correction of infrared images by
midway equalization. Image Processing On Line 2, 134-146. doi:10.5201/ipol.2012.glmt-mire
"""
from __future__ import annotations

import math

import numba
import numpy as np

__all__ = [
    "gaussian_weights",
    "sort_lines",
    "sort_lines_numpy",
    "equalise_lines",
    "equalise_lines_numpy",
    "equalise_tv",
    "tie_groups",
    "total_variation",
    "total_variation_numpy",
    "midway_lines",
    "midway_lines_numpy",
]


def gaussian_weights(sigma: float) -> np.ndarray:
    """One-sided Gaussian weights ``w[k] = exp(-k**2 / (2 sigma**2))``, k = 0..ceil(3 sigma).

    ``sigma == 0`` gives ``[1.0]`` (no smoothing: the equalised frame is the frame itself).
    """
    if sigma <= 0:
        return np.ones(1, dtype=np.float64)
    radius = int(math.ceil(3.0 * sigma))
    k = np.arange(radius + 1, dtype=np.float64)
    return np.exp(-0.5 * k * k / (sigma * sigma))


# ----------------------------------------------------------------------------------------------
# sorting
# ----------------------------------------------------------------------------------------------

@numba.njit(cache=True)
def _keys_into(line_f32, keys):
    """Order-preserving map of float32 values onto uint32 keys (negatives reverse bits).

    -0.0 gets the key of +0.0: they are equal values, so a stable sort keeps their order (as
    ``np.argsort(kind='stable')`` does).
    """
    u = line_f32.view(np.uint32)
    n = u.shape[0]
    for i in range(n):
        x = u[i]
        if x == np.uint32(0x80000000):
            x = np.uint32(0)
        if x & np.uint32(0x80000000):
            keys[i] = ~x
        else:
            keys[i] = x | np.uint32(0x80000000)


@numba.njit(cache=True)
def _radix_argsort(keys, idx, tmp_keys, tmp_idx, counts):
    """Stable LSD radix argsort of uint32 `keys` (8-bit digits); result in keys/idx.

    `counts` (4, 256): the histograms of all four digits are taken in one pass over the keys;
    digits that are the same for every key are skipped.
    """
    n = keys.shape[0]
    for d in range(4):
        for b in range(256):
            counts[d, b] = 0
    for i in range(n):
        k = keys[i]
        counts[0, k & np.uint32(255)] += 1
        counts[1, (k >> np.uint32(8)) & np.uint32(255)] += 1
        counts[2, (k >> np.uint32(16)) & np.uint32(255)] += 1
        counts[3, k >> np.uint32(24)] += 1
        idx[i] = i
    if n == 0:
        return
    src_k, src_i, dst_k, dst_i = keys, idx, tmp_keys, tmp_idx
    swapped = False
    for d in range(4):
        shift = np.uint32(8 * d)
        c = counts[d]
        if c[(src_k[0] >> shift) & np.uint32(255)] == n:
            continue   # constant digit
        total = 0
        for b in range(256):
            v = c[b]
            c[b] = total
            total += v
        for i in range(n):
            dig = (src_k[i] >> shift) & np.uint32(255)
            pos = c[dig]
            c[dig] = pos + 1
            dst_k[pos] = src_k[i]
            dst_i[pos] = src_i[i]
        src_k, dst_k = dst_k, src_k
        src_i, dst_i = dst_i, src_i
        swapped = not swapped
    if swapped:
        for i in range(n):
            keys[i] = src_k[i]
            idx[i] = src_i[i]


@numba.njit(cache=True)
def _group_mean_inplace(keys_sorted, vals):
    """Replace `vals` (in key order) by its mean over every run of equal `keys_sorted`."""
    n = vals.shape[0]
    k = 0
    while k < n:
        e = k + 1
        acc = np.float64(vals[k])
        while e < n and keys_sorted[e] == keys_sorted[k]:
            acc += vals[e]
            e += 1
        if e - k > 1:
            m = np.float32(acc / (e - k))
            for j in range(k, e):
                vals[j] = m
        k = e


@numba.njit(cache=True, parallel=True)
def _sort_lines_numba(L, V, T, use_values, use_ties, S, order, n_chunks):
    """Lines in contiguous chunks (one per task), the scratch buffers allocated once per chunk
    (per line they were ~20000 allocations per call, shared allocator state between threads)."""
    m, n = L.shape
    step = (m + n_chunks - 1) // n_chunks
    for c in numba.prange(n_chunks):
        keys = np.empty(n, dtype=np.uint32)
        idx = np.empty(n, dtype=np.int32)
        tk = np.empty(n, dtype=np.uint32)
        ti = np.empty(n, dtype=np.int32)
        counts = np.empty((4, 256), dtype=np.int64)
        tsorted = np.empty(n if use_ties else 0, dtype=np.float32)
        for l in range(c * step, min(m, (c + 1) * step)):
            line = L[l]
            _keys_into(line, keys)
            _radix_argsort(keys, idx, tk, ti, counts)   # leaves `keys` sorted
            src = V[l] if use_values else line
            for k in range(n):
                j = idx[k]
                order[l, k] = j
                S[l, k] = src[j]
            if use_ties:
                tline = T[l]
                for k in range(n):
                    tsorted[k] = tline[idx[k]]
                _group_mean_inplace(tsorted, S[l])
            elif use_values:
                _group_mean_inplace(keys, S[l])


def sort_lines(L: np.ndarray, values=None, ties=None, out=None):
    """Sort every line of `L` (numba, parallel over lines).

    Parameters
    ----------
    L : ndarray, float32, shape (n_lines, n)
        Sort keys.
    values : ndarray, float32, shape (n_lines, n), optional
        Values to arrange in the order of the keys (default: the keys themselves).
    ties : ndarray, shape (n_lines, n), optional
        Tie keys: every run of equal tie keys in sorted order is one tie group.  Default: equal
        sort keys (when `values` is given) or no grouping.  The values of a tie group are
        replaced by their mean, so pixels that were tied in the recording stay tied (e.g. when
        the values are integer counts divided by a gain estimated from the same data, whose noise
        must not order them).
    out : (ndarray float32, ndarray int32), optional
        Buffers for ``S`` and ``order`` (shape of `L`).

    Returns
    -------
    S : ndarray, float32, shape (n_lines, n)
        Each line's values in ascending key order (tie groups averaged).
    order : ndarray, int32, shape (n_lines, n)
        ``order[l, k]``: pixel index of rank k (stable among ties).
    """
    L = np.ascontiguousarray(L, dtype=np.float32)
    if out is None:
        S = np.empty_like(L)
        order = np.empty(L.shape, dtype=np.int32)
    else:
        S, order = out
    V = L if values is None else np.ascontiguousarray(values, dtype=np.float32)
    T = L if ties is None else np.ascontiguousarray(ties, dtype=np.float32)
    if V.shape != L.shape or T.shape != L.shape:
        raise ValueError("values/ties and keys differ in shape")
    n_chunks = max(1, min(L.shape[0], 4 * numba.get_num_threads()))
    _sort_lines_numba(L, V, T, values is not None, ties is not None, S, order, n_chunks)
    return S, order


def sort_lines_numpy(L: np.ndarray, values=None, ties=None):
    """numpy twin of :func:`sort_lines`."""
    L = np.asarray(L, dtype=np.float32)
    order = np.argsort(L, axis=1, kind="stable").astype(np.int32)
    keys = np.take_along_axis(L, order, axis=1)
    if values is None and ties is None:
        return keys, order
    vals = keys if values is None else np.take_along_axis(
        np.asarray(values, dtype=np.float32), order, axis=1)
    t = keys if ties is None else np.take_along_axis(np.asarray(ties, dtype=np.float32), order,
                                                     axis=1)
    m, n = L.shape
    new_group = np.ones((m, n), dtype=bool)
    new_group[:, 1:] = t[:, 1:] != t[:, :-1]
    gid = (np.cumsum(new_group, axis=1) - 1 + (np.arange(m) * n)[:, None]).ravel()
    sums = np.bincount(gid, weights=vals.astype(np.float64).ravel(), minlength=m * n)
    cnts = np.bincount(gid, minlength=m * n)
    return (sums[gid] / np.maximum(cnts[gid], 1)).reshape(m, n).astype(np.float32), order


# ----------------------------------------------------------------------------------------------
# smoothing + mid-rank mapping
# ----------------------------------------------------------------------------------------------

@numba.njit(cache=True)
def _midrank_scatter(s_line, ref, order_line, out_line):
    """out[order[k]] = mean of ref over the tie group of sorted values s_line containing k."""
    n = s_line.shape[0]
    k = 0
    while k < n:
        v = s_line[k]
        e = k + 1
        acc = np.float64(ref[k])
        while e < n and s_line[e] == v:
            acc += ref[e]
            e += 1
        if e - k == 1:
            out_line[order_line[k]] = ref[k]
        else:
            mean = np.float32(acc / (e - k))
            for j in range(k, e):
                out_line[order_line[j]] = mean
        k = e


@numba.njit(cache=True, parallel=True)
def _tie_groups_numba(S, T, counts):
    m, n = S.shape
    for l in numba.prange(m):
        s = S[l]
        t = T[l]
        c = 0
        k = 0
        while k < n:
            e = k + 1
            while e < n and s[e] == s[k]:
                e += 1
            if e - k > 1:
                t[2 * c] = k
                t[2 * c + 1] = e
                c += 1
            k = e
        counts[l] = c


def tie_groups(S: np.ndarray, out=None):
    """Tie groups of sorted lines (runs of equal values longer than one rank).

    Parameters
    ----------
    S : ndarray, float32, shape (n_lines, n)
        Sorted lines (:func:`sort_lines`).
    out : ndarray, int32, shape (n_lines, n), optional
        Buffer for the group bounds.

    Returns
    -------
    bounds : ndarray, int32, shape (n_lines, n)
        ``bounds[l, 2 i]`` and ``bounds[l, 2 i + 1]``: first rank and end (exclusive) of the
        i-th tie group of line l (other entries unspecified).
    counts : ndarray, int64, shape (n_lines,)
        Number of tie groups per line (lines of distinct values: 0).
    """
    T = np.empty(S.shape, dtype=np.int32) if out is None else out
    counts = np.empty(S.shape[0], dtype=np.int64)
    _tie_groups_numba(S, T, counts)
    return T, counts


@numba.njit(cache=True)
def _equalise_line(S, order, T, counts, w, l, ref, out_line):
    m, n = S.shape
    radius = w.shape[0] - 1
    lo = max(0, l - radius)
    hi = min(m - 1, l + radius)
    norm = 0.0
    for j in range(lo, hi + 1):
        norm += w[abs(j - l)]
    for k in range(n):
        ref[k] = 0.0
    for j in range(lo, hi + 1):
        wj = np.float32(w[abs(j - l)] / norm)
        row = S[j]
        for k in range(n):
            ref[k] += wj * row[k]
    # mid-rank: a tie group gets the mean of the smoothed values over its ranks (in rank
    # order, only the groups longer than one rank), then one scatter to pixel order with no
    # data-dependent control flow
    t = T[l]
    for i in range(counts[l]):
        k = t[2 * i]
        e = t[2 * i + 1]
        acc = 0.0
        for j in range(k, e):
            acc += ref[j]
        v = np.float32(acc / (e - k))
        for j in range(k, e):
            ref[j] = v
    ol = order[l]
    for k in range(n):
        out_line[ol[k]] = ref[k]


@numba.njit(cache=True)
def _line_tv(a, b):
    s = np.float32(0.0)
    for k in range(a.shape[0]):
        s += abs(a[k] - b[k])
    return s


@numba.njit(cache=True, parallel=True)
def _equalise_numba(S, order, T, counts, w, E, factor, use_factor, n_chunks):
    """Equalise every line into E (times `factor` if used) and return the TV across lines.

    Lines are processed in contiguous chunks (one per task); the TV between consecutive lines of
    a chunk is summed while they are hot in cache, the chunk boundaries afterwards.
    """
    m, n = S.shape
    step = (m + n_chunks - 1) // n_chunks
    tvs = np.zeros(n_chunks, dtype=np.float64)
    for c in numba.prange(n_chunks):
        start = c * step
        stop = min(m, start + step)
        ref = np.empty(n, dtype=np.float32)
        acc = 0.0
        for l in range(start, stop):
            _equalise_line(S, order, T, counts, w, l, ref, E[l])
            if use_factor:
                fl = factor[l]
                el = E[l]
                for k in range(n):
                    el[k] *= fl[k]
            if l > start:
                acc += _line_tv(E[l], E[l - 1])
        tvs[c] = acc
    total = 0.0
    for c in range(n_chunks):
        total += tvs[c]
        start = c * step
        if 0 < start < m:
            total += _line_tv(E[start], E[start - 1])
    return total


def equalise_tv(S, order, weights, out=None, factor=None, groups=None):
    """:func:`equalise_lines` fused with :func:`total_variation` (numba, parallel).

    `groups` (:func:`tie_groups` of `S`) can be passed to reuse it across sigmas.

    Returns
    -------
    E : ndarray, float32, shape (n_lines, n)
        Equalised lines (multiplied by `factor` if given).
    tv : float
        Total variation of E across lines.
    """
    if out is None:
        out = np.empty(S.shape, dtype=np.float32)
    use = factor is not None
    fac = factor if use else out
    n_chunks = max(1, min(S.shape[0], 4 * numba.get_num_threads()))
    T, counts = tie_groups(S) if groups is None else groups
    tv = _equalise_numba(S, order, T, counts, np.asarray(weights, dtype=np.float64), out, fac,
                         use, n_chunks)
    return out, float(tv)


def equalise_lines(S: np.ndarray, order: np.ndarray, weights: np.ndarray, out=None) -> np.ndarray:
    """Smooth midway equalisation of sorted lines (numba, parallel over lines).

    Parameters
    ----------
    S, order : ndarray, shape (n_lines, n)
        Output of :func:`sort_lines`.
    weights : ndarray, shape (radius + 1,)
        One-sided weights over neighbouring lines (:func:`gaussian_weights`); at the edges the
        missing neighbours are skipped and the weights renormalised.
    out : ndarray, float32, optional
        Destination, shape (n_lines, n).

    Returns
    -------
    E : ndarray, float32, shape (n_lines, n)
        Equalised lines, in pixel order (mid-rank for ties).
    """
    return equalise_tv(S, order, weights, out=out)[0]


def _smooth_sorted_numpy(S, weights):
    S = np.asarray(S, dtype=np.float64)
    m = S.shape[0]
    radius = len(weights) - 1
    acc = np.zeros_like(S)
    norm = np.zeros((m, 1))
    for k in range(-radius, radius + 1):
        w = weights[abs(k)]
        lo, hi = max(0, -k), min(m, m - k)  # lines l with l + k inside [0, m)
        if hi <= lo:
            continue
        acc[lo:hi] += w * S[lo + k:hi + k]
        norm[lo:hi] += w
    return acc / norm


def _midrank_numpy(S, ref, order):
    """Mean of `ref` over each tie group of the sorted lines `S`, scattered to pixel order."""
    m, n = S.shape
    new_group = np.ones((m, n), dtype=bool)
    new_group[:, 1:] = S[:, 1:] != S[:, :-1]
    group = np.cumsum(new_group, axis=1) - 1                   # group id per rank
    offs = (np.arange(m) * n)[:, None]
    gid = (group + offs).ravel()
    sums = np.bincount(gid, weights=ref.ravel(), minlength=m * n)
    cnts = np.bincount(gid, minlength=m * n)
    vals = (sums[gid] / cnts[gid]).reshape(m, n)
    E = np.empty((m, n), dtype=np.float32)
    np.put_along_axis(E, order.astype(np.intp), vals.astype(np.float32), axis=1)
    return E


def equalise_lines_numpy(S, order, weights) -> np.ndarray:
    """numpy twin of :func:`equalise_lines` (float64 arithmetic)."""
    ref = _smooth_sorted_numpy(S, np.asarray(weights, dtype=np.float64))
    return _midrank_numpy(np.asarray(S), ref, order)


@numba.njit(cache=True, parallel=True)
def _midway_numba(S, order, ref, E):
    m = S.shape[0]
    for l in numba.prange(m):
        _midrank_scatter(S[l], ref, order[l], E[l])


def midway_lines(S, order, out=None) -> np.ndarray:
    """Single-reference (midway) equalisation: every line is mapped onto the mean sorted line.

    Same conventions as :func:`equalise_lines`.
    """
    ref = S.mean(axis=0, dtype=np.float64).astype(np.float32)
    if out is None:
        out = np.empty(S.shape, dtype=np.float32)
    _midway_numba(S, order, ref, out)
    return out


def midway_lines_numpy(S, order) -> np.ndarray:
    """numpy twin of :func:`midway_lines`."""
    S = np.asarray(S)
    ref = np.broadcast_to(S.mean(axis=0, dtype=np.float64), S.shape)
    return _midrank_numpy(S, ref, order)


# ----------------------------------------------------------------------------------------------
# total variation across lines
# ----------------------------------------------------------------------------------------------

@numba.njit(cache=True, parallel=True)
def _tv_numba(E):
    m, n = E.shape
    total = 0.0
    for l in numba.prange(1, m):
        a = E[l]
        b = E[l - 1]
        s = np.float32(0.0)
        for k in range(n):
            s += abs(a[k] - b[k])
        total += s
    return total


def total_variation(E: np.ndarray) -> float:
    """``sum_l sum_k |E[l, k] - E[l-1, k]|`` (numba, parallel): variation across lines."""
    return float(_tv_numba(np.ascontiguousarray(E, dtype=np.float32)))


def total_variation_numpy(E) -> float:
    """numpy twin of :func:`total_variation` (float64)."""
    E = np.asarray(E, dtype=np.float64)
    return float(np.abs(np.diff(E, axis=0)).sum())


# ----------------------------------------------------------------------------------------------
# frame plumbing: blocked transpose, fused checks, fused accumulation
# ----------------------------------------------------------------------------------------------

_TILE = 64


_TR_TILE = 128   # transpose: tiles of 128 x 128 per task, copied in 8 x 8 blocks
_TR_BLOCK = 8    # (64 x 64 element by element: 6x slower at 4096 columns, cache set conflicts
                 # of the power-of-two row stride)


@numba.njit(cache=True, parallel=True)
def _transpose_numba(a, out):
    ny, nx = a.shape
    nby = (ny + _TR_TILE - 1) // _TR_TILE
    nbx = (nx + _TR_TILE - 1) // _TR_TILE
    for b in numba.prange(nby * nbx):
        by = (b // nbx) * _TR_TILE
        bx = (b % nbx) * _TR_TILE
        for ii in range(by, min(ny, by + _TR_TILE), _TR_BLOCK):
            for jj in range(bx, min(nx, bx + _TR_TILE), _TR_BLOCK):
                for i in range(ii, min(ny, ii + _TR_BLOCK)):
                    for j in range(jj, min(nx, jj + _TR_BLOCK)):
                        out[j, i] = a[i, j]


def transpose(a: np.ndarray, out=None) -> np.ndarray:
    """C-contiguous float32 transpose of a 2D array (numba, parallel, cache-blocked).

    `out`: optional float32 buffer of shape ``a.shape[::-1]``.
    """
    a = np.ascontiguousarray(a, dtype=np.float32)
    if out is None:
        out = np.empty((a.shape[1], a.shape[0]), dtype=np.float32)
    _transpose_numba(a, out)
    return out


def transpose_numpy(a) -> np.ndarray:
    """numpy twin of :func:`transpose`."""
    return np.ascontiguousarray(np.asarray(a, dtype=np.float32).T)


@numba.njit(cache=True)
def _row_stats(row):
    lo = np.inf
    hi = -np.inf
    nb = 0
    nf = 0
    for j in range(row.shape[0]):
        v = np.float64(row[j])
        if np.isfinite(v):
            lo = min(lo, v)
            hi = max(hi, v)
            if v != np.floor(v):
                nf += 1
        else:
            nb += 1
    return lo, hi, nb, nf


@numba.njit(cache=True, parallel=True)
def _frame_stats_numba(f):
    ny = f.shape[0]
    mins = np.empty(ny, dtype=np.float64)
    maxs = np.empty(ny, dtype=np.float64)
    bad = np.zeros(ny, dtype=np.int64)
    frac = np.zeros(ny, dtype=np.int64)
    for i in numba.prange(ny):
        lo, hi, nb, nf = _row_stats(f[i])
        mins[i] = lo
        maxs[i] = hi
        bad[i] = nb
        frac[i] = nf
    return mins.min(), maxs.max(), bad.sum(), frac.sum() == 0


@numba.njit(cache=True)
def _row_minmax(row):
    lo = row[0]
    hi = row[0]
    for j in range(1, row.shape[0]):
        v = row[j]
        if v < lo:
            lo = v
        if v > hi:
            hi = v
    return lo, hi


@numba.njit(cache=True, parallel=True)
def _frame_minmax_numba(f):
    ny = f.shape[0]
    mins = np.empty(ny, dtype=np.float64)
    maxs = np.empty(ny, dtype=np.float64)
    for i in numba.prange(ny):
        lo, hi = _row_minmax(f[i])
        mins[i] = lo
        maxs[i] = hi
    return mins.min(), maxs.max()


def frame_stats(frame):
    """(min, max, number of non-finite values, all values whole numbers) of a 2D frame.

    Min and max are over the finite values (numba, parallel over rows, one pass).
    """
    f = np.ascontiguousarray(frame)
    if f.dtype.kind in "ui":
        lo, hi = _frame_minmax_numba(f)
        return float(lo), float(hi), 0, True
    lo, hi, bad, integer = _frame_stats_numba(f)
    return float(lo), float(hi), int(bad), bool(integer)


@numba.njit(cache=True, parallel=True)
def _to_float32_numba(frame, offset, out):
    ny, nx = frame.shape
    off = np.float32(offset)
    for i in numba.prange(ny):
        for j in range(nx):
            out[i, j] = np.float32(frame[i, j]) - off


def to_float32(frame, offset: float = 0.0, out=None) -> np.ndarray:
    """``float32(frame) - float32(offset)`` in one parallel pass (numba), into `out` if given.

    Parameters
    ----------
    frame : ndarray, shape (Y, X)
        Any real dtype.
    offset : float
        Subtracted in float32 arithmetic (0: a plain conversion).
    out : ndarray, float32, shape (Y, X), optional
        Destination buffer.
    """
    f = np.ascontiguousarray(frame)
    if out is None:
        out = np.empty(f.shape, dtype=np.float32)
    _to_float32_numba(f, float(offset), out)
    return out


def to_float32_numpy(frame, offset: float = 0.0) -> np.ndarray:
    """numpy twin of :func:`to_float32`."""
    f = np.asarray(frame, dtype=np.float32)
    return f - np.float32(offset) if offset else f.copy()


def frame_stats_numpy(frame):
    """numpy twin of :func:`frame_stats`."""
    f = np.asarray(frame, dtype=np.float64)
    ok = np.isfinite(f)
    vals = f[ok]
    lo = float(vals.min()) if vals.size else np.inf
    hi = float(vals.max()) if vals.size else -np.inf
    return lo, hi, int((~ok).sum()), bool(np.all(vals == np.floor(vals)))


@numba.njit(cache=True, parallel=True)
def _accumulate_numba(num, den, rec, e_row, e_col_t):
    ny, nx = rec.shape
    nby = (ny + _TILE - 1) // _TILE
    nbx = (nx + _TILE - 1) // _TILE
    for b in numba.prange(nby * nbx):
        by = (b // nbx) * _TILE
        bx = (b % nbx) * _TILE
        for i in range(by, min(ny, by + _TILE)):
            for j in range(bx, min(nx, bx + _TILE)):
                num[i, j] += rec[i, j]
                den[i, j] += 0.5 * (np.float64(e_row[i, j]) + np.float64(e_col_t[j, i]))


def accumulate(num, den, rec, e_row, e_col_t):
    """``num += rec``; ``den += (e_row + e_col_t.T) / 2`` in place (numba, parallel, blocked).

    `e_col_t` is the column-equalised frame in line (transposed) layout, shape (X, Y).
    """
    _accumulate_numba(num, den, np.ascontiguousarray(rec, dtype=np.float32),
                      np.ascontiguousarray(e_row, dtype=np.float32),
                      np.ascontiguousarray(e_col_t, dtype=np.float32))


def accumulate_numpy(num, den, rec, e_row, e_col_t):
    """numpy twin of :func:`accumulate`."""
    num += rec
    den += 0.5 * (np.asarray(e_row, dtype=np.float64) + np.asarray(e_col_t, dtype=np.float64).T)


@numba.njit(cache=True, parallel=True)
def _accumulate_frame_numba(num, den, rec, e):
    ny, nx = rec.shape
    for i in numba.prange(ny):
        for j in range(nx):
            num[i, j] += rec[i, j]
            den[i, j] += e[i, j]


def accumulate_frame(num, den, rec, e):
    """``num += rec``; ``den += e`` in place (numba, parallel over rows), float64 sums."""
    _accumulate_frame_numba(num, den, np.ascontiguousarray(rec, dtype=np.float32),
                            np.ascontiguousarray(e, dtype=np.float32))


@numba.njit(cache=True, parallel=True)
def _ratio_numba(num, den, out):
    k, ny, nx = num.shape
    for i in numba.prange(ny):
        for j in range(nx):
            n = num[0, i, j]
            d = den[0, i, j]
            for q in range(1, k):
                n += num[q, i, j]
                d += den[q, i, j]
            out[i, j] = n / d if d > 0 else 1.0


def ratio(num, den, out=None) -> np.ndarray:
    """``sum(num, axis=0) / sum(den, axis=0)``, 1 where the denominator is <= 0 (numba, parallel).

    Parameters
    ----------
    num, den : ndarray, float64, shape (k, Y, X)
        Sums to add over the first axis (e.g. even and odd frames) and divide.
    out : ndarray, float64, shape (Y, X), optional
        Destination.
    """
    num = np.ascontiguousarray(num, dtype=np.float64)
    den = np.ascontiguousarray(den, dtype=np.float64)
    if out is None:
        out = np.empty(num.shape[1:], dtype=np.float64)
    _ratio_numba(num, den, out)
    return out


def ratio_numpy(num, den) -> np.ndarray:
    """numpy twin of :func:`ratio`."""
    n, d = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    n, d = (n[0] + n[1], d[0] + d[1]) if n.shape[0] == 2 else (n.sum(axis=0), d.sum(axis=0))
    g = np.ones(n.shape, dtype=np.float64)
    np.divide(n, d, out=g, where=d > 0)
    return g


def accumulate_frame_numpy(num, den, rec, e):
    """numpy twin of :func:`accumulate_frame`."""
    num += rec
    den += np.asarray(e, dtype=np.float64)


# ----------------------------------------------------------------------------------------------
# whole-image statistics of the reports (fused, parallel; numpy twins)
# ----------------------------------------------------------------------------------------------

_STAT_CHUNK = 1 << 16   # elements summed sequentially per task (float64), then the tasks' sums


@numba.njit(cache=True, parallel=True)
def _moments_numba(x, y, use_y, scale, div):
    n = x.shape[0]
    nc = (n + _STAT_CHUNK - 1) // _STAT_CHUNK
    s1 = np.zeros(nc)
    lo = np.full(nc, np.inf)
    hi = np.full(nc, -np.inf)
    bad = np.zeros(nc, dtype=np.int64)
    for c in numba.prange(nc):
        acc = 0.0
        a = np.inf
        b = -np.inf
        nb = 0
        for i in range(c * _STAT_CHUNK, min(n, (c + 1) * _STAT_CHUNK)):
            u = (x[i] - y[i]) if use_y else x[i]
            v = u / scale if div else u * scale
            if np.isfinite(v):
                acc += v
                a = min(a, v)
                b = max(b, v)
            else:
                nb += 1
                acc += v
        s1[c] = acc
        lo[c] = a
        hi[c] = b
        bad[c] = nb
    mean = s1.sum() / n
    s2 = np.zeros(nc)
    for c in numba.prange(nc):
        acc = 0.0
        for i in range(c * _STAT_CHUNK, min(n, (c + 1) * _STAT_CHUNK)):
            u = (x[i] - y[i]) if use_y else x[i]
            d = (u / scale if div else u * scale) - mean
            acc += d * d
        s2[c] = acc
    return mean, np.sqrt(s2.sum() / n), lo.min(), hi.max(), bad.sum()


def moments(x, scale: float = 1.0, minus=None, divisor=None):
    """(mean, std, min, max, number of non-finite values) of ``(x - minus) * scale``.

    With `divisor`: of ``(x - minus) / divisor`` instead (`scale` ignored), the values of
    ``divided(x, divisor)`` exactly, without allocating them.

    numba, parallel, two fused passes and no temporaries (numpy would allocate the image two or
    three times).  `x` (and `minus`, same size) are flattened to float64.  Sums are float64,
    sequential within blocks of 65536 values, then added over the blocks: mean and std agree
    with numpy's pairwise sums to ~1e-13 relative.  With non-finite values mean and std are
    not finite; min and max are over the finite values.  Empty input: NaN, NaN, inf, -inf, 0.
    """
    x = np.ascontiguousarray(x, dtype=np.float64).ravel()
    if not x.size:
        return math.nan, math.nan, math.inf, -math.inf, 0
    y = x if minus is None else np.ascontiguousarray(minus, dtype=np.float64).ravel()
    if y.shape != x.shape:
        raise ValueError("x and minus differ in size")
    div = divisor is not None
    m, s, lo, hi, bad = _moments_numba(x, y, minus is not None,
                                       float(divisor if div else scale), div)
    return float(m), float(s), float(lo), float(hi), int(bad)


@numba.njit(cache=True, parallel=True)
def _divided_numba(x, d, out):
    n = x.shape[0]
    nc = (n + _STAT_CHUNK - 1) // _STAT_CHUNK
    for c in numba.prange(nc):
        for i in range(c * _STAT_CHUNK, min(n, (c + 1) * _STAT_CHUNK)):
            out[i] = x[i] / d


def divided(x, d: float) -> np.ndarray:
    """``x / d`` as a new flat float64 array (numba, parallel; equal to numpy's division)."""
    x = np.ascontiguousarray(x, dtype=np.float64).ravel()
    out = np.empty_like(x)
    _divided_numba(x, float(d), out)
    return out


def moments_numpy(x, scale: float = 1.0, minus=None, divisor=None):
    """numpy twin of :func:`moments`."""
    v = np.asarray(x, dtype=np.float64).ravel()
    if minus is not None:
        v = v - np.asarray(minus, dtype=np.float64).ravel()
    v = v / divisor if divisor is not None else v * scale
    ok = np.isfinite(v)
    with np.errstate(invalid="ignore"):
        return (float(v.mean()) if v.size else np.nan, float(v.std()) if v.size else np.nan,
                float(v[ok].min()) if ok.any() else np.inf,
                float(v[ok].max()) if ok.any() else -np.inf, int((~ok).sum()))


@numba.njit(cache=True, parallel=True)
def _pair_moments_numba(a, b, sa, sb):
    n = a.shape[0]
    nc = (n + _STAT_CHUNK - 1) // _STAT_CHUNK
    s = np.zeros((nc, 3))
    for c in numba.prange(nc):
        u = 0.0
        v = 0.0
        r = 0.0
        for i in range(c * _STAT_CHUNK, min(n, (c + 1) * _STAT_CHUNK)):
            x = a[i] * sa
            y = b[i] * sb
            u += x
            v += y
            r += y / x if x > 0 else 1.0
        s[c, 0] = u
        s[c, 1] = v
        s[c, 2] = r
    ma = s[:, 0].sum() / n
    mb = s[:, 1].sum() / n
    mr = s[:, 2].sum() / n
    t = np.zeros((nc, 4))
    for c in numba.prange(nc):
        va = 0.0
        vb = 0.0
        cov = 0.0
        vr = 0.0
        for i in range(c * _STAT_CHUNK, min(n, (c + 1) * _STAT_CHUNK)):
            x = a[i] * sa
            y = b[i] * sb
            r = y / x if x > 0 else 1.0
            va += (x - ma) * (x - ma)
            vb += (y - mb) * (y - mb)
            cov += (x - 1.0) * (y - 1.0)
            vr += (r - mr) * (r - mr)
        t[c, 0] = va
        t[c, 1] = vb
        t[c, 2] = cov
        t[c, 3] = vr
    return (np.sqrt(t[:, 0].sum() / n), np.sqrt(t[:, 1].sum() / n), t[:, 2].sum() / n,
            np.sqrt(t[:, 3].sum() / n))


def pair_moments(a, b, scale_a: float = 1.0, scale_b: float = 1.0):
    """Statistics of two images x = a * scale_a, y = b * scale_b (numba, parallel, fused).

    Returns
    -------
    std_x, std_y : float
    cov1 : float
        ``mean((x - 1) (y - 1))`` (the covariance of two mean-1 images).
    std_ratio : float
        std of ``y / x`` where x > 0, 1 elsewhere.
    """
    a = np.ascontiguousarray(a, dtype=np.float64).ravel()
    b = np.ascontiguousarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape or not a.size:
        raise ValueError("two non-empty images of the same size are needed")
    return tuple(float(v) for v in _pair_moments_numba(a, b, float(scale_a), float(scale_b)))


def pair_moments_numpy(a, b, scale_a: float = 1.0, scale_b: float = 1.0):
    """numpy twin of :func:`pair_moments`."""
    x = np.asarray(a, dtype=np.float64).ravel() * scale_a
    y = np.asarray(b, dtype=np.float64).ravel() * scale_b
    ratio = np.ones_like(x)
    np.divide(y, x, out=ratio, where=x > 0)
    return float(x.std()), float(y.std()), float(np.mean((x - 1) * (y - 1))), float(ratio.std())


@numba.njit(cache=True, parallel=True)
def _dose_stats_numba(dose, read_var):
    n = dose.shape[0]
    nc = (n + _STAT_CHUNK - 1) // _STAT_CHUNK
    s = np.zeros((nc, 2))
    cnt = np.zeros((nc, 3), dtype=np.int64)
    for c in numba.prange(nc):
        sd = 0.0
        sv = 0.0
        nb = 0
        nn = 0
        nz = 0
        for i in range(c * _STAT_CHUNK, min(n, (c + 1) * _STAT_CHUNK)):
            d = dose[i]
            if not np.isfinite(d):
                nb += 1
                continue
            if d < 0:
                nn += 1
            elif d == 0:
                nz += 1
            else:
                sv += (d + read_var) / (d * d)
            sd += d
        s[c, 0] = sd
        s[c, 1] = sv
        cnt[c, 0] = nb
        cnt[c, 1] = nn
        cnt[c, 2] = nz
    return s[:, 0].sum() / n, s[:, 1].sum() / n, cnt[:, 0].sum(), cnt[:, 1].sum(), cnt[:, 2].sum()


def dose_stats(dose, read_var: float = 0.0):
    """(mean dose, mean of (dose + read_var) / dose**2 over dose > 0, n non-finite, n negative,
    n zero) of a per-pixel dose image (numba, parallel, one pass)."""
    d = np.ascontiguousarray(dose, dtype=np.float64).ravel()
    if not d.size:
        raise ValueError("empty dose image")
    m, v, nb, nn, nz = _dose_stats_numba(d, float(read_var))
    return float(m), float(v), int(nb), int(nn), int(nz)


def dose_stats_numpy(dose, read_var: float = 0.0):
    """numpy twin of :func:`dose_stats`."""
    d = np.asarray(dose, dtype=np.float64).ravel()
    ok = np.isfinite(d)
    pos = ok & (d > 0)
    return (float(d[ok].sum() / d.size), float(((d[pos] + read_var) / d[pos] ** 2).sum() / d.size),
            int((~ok).sum()), int((d[ok] < 0).sum()), int((d[ok] == 0).sum()))


# ----------------------------------------------------------------------------------------------
# the last serial numpy passes of an estimate, made parallel (numpy twins)
# ----------------------------------------------------------------------------------------------

@numba.njit(cache=True, parallel=True)
def _rms_diff_numba(x, y, use_y):
    n = x.shape[0]
    nc = (n + _STAT_CHUNK - 1) // _STAT_CHUNK
    s = np.zeros(nc)
    for c in numba.prange(nc):
        acc = 0.0
        for i in range(c * _STAT_CHUNK, min(n, (c + 1) * _STAT_CHUNK)):
            d = x[i] - (y[i] if use_y else 1.0)
            acc += d * d
        s[c] = acc
    return np.sqrt(s.sum() / n)


def rms_diff(x, y=None) -> float:
    """``sqrt(mean((x - y)**2))`` (y default 1): RMS change between two estimates.

    numba, parallel, one pass and no temporary (numpy allocates the difference and its square,
    serially).  float64 sums, sequential within blocks of 65536 values: agrees with numpy's
    pairwise sum to ~1e-13 relative.  Empty input: NaN.
    """
    x = np.ascontiguousarray(x, dtype=np.float64).ravel()
    if not x.size:
        return math.nan
    yy = x if y is None else np.ascontiguousarray(y, dtype=np.float64).ravel()
    if yy.shape != x.shape:
        raise ValueError("x and y differ in size")
    return float(_rms_diff_numba(x, yy, y is not None))


def rms_diff_numpy(x, y=None) -> float:
    """numpy twin of :func:`rms_diff`."""
    x = np.asarray(x, dtype=np.float64)
    return float(np.sqrt(np.mean((x - (1.0 if y is None else np.asarray(y, np.float64))) ** 2)))


@numba.njit(cache=True, parallel=True)
def _dose_total_numba(a, b, ref, use_ref, factor, out):
    n = a.shape[0]
    nc = (n + _STAT_CHUNK - 1) // _STAT_CHUNK
    for c in numba.prange(nc):
        for i in range(c * _STAT_CHUNK, min(n, (c + 1) * _STAT_CHUNK)):
            t = a[i] + b[i]
            if use_ref:
                t *= ref[i]
            if t < 0.0:
                t = 0.0
            out[i] = t * factor


def dose_total(a, b, ref=None, factor: float = 1.0) -> np.ndarray:
    """``clip((a + b) x ref, 0, None) x factor`` as a new float64 array (numba, parallel, one pass).

    The total signal per pixel of two half-sums, in electrons: `ref` the gain reference (or
    none), `factor` electrons per ADU.  The same float64 operations in the same order as
    :func:`dose_total_numpy` (identical results; NaN stays NaN).
    """
    a = np.ascontiguousarray(a, dtype=np.float64)
    shape = a.shape
    a = a.ravel()
    b = np.ascontiguousarray(b, dtype=np.float64).ravel()
    r = a if ref is None else np.ascontiguousarray(ref, dtype=np.float64).ravel()
    if b.shape != a.shape or r.shape != a.shape:
        raise ValueError("a, b and ref differ in size")
    out = np.empty_like(a)
    _dose_total_numba(a, b, r, ref is not None, float(factor), out)
    return out.reshape(shape)


def dose_total_numpy(a, b, ref=None, factor: float = 1.0) -> np.ndarray:
    """numpy twin of :func:`dose_total`."""
    total = np.add(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))
    if ref is not None:
        total *= ref
    np.clip(total, 0, None, out=total)
    total *= factor
    return total


_SEL_BINS = 1 << 14     # histogram bins of the parallel selection
_SEL_MIN = 1 << 12      # below this many values np.percentile / np.median directly


@numba.njit(cache=True, parallel=True)
def _bin_counts_numba(x, lo, scale, n_blocks):
    """Histogram (n_blocks, bins) of x over equal bins from lo, one per block of values."""
    n = x.shape[0]
    nb = _SEL_BINS
    step = (n + n_blocks - 1) // n_blocks
    h = np.zeros((n_blocks, nb), dtype=np.int64)
    for c in numba.prange(n_blocks):
        for i in range(c * step, min(n, (c + 1) * step)):
            k = min(max(int((x[i] - lo) * scale), 0), nb - 1)
            h[c, k] += 1
    return h


@numba.njit(cache=True, parallel=True)
def _gather_bins_numba(x, lo, scale, wanted, n_blocks, offsets, out):
    """Values in the bins where `wanted` is set, block by block into `out` from `offsets`."""
    n = x.shape[0]
    nb = _SEL_BINS
    step = (n + n_blocks - 1) // n_blocks
    for c in numba.prange(n_blocks):
        p = offsets[c]
        for i in range(c * step, min(n, (c + 1) * step)):
            k = min(max(int((x[i] - lo) * scale), 0), nb - 1)
            if wanted[k]:
                out[p] = x[i]
                p += 1


def order_statistics(x, ranks, lo: float, hi: float) -> np.ndarray:
    """The values (as float64) of ranks `ranks` (0-based) of the finite real values `x`.

    `lo`, `hi`: the minimum and maximum of `x`.

    Parallel histogram selection: one parallel pass counts the values of every block in 16384
    equal bins over [lo, hi], a second gathers the values of the bins holding the wanted ranks
    (typically a few thousand values), and ``np.partition`` of those gives the exact order
    statistics: the same values as sorting all of `x`.
    """
    x = np.ascontiguousarray(x).ravel()
    if x.dtype.kind not in "uif":
        raise ValueError("real values only")
    if not _selectable(x.dtype):          # big-endian, float16: as float64 (exact)
        x = x.astype(np.float64)
    ranks = [int(r) for r in ranks]
    if hi == lo:
        return np.full(len(ranks), float(lo))
    scale = _SEL_BINS / (hi - lo) if hi > lo else math.nan
    if not math.isfinite(scale):     # bad bounds or a range beyond float64: plain selection
        return np.partition(x, ranks)[ranks].astype(np.float64)
    n_blocks = max(1, 4 * numba.get_num_threads())
    h = _bin_counts_numba(x, lo, scale, n_blocks)
    cum = np.cumsum(h.sum(axis=0))
    bins = np.searchsorted(cum, np.asarray(ranks), side="right")   # the bin of every rank
    wanted = np.zeros(_SEL_BINS, dtype=np.bool_)
    wanted[bins] = True
    per_block = h[:, wanted].sum(axis=1)
    offsets = np.concatenate(([0], np.cumsum(per_block)[:-1]))
    vals = np.empty(int(per_block.sum()), dtype=x.dtype)
    _gather_bins_numba(x, lo, scale, wanted, n_blocks, offsets, vals)
    # gathered values in bin order: rank r of x is rank r - (values in earlier bins not
    # gathered) of vals
    counts = cum - np.concatenate(([0], cum[:-1]))
    skipped = np.cumsum(np.where(wanted, 0, counts))     # not-gathered values up to each bin
    local = [r - int(skipped[b]) for r, b in zip(ranks, bins)]
    part = np.partition(vals, sorted(set(local)))
    return part[local].astype(np.float64)


def percentiles(x, q, lo: float, hi: float, divisor=None):
    """``np.percentile(x, q)`` (linear interpolation) of finite float64 values, in parallel.

    `lo`, `hi`: the minimum and maximum of `x` (e.g. from :func:`moments`).  The order
    statistics come from :func:`order_statistics` and are interpolated as numpy does (same
    virtual index and the same two-sided linear interpolation), so the results are numpy's.
    With `divisor` (> 0): the percentiles of ``divided(x, divisor)``, exactly (division by a
    positive number keeps the order, so its order statistics are those of `x` divided).
    Small inputs (fewer than 4096 values) go to ``np.percentile`` directly.
    """
    x = np.ascontiguousarray(x, dtype=np.float64).ravel()
    n = x.size
    if divisor is not None and not divisor > 0:
        raise ValueError("divisor must be > 0")
    if n < _SEL_MIN:
        v = x if divisor is None else divided(x, divisor)
        return [float(p) for p in np.percentile(v, q)]
    # numpy's method 'linear': virtual index (n - 1) q, neighbours floor and floor + 1 (the
    # last value at or beyond the end), gamma = virtual index - lower neighbour
    qf = np.true_divide(np.asarray(q, dtype=np.float64), 100)
    virtual = (n - 1) * qf
    prev = np.floor(virtual).astype(np.intp)
    nxt = prev + 1
    beyond = virtual >= n - 1
    prev[beyond] = -1
    nxt[beyond] = -1
    gamma = virtual - prev
    prev, nxt = prev % n, nxt % n
    ranks = sorted(set(prev.tolist()) | set(nxt.tolist()))
    vals = dict(zip(ranks, order_statistics(x, ranks, lo, hi)))
    a = np.array([vals[int(i)] for i in prev])
    b = np.array([vals[int(i)] for i in nxt])
    if divisor is not None:
        a, b = a / float(divisor), b / float(divisor)
    diff = b - a
    res = a + diff * gamma
    res = np.where(gamma >= 0.5, b - diff * (1 - gamma), res)
    return [float(v) for v in res]


@numba.njit(cache=True, parallel=True)
def _fill_zero_numba(x):
    n = x.shape[0]
    nc = (n + _STAT_CHUNK - 1) // _STAT_CHUNK
    for c in numba.prange(nc):
        for i in range(c * _STAT_CHUNK, min(n, (c + 1) * _STAT_CHUNK)):
            x[i] = 0.0


def zeros(shape, dtype=np.float64) -> np.ndarray:
    """``np.zeros(shape, dtype)`` for float arrays, first touched by all threads (numba).

    ``np.zeros`` of a large array gets lazily zeroed pages from the kernel: the first pass that
    writes it takes every page fault in one thread, 4 KiB at a time.  Here the array comes from
    ``np.empty`` (large numpy allocations are huge-page backed where the kernel allows) and is
    zeroed in parallel, so the faults are fewer and spread over the threads.
    """
    a = np.empty(shape, dtype=dtype)
    if a.dtype.kind != "f":
        raise ValueError("float arrays only")
    if a.size:
        _fill_zero_numba(a.reshape(-1))
    return a


def zeros_numpy(shape, dtype=np.float64) -> np.ndarray:
    """numpy twin of :func:`zeros`."""
    return np.zeros(shape, dtype=dtype)


def _selectable(dtype) -> bool:
    """A dtype the selection kernels compile for: native byte order, integer or float32/64."""
    dtype = np.dtype(dtype)
    return dtype.isnative and (dtype.kind in "ui" or dtype in (np.float32, np.float64))


def median(x) -> float:
    """``float(np.median(x))`` of real values, the middle ranks by the parallel selection.

    The one or two middle order statistics come from :func:`order_statistics` and are averaged
    by ``np.mean`` in `x`'s dtype, as ``np.median`` does: the same value.  Small inputs and
    inputs with NaN or infinity go to ``np.median``.
    """
    a = np.ascontiguousarray(x)
    n = a.size
    if n < _SEL_MIN or not _selectable(a.dtype):
        return float(np.median(a))
    rows = a.reshape(-1, a.shape[-1]) if a.ndim >= 2 else a.reshape(1, -1)
    lo, hi, n_bad, _ = frame_stats(rows)          # parallel over rows
    if n_bad:
        return float(np.median(a))
    ranks = [(n - 1) // 2, n // 2] if n % 2 == 0 else [n // 2]
    mid = order_statistics(a, ranks, lo, hi).astype(a.dtype)
    return float(np.mean(mid))
