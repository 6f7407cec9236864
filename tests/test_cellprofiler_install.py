"""``camcorr cellprofiler install PLUGINS_DIR`` (and ``--uninstall``): copies the plugin files,
idempotent, upgrades only its own files, refuses foreign files of the same name, and the
installed folder runs a pipeline headless from an unrelated folder with no camcorr variable."""
from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

from camcorr.cli import main
from camcorr.cpplugins import MANIFEST
from camcorr.cpplugins.install import plugin_files

import cp_helpers as h

NAMES = sorted(p.name for p in plugin_files())


def test_plugin_files_are_the_plugins_folder():
    assert "selectivemedian.py" in NAMES and "_common.py" in NAMES
    assert "__init__.py" not in NAMES
    assert NAMES == sorted(p.name for p in h.PLUGINS.glob("*.py") if p.name != "__init__.py")


def test_install_is_idempotent_and_uninstall_removes_only_ours(tmp_path, capsys):
    target = tmp_path / "CellProfiler" / "plugins"
    (tmp_path / "CellProfiler").mkdir()
    assert main(["cellprofiler", "install", str(target)]) == 0
    assert f"{len(NAMES)} file(s) written, 0 unchanged" in capsys.readouterr().out
    for name in NAMES:
        assert (target / name).read_bytes() == (h.PLUGINS / name).read_bytes()
    manifest = json.loads((target / MANIFEST).read_text())
    assert sorted(manifest["files"]) == NAMES
    (target / "someone_elses_plugin.py").write_text("# not ours\n")
    assert main(["cellprofiler", "install", str(target)]) == 0
    assert f"0 file(s) written, {len(NAMES)} unchanged" in capsys.readouterr().out
    # an older camcorr file (recorded in the manifest) is upgraded in place
    old = b"# camcorr plugin of an older release\n"
    (target / "selectivemedian.py").write_bytes(old)
    manifest["files"]["selectivemedian.py"] = __import__("hashlib").sha256(old).hexdigest()
    manifest["files"]["obsolete_module.py"] = __import__("hashlib").sha256(old).hexdigest()
    (target / "obsolete_module.py").write_bytes(old)
    (target / MANIFEST).write_text(json.dumps(manifest))
    assert main(["cellprofiler", "install", str(target)]) == 0
    assert "1 file(s) written" in capsys.readouterr().out
    assert (target / "selectivemedian.py").read_bytes() == \
        (h.PLUGINS / "selectivemedian.py").read_bytes()
    assert not (target / "obsolete_module.py").exists()
    # uninstall: ours go, the user's plugin and an edited file of ours stay
    (target / "_units.py").write_text("# edited by the user\n")
    assert main(["cellprofiler", "install", str(target), "--uninstall"]) == 0
    captured = capsys.readouterr()
    assert f"removed {len(NAMES) - 1} file(s)" in captured.out and "_units.py" in captured.err
    assert sorted(p.name for p in target.iterdir()) == [MANIFEST, "_units.py",
                                                        "someone_elses_plugin.py"]


def test_install_refuses_foreign_files_of_the_same_name(tmp_path, capsys):
    target = tmp_path / "plugins"
    target.mkdir()
    (target / "selectivemedian.py").write_text("# a different SelectiveMedian plugin\n")
    assert main(["cellprofiler", "install", str(target)]) == 2
    err = capsys.readouterr().err
    assert "PLUGINS_DIR" in err and "selectivemedian.py" in err and "Traceback" not in err
    assert sorted(p.name for p in target.iterdir()) == ["selectivemedian.py"]  # nothing changed
    assert main(["cellprofiler", "install", str(tmp_path / "none"), "--uninstall"]) == 2
    assert "no camcorr plugins installed here" in capsys.readouterr().err


@pytest.mark.cellprofiler
def test_installed_folder_runs_a_pipeline_from_elsewhere(tmp_path, capsys):
    """The folder written by the installer, used from an unrelated folder, offline, with no
    camcorr environment variable (camcorr is imported from the Python environment)."""
    from conftest import require_module

    require_module("cellprofiler", "CellProfiler (cellprofiler extra, headless package)")
    import camcorr.median as median

    target = tmp_path / "plugins"
    assert main(["cellprofiler", "install", str(target)]) == 0
    in_dir, out_dir, cwd = tmp_path / "in", tmp_path / "out", tmp_path / "somewhere"
    in_dir.mkdir()
    cwd.mkdir()
    rng = np.random.default_rng(4)
    stack = np.clip(np.rint(rng.normal(300, 3, (16, 24, 20))), 0, 65535).astype(np.uint16)
    stack[:, 5, 6] = np.where(np.arange(16) % 2, 2000, 300)
    tifffile.imwrite(in_dir / "s.tif", stack)
    proc = h.run_headless(h.PIPELINES / "selective_median.cppipe", in_dir, out_dir,
                          plugins=target, cwd=cwd)
    assert proc.returncode == 0, h.explain(proc)
    got = tifffile.imread(next(out_dir.glob("s_median.tif*")))
    np.testing.assert_array_equal(got, median.selective_median(stack).corrected)
    assert got[0, 5, 6] < 400
