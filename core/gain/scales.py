"""Gain at all spatial scales: the blind estimate's high frequencies, a pooled mean's low ones.

Why.  Smooth midway equalisation (:mod:`camcorr.gain.estimate`) estimates every column's (row's)
gain relative to a Gaussian-weighted neighbourhood of a few lines: a per-column gain ``c_x``
comes out as ``c_x / (w * c)_x``, a high-pass of it.  Structure that is smooth over the
neighbourhood (a slow modulation across columns, readout-sector steps, vignetting) is lost
(:func:`blind_spot`).  When the frames show *independent fields* (several movies, a moving
specimen), the mean of many frames sees the gain at every scale, but with the specimen's
fluctuation as noise, which falls only as ``1/sqrt(N)``.  The two are complementary.

How (:func:`combine_scales`).  With ``S`` the blind estimate and ``P`` the pooled mean of the
frames (each frame divided by its mean), ``L = log(P / S)`` holds what the blind estimate missed
(and its own errors), plus the specimen's pooled residual.  ``L`` is taken to the discrete cosine
(DCT-II) domain, where its coefficients fall in three parts: the first row (the column profile,
what is constant along the columns), the first column (the row profile) and the rest (2D).  At
every coefficient ``j`` the pooled mean and the blind estimate are weighted by their errors
(a Wiener filter, Wiener 1949): the correction is ``w_j L_j`` with

    w_j = A_j / (A_j + N_j),    A_j = max(0, smooth(L_j^2 - N_j))

``N_j`` the variance of the pooled mean's noise (specimen and shot noise) at ``j`` and ``A_j``
the power of the blind estimate's error there (the expected ``L_j^2`` is ``A_j + N_j``),
smoothed over neighbouring coefficients (9 x 9 in 2D, where thousands of
coefficients have a pooled-mean noise many times the blind estimate's error, the smoothed excess
must also exceed 4 standard errors, so that chance excesses do not pass the specimen).  Along the
profiles (:func:`_profile_weights`) ``A_j`` follows from the blind estimate's response, which is
known: it sees a per-line gain ``c`` as ``c / (w * c)`` (``w`` the leave-one-out Gaussian
neighbourhood of the sigmas the frames chose), in the log domain a linear filter of response
``R_j = 1 - W(f_j)`` (:func:`blind_response`; measured against the truth on the DED-like
gains, averaged over bands of 3-16 frequencies, within 0.05).  Its error at ``j`` is
``(R_j - 1) G_j`` plus its noise, so

    A_j = (1 - R_j)^2 Gamma_j + sigma_j^2

with ``Gamma_j`` the gain's power at ``j``, fitted to the pooled mean's unbiased
``P_j^2 - N_j`` as a function that does not rise with frequency (isotonic regression by pooling
adjacent violators, Ayer et al. 1955; a detector's profile power rarely rises with frequency:
steps and slow modulations fall as 1/f^2, independent line factors are flat), and ``sigma_j^2``
the blind estimate's noise (its even/odd halves, smoothed over 5 coefficients).  The fit pools
all coefficients, so one chance excess of the pooled mean no longer sets the weights of a whole
band.  Where ``R_j >= RESPONSE_DECONVOLVE`` (0.8) the blind estimate's profile coefficient is
divided by ``R_j``: the leave-one-out neighbourhood's response overshoots at high frequencies
(``R`` up to 1.26 along the columns and 1.5 along the rows of the tests' frames), so the blind
estimate exaggerates fine line structure by that much.  Without a known response
(``reference='single'``) ``A_j`` is the smoothed excess ``L_j^2 - N_j`` (5 coefficients) and,
in the band the blind estimate cannot see (periods above :func:`blind_spot`), its envelope from
above.  So the crossover between the two is chosen by the data, per spatial frequency, where
the two disagree by more than the noise floor.  ``N_j`` comes from the frames themselves: for
the column and row profiles from the frame-to-frame scatter of every frame's profile (``N - 1``
degrees of freedom per coefficient; :func:`profile_dct`), for the 2D part from the scatter of
four interleaved groups of frames (pooled over 7 x 7 coefficients).

Shrinkage (:func:`_shrink`).  The combination ``F = log S + IDCT(w * L)`` (along the profiles
with ``S_j`` divided by ``R_j`` where that is at least 0.8) still carries the blind
estimate's pixel noise in its 2D part (a counting camera at 200 counts per pixel: several % per
pixel, against a true per-pixel gain scatter well under 1 %).  The same combination from the even
and from the odd frames has independent noise, so their difference measures ``F``'s noise power
per coefficient; every 2D coefficient is scaled by its Wiener factor ``v = max(0, 1 - noise /
power)`` (both averaged over 9 x 9 coefficients).  The gain is

    G = exp(IDCT(v * DCT(F))),  normalised to mean 1.

What it can reach.  The specimen's pooled residual at the low spatial frequencies has the same
form as a smooth gain, so no combination can take it apart: ``w_j`` only chooses the smaller of
two errors.  The expected error of the result is computed (``error_std``: along the profiles the
pooled mean's noise ``N`` through ``w`` and the blind estimate's, from its halves, through its
weight ``u``; the halves' noise through ``v`` in 2D) with the structure left out (``missed_std``:
along the profiles the bias ``(1 - u R - w)^2 Gamma``, in 2D ``(1 - w)^2 A`` below the band's
edges and the power the shrinkage removes),
and from them the R^2 to expect against the true gain, ``r2_expected`` (:func:`expected_r2`).
Each coefficient's error is one Gaussian degree of freedom, whose power scatters by sqrt(2) times
its expectation, and a few low-frequency coefficients dominate a profile's error: the scatter of
the total (``error_power_sd``) gives ``r2_expected_low``, the R^2 with the error power one
standard deviation above its expectation; below :data:`R2_LIMITED` the report flags
``noise_limited`` (the target may be missed; the specimen's pooled residual, not the method,
limits the low frequencies: more frames, as 1/N in variance, or a flatter specimen help).
Measured on the DED-like gains of tests/test_gain_scales.py (seeds 0-9, 10-30 % specimen
contrast, 20 frames): ``r2_expected`` within -0.036 to +0.043 of the achieved R^2 except where
the pooled mean's profile noise happens to exceed its scatter by several standard errors (one
of 60 cases, 0.69 achieved, 0.88 expected; flagged); no case below 0.89 unflagged.

When not.  With frames of one field (the same specimen in every frame: a single exposure's
movie), the pooled mean contains the specimen, which would be taken for gain; only the blind
estimate is used and the report says which periods it cannot see (:func:`blind_spot`).  Frames
that share specimen structure (a slow drift) make the frame-to-frame scatter too small and the
specimen then passes as gain.  The pooled mean also contains any illumination that is the same
in every frame (the beam's or the light source's profile): with ``fields='independent'`` that
profile ends up in the gain, as it does in a flat-field.

References
----------
Sorzano, C.O.S. et al. (2018). Blind estimation of DED camera gain in Electron Microscopy.
J. Struct. Biol. 203(2), 90-93. doi:10.1016/j.jsb.2018.03.007
Wiener, N. (1949). Extrapolation, Interpolation, and Smoothing of Stationary Time Series. MIT
Press. doi:10.7551/mitpress/2946.001.0001
Ayer, M., Brunk, H.D., Ewing, G.M., Reid, W.T. & Silverman, E. (1955). An empirical
distribution function for sampling with incomplete information. Ann. Math. Statist. 26(4),
641-647. doi:10.1214/aoms/1177728423
Ahmed, N., Natarajan, T. & Rao, K.R. (1974). Discrete cosine transform. IEEE Trans. Comput.
C-23(1), 90-93. doi:10.1109/T-C.1974.223784
"""
from __future__ import annotations

