"""Real Java tests of the Fiji bridge with ImageJ 1.x (Debian ``libij-java``) under Xvfb.

Every JVM runs in its own subprocess (JPype cannot restart one), a few checks per JVM.  A watchdog in
each worker reports any modal dialog and kills the process, so a blocked ImageJ fails the test
instead of hanging it.

Plain ImageJ 1.x finds the installed commands as ``plugins/Camera Corrections/*.ijm`` (see
``fiji_bridge.install``); ``IJ.run("Toy Scale", "factor=3.5 ...")`` then runs the macro exactly as
a recorded macro line does.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from conftest import require

PY = sys.executable
IJ_JAR = os.environ.get("IJ_JAR", "/usr/share/java/ij.jar")

PRELUDE = r'''
import json, os, sys, threading, time
import numpy as np

def _dialogs():
    from java.awt import Window, Container
    out = []
    def texts(c, acc):
        for ch in c.getComponents():
            if "MultiLineLabel" in str(ch.getClass().getName()):
                try:
                    f = ch.getClass().getDeclaredField("lines"); f.setAccessible(True)
                    acc.extend(str(x) for x in f.get(ch))
                except Exception:
                    pass
            for m in ("getText", "getLabel"):
                if hasattr(ch, m):
                    try:
                        t = getattr(ch, m)()
                        if t:
                            acc.append(str(t))
                    except Exception:
                        pass
            if isinstance(ch, Container):
                texts(ch, acc)
    for w in Window.getWindows():
        if w.isVisible() and hasattr(w, "getTitle"):
            acc = []
            texts(w, acc)
            out.append([str(w.getTitle()), acc])
    return out

def _watchdog(seconds):
    def run():
        time.sleep(seconds)
        print("RESULT " + json.dumps({"watchdog": _dialogs()}), flush=True)
        os._exit(9)
    threading.Thread(target=run, daemon=True).start()

_watchdog(float(os.environ.get("WATCHDOG", "150")))

def _hook(kind, value, tb):  # an exception in the worker ends it at once (ImageJ threads stay)
    import traceback
    traceback.print_exception(kind, value, tb)
    sys.stdout.flush(); sys.stderr.flush()
    os._exit(3)
sys.excepthook = _hook
R = {}
def done():
    print("RESULT " + json.dumps(R), flush=True)
    os._exit(0)
'''


def _need_java():
    require(shutil.which("java") is not None, "Java (openjdk-17-jre-headless)")
    require(Path(IJ_JAR).is_file(), f"ImageJ 1.x ({IJ_JAR}, Debian libij-java)")
    require(bool(os.environ.get("DISPLAY")), "an X display (run under xvfb-run)")
    pytest.importorskip("jpype")


def run_worker(tmp_path: Path, body: str, timeout: float = 240, env=None) -> dict:
    """Run `body` (after PRELUDE) in a fresh Python with its own JVM; return its RESULT dict."""
    script = tmp_path / "worker.py"
    script.write_text(PRELUDE + textwrap.dedent(body) + "\ndone()\n")
    e = dict(os.environ, WATCHDOG=str(min(timeout - 30, 150)), **(env or {}))
    # tests/ on the path of the worker and of the Python the macros start (toy_operation)
    e["PYTHONPATH"] = os.pathsep.join(
        [str(Path(__file__).resolve().parent)] + [x for x in [e.get("PYTHONPATH")] if x])
    proc = subprocess.run([PY, str(script)], capture_output=True, text=True, timeout=timeout,
                          cwd=str(tmp_path), env=e)
    lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
    assert lines, f"worker failed (status {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    result = json.loads(lines[-1][len("RESULT "):])
    assert "watchdog" not in result, f"ImageJ blocked on a dialog: {result['watchdog']}"
    result["_stdout"] = proc.stdout
    return result


def test_numpy_imageplus_round_trips(tmp_path):
    """8/16/32-bit, 2D and 3D (Z, T, C): pixels, dtype, shape, axes and calibration survive
    numpy -> ImagePlus -> numpy; unsupported types give a CamcorrError, not a silent cast."""
    _need_java()
    r = run_worker(tmp_path, r'''
    from camcorr.errors import CamcorrError
    from fiji_bridge.convert import (start_ij1, numpy_to_imageplus, imageplus_to_numpy,
                                     imageplus_calibration)
    IJ = start_ij1()
    rng = np.random.default_rng(1)
    cal = {"pixel_width": 0.108, "pixel_height": 0.108, "pixel_depth": 0.3, "unit": "micron"}
    R["cases"] = []
    for dt in ("uint8", "uint16", "float32"):
        for shape, axes in (((17, 23), None), ((4, 17, 23), None), ((3, 9, 11), "TYX"),
                            ((2, 9, 11), "CYX")):
            info = np.iinfo(dt) if dt != "float32" else None
            if info:
                a = rng.integers(0, int(info.max) + 1, shape, dtype=np.int64).astype(dt)
                a.reshape(-1)[:2] = (0, info.max)
            else:
                a = (rng.standard_normal(shape) * 1e4).astype(dt)
                a.reshape(-1)[:3] = (-3.5e38, 3.5e38, 1e-30)
            imp = numpy_to_imageplus(a, "t", axes=axes, calibration=cal)
            b = imageplus_to_numpy(imp)
            R["cases"].append({"dtype": dt, "shape": list(shape), "axes": axes,
                               "out_dtype": str(b.dtype), "out_shape": list(b.shape),
                               "equal": bool(np.array_equal(a, b)),
                               "bitdepth": int(imp.getBitDepth()),
                               "dims": [int(imp.getNChannels()), int(imp.getNSlices()),
                                        int(imp.getNFrames())],
                               "cal": imageplus_calibration(imp)})
    # hyperstacks: axes kept both ways; ImageJ's own (c, z, t) -> plane index agrees
    from fiji_bridge.convert import imageplus_axes
    R["hyper"] = []
    for dt in ("uint16", "float32"):
        for shape, axes in (((3, 2, 9, 11), "ZCYX"), ((2, 3, 2, 9, 11), "TZCYX"),
                            ((2, 3, 9, 11), "TZYX"), ((2, 3, 9, 11), "CZYX")):
            a = (rng.integers(0, 60000, shape) if dt == "uint16"
                 else rng.standard_normal(shape) * 1e4).astype(dt)
            imp = numpy_to_imageplus(a, "h", axes=axes, calibration=cal)
            b, bax = imageplus_to_numpy(imp, keep_axes=True)
            full = a if "T" in axes else a[None]  # (T, ...) view of the input by letter
            fax = axes if "T" in axes else "T" + axes
            idx_ok = True
            for t in range(imp.getNFrames()):
                for z in range(imp.getNSlices()):
                    for c in range(imp.getNChannels()):
                        sel = tuple({"T": t, "Z": z, "C": c}[l] for l in fax[:-2])
                        plane = imp.getStack().getProcessor(imp.getStackIndex(c + 1, z + 1, t + 1))
                        got = np.asarray(plane.getPixels()).view(dt).reshape(9, 11)
                        idx_ok &= bool(np.array_equal(got, full[sel]))
            want = a.transpose(1, 0, 2, 3) if axes == "CZYX" else a
            R["hyper"].append(dict(dtype=dt, axes=axes, out_axes=bax, ij_axes=imageplus_axes(imp),
                                   equal=bool(np.array_equal(b, want)) and b.dtype == a.dtype,
                                   plane_order=idx_ok, hyper=bool(imp.isHyperStack()),
                                   flat=list(imageplus_to_numpy(imp).shape),
                                   dims=[int(imp.getNChannels()), int(imp.getNSlices()),
                                         int(imp.getNFrames())]))
    errors = []
    for bad_axes in ("ZZYX", "ZCXY", "ZCY", "QCYX"):
        try:
            numpy_to_imageplus(np.zeros((2, 2, 4, 4), np.uint16), axes=bad_axes)
        except CamcorrError as exc:
            errors.append(str(exc))
    R["axes_errors"] = errors
    errors = []
    for bad in (np.zeros((4, 4), np.int32), np.zeros((4, 4), np.float64), np.zeros((2, 2, 4, 4), np.uint8)):
        try:
            numpy_to_imageplus(bad)
        except CamcorrError as exc:
            errors.append(str(exc))
    rgb = IJ.createImage("rgb", "RGB ramp", 8, 8, 1)
    try:
        imageplus_to_numpy(rgb)
    except CamcorrError as exc:
        errors.append(str(exc))
    R["errors"] = errors
    ''')
    assert len(r["cases"]) == 12
    for c in r["cases"]:
        assert c["equal"] and c["out_dtype"] == c["dtype"] and c["out_shape"] == c["shape"], c
        assert c["bitdepth"] == {"uint8": 8, "uint16": 16, "float32": 32}[c["dtype"]]
        n = c["shape"][0] if len(c["shape"]) == 3 else 1
        expected = {None: [1, n, 1], "TYX": [1, 1, n], "CYX": [n, 1, 1]}[c["axes"]]
        assert c["dims"] == expected, c
        assert c["cal"] == {"pixel_width": 0.108, "pixel_height": 0.108, "pixel_depth": 0.3,
                            "unit": "micron"}
    assert len(r["hyper"]) == 8
    for h in r["hyper"]:
        want_axes = "ZCYX" if h["axes"] == "CZYX" else h["axes"]
        assert h["equal"] and h["plane_order"] and h["hyper"], h
        assert h["out_axes"] == h["ij_axes"] == want_axes, h
        size = dict(zip(h["axes"], {"ZCYX": (3, 2), "TZCYX": (2, 3, 2), "TZYX": (2, 3),
                                    "CZYX": (2, 3)}[h["axes"]]))
        assert h["dims"] == [size.get("C", 1), size.get("Z", 1), size.get("T", 1)], h
        assert h["flat"] == [int(np.prod(h["dims"])), 9, 11]   # keep_axes=False: as before
    assert len(r["axes_errors"]) == 4 and all("axes" in e for e in r["axes_errors"])
    assert len(r["errors"]) == 4
    assert "int32" in r["errors"][0] and "float64" in r["errors"][1]
    assert "dimensions" in r["errors"][2] and "RGB" in r["errors"][3]


def _bare_python():
    """A Python without camcorr (the system one), or None."""
    for cand in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if Path(cand).exists() and subprocess.run([cand, "-c", "import camcorr"],
                                                  capture_output=True).returncode != 0:
            return cand
    return None


#: The operations whose menu commands the ImageJ 1.x session runs (all must be installed).
IJ1_REAL = ("median", "flash-correct", "gain-estimate", "gain-normalize", "frc")


@pytest.fixture(scope="module")
def ij1(tmp_path_factory):
    """One plain ImageJ 1.x session (its own JVM) with the commands installed: a toy command and
    the real ones, run through IJ.run with recorded-style option strings, good and bad input.
    Returns the worker's RESULT dict; ``_bare`` is the camcorr-less Python used (or None)."""
    _need_java()
    tmp_path = tmp_path_factory.mktemp("ij1")
    from camcorr.operations import all_operations
    from toy_operation import TOY
    from fiji_bridge.generate import render_ijm
    from fiji_bridge.install import install

    root = tmp_path / "ImageJ"
    (root / "plugins").mkdir(parents=True)
    os.symlink(IJ_JAR, root / "ij.jar")
    install(root, PY, operations={"toy-scale": TOY}, cli_module="toy_operation")
    real = {k: v for k, v in all_operations().items() if "fiji" in v.frontends}
    install_real = tmp_path / "ImageJreal"
    (install_real / "plugins").mkdir(parents=True)
    os.symlink(IJ_JAR, install_real / "ij.jar")
    install(install_real, PY)
    shutil.copytree(install_real / "plugins" / "Camera Corrections",
                    root / "plugins" / "Camera Corrections", dirs_exist_ok=True)
    tests_dir = root / "plugins" / "Test Variants"
    tests_dir.mkdir()
    bare = _bare_python()
    from dataclasses import replace
    (tests_dir / "Toy_Nopython.ijm").write_text(render_ijm(
        replace(TOY, title="Toy Nopython"), "ij1", str(tmp_path / "no" / "python"),
        "toy_operation"))
    if bare:
        (tests_dir / "Toy_Bare.ijm").write_text(render_ijm(
            replace(TOY, title="Toy Bare"), "ij1", bare, "toy_operation"))
    javatmp = tmp_path / "javatmp"
    javatmp.mkdir()
    (tmp_path / "offset_bad.txt").write_text("not a tiff")

    r = run_worker(tmp_path, rf'''
    import tifffile
    from fiji_bridge.convert import start_ij1, numpy_to_imageplus, imageplus_to_numpy, imageplus_calibration
    from toy_operation import scale
    IJ = start_ij1(plugins_dir={str(root)!r}, gui=True)
    from java.lang import System
    System.setProperty("java.io.tmpdir", {str(javatmp)!r})
    from ij import WindowManager, Menus
    cmds = Menus.getCommands()
    R["menu"] = {{k: str(cmds.get(k)) for k in ("Toy Scale", "Selective Median",
        "Flash Carryover Correct", "Toy Nopython") if cmds.get(k) is not None}}
    rng = np.random.default_rng(3)

    def run_on(arr, cmd, options, cal=None, title="src.tif"):
        IJ.log("\\Clear")
        while WindowManager.getImageCount():
            imp = WindowManager.getCurrentImage(); imp.changes = False; imp.close()
        imp = None
        if arr is not None:
            imp = numpy_to_imageplus(arr, title, calibration=cal); imp.show()
        n0 = WindowManager.getImageCount()
        raised = None
        try:
            IJ.run(cmd, options)
        except Exception as exc:  # a failing command aborts its caller (ImageJ's abort flag)
            raised = str(exc)
        cur = WindowManager.getCurrentImage()
        out = {{"n_before": n0, "n_after": WindowManager.getImageCount(), "raised": raised,
               "log": str(IJ.getLog() or ""), "tmp_left": os.listdir({str(javatmp)!r})}}
        if cur is not None and (imp is None or cur.getID() != imp.getID()):
            out.update(title=str(cur.getTitle()), cal=imageplus_calibration(cur),
                       bitdepth=int(cur.getBitDepth()))
            if cur.getBitDepth() != 24:
                out["pixels"] = imageplus_to_numpy(cur)
        return out

    cal = {{"pixel_width": 0.25, "pixel_height": 0.25, "pixel_depth": 1.0, "unit": "micron"}}
    a16 = rng.integers(0, 30000, (9, 13)).astype(np.uint16)
    o = run_on(a16, "Toy Scale", "factor=3.5 mode=multiply clip", cal)
    R["t16"] = dict(equal=bool(np.array_equal(o.pop("pixels"), scale(a16, 3.5, "multiply", True))),
                    **{{k: o[k] for k in ("title", "cal", "n_before", "n_after", "tmp_left")}})
    a8 = rng.integers(0, 255, (3, 7, 5)).astype(np.uint8)
    o = run_on(a8, "Toy Scale", "factor=0.123456 mode=add clip=false")
    px = o.pop("pixels")
    R["t8"] = dict(equal=bool(np.array_equal(px, scale(a8, 0.123456, "add", False))),
                   dtype=str(px.dtype), shape=list(px.shape), tmp_left=o["tmp_left"])
    # booleans: a key left out takes the default (clip=True), a bare key is true
    o = run_on(a8, "Toy Scale", "factor=0.6 mode=add")
    R["t8_default"] = bool(np.array_equal(o.pop("pixels"), scale(a8, 0.6, "add", True)))
    o = run_on(a8, "Toy Scale", "factor=0.6 mode=add clip")
    R["t8_bare"] = bool(np.array_equal(o.pop("pixels"), scale(a8, 0.6, "add", True)))
    a32 = rng.standard_normal((2, 6, 4)).astype(np.float32) * 100
    o = run_on(a32, "Toy Scale", "factor=2 mode=multiply clip")
    R["t32"] = dict(equal=bool(np.array_equal(o.pop("pixels"), scale(a32, 2, "multiply", True))))

    # bad input
    o = run_on(None, "Toy Scale", "factor=2 mode=multiply")
    R["noimage"] = {{k: o[k] for k in ("log", "n_before", "n_after", "tmp_left", "raised")}}
    rgb = IJ.createImage("rgb", "RGB ramp", 8, 8, 1)
    IJ.log("\\Clear"); rgb.show()
    try:
        IJ.run("Toy Scale", "factor=2 mode=multiply")
        raised = None
    except Exception as exc:
        raised = str(exc)
    R["rgb"] = dict(log=str(IJ.getLog() or ""), n=WindowManager.getImageCount(),
                    tmp_left=os.listdir({str(javatmp)!r}), raised=raised)
    rgb.changes = False; rgb.close()
    o = run_on(a16, "Toy Scale", "factor=2 mode=multiply offset_file=[{tmp_path / 'missing.tif'}]")
    R["missing"] = {{k: o[k] for k in ("log", "n_before", "n_after", "tmp_left", "raised")}}
    o = run_on(a16, "Toy Scale", "factor=200 mode=multiply")
    R["range"] = {{k: o[k] for k in ("log", "n_before", "n_after", "tmp_left", "raised")}}
    o = run_on(a16, "Toy Nopython", "factor=2 mode=multiply")
    R["nopython"] = {{k: o[k] for k in ("log", "n_before", "n_after", "tmp_left", "raised")}}
    if {bool(bare)!r}:
        o = run_on(a16, "Toy Bare", "factor=2 mode=multiply")
        R["bare"] = {{k: o[k] for k in ("log", "n_before", "n_after", "tmp_left", "raised")}}

    # a real engine: Selective Median, against camcorr.median.selective_median called directly
    if cmds.get("Selective Median") is not None:
        from camcorr.median import selective_median
        stack = rng.poisson(200, (12, 24, 20)).astype(np.uint16)
        stack[:, 5, 7] += 3000; stack[::2, 11, 3] += 2500; stack[:, 17, 15] = 60000
        o = run_on(stack, "Selective Median", "rule=mad k=5 mean_pass", cal)
        direct = selective_median(stack, rule="mad", k=5.0, mean_pass=True, mean_k=None)
        px = o.pop("pixels", None)
        R["median"] = dict(equal=px is not None and bool(np.array_equal(px, direct.corrected)),
                           dtype=None if px is None else str(px.dtype),
                           changed=int((direct.corrected != stack).any(axis=0).sum()),
                           rts_fixed=bool((direct.corrected[:, 11, 3] != stack[:, 11, 3]).any()),
                           cal=o.get("cal"), log=o["log"], tmp_left=o["tmp_left"])

    # Flash Carryover Correct on the current stack, against correct_interleaved called directly
    if cmds.get("Flash Carryover Correct") is not None:
        from camcorr.flash import correct_interleaved, read_params, write_params
        from camcorr.flash.params import FlashParams
        shp = (14, 10)
        fp = FlashParams(A=np.full(shp, 40.0, np.float32), B=np.full(shp, 2e-3, np.float32),
                         offset=np.full(shp, 100.0, np.float32), noise=np.ones(shp, np.float32))
        ppath = write_params(fp, {str(tmp_path / "FlashParam_test.tif")!r})
        raw = (100 + rng.poisson(500, (6,) + shp)).astype(np.uint16)
        o = run_on(raw, "Flash Carryover Correct", f"params=[{{ppath}}] dampening=0.9 dtype=keep")
        direct = correct_interleaved([raw], read_params(ppath), dampening=0.9, cycle="per Z",
                                     dtype="keep")[0]
        px = o.pop("pixels", None)
        R["flash"] = dict(equal=px is not None and bool(np.array_equal(px, direct)),
                          dtype=None if px is None else str(px.dtype),
                          changed=int((direct != raw).sum()), log=o["log"], tmp_left=o["tmp_left"])
        o = run_on(raw, "Flash Carryover Correct",
                   "params=[{tmp_path / 'no_such_FlashParam.tif'}] dampening=1 dtype=keep")
        R["flash_missing"] = {{k: o[k] for k in ("log", "n_before", "n_after", "tmp_left", "raised")}}
        # a 2-channel hyperstack (C = the channels of one timepoint, interleaved per Z)
        zcyx = (100 + rng.poisson(300, (5, 2) + shp)).astype(np.uint16)
        zcyx[:, 0, 3:7, 2:6] += 20000                     # bright ch0 object -> ch1 carryover
        hs = numpy_to_imageplus(zcyx.reshape((-1,) + shp), "hs.tif", calibration=cal)
        hs.setDimensions(2, 5, 1); hs.setOpenAsHyperStack(True)
        IJ.log("\\Clear")
        while WindowManager.getImageCount():
            imp = WindowManager.getCurrentImage(); imp.changes = False; imp.close()
        hs.show()
        IJ.run("Flash Carryover Correct", f"params=[{{ppath}}] dampening=0.9 dtype=keep")
        cur = WindowManager.getCurrentImage()
        direct = correct_interleaved([zcyx[:, 0], zcyx[:, 1]], read_params(ppath), dampening=0.9,
                                     cycle="per Z", dtype="keep")
        got = None if cur is None or cur.getID() == hs.getID() else cur
        px = None if got is None else imageplus_to_numpy(got).reshape(zcyx.shape)
        R["flash_hyper"] = dict(
            equal=px is not None and all(bool(np.array_equal(px[:, c], direct[c])) for c in (0, 1)),
            dims=None if got is None else [int(got.getNChannels()), int(got.getNSlices()),
                                           int(got.getNFrames())],
            hyper=None if got is None else bool(got.isHyperStack()),
            bitdepth=None if got is None else int(got.getBitDepth()),
            cal=None if got is None else imageplus_calibration(got),
            ch1_changed=int((direct[1] != zcyx[:, 1] - 100).sum()),
            log=str(IJ.getLog() or ""), tmp_left=os.listdir({str(javatmp)!r}))

        # in process on the same hyperstack: run_operation and the Python-mode script keep the
        # channels (before: one stack of C*Z planes, corrected as a single channel).  With lasers
        # cycled per stack (Settings.txt) that flat stack would be corrected wrongly.
        from camcorr.simulate.lls import write_settings
        spath = write_settings({str(tmp_path / "ps_Settings.txt")!r}, (1, 1, 10, 14),
                               n_planes=5, cycle="per stack")
        direct = correct_interleaved([zcyx[:, 0], zcyx[:, 1]], read_params(ppath), dampening=0.9,
                                     cycle="per stack", dtype="keep")
        from fiji_bridge.session import run_operation
        from fiji_bridge.convert import imageplus_axes
        hs2 = numpy_to_imageplus(zcyx, "hs2.tif", axes="ZCYX", calibration=cal)
        res = {{"api": run_operation("flash-correct", hs2, params=str(ppath), settings=str(spath),
                                    dampening=0.9, dtype="keep")}}
        R["flash_inproc"] = {{"in_axes": imageplus_axes(hs2)}}
        for k, out in res.items():
            px, ax = imageplus_to_numpy(out, keep_axes=True)
            R["flash_inproc"][k] = dict(
                axes=ax, hyper=bool(out.isHyperStack()), bitdepth=int(out.getBitDepth()),
                equal=px.shape == zcyx.shape and all(bool(np.array_equal(px[:, c], direct[c]))
                                                     for c in (0, 1)),
                flat_differs=not np.array_equal(
                    px.reshape((-1,) + shp),
                    correct_interleaved([zcyx.reshape((-1,) + shp)], read_params(ppath),
                                        dampening=0.9, cycle="per stack", dtype="keep")[0]),
                dims=[int(out.getNChannels()), int(out.getNSlices()), int(out.getNFrames())],
                title=str(out.getTitle()), cal=imageplus_calibration(out))

    # more engines, run through their menu command and in process (run_on_array: the same
    # command-line runner called in this Python) on the same simulated data
    from fiji_bridge.engine import run_on_array
    from camcorr.operations import all_operations as _all
    _ops = _all()
    movie = rng.poisson(50, (20, 32, 32)).astype(np.uint16)
    for name, options, values in (
            ("gain-estimate", "iterations=3 reference=smooth", dict(iterations=3, reference="smooth")),
            ("gain-normalize", "reject_k=5 split_=even-odd", dict(reject_k=5.0, split="even-odd"))):
        if name not in _ops:
            continue
        o = run_on(movie, _ops[name].title, options)
        px = o.pop("pixels", None)
        ref = run_on_array(name, movie, values)
        R[name] = dict(equal=px is not None and bool(np.array_equal(px, ref)),
                       shape=None if px is None else list(px.shape), title=o.get("title"),
                       log=o["log"][-500:], tmp_left=o["tmp_left"])
    if "frc" in _ops:
        import tifffile
        b = rng.poisson(50, (64, 64)).astype(np.uint16)
        tifffile.imwrite({str(tmp_path / "frc_b.tif")!r}, b)
        a = rng.poisson(50, (64, 64)).astype(np.uint16)
        o = run_on(a, "Fourier Ring Correlation", "b=[{tmp_path / 'frc_b.tif'}] n_sigma=3 window=hann")
        R["frc"] = dict(title=o.get("title"), bitdepth=o.get("bitdepth"),
                        log=o["log"][-500:], tmp_left=o["tmp_left"])

    # a macro calling a command with bad input stops at that line, as users run macros: on a
    # macro thread (the editor's Run, installed macros) and through runMacro (returns
    # "[aborted]"); a value the command refuses before it starts (k=abc), one camcorr refuses
    # (k=0, after the image was saved and camcorr ran) and a missing file
    from ij.macro import MacroRunner
    from java.awt import Window
    tifffile.imwrite({str(tmp_path / "stop.tif")!r}, rng.poisson(200, (3, 16, 16)).astype(np.uint16),
                     imagej=True, metadata={{"axes": "ZYX"}})
    R["stops"] = {{}}
    for case, call in (("not_a_number", 'run("Selective Median", "k=abc");'),
                       ("out_of_range", 'run("Selective Median", "k=0");'),
                       ("missing_file", 'run("Flash Carryover Correct", '
                                        '"params=[{tmp_path / 'no_such_FlashParam.tif'}]");')):
        for mode in ("macro_thread", "run_macro"):
            while WindowManager.getImageCount():
                imp = WindowManager.getCurrentImage(); imp.changes = False; imp.close()
            IJ.log("\\Clear")
            src = ('print("BEFORE"); open("{tmp_path / "stop.tif"}"); ' + call
                   + ' print("NOT_STOPPED"); close("*");')
            ret = None
            if mode == "macro_thread":
                runner = MacroRunner(src)
                runner.getThread().join(120000)
            else:
                ret = str(IJ.runMacro(src))
            time.sleep(0.3)
            R["stops"][case + "/" + mode] = dict(
                log=str(IJ.getLog() or ""), ret=ret, n=WindowManager.getImageCount(),
                windows=[str(w.getTitle()) for w in Window.getWindows()
                         if w.isVisible() and hasattr(w, "getTitle")],
                tmp_left=os.listdir({str(javatmp)!r}))

    ''', timeout=400)
    missing = [k for k in IJ1_REAL if k not in real]
    assert not missing, f"operations without a Fiji command: {missing}"
    r["_bare"] = bare
    r["_root"] = root
    return r


