"""Foundation: errors, TIFF I/O safety rules, streamed moments, operation registry, CLI."""
import json
import subprocess
import sys

import numpy as np
import pytest
import tifffile

from camcorr import CamcorrError
from camcorr.io import cast_to_dtype, read_tiff, write_tiff, iter_planes
from camcorr.operations import Param, all_operations
from camcorr.stats import RunningMoments


def test_error_message_names_argument_expected_received_fix():
    err = CamcorrError("value out of range", argument="--dampening", expected="a number in [0, 1]",
                       received="1.5", fix="Use 0.88")
    text = str(err)
    for part in ("--dampening", "a number in [0, 1]", "1.5", "Use 0.88"):
        assert part in text
    assert isinstance(err, ValueError)


def test_cast_clips_not_wraps():
    out, lo, hi = cast_to_dtype(np.array([-5.0, 0.4, 70000.0, 65535.6]), np.uint16,
                                return_counts=True)
    np.testing.assert_array_equal(out, [0, 0, 65535, 65535])
    assert (lo, hi) == (1, 2)
    assert out.dtype == np.uint16


def test_write_is_atomic_and_never_overwrites_inputs(tmp_path):
    src = tmp_path / "in.tif"
    data = np.arange(2 * 3 * 4, dtype=np.uint16).reshape(2, 3, 4)
    tifffile.imwrite(src, data, imagej=True, metadata={"axes": "ZYX", "spacing": 0.4, "unit": "um"},
                     resolution=(1 / 0.1, 1 / 0.1))
    arr, info = read_tiff(src)
    with pytest.raises(CamcorrError, match="overwrite an input"):
        write_tiff(src, arr, inputs=[src])
    out = write_tiff(tmp_path / "out" / "o.tif", arr.astype(np.float32) * 1e5, dtype=arr.dtype,
                     inputs=[src], **info.write_kwargs())
    back, info2 = read_tiff(out)
    assert back.dtype == np.uint16 and back.max() == 65535  # clipped, not wrapped
    assert info2.imagej.get("spacing") == pytest.approx(0.4)
    assert info2.axes == "ZYX"
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]


def test_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(Exception):
        write_tiff(tmp_path / "x.tif", np.zeros((2, 2), dtype=object))
    assert list(tmp_path.iterdir()) == []


def test_iter_planes_streams_blocks(tmp_path):
    data = np.random.default_rng(0).integers(0, 1000, (37, 8, 9)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "a.tif", data[:20])
    tifffile.imwrite(tmp_path / "b.tif", data[20:], compression="zlib")
    blocks = list(iter_planes([tmp_path / "a.tif", tmp_path / "b.tif"], chunk=8))
    assert max(b.shape[0] for b in blocks) <= 8
    np.testing.assert_array_equal(np.concatenate(blocks), data)


def test_running_moments_match_numpy_and_merge(rng):
    frames = rng.normal(100, 3, (50, 6, 7))
    a = RunningMoments().update(frames[:13]).update(frames[13:20])
    b = RunningMoments().update(frames[20:])
    a.merge(b)
    np.testing.assert_allclose(a.mean, frames.mean(0), rtol=1e-12)
    np.testing.assert_allclose(a.std(), frames.std(0, ddof=1), rtol=1e-10)
    with pytest.raises(CamcorrError, match="at least 2 frames"):
        RunningMoments().update(frames[0]).std()


def test_param_validation_messages():
    p = Param("dampening", "float", 1.0, minval=0, maxval=1, cli="--dampening")
    assert p.validate("0.5") == 0.5
    with pytest.raises(CamcorrError, match=r"--dampening.*\[0, 1\].*1\.5"):
        p.validate(1.5)
    q = Param("tiles", "int_list", cli="--empty-tiles")
    assert q.validate("1,7, 9-11") == (1, 7, 9, 10, 11)
    with pytest.raises(CamcorrError, match="--empty-tiles"):
        q.validate("1,x")


def test_cli_help_and_bad_input_exit_codes(tmp_path):
    run = lambda *a: subprocess.run([sys.executable, "-m", "camcorr", *a], capture_output=True,
                                    text=True)
    r = run("--help")
    assert r.returncode == 0 and "camcorr" in r.stdout
    r = run("--version")
    assert r.returncode == 0
    for op in all_operations().values():
        if "cli" in op.frontends:
            h = run(*op.command, "--help")
            assert h.returncode == 0, h.stderr
            assert op.summary.split()[0] in h.stdout
    # bad input: exit status 2, one message naming the argument, what was expected and
    # received, no traceback, nothing written
    stack = tmp_path / "stack.tif"
    tifffile.imwrite(stack, np.zeros((3, 8, 8), np.uint16), photometric="minisblack")
    cases = [
        (("median", str(stack), "--k", "abc"), "--k"),                        # not a number
        (("median", str(stack), "--k", "0", "-o", str(tmp_path / "o.tif")),
         "--k: value out of range"),                                           # engine's limits
        (("median", str(tmp_path / "missing.tif"), "-o", str(tmp_path / "o.tif")),
         "missing.tif"),                                                       # no such file
        (("median", str(stack), "-o", str(stack)), "--output"),               # would overwrite
        (("frc", str(stack), str(stack), "--window", "kaiser"), "--window"),  # unknown choice
        (("nosuchcommand",), "nosuchcommand"),
    ]
    for args, named in cases:
        r = run(*args)
        assert r.returncode == 2, (args, r.returncode, r.stderr)
        assert named in r.stderr, (args, r.stderr)
        assert "Traceback" not in r.stderr, (args, r.stderr)
    assert not (tmp_path / "o.tif").exists()
    assert tifffile.imread(stack).sum() == 0  # the input is untouched


def test_setup_cfg_lists_every_package():
    """A wheel (``pip install .``, not editable) holds only the packages setup.cfg lists: with
    ``camcorr = core`` setuptools cannot find them itself, so a sub-package of core/ missing there
    is missing from every non-editable install (its operations vanish from the command line)."""
    import configparser
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    cfg = configparser.ConfigParser()
    cfg.read(root / "setup.cfg")
    listed = set(cfg["options"]["packages"].split())
    present = set()
    for top, folder in (("camcorr", "core"), ("fiji_bridge", "fiji_bridge")):
        for init in (root / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(root / folder).parts
            present.add(".".join((top,) + rel))
    assert present - listed == set(), f"add to setup.cfg [options] packages: {sorted(present - listed)}"
    assert listed - present == set(), f"listed but absent: {sorted(listed - present)}"
