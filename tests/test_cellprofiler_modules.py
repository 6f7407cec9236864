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

import estimateresidualgain as gain_mod  # noqa: E402
import flashcarryovercorrect as fcc_mod  # noqa: E402
import flatfieldfromemptytiles as ff_mod  # noqa: E402
import selectivemedian as sm_mod  # noqa: E402

PLUGINS = {sm_mod: "SelectiveMedian", fcc_mod: "FlashCarryoverCorrect",
           gain_mod: "EstimateResidualGain", ff_mod: "FlatfieldFromEmptyTiles"}

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
@pytest.mark.parametrize("plugin", list(PLUGINS), ids=lambda m: m.__name__)
def test_setting_keys_are_pinned_to_the_revision(plugin):
    """A change of the operation's parameters must come with a new revision + upgrade path."""
    cls = getattr(plugin, PLUGINS[plugin])
    assert cls.setting_keys() == plugin.SETTING_HISTORY[cls.variable_revision_number]
    assert max(plugin.SETTING_HISTORY) == cls.variable_revision_number
    # settings generated from the operation: label, default and help of a parameter
    mod = cls()
    params = getattr(mod, "params", None) or getattr(mod, "estimate")
    for name, settings in params.by_name.items():
        p = params.param[name]
        assert settings[-1].text == p.text().replace(":", " -")
        assert p.help.split(".")[0].replace("*", "").strip()[:20] in \
            settings[-1].doc.replace("\\", "")


def test_help_has_table_and_doi():
    for name in PLUGINS.values():
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
    assert m.variable_revision_number == sm_mod.SelectiveMedian.variable_revision_number
    assert (m.image_name.value, m.output_name.value, m.mode.value) == \
        ("stack", "clean", sm_mod.MODE_2D)
    assert m.params.raw("rule") == "knee" and m.params.raw("k") == 7.5
    assert m.params.raw("mean_pass") is True and m.params.raw("save_mask") is True
    assert m.params.raw("mean_k") is None  # new in revision 2: its default (blank = same as k)
    assert m.params.raw("variance_map") is None  # new in revision 3: not set
    assert m.params.raw("fpr") == pytest.approx(5e-4)
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


def test_selectivemedian_chi2_with_variance_map_matches_engine(rng, tmp_path):
    """Rule 'chi2' with a read-noise variance map file: same mask as the engine, 2D group mode."""
    import tifffile

    import camcorr.median as median
    from camcorr.simulate import noise

    read = np.full((40, 48), 4.0)
    read[5, 7] = 400.0  # a hot pixel known from the map (10x the median read-noise std)
    sim = noise.camera_stack(read, 12, electrons=(10.0, 60.0), bad={4.0: 20}, rng=rng)
    tifffile.imwrite(tmp_path / "var.tif", read.astype(np.float32))
    m = instantiate_module("SelectiveMedian")
    m.image_name.value, m.output_name.value = "frame", "clean"
    m.mode.value = sm_mod.MODE_2D
    m.params.by_name["rule"][0].value = "chi2"
    m.params.by_name["variance_map"][1].value = str(tmp_path / "var.tif")  # absolute path
    assert m.params.by_name["fpr"][0] in m.visible_settings()
    results = h.GroupRunner(m, {"frame": list(sim.stack)}).run(keep=["clean"])
    ref = median.selective_median(sim.stack.astype(np.float32), rule="chi2", variance_map=read)
    assert ref.mask[5, 7] and ref.bad.map_mask[5, 7]
    assert ref.mask[sim.factor == 4.0].mean() >= 0.9
    got = np.stack([r["clean"].pixel_data for r in results]) * 65535.0
    np.testing.assert_allclose(got, ref.corrected, atol=1e-2)
    assert {r["measurements"]["SelectiveMedian_Flagged_clean"] for r in results} == \
        {int(ref.mask.sum())}


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
    m.params.by_name["mean_k"][0].value = "0"  # the engine needs a positive threshold
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


# ----------------------------------------------------------------------------- EstimateResidualGain
@pytest.fixture(scope="module")
def gain_movie():
    from camcorr.simulate import camera

    rng = np.random.default_rng(11)
    gm = camera.gain_map((40, 36), column_std=0.06, row_std=0.04, rng=rng)
    return gm, camera.integrating_movie(gm.gain, 10, rng=rng)


