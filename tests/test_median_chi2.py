"""Rule 'chi2' of the selective median: bad pixels from few planes against shot plus read noise.

Ground truth: :func:`camcorr.simulate.noise.camera_stack` (static scene, gain x Poisson shot
noise, per-pixel read noise, bad pixels whose noise std is a known factor x the expected one).
Tolerances: a recall or false-positive rate measured on N pixels has a binomial standard error
sqrt(p (1 - p) / N); measured figures must lie within 4 of those of the chi-square limit (the
test statistic is then exactly what the theory says), and meet the issue's targets.
"""
from __future__ import annotations

import numpy as np
import pytest
import tifffile
from scipy import stats
from scipy.io import savemat

from camcorr.cli import main
from camcorr.errors import CamcorrError
from camcorr.median import (DEFAULT_FPR, chi2_power, chi2_threshold, find_bad_pixels,
                            fit_noise_model, read_variance_map, selective_median)
from camcorr.simulate import noise

SHAPE = (256, 256)
N_BAD = 3000  # per factor


@pytest.fixture(scope="module")
def variance_map(shared_data):
    return noise.load_variance_map(shared_data / "scmos_variance_gain_maps" / "varsub.mat")


def _binomial_se(p, n):
    return np.sqrt(max(p * (1 - p), 1.0 / n) / n)


def _check(bad, sim, n_planes, factors, *, exclude=None, fpr=DEFAULT_FPR):
    """Recall per factor and false positives on clean pixels, against the chi-square limit."""
    clean = sim.factor == 1
    if exclude is not None:
        clean &= ~exclude
    fp = float(bad.std_mask[clean].mean())
    assert abs(fp - fpr) <= 4 * _binomial_se(fpr, clean.sum()), fp
    assert fp < 1e-3  # the target: under 0.1 % of clean pixels
    recalls = {}
    for f in factors:
        sel = sim.factor == f
        rec = float(bad.std_mask[sel].mean())
        limit = chi2_power(n_planes, f, fpr)
        assert abs(rec - limit) <= 4 * _binomial_se(limit, sel.sum()), (f, rec, limit)
        recalls[f] = rec
    return recalls, fp


# --------------------------------------------------------------------------- the statistics
def test_chi2_limit_matches_monte_carlo(rng):
    """chi2_power is the detection rate of Gaussian sample variances (not a re-derivation)."""
    n, f, fpr = 10, 4.0, 5e-4
    q = chi2_threshold(n, fpr)
    clean = rng.standard_normal((200000, n)).var(axis=1, ddof=1)
    noisy = (f * rng.standard_normal((200000, n))).var(axis=1, ddof=1)
    assert np.mean((n - 1) * clean > q) == pytest.approx(fpr, abs=4 * _binomial_se(fpr, 200000))
    power = chi2_power(n, f, fpr)
    assert np.mean((n - 1) * noisy > q) == pytest.approx(power, abs=4 * _binomial_se(power, 2e5))
    # the figures quoted in the issue and README: 4x in 10 planes, 2x in 50 planes
    assert 0.99 < power < 0.995
    assert chi2_power(50, 2.0, fpr) > 0.999
    assert chi2_power(10, 2.0, fpr) < 0.7  # 2x is not findable in 10 planes at this rate


def test_fit_recovers_gain_and_read_variance(rng):
    read = np.full(SHAPE, 6.0)
    truth_read = 6.0 + 1 / 12  # integer rounding adds 1/12 ADU^2
    sim = noise.camera_stack(read, 20, gain=1.7, offset=90.0, bad={4.0: 2000}, rng=rng)
    model = find_bad_pixels(sim.stack, rule="chi2").model
    assert model.gain == pytest.approx(1.7, rel=0.02)
    # the fitted line at the true level of every pixel (17-340 e-): within 3 %, typically 0.5 %
    rel = model.expected_variance(sim.offset + sim.signal) / (sim.expected_std ** 2 + 1 / 12) - 1
    assert np.max(np.abs(rel)) < 0.03 and abs(np.median(rel)) < 0.005
    # dark frames: no shot noise; the level is the read variance
    dark = noise.camera_stack(read, 20, offset=90.0, electrons=(0, 0), bad={4.0: 2000}, rng=rng)
    model = find_bad_pixels(dark.stack, rule="chi2").model
    assert model.expected_variance(np.array(90.0)) == pytest.approx(truth_read, rel=0.02)


