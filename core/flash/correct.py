"""Flash4.0 carryover correction of interleaved channel stacks (numba kernel + numpy reference).

Forward model (Lambert, LLSpy camera corrections documentation, llspy.readthedocs.io/en/latest/camera.html)::

    raw_j = offset + signal_j + A * (1 - exp(-B * x_{j-1})) + noise,   x_{j-1} = raw_{j-1} - offset

for camera frames j in acquisition order (channels cycled per Z: ch0z0, ch1z0, ..., ch0z1, ...).
The correction subtracts the offset from every frame and ``d * A * (1 - exp(-B * x))`` from every
frame but the first, computed from the RAW previous frame.

Differences from LLSpy 0.5.1 (deliberate, documented):

* the dampening ``d`` is a parameter; the default 1.0 is the value that removes most carryover on
  the simulator with fitted parameters (see ``camcorr.flash.demo.dampening_scan``; LLSpy hard-codes
  0.88 on the CPU, which leaves 12 % of the carryover);
* a previous frame below the offset (read noise) predicts no carryover (``x`` is floored at 0);
  LLSpy's formula would add a negative "carryover", i.e. signal;
* integer output is rounded and clipped to [0, dtype max]; LLSpy truncates; float32 output is not
  clipped (no bias from cutting the noise at zero);
* ``'per stack'`` laser cycling is supported as well as ``'per Z'``.
"""
from __future__ import annotations

from typing import List, Optional, Sequence

import numba
import numpy as np

from ..errors import CamcorrError, Limits, describe
from .params import FlashParams

__all__ = ["correct_interleaved", "correct_frame", "carryover", "DEFAULT_DAMPENING", "LIMITS",
           "acquisition_order"]

#: Default dampening factor: 1.0 (the model as fitted).  On the simulator with parameters fitted
#: by ``calibrate_folder`` the residual carryover energy is smallest at d ~ 1 (LLSpy's 0.88 leaves
#: ~1.5 % of the carryover energy, 12 % of its amplitude); see ``dampening_scan`` and the README.
DEFAULT_DAMPENING = 1.0
#: Allowed dampening: from 0 (offset subtraction only) to twice the fitted carryover.
LIMITS = {"dampening": Limits(0.0, 2.0)}

_U_MAX = np.float32(16.0)  # exp(-16) = 1.1e-7: beyond it 1 - exp(-u) == 1 to float32 precision


@numba.njit(inline="always", fastmath=True, cache=True)
def _one_minus_exp_neg(u):
    """1 - exp(-u) for u >= 0 in float32, vectorisable (no libm call).

    exp(-u) = exp(-u/64)**64 with exp(-t), t in [0, 0.25], from its degree-5 Taylor polynomial
    (truncation < 3.4e-7); after the six squarings the absolute error is below 3e-5, i.e. below
    0.03 ADU for the largest plateau LLSpy allows (A = 800).  u is capped at 16.
    """
    if u > 16.0:
        u = np.float32(16.0)
    t = u * np.float32(1.0 / 64.0)
    p = np.float32(1.0) - t * (np.float32(1.0) - t * (np.float32(0.5) - t * (
        np.float32(1.0 / 6.0) - t * (np.float32(1.0 / 24.0) - t * np.float32(1.0 / 120.0)))))
    p = p * p
    p = p * p
    p = p * p
    p = p * p
    p = p * p
    p = p * p
    return np.float32(1.0) - p


@numba.njit(parallel=True, fastmath=True, cache=True)
def _correct_kernel(cur, prev, prev_idx, A, B, O, d, out, to_int, maxval):
    nz, ny, nx = cur.shape
    dd = np.float32(d)
    for zy in numba.prange(nz * ny):
        z = zy // ny
        y = zy - z * ny
        k = prev_idx[z]
        if k < 0:
            for x in range(nx):
                v = np.float32(cur[z, y, x]) - O[y, x]
                if to_int:
                    v = min(max(v + np.float32(0.5), np.float32(0.0)), maxval)
                out[z, y, x] = v
        else:
            for x in range(nx):
                o = O[y, x]
                xp = max(np.float32(prev[k, y, x]) - o, np.float32(0.0))
                c = A[y, x] * _one_minus_exp_neg(B[y, x] * xp)
                v = np.float32(cur[z, y, x]) - o - dd * c
                if to_int:
                    v = min(max(v + np.float32(0.5), np.float32(0.0)), maxval)
                out[z, y, x] = v


