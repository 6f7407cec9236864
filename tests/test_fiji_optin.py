"""Opt-in tests against a real Fiji.app (ImageJ2 + pyimagej), never run in CI.

Set ``FIJI_DIR`` to a Fiji.app folder to run them (skipped otherwise, also under
``CAMCORR_REQUIRE_ALL``).  The commands are installed into FIJI_DIR for the test and uninstalled
afterwards (only files carrying the generator's marker are removed).  ImageJ2 locates its
``scripts/`` folder through the real path of its jars, so a mirror of symbolic links does not work.
One JVM (one pyimagej session) per test, in a subprocess.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

from fiji_bridge.install import install, uninstall
from test_fiji_java import run_worker

FIJI_DIR = os.environ.get("FIJI_DIR")
pytestmark = pytest.mark.skipif(not FIJI_DIR or os.environ.get("CI") == "true",
                                reason="opt-in: set FIJI_DIR to a Fiji.app folder")


def _install(fiji: Path):
    """Install the real operations and the toy stand-in into `fiji` (removed again by the test)."""
    from toy_operation import TOY
    from fiji_bridge.generate import script_files

    install(fiji, sys.executable)
    for f in script_files({"toy-scale": TOY}, python=sys.executable, cli_module="toy_operation"):
        (fiji / f.relpath).write_text(f.text)


def test_fiji_session_menus_and_command(tmp_path):
    from camcorr.operations import all_operations
    from toy_operation import scale

    mirror = Path(FIJI_DIR).resolve()
    _install(mirror)
    try:
        _run(tmp_path, mirror)
    finally:
        uninstall(mirror)


def _run(tmp_path, mirror):
    from camcorr.operations import all_operations
    from toy_operation import scale

    rng = np.random.default_rng(5)
    a16 = rng.integers(0, 20000, (2, 16, 12)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "in.tif", a16, imagej=True, metadata={"axes": "ZYX"})
    stack = rng.poisson(300, (10, 20, 18)).astype(np.uint16)
    stack[::2, 4, 9] += 3000
    tifffile.imwrite(tmp_path / "stack.tif", stack, imagej=True, metadata={"axes": "ZYX"})
    titles = sorted(op.title for op in all_operations().values() if "fiji" in op.frontends)
    r = run_worker(tmp_path, rf'''
    import camcorr.operations as reg
    from toy_operation import TOY, scale
    from fiji_bridge.session import start_fiji, run_operation
    from fiji_bridge.convert import imageplus_to_numpy
    ij = start_fiji({str(mirror)!r}, mode="headless")
    R["version"] = str(ij.getVersion())
    R["legacy"] = bool(ij.legacy and ij.legacy.isActive())
    # command discovery: the menu model of ImageJ2 and the ImageJ 1.x command table
    found = {{}}
    for info in ij.module().getModules():
        path = info.getMenuPath()
        if path is not None and "Camera Corrections" in str(path.getMenuString()):
            found[str(info.getTitle())] = str(path.getMenuString())
    R["menus"] = found
    # pyimagej session: a Dataset in, an ImagePlus out, same pixels as the engine
    reg.all_operations(); reg._REGISTRY["toy-scale"] = TOY
    a = np.asarray(__import__("tifffile").imread({str(tmp_path / "in.tif")!r}))
    ds = ij.py.to_dataset(a, dim_order=["pln", "row", "col"])
    imp = run_operation("toy-scale", ds, ij=ij, factor=3.0, mode="multiply", clip=True)
    R["session_equal"] = bool(np.array_equal(imageplus_to_numpy(imp),
                                             scale(a, 3.0, "multiply", True)))
    R["session_shape"] = list(imageplus_to_numpy(imp).shape)
    if "median" in reg.all_operations():  # the README example: an ImagePlus opened by ImageJ
        from camcorr.median import selective_median
        src = ij.IJ.openImage({str(tmp_path / 'stack.tif')!r})
        clean = run_operation("median", src, ij=ij, rule="mad", k=5.0)
        arr = imageplus_to_numpy(src)
        R["readme_median"] = dict(
            equal=bool(np.array_equal(imageplus_to_numpy(clean),
                                      selective_median(arr, rule="mad", k=5.0).corrected)),
            title=str(clean.getTitle()), dtype=str(imageplus_to_numpy(clean).dtype))
    # commands run through the macro language, as a recorded macro line
    def run_cmd(src, cmd, options, out):
        # one macro per command, without batch mode (images opened by a command's own macro
        # interpreter are then closed reliably); the result is selected by its documented title
        base = os.path.splitext(os.path.basename(src))[0]
        ij.py.run_macro(f"""
        open("{{src}}");
        run("{{cmd}}", "{{options}}");
        if (isOpen("{{base}} ({{cmd}})")) {{{{
            selectImage("{{base}} ({{cmd}})");
            saveAs("Tiff", "{{out}}");
        }}}}
        close("*");
        """)

    ij.py.run_macro('run("Toy Scale", "factor=2 mode=multiply");')  # no image open yet
    inp = {str(tmp_path / 'in.tif')!r}
    run_cmd(inp, "Toy Scale", "factor=3.5 mode=multiply clip", {str(tmp_path / 'out_toy.tif')!r})
    run_cmd(inp, "Toy Scale", "factor=3.5 mode=multiply clip=false offset_file=[" + inp + "]",
            {str(tmp_path / 'out_toy_noclip.tif')!r})
    run_cmd(inp, "Toy Scale", "factor=3.5 mode=multiply", {str(tmp_path / 'out_toy_default.tif')!r})
    run_cmd({str(tmp_path / 'stack.tif')!r}, "Selective Median", "rule=mad k=5",
            {str(tmp_path / 'out_median.tif')!r})
    R["log"] = str(ij.IJ.getLog() or "")
    ''', timeout=600)
    print({k: r[k] for k in ("version", "legacy", "menus")})
    assert r["version"].startswith("2.")
    assert "Toy Scale" in r["menus"]
    for t in titles:
        assert t in r["menus"], (t, sorted(r["menus"]))
    assert r["session_equal"] and r["session_shape"] == [2, 16, 12]
    if "Selective Median" in titles:
        assert r["readme_median"] == {"equal": True, "title": "stack (Selective Median)",
                                      "dtype": "uint16"}
    print("\n".join(l for l in r["_stdout"].splitlines() if "camcorr" in l.lower() or "Camera" in l))
    out = tifffile.imread(tmp_path / "out_toy.tif")
    np.testing.assert_array_equal(out, scale(a16, 3.5, "multiply", True))
    # a boolean left out of the option string is false; a bracketed path reaches the CLI
    assert (tmp_path / "out_toy_noclip.tif").exists(), [l for l in r["_stdout"].splitlines() if "rror" in l or "amcorr" in l]
    out = tifffile.imread(tmp_path / "out_toy_noclip.tif")
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, scale(a16, 3.5, "multiply", False, a16))
    # a key left out takes the definition's default (persist=false), not the last value
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "out_toy_default.tif"),
                                  scale(a16, 3.5, "multiply", True))
    if "Selective Median" in titles:
        from camcorr.median import selective_median

        assert (tmp_path / "out_median.tif").exists(), r["_stdout"][-3000:]
        np.testing.assert_array_equal(tifffile.imread(tmp_path / "out_median.tif"),
                                      selective_median(stack, rule="mad", k=5.0).corrected)
    # headless: the log is the standard output
    assert "ERROR in Toy Scale: no image is open" in r["log"] + r["_stdout"]
