"""The real CellProfiler GUI on every example pipeline (Xvfb, Debian's wxPython 4.2.0).

For each pipeline, ``python -m cellprofiler -p PIPELINE --plugins-directory PLUGINS
--enable-readers imageio_reader -i INPUT -o OUTPUT`` is started on a private Xvfb (``display``)
and driven from inside by ``cp_gui_driver.py``: each camcorr module is
selected and one of its settings changed through the module view, the GUI's own validation is
read back from the pipeline list (no module may be flagged invalid), Test mode runs one cycle
(every module's ``display()`` draws its figure), a screenshot of the screen and a PNG of every
camcorr figure are saved to ``test_artifacts/cellprofiler_gui/`` (README: "CellProfiler GUI
test"), and CellProfiler closes with exit status 0.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import require, require_module

require_module("cellprofiler", "CellProfiler (cellprofiler extra)")
require_module("wx", "wxPython (Debian python3-wxgtk4.0 linked into .venv by make setup)")
require_module("appose", "appose (cellprofiler extra)")

import cp_helpers as h  # noqa: E402
from test_cellprofiler_batch import _frames, _tiles  # noqa: E402

DRIVER = Path(__file__).with_name("cp_gui_driver.py")
SHOTS = h.ROOT / "test_artifacts" / "cellprofiler_gui"
OURS = ("SelectiveMedian", "FlashCarryoverCorrect", "EstimateResidualGain",
        "FlatfieldFromEmptyTiles")


def _stack(folder: Path):
    import numpy as np
    import tifffile

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(2)
    stack = np.clip(np.rint(rng.normal(300, 3, (12, 32, 32))), 0, 65535).astype(np.uint16)
    stack[:, 5, 6] = np.where(np.arange(12) % 2, 2000, 300)
    tifffile.imwrite(folder / "stack.tif", stack)


def _flash_volumes(folder: Path, n_timepoints=2):
    from camcorr.flash.params import params_from_arrays, write_params
    from camcorr.simulate import lls

    folder.mkdir(parents=True, exist_ok=True)
    lls.write_acquisition(folder, n_planes=6, n_timepoints=n_timepoints, seed=5, camera_seed=0,
                          peaks=(3000.0, 1500.0))  # both channels lit: flat-fields need signal
    calib = lls.sensor_maps((1001, 1011, 1048, 1050), seed=0)
    write_params(params_from_arrays(calib.A, calib.B, calib.offset, calib.noise, roi=calib.roi,
                                    serial="100740", date="20240517"), folder)


INPUTS = {
    "selective_median.cppipe": _stack,
    "selective_median_2d_frames.cppipe": _frames,
    "residual_gain.cppipe": _frames,
    "flatfield_empty_tiles.cppipe": _tiles,
    "flash_carryover.cppipe": _flash_volumes,
    "flash_carryover_timeseries.cppipe": h.write_flash_timeseries,
    "chain_flash_median_flatfield.cppipe": _flash_volumes,
}


def test_every_pipeline_has_gui_inputs():
    assert {p.name for p in h.PIPELINES.glob("*.cppipe")} == set(INPUTS)


@pytest.fixture(scope="module")
def display():
    """A private X server for the GUI runs of this module.

    The display ``xvfb-run`` gives pytest resets whenever its last client disconnects (Xvfb's
    default): a GUI started during such a reset cannot open its X connection ("wxEntryStart
    failed"), about one start in ten on a loaded machine.  Our own Xvfb runs with ``-noreset``,
    on a display number it picks itself (``-displayfd``, no race with other X servers of the
    machine), local connections only; it is stopped after the module.  Without an Xvfb binary
    the surrounding ``$DISPLAY`` is used."""
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        require(bool(os.environ.get("DISPLAY")), "an X display (Xvfb, or pytest under xvfb-run)")
        yield os.environ["DISPLAY"]
        return
    read, write = os.pipe()
    server = subprocess.Popen([xvfb, "-displayfd", str(write), "-screen", "0", "1280x1024x24",
                               "-noreset", "-nolisten", "tcp"], pass_fds=(write,),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    os.close(write)
    try:
        with os.fdopen(read) as pipe:
            number = pipe.readline().strip()  # written once the server accepts connections
        assert number.isdigit(), ("Xvfb did not start", server.poll(),
                                  server.stderr.read().decode(errors="replace")[-2000:]
                                  if server.poll() is not None else "")
        yield f":{number}"
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _run_gui(pipeline: Path, in_dir: Path, out_dir: Path, home: Path, name: str, display: str):
    env = h.user_environment()
    env["DISPLAY"] = display
    env.pop("XAUTHORITY", None)  # our Xvfb has no cookie: local connections only
    env.pop("MPLBACKEND", None)  # the GUI uses WXAgg
    env["HOME"] = str(home)  # CellProfiler's GUI configuration goes to a fresh home
    report = home / "report.json"
    cmd = [sys.executable, str(DRIVER), "--report", str(report), "--shots", str(SHOTS),
           "--name", name, "--",
           "-p", str(pipeline), "--plugins-directory", str(h.portable_plugins()),
           "--enable-readers", "imageio_reader", "-i", str(in_dir), "-o", str(out_dir)]
    proc = subprocess.run(cmd, cwd=h._portable["cwd"], env=env, capture_output=True, text=True,
                          timeout=900)
    data = json.loads(report.read_text()) if report.is_file() else None
    return proc, data


@pytest.mark.parametrize("pipeline", sorted(INPUTS), ids=lambda n: n.replace(".cppipe", ""))
def test_gui_opens_validates_and_runs_test_mode(pipeline, tmp_path, display):
    SHOTS.mkdir(parents=True, exist_ok=True)
    name = pipeline.replace(".cppipe", "")
    in_dir, out_dir = tmp_path / "in", tmp_path / "out"
    INPUTS[pipeline](in_dir)
    # Should the X connection still fail to open (GTK cannot start, CellProfiler exits before
    # the driver runs), start again: any other failure is reported at once.
    for attempt in range(3):
        home = tmp_path / f"home{attempt}"
        home.mkdir()
        proc, report = _run_gui(h.PIPELINES / pipeline, in_dir, out_dir, home, name, display)
        started = report is not None and report.get("steps")
        if started or "wxEntryStart failed" not in proc.stdout + proc.stderr:
            break
    tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-40:])
    assert report is not None, tail
    assert not report["errors"], (report["errors"], report["steps"], tail)
    assert report["done"] and proc.returncode == 0, (proc.returncode, report["steps"], tail)

    # each of our modules was selected and edited through the module view
    edited = {k.split(" ", 1)[1] for k in report["modules"]}
    assert edited and edited <= set(OURS)
    for entry in report["modules"].values():
        assert entry["new"] != entry["old"], entry
    # the GUI's own validation flags no module invalid (SaveImages after ours included)
    states = report["validation"]
    assert any(k.endswith("SaveImages") for k in states)
    assert not [k for k, v in states.items() if v["state"] == "ERROR"], states
    # Test mode ran every module of one cycle
    ran = report["test_mode"]["ran"]
    assert ran and all(ok for _, ok in ran), ran
    assert {m for m, _ in ran} >= edited
    # each of our modules drew its figure (images; the measurement table is a wx grid)
    drawn = {f["module"]: f for f in report["figures"].values()}
    assert set(drawn) == edited, report["figures"]
    for fig in drawn.values():
        assert fig["images"] >= 1 and fig["axes"] >= 2, fig
        assert Path(fig["png"]).stat().st_size > 5_000
    assert Path(report["screenshot"]).stat().st_size > 20_000
