"""BaSiCPy fallback: parameter mapping onto BaSiCPy 2.0, accuracy on simulated tiles, files."""
from __future__ import annotations

import sys

import numpy as np
import pytest

from camcorr.errors import CamcorrError
from camcorr.flatfield import (autosegment_weights, check_working_size, estimate_basicpy,
                               estimate_flatfield, load_profiles, save_profiles)
from camcorr.simulate.tiles import simulate_tiles
from conftest import require_module
from _helpers import rms_rel


@pytest.fixture(scope="module")
def sim():
    # 30 tiles of 128 x 128: a section with empty margins, as in a slide-scanner mosaic
    return simulate_tiles(5, 6, (128, 128), seed=3)


@pytest.fixture(scope="module")
def fitted(sim):
    require_module("basicpy")
    return estimate_basicpy(sim.tiles, darkfield=sim.darkfield, max_workers=2)


def test_working_size_validation():
    assert check_working_size(None, (64, 80)) == [64, 80]   # BaSiCPy: TypeError on None
    assert check_working_size([400], (512, 512)) == 400     # BaSiCPy: ValueError on [400]
    assert check_working_size(0, (64, 80)) == [64, 80]
    assert check_working_size((96, 128), (512, 512)) == [96, 128]
    for bad in (3, [1, 2, 3], "x", 12.5, [64, 4]):
        with pytest.raises(CamcorrError, match="working size"):
            check_working_size(bad, (64, 64))


def test_autosegment_weights_exclude_the_foreground():
    imgs = np.full((3, 64, 64), 100.0, np.float32)
    imgs[1, 20:30, 20:30] = 1000.0
    w = autosegment_weights(imgs, margin=3)
    assert w.shape == imgs.shape and w.dtype == np.float32
    assert w[1, 25, 25] == 0 and w[1, 18, 25] == 0          # inside + margin
    assert w[1, 10, 10] == 1 and np.all(w[0] == 1)


@pytest.mark.slow
def test_basicpy_recovers_flatfield_within_5_percent(sim, fitted):
    err = rms_rel(fitted.flatfield, sim.flatfield)
    assert err < 0.05, err
    assert fitted.source == "basicpy"
    assert fitted.per_image_baseline and fitted.baseline.shape == (30,)
    np.testing.assert_allclose(fitted.darkfield, sim.darkfield, atol=1e-3)  # known dark kept
    q = fitted.quality
    assert abs(q["corner_centre_after"] - 1) < abs(q["corner_centre_before"] - 1)


@pytest.mark.slow
def test_basicpy_autosegment_and_threads(sim):
    torch = require_module("torch")
    before = torch.get_num_threads()
    prof = estimate_basicpy(sim.tiles, darkfield=sim.darkfield, autosegment=True,
                            autosegment_margin=5, max_workers=1, working_size=[64])
    assert torch.get_num_threads() == before
    assert rms_rel(prof.flatfield, sim.flatfield) < 0.05
    assert prof.meta["autosegment"] is True


@pytest.mark.slow
def test_saved_model_round_trips_through_basicpy(fitted, tmp_path):
    basicpy = require_module("basicpy")
    folder = tmp_path / "models" / "GFP"
    save_profiles(fitted, folder)
    model = basicpy.BaSiC.load_model(folder)   # fails for BaSiCPy's own default save
    assert model.smoothness_flatfield == pytest.approx(
        fitted.meta["basicpy_settings"]["smoothness_flatfield"])
    np.testing.assert_allclose(model.flatfield, fitted.flatfield, rtol=1e-6)
    back = load_profiles(tmp_path / "models", "GFP")
    np.testing.assert_allclose(back.baseline, fitted.baseline, rtol=1e-6)


@pytest.mark.slow
def test_basicpy_own_model_folder_is_a_models_folder(sim, tmp_path):
    basicpy = require_module("basicpy")
    imgs = np.stack(sim.tiles[:12]).astype(np.float32) - 100
    b = basicpy.BaSiC(smoothness_flatfield=1.0, smoothness_darkfield=0.1)
    b.fit(imgs)
    (tmp_path / "m").mkdir()
    b.save_model(tmp_path / "m" / "DAPI")
    prof = load_profiles(tmp_path / "m", "DAPI")
    np.testing.assert_allclose(prof.flatfield, b.flatfield, rtol=1e-6)


def test_basicpy_2_rejects_the_seed_parameters():
    """The facts our mapping exists for (read from BaSiCPy 2.0.0's source)."""
    basicpy = require_module("basicpy")
    for kw in ({"autosegment": True}, {"autosegment_margin": 10}, {"max_workers": 2}):
        with pytest.raises(Exception):
            basicpy.BaSiC(**kw)


def test_one_image_is_a_clear_error(sim):
    with pytest.raises(CamcorrError, match="at least two images") as exc:
        estimate_basicpy(sim.tiles[:1])
    assert "empty tiles" in str(exc.value)


def test_auto_method_without_hints_uses_basicpy(sim, monkeypatch):
    monkeypatch.setitem(sys.modules, "basicpy", None)  # simulate a missing install
    with pytest.raises(CamcorrError, match="BaSiCPy is not installed"):
        estimate_flatfield(sim.tiles[:4])


def test_bad_basicpy_options(sim):
    with pytest.raises(CamcorrError, match="fitting mode"):
        estimate_basicpy(sim.tiles[:3], fitting_mode="fast")
    with pytest.raises(CamcorrError, match="epsilon"):
        estimate_basicpy(sim.tiles[:3], epsilon=0)
    with pytest.raises(CamcorrError, match="working size"):
        estimate_basicpy(sim.tiles[:3], working_size=[1, 2, 3])


@pytest.mark.slow
def test_stack_and_list_inputs_agree(sim):
    require_module("basicpy")
    stack = np.stack(sim.tiles[:10])
    a = estimate_basicpy([stack], working_size=64, max_workers=1)
    b = estimate_basicpy(list(stack), working_size=64, max_workers=1)
    np.testing.assert_allclose(a.flatfield, b.flatfield, rtol=1e-6)
    assert a.meta["n_planes_used"] == b.meta["n_planes_used"] == 10
