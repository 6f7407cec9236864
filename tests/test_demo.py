"""camcorr demo on a reduced size: its report's numbers against the simulator's truth."""
import importlib.util
import json
import subprocess
import sys
import numpy as np
import pytest
import tifffile

from camcorr import CamcorrError
from camcorr import demo as demo_mod
from camcorr.demo import cellprofiler as demo_cp

from conftest import ROOT, require

NEEDS = demo_mod.stage_availability()


def _require_engine():
    missing = [k for k, v in NEEDS.items() if not v]
    require(not missing, "engine stages " + ", ".join(missing))


def check_truth(qc, runner):
    """The numbers the tiny demo must reach (the tolerances the README states)."""
    t = qc["flash"]["truth"]
    assert t["A_median_rel_error"] < 0.05
    assert t["B_median_rel_error"] < 0.10
    assert t["offset_median_abs_error_adu"] < 0.2
    assert t["noise_median_rel_error"] < 0.06  # 180 dark frames: ~5 % per pixel
    co = qc["carryover_removal"][0]
    assert co["n_samples"] > 1000 and co["true_carryover_mean_adu"] > 10
    assert 95 <= co["removed_mean_percent"] <= 105
    m = qc["median"]["truth"]
    assert m["true_bad"] >= 3 and m["recall_percent"] >= 99
    assert m["false_alarm_percent_of_good"] < 0.5
    assert m["per_stack"]["false_alarm_percent_of_good_mean"] < 0.2
    assert m["per_stack"]["recall_percent_min"] >= 50  # under bright beads the std over Z hides them
    ff = qc["flatfield"]
    assert ff["truth"]["rms_error_percent"] < 3.0
    assert ff["corner_centre_before"] < 0.75  # the simulated vignetting
    assert 0.95 <= ff["corner_centre_after"] <= 1.05
    g = qc["gain"]
    assert g["truth"]["r2"] >= 0.9  # 100 frames of 36 x 32 pixels, independent fields
    assert g["engine_report"]["fields"] == "independent"
    assert "in_sample_vs_heldout" in g and g["in_sample_vs_heldout"]["R^2 between the halves"] > 0.5
    assert g["truth"]["true_std"] > 0.04
    fr = qc["frc"]
    assert fr["fraction_above_threshold_before"] > 0.3  # fixed pattern shared by the halves
    assert fr["fraction_above_threshold_after"] < 0.1
    # the projections: the corrected MIP of the dim channel lost the carryover
    p = qc["projections"][0]
    assert p["mip_after_mean_adu"] < p["mip_before_mean_adu"]
    assert qc["run"]["runner"] == runner


def test_tiny_demo_with_the_engine_runner(tmp_path):
    _require_engine()
    res = demo_mod.run_demo(tmp_path / "demo", size="tiny", runner="engine", quiet=True)
    assert res.report.is_file()
    qc = json.loads((tmp_path / "demo" / "report" / "qc.json").read_text())
    check_truth(qc, "engine")
    for png in ("carryover_pixel.png", "projection_1.png", "projection_2.png", "hot_pixels.png",
                "gain.png", "frc.png", "flatfield.png"):
        assert (tmp_path / "demo" / "report" / png).stat().st_size > 10_000
    # outputs: float32 corrected stacks with the raw names; inputs untouched
    raw = sorted((tmp_path / "demo" / "raw").glob("*.tif"))
    cor = sorted((tmp_path / "demo" / "corrected").glob("*.tif"))
    assert [p.name for p in raw] == [p.name for p in cor]
    assert tifffile.imread(raw[0]).dtype == np.uint16
    # the demo's own page opens in headless Chromium without errors, every figure loaded
    from test_report import CHROMIUM, console_errors, run_chromium

    require(CHROMIUM is not None, "Chromium (/usr/bin/chromium) for the report test")
    log, probe, dom, shot = run_chromium(res.report, tmp_path)
    assert console_errors(log) == [], log
    assert probe == "images=8 broken=", probe
    assert "Against the simulator" in dom
    # held-out gain figures beside the in-sample ones, and the all-scales limit, on the page
    assert "std reproduced by held-out frames" in dom and "R^2 between the halves" in dom
    assert "r2_expected" in dom and "noise_limited" in dom
    # 'camcorr report' on the same run folder gives the same numbers
    from camcorr.report import build_report

    again = build_report(tmp_path / "demo", tmp_path / "rep2")
    assert again.qc["flash"] == qc["flash"] and again.qc["median"] == qc["median"]


