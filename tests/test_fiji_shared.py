"""Every Fiji command in a real ImageJ2/Fiji (``../shared/fiji``: ImageJ 2.16.0 / 1.54p), headless.

The trimmed offline Fiji beside the project is copied once per test session (hard links, its
folder is read-only), the commands are installed into the copy with this Python, and one headless
Fiji run executes a macro that chains the commands like a user's macro would (open an input,
``run(...)``, ``selectImage("<title> (<command>)")``, ``saveAs``).  Each result must equal, pixel
for pixel, what the ``camcorr`` command line writes from the same input; Flatfield Estimate must
write its profiles where the macro says and show the flat-field, and Flatfield Apply must take
those profiles in the same macro.  Error cases must print one ``[Camera Corrections]`` line naming
the dialog label, and no temporary file may be left behind.

Missing Java or ``../shared/fiji`` fails in CI (``CAMCORR_REQUIRE_ALL``) instead of skipping.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

from conftest import ROOT, require

SHARED_FIJI = Path(os.environ.get("CAMCORR_SHARED_FIJI", ROOT.parent / "shared" / "fiji"))


@pytest.fixture(scope="session")
def fiji_copy(tmp_path_factory):
    """A session-wide copy of ``../shared/fiji/Fiji.app`` with the commands installed."""
    app = SHARED_FIJI / "Fiji.app"
    require(app.is_dir() and (app / "fiji-linux").exists(), f"the trimmed Fiji in {SHARED_FIJI}")
    require(shutil.which("java") is not None, "Java (openjdk-17-jre-headless)")
    from fiji_bridge.install import install

    dest = tmp_path_factory.mktemp("fiji") / "Fiji.app"
    try:
        subprocess.run(["cp", "-al", str(app), str(dest)], check=True, capture_output=True)
    except subprocess.CalledProcessError:
        shutil.copytree(app, dest, symlinks=True)
    install(dest, sys.executable)
    return dest


def run_fiji_macro(fiji: Path, macro: str, tmp: Path, timeout: float = 600):
    """Run `macro` headless in `fiji`; returns (stdout+stderr, seconds, java tmp dir)."""
    javatmp = tmp / "javatmp"
    javatmp.mkdir(exist_ok=True)
    path = tmp / "macro.ijm"
    path.write_text(macro)
    env = dict(os.environ, HOME=str(tmp / "home"),
               FIJI_JAVA_OPTS=f"-Djava.io.tmpdir={javatmp}",
               PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    (tmp / "home").mkdir(exist_ok=True)
    t0 = time.monotonic()
    proc = subprocess.run([str(fiji / "fiji-linux"), "--headless", "-macro", str(path), ""],
                          capture_output=True, text=True, timeout=timeout, env=env, cwd=str(tmp))
    return proc.stdout + proc.stderr, time.monotonic() - t0, javatmp


def _cli(*argv):
    from camcorr.cli import main

    status = main([str(a) for a in argv])
    assert status == 0, argv


@pytest.fixture(scope="module")
def headless(fiji_copy, tmp_path_factory):
    """One headless Fiji run shared by the tests below: Selective Median, A Posteriori Normalize,
    Estimate Residual Gain, Fourier Ring Correlation, Flatfield Estimate -> Apply and Flash
    Carryover Calibrate -> Correct chained in one macro as a user writes it (open, ``run``,
    ``selectImage("<title> (<command>)")``, ``saveAs``), and the command line on the same inputs."""
    from types import SimpleNamespace

    from camcorr.simulate import lls

    rng = np.random.default_rng(20261121)
    d = tmp_path_factory.mktemp("headless")
    stack = rng.poisson(200, (12, 24, 20)).astype(np.uint16)
    stack[:, 5, 7] += 3000
    stack[::2, 11, 3] += 2500
    tifffile.imwrite(d / "stack.tif", stack, imagej=True, metadata={"axes": "ZYX"})
    movie = rng.poisson(60, (20, 32, 32)).astype(np.uint16)
    tifffile.imwrite(d / "movie.tif", movie, imagej=True, metadata={"axes": "ZYX"})
    fa = rng.poisson(50, (64, 64)).astype(np.uint16)
    fb = rng.poisson(50, (64, 64)).astype(np.uint16)
    tifffile.imwrite(d / "frc_a.tif", fa)
    tifffile.imwrite(d / "frc_b.tif", fb)
    # tiles: a known flat-field (vignetting) times a flat empty background, plus offset
    yy, xx = np.mgrid[0:48, 0:64]
    flat = 1.0 - 0.3 * (((yy - 24) / 24.0) ** 2 + ((xx - 32) / 32.0) ** 2) / 2
    tiles = np.stack([rng.poisson(1000 * flat) for _ in range(4)]).astype(np.uint16)
    tifffile.imwrite(d / "tiles.tif", tiles, imagej=True, metadata={"axes": "ZYX"})
    # Flash4.0 carryover: a simulated calibration folder, then a raw stack to correct
    lls.write_calibration_folder(d / "calib", seed=3, roi=(2000, 1000, 2023, 1015), n_planes=12,
                                 dark_planes=16)
    raw = (100 + rng.poisson(400, (6, 24, 16))).astype(np.uint16)  # ROI 24 x 16
    tifffile.imwrite(d / "raw.tif", raw, imagej=True, metadata={"axes": "ZYX"})
    out = d / "fiji"
    out.mkdir()
    macro = f'''
    function save_result(title, path) {{
        if (!isOpen(title)) {{ print("MISSING " + title); return; }}
        selectImage(title); saveAs("Tiff", path); close();
    }}
    t0 = getTime();
    open("{d}/stack.tif");
    newImage("decoy", "16-bit noise", 20, 20, 3);             // opened later, not selected
    selectImage("stack.tif");
    makeRectangle(2, 3, 6, 5);                                // a selection never crops
    run("Selective Median", "rule=mad k=4 mean_pass save_mask");
    print("CURRENT_AFTER_MEDIAN " + getTitle());
    saveAs("Results", "{out}/median_numbers.csv");
    selectImage("stack.tif");
    print("SELECTION_KEPT " + selectionType());
    save_result("stack (Selective Median)", "{out}/median.tif");
    save_result("stack (Selective Median) mask", "{out}/mask.tif");
    print("TIME median " + (getTime() - t0));
    close("*");
    open("{d}/movie.tif");
    run("A Posteriori Normalize", "reject_k=5 split_=even-odd stats=[{out}/stats.npz]");
    saveAs("Results", "{out}/normalize_numbers.csv");
    save_result("movie (A Posteriori Normalize)", "{out}/normalize.tif");
    close("*");
    open("{d}/movie.tif");
    run("Estimate Residual Gain", "iterations=2 reference=smooth");
    print("GAIN_REPORT " + Table.size + " " + Table.getString("quantity", 1) + "=" + Table.getString("value", 1));
    save_result("movie (Estimate Residual Gain)", "{out}/gain.tif");
    close("*");
    open("{d}/frc_a.tif");
    run("Fourier Ring Correlation", "b=[{d}/frc_b.tif] n_sigma=3 window=hann");
    frc_col = Table.getColumn("FRC"); print("FRC_TABLE " + Table.size + " " + frc_col.length);
    print("FRC_QUANTITY_COLUMN " + Table.columnExists("quantity"));
    t = getList("image.titles"); for (i = 0; i < t.length; i++) print("FRC_IMAGE " + t[i]);
    close("*");
    open("{d}/tiles.tif");
    run("Flatfield Estimate", "output=[{out}/profiles.npz] method=empty-tiles sigma=2");
    saveAs("Results", "{out}/flatfield_numbers.csv");
    save_result("tiles (Flatfield Estimate)", "{out}/flatfield_shown.tif");
    selectImage("tiles.tif");
    run("Flatfield Apply", "profiles=[{out}/profiles.npz] baseline=none");
    save_result("tiles (Flatfield Apply)", "{out}/applied.tif");
    close("*");
    run("Flash Carryover Calibrate", "calib_dir=[{d}/calib] output=[{out}/FlashParam.tif]");
    saveAs("Results", "{out}/calibrate_numbers.csv");
    print("CURRENT_AFTER_CALIBRATE " + getTitle());
    close("*");
    open("{d}/raw.tif");
    run("Flash Carryover Correct", "params=[{out}/FlashParam.tif] dampening=0.9 dtype=keep");
    save_result("raw (Flash Carryover Correct)", "{out}/flash.tif");
    close("*");
    print("TIME total " + (getTime() - t0));
    '''
    log, seconds, javatmp = run_fiji_macro(fiji_copy, macro, d)
    print(f"headless Fiji run: {seconds:.1f} s")
    cli = d / "cli"
    cli.mkdir()
    _cli("median", d / "stack.tif", "-o", cli / "median.tif", "--rule", "mad", "--k", "4",
         "--mean-pass", "--mask-out", cli / "mask.tif")
    _cli("gain", "normalize", d / "movie.tif", "-o", cli / "norm", "--reject-k", "5",
         "--split", "even-odd")
    _cli("gain", "estimate", d / "movie.tif", "-o", cli / "gain.tif", "--iterations", "2",
         "--reference", "smooth")
    _cli_flatfield_and_flash(d, cli)
    return SimpleNamespace(d=d, out=out, cli=cli, log=log, javatmp=javatmp, stack=stack,
                           flat=flat)


def _cli_flatfield_and_flash(d, cli):
    """Command-line references of the flat-field and flash commands, with the values both the
    macro and the pyimagej runs use (profiles from d/tiles.tif, parameters from d/calib)."""
    _cli("flatfield", "estimate", d / "tiles.tif", "-o", cli / "profiles.npz", "--method",
         "empty-tiles", "--sigma", "2")
    _cli("flatfield", "apply", d / "tiles.tif", "--profiles", cli / "profiles.npz", "-o",
         cli / "applied", "--baseline", "none")
    _cli("flash", "calibrate", d / "calib", "--output", cli / "FlashParam.tif")
    _cli("flash", "correct", d / "raw.tif", "--params", cli / "FlashParam.tif", "--dampening",
         "0.9", "--dtype", "keep", "-o", cli / "flash")


def _numbers(path):
    """{quantity: value} of a Results table saved by a command (``quantity,value`` rows)."""
    import csv

    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    out = {}
    for r in rows:
        try:
            out[r["quantity"]] = float(r["value"])
        except ValueError:
            out[r["quantity"]] = r["value"]
    return out


def _same(a, b):
    x, y = tifffile.imread(a), tifffile.imread(b)
    assert x.dtype == y.dtype and x.shape == y.shape, (a, x.dtype, x.shape, y.dtype, y.shape)
    np.testing.assert_array_equal(x, y)


def test_headless_run_is_clean(headless):
    """Every result was found, no error line, no temporary file or path left behind."""
    log = headless.log
    assert "MISSING" not in log and "ERROR" not in log and "Macro Error" not in log, log[-4000:]
    assert os.listdir(headless.javatmp) == [], os.listdir(headless.javatmp)
    assert "/javatmp/" not in log                                    # no temporary paths


def test_headless_selective_median(headless):
    """Pixels and mask equal the command line's; the result is the current image; the selection
    on the input is kept and does not crop."""
    h = headless
    _same(h.out / "median.tif", h.cli / "median.tif")
    _same(h.out / "mask.tif", h.cli / "mask.tif")                   # the mask as an image
    assert "CURRENT_AFTER_MEDIAN stack (Selective Median)" in h.log
    assert "SELECTION_KEPT 0" in h.log              # the rectangle is still on the input
    assert (tifffile.imread(h.out / "median.tif") != h.stack).any()  # hot pixels were replaced
    # the QC numbers in the command's Results table: the count of the mask it showed
    mask = tifffile.imread(h.out / "mask.tif")
    assert _numbers(h.out / "median_numbers.csv")["flagged"] == int((mask > 0).sum()) > 0


def test_headless_gain_and_normalize(headless):
    """A Posteriori Normalize and Estimate Residual Gain equal the command line; the gain report
    is a Results table (headless: the single Results table, replaced by each command)."""
    import re

    h = headless
    _same(h.out / "normalize.tif", h.cli / "norm" / "movie.tif")
    n = _numbers(h.out / "normalize_numbers.csv")       # its numbers; the statistics kept
    assert n["n_frames"] == 20 and n["n_accepted"] <= 20 and n["sigma0"] > 0, n
    assert (h.out / "stats.npz").is_file()
    assert f"A Posteriori Normalize: wrote {h.out}/stats.npz" in h.log
    _same(h.out / "gain.tif", h.cli / "gain.tif")
    m = re.search(r"GAIN_REPORT (\d+) mean=([0-9.]+)", h.log)
    assert m and int(m.group(1)) > 10 and abs(float(m.group(2)) - 1) < 1e-6, h.log[-2000:]


def test_headless_frc(headless):
    """FRC: its own Results table (no rows of the gain report before it, without any Clear
    Results in the macro), a plot titled by the two inputs, numbers in the Log."""
    h = headless
    assert "FRC_TABLE 33 33" in h.log, h.log[-3000:]   # 64x64: rings 0..32
    assert "FRC_QUANTITY_COLUMN 0" in h.log             # the gain report's rows are gone
    assert "FRC_IMAGE Fourier Ring Correlation of frc_a.tif and frc_b.tif" in h.log
    assert "cross-over (cycles/pixel)" in h.log


def test_headless_flatfield_chain(headless):
    """Flatfield Estimate writes the profiles where the macro says (equal to the command
    line's), shows the flat-field, which follows the simulated one; Apply takes them."""
    h = headless
    _same(h.out / "applied.tif", h.cli / "applied" / "tiles.tif")
    with np.load(h.out / "profiles.npz") as f, np.load(h.cli / "profiles.npz") as g:
        np.testing.assert_array_equal(f["flatfield"], g["flatfield"])
        shown = tifffile.imread(h.out / "flatfield_shown.tif")
        np.testing.assert_array_equal(shown, f["flatfield"])        # the flat-field is shown
    rel = shown / shown.mean() / (h.flat / h.flat.mean())
    assert np.abs(rel - 1).max() < 0.05
    # in-sample and held-out QC numbers side by side in its Results table
    n = _numbers(h.out / "flatfield_numbers.csv")
    assert n["held_out.cv_after"] < n["held_out.cv_before"] and n["cv_after"] < n["cv_before"], n
    assert "held_out.corner_centre_after" in n and "corner_centre_after" in n


def test_headless_flash_chain(headless):
    """Flash Carryover Calibrate (no input image; its parameter file becomes the current image)
    then Correct, both equal to the command line."""
    h = headless
    _same(h.out / "FlashParam.tif", h.cli / "FlashParam.tif")
    _same(h.out / "flash.tif", h.cli / "flash" / "raw.tif")
    assert "CURRENT_AFTER_CALIBRATE Flash Carryover Calibrate" in h.log
    n = _numbers(h.out / "calibrate_numbers.csv")
    assert n["n_failed"] == 0 and n["n_levels"] > 0 and n["n_pairs"] > 0, n


#: Bad macro calls: (macro code, words of the one error line).  ``k=abc`` and a left-out
#: required value used to be refused by Fiji itself before the command ran, silently.
ERROR_CASES = {
    "range": ('open("{d}/s.tif"); run("Selective Median", "k=0");',
              ["in Selective Median", "Threshold (robust sigmas) [k]", "out of range"]),
    "not_a_number": ('open("{d}/s.tif"); run("Selective Median", "k=abc");',
                     ["in Selective Median", "Threshold (robust sigmas) [k]", "not a number",
                      "'abc'"]),
    "not_whole": ('open("{d}/s.tif"); run("Estimate Residual Gain", "iterations=2.5");',
                  ["in Estimate Residual Gain", "Maximum iterations [iterations]",
                   "not a whole number", "'2.5'"]),
    "required_left_out": ('open("{d}/s.tif"); run("Fourier Ring Correlation", "n_sigma=3");',
                          ["in Fourier Ring Correlation", "Second image [b]", "required"]),
    "missing_file": ('open("{d}/s.tif"); run("Flatfield Apply", "profiles=[{d}/missing.npz]");',
                     ["in Flatfield Apply", "Profiles file [profiles]", "missing.npz"]),
    "no_image": ('run("Selective Median", "k=5");', ["no image is open"]),
}


@pytest.fixture(scope="module")
def error_runs(fiji_copy, tmp_path_factory):
    """Every bad call of ERROR_CASES in one headless Fiji, one after the other as in a user's
    session: each case is its own macro file, run from a driver macro with ``runMacro`` (which
    returns ``"[aborted]"`` when the case's macro was stopped); returns ({case: its part of the
    log, ``RETURNED <value> <open images>`` included}, files left in Java's temporary folder)."""
    d = tmp_path_factory.mktemp("errors")
    stack = np.random.default_rng(2).poisson(100, (4, 16, 16)).astype(np.uint16)
    tifffile.imwrite(d / "s.tif", stack, imagej=True, metadata={"axes": "ZYX"})
    driver = []
    for case in sorted(ERROR_CASES):
        (d / f"{case}.ijm").write_text(ERROR_CASES[case][0].format(d=d)
                                       + '\nprint("NOT_STOPPED " + nImages);\n')
        driver.append(f'print("CASE {case}"); r = runMacro("{d}/{case}.ijm"); '
                      f'print("RETURNED " + r + " " + nImages); close("*");')
    driver.append('print("CASE end");')
    log, _, javatmp = run_fiji_macro(fiji_copy, "\n".join(driver), d)
    parts = log.split("CASE ")
    by_case = {p.split("\n", 1)[0].strip(): p for p in parts[1:]}
    assert "end" in by_case, log[-3000:]
    return by_case, os.listdir(javatmp)


@pytest.mark.parametrize("case", sorted(ERROR_CASES))
def test_errors_name_the_dialog_label_and_stop_the_macro(error_runs, case):
    """Bad values: one ``[Camera Corrections] ERROR`` line naming the dialog label and macro
    key; the calling macro stops there (as after an ImageJ command's error); no result image,
    no dialog or exception (headless) and no temporary file is left; the next command of the
    session is not disturbed (no_image follows a stopped macro that had an image open)."""
    by_case, left = error_runs
    log = by_case[case]
    words = ERROR_CASES[case][1]
    lines = [l for l in log.splitlines() if l.startswith("[Camera Corrections] ERROR")]
    assert len(lines) == 1 and all(w in lines[0] for w in words), (case, log)
    assert "NOT_STOPPED" not in log, (case, log)              # the macro stopped
    want_images = 0 if case == "no_image" else 1              # the input only, no result
    assert f"RETURNED [aborted] {want_images}" in log, (case, log)
    assert "Exception" not in log and "ThreadDeath" not in log, (case, log)
    assert left == []                                         # nothing left behind


#: Every command, from the menu, with non-default values: (command, input, result title, result
#: kind, {dialog label: value}, what the recorded line must contain).
def _gui_commands(d, gui):
    return [
        ("Selective Median", d / "movie.tif", "movie (Selective Median)", "image",
         {"Threshold (robust sigmas)": "4", "Also detect aberrant-gain pixels (mean pass)": "true"},
         [" k=4", "mean_pass"]),
        ("A Posteriori Normalize", d / "movie.tif", "movie (A Posteriori Normalize)", "image",
         {"Frame rejection (robust sigmas)": "4", "Target mean (ADU)": "100"},
         ["reject_k=4", "i0=100"]),
        ("Estimate Residual Gain", d / "movie.tif", "movie (Estimate Residual Gain)", "image",
         {"Maximum iterations": "2", "Tolerance": "0.01"}, ["iterations=2", "tolerance=0.01"]),
        ("Fourier Ring Correlation", d / "frc_a.tif",
         "Fourier Ring Correlation of frc_a.tif and frc_b.tif", "table",
         {"Second image": str(d / "frc_b.tif"), "Noise curve (sigmas)": "2", "Apodisation": "hann"},
         ["b=", "n_sigma=2", "window=hann"]),
        ("Flatfield Estimate", d / "tiles.tif", "tiles (Flatfield Estimate)", "image",
         {"Profiles file": str(gui / "profiles.npz"), "Method": "empty-tiles",
          "Smoothing (pixels)": "2"}, ["output=", "method=empty-tiles", "sigma=2"]),
        ("Flatfield Apply", d / "tiles.tif", "tiles (Flatfield Apply)", "image",
         {"Profiles file": str(gui / "profiles.npz"), "Rescale the flat-field": "mean",
          "Output type": "float32"}, ["profiles=", "rescale=mean", "dtype=float32"]),
        ("Flash Carryover Calibrate", None, "Flash Carryover Calibrate", "image",
         {"Calibration folder": str(d / "calib"), "Parameter file": str(gui / "FlashParam.tif")},
         ["calib_dir=", "output="]),
        ("Flash Carryover Correct", d / "raw.tif", "raw (Flash Carryover Correct)", "image",
         {"Carryover parameter file": str(gui / "FlashParam.tif"), "Dampening factor": "0.8",
          "Output type": "float32"}, ["params=", "dampening=0.8", "dtype=float32"]),
    ]


def _csv_numbers(path):
    rows = [l.split(",") for l in Path(path).read_text().splitlines() if l.strip()]
    head = rows[0]
    cols = [i for i, h in enumerate(head) if h.strip() and h.strip() != " "]
    return {head[i]: [r[i] for r in rows[1:]] for i in cols}


@pytest.fixture(scope="module")
def gui_run(fiji_copy, tmp_path_factory):
    """One Fiji GUI under Xvfb: each of the eight commands chosen from the menu with
    non-default values (``_gui_commands``), then a long Estimate Residual Gain cancelled with Esc
    while camcorr runs; returns the folders, the commands, the driver's status lines, the
    Recorder text and the files left in Java's temporary folder."""
    require(shutil.which("xvfb-run") is not None or bool(os.environ.get("DISPLAY")),
            "Xvfb (xvfb-run) or a display")
    from types import SimpleNamespace

    from camcorr.simulate import lls

    rng = np.random.default_rng(20261121)
    d = tmp_path_factory.mktemp("gui")
    movie = rng.poisson(80, (16, 24, 20)).astype(np.uint16)
    movie[:, 5, 7] += 3000
    movie[::2, 11, 3] += 2500
    tifffile.imwrite(d / "movie.tif", movie, imagej=True, metadata={"axes": "ZYX"})
    tifffile.imwrite(d / "frc_a.tif", rng.poisson(50, (64, 64)).astype(np.uint16))
    tifffile.imwrite(d / "frc_b.tif", rng.poisson(50, (64, 64)).astype(np.uint16))
    yy, xx = np.mgrid[0:32, 0:40]
    flat = 1.0 - 0.15 * (((yy - 16) / 16.0) ** 2 + ((xx - 20) / 20.0) ** 2)
    tifffile.imwrite(d / "tiles.tif", np.stack([rng.poisson(800 * flat) for _ in range(3)])
                     .astype(np.uint16), imagej=True, metadata={"axes": "ZYX"})
    lls.write_calibration_folder(d / "calib", seed=5, roi=(2000, 1000, 2023, 1015), n_planes=12,
                                 dark_planes=16)
    tifffile.imwrite(d / "raw.tif", (100 + rng.poisson(400, (4, 24, 16))).astype(np.uint16),
                     imagej=True, metadata={"axes": "ZYX"})
    # a gain estimate that runs for minutes (20 full iterations of a 100-frame movie)
    tifffile.imwrite(d / "long.tif", rng.poisson(100, (100, 256, 256)).astype(np.uint16),
                     imagej=True, metadata={"axes": "ZYX"})
    gui, replay, javatmp = d / "gui", d / "replay", d / "javatmp"
    for f in (gui, replay, javatmp, d / "home"):
        f.mkdir()
    commands = _gui_commands(d, gui)
    cancel = ("Estimate Residual Gain", d / "long.tif", "long (Estimate Residual Gain)", "cancel",
              {"Maximum iterations": "20", "Tolerance": "0"}, [])
    spec = d / "commands.tsv"
    spec.write_text("".join(
        "\t".join([cmd, str(inp) if inp else "-", title, kind]
                  + [f"{k}={v}" for k, v in fields.items()]) + "\n"
        for cmd, inp, title, kind, fields, _ in commands + [cancel]))
    env = dict(os.environ, HOME=str(d / "home"), FIJI_JAVA_OPTS=f"-Djava.io.tmpdir={javatmp}",
               PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    driver = Path(__file__).with_name("fiji_gui_driver.bsh")
    cmd = [str(fiji_copy / "fiji-linux"), "--run", str(driver), f'spec="{spec}",outdir="{gui}"']
    if not os.environ.get("DISPLAY"):
        cmd = ["xvfb-run", "-a", "-s", "-screen 0 1280x1024x24"] + cmd
    t0 = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
    print(f"GUI Fiji run, 8 commands + 1 cancelled: {time.monotonic() - t0:.1f} s")
    status = (gui / "driver.txt").read_text() if (gui / "driver.txt").exists() else ""
    print(status)
    recorded = (gui / "recorder.txt").read_text() if (gui / "recorder.txt").exists() else ""
    print("Recorder:\n" + recorded)
    log = (gui / "log.txt").read_text() if (gui / "log.txt").exists() else ""
    return SimpleNamespace(d=d, gui=gui, replay=replay, commands=commands, status=status,
                           recorded=recorded, log=log, left=os.listdir(javatmp), movie=movie,
                           proc=proc)


def test_internal_helper_is_not_in_the_menus(gui_run):
    """The commands are under Plugins > Camera Corrections; their internal helper (which hands a
    command's result or failure to the calling macro, used by every test here) has no menu item
    and no ImageJ command (so the Command Finder does not list it either)."""
    menus = (gui_run.gui / "menus.txt").read_text()
    ours = [l for l in menus.splitlines() if l.startswith("Plugins > Camera Corrections > ")]
    assert sorted(l.rsplit(" > ", 1)[1] for l in ours) == sorted(
        c[0] for c in gui_run.commands), ours
    assert not any(l.endswith("> Camera Corrections Return") for l in menus.splitlines()), ours
    assert "COMMAND Camera Corrections Return = null" in menus


def test_every_menu_command_is_recorded_and_replays(fiji_copy, gui_run):
    """Under Xvfb, each of the eight commands chosen from the menu with non-default values (numbers
    typed into spinners, a box ticked, choices and file fields set) records one ``run(...)``
    line with those values; the recorded lines, replayed headless on the same inputs, give the
    same pixels (and the same FRC table) as the GUI run."""
    g = gui_run
    for c in g.commands:
        assert f"RESULT {c[0]} true" in g.status, (c[0], g.status, g.proc.stdout[-2000:],
                                                    g.proc.stderr[-2000:], g.log[-2000:])
    assert "NOFIELD" not in g.status, g.status
    lines = [l for l in g.recorded.splitlines() if l.startswith("run(")]
    replay_macro = []
    for n, (name, inp, title, kind, fields, words) in enumerate(g.commands):
        mine = [l for l in lines if l.startswith(f'run("{name}"')]
        assert len(mine) == 1, (name, g.recorded)   # one line, with the values (not a bare run)
        assert all(w in mine[0] for w in words), (name, mine[0])
        if inp:
            replay_macro.append(f'open("{inp}");')
        replay_macro.append(mine[0].replace(str(g.gui), str(g.replay)))
        if kind == "table":
            replay_macro.append(f'saveAs("Results", "{g.replay}/{n}.csv");')
        else:
            replay_macro.append(f'selectImage("{title}"); saveAs("Tiff", "{g.replay}/{n}.tif");')
        replay_macro.append('close("*");')
    log, seconds, javatmp = run_fiji_macro(fiji_copy, "\n".join(replay_macro), g.d)
    print(f"headless replay: {seconds:.1f} s")
    assert "ERROR" not in log and "Macro Error" not in log, log[-3000:]
    assert os.listdir(javatmp) == []
    for n, (name, _, _, kind, _, _) in enumerate(g.commands):
        if kind == "table":
            a, b = _csv_numbers(g.gui / f"{n}.csv"), _csv_numbers(g.replay / f"{n}.csv")
            assert a["FRC"] == b["FRC"] and len(a["FRC"]) == 33, name
        else:
            x, y = tifffile.imread(g.gui / f"{n}.tif"), tifffile.imread(g.replay / f"{n}.tif")
            assert x.dtype == y.dtype and x.shape == y.shape, name
            np.testing.assert_array_equal(x, y, err_msg=name)
    from camcorr.median import selective_median

    np.testing.assert_array_equal(tifffile.imread(g.gui / "0.tif"),
                                  selective_median(g.movie, rule="mad", k=4.0,
                                                   mean_pass=True).corrected)


def test_esc_cancels_a_running_command_and_leaves_nothing(gui_run):
    """Esc pressed while camcorr runs (a 20-iteration gain estimate from the menu): camcorr is
    stopped, one Log line says so, no result image, no temporary folder or file, no camcorr
    process left; the cancelled command records no line."""
    g = gui_run
    assert "ESC Estimate Residual Gain" in g.status, g.status
    assert "CANCELLED Estimate Residual Gain true" in g.status, (g.status, g.log[-2000:])
    assert "RESULT_AFTER_CANCEL Estimate Residual Gain false" in g.status
    assert "Estimate Residual Gain cancelled (Esc): camcorr was stopped" in g.log
    assert g.left == [], g.left                              # no camcorr-* folder left
    assert not list(g.gui.glob("*long*"))
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert str(g.d) not in ps                                # camcorr is not running on
    recorded_gain = [l for l in g.recorded.splitlines() if "Estimate Residual Gain" in l]
    assert len(recorded_gain) == 1 and "iterations=20" not in recorded_gain[0]


def test_pyimagej_session_runs_every_operation(fiji_copy, tmp_path, rng):
    """pyimagej, offline, against the copy of ``../shared/fiji``: ``run_operation`` on ImageJ
    images gives the command line's pixels for every operation, frc and flatfield-estimate
    included (FRC numbers as a dict, the flat-field as an image)."""
    pytest.importorskip("imagej")
    from test_fiji_java import run_worker

    from camcorr.simulate import lls

    d = tmp_path
    stack = rng.poisson(200, (10, 20, 18)).astype(np.uint16)
    stack[::2, 4, 9] += 3000
    movie = rng.poisson(60, (16, 24, 24)).astype(np.uint16)
    fa = rng.poisson(50, (32, 32)).astype(np.uint16)
    fb = rng.poisson(50, (32, 32)).astype(np.uint16)
    yy, xx = np.mgrid[0:32, 0:40]
    flat = 1.0 - 0.15 * (((yy - 16) / 16.0) ** 2 + ((xx - 20) / 20.0) ** 2)
    tiles = np.stack([rng.poisson(800 * flat) for _ in range(3)]).astype(np.uint16)
    raw = (100 + rng.poisson(400, (4, 24, 16))).astype(np.uint16)  # ROI 24 x 16
    lls.write_calibration_folder(d / "calib", seed=5, roi=(2000, 1000, 2023, 1015), n_planes=12,
                                 dark_planes=16)
    for name, arr in (("stack", stack), ("movie", movie), ("fa", fa), ("fb", fb),
                      ("tiles", tiles), ("raw", raw)):
        np.save(d / f"{name}.npy", arr)
        tifffile.imwrite(d / f"{name}.tif", arr, imagej=True,
                         metadata={"axes": "ZYX" if arr.ndim == 3 else "YX"})
    r = run_worker(tmp_path, rf'''
    import time
    t0 = time.monotonic()
    from fiji_bridge.session import start_fiji, run_operation
    from fiji_bridge.convert import numpy_to_imageplus, imageplus_to_numpy
    ij = start_fiji({str(fiji_copy)!r}, mode="headless")
    R["init_s"] = time.monotonic() - t0
    R["version"] = str(ij.getVersion())
    d = {str(d)!r}
    imp = lambda name: numpy_to_imageplus(np.load(f"{{d}}/{{name}}.npy"), name + ".tif")
    out = {{}}
    def keep(key, res):
        out[key] = res
        if res is not None and not isinstance(res, dict):
            np.save(f"{{d}}/py_{{key}}.npy", imageplus_to_numpy(res))
            R[key + "_title"] = str(res.getTitle())
    t1 = time.monotonic()
    keep("median", run_operation("median", imp("stack"), rule="mad", k=4.0, mean_pass=True))
    keep("normalize", run_operation("gain-normalize", imp("movie"), reject_k=5.0))
    keep("gain", run_operation("gain-estimate", imp("movie"), iterations=2))
    R["frc"] = run_operation("frc", imp("fa"), b=f"{{d}}/fb.tif", n_sigma=3.0)
    keep("flat", run_operation("flatfield-estimate", imp("tiles"), method="empty-tiles",
                               sigma=2.0, output=f"{{d}}/py_profiles.npz"))
    keep("applied", run_operation("flatfield-apply", imp("tiles"),
                                  profiles=f"{{d}}/py_profiles.npz", baseline="none"))
    R["calibrate"] = run_operation("flash-calibrate", None, calib_dir=f"{{d}}/calib",
                                   output=f"{{d}}/py_FlashParam.tif")
    keep("flash", run_operation("flash-correct", imp("raw"), params=f"{{d}}/py_FlashParam.tif",
                                dampening=0.9, dtype="keep"))
    R["ops_s"] = time.monotonic() - t1
    ''', timeout=600)
    print(f"pyimagej: init {r['init_s']:.1f} s, 8 operations {r['ops_s']:.1f} s, "
          f"ImageJ {r['version']}")
    cli = d / "cli"
    cli.mkdir()
    _cli("median", d / "stack.tif", "-o", cli / "median.tif", "--k", "4", "--mean-pass")
    _cli("gain", "normalize", d / "movie.tif", "-o", cli / "norm", "--reject-k", "5")
    _cli("gain", "estimate", d / "movie.tif", "-o", cli / "gain.tif", "--iterations", "2")
    _cli("frc", d / "fa.tif", d / "fb.tif", "--json", cli / "frc.json")
    _cli_flatfield_and_flash(d, cli)
    for key, ref in (("median", cli / "median.tif"), ("normalize", cli / "norm" / "movie.tif"),
                     ("gain", cli / "gain.tif"), ("applied", cli / "applied" / "tiles.tif"),
                     ("flash", cli / "flash" / "raw.tif")):
        got, want = np.load(d / f"py_{key}.npy"), tifffile.imread(ref)
        assert got.dtype == want.dtype, key
        np.testing.assert_array_equal(got, want, err_msg=key)
    assert r["median_title"] == "stack (Selective Median)"
    import json

    assert r["frc"] == json.loads((cli / "frc.json").read_text())
    with np.load(cli / "profiles.npz") as g:
        np.testing.assert_array_equal(np.load(d / "py_flat.npy"), g["flatfield"])
    np.testing.assert_array_equal(tifffile.imread(d / "py_FlashParam.tif"),
                                  tifffile.imread(cli / "FlashParam.tif"))


def test_in_memory_median_equals_cli_without_temporary_files(tmp_path, monkeypatch, rng):
    """``run_on_array`` on a (Z, Y, X) array (what pyimagej's ``run_operation`` calls): the
    selective median runs on the array itself (``run_in_memory``: no temporary file), and its
    pixels, mask and count equal the command line's."""
    import tempfile

    from fiji_bridge.engine import run_in_memory, run_on_array

    stack = rng.poisson(200, (10, 20, 18)).astype(np.uint16)
    stack[::2, 4, 9] += 3000
    stack[:, 7, 3] += 4000
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmpdir))
    out = run_on_array("median", stack, {"k": 4.0, "mean_pass": True})
    res = run_in_memory("median", stack, {"k": 4.0, "mean_pass": True})
    assert os.listdir(tmpdir) == []                       # nothing written
    tifffile.imwrite(tmp_path / "s.tif", stack, imagej=True, metadata={"axes": "ZYX"})
    _cli("median", tmp_path / "s.tif", "-o", tmp_path / "c.tif", "--k", "4", "--mean-pass",
         "--mask-out", tmp_path / "m.tif")
    want = tifffile.imread(tmp_path / "c.tif")
    assert out.dtype == want.dtype == res.arrays["output"].dtype
    np.testing.assert_array_equal(out, want)
    np.testing.assert_array_equal(res.arrays["output"], want)
    mask = tifffile.imread(tmp_path / "m.tif") > 0
    np.testing.assert_array_equal(res.arrays["mask"], mask)
    assert res.numbers["flagged"] == int(mask.sum()) > 0