def test_imagej1_toy_command_returns_the_engine_pixels(ij1):
    """The menu runs the installed macro; 8/16/32-bit pixels, title and calibration come back
    exactly as the engine computes them; boolean keys left out take their default."""
    r = ij1
    assert r["menu"]["Toy Scale"] == 'ij.plugin.Macro_Runner("Camera Corrections/Toy_Scale.ijm")'
    t16 = r["t16"]
    assert t16["equal"] and t16["title"] == "src (Toy Scale)" and t16["n_after"] == 2
    assert t16["cal"]["pixel_width"] == 0.25 and t16["cal"]["unit"] in ("micron", "microns")
    assert r["t8"] == {"equal": True, "dtype": "float32", "shape": [3, 7, 5], "tmp_left": []}
    assert r["t32"]["equal"] and r["t8_default"] and r["t8_bare"]


def test_imagej1_bad_input_leaves_a_log_line_and_nothing_else(ij1):
    """No image, RGB, a missing file, an out-of-range value, a missing or camcorr-less Python:
    one clear Log message each, no new image, no temporary file, no hang."""
    r, bare = ij1, ij1["_bare"]
    assert "no image is open" in r["noimage"]["log"] and r["noimage"]["n_after"] == 0
    assert "RGB" in r["rgb"]["log"] and r["rgb"]["n"] == 1
    assert "missing.tif" in r["missing"]["log"] and "ERROR in Toy Scale" in r["missing"]["log"]
    # errors name the dialog label and macro key, not the command-line flag
    assert "Factor (x) [factor]: value out of range" in r["range"]["log"], r["range"]["log"]
    assert "does not exist" in r["nopython"]["log"] and "camcorr fiji install" in r["nopython"]["log"]
    for key in ("noimage", "rgb", "missing", "range", "nopython", "bare"):
        if key in r:
            assert r[key]["tmp_left"] == [], key  # no temporary file left behind
            # a Java caller of IJ.run sees ImageJ's own cancellation, as after any command
            # that aborts (ImageJ's abort flag, set by CamcorrMacroAbort)
            assert "Macro canceled" in (r[key]["raised"] or ""), (key, r[key])
            assert r[key].get("n_after", r[key].get("n")) == r[key].get("n_before", 1), key
    if bare:
        assert "camcorr is not installed in " + bare in r["bare"]["log"]