# --------------------------------------------------------------------------- the targets
@pytest.mark.parametrize("n_planes,factors", [(10, (4.0, 5.0)), (50, (2.0, 4.0))])
def test_targets_without_a_map(rng, n_planes, factors):
    """Uniform read noise, static scene of 20-400 e-, gain 2: the fitted photon-transfer line."""
    read = np.full(SHAPE, 4.63)
    sim = noise.camera_stack(read, n_planes, bad={f: N_BAD for f in factors}, rng=rng)
    bad = find_bad_pixels(sim.stack, rule="chi2")
    recalls, fp = _check(bad, sim, n_planes, factors)
    assert recalls[factors[0]] >= 0.99  # 4x at 10 planes, 2x at 50 planes
    assert bad.counts["flagged_map"] == 0 and bad.map_mask is None


@pytest.mark.parametrize("electrons", [(20.0, 400.0), (0.0, 0.0)], ids=["scene", "dark"])
@pytest.mark.parametrize("n_planes,factors", [(10, (4.0, 5.0)), (50, (2.0, 4.0))])
def test_targets_with_the_real_variance_map(rng, variance_map, n_planes, factors, electrons):
    """Real sCMOS read-noise map (heavy hot-pixel tail): the map explains every clean pixel."""
    read = variance_map[:SHAPE[0], :SHAPE[1]]
    sim = noise.camera_stack(read, n_planes, electrons=electrons,
                             bad={f: N_BAD for f in factors}, rng=rng)
    bad = find_bad_pixels(sim.stack, rule="chi2", variance_map=read)
    recalls, fp = _check(bad, sim, n_planes, factors)
    assert recalls[factors[0]] >= 0.99
    # the map's own hot pixels (read std >= 5x its median) are replaced whatever the data say
    hot = np.sqrt(read) >= 5 * np.median(np.sqrt(read))
    assert hot.sum() > 100 and np.array_equal(bad.map_mask, hot)
    assert np.all(bad.mask[hot])


def test_without_the_map_the_maps_tail_is_flagged(rng, variance_map):
    """Dark frames of the real camera: without a map, the pixels the map knows to be noisier
    than typical are flagged (honestly: they are noisier than the fitted typical pixel); the map
    brings the rate on pixels that behave as the map says back to the chosen rate."""
    read = variance_map[:SHAPE[0], :SHAPE[1]]
    sim = noise.camera_stack(read, 50, electrons=(0.0, 0.0), rng=rng)
    no_map = find_bad_pixels(sim.stack, rule="chi2")
    with_map = find_bad_pixels(sim.stack, rule="chi2", variance_map=read, map_factor=0)
    assert with_map.std_mask.mean() < 1e-3
    assert no_map.std_mask.mean() > 0.05
    noisy = np.sqrt(read) >= 2 * np.median(np.sqrt(read))
    assert no_map.std_mask[noisy].mean() > 0.95


def test_chi2_beats_the_local_rule_at_ten_planes(rng):
    read = np.full(SHAPE, 4.63)
    sim = noise.camera_stack(read, 10, bad={4.0: N_BAD}, rng=rng)
    chi = find_bad_pixels(sim.stack, rule="chi2").mask[sim.factor == 4.0].mean()
    local = find_bad_pixels(sim.stack, rule="mad").mask[sim.factor == 4.0].mean()
    assert chi >= 0.99 and local < chi