def _correct_numpy(cur, prev, prev_idx, A, B, O, d, out, to_int, maxval):
    """Reference implementation of :func:`_correct_kernel` (float64, np.exp)."""
    A64, B64, O64 = (np.asarray(a, np.float64) for a in (A, B, O))
    for z in range(cur.shape[0]):
        v = cur[z].astype(np.float64) - O64
        k = prev_idx[z]
        if k >= 0:
            xp = np.maximum(prev[k].astype(np.float64) - O64, 0.0)
            v = v - d * A64 * (1.0 - np.exp(-B64 * xp))
        if to_int:
            v = np.clip(np.floor(v + 0.5), 0, maxval)
        out[z] = v


def carryover(previous_raw, params: FlashParams) -> np.ndarray:
    """Predicted carryover (ADU, float32) of the frame that follows `previous_raw` (Y, X).

    Examples
    --------
    >>> import numpy as np
    >>> from camcorr.flash.params import params_from_arrays
    >>> p = params_from_arrays(A=np.full((2, 2), 50.0), B=np.full((2, 2), 1e-3),
    ...                        offset=np.full((2, 2), 100.0))
    >>> round(float(carryover(np.full((2, 2), 3100.0), p)[0, 0]), 2)  # 50 (1 - exp(-3))
    47.51
    """
    x = np.maximum(np.asarray(previous_raw, np.float64) - params.offset, 0.0)
    return (params.A * (1.0 - np.exp(-params.B * x))).astype(np.float32)


def acquisition_order(n_channels: int, n_planes: int, cycle: str = "per Z") -> List[tuple]:
    """(channel, plane) of each camera frame in acquisition order.

    Examples
    --------
    >>> acquisition_order(2, 2)  # (channel, plane) in the order the camera took them
    [(0, 0), (1, 0), (0, 1), (1, 1)]
    >>> acquisition_order(2, 2, "per stack")
    [(0, 0), (0, 1), (1, 0), (1, 1)]
    """
    if _is_per_stack(cycle):
        return [(c, z) for c in range(n_channels) for z in range(n_planes)]
    return [(c, z) for z in range(n_planes) for c in range(n_channels)]


def _is_per_stack(cycle) -> bool:
    text = str(cycle or "per Z").lower().replace("_", " ").replace("-", " ")
    if text in ("per z", "perz", "z"):
        return False
    if text in ("per stack", "perstack", "stack"):
        return True
    raise CamcorrError("unknown laser cycling mode", argument="cycle",
                       expected="'per Z' (channels alternate plane by plane) or 'per stack'",
                       received=repr(cycle))


def _out_dtype(input_dtype, dtype):
    if dtype is None or str(dtype) in ("float32", "float"):
        return np.dtype(np.float32)
    if str(dtype) in ("keep", "same"):
        return np.dtype(input_dtype) if np.dtype(input_dtype).kind in "ui" else np.dtype(np.float32)
    dt = np.dtype(dtype)
    if dt.kind not in "uif":
        raise CamcorrError("unsupported output dtype", argument="dtype",
                           expected="'keep', 'float32' or an integer dtype", received=str(dtype))
    return dt


def _check_stack(s, argument: str):
    if not isinstance(s, np.ndarray):
        s = np.asarray(s)
    if s.dtype.kind not in "uif" or s.dtype.itemsize > 8:
        raise CamcorrError("unsupported image dtype", argument=argument,
                           expected="raw camera data as unsigned/signed integers or floats "
                                    "(normally uint16)",
                           received=describe(s))
    return s


def _check_params(params: FlashParams, shape, argument="params"):
    if not isinstance(params, FlashParams):
        raise CamcorrError("not carryover parameters", argument=argument,
                           expected="FlashParams (from read_params or calibrate_folder)",
                           received=describe(params))
    params.validate(argument)
    if tuple(params.shape) != tuple(shape):
        raise CamcorrError("parameter maps and images have different sizes", argument=argument,
                           expected=f"parameter maps of the images' shape {tuple(shape)} (Y, X)",
                           received=f"maps of shape {params.shape}"
                                    + (f" for ROI {params.roi}" if params.roi else ""),
                           fix="Give the data's Settings.txt (--settings) so the calibration can be "
                               "cut to the data's camera ROI")


