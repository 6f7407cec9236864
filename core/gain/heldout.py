"""Held-out validation of a gain estimate: estimate on half of the frames, evaluate on the rest.

In-sample numbers of a gain estimate (its std, percentiles, flags) are computed on the frames
that made it, so they count the estimate's own noise, and anything the estimate fitted to the
specimen, as gain.  Held-out numbers use the two halves of the frames (even and odd frames,
which :class:`~camcorr.gain.GainAccumulator` keeps apart): a gain estimated on one half is
evaluated on the other.

* ``std_heldout``: the gain amplitude that the other half reproduces,
  ``sqrt(max(cov(G_even, G_odd), 0))`` over pixels (noise and specimen that differ between the
  halves do not covary; a real gain does).  Compare with ``std_in_sample``, the std of the
  estimate from all frames.
* ``r2_halves``: R^2 between the two half estimates (split-half reliability); the
  Spearman-Brown step-up ``2 r / (1 + r)`` is the expected correlation of the whole estimate
  with a repeat of the experiment (``reliability``).
* ``residual_std_heldout``: the gain left in the odd frames after dividing them by the gain from
  the even frames, to first order ``std(G_odd / G_even)`` (the estimator is multiplicative:
  re-estimating on frames divided by a gain ``G_A`` gives ``G / G_A``; tests/test_gain.py
  checks this against a real second estimation).
* ``error_std``: estimated error of the estimate from all frames, half of the residual
  (two independent halves, each with twice the error variance of the whole).  Error that both
  halves share (frequencies the method cannot see, a specimen that is the same in every frame)
  is not in it.

In-sample and held-out *disagree* when the in-sample std exceeds the held-out one by more than
25 % and 0.005: part of what the in-sample numbers call gain is not reproduced by independent
frames (noise or specimen; for a residual gain, a flag raised by noise).

References
----------
Spearman, C. (1910). Correlation calculated from faulty data. Br. J. Psychol. 3(3), 271-295.
doi:10.1111/j.2044-8295.1910.tb00206.x
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np

from . import _kernels as K

__all__ = ["heldout_report", "DISAGREE_RATIO", "DISAGREE_MIN"]

#: In-sample std above this factor of the held-out std ...
DISAGREE_RATIO = 1.25
#: ... and above it by more than this: the two disagree.
DISAGREE_MIN = 0.005


def heldout_report(gain: np.ndarray, halves: np.ndarray, *, n_even: int, n_odd: int,
                   noise_floor_counting: Optional[float] = None) -> dict:
    """Held-out numbers of a gain estimate beside its in-sample std (see the module text).

    Parameters
    ----------
    gain : ndarray, shape (Y, X)
        The estimate from all frames (mean 1).
    halves : ndarray, shape (2, Y, X)
        The estimates from the even and the odd frames (mean 1 each).
    n_even, n_odd : int
        Frames in each half.
    noise_floor_counting : float, optional
        Counting noise floor of the estimate from all frames; a half's is sqrt(2) x it.

    Returns
    -------
    dict
        JSON-serialisable: ``split``, ``n_frames_even``, ``n_frames_odd``, ``std_in_sample``,
        ``std_heldout``, ``r2_halves``, ``reliability``, ``residual_std_heldout``,
        ``error_std``, ``disagree`` (bool), ``note`` (one sentence for the user).
    """
    # fused parallel passes (numba): each image normalised to mean 1 on the fly, no temporaries
    mg = K.moments(gain)[0]
    std_in = K.moments(gain, _inverse(mg))[1]
    ma, mb = K.moments(halves[0])[0], K.moments(halves[1])[0]
    sa, sb, cov, residual = K.pair_moments(halves[0], halves[1], _inverse(ma), _inverse(mb))
    std_ho = math.sqrt(max(cov, 0.0))
    r = cov / (sa * sb) if sa > 0 and sb > 0 else 0.0
    reliability = (2 * r / (1 + r)) if r > -1 else 0.0
    disagree = bool(std_in > DISAGREE_RATIO * std_ho and std_in - std_ho > DISAGREE_MIN)
    if disagree:
        note = (f"in-sample and held-out disagree: the estimate's std is {std_in:.4f} but only "
                f"{std_ho:.4f} of it is reproduced by independent frames; the rest is noise "
                f"(or specimen), not gain")
    else:
        note = (f"in-sample and held-out agree: std {std_in:.4f} in-sample, {std_ho:.4f} "
                f"reproduced by independent frames")
    out = {
        "split": "even / odd frames",
        "n_frames_even": int(n_even),
        "n_frames_odd": int(n_odd),
        "std_in_sample": std_in,
        "std_heldout": std_ho,
        "r2_halves": float(max(r, 0.0) ** 2),
        "reliability": float(max(reliability, 0.0)),
        "residual_std_heldout": residual,
        "error_std": residual / 2.0,
        "disagree": disagree,
        "note": note,
    }
    return out


def _inverse(mean: float) -> float:
    """1 / mean (NaN for a zero mean, so the figures come out NaN as numpy's division gave)."""
    return 1.0 / mean if mean != 0 else math.nan