def test_streamed_frames_and_backends_agree(rng):
    sim = noise.camera_stack(np.full((64, 80), 5.0), 12, bad={5.0: 40}, rng=rng)
    ref = find_bad_pixels(sim.stack, rule="chi2")
    streamed = find_bad_pixels(iter(list(sim.stack)), rule="chi2")
    numpy = find_bad_pixels(sim.stack, rule="chi2", backend="numpy")
    assert np.array_equal(ref.mask, streamed.mask)
    assert np.array_equal(ref.mask, numpy.mask)
    assert ref.thresholds["gain"] == pytest.approx(numpy.thresholds["gain"], rel=1e-9)
    res = selective_median(sim.stack, rule="chi2")
    assert res.corrected.dtype == sim.stack.dtype
    assert np.array_equal(res.corrected[:, ~res.mask], sim.stack[:, ~res.mask])


# --------------------------------------------------------------------------- bad input
def test_bad_maps_and_parameters_are_refused(rng):
    sim = noise.camera_stack(np.full((32, 32), 4.0), 10, rng=rng)
    with pytest.raises(CamcorrError, match="sizes differ"):
        find_bad_pixels(sim.stack, rule="chi2", variance_map=np.ones((30, 32)))
    with pytest.raises(CamcorrError, match="needs rule 'chi2'"):
        find_bad_pixels(sim.stack, variance_map=np.ones((32, 32)))
    with pytest.raises(CamcorrError, match="invalid variances"):
        find_bad_pixels(sim.stack, rule="chi2", variance_map=-np.ones((32, 32)))
    with pytest.raises(CamcorrError, match="fpr"):
        find_bad_pixels(sim.stack, rule="chi2", fpr=0.0)
    dark = noise.camera_stack(np.full((32, 32), 4.0), 10, electrons=(0, 0), rng=rng)
    with pytest.raises(CamcorrError, match="does not fit the data"):  # map 25x too large
        find_bad_pixels(dark.stack, rule="chi2", variance_map=np.full((32, 32), 100.0))


def test_read_variance_map_formats(tmp_path):
    var = np.arange(1.0, 13.0).reshape(3, 4)
    tifffile.imwrite(tmp_path / "v.tif", var.astype(np.float32))
    np.save(tmp_path / "v.npy", var)
    savemat(tmp_path / "v.mat", {"varsub": var, "other": np.ones((2, 2))})
    savemat(tmp_path / "one.mat", {"m": var})
    for name in ("v.tif", "v.npy", "v.mat", "one.mat"):
        np.testing.assert_array_equal(read_variance_map(tmp_path / name), var)
    savemat(tmp_path / "two.mat", {"a": var, "b": var})
    with pytest.raises(CamcorrError, match="not exactly one 2D map"):
        read_variance_map(tmp_path / "two.mat")
    with pytest.raises(CamcorrError, match="not found"):
        read_variance_map(tmp_path / "missing.tif")
    (tmp_path / "v.txt").write_text("1 2")
    with pytest.raises(CamcorrError, match="unknown map file type"):
        read_variance_map(tmp_path / "v.txt")


def test_fit_with_a_flat_scene_is_constant(rng):
    """All pixels at one level (flat frames): the gain cannot be seen; the level is still right."""
    m = np.full(SHAPE, 500.0) + rng.normal(0, 0.01, SHAPE)
    k = 19
    v = 40.0 * rng.chisquare(k, SHAPE) / k
    model = fit_noise_model(m, v, k + 1)
    assert model.expected_variance(np.array(500.0)) == pytest.approx(40.0, rel=0.02)