def test_in_memory_gain_estimate_equals_cli(tmp_path, monkeypatch, rng):
    """The gain estimate of an in-memory movie (``run_in_memory``, frames fed in the command
    line's blocks): the same float32 gain as ``camcorr gain estimate``, no temporary file, and
    the held-out figures among its numbers; an offset above the data is refused as by the
    command line."""
    import tempfile

    from camcorr.errors import CamcorrError
    from fiji_bridge.engine import run_in_memory

    yy, xx = np.mgrid[0:32, 0:32]
    gain = 1 + 0.05 * np.sin(xx / 3.0)                       # column structure to recover
    movie = rng.poisson(300 * gain, (30, 32, 32)).astype(np.uint16)
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmpdir))
    res = run_in_memory("gain-estimate", movie, {"iterations": 2})
    assert os.listdir(tmpdir) == []
    with pytest.raises(CamcorrError, match="offset at or above the data"):
        run_in_memory("gain-estimate", movie, {"offset": 1000.0})
    tifffile.imwrite(tmp_path / "m.tif", movie, imagej=True, metadata={"axes": "ZYX"})
    _cli("gain", "estimate", tmp_path / "m.tif", "-o", tmp_path / "g.tif", "--iterations", "2")
    want = tifffile.imread(tmp_path / "g.tif")
    got = res.arrays["output"]
    assert got.dtype == want.dtype == np.float32
    np.testing.assert_array_equal(got, want)
    assert "std_heldout" in res.numbers["heldout"] and res.numbers["std"] > 0