import math
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
from scipy.fft import dct, dctn, idctn
from scipy.ndimage import uniform_filter, uniform_filter1d

from ..errors import CamcorrError

__all__ = ["FIELDS", "DEFAULT_FIELDS", "N_GROUPS", "R2_LIMITED", "PROFILE_SMOOTH", "AREA_SMOOTH",
           "AREA_NOISE_POOL", "combine_scales", "expected_r2", "pooled_mean", "profile_dct",
           "blind_response", "blind_spot"]

#: How the frames relate: 'same' field in every frame, or 'independent' fields.
FIELDS = ("same", "independent")
DEFAULT_FIELDS = "same"
#: Interleaved frame groups of the pooled mean (frame i goes to group i mod 4; groups 0, 2 are
#: the even frames, 1, 3 the odd ones).
N_GROUPS = 4
#: Coefficients over which the blind estimate's error power is smoothed: profiles (1D) ...
PROFILE_SMOOTH = 5
#: ... and the 2D part (9 x 9).
AREA_SMOOTH = 9
#: Coefficients (7 x 7) over which the 2D noise variance (3 degrees of freedom each) is pooled.
AREA_NOISE_POOL = 7
#: Standard errors by which the smoothed excess power must exceed 0 to count (see _wiener), for
#: the profiles and for the 2D part (thousands of coefficients where the pooled mean's noise is
#: many times the blind estimate's error: chance excesses must not pass it).
PROFILE_SIGNIFICANCE = 0.0
AREA_SIGNIFICANCE = 4.0
#: Coefficients (9 x 9) over which the combined estimate's 2D power and its noise power are
#: averaged for its Wiener factor (:func:`_shrink`).
SHRINK_SMOOTH = 9
#: Response of the blind estimate (:func:`blind_response`) above which its profile coefficients
#: are divided by it (:func:`_profile_weights`).
RESPONSE_DECONVOLVE = 0.8
#: Expected R^2 against the true gain below which the report flags ``noise_limited``.
R2_LIMITED = 0.9


def check_fields(fields, argument: str = "fields") -> str:
    """Return `fields` if it is one of :data:`FIELDS`; raise :class:`CamcorrError` otherwise."""
    if fields not in FIELDS:
        raise CamcorrError("unknown kind of fields", argument=argument,
                           expected="'same' (one field of view in every frame) or "
                                    "'independent' (several movies, a moving specimen)",
                           received=repr(fields))
    return fields


