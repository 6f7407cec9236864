"""Every pipeline in pipelines/ run headless, exactly as documented::

    python -m cellprofiler -c -r -p PIPELINE -i IN -o OUT --plugins-directory cellprofiler_plugins

on simulated data with known truth (camcorr.simulate) and on real data from ../shared/data where
it fits.  The saved images and the exported measurements (Image.csv) are compared numerically
with the engine called directly on the same files (within 1 ADU).  Bad settings must stop the run
with the module's own message.  One CellProfiler start per test (several image sets per run).
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile

from conftest import require_module

require_module("cellprofiler", "CellProfiler (cellprofiler extra, headless package)")

import cp_helpers as h  # noqa: E402

PIPELINES = h.PIPELINES


def _ok(proc):
    assert proc.returncode == 0, h.explain(proc)
    text = proc.stdout + proc.stderr
    assert "Bio-Formats" not in text or "Reader.Bio-Formats" in text, h.explain(proc)
    return proc


def _out(out_dir, pattern):
    found = sorted(Path(out_dir).glob(pattern))
    assert len(found) == 1, f"{pattern}: {[p.name for p in Path(out_dir).iterdir()]}"
    return tifffile.imread(found[0])


def _row(rows, column, value):
    matches = [r for r in rows if value in r[column]]
    assert len(matches) == 1, (column, value, [r[column] for r in rows])
    return matches[0]


def test_every_pipeline_is_tested():
    tested = {"selective_median.cppipe", "flash_carryover.cppipe", "residual_gain.cppipe",
              "flatfield_empty_tiles.cppipe", "chain_flash_median_flatfield.cppipe",
              "flash_carryover_timeseries.cppipe", "selective_median_2d_frames.cppipe"}
    present = {p.name for p in PIPELINES.glob("*.cppipe")}
    assert present <= tested, f"untested pipelines: {present - tested}"
    for p in PIPELINES.glob("*.cppipe"):
        head = p.read_text().splitlines()[:3]
        assert head[1] == "Version:5" and head[2] == "DateRevision:500", p  # saved by CP 5.x


# ------------------------------------------------------------------------- SelectiveMedian
def test_selective_median_pipeline_sim_and_real(tmp_path, rng, shared_data):
    import camcorr.median as median

    in_dir, out_dir = tmp_path / "in", tmp_path / "out"
    in_dir.mkdir()
    # simulated: clean noise + 6 pixels with 20x the noise (known truth)
    stack = rng.normal(300, 3, (20, 48, 40))
    hot = [(3, 4), (10, 30), (25, 12), (40, 39), (0, 20), (47, 0)]
    for y, x in hot:
        stack[:, y, x] += rng.normal(0, 60, 20)
    stack = np.clip(np.rint(stack), 0, 65535).astype(np.uint16)
    tifffile.imwrite(in_dir / "sim_stack.tif", stack)
    # real: a raw lattice light-sheet bead stack from a Flash4
    shutil.copy(shared_data / "lls_raw_bead_stack" / "psf.tif", in_dir / "beads.tif")

    _ok(h.run_headless(PIPELINES / "selective_median.cppipe", in_dir, out_dir))
    rows = h.read_image_csv(out_dir)
    assert len(rows) == 2
    for name in ("sim_stack", "beads"):
        raw = tifffile.imread(in_dir / f"{name}.tif")
        ref = median.selective_median(raw)
        got = _out(out_dir, f"{name}_median.tif*")
        mask = _out(out_dir, f"{name}_badpixels.tif*")
        assert got.dtype == np.uint16 and got.shape == raw.shape
        assert np.abs(got.astype(np.int64) - ref.corrected.astype(np.int64)).max() <= 1
        assert np.array_equal(mask > 0, ref.mask)
        row = _row(rows, "FileName_raw", name)
        assert int(float(row["SelectiveMedian_Flagged_MedianCorrected"])) == ref.counts["flagged"]
        assert float(row["SelectiveMedian_PercentFlagged_MedianCorrected"]) == \
            pytest.approx(ref.counts["percent"], rel=1e-6)
        assert int(float(row["SelectiveMedian_NPlanes_MedianCorrected"])) == raw.shape[0]
    sim_mask = _out(out_dir, "sim_stack_badpixels.tif*") > 0
    assert all(sim_mask[y, x] for y, x in hot)  # truth: every noisy pixel found
    assert sim_mask.sum() <= len(hot) + 2       # and (almost) nothing else


def test_selective_median_pipeline_rejects_2d_images(tmp_path, rng):
    in_dir, out_dir = tmp_path / "in", tmp_path / "out"
    in_dir.mkdir()
    tifffile.imwrite(in_dir / "single.tif", rng.integers(90, 110, (32, 32)).astype(np.uint16))
    proc = h.run_headless(PIPELINES / "selective_median.cppipe", in_dir, out_dir)
    text = proc.stdout + proc.stderr
    assert "SelectiveMedian image 'raw': wrong image dimensionality" in text, h.explain(proc)
    assert not list(out_dir.glob("*_median.tif*"))


def test_selective_median_2d_frames_pipeline_two_movies(tmp_path, rng, shared_data):
    """'2D frames of the group': each movie (group) of 2D frame files is one stack."""
    import camcorr.median as median
    from camcorr.simulate import noise

    in_dir, out_dir = tmp_path / "in", tmp_path / "out"
    in_dir.mkdir()
    var = noise.load_variance_map(shared_data / "scmos_variance_gain_maps" / "varsub.mat")
    sims = {}
    for name, (y0, x0) in (("movA", (0, 0)), ("movB", (200, 300))):
        sim = noise.noisy_stack(var[y0:y0 + 40, x0:x0 + 48], 24, n_rts=8, rng=rng)
        sims[name] = sim
        for t, frame in enumerate(sim.stack):
            tifffile.imwrite(in_dir / f"{name}_t{t:04d}.tif", frame)
    _ok(h.run_headless(PIPELINES / "selective_median_2d_frames.cppipe", in_dir, out_dir))
    rows = h.read_image_csv(out_dir)
    assert len(rows) == 48
    for name, sim in sims.items():
        ref = median.selective_median(sim.stack)  # the engine on the stacked frames
        mask = _out(out_dir, f"{name}_badpixels.tif*") > 0
        assert mask.shape == sim.stack.shape[1:]
        assert np.array_equal(mask, ref.mask)
        for t in range(sim.stack.shape[0]):
            got = _out(out_dir, f"{name}_t{t:04d}_median.tif*")
            assert got.dtype == np.uint16 and got.shape == sim.stack.shape[1:]
            assert np.abs(got.astype(np.int64) - ref.corrected[t].astype(np.int64)).max() <= 1
        mrows = [r for r in rows if r["Metadata_Movie"] == name]
        assert len(mrows) == sim.stack.shape[0]
        for r in mrows:  # one mask for the whole group
            assert int(float(r["SelectiveMedian_Flagged_MedianCorrected"])) == \
                ref.counts["flagged"]
            assert float(r["SelectiveMedian_PercentFlagged_MedianCorrected"]) == \
                pytest.approx(ref.counts["percent"], rel=1e-6)
            assert int(float(r["SelectiveMedian_NPlanes_MedianCorrected"])) == \
                sim.stack.shape[0]
        # truth: the pixels 5x noisier than the median (real map tail + RTS) are found
        assert sim.truth.sum() >= 20
        found = (mask & sim.truth).sum()
        assert found >= 0.9 * sim.truth.sum(), (mask.sum(), sim.truth.sum())
    assert not np.array_equal(_out(out_dir, "movA_badpixels.tif*"),
                              _out(out_dir, "movB_badpixels.tif*"))  # one mask per group


# ------------------------------------------------------------------------- Flash
def _flash_folder(folder, n_timepoints=2, seed=5):
    from camcorr.flash.params import params_from_arrays, write_params
    from camcorr.simulate import lls

    acq = lls.write_acquisition(folder, n_planes=6, n_timepoints=n_timepoints, seed=seed,
                                camera_seed=0)
    calib = lls.sensor_maps((1001, 1011, 1048, 1050), seed=0)
    pfile = write_params(params_from_arrays(calib.A, calib.B, calib.offset, calib.noise,
                                            roi=calib.roi, serial="100740", date="20240517"),
                         folder)
    assert pfile.name == "FlashParam_sn100740_roi1001-1011-1048-1050_date20240517.tif"
    return acq, pfile


def test_flash_pipeline_matches_engine_and_truth(tmp_path):
    import camcorr.flash as flash

    in_dir, out_dir = tmp_path / "in", tmp_path / "out"
    acq, pfile = _flash_folder(in_dir)
    _ok(h.run_headless(PIPELINES / "flash_carryover.cppipe", in_dir, out_dir))
    params = flash.crop_params(flash.read_params(pfile), flash.parse_settings(acq.settings).roi)
    rows = h.read_image_csv(out_dir)
    assert len(rows) == 2  # two timepoints, channels matched by metadata
    for t in range(2):
        raws = [tifffile.imread(acq.files[t][c]) for c in range(2)]
        ref = flash.correct_interleaved(raws, params, dtype="keep")
        ref_f = flash.correct_interleaved(raws, params)
        row = _row(rows, "FileName_ch0", f"stack{t:04d}")
        for c in range(2):
            got = _out(out_dir, acq.files[t][c].stem + "_flash.tif*")
            assert got.dtype == np.uint16
            assert np.abs(got.astype(np.int64) - ref[c].astype(np.int64)).max() <= 1
            removed = (raws[c] - params.offset) - ref_f[c]
            assert float(row[f"FlashCarryover_MeanCarryover_ch{c}_flash"]) == \
                pytest.approx(float(removed.mean()), abs=1e-3)
        # truth: dark channel ch1 after correction ~ its carryover-free content (0 + noise)
        dark = _out(out_dir, acq.files[t][1].stem + "_flash.tif*").astype(np.float64)
        truth = acq.raw_nocarry[t, 1].astype(np.float64) - params.offset
        assert abs(dark.mean() - np.clip(truth, 0, None).mean()) < 0.5
        assert acq.carryover[t, 1].mean() > 10  # there was a lot to remove


def test_flash_timeseries_pipeline_matches_engine_and_truth(tmp_path):
    """2D time series: MOVIE_tNNNN_chC.tif, grouped by movie; the frame before a cycle's ch0 is
    the previous cycle's raw ch1 of the same movie (acquisition order ch0 t0, ch1 t0, ch0 t1...)."""
    import camcorr.flash as flash
    from camcorr.flash.params import params_from_arrays, write_params
    from camcorr.simulate import lls

    in_dir, out_dir = tmp_path / "in", tmp_path / "out"
    in_dir.mkdir()
    n_t = 4
    movies = {}
    for i, name in enumerate(("movA", "movB")):
        # 'per Z' interleaving = a 2-channel time series: plane z is timepoint z
        acq = lls.write_acquisition(in_dir, n_planes=n_t, seed=11 + i, camera_seed=0,
                                    peaks=(3000.0, 0.0), write=False)
        movies[name] = acq
        for t in range(n_t):
            for c in range(2):
                tifffile.imwrite(in_dir / f"{name}_t{t:04d}_ch{c}.tif", acq.raw[0, c, t])
    roi = movies["movA"].truth.roi
    lls.write_settings(in_dir / "cell1_Settings.txt", roi)
    calib = lls.sensor_maps((1001, 1011, 1048, 1050), seed=0)
    pfile = write_params(params_from_arrays(calib.A, calib.B, calib.offset, calib.noise,
                                            roi=calib.roi, serial="100740", date="20240517"),
                         in_dir)
    _ok(h.run_headless(PIPELINES / "flash_carryover_timeseries.cppipe", in_dir, out_dir))
    params = flash.crop_params(flash.read_params(pfile), roi)
    rows = h.read_image_csv(out_dir)
    assert len(rows) == 2 * n_t
    for name, acq in movies.items():
        seq = [acq.raw[0, c, t] for t in range(n_t) for c in range(2)]  # acquisition order
        for i, raw in enumerate(seq):
            t, c = divmod(i, 2)
            ref = flash.correct_frame(raw, seq[i - 1] if i else None, params)
            got = _out(out_dir, f"{name}_t{t:04d}_ch{c}_flash.tif*")
            assert got.dtype == np.uint16 and got.shape == raw.shape
            assert np.abs(got.astype(np.int64) - h.to_uint16(ref).astype(np.int64)).max() <= 1
            row = _row(rows, f"FileName_ch{c}", f"{name}_t{t:04d}_")
            removed = (raw - params.offset) - ref
            assert float(row[f"FlashCarryover_MeanCarryover_ch{c}_flash"]) == \
                pytest.approx(float(removed.mean()), abs=1e-3)
            if i == 0:  # first frame of a group: offset only (the previous movie is not used)
                assert float(row["FlashCarryover_MeanCarryover_ch0_flash"]) == 0.0
            if c == 1:
                # truth: dark channel after correction ~ its carryover-free content (0 + noise)
                truth = acq.raw_nocarry[0, 1, t].astype(np.float64) - params.offset
                got = got.astype(np.float64)
                assert abs(got.mean() - np.clip(truth, 0, None).mean()) < 0.5
                assert acq.carryover[0, 1, t].mean() > 10  # there was a lot to remove
                assert float(row["FlashCarryover_MeanCarryover_ch1_flash"]) == \
                    pytest.approx(float(acq.carryover[0, 1, t].mean()), rel=0.1)


