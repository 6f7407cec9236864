"""Property-based tests: every numba kernel against its numpy reference.

Hypothesis draws shapes (including 1- and 2-pixel edges), dtypes (uint8, uint16, int16, float32,
float64) and values up to the extremes of each dtype (0, max, negative, constant images, many
ties).  Tolerances are stated per kernel: exact where both sides do the same operations
(sorting, medians, transposes, selections), a few float32 ulps scaled by the data range where
the summation order differs.  Runs with a fixed derandomised profile so CI is reproducible.
"""
from __future__ import annotations

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

settings.register_profile("camcorr", max_examples=60, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow,
                                                 HealthCheck.data_too_large])
settings.load_profile("camcorr")

INT_DTYPES = (np.uint8, np.uint16, np.int16)
FLOAT_LIMIT = {np.float32: 1e6, np.float64: 1e12}


def _elements(dtype, *, limit=None):
    dtype = np.dtype(dtype)
    if dtype.kind in "ui":
        info = np.iinfo(dtype)
        return st.integers(int(info.min), int(info.max))
    lim = limit if limit is not None else FLOAT_LIMIT[dtype.type]
    return st.floats(-lim, lim, allow_nan=False, allow_infinity=False, width=dtype.itemsize * 8)


@st.composite
def images(draw, *, ndim=2, min_side=1, max_side=12, min_planes=1, max_planes=9,
           dtypes=(np.uint8, np.uint16, np.int16, np.float32, np.float64), limit=None):
    """Arrays (Y, X) or (Z, Y, X): random, constant or few-valued (many ties) content."""
    dtype = np.dtype(draw(st.sampled_from(dtypes)))
    shape = tuple(draw(st.integers(min_side, max_side)) for _ in range(2))
    if ndim == 3:
        shape = (draw(st.integers(min_planes, max_planes)),) + shape
    kind = draw(st.sampled_from(["random", "constant", "few"]))
    elems = _elements(dtype, limit=limit)
    if kind == "random":
        return draw(hnp.arrays(dtype, shape, elements=elems))
    if kind == "constant":
        return np.full(shape, draw(elems), dtype)
    values = draw(st.lists(elems, min_size=1, max_size=3))
    idx = draw(hnp.arrays(np.int64, shape, elements=st.integers(0, len(values) - 1)))
    return np.asarray(values, dtype)[idx]


def _span(a) -> float:
    a = np.asarray(a, np.float64)
    return float(np.max(np.abs(a))) if a.size else 0.0


# ------------------------------------------------------------------------------------------
# median (selective median filter)
# ------------------------------------------------------------------------------------------
from camcorr.median import _kernels as MK  # noqa: E402


@given(images(ndim=3, min_planes=2))
def test_mean_std(stack):
    m1, s1 = MK.mean_std_numba(stack)
    m2, s2 = MK.mean_std_numpy(stack)
    scale = max(_span(stack), 1.0)
    np.testing.assert_allclose(m1, m2, rtol=0, atol=1e-12 * scale * stack.shape[0] + 1e-12)
    # single shifted pass vs two passes: agree to rounding of the data's magnitude
    np.testing.assert_allclose(s1, s2, rtol=1e-9, atol=1e-9 * scale)


@given(hnp.arrays(np.float64, 8, elements=st.floats(-1e300, 1e300, allow_nan=False)))
def test_sort8(values):
    np.testing.assert_array_equal(MK.sort8_numba(values), np.sort(values))


@given(images(ndim=2, min_side=2))
def test_local_stats(image):
    a1, b1 = MK.local_stats_numba(image)
    a2, b2 = MK.local_stats_numpy(image)
    np.testing.assert_array_equal(a1, a2)
    np.testing.assert_array_equal(b1, b2)


@st.composite
def stacks_and_masks(draw, dtypes=(np.uint8, np.uint16, np.int16, np.float32, np.float64)):
    stack = draw(images(ndim=3, dtypes=dtypes))
    mask = draw(hnp.arrays(np.bool_, stack.shape[1:]))
    return stack, mask


@given(stacks_and_masks())
def test_neighbour_medians(case):
    stack, mask = case
    y1, x1, v1, l1 = MK.neighbour_medians_numba(stack, mask)
    y2, x2, v2, l2 = MK.neighbour_medians_numpy(stack, mask)
    np.testing.assert_array_equal(y1, y2)
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(l1, l2)
    np.testing.assert_allclose(v1, v2, rtol=1e-15, atol=0)


