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


def test_correct_multichannel_hyperstack(folders, tmp_path, capsys):
    """One ImageJ hyperstack (ZCYX, as Fiji saves a 2-channel stack) is the channels of one
    timepoint: the result equals correct_interleaved on the channel stacks, exactly, with the
    C/Z layout, dtype and calibration kept; TZCYX is corrected per timepoint."""
    from camcorr.flash import correct_interleaved, parse_settings
    from camcorr.flash.cli import SINGLE_CHANNEL_NOTE, prepare_params

    ct, acq = folders
    params_path = next(ct.folder.glob("FlashParam_*.tif"), None)
    if params_path is None:
        assert main(["flash", "calibrate", str(ct.folder), "--no-progress"]) == 0
        params_path = next(ct.folder.glob("FlashParam_*.tif"))
    settings = parse_settings(acq.settings)
    cut = prepare_params(read_params(params_path), acq.raw.shape[-2:], settings)
    data = tmp_path / "data"
    data.mkdir()
    zcyx = np.ascontiguousarray(np.moveaxis(acq.raw[0], 0, 1))        # (Z, C, Y, X)
    hs = data / "cell_t0.tif"
    tifffile.imwrite(hs, zcyx, imagej=True, resolution=(1 / 0.104, 1 / 0.104),
                     metadata={"axes": "ZCYX", "spacing": 0.3, "unit": "micron"})
    for dtype in ("keep", "float32"):
        out = tmp_path / f"out_{dtype}"
        capsys.readouterr()
        assert main(["flash", "correct", str(hs), "-p", str(params_path), "-s",
                     str(acq.settings), "--dtype", dtype, "-d", "0.9", "-o", str(out)]) == 0
        assert SINGLE_CHANNEL_NOTE not in capsys.readouterr().err
        direct = correct_interleaved([acq.raw[0, 0], acq.raw[0, 1]], cut, dampening=0.9,
                                     dtype=dtype)
        with tifffile.TiffFile(out / hs.name) as tif:
            res = tif.series[0].asarray()
            assert tif.series[0].axes == "ZCYX"
            assert tif.imagej_metadata["spacing"] == 0.3
            assert tif.imagej_metadata["unit"] == "micron"
            assert tif.pages[0].tags["XResolution"].value[0] / \
                tif.pages[0].tags["XResolution"].value[1] == pytest.approx(1 / 0.104, rel=1e-5)
        assert res.dtype == (np.uint16 if dtype == "keep" else np.float32)
        assert np.array_equal(res[:, 0], direct[0]) and np.array_equal(res[:, 1], direct[1])
        # the wrong reading (each channel alone) differs: the channels really are interleaved
        alone = correct_interleaved([acq.raw[0, 1]], cut, dampening=0.9, dtype=dtype)[0]
        assert not np.array_equal(res[:, 1], alone)
    # a time-lapse hyperstack (T, Z, C, Y, X): each timepoint on its own
    tzcyx = np.ascontiguousarray(np.moveaxis(acq.raw, 1, 2))
    ts = data / "cell_all.tif"
    tifffile.imwrite(ts, tzcyx, imagej=True, metadata={"axes": "TZCYX"})
    out = tmp_path / "out_t"
    assert main(["flash", "correct", str(ts), "-p", str(params_path), "-s", str(acq.settings),
                 "-o", str(out)]) == 0
    res = tifffile.imread(out / ts.name)
    assert res.shape == tzcyx.shape
    for t in range(acq.raw.shape[0]):
        direct = correct_interleaved(list(acq.raw[t]), cut, dtype="keep")
        assert all(np.array_equal(res[t, :, c], direct[c]) for c in range(2))
    # a hyperstack mixed with other stacks is ambiguous: clear error
    assert main(["flash", "correct", str(hs), str(acq.files[0][0]), "-p", str(params_path),
                 "-s", str(acq.settings), "-o", str(tmp_path / "bad")]) == 2
    assert "hyperstack" in capsys.readouterr().err


def test_single_channel_stack_logs_note(folders, tmp_path, capsys):
    """A single single-channel stack: corrected as a single-channel acquisition, one-line note."""
    from camcorr.flash import correct_interleaved, parse_settings
    from camcorr.flash.cli import prepare_params

    ct, acq = folders
    params_path = next(ct.folder.glob("FlashParam_*.tif"), None)
    if params_path is None:
        assert main(["flash", "calibrate", str(ct.folder), "--no-progress"]) == 0
        params_path = next(ct.folder.glob("FlashParam_*.tif"))
    capsys.readouterr()
    out = tmp_path / "one"
    assert main(["flash", "correct", str(acq.files[0][1]), "-p", str(params_path), "-s",
                 str(acq.settings), "-o", str(out)]) == 0
    err = capsys.readouterr().err
    notes = [l for l in err.splitlines() if "single-channel acquisition" in l]
    assert len(notes) == 1 and "hyperstack with C channels" in notes[0]
    cut = prepare_params(read_params(params_path), acq.raw.shape[-2:],
                         parse_settings(acq.settings))
    direct = correct_interleaved([acq.raw[0, 1]], cut, dtype="keep")[0]
    assert np.array_equal(tifffile.imread(out / acq.files[0][1].name), direct)
    # two channel stacks: no note
    assert main(["flash", "correct", *map(str, acq.files[0]), "-p", str(params_path), "-s",
                 str(acq.settings), "-o", str(tmp_path / "two")]) == 0
    assert "single-channel acquisition" not in capsys.readouterr().err