def test_flash_timeseries_refuses_a_run_started_inside_a_group(tmp_path):
    """-f 2 -l 4 would make timepoint 1 look like a first frame: the module stops instead."""
    in_dir, out_dir = tmp_path / "in", tmp_path / "out"
    h.write_flash_timeseries(in_dir)
    proc = h.run_headless(PIPELINES / "flash_carryover_timeseries.cppipe", in_dir, out_dir,
                          extra=["-f", "2", "-l", "3"])
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0, h.explain(proc)
    assert "starts in the middle of a group" in text and "Group_Index 2" in text, h.explain(proc)
    assert not list(out_dir.glob("*_flash.tif*"))


def test_flash_pipeline_missing_parameter_file(tmp_path):
    in_dir, out_dir = tmp_path / "in", tmp_path / "out"
    acq, pfile = _flash_folder(in_dir, n_timepoints=1)
    pfile.unlink()
    proc = h.run_headless(PIPELINES / "flash_carryover.cppipe", in_dir, out_dir)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "FlashCarryoverCorrect" in text and "Carryover parameter file: file not found" in text, \
        h.explain(proc)
    assert not list(out_dir.glob("*_flash.tif*"))


def test_flash_pipeline_roi_mismatch(tmp_path):
    from camcorr.simulate import lls

    in_dir, out_dir = tmp_path / "in", tmp_path / "out"
    acq, pfile = _flash_folder(in_dir, n_timepoints=1)
    lls.write_settings(acq.settings, (1500, 1500, 1531, 1531))  # data ROI off the calibration
    proc = h.run_headless(PIPELINES / "flash_carryover.cppipe", in_dir, out_dir)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "FlashCarryoverCorrect" in text and "outside the calibration ROI" in text, \
        h.explain(proc)
    assert not list(out_dir.glob("*_flash.tif*"))


