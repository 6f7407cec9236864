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
              "flatfield_empty_tiles.cppipe", "chain_flash_median_flatfield.cppipe"}
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
