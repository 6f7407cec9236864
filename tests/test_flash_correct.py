"""Carryover correction: numba kernel vs numpy reference, model, dtype policy, ground truth."""
import numba
import numpy as np
import pytest

from camcorr.errors import CamcorrError
from camcorr.flash import (DEFAULT_DAMPENING, acquisition_order, correct_frame, correct_interleaved,
                           crop_params, parse_settings)
from camcorr.flash.correct import _one_minus_exp_neg
from camcorr.flash.demo import carryover_removed
from camcorr.flash.params import params_from_arrays
from camcorr.simulate import lls


def _params(shape, rng, a_max=800.0):
    return params_from_arrays(rng.uniform(0, a_max, shape), rng.uniform(0, 0.01, shape),
                              rng.normal(100, 3, shape), np.ones(shape))


@numba.njit
def _vec_exp(u):
    out = np.empty_like(u)
    for i in range(u.size):
        out[i] = _one_minus_exp_neg(u[i])
    return out


def test_fast_exp_accuracy():
    u = np.concatenate([np.linspace(0, 1, 100001), np.linspace(1, 100, 100001)]).astype(np.float32)
    err = np.abs(_vec_exp(u) - (1 - np.exp(-u.astype(np.float64))))
    assert err.max() * 800 < 0.05   # < 0.05 ADU at LLSpy's largest plateau


@pytest.mark.parametrize("cycle", ["per Z", "per stack"])
@pytest.mark.parametrize("dtype", ["float32", "keep"])
def test_numba_matches_numpy(rng, cycle, dtype):
    shape = (9, 33, 17)
    p = _params(shape[1:], rng)
    stacks = [rng.integers(0, 20000, shape).astype(np.uint16) for _ in range(3)]
    a = correct_interleaved(stacks, p, cycle=cycle, dtype=dtype, backend="numba")
    b = correct_interleaved(stacks, p, cycle=cycle, dtype=dtype, backend="numpy")
    for x, y in zip(a, b):
        assert x.dtype == y.dtype
        assert np.abs(x.astype(np.float64) - y.astype(np.float64)).max() <= 1.0


def test_model_against_direct_formula(rng):
    """Frame order, first-frame offset only, raw previous frame, dampening."""
    shape = (4, 6, 5)
    p = _params(shape[1:], rng, a_max=300)
    stacks = [rng.integers(90, 5000, shape).astype(np.uint16) for _ in range(2)]
    d = 0.9
    out = correct_interleaved(stacks, p, dampening=d, backend="numpy")
    order = acquisition_order(2, shape[0], "per Z")
    assert order[:3] == [(0, 0), (1, 0), (0, 1)]
    A, B, O = (x.astype(np.float64) for x in (p.A, p.B, p.offset))
    prev = None
    for c, z in order:
        raw = stacks[c][z].astype(np.float64)
        exp = raw - O
        if prev is not None:
            exp = exp - d * A * (1 - np.exp(-B * np.maximum(prev - O, 0)))
        np.testing.assert_allclose(out[c][z], exp, atol=1e-3)
        prev = raw


def test_per_stack_order(rng):
    shape = (3, 4, 4)
    p = _params(shape[1:], rng, a_max=300)
    stacks = [rng.integers(90, 5000, shape).astype(np.uint16) for _ in range(2)]
    out = correct_interleaved(stacks, p, cycle="per stack", backend="numpy")
    A, B, O = (x.astype(np.float64) for x in (p.A, p.B, p.offset))
    # ch1 z0 follows ch0 z2
    prev = stacks[0][2].astype(np.float64)
    exp = stacks[1][0] - O - A * (1 - np.exp(-B * np.maximum(prev - O, 0)))
    np.testing.assert_allclose(out[1][0], exp, atol=1e-3)


def test_correct_frame_series_equals_single_channel_stack(rng):
    shape = (6, 20, 16)
    p = _params(shape[1:], rng)
    stack = rng.integers(0, 30000, shape).astype(np.uint16)
    ref = correct_interleaved([stack], p)[0]
    prev = None
    for z in range(shape[0]):
        f = correct_frame(stack[z], prev, p)
        np.testing.assert_allclose(f, ref[z], atol=1e-3)
        prev = stack[z]
    assert correct_frame(stack[1], stack[0], p, backend="numpy").dtype == np.float32