# ------------------------------------------------------------------------- EstimateResidualGain
def test_residual_gain_pipeline_two_movies(tmp_path):
    import camcorr.gain as gain
    from camcorr.simulate import camera

    in_dir, out_dir = tmp_path / "in", tmp_path / "out"
    in_dir.mkdir()
    rng = np.random.default_rng(21)
    gm = camera.gain_map((40, 36), column_std=0.06, row_std=0.04, rng=rng)
    movies = {}
    for name in ("movA", "movB"):
        mv = camera.integrating_movie(gm.gain, 8, rng=rng)
        movies[name] = mv.frames
        for t, frame in enumerate(mv.frames):
            tifffile.imwrite(in_dir / f"{name}_t{t:04d}.tif", frame)
    _ok(h.run_headless(PIPELINES / "residual_gain.cppipe", in_dir, out_dir))
    rows = h.read_image_csv(out_dir)
    assert len(rows) == 16
    for name, frames in movies.items():
        ref = gain.estimate_gain(frames, offset=100.0)  # the pipeline's settings
        got = _out(out_dir, f"{name}_gain.tif*")
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, ref.gain, atol=1e-5)
        for t in (0, 7):
            norm = _out(out_dir, f"{name}_t{t:04d}_gainnorm.tif*").astype(np.float64)
            expected = (frames[t] - 100.0) / ref.gain.astype(np.float64) + 100.0
            assert np.abs(norm - np.clip(expected, 0, 65535)).max() <= 1.0
        mrows = [r for r in rows if r["Metadata_Movie"] == name]
        assert len(mrows) == 8
        for r in mrows:
            assert float(r["ResidualGain_Std_Gain"]) == pytest.approx(ref.report["std"], rel=1e-6)
            assert int(float(r["ResidualGain_Flagged_Gain"])) == int(ref.report["flagged"])
            assert int(float(r["ResidualGain_NFrames_Gain"])) == 8
        # truth: the simulated gain is recovered (column/row stripes dominate)
        assert np.corrcoef(got.ravel(), gm.gain.ravel())[0, 1] > 0.6


