"""camcorr report: manifest, QC numbers against a known synthetic run, figures, HTML in Chromium."""
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
import tifffile

from camcorr import CamcorrError
from camcorr.report import build_report
from camcorr.report.manifest import read_manifest, write_manifest
from camcorr.report.report import (_corner_centre, _corner_centre_sd, calibration_pixel_data,
                                   carryover_removed, frc_cutoff, truth_checks)
from camcorr.report.figures import diagonal_profile

from conftest import require

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or (
    "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)


def make_run(root: Path, rng) -> dict:
    """A small synthetic run with exactly known numbers (no engine involved)."""
    h, w = 24, 32
    A = np.full((h, w), 50.0)
    A[3, 4] = 120.0  # the pixel with the largest carryover
    B = np.full((h, w), 0.002)
    off = np.full((h, w), 100.0)
    noise = np.full((h, w), 2.0)
    calib = root / "calib"
    calib.mkdir()
    for k, level in enumerate([0, 200, 800, 2000, 4000]):
        bright = off + level + rng.normal(0, 2, (5, h, w))
        dark = off + A * (1 - np.exp(-B * (bright - off))) + rng.normal(0, 2, (5, h, w))
        tifffile.imwrite(calib / f"b{k:02d}_Iter_CamA_ch0_stack0000_488nm.tif",
                         bright.astype(np.float32))
        tifffile.imwrite(calib / f"b{k:02d}_Iter_CamA_ch1_stack0000_642nm.tif",
                         dark.astype(np.float32))
    tifffile.imwrite(calib / "dark_Iter_CamA_ch0_stack0000_488nm.tif",
                     (off + rng.normal(0, 2, (4, h, w))).astype(np.float32),
                     photometric="minisblack")
    params = calib / "FlashParam_sn1_roi1-1-32-24_date20260101.tif"
    tifffile.imwrite(params, np.stack([A, B, off + 0.1, noise]).astype(np.float32),
                     photometric="minisblack")
    np.savez(root / "flash_truth.npz", A=A, B=B, offset=off, noise=noise, x_max=4000)
    # projections: raw has a stripe of carryover, corrected has none
    clean = np.zeros((6, h, w))
    clean[:, 10:14, 10:20] = 300
    co = np.zeros((6, h, w))
    co[:, 5, :] = 40.0
    raw = off + clean + co
    tifffile.imwrite(root / "raw.tif", raw.astype(np.float32))
    tifffile.imwrite(root / "corrected.tif", (clean + 0.1 * co).astype(np.float32))
    tifffile.imwrite(root / "clean.tif", clean.astype(np.float32))
    tifffile.imwrite(root / "carryover.tif", co.astype(np.float32))
    # hot pixels: 10 true, 9 found + 1 false alarm
    truth = np.zeros((h, w), bool)
    truth.flat[rng.choice(h * w, 10, replace=False)] = True
    mask = truth.copy()
    mask[np.nonzero(truth)[0][0], np.nonzero(truth)[1][0]] = False
    mask[~truth & (np.arange(h * w).reshape(h, w) == np.flatnonzero(~truth)[5])] = True
    tifffile.imwrite(root / "mask.tif", mask.astype(np.uint8))
    tifffile.imwrite(root / "hot_truth.tif", truth.astype(np.uint8))
    # gain: estimate = truth * (1 + small noise)
    gtrue = 1 + 0.05 * rng.standard_normal((h, w))
    gest = gtrue + 0.005 * rng.standard_normal((h, w))
    tifffile.imwrite(root / "gain.tif", gest.astype(np.float32))
    tifffile.imwrite(root / "gain_truth.tif", gtrue.astype(np.float32))
    # FRC curves: 'before' stays high, 'after' crosses the threshold at 0.25
    f = np.linspace(0, 1, 21)
    json.dump({"frequency": f.tolist(), "before": np.full(21, 0.9).tolist(),
               "after": np.clip(1 - 4 * f, -0.05, 1).tolist(), "threshold": np.full(21, 0.0).tolist()},
              open(root / "frc.json", "w"))
    # flat-field: radial falloff; before = flat * 1000, after = 1000
    yy, xx = np.mgrid[:h, :w]
    flat = 1 - 0.3 * (((yy - h / 2) / h) ** 2 + ((xx - w / 2) / w) ** 2) * 4
    flat /= flat.mean()
    np.savez(root / "profiles.npz", flatfield=flat.astype(np.float32))
    tifffile.imwrite(root / "flat_truth.tif", flat.astype(np.float32))
    tifffile.imwrite(root / "ff_before.tif", (1000 * flat).astype(np.float32))
    tifffile.imwrite(root / "ff_after.tif", np.full((h, w), 1000, np.float32))
    manifest = {
        "title": "synthetic run",
        "flash": {"calibration_dir": "calib", "params": str(params.relative_to(root))},
        "projections": [{"label": "dark channel", "before": "raw.tif", "after": "corrected.tif",
                         "offset": 100.0}],
        "median": {"mask": "mask.tif"},
        "gain": {"image": "gain.tif"},
        "frc": {"curves": "frc.json"},
        "flatfield": {"profiles": "profiles.npz", "before": "ff_before.tif", "after": "ff_after.tif"},
        "truth": {"flash": "flash_truth.npz", "hot_mask": "hot_truth.tif", "gain": "gain_truth.tif",
                  "flatfield": "flat_truth.tif",
                  "carryover": [{"label": "dark", "raw": "raw.tif", "corrected": "corrected.tif",
                                 "clean": "clean.tif", "carryover": "carryover.tif",
                                 "offset": 100.0, "noise": 2.0}]},
    }
    write_manifest(root, manifest)
    return {"A": A, "B": B, "gtrue": gtrue, "gest": gest, "mask": mask, "truth": truth}


@pytest.fixture
def synthetic_run(tmp_path, rng):
    run = tmp_path / "run"
    run.mkdir()
    known = make_run(run, rng)
    return run, known


def test_report_numbers_match_the_known_run(synthetic_run):
    run, known = synthetic_run
    res = build_report(run)
    qc = json.loads((run / "report" / "qc.json").read_text())
    assert res.missing == []
    # flash: the default pixel is the one with the largest A, its data has 25 pairs
    assert qc["flash"]["pixel"] == {"row": 3, "col": 4, "A_adu": 120.0, "B_per_adu": 0.002,
                                    "pairs": 25}
    assert qc["flash"]["truth"]["A_median_rel_error"] == 0.0
    assert qc["flash"]["truth"]["offset_median_abs_error_adu"] == pytest.approx(0.1, abs=1e-5)
    # carryover: 90 % of the excess removed
    cr = qc["carryover_removal"][0]
    assert cr["removed_mean_percent"] == pytest.approx(90.0, abs=1e-6)
    assert cr["true_carryover_mean_adu"] == pytest.approx(40.0)
    # hot pixels: 9 of 10 found, one false alarm
    t = qc["median"]["truth"]
    assert qc["median"]["flagged"] == 10
    assert t["recall_percent"] == pytest.approx(90.0)
    assert t["false_alarm_percent_of_good"] == pytest.approx(100 / (24 * 32 - 10), rel=1e-3)
    # gain R^2 and flags computed from the image
    r = np.corrcoef(known["gtrue"].ravel(), known["gest"].ravel())[0, 1]
    assert qc["gain"]["truth"]["r2"] == pytest.approx(r * r, abs=1e-4)
    assert qc["gain"]["std"] == pytest.approx(known["gest"].astype(np.float32).std(), abs=1e-4)
    assert qc["gain"]["flags"]["std>0.04"] is True
    # FRC cutoff 0.25 after, never before
    assert qc["frc"]["cutoff_after"] == pytest.approx(0.25, abs=1e-6)
    assert qc["frc"]["cutoff_before"] is None
    # flat-field: perfect estimate, flat after correction
    assert qc["flatfield"]["truth"]["rms_error_percent"] < 1e-4
    assert qc["flatfield"]["corner_centre_after"] == pytest.approx(1.0)
    assert qc["flatfield"]["corner_centre_before"] < 0.8
    names = {c["name"]: c["pass"] for c in qc["checks"]}
    assert names["pixels with >= 5x the median noise found (%)"] is False  # 90 % < 99 %
    assert names["corner/centre ratio after flat-field"] is True
    for png in ("carryover_pixel.png", "projection_1.png", "hot_pixels.png", "gain.png", "frc.png",
                "flatfield.png"):
        p = run / "report" / png
        assert p.stat().st_size > 10_000, png
        assert png in res.index.read_text()


def test_calibration_pixel_data_reads_pairs_and_subtracts_offset(synthetic_run):
    run, known = synthetic_run
    x, y = calibration_pixel_data(run / "calib", (3, 4), 100.0)
    assert x.size == y.size == 25  # 5 levels x 5 planes; dark offset frames ignored
    model = 120 * (1 - np.exp(-0.002 * x))
    assert np.abs(y - model).max() < 12  # 6 sigma of 2 ADU noise on both frames


def test_carryover_removed_ignores_zero_mean_noise(rng):
    co = np.zeros((50, 20, 20))
    co[:, :5] = 30
    clean = np.full_like(co, 10.0)
    raw = 100 + clean + co + rng.normal(0, 2, co.shape)
    corrected = clean + 0.02 * co + rng.normal(0, 2, co.shape)
    r = carryover_removed(raw, corrected, clean, co, 100.0, 2.0)
    assert r["n_samples"] == 50 * 5 * 20
    assert r["removed_mean_percent"] == pytest.approx(98.0, abs=0.3)
    assert r["removed_energy_percent"] > 99


def test_frc_cutoff_interpolates():
    f = np.array([0, 0.1, 0.2, 0.3])
    assert frc_cutoff(f, [1, 0.8, 0.4, 0.1], [0.5, 0.5, 0.5, 0.5]) == pytest.approx(0.175)
    assert frc_cutoff(f, [1, 1, 1, 1], [0.5] * 4) is None


def test_diagonal_profile_of_a_flat_image_is_one():
    np.testing.assert_allclose(diagonal_profile(np.full((30, 40), 7.0)), 1.0)


def test_manifest_guessed_from_file_names(tmp_path):
    np.savez(tmp_path / "profiles.npz", flatfield=np.ones((8, 8), np.float32))
    tifffile.imwrite(tmp_path / "bad_mask.tif", np.eye(8, dtype=np.uint8))
    m = read_manifest(tmp_path)
    assert m["flatfield"]["profiles"] == "profiles.npz"
    assert m["median"]["mask"] == "bad_mask.tif"
    res = build_report(tmp_path, tmp_path / "out")
    assert set(res.missing) == {"flash", "projections", "gain", "frc"}
    assert res.qc["median"]["flagged"] == 8


def test_bad_inputs_get_clear_errors(tmp_path):
    with pytest.raises(CamcorrError, match="not a folder"):
        build_report(tmp_path / "nope")
    (tmp_path / "camcorr_run.json").write_text("{not json")
    with pytest.raises(CamcorrError, match="not valid JSON"):
        build_report(tmp_path)
    (tmp_path / "camcorr_run.json").write_text("{}")
    with pytest.raises(CamcorrError, match="nothing to report"):
        build_report(tmp_path)
    with pytest.raises(CamcorrError, match="no bright/dark pairs"):
        calibration_pixel_data(tmp_path, (0, 0), 0.0)


def test_cli_report_exit_status(synthetic_run, tmp_path):
    from camcorr.cli import main

    run, _ = synthetic_run
    assert main(["report", str(run), "-o", str(tmp_path / "rep"), "--pixel", "2", "2"]) == 0
    qc = json.loads((tmp_path / "rep" / "qc.json").read_text())
    assert qc["flash"]["pixel"]["row"] == 2 and qc["flash"]["pixel"]["A_adu"] == 50.0
    assert main(["report", str(tmp_path / "missing")]) == 2


_PROBE = """<script>
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var broken = imgs.filter(function (i) { return !i.complete || i.naturalWidth === 0; })
                   .map(function (i) { return i.getAttribute('src'); });
  document.body.setAttribute('data-probe', 'images=' + imgs.length + ' broken=' + broken.join(','));
});
</script>"""


def run_chromium(html: Path, workdir: Path):
    """Load `html` in headless Chromium.

    The page is copied beside itself with a probe script appended that records, after the load
    event, how many images it has and which failed to load (Chromium does not log failed
    ``file://`` image loads).  Returns (Chromium's log, the probe result, the DOM, a screenshot).
    """
    probe_page = html.parent / ("_probe_" + html.name)
    probe_page.write_text(html.read_text().replace("</body>", _PROBE + "</body>"))
    profile = Path(tempfile.mkdtemp(prefix="chromium-profile-", dir=workdir))
    shot = workdir / "screenshot.png"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
             "--virtual-time-budget=10000", "--window-size=1200,2400"]
    try:
        dom = subprocess.run([CHROMIUM, *flags, "--dump-dom", probe_page.resolve().as_uri()],
                             capture_output=True, text=True, timeout=120)
        snap = subprocess.run([CHROMIUM, *flags, f"--screenshot={shot}", html.resolve().as_uri()],
                              capture_output=True, text=True, timeout=120)
    finally:
        probe_page.unlink()
    m = re.search(r'data-probe="([^"]*)"', dom.stdout)
    return dom.stderr + snap.stderr, (m.group(1) if m else None), dom.stdout, shot