# --------------------------------------------------------------------------- command line
def test_cli_chi2_with_variance_map(tmp_path, rng, capsys):
    read = np.full((64, 64), 4.0)
    read[3, 4] = 900.0
    sim = noise.camera_stack(read, 10, bad={5.0: 30}, rng=rng)
    src, vpath = tmp_path / "frames.tif", tmp_path / "var.tif"
    tifffile.imwrite(src, sim.stack)
    tifffile.imwrite(vpath, read.astype(np.float32))
    out, mask = tmp_path / "clean.tif", tmp_path / "mask.tif"
    status = main(["median", str(src), "-o", str(out), "--mask-out", str(mask), "--rule", "chi2",
                   "--variance-map", str(vpath)])
    text = capsys.readouterr().out
    assert status == 0
    assert "chi-square" in text and "4x: 99.4 %" in text and "variance map: 1 pixel(s)" in text
    m = tifffile.imread(mask) > 0
    assert m[3, 4] and m[sim.factor == 5.0].mean() >= 0.95
    assert tifffile.imread(out).dtype == sim.stack.dtype
    # a map without rule chi2, and a map of another size: exit 2, no traceback
    assert main(["median", str(src), "-o", str(tmp_path / "x.tif"), "--variance-map",
                 str(vpath)]) == 2
    tifffile.imwrite(tmp_path / "small.tif", read[:10].astype(np.float32))
    assert main(["median", str(src), "-o", str(tmp_path / "y.tif"), "--rule", "chi2",
                 "--variance-map", str(tmp_path / "small.tif")]) == 2
    err = capsys.readouterr().err
    assert "--variance-map" in err and "Traceback" not in err
    assert not (tmp_path / "x.tif").exists() and not (tmp_path / "y.tif").exists()


def test_chi2_threshold_is_the_scipy_quantile():
    # independent check of the threshold against a tabulated value: chi2(9) 0.999 quantile 27.877
    assert chi2_threshold(10, 1e-3) == pytest.approx(27.877, abs=1e-3)
    assert stats.chi2.sf(chi2_threshold(50, 1e-4), 49) == pytest.approx(1e-4)


def test_cli_warns_when_planes_differ_by_more_than_noise(tmp_path, rng, capsys):
    """A z-stack through a specimen is not what rule chi2 is for: the CLI says so."""
    z, y, x = np.mgrid[0:12, 0:48, 0:48]
    blob = 2000.0 * np.exp(-((y - 24) ** 2 + (x - 24) ** 2) / (2 * (3.0 + z) ** 2))
    stack = np.rint(100 + blob + rng.normal(0, 2, blob.shape)).astype(np.uint16)
    src = tmp_path / "zstack.tif"
    tifffile.imwrite(src, stack)
    assert main(["median", str(src), "-o", str(tmp_path / "o.tif"), "--rule", "chi2"]) == 0
    err = capsys.readouterr().err
    assert "warning: the pixels' noise varies" in err and "--rule mad" in err


def test_dispersion_tells_when_the_model_does_not_fit(rng, variance_map):
    read = variance_map[:128, :128]
    dark = noise.camera_stack(read, 20, electrons=(0, 0), bad={4.0: 300}, rng=rng)
    with_map = find_bad_pixels(dark.stack, rule="chi2", variance_map=read)
    without = find_bad_pixels(dark.stack, rule="chi2")
    assert with_map.thresholds["dispersion"] == pytest.approx(1.0, abs=0.1)
    assert without.thresholds["dispersion"] > 1.25  # the map's spread of read noise


def test_cli_warns_on_the_real_bead_z_stack(shared_data, tmp_path, capsys):
    """Real Flash4 bead z-stack (../shared/data): the bead changes from plane to plane, so rule
    chi2 flags its flanks (4.5 % of pixels in 10 planes); the CLI warns and names --rule mad."""
    src_all = shared_data / "lls_raw_bead_stack" / "psf.tif"
    src = tmp_path / "ten_planes.tif"
    tifffile.imwrite(src, tifffile.imread(src_all)[:10])
    assert main(["median", str(src), "-o", str(tmp_path / "o.tif"), "--rule", "chi2"]) == 0
    err = capsys.readouterr().err
    assert "warning: the test found" in err and "--rule mad" in err