def test_tiny_demo_with_cellprofiler(tmp_path):
    _require_engine()
    pipes = demo_cp.find_pipelines_dir(ROOT / "pipelines")
    require(pipes is not None and (pipes / "chain_flash_median_flatfield.cppipe").is_file(),
            "pipelines/chain_flash_median_flatfield.cppipe")
    require(importlib.util.find_spec("cellprofiler") is not None
            and importlib.util.find_spec("cellprofiler_core") is not None, "CellProfiler")
    res = demo_mod.run_demo(tmp_path / "demo", size="tiny", runner="cellprofiler", quiet=True,
                            pipelines=pipes)
    qc = json.loads((tmp_path / "demo" / "report" / "qc.json").read_text())
    check_truth(qc, "cellprofiler")
    assert (tmp_path / "demo" / "cellprofiler" / "cellprofiler.log").is_file()


def test_demo_cli_tells_where_to_look(tmp_path):
    _require_engine()
    out = tmp_path / "d"
    proc = subprocess.run([sys.executable, "-m", "camcorr", "demo", "--out", str(out), "--size",
                           "tiny", "--runner", "engine"], capture_output=True, text=True,
                          timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert str((out / "report" / "index.html").resolve()) in proc.stdout
    assert "Checks against the simulator's truth" in proc.stdout


def test_demo_bad_inputs(tmp_path, monkeypatch):
    with pytest.raises(CamcorrError, match="unknown demo size"):
        demo_mod.run_demo(tmp_path, size="huge")
    with pytest.raises(CamcorrError, match="unknown runner"):
        demo_mod.run_demo(tmp_path, runner="fiji")
    monkeypatch.setenv("CAMCORR_PIPELINES", str(tmp_path / "nowhere"))
    with pytest.raises(CamcorrError, match="pipeline"):
        demo_cp.check_cellprofiler()


def test_demo_pipelines_folder_is_named_not_searched(tmp_path, monkeypatch):
    """The pipelines folder comes from --pipelines, $CAMCORR_PIPELINES or the current folder,
    in that order; a folder elsewhere is never found by walking up."""
    monkeypatch.delenv("CAMCORR_PIPELINES", raising=False)
    monkeypatch.chdir(tmp_path)  # no pipelines/ here, the checkout is not searched
    assert demo_cp.find_pipelines_dir() is None
    with pytest.raises(CamcorrError, match="--pipelines") as err:
        demo_cp.check_cellprofiler()
    assert "--runner engine" in str(err.value)
    (tmp_path / "pipelines").mkdir()
    assert demo_cp.find_pipelines_dir() == tmp_path / "pipelines"
    monkeypatch.setenv("CAMCORR_PIPELINES", str(tmp_path / "env"))
    assert demo_cp.find_pipelines_dir() == tmp_path / "env"
    assert demo_cp.find_pipelines_dir(ROOT / "pipelines") == ROOT / "pipelines"
    # the command line: a wrong --pipelines stops before any work, without a traceback
    proc = subprocess.run([sys.executable, "-m", "camcorr", "demo", "--out", str(tmp_path / "d"),
                           "--size", "tiny", "--pipelines", str(tmp_path / "nowhere")],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "--pipelines" in proc.stderr and not (tmp_path / "d" / "raw").exists()


def test_tiny_demo_calibrates_on_a_dask_cluster(tmp_path):
    _require_engine()
    from conftest import require_module

    distributed = require_module("distributed", "dask distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  protocol="tcp", host="127.0.0.1", scheduler_port=0,
                                  dashboard_address=None) as cluster:
        res = demo_mod.run_demo(tmp_path / "demo", size="tiny", runner="engine", quiet=True,
                                scheduler=cluster.scheduler_address)
    t = res.qc["flash"]["truth"]
    assert t["A_median_rel_error"] < 0.05 and t["offset_median_abs_error_adu"] < 0.2


def test_adapt_pipeline_substitutes_only_file_settings():
    text = ("notes:[\"FlashParam_*.tif beside the data\"]\n"
            "    Carryover parameter file:FlashParam_sn100740_roi1001-1011-1048-1050_date20240517.tif\n"
            "    Settings.txt of the data (optional):cell1_Settings.txt\n"
            "    Z-levels (low, high):50, 600\n")
    out = demo_cp.adapt_pipeline(text, params_name="FlashParam_sn1_roi1-1-9-9_date20260101.tif",
                                  settings_name="run_Settings.txt", z_levels=(3, 30))
    assert "file:FlashParam_sn1_roi1-1-9-9_date20260101.tif\n" in out
    assert "FlashParam_*.tif beside" in out  # notes untouched
    assert "(optional):run_Settings.txt" in out
    assert "Z-levels (low, high):3, 30" in out