def console_errors(log: str):
    """Console lines of a Chromium log: the report has no scripts, so any is an error."""
    return [line for line in log.splitlines() if ":CONSOLE" in line]


def test_report_opens_in_headless_chromium_without_errors(synthetic_run, tmp_path):
    require(CHROMIUM is not None, "Chromium (/usr/bin/chromium) for the report test")
    run, _ = synthetic_run
    res = build_report(run)
    log, probe, dom, shot = run_chromium(res.index, tmp_path)
    assert console_errors(log) == [], log
    assert probe == "images=6 broken=", (probe, log[-2000:])
    assert "<h1>synthetic run</h1>" in dom
    assert shot.is_file() and shot.stat().st_size > 20_000
    # the probe itself works: a page with a missing image and a script error is caught
    broken = res.index.parent / "broken.html"
    broken.write_text("<html><body><img src='missing.png'><script>nope();</script></body></html>")
    log2, probe2, _, _ = run_chromium(broken, tmp_path)
    assert probe2 == "images=1 broken=missing.png"
    assert console_errors(log2)


def test_frc_json_written_by_camcorr_frc_is_reported(tmp_path, rng):
    apost = pytest.importorskip("camcorr.aposteriori")
    a = rng.normal(size=(64, 64))
    res = apost.frc(a + rng.normal(size=(64, 64)), a + rng.normal(size=(64, 64)))
    res.save_json(tmp_path / "frc.json")
    rep = build_report(tmp_path)
    assert "frc" not in rep.missing and (tmp_path / "report" / "frc.png").is_file()
    assert rep.qc["frc"]["cutoff_FRC"] == pytest.approx(res.crossover, abs=0.02)