def profile_dct(normalised: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """DCT-II (orthonormal) of a frame's column profile and of its row profile.

    Parameters
    ----------
    normalised : ndarray, shape (Y, X)
        The frame divided by its mean.

    Returns
    -------
    col : ndarray, float64, shape (X,)
        DCT of the mean over rows (the column profile).
    row : ndarray, float64, shape (Y,)
        DCT of the mean over columns (the row profile).
    """
    a = np.asarray(normalised)
    return (dct(np.mean(a, axis=0, dtype=np.float64), norm="ortho"),
            dct(np.mean(a, axis=1, dtype=np.float64), norm="ortho"))


def pooled_mean(sums: np.ndarray, counts: Sequence[int]) -> Tuple[np.ndarray, np.ndarray]:
    """Pooled mean of the frames and the means of the even and odd frames.

    Parameters
    ----------
    sums : ndarray, shape (4, Y, X)
        Sums of the frames (each divided by its mean) of the groups ``i mod 4``.
    counts : sequence of 4 int
        Frames per group.

    Returns
    -------
    pooled : ndarray, shape (Y, X)
        Mean of all frames.
    halves : ndarray, shape (2, Y, X)
        Means of the even (groups 0, 2) and of the odd frames (groups 1, 3).
    """
    s = np.asarray(sums, dtype=np.float64)
    n = np.asarray(counts, dtype=np.float64)
    halves = np.empty((2,) + s.shape[1:], dtype=np.float64)
    for h in range(2):
        np.add(s[h], s[h + 2], out=halves[h])
        halves[h] /= max(n[h] + n[h + 2], 1)
    pooled = s.sum(axis=0)
    pooled /= max(n.sum(), 1)
    return pooled, halves


def _workers() -> int:
    """Threads of the DCTs: camcorr's thread count (numba's; 1 keeps a 1-thread run honest)."""
    import numba
    return max(1, int(numba.get_num_threads()))


def _dctn(a: np.ndarray, overwrite: bool = False) -> np.ndarray:
    """Orthonormal 2D DCT-II on camcorr's threads."""
    return dctn(a, norm="ortho", workers=_workers(), overwrite_x=overwrite)


def _idctn(a: np.ndarray, overwrite: bool = False) -> np.ndarray:
    """Inverse of :func:`_dctn`."""
    return idctn(a, norm="ortho", workers=_workers(), overwrite_x=overwrite)


def _norm(a: np.ndarray) -> np.ndarray:
    m = float(np.mean(a))
    return a / m if m > 0 else np.ones_like(a)


def _norm_inplace(a: np.ndarray) -> np.ndarray:
    """:func:`_norm` writing into `a` (a float64 temporary)."""
    m = float(np.mean(a))
    if m > 0:
        np.divide(a, m, out=a)
    else:
        a.fill(1.0)
    return a


def _log_ratio_normed(a, b):
    """log(a / b) of `a`, `b` normalised to mean 1 (:func:`_norm`), 0 where either is not
    positive; written into `a` (a temporary)."""
    ok = (a > 0) & (b > 0)
    out = a
    np.divide(a, b, out=out, where=ok)
    np.copyto(out, 1.0, where=~ok)
    del ok
    np.clip(out, 1e-300, None, out=out)  # a ratio that underflows stays finite
    np.log(out, out=out)
    return out


def _log_normed(a):
    """log(a) of `a` normalised to mean 1 (:func:`_norm`), 0 where `a` is not positive; written
    into `a` (a temporary)."""
    pos = a > 0
    np.log(a, out=a, where=pos)
    np.copyto(a, 0.0, where=~pos)
    return a


def _shrink(F: np.ndarray, Fh: np.ndarray):
    """Wiener factors of the combined estimate's 2D part against its own noise (its halves').

    ``F`` (DCT of the log of the combined estimate) holds the gain plus noise: the blind
    estimate's (the pixels' shot noise, the specimen's texture the equalisation leaves) and the
    pooled mean's where it is used.  The two halves' estimates (even and odd frames, combined
    with the same weights) have independent noise, so ``D = Fh_even - Fh_odd`` is pure noise and
    ``D^2 / 4`` estimates the noise power of ``F`` (each half has twice the whole's noise
    variance).  Every 2D coefficient (neither the column nor the row profile) is scaled by
    ``v = max(0, 1 - <D^2 / 4> / <F^2>)`` (``<.>`` the mean over 9 x 9 neighbouring
    coefficients, :data:`SHRINK_SMOOTH`), the Wiener factor of a signal of power
    ``<F^2> - <D^2 / 4>`` in noise of that power.  Where the pixels' shot noise dominates (a
    counting camera at 200 counts per pixel: 7 % per pixel, against a per-pixel gain scatter of
    well under 1 %) the pixel scatter is taken back towards the structured part of the gain
    (columns, rows, what the pooled mean adds); where the gain dominates, it is kept.  The
    profiles are not scaled: there the gain dominates (measured: scaling them too lowered R^2).

    Returns
    -------
    v : ndarray
        Factors in [0, 1] (1 on the profiles and at the DC term).
    signal : ndarray
        Estimated 2D signal power ``max(0, <F^2> - <D^2 / 4>)`` per coefficient, 0 elsewhere
        (what the factors leave out: ``shrunk_std``).
    """
    inner = (slice(1, None), slice(1, None))          # the 2D part; profiles kept apart
    noise = Fh[0][inner] - Fh[1][inner]
    noise *= noise
    noise *= 0.25
    mn = uniform_filter(noise, SHRINK_SMOOTH, mode="nearest")
    del noise
    power = F[inner] * F[inner]
    mp = uniform_filter(power, SHRINK_SMOOTH, mode="nearest")
    del power
    v = np.ones_like(F)
    vi = np.divide(mn, np.maximum(mp, 1e-300))
    np.subtract(1.0, vi, out=vi)
    np.clip(vi, 0.0, 1.0, out=vi)
    v[inner] = vi
    noise_2d = float(np.sum(vi * vi * mn))
    del vi
    signal = np.zeros_like(F)
    np.subtract(mp, mn, out=signal[inner])
    del mn, mp
    np.clip(signal, 0.0, None, out=signal)
    return v, signal, noise_2d


def _band_end(length: int, period: Optional[float]) -> int:
    """Number of DCT coefficients (from 0) of a profile with periods above `period` lines."""
    if period is None:
        return length
    return int(min(length, math.ceil(2.0 * length / period)))


def _mask_density(mask: np.ndarray, size: int) -> np.ndarray:
    """Box mean of `mask` (the denominator of :func:`_smooth_masked`)."""
    f = uniform_filter1d if mask.ndim == 1 else uniform_filter
    return f(mask.astype(np.float64), size, mode="nearest")


def _area_density(shape: Tuple[int, int], size: int) -> np.ndarray:
    """:func:`_mask_density` of the 2D part (all but the first row and column), separably.

    The box mean of a product of a row and a column mask is the product of their box means
    (equal to the 2D filter's to 1 ulp), one full-size pass instead of two filter passes.
    """
    r, c = np.ones(shape[0]), np.ones(shape[1])
    r[0] = c[0] = 0.0
    return (uniform_filter1d(r, size, mode="nearest")[:, None]
            * uniform_filter1d(c, size, mode="nearest")[None, :])


def _smooth_masked(x: np.ndarray, mask: np.ndarray, size: int,
                   den: Optional[np.ndarray] = None) -> np.ndarray:
    """Box mean of `x` over the elements where `mask` is True (normalised convolution).

    `den` is :func:`_mask_density` of `mask` if already computed.
    """
    f = uniform_filter1d if x.ndim == 1 else uniform_filter
    num = f(np.where(mask, x, 0.0), size, mode="nearest")
    if den is None:
        den = _mask_density(mask, size)
    out = np.zeros_like(num)
    np.divide(num, den, out=out, where=den > 1e-12)
    return out


def _wiener(power: np.ndarray, noise: np.ndarray, mask: np.ndarray, size: int,
            significance: float, den: Optional[np.ndarray] = None):
    """Weights of the pooled mean and the blind estimate's error power (see the module text).

    With ``a`` the blind estimate's error (power ``A``) and ``b`` the pooled mean's noise
    (variance ``N``), the error of ``S + w (P - S)`` is smallest at ``w = A / (A + N)``, and
    ``E[L^2] = A + N``.  ``A`` is estimated by the mean of ``power - noise`` over the ``m``
    neighbouring coefficients less `significance` times its standard error, ``N sqrt(2 / m)``
    (a coefficient's power is ``N`` times a chi-square variable of one degree of freedom where
    the two estimates agree), clipped at 0: where the two agree within their noise the blind
    estimate is kept.  `den` is :func:`_mask_density` of `mask` if already known.

    Returns
    -------
    w : ndarray
        Weights in [0, 1] (0 outside `mask`).
    a : ndarray
        Estimated error power of the blind estimate, ``A``.
    """
    m = float(size ** power.ndim)
    if den is None:
        den = _mask_density(mask, size)
    excess = _smooth_masked(power - noise, mask, size, den)
    d = np.clip(excess - significance * math.sqrt(2.0 / m) * _smooth_masked(noise, mask, size, den),
                0.0, None)
    del excess, den
    w = np.zeros_like(d)
    tot = d + noise
    np.divide(d, tot, out=w, where=tot > 0)
    w[~mask] = 0.0
    d[~mask] = 0.0
    return w, d



def _scale_profiles(F: np.ndarray, extra) -> None:
    """Multiply the column profile (first row) and the row profile (first column, from 1) of `F`
    by ``1 + extra``."""
    F[0, :] *= 1.0 + extra[0]
    F[1:, 0] *= 1.0 + extra[1][1:]


def _log_profiles_dct(a: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """DCT of the column and row profiles of ``log(a)`` (0 where ``a <= 0``), scaled as the
    first row and first column of the orthonormal 2D DCT of ``log(a)``.

    In row blocks of float32 logarithms summed in float64 (no full-size temporary; 0.07 s at
    4096^2 against 0.2-0.35 s in float64; the coefficients agree within 1e-7, a few 1e-6 of their
    typical size, and only feed the profile weights).
    """
    ny, nx = a.shape
    col = np.zeros(nx)
    row = np.zeros(ny)
    step = max(1, (1 << 22) // max(nx, 1))
    work = np.empty((min(step, ny), nx), dtype=np.float32)
    for y0 in range(0, ny, step):
        blk = a[y0:y0 + step]
        lg = work[:blk.shape[0]]
        np.copyto(lg, blk, casting="same_kind")
        pos = lg > 0
        np.log(lg, out=lg, where=pos)
        lg[~pos] = 0.0
        col += lg.sum(axis=0, dtype=np.float64)
        row[y0:y0 + step] = lg.mean(axis=1, dtype=np.float64)
    return (dct(col / ny, norm="ortho") * math.sqrt(ny),
            dct(row, norm="ortho") * math.sqrt(nx))


def _isotonic_decreasing(y: np.ndarray) -> np.ndarray:
    """Least-squares non-increasing fit to `y` (pool-adjacent-violators; Ayer et al. 1955)."""
    vals, counts = [], []
    for v in np.asarray(y, dtype=np.float64):
        vals.append(float(v))
        counts.append(1)
        while len(vals) > 1 and vals[-2] < vals[-1]:
            c = counts[-2] + counts[-1]
            vals[-2:] = [(vals[-2] * counts[-2] + vals[-1] * counts[-1]) / c]
            counts[-2:] = [c]
    return np.repeat(np.asarray(vals), counts)


def _profile_weights(diff: np.ndarray, noise: np.ndarray, top: int, *,
                     blind: Optional[np.ndarray] = None,
                     blind_noise: Optional[np.ndarray] = None,
                     response: Optional[np.ndarray] = None):
    """Weights of the pooled mean and the blind estimate along a profile (see the module text).

    With the blind estimate's response ``R_j`` known (:func:`blind_response`), its error at
    coefficient ``j`` is ``(R_j - 1) G_j`` plus its noise: ``A_j = (1 - R_j)^2 Gamma_j +
    sigma_j^2``, with ``Gamma_j`` the gain's power there, fitted to the pooled mean's
    ``P_j^2 - N_j`` (unbiased) as a non-increasing function of frequency (isotonic regression,
    :func:`_isotonic_decreasing`), and ``sigma_j^2`` the blind estimate's noise (its halves, smoothed over
    :data:`PROFILE_SMOOTH` coefficients).  Where ``R_j >= RESPONSE_DECONVOLVE`` the blind
    estimate is divided by ``R_j`` (its response there is known and its error is the gain
    times ``R_j - 1``; the leave-one-out neighbourhood overshoots at high frequencies,
    ``R_j`` up to 1.5).  Without `response` (or `blind`): ``A_j`` is the smoothed excess
    ``L_j^2 - N_j`` with its envelope from above in the band the blind estimate cannot see.

    Parameters
    ----------
    diff : ndarray, shape (L,)
        ``L_j``, the profile's coefficients of ``log(P / S)``.
    noise : ndarray, shape (L,)
        The pooled mean's noise variance ``N_j``.
    top : int
        Coefficients ``1 .. top - 1`` form the band the blind estimate cannot see.
    blind : ndarray, shape (L,), optional
        ``S_j``, the blind estimate's coefficients (log domain).
    blind_noise : ndarray, shape (L,), optional
        Its noise power per coefficient (one degree of freedom each, e.g. from its halves).
    response : ndarray, shape (L,), optional
        ``R_j`` (:func:`blind_response` at ``j / (2 L)`` cycles per line).

    Returns
    -------
    w : ndarray
        Weights of the pooled mean in [0, 1] (0 at the DC term).
    k : ndarray
        ``u + w - 1``: the profile's combined coefficient is ``u S_j + w P_j``, i.e.
        ``S + w (P - S)`` plus ``k S_j``.
    a : ndarray
        The blind estimate's estimated error power ``A``.
    missed : ndarray
        Expected power of the gain structure left out per coefficient (:func:`combine_scales`'s
        ``missed_std``).
    """
    length = diff.shape[0]
    mask = np.ones(length, bool)
    mask[0] = False
    if response is None or blind is None or blind_noise is None:
        return _profile_weights_envelope(diff * diff, noise, top, mask)
    R = np.asarray(response, dtype=np.float64)
    n_ok = np.where(np.isfinite(noise), noise, np.inf)
    P = diff + blind
    excess = P * P - np.where(np.isfinite(noise), noise, 0.0)
    gamma = np.zeros(length)
    gamma[1:] = np.clip(_isotonic_decreasing(excess[1:]), 0.0, None)
    sigma2 = _smooth_masked(np.asarray(blind_noise, dtype=np.float64), mask, PROFILE_SMOOTH)
    a = (1.0 - R) ** 2 * gamma + sigma2
    a[0] = 0.0
    w = np.zeros(length)
    np.divide(a, a + n_ok, out=w, where=(a + n_ok) > 0)
    w[0] = 0.0
    k = np.zeros(length)
    deconv = mask & (R >= RESPONSE_DECONVOLVE)
    k[deconv] = (1.0 - w[deconv]) * (1.0 / R[deconv] - 1.0)
    u = 1.0 - w + k
    missed = (1.0 - u * R - w) ** 2 * gamma   # the bias: gain structure left out
    missed[0] = 0.0
    return w, k, a, missed


def _profile_weights_envelope(power: np.ndarray, noise: np.ndarray, top: int,
                              mask: np.ndarray):
    """:func:`_profile_weights` without the blind estimate's response (the first method)."""
    w1, a1 = _wiener(power, noise, mask, PROFILE_SMOOTH, PROFILE_SIGNIFICANCE)
    # in the band the blind estimate cannot see, its error power does not fall towards
    # lower frequencies (its response falls, a detector's gain power rarely does): the
    # envelope from above keeps one chance agreement of the two (the pooled mean's noise
    # pointing towards the blind estimate) from hiding the structure the blind estimate
    # misses there
    raw = a1.copy()
    if top > 2:
        a1[1:top] = np.maximum.accumulate(a1[1:top][::-1])[::-1]
        w1 = np.zeros_like(a1)
        np.divide(a1, a1 + noise, out=w1, where=(a1 + noise) > 0)
        w1[0] = 0.0
    # structure left out in the blind band: the midpoint of the raw (smoothed) error power,
    # low where a chance agreement hides structure, and of its envelope, an upper estimate
    missed = np.zeros_like(a1)
    missed[1:top] = (1 - w1[1:top]) ** 2 * 0.5 * (raw[1:top] + a1[1:top])
    return w1, np.zeros_like(w1), a1, missed


def _profile_noise(stats: Optional[np.ndarray], n: int) -> Optional[np.ndarray]:
    """Variance of the mean profile's DCT coefficients from per-frame sums and sums of squares."""
    if stats is None or n < 2:
        return None
    s, sq = np.asarray(stats[0], np.float64), np.asarray(stats[1], np.float64)
    var = np.clip((sq - s * s / n) / (n - 1), 0.0, None)
    return var / n


def _crossover_period(w: np.ndarray, length: int) -> Optional[float]:
    """Period (lines) of the highest frequency at which the pooled mean's weight is >= 0.5."""
    j = np.nonzero(w[1:] >= 0.5)[0]
    if j.size == 0:
        return None
    return float(2.0 * length / (j[-1] + 1))


def combine_scales(sme: np.ndarray, sme_halves: np.ndarray, sums: np.ndarray,
                   counts: Sequence[int], profile_col: Optional[np.ndarray] = None,
                   profile_row: Optional[np.ndarray] = None, *,
                   blind_period_col: Optional[float] = None,
                   blind_period_row: Optional[float] = None,
                   blind_response_col: Optional[np.ndarray] = None,
                   blind_response_row: Optional[np.ndarray] = None):
    """Blind estimate at high, pooled mean at low spatial frequencies (see the module text).

    Parameters
    ----------
    sme : ndarray, shape (Y, X)
        Blind (smooth midway equalisation) estimate, mean 1.
    sme_halves : ndarray, shape (2, Y, X)
        The blind estimates from the even and the odd frames.
    sums : ndarray, shape (4, Y, X)
        Sums of the frames (each divided by its mean) of the groups ``i mod 4``.
    counts : sequence of 4 int
        Frames per group.
    profile_col : ndarray, shape (2, X), optional
        Sum over the frames of :func:`profile_dct`'s column coefficients and of their squares.
    profile_row : ndarray, shape (2, Y), optional
        The same for the row profiles.  Without them (or with fewer than 4 frames) the profile
        noise comes from the group scatter too.
    blind_period_col, blind_period_row : float, optional
        Periods (lines) above which the blind estimate recovers less than half
        (:func:`blind_spot`): the band in which what the combination leaves out counts as missed.
    blind_response_col, blind_response_row : ndarray, optional
        The blind estimate's response along the column (row) profile at ``j / (2 X)`` (``j /
        (2 Y)``) cycles per line, ``j = 0 ..`` (:func:`blind_response`).  Without them the
        profile weights come from the smoothed excess and its envelope (see the module text).

    Returns
    -------
    gain : ndarray, float64, shape (Y, X)
        Combined estimate, mean 1.
    halves : ndarray, float64, shape (2, Y, X)
        The same combination from the even and from the odd frames alone (with the weights
        and shrink factors chosen on all frames), for held-out validation.
    info : dict
        ``crossover_col``, ``crossover_row`` (period in lines of the highest frequency at which
        the pooled mean weighs >= 0.5; None = blind estimate everywhere), ``crossover_2d``
        (pixels), ``pooled_weight_col`` / ``_row`` / ``_2d`` (share of the blind estimate's
        estimated error power taken from the pooled mean), ``low_frequency_std`` (std of the
        correction), ``specimen_residual_std`` (std of the pooled mean's noise passed into
        the estimate), ``error_std`` (expected noise of the result, see the module text),
        ``shrunk_std`` (2D structure the shrinkage removes), ``missed_std`` (gain structure
        left out: ``(1 - w)^2 A`` over the band the blind estimate cannot see, where the pooled
        mean is too noisy, and ``shrunk_std``), ``kept_2d`` (share of the estimated 2D signal
        power the shrinkage keeps), ``error_power_sd`` (standard deviation of the error power,
        ``error_std^2 + missed_std^2``, from the scatter of the profiles' per-coefficient terms).
    """
    S = np.asarray(sme, dtype=np.float64)
    Sh = np.asarray(sme_halves, dtype=np.float64)
    s = np.asarray(sums, dtype=np.float64)
    n_g = np.asarray(counts, dtype=np.float64)
    n = float(n_g.sum())
    ny, nx = S.shape
    pooled, pooled_halves = pooled_mean(s, n_g)
    S_n = _norm(S)   # normalised once for the log-ratio and the log
    # the blind estimate's column and row profiles (log domain, scaled as the first row and
    # column of the 2D DCT) and their noise, from its even and odd halves
    blind_col, blind_row = _log_profiles_dct(S_n)
    half_profiles = [_log_profiles_dct(_norm(Sh[h])) for h in range(2)]
    C = _dctn(_log_ratio_normed(_norm(pooled), S_n), overwrite=True)
    del pooled
    # 2D noise: scatter of the group means (each frame has mean 1, so the groups' means agree).
    # The pooled mean's DCT is the count-weighted sum of the groups' (the DCT is linear), and
    # every group mean is taken less 1 first (the scatter does not change; the DC term no
    # longer cancels from thousands down to 0).  The groups' DCTs are taken in float32: they only
    # feed the noise estimate, and the gain moves by ~2e-9 relative (4096^2 and 2048^2 x 8
    # frames, against float64 transforms)
    used = n_g > 0
    acc2 = np.zeros_like(C)
    dsum = np.zeros_like(C)
    for g in np.nonzero(used)[0]:
        d = np.empty(C.shape, dtype=np.float32)
        np.subtract(s[g] / n_g[g], 1.0, out=d, casting="same_kind")
        d = _dctn(d, overwrite=True).astype(np.float64)
        d *= n_g[g]
        dsum += d
        d *= d
        d /= n_g[g]
        acc2 += d
        del d
    dsum *= dsum
    dsum /= n
    acc2 -= dsum
    del dsum
    k = int(used.sum())
    if k >= 2:
        np.clip(acc2 / (k - 1), 0.0, None, out=acc2)
        noise2 = uniform_filter(acc2, AREA_NOISE_POOL, mode="nearest") / n
    else:
        noise2 = np.full_like(C, np.inf)
    del acc2
    power = C * C
    mask2 = np.ones(C.shape, bool)
    mask2[0, :] = False
    mask2[:, 0] = False
    W, A = _wiener(power, noise2, mask2, AREA_SMOOTH, AREA_SIGNIFICANCE,
                   _area_density(C.shape, AREA_SMOOTH))
    del power
    diff_col, diff_row = C[0, :].copy(), C[:, 0].copy()
    noise_col, noise_row = noise2[0, :].copy(), noise2[:, 0].copy()
    N = noise2   # noise2 itself is not read again
    # column profile (first row of C: sqrt(Y) x the DCT of the mean over rows) and row profile
    nframes = int(round(n))
    missed_profiles = 0.0
    noise_profiles = 0.0
    spread_profiles = 0.0
    extra = []   # u + w - 1 along the column and the row profile (see _profile_weights)
    for axis, stats, length, other in ((1, profile_col, nx, ny), (0, profile_row, ny, nx)):
        nz = _profile_noise(stats, nframes)
        if nz is not None:
            # the variance of every coefficient from N - 1 degrees of freedom scatters by
            # sqrt(2 / (N - 1)) (33 % at 20 frames); the specimen's spectrum changes slowly
            # with frequency, so the estimate is pooled over PROFILE_SMOOTH coefficients
            mask1 = np.ones(length, bool)
            mask1[0] = False
            line_noise = _smooth_masked(other * nz, mask1, PROFILE_SMOOTH)
            line_noise[0] = other * nz[0]
        else:
            line_noise = noise_col if axis == 1 else noise_row
        line_diff = diff_col if axis == 1 else diff_row
        top = _band_end(length, blind_period_col if axis == 1 else blind_period_row)
        i = 0 if axis == 1 else 1
        d_half = 0.5 * (half_profiles[0][i] - half_profiles[1][i])
        w1, k1, a1, missed1 = _profile_weights(
            line_diff, line_noise, top, blind=(blind_col, blind_row)[i],
            blind_noise=d_half * d_half,
            response=blind_response_col if axis == 1 else blind_response_row)
        missed_profiles += float(np.sum(missed1[1:]))
        u1 = 1.0 - w1 + k1
        terms = (w1 * w1 * np.where(np.isfinite(line_noise), line_noise, 0.0)
                 + u1 * u1 * d_half * d_half)[1:]
        noise_profiles += float(np.sum(terms))
        # each coefficient's error is one Gaussian degree of freedom: its power scatters by
        # sqrt(2) x its expectation, and the few low-frequency terms that dominate a profile
        # make the total's scatter large (the spread of the achieved R^2 about r2_expected)
        terms += missed1[1:]
        spread_profiles += 2.0 * float(np.sum(terms * terms))
        extra.append(k1)
        if axis == 1:
            W[0, :], A[0, :], N[0, :] = w1, a1, line_noise
        else:
            W[1:, 0], A[1:, 0], N[1:, 0] = w1[1:], a1[1:], line_noise[1:]
    W[0, 0] = 0.0
    size = float(ny * nx)
    # the combination in the log domain (DCT): blind estimate + weighted correction, for all
    # frames and for each half (the halves' difference measures the combination's own noise)
    C *= W
    corr_std = float(math.sqrt(max(float(np.sum(C * C)) / size, 0.0)))  # Parseval; C[0,0] = 0
    F = _dctn(_log_normed(S_n), overwrite=True)
    del S_n
    _scale_profiles(F, extra)
    F += C
    del C
    Fh = np.empty((2,) + F.shape)
    for h in range(2):
        Sh_n = _norm(Sh[h])
        Ch = _dctn(_log_ratio_normed(_norm(pooled_halves[h]), Sh_n), overwrite=True)
        Ch *= W
        Fh[h] = _dctn(_log_normed(Sh_n), overwrite=True)
        del Sh_n
        _scale_profiles(Fh[h], extra)
        Fh[h] += Ch
        del Ch
    V, signal, noise_2d = _shrink(F, Fh)
    # the estimate's expected noise power: on the profiles the pooled mean's (N, from the
    # frame-to-frame scatter) through w and the blind estimate's (its halves) through u (above);
    # in 2D the combination's (its halves) through V
    F *= V
    gain = _idctn(F, overwrite=True)
    del F
    gain = _norm_inplace(np.exp(gain, out=gain))
    for h in range(2):
        Fh[h] *= V
        g_h = _idctn(Fh[h], overwrite=True)
        Fh[h] = np.exp(g_h, out=g_h)
        del g_h
        _norm_inplace(Fh[h])
    halves = Fh   # the two halves' gains, in the buffer of their transforms
    del Fh
    # what the combination passes of the pooled mean's noise, and what it leaves out
    fy = np.arange(ny)[:, None] / (2.0 * ny)
    fx = np.arange(nx)[None, :] / (2.0 * nx)
    kx = int(np.count_nonzero(fx < (1.0 / blind_period_col if blind_period_col else 0.5)))
    ky = int(np.count_nonzero(fy < (1.0 / blind_period_row if blind_period_row else 0.5)))
    # the 2D part of the band (the profiles' is done above): the frequencies below the band's
    # edges, a rectangle of coefficients from (1, 1)
    band = (slice(1, ky), slice(1, kx))
    inner = (slice(1, None), slice(1, None))   # the 2D part (mask2)
    finite_n = np.where(np.isfinite(N), N, 0.0)
    one_less = np.subtract(1.0, V)
    shrunk = float(math.sqrt(_dot3(one_less, one_less, signal) / size))
    one_less = np.subtract(1.0, W[band])
    missed = _dot3(one_less, one_less, A[band]) + missed_profiles
    del one_less
    info: Dict[str, object] = {
        "crossover_col": _crossover_period(W[0, :], nx),
        "crossover_row": _crossover_period(W[:, 0], ny),
        "crossover_2d": _crossover_2d(W, mask2),
        "pooled_weight_col": _share(W[0, 1:], A[0, 1:]),
        "pooled_weight_row": _share(W[1:, 0], A[1:, 0]),
        "pooled_weight_2d": _share(W[inner], A[inner]),
        "low_frequency_std": corr_std,
        "specimen_residual_std": float(math.sqrt(_dot3(W, W, finite_n) / size)),
        "shrunk_std": shrunk,
        "error_std": float(math.sqrt((noise_profiles + noise_2d) / size)),
        "missed_std": float(math.sqrt(missed / size + shrunk * shrunk)),
        "error_power_sd": float(math.sqrt(spread_profiles) / size),
        "kept_2d": _share(V[inner], signal[inner]),
    }
    return gain, halves, info


def _dot3(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> float:
    """``sum(a * b * c)`` over arrays (or views) of one shape, without full-size temporaries."""
    axes = list(range(a.ndim))
    return float(np.einsum(a, axes, b, axes, c, axes, []))


def _share(w: np.ndarray, a: np.ndarray) -> float:
    tot = float(np.sum(a))
    axes = list(range(w.ndim))
    return float(np.einsum(w, axes, a, axes, []) / tot) if tot > 0 else 0.0


def _crossover_2d(W: np.ndarray, mask: np.ndarray) -> Optional[float]:
    """Period (pixels) of the highest radial frequency at which a 2D weight is >= 0.5."""
    ny, nx = W.shape
    fy = np.arange(ny)[:, None] / (2.0 * ny)
    fx = np.arange(nx)[None, :] / (2.0 * nx)
    sel = mask & (W >= 0.5)
    rows = np.nonzero(sel.any(axis=1))[0]
    if rows.size == 0:
        return None
    last = nx - 1 - np.argmax(sel[rows, ::-1], axis=1)   # highest selected column per row
    f = np.sqrt(fy[rows, 0] ** 2 + fx[0, last] ** 2)
    return float(1.0 / f.max())


def expected_r2(std_estimate: float, error_std: float, missed_std: float) -> float:
    """R^2 to expect of an estimate against the true gain, from its error and missed structure.

    With ``G = G_c + G_m`` (the part captured and the part missed) and the estimate
    ``E = G_c + e`` (``e`` its noise), ``R^2 = var(G_c)^2 / ((var(G_c) + var(e)) (var(G_c) +
    var(G_m)))`` with ``var(G_c) = var(E) - var(e)``.

    Parameters
    ----------
    std_estimate : float
        Std of the estimate (mean 1).
    error_std : float
        Std of its noise (held-out: half the std of the ratio of the half estimates).
    missed_std : float
        Std of the gain structure it leaves out.
    """
    vc = max(std_estimate ** 2 - error_std ** 2, 0.0)
    if vc <= 0:
        return 0.0
    return float(vc * vc / ((vc + error_std ** 2) * (vc + missed_std ** 2)))


def _loo_transfer(sigma: float, freqs: np.ndarray) -> np.ndarray:
    """Transfer function of the leave-one-out Gaussian neighbourhood mean at `freqs`."""
    half = max(1, int(math.ceil(4 * sigma)))
    j = np.arange(1, half + 1)
    w = np.exp(-0.5 * (j / sigma) ** 2)
    w = w / (2 * w.sum())
    return 2 * (w[None, :] * np.cos(2 * np.pi * freqs[:, None] * j[None, :])).sum(axis=1)


def blind_response(sigma_grid: Sequence[float], counts: Sequence[int],
                   freqs: np.ndarray) -> np.ndarray:
    """Fraction of a per-line sinusoid's amplitude the blind estimate recovers at `freqs`.

    ``1 - W(f)`` (``W`` the transfer function of the leave-one-out Gaussian neighbourhood)
    averaged over the sigmas the frames chose (frames with sigma 0 recover nothing).

    Parameters
    ----------
    sigma_grid : sequence of float
        The sigma candidates.
    counts : sequence of int
        How often each was chosen.
    freqs : ndarray
        Frequencies (cycles per line).

    Returns
    -------
    ndarray, like `freqs`
    """
    grid = np.asarray(sigma_grid, dtype=np.float64)
    cnt = np.asarray(counts, dtype=np.float64)
    f = np.asarray(freqs, dtype=np.float64)
    response = np.zeros_like(f)
    total = cnt.sum()
    if total <= 0:
        return response
    for sg, c in zip(grid, cnt):
        if sg > 0 and c > 0:
            response += c * (1 - _loo_transfer(float(sg), f))
    return response / total


def blind_spot(sigma_grid: Sequence[float], counts: Sequence[int]) -> Optional[float]:
    """Period (lines) above which the blind estimate recovers less than half of a gain's amplitude.

    A per-line gain ``c`` is estimated as ``c / (w * c)`` with ``w`` the leave-one-out Gaussian
    neighbourhood of the sigma chosen for the frame, so a sinusoid of frequency ``f`` is
    recovered with amplitude ``1 - W(f)`` (``W`` the transfer function of ``w``), averaged
    over the frames' chosen sigmas (frames with sigma 0 are not equalised and recover nothing).

    Parameters
    ----------
    sigma_grid : sequence of float
        The sigma candidates.
    counts : sequence of int
        How often each was chosen.

    Returns
    -------
    float or None
        The period in lines (columns or rows) where the mean recovered amplitude falls to 0.5;
        None if no frame was equalised.
    """
    grid = np.asarray(sigma_grid, dtype=np.float64)
    cnt = np.asarray(counts, dtype=np.float64)
    total = cnt.sum()
    if total <= 0 or not np.any(cnt[grid > 0] > 0):
        return None
    freqs = np.linspace(0.5, 0.001, 2000)  # from the Nyquist frequency down
    response = blind_response(grid, cnt, freqs)
    below = np.nonzero(response < 0.5)[0]
    if below.size == 0:
        return None
    return float(1.0 / freqs[below[0]])