def test_gain_group_matches_engine_and_truth(gain_movie):
    import camcorr.gain as gain
    from camcorr.simulate import camera

    gm, mv = gain_movie
    m = instantiate_module("EstimateResidualGain")
    m.image_name.value = "frame"
    m.params.by_name["offset"][0].value = 100.0
    m.params.by_name["output_normalized"][0].value = True
    res = h.GroupRunner(m, {"frame": list(mv.frames)}).run(keep=["Gain", "GainNormalized"])
    ref = gain.estimate_gain(mv.frames, offset=100.0)
    for r in res:  # the same gain image and report in every cycle of the group
        np.testing.assert_allclose(r["Gain"].pixel_data, ref.gain, atol=1e-6)
        assert r["measurements"]["ResidualGain_Std_Gain"] == pytest.approx(ref.report["std"])
        assert r["measurements"]["ResidualGain_NFrames_Gain"] == 10
        assert r["measurements"]["ResidualGain_Flagged_Gain"] == int(ref.report["flagged"])
    norm = res[4]["GainNormalized"].pixel_data * 65535.0
    expected = (mv.frames[4].astype(np.float64) - 100.0) / ref.gain + 100.0
    np.testing.assert_allclose(norm, np.clip(expected, 0, 65535), atol=0.01)
    # truth (accuracy is the engine suite's business; 10 small frames): the gain is there
    assert camera.r_squared(res[0]["Gain"].pixel_data, gm.gain) > 0.4


def test_gain_residual_mode_with_the_true_reference_is_flat(gain_movie):
    gm, mv = gain_movie
    m = instantiate_module("EstimateResidualGain")
    m.image_name.value = "frame"
    m.use_gain_ref.value = True
    m.gain_ref_name.value = "ref"
    m.params.by_name["offset"][0].value = 100.0
    ref_frames = [gm.gain.astype(np.float32) * 65535.0 / 4] * len(mv.frames)  # scale-free ref
    res = h.GroupRunner(m, {"frame": list(mv.frames), "ref": ref_frames}).run(keep=["Gain"])
    blind = h.GroupRunner(_gain_module(), {"frame": list(mv.frames)}).run(keep=["Gain"])
    assert res[0]["Gain"].pixel_data.std() < 0.5 * blind[0]["Gain"].pixel_data.std()


def _gain_module():
    m = instantiate_module("EstimateResidualGain")
    m.image_name.value = "frame"
    m.params.by_name["offset"][0].value = 100.0
    return m


def test_gain_errors(gain_movie):
    gm, mv = gain_movie
    m = _gain_module()
    with pytest.raises(CamcorrError, match="wrong image dimensionality"):
        h.GroupRunner(m, {"frame": [mv.frames[:3], mv.frames[3:6]]}).run()
    m = _gain_module()
    m.params.by_name["sigmas"][0].value = "0, one, 2"
    with pytest.raises(ValidationError, match="not a list of numbers") as info:
        m.validate_module(None)
    assert info.value.get_setting() is m.params.main_setting("sigmas")
    m = _gain_module()
    with pytest.raises(CamcorrError, match="group of 1 frame"):
        h.GroupRunner(m, {"frame": [mv.frames[0]]}).run()


# ----------------------------------------------------------------------------- Flatfield
@pytest.fixture(scope="module")
def mosaic():
    from camcorr.simulate import tiles

    return tiles.simulate_tiles(5, 5, (40, 44), offset=100.0, seed=3)  # corners are empty


def _ff_module(**estimate):
    m = instantiate_module("FlatfieldFromEmptyTiles")
    m.image_name.value = "tile"
    m.tile_source.value = ff_mod.TILE_ORDER
    for k, v in estimate.items():
        m.estimate.by_name[k][0].value = v
    return m


