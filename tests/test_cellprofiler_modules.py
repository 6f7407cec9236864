"""CellProfiler modules through real Pipeline / Workspace / Measurements objects (in process).

Ground truth: the engine called directly on the same ADU arrays; the plugins must reproduce it
to within 1 ADU after the [0, 1] <-> ADU round trip (they do exactly, in practice), for 16-bit
and 12-bit scales, 2D and 3D, and every bad input the issue lists must stop with a message
naming the module's setting.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from conftest import require_module

require_module("cellprofiler_core", "CellProfiler (cellprofiler extra)")

import cp_helpers as h  # noqa: E402

h.init_cellprofiler()

from cellprofiler_core.pipeline import Pipeline  # noqa: E402
from cellprofiler_core.setting import ValidationError  # noqa: E402
from cellprofiler_core.utilities.core.modules import instantiate_module  # noqa: E402

from camcorr.errors import CamcorrError  # noqa: E402

import flashcarryovercorrect as fcc_mod  # noqa: E402
import selectivemedian as sm_mod  # noqa: E402

DATA = Path(__file__).parent / "data" / "cellprofiler"


def _dump_load(module):
    pipeline = Pipeline()
    module.set_module_num(1)
    pipeline.add_module(module)
    buf = io.StringIO()
    pipeline.dump(buf)
    loaded = Pipeline()
    loaded.load(io.StringIO(buf.getvalue()))
    return loaded.modules()[0], buf.getvalue()


def _hot_stack(rng, shape=(24, 40, 48), base=600.0, noise=4.0):
    stack = rng.normal(base, noise, shape)
    hot = [(5, 7), (20, 30), (0, 0), (shape[1] - 1, shape[2] - 1)]  # corners: mirrored borders
    for y, x in hot:
        stack[:, y, x] += rng.normal(0, 25 * noise, shape[0])
    return np.clip(np.rint(stack), 0, 4095).astype(np.uint16), hot


# ----------------------------------------------------------------------------- settings
@pytest.mark.parametrize("plugin", [sm_mod, fcc_mod], ids=lambda m: m.__name__)
def test_setting_keys_are_pinned_to_the_revision(plugin):
    """A change of the operation's parameters must come with a new revision + upgrade path."""
    cls = getattr(plugin, plugin.__name__.replace("selectivemedian", "SelectiveMedian")
                  .replace("flashcarryovercorrect", "FlashCarryoverCorrect"))
    assert cls.setting_keys() == plugin.SETTING_HISTORY[cls.variable_revision_number]
    assert max(plugin.SETTING_HISTORY) == cls.variable_revision_number


def test_help_has_table_and_doi():
    for name in ("SelectiveMedian", "FlashCarryoverCorrect"):
        mod = instantiate_module(name)
        assert mod.category == "Image Processing"
        doc = mod.__doc__
        assert "Supports 2D?" in doc and "Respects masks?" in doc
        assert "https://doi.org/10." in doc
        html = mod.get_help()  # valid RST -> HTML without docutils errors
        assert "System Message" not in html


def test_selectivemedian_settings_round_trip():
    m = instantiate_module("SelectiveMedian")
    m.image_name.value, m.output_name.value = "stack", "clean"
    m.mode.value = sm_mod.MODE_2D
    m.params.by_name["rule"][0].value = "knee"
    m.params.by_name["k"][0].value = 3.5
    m.params.by_name["mean_k"][0].value = "8"
    m.params.by_name["save_mask"][0].value = True
    m.mask_name.value = "hot"
    loaded, text = _dump_load(m)
    assert [s.value_text for s in loaded.settings()] == [s.value_text for s in m.settings()]
    assert "Threshold (robust sigmas):3.5" in text
    assert loaded.engine_kwargs() == {"rule": "knee", "k": 3.5, "mean_pass": False, "mean_k": 8.0}


def test_flash_settings_round_trip_with_channels():
    f = instantiate_module("FlashCarryoverCorrect")
    f.params.by_name["dampening"][0].value = 0.88
    f.params.by_name["time_series"][0].value = True
    for i in range(2):
        f.add_channel()
    for i, g in enumerate(f.channels):
        g.input_name.value, g.output_name.value = f"c{i}", f"c{i}_corr"
    loaded, _ = _dump_load(f)
    assert len(loaded.channels) == 3
    assert [s.value_text for s in loaded.settings()] == [s.value_text for s in f.settings()]
    assert loaded.time_series and loaded.is_aggregation_module()


def test_upgrade_selectivemedian_revision1():
    pipeline = Pipeline()
    pipeline.load(str(DATA / "selectivemedian_rev1.cppipe"))
    m = pipeline.modules()[0]
    assert m.variable_revision_number == 2
    assert (m.image_name.value, m.output_name.value, m.mode.value) == \
        ("stack", "clean", sm_mod.MODE_2D)
    assert m.params.raw("rule") == "knee" and m.params.raw("k") == 7.5
    assert m.params.raw("mean_pass") is True and m.params.raw("save_mask") is True
    assert m.params.raw("mean_k") is None  # new in revision 2: its default (blank = same as k)
    assert m.mask_name.value == "hot"


