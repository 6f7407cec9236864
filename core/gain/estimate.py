"""Blind (and residual) gain estimation by smooth midway equalisation (Sorzano et al., 2018).

Model: every frame ``i`` of a movie is ``recorded_i = ideal_i x G`` (Eq. 1 of the paper), with one
gain image ``G`` for all frames, normalised here to mean 1.  Per frame, the *smooth midway
equalisation* (SME) of column histograms maps every pixel to the Gaussian-weighted average, over
neighbouring columns, of the sorted column values at its rank (missing neighbours at the edges are
skipped and the weights renormalised); the width ``sigma`` is chosen per frame by minimal total
variation across columns over a grid that includes 0 (no equalisation).  The same is done with rows
and the gain is

    G(n+1) = sum_i recorded_i / sum_i SME(recorded_i / G(n))          (Eq. 7)

accumulated over frames one at a time (memory independent of the number of frames), iterated until
the gain changes by less than a tolerance.

Full amplitude in one pass (camcorr's two departures from the paper's operator).  As published,
(i) every line's reference includes the line itself with weight ``w0 = 1 / sum(w)`` (Eq. 2), so a
line is equalised only ``1 - w0`` of the way towards its neighbours, and (ii) the column and row
operators are *averaged* (Eq. 6), but column stripes pass the row operator untouched and row
stripes the column operator, so half of every stripe survives.  Measured on simulated
striped gains, one iteration of the published operator recovers 0.35-0.45 of the gain's
amplitude and three iterations 0.6-0.8, so the std of a residual gain and its flags come out low.
camcorr (i) chooses sigma by total variation exactly as the paper (self-inclusive weights, so sigma
0 remains "no equalisation" and a grid of only 0 gives a flat gain) but then equalises every line
onto the *leave-one-out* reference at that sigma (the same weights without the line itself), and
(ii) applies the row operator to the column-equalised frame (``SME_row(SME_col(f))``), which
removes a separable gain ``c_x r_y`` completely and an isolated defect once.  One iteration then
recovers the full amplitude (slope of estimate on truth 0.96-1.01, integrating and counting
movies, 0-30 % specimen texture), which is why the default is one iteration.  ``sme_frame(...,
combine='mean', debias=False)`` is the published operator.

Differences from Xmipp's ``xmipp_movie_estimate_gain`` (measured by the project; see
``benchmarks/bench_gain.py``):
the sigma chosen by total variation is really used (Xmipp has used sigma 0 since 2019, so its
non-single-reference output is flat); the output is the gain in the orientation
``recorded = ideal x G`` (Xmipp writes the inverse); residual mode corrects *every* frame by the
reference in every iteration (Xmipp mixes corrected and raw frames); tied values get the mean of
the smoothed values over their tied ranks (mid-rank; Xmipp takes the highest rank, which breaks
counting data).

A note on what the method can see: equalising line histograms recovers gain structure that differs
between neighbouring columns or rows (readout channels, stripes, sensor tiles, defect lines) and
isolated outlier pixels (hot or dead); a gain that varies pixel by pixel *within* a line without
changing its histogram is invisible to it, and a gain that varies slowly is seen only by the
single-reference variant (which in turn takes large-scale specimen structure for gain).

References
----------
Sorzano, C.O.S. et al. (2018). Blind estimation of DED camera gain in Electron Microscopy.
J. Struct. Biol. 203(2), 90-93. doi:10.1016/j.jsb.2018.03.007
Tendero, Y., Landeau, S. & Gilles, J. (2012). Non-uniformity correction of infrared images by
midway equalization. Image Processing On Line 2, 134-146. doi:10.5201/ipol.2012.glmt-mire
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import numba
import numpy as np

from ..errors import (CamcorrError, Limits, check_finite, check_frame_block, check_ndim,
                      describe)
from ..io import native_byte_order
from . import _kernels as K
from .heldout import heldout_report
from .qc import counting_noise_floor, gain_report
from .scales import (DEFAULT_FIELDS, N_GROUPS, R2_LIMITED, blind_response, blind_spot,
                     check_fields, combine_scales, expected_r2, profile_dct)

__all__ = [
    "DEFAULT_SIGMAS",
    "LIMITS",
    "parse_sigmas",
    "GainAccumulator",
    "GainResult",
    "estimate_gain",
    "sme_frame",
    "prepare_gain_ref",
]

#: Default sigma grid (in lines): 0 to 3 in steps of 0.5; 0 means "leave the frame as it is".
DEFAULT_SIGMAS: Tuple[float, ...] = (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0)
#: Allowed settings: each sigma of the grid (lines), iterations, tolerance (RMS change of the
#: mean-1 gain), offset (ADU, a dark level: not negative), conversion factor and read noise
#: (electrons).
LIMITS = {"sigmas": Limits(0.0, 64.0), "iterations": Limits(low=1), "tolerance": Limits(low=0.0),
          "offset": Limits(low=0.0), "electrons_per_adu": Limits(low=0.0, low_inclusive=False),
          "read_noise_e": Limits(low=0.0)}
REFERENCES = ("smooth", "single")
COMBINES = ("compose", "mean")
#: Fewer recorded levels than this (max - min + 1 of whole-number data, e.g. counts at about
#: 1 e/px/frame): most pixels of a line are tied, see :func:`_sme_parts`.
FEW_LEVELS = 64
BACKENDS = ("numba", "numpy")
ORIENTATIONS = ("divide", "multiply")


# ----------------------------------------------------------------------------------------------
# one frame
# ----------------------------------------------------------------------------------------------

class _Workspace:
    """Temporary arrays of one frame, reused for every frame of a movie.

    A 4096 x 4096 frame needs about ten 64 MiB temporaries; allocated afresh for every frame
    they cost the kernel's page faults (system time, mostly serial) on every use.
    """

    def __init__(self):
        self._arrays = {}

    def get(self, name: str, shape, dtype=np.float32) -> np.ndarray:
        key = (name, tuple(shape), np.dtype(dtype).str)
        a = self._arrays.get(key)
        if a is None:
            a = self._arrays[key] = np.empty(shape, dtype=dtype)
        return a


def _sme_direction(lines: np.ndarray, sigmas: Sequence[float], reference: str, backend: str,
                   keys=None, scale=None, ties=None, debias: bool = True, work=None):
    """SME of `lines` (n_lines, n) across lines; returns (equalised lines, chosen sigma index).

    The sigma is chosen by minimal total variation of the paper's operator (Gaussian weights
    *including* the line itself, so sigma 0 is the identity, "no equalisation").  With `debias`,
    the lines are then equalised once more at the chosen sigma (> 0) onto the *leave-one-out*
    reference (the same weights without the line itself, renormalised): the line's own histogram
    no longer pulls its reference towards itself, so ``recorded / equalised`` estimates the
    line's whole gain instead of the fraction ``1 - w0 / sum(w)`` of it.

    With `keys`, ranks come from the keys (tie groups: runs of equal `ties`, default equal keys;
    mid-rank) and the sorted profiles from the values `lines` averaged over each tie group.
    With `scale` too, the members of a tie
    group share the group's equalised value in proportion to their `scale` value
    (``E_p = E_group x scale_p / mean(scale over the group)``).

    `work` (numba backend): a :class:`_Workspace` for the temporaries; the returned array is
    then one of its buffers (or `lines`), valid until the next call with the same `work`.
    """
    numba_backend = backend == "numba"
    if not numba_backend:
        work = None
    sort = K.sort_lines if numba_backend else K.sort_lines_numpy
    equalise = K.equalise_lines if numba_backend else K.equalise_lines_numpy
    shape = lines.shape
    sort_out = None if work is None else (work.get("S", shape), work.get("order", shape, np.int32))
    if sort_out is None:
        S, order = sort(lines if keys is None else keys, None if keys is None else lines, ties)
    else:
        S, order = sort(lines if keys is None else keys, None if keys is None else lines, ties,
                        out=sort_out)
    factor = None
    if keys is not None and scale is not None:
        S_scale, order_scale = sort(keys, scale, ties)
        group_mean = equalise(S_scale, order_scale, np.ones(1))
        with np.errstate(divide="ignore", invalid="ignore"):
            factor = np.where(group_mean > 0, scale / np.where(group_mean > 0, group_mean, 1),
                              1).astype(np.float32)
    if reference == "single":
        E = K.midway_lines(S, order) if numba_backend else K.midway_lines_numpy(S, order)
        return (E if factor is None else E * factor), -1
    best, best_tv, best_i = None, math.inf, -1
    spare = None
    groups = None
    if numba_backend:
        groups = K.tie_groups(S, out=None if work is None else work.get("ties", shape, np.int32))

    def free_buffer():
        if work is None:
            return np.empty(shape, dtype=np.float32)
        a, b = work.get("E0", shape), work.get("E1", shape)
        return b if best is a else a

    for i, s in enumerate(sigmas):
        if s == 0 and keys is None:
            E = lines  # sigma 0: every line is its own reference
            tv = K.total_variation(E) if numba_backend else K.total_variation_numpy(E)
        elif numba_backend:
            if spare is None:
                spare = free_buffer()
            E, tv = K.equalise_tv(S, order, K.gaussian_weights(s), out=spare, factor=factor,
                                  groups=groups)
        else:
            E = K.equalise_lines_numpy(S, order, K.gaussian_weights(s))
            if factor is not None:
                E = E * factor
            tv = K.total_variation_numpy(E)
        if tv < best_tv:
            spare = best if (best is not None and best is not lines and numba_backend) else None
            best, best_tv, best_i = E, tv, i
    if debias and sigmas[best_i] > 0:
        w = K.gaussian_weights(sigmas[best_i]).copy()
        w[0] = 0.0
        if numba_backend:
            best, _ = K.equalise_tv(S, order, w,
                                    out=best if best is not lines else free_buffer(),
                                    factor=factor, groups=groups)
        else:
            best = K.equalise_lines_numpy(S, order, w)
            if factor is not None:
                best = best * factor
    return best, best_i


def sme_frame(frame, *, sigmas: Sequence[float] = DEFAULT_SIGMAS, reference: str = "smooth",
              backend: str = "numba", keys=None, scale=None, ties=None,
              combine: str = "compose", debias: bool = True):
    """Smooth midway equalisation of one frame by the column and the row operator.

    Default: the row operator applied to the column-equalised frame, each with the leave-one-out
    reference at its chosen sigma (full-amplitude estimate; :func:`_sme_parts`).  With
    ``combine='mean', debias=False`` it is exactly the paper's operator: the mean of the column
    and row operators (Eq. 6), every line's reference including the line itself (Eq. 2).

    Parameters
    ----------
    frame : ndarray, shape (Y, X)
        One frame (any real dtype; computed in float32).
    sigmas : sequence of float
        Candidate widths (in columns/rows) of the Gaussian over neighbouring lines; the one giving
        the least total variation is chosen per direction.  0 = no equalisation.
    reference : {'smooth', 'single'}
        'smooth': Gaussian-weighted neighbouring lines (sigma search); 'single': every line is
        mapped onto the mean sorted line of the frame (midway equalisation, no sigma).
    backend : {'numba', 'numpy'}
        Parallel numba kernels, or the plain numpy reference implementation.
    keys : ndarray, shape (Y, X), optional
        Rank keys (default: the frame).  Pixels are ranked by the keys, equal keys are one tie
        group (mid-rank) whose sorted values are averaged.  :class:`GainAccumulator` passes the
        recorded integer frame when `frame` is that frame divided by the current gain estimate, so
        the estimate's own noise cannot re-order pixels recorded as equal (which feeds back and
        diverges on counting data).
    ties : ndarray, shape (Y, X), optional
        With `keys`: tie groups are the runs of equal `ties` in key order (default: equal keys).
    scale : ndarray, shape (Y, X), optional
        With `keys`: members of a tie group share its equalised value in proportion to `scale`
        (the recording corrected by an external gain reference), so the reference's per-pixel
        information is kept while the group stays tied.
    combine : {'compose', 'mean'}
        'compose': ``SME_row(SME_col(frame))``; 'mean': ``(SME_col + SME_row) / 2`` (Eq. 6).
    debias : bool
        Equalise onto the leave-one-out reference at the chosen sigma (the choice itself always
        uses the paper's self-inclusive weights, so sigma 0 stays "no equalisation").

    Returns
    -------
    equalised : ndarray, float32, shape (Y, X)
    sigma_col, sigma_row : float
        Chosen sigma for the column and the row operator (NaN for 'single').

    Examples
    --------
    >>> import numpy as np
    >>> gain = np.ones((32, 32))
    >>> gain[:, 10] = 1.2  # one column amplifies 20 % more
    >>> frame = np.random.default_rng(0).poisson(2000, (32, 32)) * gain
    >>> equalised, sigma_col, sigma_row = sme_frame(frame, sigmas=(1.0,), backend="numpy")
    >>> equalised.dtype, round(float(equalised[:, 10].mean() / np.median(equalised)), 2)
    (dtype('float32'), 1.0)
    """
    f = np.asarray(frame, dtype=np.float32)
    t = None if keys is None else np.asarray(keys, dtype=np.float32)
    if t is not None and t.shape != f.shape:
        raise CamcorrError("rank keys differ in shape from the frame", argument="keys",
                           expected=f"shape {f.shape}", received=f"shape {t.shape}")
    sc = None if scale is None else np.asarray(scale, dtype=np.float32)
    if sc is not None and (t is None or sc.shape != f.shape):
        raise CamcorrError("scale needs rank keys of the frame's shape", argument="scale",
                           expected=f"keys and scale of shape {f.shape}",
                           received=f"scale of shape {sc.shape}, keys "
                                    f"{None if t is None else t.shape}")
    ti = None if ties is None else np.asarray(ties, dtype=np.float32)
    if ti is not None and (t is None or ti.shape != f.shape):
        raise CamcorrError("ties need rank keys of the frame's shape", argument="ties",
                           expected=f"keys and ties of shape {f.shape}",
                           received=f"ties of shape {ti.shape}")

    if combine not in COMBINES:
        raise CamcorrError("unknown combination of the column and row operators",
                           argument="combine", expected="'compose' or 'mean'",
                           received=repr(combine))
    e, e_col_t, s_col, s_row = _sme_parts(f, tuple(float(v) for v in sigmas), reference,
                                          backend, t, sc, ti, combine=combine,
                                          debias=bool(debias))
    out = np.array(e, dtype=np.float32)
    if e_col_t is not None:
        out += e_col_t.T
        out *= 0.5
    return out, s_col, s_row


def _sme_parts(f, sigmas, reference, backend, keys=None, scale=None, ties=None, *,
               combine="compose", debias=True, few_levels=False, work=None):
    """Equalised frame(s) of the column and row operators.

    combine='compose' (default): the row operator is applied to the column-equalised frame,
    ``SME_row(SME_col(f))``; returns ``(E, None, sigma_col, sigma_row)`` with E (Y, X).
    combine='mean' (Eq. 6 of the paper): returns ``(E_row (Y, X), E_col in line layout (X, Y),
    sigma_col, sigma_row)``, to be averaged.

    Why compose: column stripes survive the row operator untouched (every row carries the same
    column pattern) and row stripes the column operator, so the mean of the two operators keeps
    half of every stripe and ``recorded / mean`` recovers half its amplitude, whereas an isolated
    pixel is equalised by both (full amplitude).  Composed, a separable gain ``c_x r_y`` is removed
    completely (the column stage removes ``c``, the row stage ``r``) and a defect pixel once.

    Ranks of the row stage: by the column-equalised values (the frame the stage equalises).  With
    rank keys (quantised data divided by a prior gain, see :func:`sme_frame`) and many recorded
    levels (integrating cameras), the row stage ranks by the same keys and tie groups as the
    column stage; with few levels (`few_levels`, counting data, where a line is a handful of
    huge tie groups) by the column-equalised values alone: ranking tie groups of recorded counts
    there makes the equalised value a function of the count per row only, and the iteration then
    drifts to the per-pixel mean count (measured: R^2 0.6 -> 0.2 on counting movies).

    `work` (a :class:`_Workspace`, numba backend, combine='compose'): temporaries are reused
    and the returned E is one of its buffers, valid until the next call with the same `work`.
    """
    numba_backend = backend == "numba"
    if combine != "compose" or not numba_backend:
        work = None

    def tr(a, name=None):
        if a is None:
            return None
        if not numba_backend:
            return K.transpose_numpy(a)
        out = None if (work is None or name is None) else work.get(name, a.shape[::-1])
        return K.transpose(a, out=out)

    f = np.ascontiguousarray(f, dtype=np.float32)
    e_col_t, i_col = _sme_direction(tr(f, "f_t"), sigmas, reference, backend, tr(keys, "keys_t"),
                                    tr(scale, "scale_t"), tr(ties, "ties_t"), debias, work=work)
    if combine == "compose":
        e_col = tr(e_col_t, "e_col")
        row_args = (keys, scale, ties) if (keys is not None and not few_levels) else (None,) * 3
        e, i_row = _sme_direction(e_col, sigmas, reference, backend, *row_args, debias,
                                  work=work)
        e_col_t = None
    else:
        e, i_row = _sme_direction(f, sigmas, reference, backend, keys, scale, ties, debias)
    s_col = float(sigmas[i_col]) if i_col >= 0 else math.nan
    s_row = float(sigmas[i_row]) if i_row >= 0 else math.nan
    return e, e_col_t, s_col, s_row


# ----------------------------------------------------------------------------------------------
# input checks
# ----------------------------------------------------------------------------------------------

def prepare_gain_ref(gain_ref, shape=None, *, orientation: str = "divide",
                     argument: str = "gain_ref") -> np.ndarray:
    """Check a measured gain reference and return it as the divisor ``G_ref`` (float64).

    Parameters
    ----------
    gain_ref : ndarray, shape (Y, X)
        Measured gain reference, all pixels finite and > 0.
    shape : tuple, optional
        Frame shape it must match.
    orientation : {'divide', 'multiply'}
        'divide': recorded = ideal x ref, corrected = recorded / ref (camcorr's convention, the
        orientation of :func:`estimate_gain`'s output).  'multiply': corrected = recorded x ref
        (the convention of gain references written for RELION, MotionCor2 and SerialEM).

    Raises
    ------
    CamcorrError
        Wrong dimensions or shape, NaN/inf, zero or negative pixels, unknown orientation.
    """
    if orientation not in ORIENTATIONS:
        raise CamcorrError("unknown gain reference orientation", argument="ref_orientation",
                           expected="'divide' or 'multiply'", received=repr(orientation))
    ref = np.asarray(gain_ref)
    check_ndim(ref, (2,), argument)
    if ref.dtype.kind not in "uif":
        raise CamcorrError("not a numeric image", argument=argument,
                           expected="a real-valued gain image", received=describe(ref))
    ref = ref.astype(np.float64)
    check_finite(ref, argument, fix="Use a complete gain reference (no NaN/inf pixels)")
    if shape is not None and tuple(ref.shape) != tuple(shape):
        raise CamcorrError("gain reference shape differs from the frames", argument=argument,
                           expected=f"shape {tuple(shape)} like the frames",
                           received=f"shape {ref.shape}",
                           fix="Use the reference of this camera mode (binning, super-resolution, "
                               "rotation/flip) or crop it to the frames")
    bad = ref <= 0
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise CamcorrError("gain reference has zero or negative pixels", argument=argument,
                           expected="every pixel > 0",
                           received=f"{int(bad.sum())} pixel(s) <= 0, the first at (y, x) = "
                                    f"{first}",
                           fix="Replace dead pixels in the reference (e.g. by 1 or their "
                               "neighbours' "
                               "median) before using it")
    return ref if orientation == "divide" else 1.0 / ref


# ----------------------------------------------------------------------------------------------
# streaming accumulator
# ----------------------------------------------------------------------------------------------

@dataclass
class GainResult:
    """Result of a gain estimation.

    Attributes
    ----------
    gain : ndarray, float32, shape (Y, X)
        Estimated gain, orientation recorded = ideal x gain, mean 1.  In residual mode: the gain
        left after dividing the frames by the reference (flat for a perfect reference).
    report : dict
        :func:`~camcorr.gain.gain_report` of `gain` (flags, percentiles, noise floors).
    n_frames : int
        Frames used (per iteration).
    iterations : int
        Iterations run.
    converged : bool
        The last change was below the tolerance.
    changes : list of float
        RMS change of the (mean-1) gain at every iteration.
    sigma_grid : tuple of float
        The sigma candidates.
    sigma_counts_col, sigma_counts_row : ndarray of int
        How often each candidate was chosen (last iteration), per direction.
    noise_floor_halfset : float
        Measured noise of the estimate: std of (gain from even frames - gain from odd frames) / 2.
    total_gain : ndarray or None
        Residual mode: reference x residual gain (mean 1), the gain the reference should have been.
    mode : str
        'blind' or 'residual'.
    fields : str
        'same' or 'independent' (see :func:`estimate_gain`).
    half_gains : ndarray or None, shape (2, Y, X)
        The estimates from the even and from the odd frames (same method), for held-out checks.
    """

    gain: np.ndarray
    report: dict
    n_frames: int
    iterations: int
    converged: bool
    changes: List[float]
    sigma_grid: Tuple[float, ...]
    sigma_counts_col: np.ndarray
    sigma_counts_row: np.ndarray
    noise_floor_halfset: Optional[float]
    total_gain: Optional[np.ndarray] = None
    mode: str = "blind"
    fields: str = DEFAULT_FIELDS
    half_gains: Optional[np.ndarray] = None


class GainAccumulator:
    """One pass of the gain estimation over frames given one at a time (Eq. 7, one iteration).

    Its state is a few numpy arrays (see :meth:`state` / :meth:`from_state`), so a host such as
    a CellProfiler module can keep it between image sets; memory does not grow with the number of
    frames.

    Parameters
    ----------
    shape : (int, int), optional
        Frame shape; taken from the first frame if not given.
    prior_gain : ndarray, shape (Y, X) or (2, Y, X), optional
        Current estimate ``G(n)`` (recorded = ideal x G); frames are divided by it before the
        equalisation.  Default: flat (first iteration).  With shape (2, Y, X), even frames are
        divided by ``prior_gain[0]`` and odd frames by ``prior_gain[1]``: :func:`estimate_gain`
        iterates the two half-sets independently (their union is the estimate), so the half-set
        noise floor stays an honest measure of the estimate's noise after several iterations.
    gain_ref : ndarray, optional
        Measured gain reference for residual mode; every frame is corrected by it first.
    ref_orientation : {'divide', 'multiply'}
        How `gain_ref` is applied (see :func:`prepare_gain_ref`).
    offset : float
        Value subtracted from every frame first (ADU; the model is multiplicative).
    sigmas : sequence of float
        Sigma grid (lines), must contain only values >= 0.
    reference : {'smooth', 'single'}
        Smooth (Gaussian over neighbouring lines) or single-reference midway equalisation.
    backend : {'numba', 'numpy'}
        Kernels to use.
    electrons_per_adu : float
        Conversion factor for the counting noise floor (1 for counting data).
    read_noise_e : float
        Read noise per frame in electrons, for the counting noise floor.
    fields : {'same', 'independent'}
        'independent': the frames show independent fields (several movies, a moving specimen);
        the pooled mean of the frames is kept too and supplies the low spatial frequencies
        the blind estimate cannot see (:mod:`camcorr.gain.scales`).  'same' (default): blind
        estimate only.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> gain = np.ones((32, 32)); gain[:, 10] = 1.1          # one column amplifier 10 % high
    >>> acc = GainAccumulator(sigmas=(0.0, 1.0))
    >>> for _ in range(20):
    ...     _ = acc.add(rng.poisson(200.0, (32, 32)) * gain)
    >>> result = acc.result()
    >>> round(float(np.median(result.gain[:, 10] / result.gain[:, 9])), 1)
    1.1
    """

    def __init__(self, shape=None, *, prior_gain=None, gain_ref=None, ref_orientation="divide",
                 offset: float = 0.0, sigmas: Sequence[float] = DEFAULT_SIGMAS,
                 reference: str = "smooth", backend: str = "numba",
                 electrons_per_adu: float = 1.0, read_noise_e: float = 0.0,
                 fields: str = DEFAULT_FIELDS):
        self.sigmas = _check_sigmas(sigmas)
        self.fields = check_fields(fields)
        if reference not in REFERENCES:
            raise CamcorrError("unknown reference mode", argument="reference",
                               expected="'smooth' or 'single'", received=repr(reference))
        if backend not in BACKENDS:
            raise CamcorrError("unknown backend", argument="backend",
                               expected="'numba' or 'numpy'", received=repr(backend))
        for name, value in (("offset", offset), ("electrons_per_adu", electrons_per_adu),
                            ("read_noise_e", read_noise_e)):
            _check_number(value, name)
        self.reference = reference
        self.backend = backend
        self.offset = float(offset)
        self.electrons_per_adu = float(electrons_per_adu)
        self.read_noise_e = float(read_noise_e)
        self.ref_orientation = ref_orientation
        self._raw_ref = None if gain_ref is None else np.asarray(gain_ref)
        self.ref = None
        self.prior = None
        self._raw_prior = None if prior_gain is None else np.asarray(prior_gain)
        self.shape = None
        self.n_frames = 0
        self.num = None      # (2, Y, X) float64: sum of corrected frames, even / odd frames
        self.den = None      # (2, Y, X) float64: sum of their SME
        self.pooled = None   # (4, Y, X) float64: sums of frames / their mean, frames i mod 4
        self.pooled_n = np.zeros(N_GROUPS, dtype=np.int64)
        # (2, X) and (2, Y) float64: sums over the frames of the DCT coefficients of their column
        # (row) profiles and of their squares (the profiles' frame-to-frame scatter)
        self.profile_col = None
        self.profile_row = None
        self.sigma_counts = np.zeros((2, len(self.sigmas)), dtype=np.int64)
        self._work = _Workspace()   # one frame's temporaries, reused for every frame
        if shape is not None:
            self._init(tuple(int(s) for s in shape))

    # -- state ------------------------------------------------------------------------------
    def _init(self, shape):
        self.shape = shape
        if self._raw_ref is not None:
            self.ref = prepare_gain_ref(self._raw_ref, shape, orientation=self.ref_orientation)
            self.ref32 = self.ref.astype(np.float32)
        else:
            prepare_gain_ref(np.ones((1, 1)), orientation=self.ref_orientation)  # check the name
        if self._raw_prior is not None:
            p = np.asarray(self._raw_prior, dtype=np.float64)
            check_ndim(p, (2, 3), "prior_gain")
            check_finite(p, "prior_gain")
            if p.ndim == 2:
                p = np.stack([p, p])
            if p.shape != (2,) + shape:
                raise CamcorrError("prior gain shape differs from the frames",
                                   argument="prior_gain",
                                   expected=f"shape {shape} (or (2,) + shape: even/odd frames)",
                                   received=f"shape {p.shape}")
            if np.any(p < 0) or not np.all(p.mean(axis=(1, 2)) > 0):
                raise CamcorrError("prior gain must be >= 0 with a positive mean",
                                   argument="prior_gain", expected="a gain image >= 0",
                                   received=f"min {p.min():g}")
            self.prior = (p / p.mean(axis=(1, 2), keepdims=True)).astype(np.float32)
        zeros = K.zeros if self.backend == "numba" else K.zeros_numpy   # parallel first touch
        self.num = zeros((2,) + shape)
        self.den = zeros((2,) + shape)
        if self.fields == "independent":
            self.pooled = zeros((N_GROUPS,) + shape)
            self.profile_col = np.zeros((2, shape[1]), dtype=np.float64)
            self.profile_row = np.zeros((2, shape[0]), dtype=np.float64)

    def state(self) -> dict:
        """The accumulated state as a dict of numpy arrays (mergeable with :meth:`merge`)."""
        state = {"num": self.num, "den": self.den, "n_frames": np.array(self.n_frames),
                 "sigma_counts": self.sigma_counts}
        if self.pooled is not None:
            state.update(pooled=self.pooled, pooled_n=self.pooled_n,
                         profile_col=self.profile_col, profile_row=self.profile_row)
        return state

    def load_state(self, state: dict) -> "GainAccumulator":
        """Restore a state produced by :meth:`state` (same settings); returns self."""
        num = np.asarray(state["num"], dtype=np.float64)
        if self.shape is None:
            self._init(tuple(num.shape[1:]))
        self.num = num.copy()
        self.den = np.asarray(state["den"], dtype=np.float64).copy()
        self.n_frames = int(state["n_frames"])
        self._cache = None
        self.sigma_counts = np.asarray(state["sigma_counts"], dtype=np.int64).copy()
        if self.fields == "independent":
            if "pooled" not in state:
                raise CamcorrError("state without the pooled mean", argument="state",
                                   expected="a state saved with fields='independent'",
                                   received="a state saved with fields='same'")
            self.pooled = np.asarray(state["pooled"], dtype=np.float64).copy()
            self.pooled_n = np.asarray(state["pooled_n"], dtype=np.int64).copy()
            if "profile_col" not in state:
                raise CamcorrError("state without the profile statistics", argument="state",
                                   expected="a state saved by this version of camcorr with "
                                            "fields='independent'",
                                   received="a state of an older version",
                                   fix="Re-run the estimation from the frames")
            self.profile_col = np.asarray(state["profile_col"], dtype=np.float64).copy()
            self.profile_row = np.asarray(state["profile_row"], dtype=np.float64).copy()
        return self

    def merge(self, other: "GainAccumulator") -> "GainAccumulator":
        """Add the frames accumulated by `other` (same settings and prior); returns self."""
        if other.n_frames == 0:
            return self
        if self.shape is None:
            self._init(other.shape)
        if other.shape != self.shape:
            raise CamcorrError("accumulators of different frame shapes", argument="other",
                               expected=f"shape {self.shape}", received=f"shape {other.shape}")
        self.num += other.num
        self.den += other.den
        if self.pooled is not None:
            if other.pooled is None:
                raise CamcorrError("accumulators of different fields settings",
                                   argument="other", expected="fields='independent'",
                                   received="fields='same'")
            self.pooled += other.pooled
            self.pooled_n += other.pooled_n
            self.profile_col += other.profile_col
            self.profile_row += other.profile_row
        self._cache = None
        self.n_frames += other.n_frames
        self.sigma_counts += other.sigma_counts
        return self

    # -- frames -----------------------------------------------------------------------------
    def add(self, frames, *, argument: str = "frames") -> "GainAccumulator":
        """Add one frame (Y, X) or a block of frames (N, Y, X); returns self.

        Raises
        ------
        CamcorrError
            Wrong dimensions or shape, NaN/inf or negative values, a constant frame.
        """
        block = check_frame_block(frames, argument, shape=self.shape, max_ndim=3, min_size=2)
        block = native_byte_order(block)  # e.g. big-endian TIFFs as ImageJ writes them
        if self.shape is None:
            self._init(tuple(block.shape[1:]))
        for frame in block:
            self._add_one(frame, argument)
        return self

    def _add_one(self, frame, argument):
        index = self.n_frames
        numba_backend = self.backend == "numba"
        stats = K.frame_stats if numba_backend else K.frame_stats_numpy
        fmin, fmax, n_bad, whole = stats(frame)
        if n_bad:
            check_finite(frame, f"{argument} (frame {index})")
        if fmin < 0:
            raise CamcorrError("negative values", argument=f"{argument} (frame {index})",
                               expected="intensities >= 0 (recorded = ideal x gain)",
                               received=f"minimum {fmin:g}",
                               fix="Give raw data and its camera offset (offset=...), or clip "
                                   "negative values of offset-subtracted data to 0")
        if fmax == fmin:
            raise CamcorrError("constant frame: no histogram to equalise",
                               argument=f"{argument} (frame {index})",
                               expected="frames with varying pixel values",
                               received=f"every pixel = {fmin:g}",
                               fix="Remove blank or saturated frames from the movie")
        # float32(frame) - float32(offset), in one parallel pass into a reused buffer
        if numba_backend:
            f = K.to_float32(frame, self.offset, out=self._work.get("frame", self.shape))
        else:
            f = K.to_float32_numpy(frame, self.offset)
        rec = f if self.ref is None else (f / self.ref32)
        half = index % 2
        ideal = rec
        if self.prior is not None:
            prior = self.prior[half]
            with np.errstate(divide="ignore", invalid="ignore"):
                ideal = np.where(prior > 0, rec / prior, np.float32(0)).astype(np.float32,
                                                                              copy=False)
        keys = scale = ties = None
        if (ideal is not f) and whole:
            # Quantised data (integer ADU or counts): pixels are ranked by their ideal value,
            # but runs of pixels *recorded* equal stay one tie group (mid-rank), so a division
            # cannot invent an order among them (with a gain estimated from the data, that
            # order is the estimate's own noise and feeds back).  The external reference is
            # kept in proportion within a tie group (independent information; otherwise the
            # residual of an exact reference would follow the reference).
            keys = ideal
            ties = f
            scale = rec if self.ref is not None else None
        # counting-like data divided by a gain estimated from themselves: see _sme_parts
        few = bool(whole and (fmax - fmin) < FEW_LEVELS and self.prior is not None)
        e, _, s_col, s_row = _sme_parts(ideal, self.sigmas, self.reference, self.backend,
                                        keys, scale, ties, few_levels=few, work=self._work)
        add = K.accumulate_frame if self.backend == "numba" else K.accumulate_frame_numpy
        add(self.num[half], self.den[half], rec, e)
        if self.pooled is not None:
            level = float(np.mean(rec, dtype=np.float64))
            if level > 0:
                group = index % N_GROUPS
                normalised = rec / np.float32(level)
                self.pooled[group] += normalised
                self.pooled_n[group] += 1
                col, row = profile_dct(normalised)
                self.profile_col += np.stack([col, col * col])
                self.profile_row += np.stack([row, row * row])
        self._cache = None
        if self.reference == "smooth":
            self.sigma_counts[0, self.sigmas.index(s_col)] += 1
            self.sigma_counts[1, self.sigmas.index(s_row)] += 1
        self.n_frames += 1

    # -- result -----------------------------------------------------------------------------
    def gain(self) -> np.ndarray:
        """``sum(recorded) / sum(SME)`` over all frames so far, mean 1 (float64)."""
        self._check_enough()
        return self._cached("gain", lambda: _ratio(self.num, self.den, self.backend))

    def half_gains(self) -> np.ndarray:
        """Gains from the even and the odd frames, shape (2, Y, X), each mean 1."""
        self._check_enough()

        def compute():
            out = np.empty(self.num.shape, dtype=np.float64)
            for k in range(2):
                _ratio(self.num[k:k + 1], self.den[k:k + 1], self.backend, out=out[k])
            return out
        return self._cached("halves", compute)

    def noise_floor_halfset(self) -> Optional[float]:
        """std((G_even - G_odd) / 2): the measured noise of :meth:`gain`."""
        if self.n_frames < 2:
            return None
        h = self.half_gains()
        return float(np.std(h[0] - h[1]) / 2.0)

    def _cached(self, key, compute):
        if getattr(self, "_cache", None) is None:
            self._cache = {}
        if key not in self._cache:
            # the frame temporaries are not needed for the result: freed before its arrays
            # are allocated, so these reuse memory the process has just touched instead of
            # fresh pages (page faults are most of the system time of an estimate; measured
            # at 4096^2: the result's wall time halved)
            self._work = _Workspace()
            self._cache[key] = compute()
        return self._cache[key]

    def dose_e_per_px(self) -> np.ndarray:
        """Total signal per pixel over the frames, in electrons (before any reference)."""
        if self.backend != "numba":
            return K.dose_total_numpy(self.num[0], self.num[1], self.ref, self.electrons_per_adu)
        # one parallel pass (the numpy twin's four passes were serial)
        return K.dose_total(self.num[0], self.num[1], self.ref, self.electrons_per_adu)

    def _check_enough(self):
        if self.n_frames < 2:
            raise CamcorrError("too few frames", argument="frames",
                               expected="at least 2 frames (a movie)",
                               received=f"{self.n_frames} frame(s)",
                               fix="Give the whole movie, or several movies of the same camera")

    def result(self, *, iterations: int = 1, converged: bool = False,
               changes: Optional[List[float]] = None) -> GainResult:
        """The gain, its report and diagnostics.

        Raises
        ------
        CamcorrError
            If fewer than 2 frames were added.
        """
        g, halves, scale_info = self.gain_all_scales()
        dose = self.dose_e_per_px()
        floor_c = counting_noise_floor(dose, read_noise_e=self.read_noise_e,
                                       n_frames=self.n_frames)
        # the reports' whole-image statistics are fused parallel numba passes (qc, heldout)
        floor = K.moments(halves[0], minus=halves[1])[1] / 2.0
        rep = gain_report(g, dose_e_per_px=dose, read_noise_e=self.read_noise_e,
                          n_frames=self.n_frames, noise_floor_halfset=floor)
        rep["fields"] = self.fields
        rep["scales"] = scale_info
        rep["heldout"] = heldout_report(g, halves, n_even=(self.n_frames + 1) // 2,
                                        n_odd=self.n_frames // 2,
                                        noise_floor_counting=None if not math.isfinite(floor_c)
                                        else floor_c)
        if "missed_std" in scale_info:
            _limit(scale_info, K.moments(g)[1],
                   scale_info.get("error_std", rep["heldout"]["error_std"]))
        total = None
        if self.ref is not None:
            total = g * self.ref
            total = (total / total.mean()).astype(np.float32)
        rep.update({"n_frames": int(self.n_frames),
                    "mode": "residual" if self.ref is not None else "blind",
                    "reference": self.reference, "iterations": int(iterations),
                    "converged": bool(converged),
                    "sigma_grid": [float(s) for s in self.sigmas],
                    "sigma_counts_col": [int(c) for c in self.sigma_counts[0]],
                    "sigma_counts_row": [int(c) for c in self.sigma_counts[1]]})
        half32 = np.empty(np.shape(halves), dtype=np.float32)
        for k in range(half32.shape[0]):
            K.to_float32(halves[k], out=half32[k])     # parallel casts
        return GainResult(gain=K.to_float32(g), report=rep, n_frames=self.n_frames,
                          iterations=iterations, converged=converged, changes=list(changes or []),
                          sigma_grid=self.sigmas, sigma_counts_col=self.sigma_counts[0].copy(),
                          sigma_counts_row=self.sigma_counts[1].copy(),
                          noise_floor_halfset=floor, total_gain=total,
                          mode="residual" if self.ref is not None else "blind",
                          fields=self.fields, half_gains=half32)

    def gain_all_scales(self):
        """The gain, its even/odd half estimates and what was done at which spatial scale.

        With ``fields='independent'`` (and at least 4 frames) the blind estimate is combined
        with the pooled mean (:func:`camcorr.gain.scales.combine_scales`); otherwise it is the
        blind estimate, and ``info`` gives the periods it cannot see
        (:func:`camcorr.gain.scales.blind_spot`).

        Returns
        -------
        gain : ndarray (Y, X), halves : ndarray (2, Y, X), info : dict
        """
        self._check_enough()
        g, halves = self.gain(), self.half_gains()
        spot_col = blind_spot(self.sigmas, self.sigma_counts[0]) if self.reference == "smooth" \
            else None
        spot_row = blind_spot(self.sigmas, self.sigma_counts[1]) if self.reference == "smooth" \
            else None
        info = {"method": "blind", "blind_period_col": spot_col, "blind_period_row": spot_row}
        if self.fields == "independent" and self.pooled is not None \
                and int(self.pooled_n.sum()) >= N_GROUPS:
            def compute():
                resp = [None, None] if self.reference != "smooth" else [
                    blind_response(self.sigmas, self.sigma_counts[a],
                                   np.arange(n) / (2.0 * n))
                    for a, n in ((0, g.shape[1]), (1, g.shape[0]))]
                return combine_scales(g, halves, self.pooled, self.pooled_n, self.profile_col,
                                      self.profile_row, blind_period_col=spot_col,
                                      blind_period_row=spot_row, blind_response_col=resp[0],
                                      blind_response_row=resp[1])
            g, halves, extra = self._cached("scales", compute)
            info.update(extra)
            info["method"] = "blind + pooled mean"
            info["note"] = ("independent fields: the pooled mean of the frames supplies the low "
                            "spatial frequencies, weighted against the blind estimate per "
                            "frequency by their estimated errors (pooled mean used for periods "
                            f"above: columns {_scale_text(extra['crossover_col'])}, rows "
                            f"{_scale_text(extra['crossover_row'])}, 2D "
                            f"{_scale_text(extra['crossover_2d'])}); any illumination that is "
                            "the same in every frame is counted as gain")
        else:
            parts = []
            if spot_col is not None:
                parts.append(f"column structure with periods above ~{spot_col:.0f} columns")
            if spot_row is not None:
                parts.append(f"row structure with periods above ~{spot_row:.0f} rows")
            info["note"] = ("blind estimate (one field): recovers less than half of "
                            + (" and of ".join(parts) if parts else "smooth structure")
                            + ", and nothing of a gain smooth in both directions; with frames of "
                              "independent fields use fields='independent'")
        return g, halves, info


def _limit(info: dict, std: float, error_std: float) -> None:
    """Add the R^2 to expect against the true gain and the ``noise_limited`` flag to `info`.

    ``r2_expected`` is the R^2 at the expected error power; ``r2_expected_low`` the R^2 with
    the error power one standard deviation (``error_power_sd``, see
    :func:`camcorr.gain.scales.combine_scales`) above it.  The flag is raised when
    ``r2_expected_low`` is below :data:`~camcorr.gain.scales.R2_LIMITED`: the target may be
    missed by chance.
    """
    r2 = expected_r2(std, error_std, info["missed_std"])
    low = expected_r2(std, error_std, math.sqrt(info["missed_std"] ** 2
                                                + info.get("error_power_sd", 0.0)))
    info["r2_expected"] = r2
    info["r2_expected_low"] = low
    info["noise_limited"] = bool(low < R2_LIMITED)
    if info["noise_limited"]:
        info["note"] += (f". NOISE-LIMITED: R^2 against the true gain expected about {r2:.2f} "
                         f"(one standard deviation lower: {low:.2f}, below {R2_LIMITED:g}); "
                         f"the specimen's pooled residual (std "
                         f"{info['specimen_residual_std']:.4f} passed into the estimate, gain "
                         f"structure of std {info['missed_std']:.4f} left below the noise) and "
                         f"the estimate's noise (std {error_std:.4f}) limit it, not the method: "
                         "more frames (variance falls as 1/N) or a flatter specimen help")


def _scale_text(s) -> str:
    return "none" if s is None else f"{s:.3g} px"


def _ratio(num, den, backend="numba", out=None) -> np.ndarray:
    """sum(num) / sum(den) over the first axis (1 where den <= 0), normalised to mean 1."""
    if backend == "numba":
        g = K.ratio(num, den, out=out)   # one parallel pass, no temporaries
    else:
        g = K.ratio_numpy(num, den)
        if out is not None:
            out[...] = g
            g = out
    m = g.mean()
    if m > 0:
        g /= m
    return g


def _check_number(value, argument):
    """Raise unless `value` is a finite number within ``LIMITS[argument]``."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = math.nan
    if not math.isfinite(v):
        raise CamcorrError("invalid value", argument=argument, expected="a finite number",
                           received=repr(value))
    LIMITS[argument].check(v, argument)


def parse_sigmas(text, argument: str = "sigmas") -> Tuple[float, ...]:
    """A sigma grid from ``'0,0.5,1'``, ``'0 0.5 1'`` or a sequence of numbers, in given order.

    Parameters
    ----------
    text : str or sequence of float
        Comma-, semicolon- or space-separated numbers, or numbers.
    argument : str
        How the front end names the grid in error messages.

    Returns
    -------
    tuple of float

    Raises
    ------
    CamcorrError
        Not numbers, an empty grid, or a value outside ``LIMITS['sigmas']`` ([0, 64] lines).

    Examples
    --------
    >>> parse_sigmas("0, 0.5 1")
    (0.0, 0.5, 1.0)
    >>> parse_sigmas([2, 1])
    (2.0, 1.0)
    """
    if isinstance(text, str):
        tokens = [t for t in text.replace(";", ",").replace(" ", ",").split(",") if t.strip()]
    else:
        tokens = list(text)
    try:
        values = tuple(float(t) for t in tokens)
    except (TypeError, ValueError):
        raise CamcorrError("not a list of numbers", argument=argument,
                           expected="numbers like 0,0.5,1,1.5,2,2.5,3",
                           received=describe(text)) from None
    limits = LIMITS["sigmas"]
    if not values or not all(limits.contains(v) for v in values):
        raise CamcorrError("invalid sigma grid", argument=argument,
                           expected=f"one or more numbers in {limits.interval()} (lines)",
                           received=repr(text))
    return values


def _check_sigmas(sigmas) -> Tuple[float, ...]:
    return tuple(sorted(set(parse_sigmas(sigmas, "sigmas"))))


# ----------------------------------------------------------------------------------------------
# functional interface with iterations
# ----------------------------------------------------------------------------------------------

FramesLike = Union[np.ndarray, Iterable, Callable[[], Iterable]]


def _frame_source(frames) -> Tuple[Callable[[], Iterable], bool]:
    """(factory returning a fresh iterable of frames/blocks, re-iterable?)."""
    if callable(frames):
        return frames, True
    if isinstance(frames, np.ndarray) or hasattr(frames, "__array__") and hasattr(frames, "shape"):
        arr = frames
        if np.ndim(arr) == 2:
            return (lambda: [arr]), True
        return (lambda: [arr]), True
    if isinstance(frames, (list, tuple)):
        return (lambda: frames), True
    if isinstance(frames, Iterator) or hasattr(frames, "__next__"):
        return (lambda: frames), False
    if isinstance(frames, Iterable):
        return (lambda: frames), True
    raise CamcorrError("not frames", argument="frames",
                       expected="an array (N, Y, X), a list of frames, an iterable of frames or "
                                "blocks, or a function returning one",
                       received=describe(frames))


def _read_ahead_allowed() -> bool:
    """More than one numba thread, on a threading layer that allows parallel kernels launched
    from two threads at once (OpenMP, TBB; not numba's 'workqueue', which stops the process if
    a frame source runs parallel kernels itself while the estimate's kernels run)."""
    if numba.get_num_threads() < 2:
        return False
    try:
        layer = numba.threading_layer()
    except ValueError:           # no parallel kernel has run yet in this process: start one
        K.zeros((1,))
        layer = numba.threading_layer()
    return layer != "workqueue"


def _read_ahead(blocks: Iterable, enabled: bool = True) -> Iterator:
    """The items of `blocks`, the next one read in a background thread while the caller
    processes the current one (one item ahead, so one extra block in memory).

    Reading a frame from a file (decoding, copying, page faults) is serial work; overlapped
    with the parallel kernels it no longer adds to the wall time with two or more threads.
    Exceptions of the reader are raised here, in the caller's thread, at the item they concern;
    if the caller stops early, the read in flight is finished before this returns.
    """
    if not enabled:
        yield from blocks
        return
    from concurrent.futures import ThreadPoolExecutor

    it = iter(blocks)
    end = object()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="camcorr-read-ahead") as pool:
        pending = pool.submit(next, it, end)
        while True:
            item = pending.result()
            if item is end:
                return
            pending = pool.submit(next, it, end)
            yield item


def estimate_gain(frames: FramesLike, *, gain_ref=None, ref_orientation: str = "divide",
                  offset: float = 0.0, sigmas: Sequence[float] = DEFAULT_SIGMAS,
                  reference: str = "smooth", iterations: int = 1, tolerance: float = 1e-3,
                  backend: str = "numba", electrons_per_adu: float = 1.0,
                  read_noise_e: float = 0.0, progress: Optional[Callable[[int, int], None]] = None,
                  fields: str = DEFAULT_FIELDS) -> GainResult:
    """Estimate the camera gain (or the residual gain left by a reference) from movie frames.

    Parameters
    ----------
    frames : ndarray (N, Y, X), sequence/iterable of frames (Y, X) or blocks (n, Y, X), callable
        The movie(s), in ADU.  Frames are streamed: one frame (block) is in memory at a time, two
        with more than one numba thread (the next one is read while the current one is
        processed).
        More than one iteration re-reads the frames, so a one-shot iterator (a generator) allows
        only ``iterations=1``; pass a function returning a fresh iterable instead.
    gain_ref : ndarray (Y, X), optional
        Measured gain reference: *residual mode*.  Every frame is corrected by it in every
        iteration and the gain left over is estimated (flat if the reference is right).
    ref_orientation : {'divide', 'multiply'}
        'divide' (default): corrected = frame / gain_ref (camcorr's and Sorzano's orientation,
        recorded = ideal x gain).  'multiply': corrected = frame x gain_ref (RELION, MotionCor2,
        SerialEM gain references).
    offset : float
        Camera offset in ADU, subtracted first (integrating cameras).
    sigmas : sequence of float
        Sigma grid for the choice by minimal total variation (default 0 to 3 step 0.5; 0 is a real
        candidate).
    reference : {'smooth', 'single'}
        Smooth midway equalisation over neighbouring lines (default) or the single-reference
        (midway) variant, which also sees slow column/row trends but takes large specimen
        features for gain.
    iterations : int
        Maximum number of iterations (Eq. 7); each one is a pass over the frames.  One recovers
        the full amplitude (default); 2-3 sharpen integrating-camera estimates slightly but fit
        the shot noise of counting movies (their residual std grows about 1.6x).
    tolerance : float
        Stop when the RMS change of the mean-1 gain is below this.
    backend : {'numba', 'numpy'}
        Parallel numba kernels (default) or the plain numpy reference.
    electrons_per_adu : float
        Electrons per ADU (1 for counting data), for the counting noise floor of the report.
    read_noise_e : float
        Read noise per frame in electrons (integrating cameras), for the noise floor.
    progress : callable(iteration, frames_done), optional
        Called after every frame.
    fields : {'same', 'independent'}
        What the frames show.  'same' (default): one field of view (a single exposure's movie);
        the blind estimate, which cannot see gain structure that is smooth over a few lines
        (the report's ``scales`` says which periods).  'independent': independent fields
        (several movies, frames of a moving specimen, frames pooled from many exposures); the
        low spatial frequencies then come from the pooled mean of the frames, weighted against
        the blind estimate at every spatial frequency by their errors estimated from the frames
        (:mod:`camcorr.gain.scales`; the report's ``scales.r2_expected`` and ``noise_limited``
        say how far the specimen's pooled residual limits the result).  Illumination that is the same in every frame counts as
        gain then.

    Returns
    -------
    GainResult
        ``gain`` (recorded = ideal x gain, mean 1), ``report`` and diagnostics.

    Raises
    ------
    CamcorrError
        Fewer than 2 frames, a constant frame, NaN/inf or negative values, frames of different
        shapes, a gain reference of another shape or with pixels <= 0, invalid settings.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> gain = np.ones((32, 32))
    >>> gain[:, 10] = 1.2  # one column amplifies 20 % more
    >>> frames = [rng.poisson(500, (32, 32)) * gain for _ in range(40)]
    >>> r = estimate_gain(frames, sigmas=(1.0,), backend="numpy")
    >>> r.gain.shape, r.n_frames, round(float(r.gain[:, 10].mean() / np.median(r.gain)), 2)
    ((32, 32), 40, 1.2)
    """
    try:
        iterations = int(iterations)
    except (TypeError, ValueError):
        iterations = -1
    if iterations < 1:
        raise CamcorrError("invalid number of iterations", argument="iterations",
                           expected="an integer >= 1", received=repr(iterations))
    LIMITS["iterations"].check(iterations, "iterations")
    if not isinstance(tolerance, (int, float)):
        raise CamcorrError("invalid tolerance", argument="tolerance",
                           expected="a number >= 0", received=repr(tolerance))
    LIMITS["tolerance"].check(tolerance, "tolerance")
    factory, reiterable = _frame_source(frames)
    if not reiterable and iterations > 1:
        raise CamcorrError("frames can be read only once", argument="frames",
                           expected="an array, a list or a function returning a fresh iterable "
                                    f"of frames for {iterations} iterations",
                           received="a one-shot iterator (e.g. a generator)",
                           fix="Pass iterations=1, or a function (lambda: iter_planes(paths))")
    settings = dict(gain_ref=gain_ref, ref_orientation=ref_orientation, offset=offset,
                    sigmas=sigmas, reference=reference, backend=backend,
                    electrons_per_adu=electrons_per_adu, read_noise_e=read_noise_e,
                    fields=check_fields(fields))
    prior = previous = None
    changes: List[float] = []
    acc = None
    converged = False
    for it in range(iterations):
        acc = GainAccumulator(prior_gain=prior, **settings)
        source = factory()
        # a one-block read-ahead where frames are read while the kernels run (not for frames
        # already in memory, not with one thread: then reading would be a second thread)
        ahead = (backend == "numba" and not isinstance(source, (list, tuple, np.ndarray))
                 and _read_ahead_allowed())
        for block in _read_ahead(source, ahead):
            acc.add(block)
            if progress is not None:
                progress(it, acc.n_frames)
        g = acc.gain()
        # G(n+1) = sum rec / sum SME(rec / G(n)), iterated per half-set; compare with G(n)
        change = (K.rms_diff if backend == "numba" else K.rms_diff_numpy)(g, previous)
        changes.append(change)
        previous = g
        halves = acc.half_gains()
        prior = halves
        if change < tolerance:
            converged = True
            break
    return acc.result(iterations=len(changes), converged=converged, changes=changes)