def test_flatfield_empty_tiles_matches_engine_and_truth(mosaic):
    import camcorr.flatfield as ff
    from camcorr.flatfield.operations import estimate_kwargs

    assert mosaic.empty_tiles
    empty = ",".join(str(t) for t in mosaic.empty_tiles)
    m = _ff_module(method="empty-tiles", empty_tiles=empty, offset=100.0, grid="5, 5")
    res = h.GroupRunner(m, {"tile": list(mosaic.tiles)}).run(keep=["FlatfieldCorrected",
                                                                    "Flatfield"])
    values = m.estimate.values()
    profiles = ff.estimate_flatfield([t.astype(np.float32) for t in mosaic.tiles],
                                     **estimate_kwargs(values))
    low = float(profiles.flatfield.min())
    for i, r in enumerate(res):
        # Rescale 'ceiling' (default): the flat-field divided by is the estimate / its minimum
        np.testing.assert_allclose(r["Flatfield"].pixel_data, profiles.flatfield / low,
                                   rtol=1e-6)
        ref = ff.apply_flatfield(mosaic.tiles[i].astype(np.float32), profiles, dtype=np.float32,
                                 rescale="ceiling")
        np.testing.assert_allclose(r["FlatfieldCorrected"].pixel_data * 65535.0,
                                   np.minimum(ref, 65535), atol=0.01)
        meas = r["measurements"]
        assert meas["Flatfield_TileNumber_FlatfieldCorrected"] == i + 1
        assert meas["Flatfield_RescaleFactor_FlatfieldCorrected"] == pytest.approx(low)
        assert meas["Flatfield_Baseline_FlatfieldCorrected"] == 0.0  # not asked for
        assert meas["Flatfield_ClippedToMaximum_FlatfieldCorrected"] == 0
        # only pixels at or below the offset (the darkfield) can reach 0
        assert meas["Flatfield_ClippedToZero_FlatfieldCorrected"] == \
            np.count_nonzero(mosaic.tiles[i] < 100)
        assert meas["Flatfield_CVAfter_FlatfieldCorrected"] == \
            pytest.approx(profiles.quality["cv_after"])
        # held-out figures beside the in-sample ones, and the smoothing the data chose
        ho = profiles.quality["held_out"]
        assert meas["Flatfield_CVAfterHeldOut_FlatfieldCorrected"] == pytest.approx(ho["cv_after"])
        assert meas["Flatfield_CornerCentreAfterHeldOut_FlatfieldCorrected"] == \
            pytest.approx(ho["corner_centre_after"])
        assert meas["Flatfield_OverFitting_FlatfieldCorrected"] == int(profiles.quality["overfit"])
        assert meas["Flatfield_Sigma_FlatfieldCorrected"] == profiles.meta["sigma"]
        assert profiles.meta["smoothing_chosen"]
    # truth: the known flat-field is recovered to a few percent (up to the rescaling)
    got = res[0]["Flatfield"].pixel_data
    err = np.abs((got / got.mean()) / (mosaic.flatfield / mosaic.flatfield.mean()) - 1)
    assert np.percentile(err, 99) < 0.08  # 4 empty tiles of 40x44 pixels, read + shot noise
    assert res[0]["measurements"]["Flatfield_CVAfter_FlatfieldCorrected"] < \
        res[0]["measurements"]["Flatfield_CVBefore_FlatfieldCorrected"]


def test_flatfield_z_range_on_3d_tiles():
    import camcorr.flatfield as ff
    from camcorr.flatfield.operations import estimate_kwargs
    from camcorr.simulate import tiles

    sim = tiles.simulate_tiles(2, 2, (32, 40), n_z=12, z_levels=(3, 8), offset=100.0, seed=5)
    m = _ff_module(method="z-range", z_levels="3, 8", grid="2, 2", offset=100.0)
    res = h.GroupRunner(m, {"tile": list(sim.tiles)}).run(keep=["FlatfieldCorrected",
                                                                 "Flatfield"])
    profiles = ff.estimate_flatfield([t.astype(np.float32) for t in sim.tiles],
                                     **estimate_kwargs(m.estimate.values()))
    assert res[0]["FlatfieldCorrected"].volumetric
    ref = ff.apply_flatfield(sim.tiles[1].astype(np.float32), profiles, dtype=np.float32,
                             rescale="ceiling")
    np.testing.assert_allclose(res[1]["FlatfieldCorrected"].pixel_data * 65535.0,
                               np.minimum(ref, 65535), atol=0.01)
    # truth (the engine's accuracy is tested in its own suite): the shape is recovered
    assert np.corrcoef(profiles.flatfield.ravel(), sim.flatfield.ravel())[0, 1] > 0.95