# ------------------------------------------------------------------------- Flat-field
WSI_EMPTY = (1, 7, 8, 10, 27, 37, 44, 47, 48, 53, 54, 55, 56, 58, 59, 60, 61, 62, 63)


def _check_flatfield_run(in_dir, out_dir, names, *, atol=1.0):
    """Compare a flatfield_empty_tiles run with the engine on the same files."""
    import camcorr.flatfield as ff

    tiles = [tifffile.imread(in_dir / n).astype(np.float32) for n in names]
    profiles = ff.estimate_flatfield(tiles, method="empty-tiles", empty_tiles=list(WSI_EMPTY),
                                     grid=(7, 9), order="serpentine", darkfield=0.0, sigma="auto",
                                     statistic="auto", n_planes=None, seed=0)
    low = float(profiles.flatfield.min())
    flat = _out(out_dir, "flatfield.tif*")  # what was divided by: Rescale 'ceiling'
    np.testing.assert_allclose(flat, profiles.flatfield / low, rtol=1e-5)
    assert flat.min() == pytest.approx(1.0)
    rows = h.read_image_csv(out_dir)
    assert len(rows) == 63
    for i in (0, 5, 30, 62):
        ref = np.minimum(ff.apply_flatfield(tiles[i], profiles, dtype=np.float32,
                                            rescale="ceiling"), 65535)
        got = _out(out_dir, Path(names[i]).stem + "_flatfield.tif*").astype(np.float64)
        assert np.abs(got - ref).max() <= atol
        row = _row(rows, "FileName_tile", names[i])
        assert int(float(row["Flatfield_TileNumber_FlatfieldCorrected"])) == i + 1
        assert float(row["Flatfield_CVAfter_FlatfieldCorrected"]) == \
            pytest.approx(profiles.quality["cv_after"], rel=1e-6)
        assert float(row["Flatfield_RescaleFactor_FlatfieldCorrected"]) == pytest.approx(low)
        assert float(row["Flatfield_Baseline_FlatfieldCorrected"]) == 0.0
    return flat, rows