def test_dtype_policy_clip_not_wrap(rng):
    shape = (3, 8, 8)
    t = lls.sensor_maps((0, 0, 7, 7))
    p = params_from_arrays(t.A, t.B, np.full((8, 8), -100.0) * 0 + t.offset, t.noise)
    stack = np.full(shape, 50, np.uint16)        # below the offset: negative after subtraction
    stack[:, 0, 0] = 65535
    keep = correct_interleaved([stack], p, dtype="keep")[0]
    flt = correct_interleaved([stack], p, dtype="float32")[0]
    assert keep.dtype == np.uint16 and flt.dtype == np.float32
    assert keep[:, 1:, 1:].max() == 0              # clipped at 0, not wrapped to ~65500
    assert flt[:, 1:, 1:].max() < 0                 # float32 keeps the negative values
    # top of the range: offset negative pushes above 65535 -> clipped to the max
    p2 = params_from_arrays(np.zeros((8, 8)), np.zeros((8, 8)), np.full((8, 8), -10.0))
    top = correct_interleaved([stack], p2, dtype="keep")[0]
    assert top[0, 0, 0] == 65535 and top[0, 1, 1] == 60
    # rounding, not truncation
    p3 = params_from_arrays(np.zeros((8, 8)), np.zeros((8, 8)), np.full((8, 8), 0.6))
    assert correct_interleaved([stack], p3, dtype="keep")[0][0, 1, 1] == 49


def test_bad_inputs(rng):
    p = _params((8, 8), rng)
    good = rng.integers(0, 100, (2, 8, 8)).astype(np.uint16)
    with pytest.raises(CamcorrError, match="no stacks"):
        correct_interleaved([], p)
    with pytest.raises(CamcorrError, match="unsupported image dtype"):
        correct_interleaved([good.astype(np.complex64)], p)
    with pytest.raises(CamcorrError, match="unsupported image dtype"):
        correct_interleaved([good.astype(bool)], p)
    with pytest.raises(CamcorrError, match="channel stacks differ"):
        correct_interleaved([good, good[:1]], p)
    with pytest.raises(CamcorrError, match="different sizes"):
        correct_interleaved([rng.integers(0, 100, (2, 8, 9)).astype(np.uint16)], p)
    with pytest.raises(CamcorrError, match="out of range"):
        correct_interleaved([good], p, dampening=5)
    with pytest.raises(CamcorrError, match="dimensions"):
        correct_frame(good, None, p)
    with pytest.raises(CamcorrError, match="laser cycling"):
        correct_interleaved([good], p, cycle="sideways")
    bad = params_from_arrays(p.A, p.B, p.offset)
    bad.A = bad.A.copy()
    bad.A[1, 1] = np.nan
    with pytest.raises(CamcorrError, match="NaN"):
        correct_interleaved([good], bad)


# ------------------------------------------------------------------ ground truth
@pytest.fixture(scope="module")
def acquisition(tmp_path_factory):
    roi = (2000, 1000, 2039, 1031)
    acq = lls.write_acquisition(tmp_path_factory.mktemp("acq"), roi=roi, seed=11, camera_seed=4,
                                n_planes=16, n_timepoints=2, write=False)
    t = acq.truth
    params = params_from_arrays(t.A, t.B, t.offset, t.noise, roi=roi)
    return acq, params


def test_removes_carryover_with_true_parameters(acquisition):
    acq, params = acquisition
    for t in range(acq.raw.shape[0]):
        cor = correct_interleaved(list(acq.raw[t]), params)
        removed = carryover_removed(cor[1], acq.raw[t, 1], acq.raw_nocarry[t, 1], params.offset)
        assert removed >= 0.95
        # bright channel: the corrected data equal the carryover-free data within the noise
        resid = cor[0] - (acq.raw_nocarry[t, 0] - params.offset.astype(np.float64))
        assert np.sqrt(np.mean(resid ** 2)) < 0.5 * np.median(params.noise)
        # dark channel before correction had real carryover
        assert np.sqrt(np.mean(acq.carryover[t, 1] ** 2)) > 5 * np.median(params.noise)


def test_default_dampening_is_best_on_simulator(acquisition):
    from camcorr.flash.demo import dampening_scan

    acq, params = acquisition
    scan = dampening_scan(acq, params, (0.88, 0.94, DEFAULT_DAMPENING, 1.06))
    assert max(scan, key=scan.get) == DEFAULT_DAMPENING
    assert scan[DEFAULT_DAMPENING] > scan[0.88]