@given(stacks_and_masks())
def test_replace(case):
    stack, mask = case
    out, level = MK.replace_numba(stack, mask)
    ys, xs, values, level2 = MK.neighbour_medians_numpy(stack, mask)
    ref = stack.copy()
    if stack.dtype.kind in "ui":
        info = np.iinfo(stack.dtype)
        ref[:, ys, xs] = np.clip(np.rint(values), info.min, info.max).astype(stack.dtype)
    else:
        ref[:, ys, xs] = values.astype(stack.dtype)
    assert out.dtype == stack.dtype
    np.testing.assert_array_equal(out, ref)
    np.testing.assert_array_equal(level, level2)


# ------------------------------------------------------------------------------------------
# gain (sorting, equalisation, accumulation)
# ------------------------------------------------------------------------------------------
from camcorr.gain import _kernels as GK  # noqa: E402


@st.composite
def lines(draw, limit=1e6):
    m = draw(st.integers(1, 12))
    n = draw(st.integers(1, 40))
    kind = draw(st.sampled_from(["random", "counts", "constant"]))
    if kind == "random":
        return draw(hnp.arrays(np.float32, (m, n),
                               elements=st.floats(-limit, limit, width=32, allow_nan=False)))
    if kind == "counts":
        return draw(hnp.arrays(np.float32, (m, n), elements=st.integers(0, 3).map(float)))
    return np.full((m, n), draw(st.floats(-limit, limit, width=32, allow_nan=False)), np.float32)


@given(lines(), st.sampled_from(["keys", "values", "values+ties", "ties"]), st.data())
def test_sort_lines(L, mode, data):
    vals = ties = None
    if "values" in mode:
        vals = data.draw(hnp.arrays(np.float32, L.shape,
                                    elements=st.floats(0, 1e4, width=32, allow_nan=False)))
    if "ties" in mode:
        ties = np.round(L * 0.5)
    S1, o1 = GK.sort_lines(L, vals, ties)
    S2, o2 = GK.sort_lines_numpy(L, vals, ties)
    np.testing.assert_array_equal(o1, o2)  # both stable
    scale = max(_span(S2), 1.0)
    np.testing.assert_allclose(S1, S2, rtol=1e-6, atol=1e-6 * scale)


@given(lines(), st.sampled_from([0.0, 0.5, 1.0, 3.0, 20.0]), st.booleans())
def test_equalise_and_midway(L, sigma, leave_one_out):
    S, o = GK.sort_lines(L)
    w = GK.gaussian_weights(sigma).copy()
    if leave_one_out and sigma > 0:
        w[0] = 0.0
    scale = max(_span(S), 1.0)
    if w.sum() > 0 and (w[0] > 0 or S.shape[0] > 1):
        E1 = GK.equalise_lines(S, o, w)
        E2 = GK.equalise_lines_numpy(S, o, w)
        np.testing.assert_allclose(E1, E2, rtol=2e-6, atol=2e-6 * scale)
        E3, tv = GK.equalise_tv(S, o, w)
        np.testing.assert_array_equal(E3, E1)
        assert tv == pytest.approx(GK.total_variation_numpy(E1), rel=1e-5,
                                   abs=1e-5 * scale * S.size)
    np.testing.assert_allclose(GK.midway_lines(S, o), GK.midway_lines_numpy(S, o), rtol=2e-6,
                               atol=2e-6 * scale)


@given(lines())
def test_total_variation_and_transpose(E):
    scale = max(_span(E), 1.0)
    assert GK.total_variation(E) == pytest.approx(GK.total_variation_numpy(E), rel=1e-6,
                                                  abs=1e-6 * scale * E.size)
    np.testing.assert_array_equal(GK.transpose(E), GK.transpose_numpy(E))


@given(images(ndim=2, max_side=40, dtypes=(np.float32, np.float64)), st.data())
def test_frame_stats(frame, data):
    frame = frame.copy()
    if frame.size and data.draw(st.booleans()):  # sprinkle non-finite values
        k = data.draw(st.integers(1, frame.size))
        idx = data.draw(hnp.arrays(np.int64, k, elements=st.integers(0, frame.size - 1)))
        frame.ravel()[idx] = data.draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    a = GK.frame_stats(frame)
    b = GK.frame_stats_numpy(frame)
    assert a[2:] == b[2:]
    if np.isfinite(b[0]):
        assert a[0] == pytest.approx(b[0]) and a[1] == pytest.approx(b[1])