def _check_no_data_lost(in_dir, out_dir, names, offset=0.0):
    """No pixel above the offset became 0; no more saturated pixels than the raw data had; the
    clipped-pixel measurements say so."""
    rows = h.read_image_csv(out_dir)
    zeros = sat_raw = sat_out = 0
    for name in names:
        raw = tifffile.imread(in_dir / name)
        got = _out(out_dir, Path(name).stem + "_flatfield.tif*")
        zeros += int(np.count_nonzero((got == 0) & (raw > offset)))
        sat_raw += int(np.count_nonzero(raw == 65535))
        sat_out += int(np.count_nonzero(got == 65535))
        row = _row(rows, "FileName_tile", name)
        assert int(float(row["Flatfield_ClippedToZero_FlatfieldCorrected"])) == 0
        assert int(float(row["Flatfield_ClippedToMaximum_FlatfieldCorrected"])) == 0
    assert zeros == 0
    assert sat_out <= sat_raw
    return zeros, sat_raw, sat_out


def test_flatfield_pipeline_real_wsi_brain(tmp_path, shared_data):
    src = shared_data / "basicpy_wsi_brain"
    names = sorted(p.name for p in src.glob("*.tif"))
    assert len(names) == 63
    out_dir = tmp_path / "out"
    _ok(h.run_headless(PIPELINES / "flatfield_empty_tiles.cppipe", src, out_dir))
    flat, rows = _check_flatfield_run(src, out_dir, names)
    zeros, sat_raw, sat_out = _check_no_data_lost(src, out_dir, names)
    assert sat_raw == 14  # the raw mosaic's saturated pixels (65535), still at most 14 after
    row = rows[0]
    assert float(row["Flatfield_CVAfter_FlatfieldCorrected"]) < \
        float(row["Flatfield_CVBefore_FlatfieldCorrected"])