def test_in_memory_flatfield_apply_equals_cli(tmp_path, monkeypatch, rng):
    """Flat-field apply of an in-memory (Y, X) image or (Z, Y, X) stack: the command line's
    pixels, the same clip counts, no temporary file; a 4D array is refused."""
    import tempfile

    from camcorr.errors import CamcorrError
    from camcorr.flatfield import Profiles, save_profiles
    from fiji_bridge.engine import run_in_memory, run_on_array

    yy, xx = np.mgrid[0:24, 0:30]
    flat = 1.0 - 0.2 * (((yy - 12) / 12.0) ** 2 + ((xx - 15) / 15.0) ** 2)
    save_profiles(Profiles(flatfield=flat / flat.mean(), darkfield=np.full(flat.shape, 100.0)),
                  tmp_path / "p.npz")
    stack = (100 + rng.poisson(30000 * flat, (5, 24, 30))).astype(np.uint16)
    stack[0, 3, 4] = 5                    # below the darkfield: clipped at 0
    stack[1, 0, 0] = 60000                # a bright corner pixel: past the top unless rescaled
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmpdir))
    for rescale in ("ceiling", "none"):
        values = {"profiles": str(tmp_path / "p.npz"), "rescale": rescale}
        res = run_in_memory("flatfield-apply", stack, values)
        two_d = run_on_array("flatfield-apply", stack[2], values)
        assert os.listdir(tmpdir) == []                       # nothing written
        tifffile.imwrite(tmp_path / "s.tif", stack, imagej=True, metadata={"axes": "ZYX"})
        tifffile.imwrite(tmp_path / "p2.tif", stack[2])
        _cli("flatfield", "apply", tmp_path / "s.tif", tmp_path / "p2.tif", "--profiles",
             tmp_path / "p.npz", "--rescale", rescale, "-o", tmp_path / rescale)
        want = tifffile.imread(tmp_path / rescale / "s.tif")
        np.testing.assert_array_equal(res.arrays["output"], want)
        assert res.arrays["output"].dtype == np.uint16
        np.testing.assert_array_equal(two_d, tifffile.imread(tmp_path / rescale / "p2.tif"))
        assert res.numbers["clipped_low"] == 1
        # 'none' divides by a flat-field below 1 at the corners (0.69): the bright corner pixel
        # passes the top of uint16; 'ceiling' never brightens
        assert res.numbers["clipped_high"] == (rescale == "none"), res.numbers
    with pytest.raises(CamcorrError, match=r"\(Y, X\) image or a \(Z, Y, X\) array"):
        run_in_memory("flatfield-apply", stack[None], values)