@pytest.mark.parametrize("case", ["not_a_number", "out_of_range", "missing_file"])
@pytest.mark.parametrize("mode", ["macro_thread", "run_macro"])
def test_imagej1_error_stops_the_calling_macro(ij1, case, mode):
    """A macro calling a command with bad input stops at that line: its next statement does not
    run, the Log holds the one camcorr error line, and there is no exception window, stack
    trace or dialog (the worker's watchdog reports dialogs); runMacro returns "[aborted]"."""
    o = ij1["stops"][f"{case}/{mode}"]
    log = o["log"]
    words = {"not_a_number": ["ERROR in Selective Median", "Threshold (robust sigmas) [k]",
                              "not a number", "'abc'"],
             "out_of_range": ["ERROR in Selective Median", "Threshold (robust sigmas) [k]",
                              "out of range"],
             "missing_file": ["ERROR in Flash Carryover Correct", "no_such_FlashParam.tif"]}[case]
    lines = [l for l in log.splitlines() if l.startswith("[Camera Corrections] ERROR")]
    assert "BEFORE" in log and len(lines) == 1 and all(w in lines[0] for w in words), log
    assert "NOT_STOPPED" not in log, log                  # the next statement did not run
    assert o["n"] == 1, o                                  # the input only, no result
    assert "Exception" not in o["windows"] and "Macro Error" not in o["windows"], o["windows"]
    assert "Exception" not in log and "\tat " not in log and "Traceback" not in log, log
    assert o["tmp_left"] == []
    if mode == "run_macro":
        assert o["ret"] == "[aborted]"