def test_upgrade_flash_revision1():
    pipeline = Pipeline()
    pipeline.load(str(DATA / "flashcarryovercorrect_rev1.cppipe"))
    f = pipeline.modules()[0]
    assert [g.input_name.value for g in f.channels] == ["488", "560", "642"]
    assert [g.output_name.value for g in f.channels] == ["c488", "c560", "c642"]
    assert f.params.raw("dampening") == 0.88
    assert f.params.by_name["params"][1].value == "FlashParam_sn1_roi1-1-64-64_date20240101.tif"
    assert f.params.by_name["params"][0].value == "Default Input Folder sub-folder|calib"
    assert f.params.raw("dtype") == "keep" and f.params.raw("time_series") is False


# ----------------------------------------------------------------------------- SelectiveMedian
@pytest.mark.parametrize("scale", [65535.0, 4095.0])
def test_selectivemedian_3d_units_match_engine(rng, scale):
    import camcorr.median as median

    stack, hot = _hot_stack(rng)
    m = instantiate_module("SelectiveMedian")
    m.image_name.value, m.output_name.value = "raw", "clean"
    m.params.by_name["save_mask"][0].value = True
    res = h.GroupRunner(m, {"raw": [stack]}, scale=scale).run(keep=["clean", "BadPixels"])[0]
    ref = median.selective_median(stack.astype(np.float32))
    out = res["clean"]
    assert out.volumetric and out.scale == scale
    np.testing.assert_allclose(out.pixel_data * scale, ref.corrected, atol=1e-2)
    assert np.array_equal(res["BadPixels"].pixel_data, ref.mask)
    assert all(ref.mask[y, x] for y, x in hot)
    meas = res["measurements"]
    assert meas["SelectiveMedian_Flagged_clean"] == ref.counts["flagged"] == ref.mask.sum()
    assert meas["SelectiveMedian_NPlanes_clean"] == stack.shape[0]


def test_selectivemedian_2d_group_mode_uses_the_group_as_stack(rng):
    import camcorr.median as median

    stack, hot = _hot_stack(rng, shape=(16, 32, 36))
    m = instantiate_module("SelectiveMedian")
    m.image_name.value, m.output_name.value = "frame", "clean"
    m.mode.value = sm_mod.MODE_2D
    results = h.GroupRunner(m, {"frame": list(stack)}).run(keep=["clean"])
    ref = median.selective_median(stack.astype(np.float32))
    got = np.stack([r["clean"].pixel_data for r in results]) * 65535.0
    np.testing.assert_allclose(got, ref.corrected, atol=1e-2)
    assert not results[0]["clean"].volumetric
    flagged = {r["measurements"]["SelectiveMedian_Flagged_clean"] for r in results}
    assert flagged == {int(ref.mask.sum())}  # one mask for the whole group
    assert all(r["measurements"]["SelectiveMedian_NPlanes_clean"] == 16 for r in results)


def test_selectivemedian_wrong_dimensionality(rng):
    m = instantiate_module("SelectiveMedian")
    m.image_name.value = "raw"
    frame = rng.normal(100, 3, (20, 20))
    with pytest.raises(CamcorrError, match="wrong image dimensionality.*3D image"):
        h.GroupRunner(m, {"raw": [frame]}).run()
    m2 = instantiate_module("SelectiveMedian")
    m2.image_name.value = "raw"
    m2.mode.value = sm_mod.MODE_2D
    with pytest.raises(CamcorrError, match="wrong image dimensionality.*2D image"):
        h.GroupRunner(m2, {"raw": [rng.normal(100, 3, (4, 20, 20))] * 2}).run()


def test_selectivemedian_bad_setting_is_tied_to_it():
    m = instantiate_module("SelectiveMedian")
    m.params.by_name["save_mask"][0].value = True
    m.mask_name.value = m.output_name.value
    with pytest.raises(ValidationError) as info:
        m.validate_module(None)
    assert info.value.get_setting() is m.mask_name
    m.mask_name.value = "mask"
    m.params.by_name["mean_k"][0].value = "0.2"  # below the operation's minimum (1)
    with pytest.raises(ValidationError, match="out of range") as info:
        m.validate_module(None)
    assert info.value.get_setting() is m.params.main_setting("mean_k")


# ----------------------------------------------------------------------------- Flash
@pytest.fixture(scope="module")
def flash_setup(tmp_path_factory):
    """Simulated LLS acquisition (2 channels, known carryover) + a parameter file of the camera."""
    from camcorr.flash.params import params_from_arrays, write_params
    from camcorr.simulate import lls

    folder = tmp_path_factory.mktemp("flash")
    acq = lls.write_acquisition(folder, n_planes=5, n_timepoints=1, seed=4, camera_seed=0)
    calib = lls.sensor_maps((1001, 1011, 1048, 1050), seed=0)
    pfile = write_params(params_from_arrays(calib.A, calib.B, calib.offset, calib.noise,
                                            roi=calib.roi, serial="100740", date="20240517"),
                         folder)
    return acq, pfile


