"""EstimateResidualGain: the 'fields' setting and the held-out measurements (camcorr.gain.heldout)."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import require_module

require_module("cellprofiler_core", "CellProfiler (cellprofiler extra)")

import cp_helpers as h  # noqa: E402

h.init_cellprofiler()

from cellprofiler_core.utilities.core.modules import instantiate_module  # noqa: E402

import camcorr.gain as gain  # noqa: E402
from camcorr.simulate import camera  # noqa: E402


def test_heldout_measurements_and_fields_setting():
    gm = camera.ded_gain_map((64, 48), rng=3)
    mv = camera.integrating_movie(gm.gain, 12, contrast=0.1, rng=4)
    m = instantiate_module("EstimateResidualGain")
    m.image_name.value = "frame"
    m.params.by_name["offset"][0].value = 100.0
    m.params.by_name["fields"][0].value = "independent"
    res = h.GroupRunner(m, {"frame": list(mv.frames)}).run(keep=["Gain"])
    ref = gain.estimate_gain(mv.frames, offset=100.0, fields="independent")
    ho = ref.report["heldout"]
    meas = res[0]["measurements"]
    np.testing.assert_allclose(res[0]["Gain"].pixel_data, ref.gain, atol=1e-6)
    assert meas["ResidualGain_StdHeldOut_Gain"] == pytest.approx(ho["std_heldout"])
    assert meas["ResidualGain_R2Halves_Gain"] == pytest.approx(ho["r2_halves"])
    assert meas["ResidualGain_ResidualStdHeldOut_Gain"] == pytest.approx(
        ho["residual_std_heldout"])
    assert meas["ResidualGain_HeldOutDisagrees_Gain"] == int(ho["disagree"])
    assert meas["ResidualGain_Std_Gain"] == pytest.approx(ref.report["std"])
    assert meas["ResidualGain_R2Expected_Gain"] == pytest.approx(
        ref.report["scales"]["r2_expected"])
    assert meas["ResidualGain_NoiseLimited_Gain"] == int(ref.report["scales"]["noise_limited"])


def test_revision_1_settings_get_fields_same():
    from estimateresidualgain import EstimateResidualGain, SETTING_HISTORY

    m = EstimateResidualGain()
    old = ["frame", "Gain", "No", "None", "divide", "0,0.5,1,1.5,2,2.5,3", "smooth", "1",
           "0.001", "100", "1", "0", "No", "GainNormalized"]
    assert len(old) == len(SETTING_HISTORY[1])
    values, rev = m.upgrade_settings(old, 1, "EstimateResidualGain")
    assert rev == 2 and values[SETTING_HISTORY[2].index("fields")] == "same"