@given(lines(), st.data())
def test_accumulate(rec, data):
    e_row = data.draw(hnp.arrays(np.float32, rec.shape,
                                 elements=st.floats(-1e6, 1e6, width=32, allow_nan=False)))
    e_col_t = np.ascontiguousarray(data.draw(hnp.arrays(
        np.float32, rec.shape, elements=st.floats(-1e6, 1e6, width=32, allow_nan=False))).T)
    n1, d1 = np.ones(rec.shape), np.full(rec.shape, 2.0)
    n2, d2 = n1.copy(), d1.copy()
    GK.accumulate(n1, d1, rec, e_row, e_col_t)
    GK.accumulate_numpy(n2, d2, rec, e_row, e_col_t)
    np.testing.assert_array_equal(n1, n2)
    np.testing.assert_allclose(d1, d2, rtol=1e-15, atol=0)
    n1, d1, n2, d2 = np.zeros(rec.shape), np.zeros(rec.shape), np.zeros(rec.shape), np.zeros(rec.shape)
    GK.accumulate_frame(n1, d1, rec, e_row)
    GK.accumulate_frame_numpy(n2, d2, rec, e_row)
    np.testing.assert_array_equal(n1, n2)
    np.testing.assert_array_equal(d1, d2)


@given(hnp.arrays(np.float64, st.integers(1, 300),
                  elements=st.floats(-1e6, 1e6, allow_nan=False)), st.data())
def test_order_statistics_and_percentiles(x, data):
    # exact: the selection returns sorted(x)[ranks]; the percentiles are numpy's values
    if data.draw(st.booleans()):  # many ties
        x = np.round(x / max(_span(x), 1.0) * 3)
    lo, hi = float(x.min()), float(x.max())
    ranks = data.draw(st.lists(st.integers(0, x.size - 1), min_size=1, max_size=5))
    np.testing.assert_array_equal(GK.order_statistics(x, ranks, lo, hi), np.sort(x)[ranks])
    q = data.draw(st.lists(st.floats(0, 100), min_size=1, max_size=4))
    old, GK._SEL_MIN = GK._SEL_MIN, 0
    try:
        got = GK.percentiles(x, q, lo, hi)
    finally:
        GK._SEL_MIN = old
    assert got == [float(p) for p in np.percentile(x, q)]


# ------------------------------------------------------------------------------------------
# flat-field (median over planes, subtract-and-bin, Gaussian, quadratic trend)
# ------------------------------------------------------------------------------------------
from camcorr.flatfield import _kernels as FK  # noqa: E402


@given(images(ndim=3, max_planes=20, dtypes=(np.float32,)),
       st.sampled_from(["numba", "network", "select"]))
def test_median_over_planes(stack, backend):
    np.testing.assert_array_equal(FK.median_over_planes(stack, backend=backend),
                                  FK.median_over_planes_numpy(stack))


@given(images(ndim=2, max_side=30, limit=1e5), st.integers(1, 9),
       st.floats(0.0010000000474974513, 10.0, width=32), st.data())
def test_bin_subtract(plane, b, scale, data):
    dark = data.draw(hnp.arrays(np.float32, plane.shape,
                                elements=st.floats(0, 1000, width=32, allow_nan=False)))
    a = FK.bin_subtract(plane, dark, b, scale)
    r = FK.bin_subtract_numpy(plane, dark, b, scale)
    span = max(_span(plane.astype(np.float64) - dark) * scale, 1.0)
    np.testing.assert_allclose(a, r, rtol=1e-5, atol=1e-5 * span)


@given(images(ndim=2, max_side=40, dtypes=(np.float32, np.float64), limit=1e4),
       st.sampled_from([0.3, 0.5, 1.0, 1.7, 2.0, 4.0, 8.0, 16.0, 33.0]))
def test_gaussian_reflect(image, sigma):
    # kernels longer than the image (sigma 33 on a few pixels) reflect more than once
    a = FK.gaussian_reflect(image, sigma)
    r = FK.gaussian_reflect_scipy(image, sigma)
    assert a.dtype == r.dtype == image.dtype
    eps = 1e-6 if image.dtype == np.float32 else 1e-12
    np.testing.assert_allclose(a, r, rtol=eps, atol=eps * max(_span(image), 1.0))