def test_imagej1_error_stops_a_batch_macro(ij1, tmp_path):
    """ImageJ 1.x's own command line (``ImageJ -batch macro.ijm``, under Xvfb: ImageJ 1.x
    builds its menus even in batch mode): the error line is printed, the macro stops there,
    no stack trace."""
    stack = np.random.default_rng(4).poisson(200, (3, 16, 16)).astype(np.uint16)
    import tifffile

    tifffile.imwrite(tmp_path / "s.tif", stack, imagej=True, metadata={"axes": "ZYX"})
    macro = tmp_path / "m.ijm"
    macro.write_text(f'print("BEFORE"); open("{tmp_path / "s.tif"}"); '
                     'run("Selective Median", "k=0"); print("NOT_STOPPED");\n')
    proc = subprocess.run(["java", f"-Dplugins.dir={ij1['_root']}", "-jar", IJ_JAR, "-batch",
                           str(macro)], capture_output=True, text=True, timeout=180,
                          env=dict(os.environ, PYTHONPATH=os.pathsep.join(
                              [str(Path(__file__).resolve().parent), os.environ.get("PYTHONPATH", "")])))
    out = proc.stdout + proc.stderr
    assert "BEFORE" in out and "[Camera Corrections] ERROR in Selective Median: Threshold " \
        "(robust sigmas) [k]" in out, out
    assert "NOT_STOPPED" not in out and "Exception" not in out and "\tat " not in out, out


