"""Fourier ring correlation: noise-curve calibration, known cases, outputs, bad input."""
from __future__ import annotations

import json

import numpy as np
import pytest

from camcorr.aposteriori import frc
from camcorr.errors import CamcorrError


def test_noise_curve_matches_independent_noise(rng):
    # for independent white noise the FRC of a ring of n Fourier pixels has std 1/sqrt(n)
    z = []
    for _ in range(30):
        r = frc(rng.standard_normal((96, 96)), rng.standard_normal((96, 96)))
        use = r.threshold < 1
        use[0] = False
        z.append(r.frc[use] / (r.threshold[use] / r.n_sigma))
    z = np.concatenate(z)
    assert np.std(z) == pytest.approx(1.0, abs=0.05)
    assert abs(np.mean(z)) < 0.05
    assert np.mean(np.abs(z) > 3) < 0.01  # ~0.27 % expected beyond 3 sigma


def test_identical_images_correlate_fully(rng):
    img = rng.standard_normal((64, 80))
    r = frc(img, 3 * img + 7)
    assert np.allclose(r.frc[1:], 1.0)
    assert r.crossover is None and r.resolution is None
    assert r.fraction_above == 1.0
    assert r.frequency[-1] == pytest.approx(0.5)


def test_crossover_of_a_band_limited_object(rng):
    # same smooth object + independent noise: correlated at low, not at high frequency
    from scipy import ndimage as ndi

    obj = ndi.gaussian_filter(rng.standard_normal((128, 128)), 4, mode="wrap") * 40  # periodic
    a = obj + rng.standard_normal(obj.shape)
    b = obj + rng.standard_normal(obj.shape)
    r = frc(a, b)
    assert r.frc[3] > 0.9
    # expected FRC = SNR / (1 + SNR), SNR(f) = 40^2 |G(f)|^2 / 1, G = exp(-2 pi^2 sigma^2 f^2)
    f = r.frequency
    snr = 1600 * np.exp(-4 * np.pi ** 2 * 16 * f ** 2)
    expected = snr / (1 + snr)
    diff = np.abs(r.frc[1:40] - expected[1:40])  # the random object's ring power fluctuates
    assert diff.mean() < 0.05 and diff.max() < 0.25
    first_below = f[np.flatnonzero((expected < r.threshold) & (f > 0) & (r.threshold < 1))[0]]
    assert r.crossover is not None and abs(r.crossover - first_below) <= 0.03
    assert r.resolution == pytest.approx(1 / r.crossover)
    hann = frc(a, b, window="hann")
    assert hann.crossover is not None


def test_json_and_plot(tmp_path, rng):
    r = frc(rng.standard_normal((32, 32)), rng.standard_normal((32, 32)))
    js = r.save_json(tmp_path / "frc.json")
    data = json.loads(js.read_text())
    assert len(data["frc"]) == len(data["threshold"]) == len(data["frequency_cycles_per_pixel"])
    assert data["n_sigma"] == 3.0
    png = r.plot(tmp_path / "frc.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_inputs(rng):
    with pytest.raises(CamcorrError, match="shapes differ"):
        frc(rng.random((32, 32)), rng.random((32, 33)))
    with pytest.raises(CamcorrError, match="dimensions"):
        frc(rng.random((3, 32, 32)), rng.random((3, 32, 32)))
    with pytest.raises(CamcorrError, match="constant"):
        frc(np.ones((32, 32)), rng.random((32, 32)))
    bad = rng.random((32, 32))
    bad[1, 1] = np.nan
    with pytest.raises(CamcorrError, match="NaN"):
        frc(bad, rng.random((32, 32)))
    with pytest.raises(CamcorrError, match="too small"):
        frc(rng.random((4, 4)), rng.random((4, 4)))
    with pytest.raises(CamcorrError, match="window"):
        frc(rng.random((32, 32)), rng.random((32, 32)), window="kaiser")