def test_flatfield_measured_models_folder(tmp_path, mosaic):
    import camcorr.flatfield as ff

    folder = tmp_path / "models"
    ff.save_profiles(ff.Profiles(flatfield=mosaic.flatfield, darkfield=mosaic.darkfield),
                     folder / "GFP" / "profiles.npz")
    m = _ff_module(method="auto", channel="GFP")
    loc = m.estimate.by_name["models_folder"][0]
    loc.value = loc.join_string("Elsewhere...", str(folder))
    m.apply.by_name["rescale"][0].value = "none"  # the measured flat-field as it is
    res = h.GroupRunner(m, {"tile": list(mosaic.tiles[:3])}).run(keep=["FlatfieldCorrected"])
    exact = (mosaic.tiles[2].astype(np.float64) - mosaic.darkfield) / mosaic.flatfield
    got = res[2]["FlatfieldCorrected"].pixel_data * 65535.0
    np.testing.assert_allclose(got, np.clip(exact, 0, 65535), atol=0.05)


def test_flatfield_tile_number_beyond_the_group(mosaic):
    m = _ff_module(method="empty-tiles", empty_tiles="1,40", offset=100.0)
    with pytest.raises(CamcorrError, match="FlatfieldFromEmptyTiles.*Empty tiles") as info:
        h.GroupRunner(m, {"tile": list(mosaic.tiles)}).run()
    assert "40" in str(info.value) and "25" in str(info.value)


def test_flatfield_tile_numbers_from_metadata_must_cover_the_group(mosaic):
    m = _ff_module(method="empty-tiles", empty_tiles="1")
    m.tile_source.value = ff_mod.TILE_METADATA
    with pytest.raises(CamcorrError, match="no metadata 'Tile'"):
        h.GroupRunner(m, {"tile": list(mosaic.tiles[:4])}).run()


# ----------------------------------------------------------------------------- readers
def test_loading_the_plugins_leaves_the_readers_alone():
    """Reader preferences are the user's: Bio-Formats stays available for other pipelines (TIFF
    without Bio-Formats is asked for on the command line: --enable-readers imageio_reader)."""
    import subprocess
    import sys

    code = (
        "import sys, cellprofiler_core.preferences as p; p.set_headless();"
        "from cellprofiler_core.reader import fill_readers; fill_readers(check_config=True);"
        "from cellprofiler_core.constants.reader import AVAILABLE_READERS as A;"
        "before = sorted(A); sys.path.insert(0, sys.argv[1]);"
        "p.set_plugin_directory(sys.argv[1], globally=False);"
        "import cellprofiler_core.modules;"
        "from cellprofiler_core.utilities.core.plugins import load_plugins;"
        "load_plugins(modules_only=True);"
        "from cellprofiler_core.utilities.core.modules import instantiate_module as i;"
        "[i(n) for n in ('SelectiveMedian', 'FlashCarryoverCorrect', 'EstimateResidualGain',"
        " 'FlatfieldFromEmptyTiles')];"
        "print(before == sorted(A), 'Bio-Formats' in A,"
        " p.config_read_typed('Reader.Bio-Formats.enabled', bool),"
        " p.config_read_typed('Reader.ImageIO.read_tif', bool))")
    out = subprocess.run([sys.executable, "-c", code, str(h.PLUGINS)], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-4:] == ["True", "True", "None", "None"], out.stdout


def test_saveimages_compression_patch_is_lossless(tmp_path):
    import skimage.io
    import tifffile

    import _compat

    assert _compat.patch_saveimages_compression() in (True, False)
    vol = np.arange(3 * 8 * 9, dtype=np.uint16).reshape(3, 8, 9) * 300
    skimage.io.imsave(tmp_path / "v.tif", vol, compression=(8, 6))  # what SaveImages passes
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "v.tif"), vol)
