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


def test_every_command_headless_equals_cli(fiji_copy, tmp_path, rng):
    """One headless Fiji run: Selective Median, A Posteriori Normalize, Estimate Residual Gain,
    Fourier Ring Correlation and Flatfield Estimate -> Apply chained in one macro; every image
    equals the command line's, the profiles are written where the macro says."""
    d = tmp_path
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

    out = d / "fiji"
    out.mkdir()
    macro = f'''
    function save_result(title, path) {{
        if (!isOpen(title)) {{ print("MISSING " + title); return; }}
        selectImage(title); saveAs("Tiff", path); close();
    }}
    t0 = getTime();
    open("{d}/stack.tif");
    run("Selective Median", "rule=mad k=4 mean_pass");
    print("CURRENT_AFTER_MEDIAN " + getTitle());
    save_result("stack (Selective Median)", "{out}/median.tif");
    print("TIME median " + (getTime() - t0));
    close("*");
    open("{d}/movie.tif");
    run("A Posteriori Normalize", "reject_k=5 split_=even-odd");
    save_result("movie (A Posteriori Normalize)", "{out}/normalize.tif");
    close("*");
    open("{d}/movie.tif");
    run("Estimate Residual Gain", "iterations=2 reference=smooth");
    save_result("movie (Estimate Residual Gain)", "{out}/gain.tif");
    close("*");
    open("{d}/frc_a.tif");
    run("Fourier Ring Correlation", "b=[{d}/frc_b.tif] n_sigma=3 window=hann");
    print("FRC_TABLE " + Table.size + " " + Table.getColumn("FRC").length);
    t = getList("image.titles"); for (i = 0; i < t.length; i++) print("FRC_IMAGE " + t[i]);
    close("*");
    open("{d}/tiles.tif");
    run("Flatfield Estimate", "output=[{out}/profiles.npz] method=empty-tiles sigma=2");
    save_result("tiles (Flatfield Estimate)", "{out}/flatfield_shown.tif");
    selectImage("tiles.tif");
    run("Flatfield Apply", "profiles=[{out}/profiles.npz] baseline=none");
    save_result("tiles (Flatfield Apply)", "{out}/applied.tif");
    close("*");
    print("TIME total " + (getTime() - t0));
    '''
    log, seconds, javatmp = run_fiji_macro(fiji_copy, macro, d)
    print(f"headless Fiji run: {seconds:.1f} s")
    assert "MISSING" not in log and "ERROR" not in log and "Macro Error" not in log, log[-4000:]
    assert os.listdir(javatmp) == [], os.listdir(javatmp)   # no /tmp/camcorr-* left behind

    cli = d / "cli"
    cli.mkdir()
    _cli("median", d / "stack.tif", "-o", cli / "median.tif", "--rule", "mad", "--k", "4",
         "--mean-pass")
    _cli("gain", "normalize", d / "movie.tif", "-o", cli / "norm", "--reject-k", "5",
         "--split", "even-odd")
    _cli("gain", "estimate", d / "movie.tif", "-o", cli / "gain.tif", "--iterations", "2",
         "--reference", "smooth")
    _cli("flatfield", "estimate", d / "tiles.tif", "-o", cli / "profiles.npz", "--method",
         "empty-tiles", "--sigma", "2")
    _cli("flatfield", "apply", d / "tiles.tif", "--profiles", cli / "profiles.npz", "-o",
         cli / "applied", "--baseline", "none")

    def same(a, b):
        x, y = tifffile.imread(a), tifffile.imread(b)
        assert x.dtype == y.dtype and x.shape == y.shape, (a, x.dtype, x.shape, y.dtype, y.shape)
        np.testing.assert_array_equal(x, y)

    same(out / "median.tif", cli / "median.tif")
    assert (tifffile.imread(out / "median.tif") != stack).any()      # hot pixels were replaced
    same(out / "normalize.tif", cli / "norm" / "movie.tif")
    same(out / "gain.tif", cli / "gain.tif")
    same(out / "applied.tif", cli / "applied" / "tiles.tif")
    # the profiles are where the macro said, equal to the command line's
    with np.load(out / "profiles.npz") as f, np.load(cli / "profiles.npz") as g:
        np.testing.assert_array_equal(f["flatfield"], g["flatfield"])
        shown = tifffile.imread(out / "flatfield_shown.tif")
        np.testing.assert_array_equal(shown, f["flatfield"])        # the flat-field is shown
    # and the estimated flat-field follows the simulated one (empty tiles, sigma 2)
    rel = shown / shown.mean() / (flat / flat.mean())
    assert np.abs(rel - 1).max() < 0.05
    # FRC: a named Results table and a plot titled by the two inputs, numbers in the Log
    assert "FRC_TABLE 33 33" in log, log[-3000:]   # 64x64: rings 0..32
    assert "FRC_IMAGE Fourier Ring Correlation of frc_a.tif and frc_b.tif" in log
    assert "cross-over (cycles/pixel)" in log


def test_error_lines_name_the_dialog_label(fiji_copy, tmp_path):
    """Bad values: one ``[Camera Corrections] ERROR`` line naming the dialog label and macro
    key, no result image, no temporary files left."""
    stack = np.random.default_rng(2).poisson(100, (4, 16, 16)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "s.tif", stack, imagej=True, metadata={"axes": "ZYX"})
    macro = f'''
    open("{tmp_path}/s.tif");
    run("Selective Median", "k=0.5");
    print("IMAGES_AFTER_RANGE " + nImages);
    run("Flatfield Apply", "profiles=[{tmp_path}/missing.npz]");
    print("IMAGES_AFTER_MISSING " + nImages);
    close("*");
    run("Selective Median", "k=5");
    '''
    log, _, javatmp = run_fiji_macro(fiji_copy, macro, tmp_path)
    lines = [l for l in log.splitlines() if l.startswith("[Camera Corrections] ERROR")]
    assert any("in Selective Median" in l and "Threshold (robust sigmas) [k]" in l
               and "out of range" in l for l in lines), log[-3000:]
    assert any("in Flatfield Apply" in l and "missing.npz" in l for l in lines), log[-3000:]
    assert any("no image is open" in l for l in lines), log[-3000:]
    assert "IMAGES_AFTER_RANGE 1" in log and "IMAGES_AFTER_MISSING 1" in log
    assert os.listdir(javatmp) == []