def test_flatfield_pipeline_simulated_mosaic(tmp_path, rng):
    """7 x 9 serpentine mosaic, the pipeline's empty tiles hold background only (known flat)."""
    from camcorr.simulate.tiles import make_flatfield

    in_dir, out_dir = tmp_path / "in", tmp_path / "out"
    in_dir.mkdir()
    shape = (40, 48)
    truth = make_flatfield(shape, vignetting=0.4)
    names = []
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    for n in range(1, 64):
        scene = np.full(shape, 400.0)
        if n not in WSI_EMPTY:  # specimen blobs
            for _ in range(4):
                cy, cx = rng.uniform(0, shape[0]), rng.uniform(0, shape[1])
                scene += 1500 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 30.0)
        tile = rng.poisson(scene * truth) + rng.normal(0, 2, shape)
        names.append(f"sim_tile{n:04d}.tif")
        tifffile.imwrite(in_dir / names[-1], np.clip(np.rint(tile), 0, 65535).astype(np.uint16))
    _ok(h.run_headless(PIPELINES / "flatfield_empty_tiles.cppipe", in_dir, out_dir))
    flat, rows = _check_flatfield_run(in_dir, out_dir, names)
    # truth: 19 empty tiles x 400 photons -> the flat-field within ~2 % of the truth inside;
    # the 2-pixel Gaussian with reflected borders bends the curved edges of these small tiles
    flat = flat / flat.mean()  # the saved one has minimum 1 (Rescale 'ceiling')
    err = np.abs(flat / (truth / truth.mean()) - 1)
    assert np.percentile(err[4:-4, 4:-4], 99) < 0.03 and np.median(err) < 0.015
    corrected = _out(out_dir, "sim_tile0001_flatfield.tif*").astype(np.float64)
    raw = tifffile.imread(in_dir / "sim_tile0001.tif").astype(np.float64)
    assert corrected.std() < 0.5 * raw.std()  # an empty tile becomes flat