def _run(cur, prev, idx, params, d, out, backend):
    to_int = out.dtype.kind in "ui"
    maxval = float(np.iinfo(out.dtype).max) if to_int else 0.0
    A = np.ascontiguousarray(params.A, np.float32)
    B = np.ascontiguousarray(params.B, np.float32)
    O = np.ascontiguousarray(params.offset, np.float32)
    idx = np.asarray(idx, np.int64)
    if backend == "numba":
        _correct_kernel(cur, prev, idx, A, B, O, np.float32(d), out, to_int, np.float32(maxval))
    elif backend == "numpy":
        _correct_numpy(cur, prev, idx, A, B, O, float(d), out, to_int, maxval)
    else:
        raise CamcorrError("unknown backend", argument="backend",
                           expected="'numba' or 'numpy'", received=repr(backend))


def correct_interleaved(stacks: Sequence[np.ndarray], params: FlashParams, *,
                        dampening: float = DEFAULT_DAMPENING, cycle: str = "per Z",
                        dtype=np.float32, backend: str = "numba") -> List[np.ndarray]:
    """Remove Flash4.0 carryover from the channel stacks of one timepoint.

    Parameters
    ----------
    stacks : sequence of ndarray, each (Z, Y, X), raw ADU
        The channels of one timepoint in acquisition order (ch0, ch1, ...), same shape and dtype.
        A single (Z, Y, X) array is one channel.
    params : FlashParams
        Parameters cut to the data's ROI (:func:`~camcorr.flash.crop_params`); maps (Y, X).
    dampening : float
        Fraction of the predicted carryover removed (LLSpy: 0.88); default 1.0.
    cycle : {'per Z', 'per stack'}
        Laser cycling of the acquisition (``Cycle lasers`` in Settings.txt): frames are
        ch0z0, ch1z0, ..., ch0z1 ('per Z') or ch0z0..ch0zN, ch1z0, ... ('per stack').
    dtype : 'float32', 'keep' or dtype
        Output type.  float32 (default): offset-subtracted, not clipped.  'keep' / an integer
        dtype: rounded and clipped to [0, max] of that dtype (never wrapped).
    backend : {'numba', 'numpy'}
        numba-parallel kernel (float32, fast exp) or the float64 numpy reference.

    Returns
    -------
    list of ndarray
        Corrected stacks, offset subtracted, in the order given.

    Raises
    ------
    CamcorrError
        Empty list, stacks of different shapes/dtypes, non-3D stacks, unsupported dtype,
        parameter maps of another shape, NaN in parameters, dampening outside [0, 2].

    Examples
    --------
    >>> import numpy as np
    >>> from camcorr.flash.params import params_from_arrays
    >>> A, B, offset = (np.full((4, 4), v) for v in (50.0, 1e-3, 100.0))  # ADU, 1/ADU, ADU
    >>> p = params_from_arrays(A, B, offset)
    >>> bright = np.full((2, 4, 4), 3100.0, np.float32)      # channel 0: 3000 ADU above offset
    >>> dark = 100 + carryover(bright[0], p)[None].repeat(2, 0)  # channel 1: carryover only
    >>> out = correct_interleaved([bright, dark], p)
    >>> float(out[0][0, 0, 0]), bool(np.abs(out[1]).max() < 1e-3)
    (3000.0, True)
    """
    if isinstance(stacks, np.ndarray) and stacks.ndim == 3:
        stacks = [stacks]
    stacks = list(stacks)
    if not stacks:
        raise CamcorrError("no stacks to correct", argument="stacks",
                           expected="one (Z, Y, X) stack per channel", received="an empty list")
    stacks = [_check_stack(s, f"stack {i}") for i, s in enumerate(stacks)]
    for i, s in enumerate(stacks):
        if s.ndim != 3:
            raise CamcorrError("wrong number of dimensions", argument=f"stack {i}",
                               expected="3D (Z, Y, X) stacks (use correct_frame for 2D frames)",
                               received=f"shape {s.shape}")
        if s.shape != stacks[0].shape or s.dtype != stacks[0].dtype:
            raise CamcorrError("channel stacks differ", argument=f"stack {i}",
                               expected=f"shape {stacks[0].shape} and dtype {stacks[0].dtype} "
                                        "like stack 0",
                               received=describe(s),
                               fix="Pass the channels of one timepoint, all of the same size")
    LIMITS["dampening"].check(dampening, "dampening")
    _check_params(params, stacks[0].shape[1:])
    per_stack = _is_per_stack(cycle)
    nz = stacks[0].shape[0]
    out_dt = _out_dtype(stacks[0].dtype, dtype)
    stacks = [np.ascontiguousarray(s) for s in stacks]
    first_idx = np.arange(-1, nz - 1)
    outs = []
    n = len(stacks)
    for c, cur in enumerate(stacks):
        out = np.empty(cur.shape, out_dt)
        if per_stack:
            _run(cur, cur, first_idx, params, dampening, out, backend)
            if c > 0:  # first plane follows the previous channel's last plane
                _run(cur[:1], stacks[c - 1][-1:], np.zeros(1, np.int64), params, dampening,
                     out[:1], backend)
        elif c == 0:
            _run(cur, stacks[n - 1], first_idx, params, dampening, out, backend)
        else:
            _run(cur, stacks[c - 1], np.arange(nz), params, dampening, out, backend)
        outs.append(out)
    return outs