def test_gain_estimate_of_a_big_endian_movie(tmp_path, rng):
    """ImageJ writes big-endian TIFFs (what the Fiji commands hand to camcorr): the gain estimate
    of such a movie equals that of the same movie in native byte order (the numba kernels take
    native arrays only)."""
    from fiji_bridge.engine import run_in_memory

    movie = rng.poisson(200, (12, 24, 20)).astype(np.uint16)
    big = movie.astype(">u2")
    a = run_in_memory("gain-estimate", movie, {}).arrays["output"]
    b = run_in_memory("gain-estimate", big, {}).arrays["output"]
    np.testing.assert_array_equal(a, b)
    tifffile.imwrite(tmp_path / "be.tif", big, byteorder=">", imagej=True,
                     metadata={"axes": "ZYX"})
    _cli("gain", "estimate", tmp_path / "be.tif", "-o", tmp_path / "g.tif")
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "g.tif"), a)


def test_in_memory_normalize_flash_frc_equal_cli(tmp_path, monkeypatch, rng):
    """A posteriori normalisation, flash correction and FRC of in-memory arrays (what
    pyimagej's ``run_operation`` runs): bit-identical to the command line on the same input
    file, the input's dtype kept, the same clipping counts and warning, no temporary file
    (before: a temporary TIFF and the command-line runner).  Forward models: a movie with a
    known per-pixel gain and offset (normalisation), a camera with known carryover parameters
    (flash), two independent noise images (FRC)."""
    import json
    import tempfile

    from camcorr.aposteriori.normalize import NormalizationStats
    from camcorr.errors import CamcorrError
    from camcorr.flash import write_params
    from camcorr.flash.params import FlashParams
    from fiji_bridge.engine import run_in_memory, run_on_array

    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmpdir))

    # a posteriori normalisation: gain 0.8-1.2 and offset 90-110 ADU per pixel
    gain = rng.uniform(0.8, 1.2, (20, 24))
    offset = rng.uniform(90, 110, (20, 24))
    movie = (offset + gain * rng.poisson(400, (40, 20, 24))).astype(np.uint16)
    tifffile.imwrite(tmp_path / "m.tif", movie, imagej=True, metadata={"axes": "ZYX"})
    for label, values, args in (
            ("keep", {}, []),
            # a low target mean: the darkest pixels clip at 0 in uint16 (and are reported)
            ("clip", {"i0": 30.0, "sigma0": 25.0}, ["--i0", "30", "--sigma0", "25"]),
            ("float", {"dtype": "float32", "split": "random"}, ["--dtype", "float32",
                                                                 "--split", "random"])):
        res = run_in_memory("gain-normalize", movie,
                            dict(values, stats=str(tmp_path / f"{label}.npz")))
        via_api = run_on_array("gain-normalize", movie, values)
        assert os.listdir(tmpdir) == []                       # nothing written but the stats
        out = tmp_path / f"cli_{label}"
        _cli("gain", "normalize", tmp_path / "m.tif", "-o", out, "--stats",
             out / "stats.npz", *args)
        want = tifffile.imread(out / "m.tif")
        got = res.arrays["output"]
        assert got.dtype == want.dtype == (np.float32 if label == "float" else np.uint16)
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(via_api, want)
        mine, cli = (NormalizationStats.load(p) for p in (tmp_path / f"{label}.npz",
                                                           out / "stats.npz"))
        for which in ("full", "a", "b"):
            for a, b in zip(mine.mean_sigma(which), cli.mean_sigma(which)):
                np.testing.assert_array_equal(a, b)
        if label == "clip":
            # the counts: the float32 result of the same targets, rounded, below 0
            exact = run_in_memory("gain-normalize", movie,
                                  dict(values, dtype="float32")).arrays["output"]
            assert res.numbers["clipped_low"] == int((np.floor(exact + 0.5) < 0).sum()) > 0
            assert res.numbers["clipped_high"] == 0
            warning = [n for n in res.notes if "clipped to the uint16 range" in n]
            assert len(warning) == 1 and f"({res.numbers['clipped_low']} below, 0 above)" \
                in warning[0], res.notes
        else:
            assert res.numbers["clipped_low"] == res.numbers["clipped_high"] == 0
    with pytest.raises(CamcorrError, match="target level outside"):
        run_in_memory("gain-normalize", movie, {"i0": 70000.0})

    # flash carryover: A = 40 ADU, B = 2e-3 /ADU, offset 100 ADU
    shp = (14, 10)
    fp = FlashParams(A=np.full(shp, 40.0, np.float32), B=np.full(shp, 2e-3, np.float32),
                     offset=np.full(shp, 100.0, np.float32), noise=np.ones(shp, np.float32))
    ppath = write_params(fp, tmp_path / "FlashParam_t.tif")
    raw = (100 + rng.poisson(500, (6,) + shp)).astype(np.uint16)
    raw[2, 3, 3] = 90                                          # below the offset: clipped at 0
    tifffile.imwrite(tmp_path / "raw.tif", raw, imagej=True, metadata={"axes": "ZYX"})
    for dtype in ("keep", "float32"):
        values = {"params": str(ppath), "dampening": 0.9, "dtype": dtype}
        res = run_in_memory("flash-correct", raw, values)
        assert os.listdir(tmpdir) == []
        _cli("flash", "correct", tmp_path / "raw.tif", "--params", ppath, "--dampening", "0.9",
             "--dtype", dtype, "-o", tmp_path / f"flash_{dtype}")
        want = tifffile.imread(tmp_path / f"flash_{dtype}" / "raw.tif")
        assert res.arrays["output"].dtype == want.dtype
        np.testing.assert_array_equal(res.arrays["output"], want)
        assert any("single-channel acquisition" in n for n in res.notes)
        assert (res.arrays["output"] != raw - 100).any()       # the carryover was removed
    assert res.arrays["output"][2, 3, 3] < 0                   # float32: not clipped

    # FRC of two independent noise images: the command line's JSON, from the array
    a = rng.poisson(50, (64, 64)).astype(np.uint16)
    b = rng.poisson(50, (64, 64)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "a.tif", a)
    tifffile.imwrite(tmp_path / "b.tif", b)
    got = run_on_array("frc", a, {"b": str(tmp_path / "b.tif"), "window": "hann"})
    res = run_in_memory("frc", a, {"b": str(tmp_path / "b.tif"), "window": "hann"})
    assert os.listdir(tmpdir) == []
    _cli("frc", tmp_path / "a.tif", tmp_path / "b.tif", "--window", "hann", "--json",
         tmp_path / "frc.json")
    want = json.loads((tmp_path / "frc.json").read_text())
    assert json.loads(json.dumps(got)) == want
    np.testing.assert_array_equal(res.arrays["frc"], want["frc"])
    assert res.numbers["fraction_above"] == want["fraction_above_threshold"]
    with pytest.raises(CamcorrError, match="2D image"):
        run_in_memory("frc", np.stack([a, a]), {"b": str(tmp_path / "b.tif")})