def test_flatfield_section_shows_held_out_beside_in_sample_and_overfitting(tmp_path):
    """A profiles.npz written by camcorr carries its in-sample and held-out quality; the report
    shows both and says when they disagree."""
    from camcorr.flatfield import estimate_from_empty_tiles, save_profiles
    from camcorr.simulate.tiles import simulate_tiles

    sim = simulate_tiles(4, 5, (96, 96), seed=1)
    for name, kw in (("good", {}), ("raw", {"sigma": 0, "statistic": "mean"})):
        run = tmp_path / name
        run.mkdir()
        prof = estimate_from_empty_tiles(sim.tiles, sim.empty_tiles, darkfield=sim.darkfield,
                                         **kw)
        save_profiles(prof, run / "profiles.npz")
        res = build_report(run, run / "out")
        q = res.qc["flatfield"]
        assert q["estimate_held_out"]["cv_after"] == pytest.approx(
            prof.quality["held_out"]["cv_after"], abs=1e-4)
        assert q["estimate_in_sample"]["cv_after"] == pytest.approx(
            prof.quality["cv_after"], abs=1e-4)
        assert q["estimate_overfit"] == prof.quality["overfit"]
        page = res.index.read_text()
        assert "estimate_held_out" in page and "estimate_in_sample" in page
        if name == "raw":
            assert prof.quality["overfit"] and "over-fitting" in page
        else:
            assert not prof.quality["overfit"] and "no over-fitting" in page
            assert q["estimate_smoothing"]["chosen_by_held_out_validation"] is True