@given(images(ndim=2, max_side=40, dtypes=(np.float32,), limit=1e3), st.data())
def test_trend_heldout(g, data):
    # smooth = g * trend, its minimum and the CV of ref / smooth, fused: against numpy
    trend = data.draw(hnp.arrays(np.float64, g.shape, elements=st.floats(0.1, 10.0)))
    ref = data.draw(hnp.arrays(np.float32, g.shape, elements=st.floats(0.0, 1e4, width=32)))
    a, r = FK.trend_heldout(g, trend, ref), FK.trend_heldout_numpy(g, trend, ref)
    np.testing.assert_array_equal(a[0], r[0])
    assert a[1] == r[1]
    if r[1] > 0:  # the criterion is only used for positive flat-fields
        assert a[2] == pytest.approx(r[2], rel=1e-9, abs=1e-12)


@given(images(ndim=2, max_side=200, limit=1e5), st.booleans(), st.data())
def test_plane_level(plane, big_endian, data):
    # median of a regular subsample (quickselect) against numpy.median: the same value
    dark = data.draw(hnp.arrays(np.float32, plane.shape,
                                elements=st.floats(0, 1000, width=32, allow_nan=False)))
    if big_endian:
        plane = plane.astype(plane.dtype.newbyteorder(">"))
    assert FK.plane_level(plane, dark) == FK.plane_level_numpy(plane, dark)


@given(images(ndim=2, max_side=20, dtypes=(np.float32,), limit=1e4), st.integers(1, 9),
       st.integers(0, 8), st.integers(0, 8))
def test_unbin2d(binned, b, cut_y, cut_x):
    # bilinear back to full size (partial last blocks: shorter outputs), against numpy
    shape = (max(1, binned.shape[0] * b - min(cut_y, b - 1)),
             max(1, binned.shape[1] * b - min(cut_x, b - 1)))
    a = FK.unbin2d(binned, b, shape)
    r = FK.unbin2d_numpy(binned, b, shape)
    assert a.shape == r.shape == shape or b == 1
    np.testing.assert_allclose(a, r, rtol=1e-6, atol=1e-6 * max(_span(binned), 1.0))


@given(images(ndim=2, min_side=3, max_side=40, dtypes=(np.float32,), limit=1e3))
def test_quadratic_trend(stat):
    # normal equations from separable moments against lstsq on the full design matrix
    from camcorr.flatfield.smoothing import quadratic_trend, quadratic_trend_lstsq

    a, r = quadratic_trend(stat), quadratic_trend_lstsq(stat)
    np.testing.assert_allclose(a, r, rtol=1e-9, atol=1e-9 * max(_span(stat), 1.0))


# ------------------------------------------------------------------------------------------
# flash (carryover correction)
# ------------------------------------------------------------------------------------------


@given(st.integers(1, 3), st.integers(1, 5), st.integers(1, 9), st.integers(1, 9),
       st.sampled_from(["per Z", "per stack"]), st.sampled_from(["keep", "float32"]),
       st.sampled_from(["random", "zeros", "saturated"]), st.data())
def test_flash_correct(n_ch, nz, ny, nx, cycle, dtype, content, data):
    from camcorr.flash import correct_interleaved
    from camcorr.flash.params import FlashParams

    shp = (ny, nx)
    p = FlashParams(
        A=data.draw(hnp.arrays(np.float32, shp, elements=st.floats(0, 3000, width=32))),
        B=data.draw(hnp.arrays(np.float32, shp, elements=st.floats(0, 0.05000000074505806, width=32))),
        offset=data.draw(hnp.arrays(np.float32, shp, elements=st.floats(0, 500, width=32))),
        noise=np.ones(shp, np.float32))
    if content == "random":
        stacks = [data.draw(hnp.arrays(np.uint16, (nz,) + shp)) for _ in range(n_ch)]
    else:
        v = 0 if content == "zeros" else 65535
        stacks = [np.full((nz,) + shp, v, np.uint16) for _ in range(n_ch)]
    a = correct_interleaved(stacks, p, cycle=cycle, dtype=dtype, backend="numba")
    b = correct_interleaved(stacks, p, cycle=cycle, dtype=dtype, backend="numpy")
    for x, y in zip(a, b):
        assert x.dtype == y.dtype
        # the numba kernel's fast exp approximation: < 0.05 ADU at 3000 ADU plateaus, so
        # integer outputs may differ by one rounding step
        assert np.abs(x.astype(np.float64) - y.astype(np.float64)).max() <= 1.0