def _flash_module(pfile, settings=None, names=("ch0", "ch1"), time_series=False):
    f = instantiate_module("FlashCarryoverCorrect")
    loc, name = f.params.by_name["params"]
    loc.value = loc.join_string("Elsewhere...", str(Path(pfile).parent))
    name.value = Path(pfile).name
    if settings is not None:
        sloc, sname = f.params.by_name["settings"]
        sloc.value = sloc.join_string("Elsewhere...", str(Path(settings).parent))
        sname.value = Path(settings).name
    f.params.by_name["time_series"][0].value = time_series
    for i in range(1, len(names)):
        f.add_channel()
    for g, n in zip(f.channels, names):
        g.input_name.value, g.output_name.value = n, n + "_flash"
    return f


def test_flash_volumes_match_engine_and_truth(flash_setup):
    import camcorr.flash as flash

    acq, pfile = flash_setup
    f = _flash_module(pfile, acq.settings)
    raws = [acq.raw[0, c] for c in range(2)]
    res = h.GroupRunner(f, {"ch0": [raws[0]], "ch1": [raws[1]]}).run(keep=["ch0_flash",
                                                                           "ch1_flash"])[0]
    params = flash.crop_params(flash.read_params(pfile), flash.parse_settings(acq.settings).roi)
    ref = flash.correct_interleaved(raws, params, dtype="keep")
    for c in range(2):
        got = res[f"ch{c}_flash"].pixel_data * 65535.0
        assert np.abs(got - ref[c].astype(np.float64)).max() <= 1.0
    # ground truth: the dark channel ch1 holds only carryover + noise; after correction its
    # mean is the clipped read noise (< 1 ADU), where the raw carried ~tens of ADU
    truth_carry = acq.carryover[0, 1].mean()
    assert truth_carry > 10
    assert (res["ch1_flash"].pixel_data * 65535.0).mean() < 1.5
    meas = res["measurements"]
    assert abs(meas["FlashCarryover_MeanCarryover_ch1_flash"] - truth_carry) < 0.05 * truth_carry


def test_flash_time_series_uses_previous_cycle(flash_setup):
    """2D mode: frame t is corrected with the raw frame t-1 of the same group."""
    import camcorr.flash as flash

    acq, pfile = flash_setup
    params = flash.crop_params(flash.read_params(pfile), flash.parse_settings(acq.settings).roi)
    frames = list(acq.raw[0, 0])  # 5 consecutive frames of ch0
    f = _flash_module(pfile, acq.settings, names=("frame",), time_series=True)
    f.params.by_name["dtype"][0].value = "float32"
    results = h.GroupRunner(f, {"frame": frames}).run(keep=["frame_flash"])
    for t, r in enumerate(results):
        ref = flash.correct_frame(frames[t], frames[t - 1] if t else None, params)
        np.testing.assert_allclose(r["frame_flash"].pixel_data * 65535.0, ref, atol=0.01)
    assert results[0]["measurements"]["FlashCarryover_MeanCarryover_frame_flash"] == 0.0


def test_flash_missing_parameter_file(tmp_path, flash_setup):
    acq, pfile = flash_setup
    f = _flash_module(tmp_path / "FlashParam_missing.tif", acq.settings)
    with pytest.raises(ValidationError, match="file not found") as info:
        f.validate_module(None)
    assert info.value.get_setting() is f.params.main_setting("params")
    with pytest.raises(CamcorrError, match="FlashCarryoverCorrect .setting 'Carryover parameter"):
        h.GroupRunner(f, {"ch0": [acq.raw[0, 0]], "ch1": [acq.raw[0, 1]]}).run()


def test_flash_roi_mismatch(tmp_path, flash_setup):
    from camcorr.simulate import lls

    acq, pfile = flash_setup
    outside = lls.write_settings(tmp_path / "far_Settings.txt", (1500, 1500, 1531, 1531))
    f = _flash_module(pfile, outside)
    with pytest.raises(ValidationError, match="outside the calibration ROI") as info:
        f.validate_module(None)
    assert info.value.get_setting() is f.params.main_setting("settings")
    # no Settings.txt: maps of the calibration ROI (48x40) do not fit the 32x32 images
    f2 = _flash_module(pfile, None)
    with pytest.raises(CamcorrError):
        h.GroupRunner(f2, {"ch0": [acq.raw[0, 0]], "ch1": [acq.raw[0, 1]]}).run()


def test_flash_wrong_dimensionality(flash_setup):
    acq, pfile = flash_setup
    f = _flash_module(pfile, acq.settings)
    with pytest.raises(CamcorrError, match="wrong image dimensionality"):
        h.GroupRunner(f, {"ch0": [acq.raw[0, 0, 0]], "ch1": [acq.raw[0, 1, 0]]}).run()