def test_imagej1_flash_correct_plain_hyperstack_and_in_process(ij1):
    """Flash Carryover Correct on a Z stack and on a 2-channel hyperstack equals
    correct_interleaved called directly; in process the channels and calibration are kept."""
    r = ij1
    f = r["flash"]
    assert f["equal"] and f["dtype"] == "uint16" and f["changed"] > 0 and f["tmp_left"] == [], f
    assert "single-channel acquisition" in f["log"], f["log"]   # the one-line note
    assert "hyperstack with C channels" in f["log"]
    fh = r["flash_hyper"]
    assert fh["equal"] and fh["dims"] == [2, 5, 1] and fh["hyper"], fh
    assert fh["bitdepth"] == 16 and fh["ch1_changed"] > 0 and fh["tmp_left"] == [], fh
    assert fh["cal"]["pixel_width"] == 0.25 and fh["cal"]["unit"] in ("micron", "microns")
    assert "single-channel acquisition" not in fh["log"] and "ERROR" not in fh["log"]
    fi = r["flash_inproc"]
    assert fi["in_axes"] == "ZCYX"
    api = fi["api"]   # run_operation on the ZCYX hyperstack
    assert api["equal"] and api["flat_differs"], api
    assert api["axes"] == "ZCYX" and api["dims"] == [2, 5, 1] and api["hyper"], api
    assert api["bitdepth"] == 16 and api["title"] == "hs2 (Flash Carryover Correct)"
    assert api["cal"]["pixel_width"] == 0.25
    fm = r["flash_missing"]
    assert "no_such_FlashParam.tif" in fm["log"] and "ERROR in Flash Carryover Correct" in fm["log"]
    assert fm["n_after"] == fm["n_before"] and fm["tmp_left"] == []


def test_imagej1_gain_and_frc_commands(ij1):
    """Gain estimate and normalise equal the command-line runner in process; FRC draws its plot
    titled by both inputs and logs the cross-over."""
    r = ij1
    for name in ("gain-estimate", "gain-normalize"):
        g = r[name]
        assert g["equal"] and g["shape"][-2:] == [32, 32] and g["tmp_left"] == [], g
    # the FRC plot, titled by the two inputs, is the current image; numbers in the Log
    assert r["frc"]["title"] == "Fourier Ring Correlation of src.tif and frc_b.tif", r["frc"]
    assert r["frc"]["bitdepth"] == 24 and "cross-over (cycles/pixel)" in r["frc"]["log"]
    assert r["frc"]["tmp_left"] == []


def test_imagej1_selective_median_equals_the_engine(ij1):
    """Selective Median on a stack with hot and telegraph pixels equals selective_median."""
    r = ij1
    m = r["median"]
    assert m["equal"] and m["dtype"] == "uint16" and m["rts_fixed"] and m["changed"] >= 1, m
    assert m["cal"]["pixel_width"] == 0.25 and m["tmp_left"] == []