# ------------------------------------------------------------------------- chain
def test_chain_pipeline_matches_engine_chain(tmp_path):
    import camcorr.flash as flash
    import camcorr.flatfield as ff
    import camcorr.median as median

    in_dir, out_dir = tmp_path / "in", tmp_path / "out"
    from camcorr.flash.params import params_from_arrays, write_params
    from camcorr.simulate import lls

    acq = lls.write_acquisition(in_dir, n_planes=6, n_timepoints=3, seed=9, camera_seed=0,
                                peaks=(3000.0, 1500.0))
    calib = lls.sensor_maps((1001, 1011, 1048, 1050), seed=0)
    pfile = write_params(params_from_arrays(calib.A, calib.B, calib.offset, calib.noise,
                                            roi=calib.roi, serial="100740", date="20240517"),
                         in_dir)
    # a hot pixel in every stack of ch0 (the median step must remove it)
    for t in range(3):
        raw = tifffile.imread(acq.files[t][0])
        raw[:, 7, 9] = np.where(np.arange(6) % 2, 4000, 150)
        tifffile.imwrite(acq.files[t][0], raw)
    _ok(h.run_headless(PIPELINES / "chain_flash_median_flatfield.cppipe", in_dir, out_dir))

    # the same chain with the engine, float32 like the plugins (flash output rounded/clipped)
    params = flash.crop_params(flash.read_params(pfile), flash.parse_settings(acq.settings).roi)
    stage = {0: [], 1: []}
    for t in range(3):
        raws = [tifffile.imread(acq.files[t][c]).astype(np.float32) for c in range(2)]
        outs = flash.correct_interleaved(raws, params)
        for c in range(2):
            clipped = np.clip(np.rint(outs[c]), 0, 65535).astype(np.float32)
            stage[c].append(median.selective_median(clipped).corrected)
    rows = h.read_image_csv(out_dir)
    assert len(rows) == 3
    for c in range(2):
        profiles = ff.estimate_flatfield(stage[c], method="empty-tiles", darkfield=0.0)
        np.testing.assert_allclose(_out(out_dir, f"ch{c}_flatfield.tif*"),
                                   profiles.flatfield / profiles.flatfield.min(), rtol=1e-5)
        for t in range(3):
            ref = np.minimum(ff.apply_flatfield(stage[c][t], profiles, dtype=np.float32,
                                                rescale="ceiling"), 65535)
            got = _out(out_dir, acq.files[t][c].stem + "_corrected.tif*")
            assert got.dtype == np.uint16 and got.shape == (6, 32, 32)
            assert np.abs(got.astype(np.float64) - ref).max() <= 1.0
    hot = _out(out_dir, acq.files[0][0].stem + "_corrected.tif*")[:, 7, 9].astype(float)
    assert np.abs(np.diff(hot)).max() < 1000  # the 150/4000 flicker (RTS pixel) is gone
    for r in rows:
        assert int(float(r["SelectiveMedian_Flagged_ch0_median"])) >= 1
        assert float(r["FlashCarryover_MeanCarryover_ch1_flash"]) > 0


def test_flatfield_pipeline_tile_beyond_the_group(tmp_path):
    """The shipped pipeline with its empty-tile list edited to a tile the group does not have."""
    h.init_cellprofiler()
    from cellprofiler_core.pipeline import Pipeline

    pipeline = Pipeline()
    pipeline.load(str(PIPELINES / "flatfield_empty_tiles.cppipe"))
    ff_module = [m for m in pipeline.modules() if m.module_name == "FlatfieldFromEmptyTiles"][0]
    ff_module.estimate.by_name["grid"][0].value = ""
    ff_module.estimate.by_name["empty_tiles"][0].value = "1,70"
    edited = tmp_path / "edited.cppipe"
    with open(edited, "w") as fd:
        pipeline.dump(fd)
    in_dir, out_dir = tmp_path / "in", tmp_path / "out"
    in_dir.mkdir()
    for n in range(1, 13):
        tifffile.imwrite(in_dir / f"tile{n:04d}.tif", np.full((24, 24), 300 + n, np.uint16))
    proc = h.run_headless(edited, in_dir, out_dir)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "FlatfieldFromEmptyTiles (setting 'Empty tiles')" in text and "70" in text, \
        h.explain(proc)
    assert not list(out_dir.glob("*_flatfield.tif*"))