def test_corner_centre_noise_limit_against_monte_carlo(rng):
    """The flat-field check's statistical limit (error propagation) matches the spread of the
    corner/centre ratio of noisy uniform images; the check's tolerance widens only beyond it."""
    shape, level, se = (36, 32), 150.0, 4.0  # the tiny demo's image and per-pixel noise
    ratios = [_corner_centre(level + rng.normal(0, se, shape)) for _ in range(4000)]
    sd = _corner_centre_sd(np.full(shape, level), np.full(shape, se))
    assert sd == pytest.approx(np.std(ratios), rel=0.08)
    assert sd == pytest.approx(se / level * np.sqrt(1 / 64 + 1 / 16), rel=1e-6)
    check = lambda q: [c for c in truth_checks({"flatfield": q})  # noqa: E731
                       if c["name"].startswith("corner/centre")][0]
    c = check({"corner_centre_after": 1.02, "corner_centre_after_noise_sd": 0.005})
    assert c["target"] == "0.97 - 1.03" and c["pass"]
    c = check({"corner_centre_after": 1.035, "corner_centre_after_noise_sd": 0.01})
    assert c["target"] == "0.96 - 1.04" and c["pass"]  # 4 standard deviations of the noise
    assert not check({"corner_centre_after": 1.035})["pass"]
