"""Flat-field application without silent data loss: rescale modes and clipped-pixel counts.

Forward model: raw = darkfield + flatfield * truth with a known vignetting flat-field (mean 1,
corners ~0.6) and a known truth that reaches the top of the 16-bit range in a dim corner.
"""
from __future__ import annotations

import numpy as np
import pytest

from camcorr.errors import CamcorrError
from camcorr.flatfield import Profiles
from camcorr.flatfield.apply import RESCALE_MODES, apply_flatfield, rescale_flatfield
from camcorr.simulate.tiles import make_flatfield


def _scene(shape=(48, 64)):
    flat = make_flatfield(shape, vignetting=0.4)
    flat = flat / flat.mean()
    truth = np.full(shape, 3000.0)
    truth[0, 0] = 60000.0 / flat[0, 0]  # bright object in a dim corner: raw ~60100 ADU
    assert truth[0, 0] > 65535  # beyond the range once divided by a mean-1 flat-field
    raw = np.clip(np.rint(100.0 + flat * truth), 0, 65535).astype(np.uint16)
    return flat, truth, raw


def test_rescale_modes():
    flat, _, _ = _scene()
    r, f = rescale_flatfield(flat, "ceiling")
    assert f == pytest.approx(flat.min()) and r.min() == pytest.approx(1.0)
    r, f = rescale_flatfield(flat * 2, "mean")
    assert f == pytest.approx(2.0) and r.mean() == pytest.approx(1.0)
    r, f = rescale_flatfield(flat, "none")
    assert f == 1.0 and np.array_equal(r, flat)
    with pytest.raises(CamcorrError, match="one of ceiling, mean, none"):
        rescale_flatfield(flat, "max")
    with pytest.raises(CamcorrError, match="positive"):
        rescale_flatfield(flat - 5, "ceiling")
    assert RESCALE_MODES == ("ceiling", "mean", "none")


def test_ceiling_never_saturates_and_mean_counts_what_it_clips():
    flat, truth, raw = _scene()
    prof = Profiles(flatfield=flat, darkfield=np.full(flat.shape, 100.0), baseline=250.0)
    counts = {}
    out = apply_flatfield(raw, prof, rescale="ceiling", counts=counts)
    assert out.dtype == np.uint16
    assert counts == {"clipped_low": 0, "clipped_high": 0, "baseline": 0.0,
                      "rescale_factor": pytest.approx(flat.min())}
    # linear in the truth, scaled by the minimum: (raw - dark) / (flat / min)
    np.testing.assert_allclose(out, np.minimum(truth * flat.min(), 65535), atol=1.0)
    assert np.count_nonzero(out == 65535) <= np.count_nonzero(raw == 65535)

    counts = {}
    out = apply_flatfield(raw, prof, rescale="mean", counts=counts)
    assert counts["clipped_high"] == 1 and out[0, 0] == 65535  # the corner object, counted
    assert counts["clipped_low"] == 0 and counts["rescale_factor"] == pytest.approx(1.0)


def test_baseline_only_when_asked_and_low_clips_counted():
    flat = np.ones((4, 4))
    prof = Profiles(flatfield=flat, darkfield=np.zeros((4, 4)), baseline=50.0)
    img = np.array([[10, 60, 65535, 70]] * 4, np.uint16)
    counts = {}
    assert apply_flatfield(img, prof, counts=counts).tolist() == img.tolist()
    assert counts["clipped_low"] == 0
    counts = {}
    out = apply_flatfield(img, prof, baseline="auto", counts=counts)
    assert out[0].tolist() == [0, 10, 65485, 20] and counts["clipped_low"] == 4
    assert counts["baseline"] == 50.0
    counts = {}
    f = apply_flatfield(img.astype(np.float32), prof, baseline="auto", clip=False, counts=counts)
    assert f[0, 0] == -40 and counts["clipped_low"] == 0  # not clipped, not counted