def correct_frame(frame: np.ndarray, previous_raw: Optional[np.ndarray], params: FlashParams,
                  dampening: float = DEFAULT_DAMPENING, *, dtype=np.float32,
                  backend: str = "numba") -> np.ndarray:
    """Correct one 2D camera frame given the raw frame the camera took just before it.

    For 2D time series (CellProfiler cycles, Fiji movies): call it frame by frame, passing the
    previous RAW frame (None for the first frame: offset subtraction only).

    Parameters
    ----------
    frame : ndarray (Y, X)
        Raw frame in ADU.
    previous_raw : ndarray (Y, X) or None
        The raw frame acquired immediately before `frame` by the same camera.
    params : FlashParams
        Maps of shape (Y, X).
    dampening, dtype, backend
        As in :func:`correct_interleaved`.

    Returns
    -------
    ndarray (Y, X)
        Offset-subtracted, carryover-corrected frame (float32 unless `dtype` says otherwise).

    Examples
    --------
    >>> import numpy as np
    >>> from camcorr.flash.params import FlashParams
    >>> p = FlashParams(A=np.full((4, 4), 50.0, np.float32), B=np.full((4, 4), 1e-3, np.float32),
    ...                 offset=np.full((4, 4), 100.0, np.float32))
    >>> previous = np.full((4, 4), 3100.0, np.float32)
    >>> frame = (100 + carryover(previous, p)).astype(np.float32)  # dark frame after a bright one
    >>> bool(np.abs(correct_frame(frame, previous, p)).max() < 1e-3)
    True
    >>> round(float(correct_frame(frame, None, p)[0, 0]), 2)  # first frame: offset only
    47.51
    """
    frame = _check_stack(frame, "frame")
    if frame.ndim != 2:
        raise CamcorrError("wrong number of dimensions", argument="frame",
                           expected="a 2D (Y, X) frame", received=f"shape {frame.shape}")
    LIMITS["dampening"].check(dampening, "dampening")
    _check_params(params, frame.shape)
    out = np.empty((1,) + frame.shape, _out_dtype(frame.dtype, dtype))
    cur = np.ascontiguousarray(frame)[None]
    if previous_raw is None:
        _run(cur, cur, np.array([-1]), params, dampening, out, backend)
    else:
        prev = _check_stack(previous_raw, "previous frame")
        if prev.shape != frame.shape:
            raise CamcorrError("previous frame has another shape", argument="previous frame",
                               expected=f"shape {frame.shape}", received=f"shape {prev.shape}")
        _run(cur, np.ascontiguousarray(prev)[None], np.array([0]), params, dampening, out, backend)
    return out[0]
