"""Faults: SIGTERM/SIGINT during a run, full disk, read-only destination, unwritable HOME and
install, umask, stale temporary files, unexpected errors.

Each fault is produced for real: signals are sent to a real ``camcorr`` process, the full disk
is a tiny tmpfs (skipped with the reason where ``mount`` is not permitted), the read-only
destination and install are read-only mounts as root (``chmod`` otherwise).
"""
from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

from _helpers import mount_tmpfs, umount

from camcorr.errors import CamcorrError
from camcorr.io import (TEMP_PATTERN, atomic_output, atomic_write, is_stale_temp, preflight_output,
                        remove_stale_temps, write_tiff)

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable


def _env(**extra):
    env = dict(os.environ)
    env.pop("CAMCORR_DEBUG", None)
    env.update(extra)
    return env


def _stack(shape) -> np.ndarray:
    return (100 + np.random.default_rng(7).poisson(50, shape)).astype(np.uint16)


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _parts(folder: Path):
    return [p for p in folder.rglob("*") if ".part" in p.name]


@pytest.fixture
def tmpfs(tmp_path):
    """Factory: a tmpfs of `size` at a new folder (skips with the reason if not permitted)."""
    mounted = []

    def make(size: str, name: str = "fs", readonly: bool = False) -> Path:
        p = tmp_path / name
        if not mount_tmpfs(p, size, readonly=readonly):
            pytest.skip("mount -t tmpfs is not permitted here (needs root or CAP_SYS_ADMIN); "
                        "the full-disk path is still covered by the short-write unit test")
        mounted.append(p)
        return p

    yield make
    for p in mounted:
        umount(p)


def _readonly_dir(tmp_path: Path, tmpfs, name="ro") -> Path:
    if os.geteuid() != 0:
        p = tmp_path / name
        p.mkdir()
        os.chmod(p, 0o555)
        return p
    return tmpfs("1m", name, readonly=True)


# ------------------------------------------------------------------------------------------
# SIGTERM / SIGINT at several points of a long run
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def long_run_inputs(tmp_path_factory):
    """30 stacks and a parameter file: ``flash correct`` writes 30 outputs, a few MB each."""
    from camcorr.flash.params import FlashParams, write_params

    d = tmp_path_factory.mktemp("longrun")
    rng = np.random.default_rng(3)
    shp = (256, 256)
    write_params(FlashParams(A=np.full(shp, 40.0, np.float32), B=np.full(shp, 2e-3, np.float32),
                             offset=np.full(shp, 100.0, np.float32), noise=np.ones(shp, np.float32)),
                 d / "params.tif")
    data = d / "data"
    data.mkdir()
    base = (100 + rng.poisson(300, (40,) + shp)).astype(np.uint16)
    for i in range(30):
        tifffile.imwrite(data / f"cell_ch0_stack{i:04d}.tif", np.roll(base, i, axis=0),
                         imagej=True, metadata={"axes": "ZYX"})
    hashes = {p.name: _sha(p) for p in data.iterdir()}
    return d, hashes


