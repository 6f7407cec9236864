"""`camcorr flash calibrate` / `camcorr flash correct` end to end, and their error handling."""
import subprocess
import sys

import numpy as np
import pytest
import tifffile

from camcorr.cli import main
from camcorr.flash import read_params
from camcorr.flash.demo import carryover_removed, run_flash_demo
from camcorr.operations import get_operation
from camcorr.simulate import lls


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    base = tmp_path_factory.mktemp("cli")
    ct = lls.write_calibration_folder(base / "cal", seed=2, roi=(500, 700, 539, 731))
    acq = lls.write_acquisition(base / "acq", seed=9, camera_seed=2, roi=(510, 700, 539, 725),
                                n_planes=10, n_timepoints=2)
    return ct, acq


def test_operations_defined():
    cal = get_operation("flash-calibrate")
    cor = get_operation("flash-correct")
    assert cal.command == ("flash", "calibrate") and cor.command == ("flash", "correct")
    assert cor.cellprofiler_module == "FlashCarryoverCorrect"
    cp = {p.name for p in cor.params_for("cellprofiler")}
    assert {"params", "settings", "dampening", "dtype", "time_series"} <= cp
    assert "images" not in cp and "output" not in cp
    for op in (cal, cor):
        for p in op.params:
            assert p.help and (p.label or p.cli)


def test_calibrate_then_correct_folder(folders, capsys):
    ct, acq = folders
    assert main(["flash", "calibrate", str(ct.folder), "--no-progress"]) == 0
    out = capsys.readouterr().out.strip().splitlines()[-1]
    params = read_params(out)
    assert out.startswith(str(ct.folder)) and params.roi == (500, 700, 539, 731)
    assert list(ct.folder.glob("FlashFitQuality_*.tif"))
    outdir = acq.folder.parent / "corrected"
    before = {f: f.read_bytes() for row in acq.files for f in row}
    assert main(["flash", "correct", str(acq.folder), "--params", out, "-o", str(outdir)]) == 0
    for t, row in enumerate(acq.files):
        for c, f in enumerate(row):
            res = tifffile.imread(outdir / f.name)
            assert res.dtype == np.uint16 and res.shape == acq.raw[t, c].shape
    for f, data in before.items():            # inputs untouched
        assert f.read_bytes() == data
    # float32 output of the dark channel: carryover removed
    out32 = acq.folder.parent / "corrected32"
    files = [str(f) for f in acq.files[1]]
    assert main(["flash", "correct", *files, "-p", out, "-s", str(acq.settings), "--dtype",
                 "float32", "-o", str(out32)]) == 0
    cor1 = tifffile.imread(out32 / acq.files[1][1].name)
    assert cor1.dtype == np.float32
    cut_offset = tifffile.imread(out)[2][0:30, 0:26]  # rows R_cal-R_data.., cols T_data-T_cal..
    assert carryover_removed(cor1, acq.raw[1, 1], acq.raw_nocarry[1, 1], cut_offset) > 0.95


def test_cli_errors_exit_2_without_traceback(folders, tmp_path):
    ct, acq = folders
    (tmp_path / "empty").mkdir()
    exe = [sys.executable, "-m", "camcorr"]
    r = subprocess.run(exe + ["flash", "calibrate", str(tmp_path / "empty")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr and "no TIFF" in r.stderr
    # parameter / data shape mismatch without Settings.txt
    small = lls.write_calibration_folder(tmp_path / "c", roi=(0, 0, 11, 9), powers=(0, 1, 10, 100),
                                         n_planes=4, n_dark_files=1, dark_planes=4)
    assert main(["flash", "calibrate", str(small.folder), "--no-progress", "-o",
                 str(tmp_path / "p.tif")]) == 0
    stack = tmp_path / "data" / "x_CamA_ch0_stack0000_488nm.tif"
    stack.parent.mkdir()
    tifffile.imwrite(stack, np.zeros((2, 8, 8), np.uint16))
    r = subprocess.run(exe + ["flash", "correct", str(stack), "--params", str(tmp_path / "p.tif")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr and "--settings" in r.stderr
    # data ROI outside the calibration
    params = next(ct.folder.glob("FlashParam_*.tif"))
    outside = lls.write_settings(tmp_path / "o_Settings.txt", (495, 700, 534, 731))
    r = subprocess.run(exe + ["flash", "correct", str(acq.files[0][0]), "-p", str(params), "-s",
                              str(outside)], capture_output=True, text=True)
    assert r.returncode == 2 and "outside the calibration" in r.stderr
    # never overwrite the inputs
    assert main(["flash", "correct", str(acq.folder), "-p", str(params), "-o",
                 str(acq.folder)]) == 2
    # wrong dtype of the data
    cplx = tmp_path / "data" / "y_CamA_ch0_stack0000_488nm.tif"
    tifffile.imwrite(cplx, np.zeros((2, 12, 10), np.complex64))
    assert main(["flash", "correct", str(cplx), "-p", str(tmp_path / "p.tif")]) == 2


def test_help_is_readable(capsys):
    with pytest.raises(SystemExit):
        main(["flash", "correct", "--help"])
    text = capsys.readouterr().out
    assert "acquisition order" in text and "--dampening" in text and "Settings.txt" in text


def test_demo(tmp_path):
    r = run_flash_demo(tmp_path / "demo", shape=(40, 32), data_shape=(24, 20), n_planes=10,
                       verbose=False)
    assert r["carryover_removed"] > 0.95
    assert r["bright_residual_rms"] < r["noise_rms"]
    assert (tmp_path / "demo" / "flash_demo.json").is_file()
    assert len(list((tmp_path / "demo" / "corrected").glob("*.tif"))) == 4