def _start_long_run(d: Path, out: Path):
    files = sorted(str(p) for p in (d / "data").glob("*.tif"))
    return subprocess.Popen([PY, "-m", "camcorr", "flash", "correct", *files, "-p",
                             str(d / "params.tif"), "-o", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())


def _check_after_kill(d: Path, out: Path, hashes, proc, err: str):
    assert "Traceback" not in err, err
    for p in (d / "data").iterdir():
        assert _sha(p) == hashes[p.name], f"input changed: {p}"
    assert not _parts(out) and not _parts(d), f"temporary files left: {_parts(out)}"
    if out.exists():
        for p in out.glob("*.tif"):  # whatever has a final name is complete
            with tifffile.TiffFile(p) as tif:
                assert tif.series[0].shape == (40, 256, 256), p


# SIGINT while the interpreter is still starting (before camcorr's code runs) is Python's own
# KeyboardInterrupt traceback: accepted, and not tested (a scheduler sends SIGTERM).
@pytest.mark.parametrize("point, sig", [
    ("starting", signal.SIGTERM), ("first-output", signal.SIGTERM),
    ("temporary-file", signal.SIGTERM), ("late", signal.SIGTERM),
    ("first-output", signal.SIGINT), ("temporary-file", signal.SIGINT)])
def test_signal_during_long_run(long_run_inputs, tmp_path, point, sig):
    d, hashes = long_run_inputs
    out = tmp_path / "out"
    proc = _start_long_run(d, out)
    deadline = time.monotonic() + 240
    sent_when = None
    try:
        if point == "starting":
            time.sleep(0.3)  # still importing: Python's default handlers or ours
        else:
            while time.monotonic() < deadline and proc.poll() is None:
                n = len(list(out.glob("*.tif"))) if out.exists() else 0
                if point == "first-output" and n >= 1:
                    break
                if point == "late" and n >= 15:
                    break
                if point == "temporary-file" and out.exists() and _parts(out):
                    break
                time.sleep(0.002)
        sent_when = len(list(out.glob("*.tif"))) if out.exists() else 0
        if proc.poll() is not None:
            pytest.skip(f"run finished before the signal could be sent at '{point}'")
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    conventional = 128 + int(sig)
    if point == "starting":
        # before camcorr installed its handlers the default applies (killed: -15); either way
        # nothing may be left behind
        assert proc.returncode in (conventional, -int(sig)), (proc.returncode, err)
    else:
        assert proc.returncode == conventional, (proc.returncode, err)
        assert "interrupted" in err, err
    _check_after_kill(d, out, hashes, proc, err)
    assert sent_when is not None


def test_stale_temporary_files_removed_by_next_run(tmp_path):
    """A run killed with SIGKILL leaves its temporary file; the next run into that folder removes
    it, and only files matching camcorr's pattern whose process is gone."""
    src = tmp_path / "in.tif"
    tifffile.imwrite(src, _stack((3, 16, 16)), photometric="minisblack")
    out = tmp_path / "out"
    out.mkdir()
    # a real camcorr temporary file of a process that no longer exists
    child = subprocess.Popen([PY, "-c", "import os; print(os.getpid())"], stdout=subprocess.PIPE,
                             text=True)
    dead_pid = int(child.communicate()[0])
    from camcorr.io import _HOST

    stale = out / f".x.tif.camcorr-{dead_pid}-{_HOST}-0123abcd.part.tif"
    stale.write_bytes(b"partial")
    alive = out / f".y.tif.camcorr-{os.getpid()}-{_HOST}-0123abcd.part.tif"  # this process
    alive.write_bytes(b"in progress")
    other = out / ".notes.part.tif"  # not camcorr's pattern
    other.write_bytes(b"keep")
    keep = out / "x.tif.part"
    keep.write_bytes(b"keep")
    assert TEMP_PATTERN.match(stale.name) and is_stale_temp(stale)
    r = subprocess.run([PY, "-m", "camcorr", "median", str(src), "-o", str(out / "m.tif")],
                       capture_output=True, text=True, env=_env())
    assert r.returncode == 0, r.stderr
    assert not stale.exists()
    assert "removed 1 temporary file" in r.stderr
    assert alive.exists() and other.exists() and keep.exists()
    assert remove_stale_temps(out) == []


def test_sigterm_inside_atomic_output_removes_temp(tmp_path):
    """Deterministic: SIGTERM arrives while a block is being streamed into the temporary file."""
    script = f"""
import os, signal, sys
sys.path.insert(0, {str(ROOT / 'tests')!r})
from camcorr.io import atomic_output, install_signal_handlers
install_signal_handlers()
try:
    with atomic_output({str(tmp_path / 'big.tif')!r}) as tmp:
        with open(tmp, 'wb') as fh:
            fh.write(b'x' * 100000)
            print(tmp, flush=True)
            os.kill(os.getpid(), signal.SIGTERM)
            fh.write(b'y' * 100000)
except KeyboardInterrupt as exc:
    sys.exit(exc.exit_status)
"""
    r = subprocess.run([PY, "-c", script], capture_output=True, text=True, env=_env())
    assert r.returncode == 143, r.stderr
    tmp = Path(r.stdout.strip())
    assert TEMP_PATTERN.match(tmp.name)
    assert not tmp.exists() and not (tmp_path / "big.tif").exists()
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------
# full disk
# ------------------------------------------------------------------------------------------


def test_disk_full_short_write_is_explained(tmp_path, monkeypatch):
    """The errno-less short write some libraries raise on a full disk is recognised."""
    def writer(tmp):
        raise OSError("2621440 requested and 1048400 written")

    with pytest.raises(CamcorrError, match="disk full") as info:
        atomic_write(tmp_path / "o.tif", writer, suffix=".tif", argument="--output")
    assert info.value.argument == "--output" and ".part" not in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_disk_full_while_writing_tiff(tmpfs):
    fs = tmpfs("256k")
    data = np.ones((4, 256, 256), np.uint16)  # 512 KiB: does not fit
    with pytest.raises(CamcorrError) as info:
        write_tiff(fs / "big.tif", data, argument="--output")
    msg = str(info.value)
    assert "disk full" in msg and "big.tif" in msg and ".part" not in msg
    assert list(fs.iterdir()) == []


def test_disk_full_streamed_blocks(tmpfs):
    fs = tmpfs("256k")
    with pytest.raises(CamcorrError, match="disk full"):
        with atomic_output(fs / "stream.tif", argument="--output") as tmp:
            with tifffile.TiffWriter(tmp) as tw:
                for _ in range(8):
                    tw.write(np.ones((256, 256), np.uint16), contiguous=True)
    assert list(fs.iterdir()) == []


def test_disk_full_cli_refused_before_work(tmpfs, tmp_path):
    fs = tmpfs("1m")
    src = tmp_path / "in.tif"
    tifffile.imwrite(src, _stack((40, 256, 256)))  # 5 MiB output expected
    before = _sha(src)
    r = subprocess.run([PY, "-m", "camcorr", "median", str(src), "-o", str(fs / "m.tif")],
                       capture_output=True, text=True, env=_env())
    assert r.returncode == 2, r.stderr
    assert "not enough free space" in r.stderr and "--output" in r.stderr
    assert "Traceback" not in r.stderr
    assert list(fs.iterdir()) == [] and _sha(src) == before


def test_free_space_estimate(tmp_path):
    with pytest.raises(CamcorrError, match="free space"):
        preflight_output(tmp_path / "x.tif", expected_bytes=2**62, argument="--output")


# ------------------------------------------------------------------------------------------
# read-only destination, unwritable HOME and install, umask
# ------------------------------------------------------------------------------------------


def test_read_only_destination(tmp_path, tmpfs):
    ro = _readonly_dir(tmp_path, tmpfs)
    src = tmp_path / "in.tif"
    tifffile.imwrite(src, _stack((3, 16, 16)), photometric="minisblack")
    with pytest.raises(CamcorrError, match="read-only|permission"):
        preflight_output(ro / "x.tif", argument="--output")
    with pytest.raises(CamcorrError, match="read-only|permission"):
        write_tiff(ro / "x.tif", np.ones((4, 4), np.uint16), argument="--output")
    t0 = time.monotonic()
    r = subprocess.run([PY, "-m", "camcorr", "median", str(src), "-o", str(ro / "m.tif")],
                       capture_output=True, text=True, env=_env())
    assert r.returncode == 2 and "--output" in r.stderr and "Traceback" not in r.stderr
    assert re_search(r"read-only|permission", r.stderr)
    assert list(ro.iterdir()) == []
    assert time.monotonic() - t0 < 120


def re_search(pattern, text):
    import re

    return re.search(pattern, text, re.IGNORECASE) is not None


def test_read_only_install_and_unwritable_home(tmp_path, tmpfs):
    """A shared cluster install: package and HOME read-only, NUMBA_CACHE_DIR unset.  camcorr
    starts, compiles its kernels into a private temporary cache and corrects a stack."""
    import shutil

    if os.geteuid() == 0:
        install = tmpfs("64m", "install")
        home = tmpfs("1m", "home", readonly=True)
    else:
        install = tmp_path / "install"
        install.mkdir()
        home = tmp_path / "home"
        home.mkdir()
    shutil.copytree(ROOT / "core", install / "camcorr",
                    ignore=shutil.ignore_patterns("__pycache__", "*.nbi", "*.nbc"))
    if os.geteuid() == 0:
        subprocess.run(["mount", "-o", "remount,ro", str(install)], check=True, timeout=20)
    else:
        for dirpath, _dirs, _files in os.walk(install):
            os.chmod(dirpath, 0o555)
        os.chmod(home, 0o555)
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    env = _env(PYTHONPATH=str(install), HOME=str(home), TMPDIR=str(tmpdir),
               XDG_CACHE_HOME=str(home / ".cache"), PYTHONDONTWRITEBYTECODE="1")
    env.pop("NUMBA_CACHE_DIR", None)
    r = subprocess.run([PY, "-m", "camcorr", "--version"], capture_output=True, text=True,
                       env=env, cwd=tmp_path)
    assert r.returncode == 0 and "camcorr" in r.stdout, r.stderr
    src = tmp_path / "in.tif"
    tifffile.imwrite(src, (100 + np.random.default_rng(1).poisson(50, (5, 32, 32))).astype(np.uint16))
    r = subprocess.run([PY, "-m", "camcorr", "median", str(src), "-o", str(tmp_path / "m.tif")],
                       capture_output=True, text=True, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    cache = tmpdir / f"camcorr-numba-{os.getuid()}"
    assert cache.is_dir() and any(cache.rglob("*.nbi")), "kernels not cached in the private folder"
    assert (cache.stat().st_mode & 0o777) == 0o700
    r2 = subprocess.run([PY, "-c", "import camcorr, os; print(os.environ.get('NUMBA_CACHE_DIR'))"],
                        capture_output=True, text=True, env=env, cwd=tmp_path)
    assert r2.stdout.strip() == str(cache), r2.stderr
    if os.geteuid() != 0:
        for dirpath, _dirs, _files in os.walk(install):
            os.chmod(dirpath, 0o755)


@pytest.mark.parametrize("umask, mode", [(0o002, 0o664), (0o022, 0o644), (0o077, 0o600)])
def test_outputs_honour_umask(tmp_path, umask, mode):
    src = tmp_path / "in.tif"
    tifffile.imwrite(src, _stack((3, 16, 16)), photometric="minisblack")
    out = tmp_path / "m.tif"
    r = subprocess.run([PY, "-m", "camcorr", "median", str(src), "-o", str(out)],
                       capture_output=True, text=True, env=_env(),
                       preexec_fn=lambda: os.umask(umask))
    assert r.returncode == 0, r.stderr
    assert (out.stat().st_mode & 0o777) == mode


# ------------------------------------------------------------------------------------------
# the top-level handler
# ------------------------------------------------------------------------------------------


def _boom_operation():
    from camcorr.operations import Operation, Param

    return Operation(name="boom", title="Boom", command=("boom",), summary="Fails (test).",
                     params=(Param("image", "image", required=True, help="Image."),),
                     runner="test_faults:_boom_runner")


def _boom_runner(values):
    raise ZeroDivisionError("float division by zero in a kernel")


def test_unexpected_error_is_one_paragraph_with_log(tmp_path, capsys, monkeypatch):
    from camcorr.cli import main

    monkeypatch.setenv("CAMCORR_LOG_DIR", str(tmp_path / "logs"))
    monkeypatch.delenv("CAMCORR_DEBUG", raising=False)
    src = tmp_path / "in.tif"
    tifffile.imwrite(src, _stack((3, 16, 16)), photometric="minisblack")
    status = main(["boom", str(src)], operations={"boom": _boom_operation()})
    err = capsys.readouterr().err
    assert status == 1
    assert "Traceback" not in err
    assert "unexpected internal error (ZeroDivisionError" in err and "in.tif" in err
    assert "report" in err.lower() and "--debug" in err
    logs = list((tmp_path / "logs").glob("camcorr-*.log"))
    assert len(logs) == 1 and "Traceback" in logs[0].read_text()
    assert str(logs[0]) in err.replace("\n", " ")
    status = main(["boom", "--debug", str(src)], operations={"boom": _boom_operation()})
    err = capsys.readouterr().err
    assert status == 1 and "Traceback" in err and "ZeroDivisionError" in err


def test_explain_for_front_ends(tmp_path):
    import errno

    from camcorr.guard import explain, guarded
    from camcorr.io import Interrupted

    assert explain(CamcorrError("bad", argument="--k"))[1] == 2
    assert explain(Interrupted(signal.SIGTERM))[1] == 143
    assert explain(Interrupted(signal.SIGINT))[1] == 130
    msg, status = explain(OSError(errno.ENOSPC, "No space left on device", "/x/y.tif"))
    assert status == 2 and "disk full" in msg
    with pytest.raises(CamcorrError, match="unexpected internal error"):
        with guarded("FlashCarryoverCorrect", inputs=["img"]):
            raise KeyError("x")
