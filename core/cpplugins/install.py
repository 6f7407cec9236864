"""Copy / remove the camcorr CellProfiler plugin files (see :mod:`camcorr.cpplugins`)."""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Dict, List, Optional

from ..errors import CamcorrError

__all__ = ["MANIFEST", "plugin_source_dir", "plugin_files", "install_plugins",
           "uninstall_plugins"]

#: name of the manifest written beside the installed plugin files
MANIFEST = ".camcorr-cellprofiler.json"
#: a file every plugin folder of camcorr holds (used to recognise the source folder)
_MARKER = "_common.py"


def plugin_source_dir() -> Path:
    """The folder holding the plugin files shipped with this camcorr.

    camcorr is installed from its source tree (``pip install -e``), whose ``cellprofiler_plugins``
    folder sits beside the engine's ``core`` folder.

    Raises
    ------
    CamcorrError
        No plugins folder beside this camcorr.
    """
    here = Path(__file__).resolve().parent  # .../core/cpplugins
    for parent in here.parents:
        cand = parent / "cellprofiler_plugins"
        if (cand / _MARKER).is_file():
            return cand
    raise CamcorrError("the camcorr CellProfiler plugin files were not found",
                       argument="camcorr cellprofiler install",
                       expected="a cellprofiler_plugins folder beside camcorr's source folder",
                       received=str(here),
                       fix="Install camcorr from its source tree (pip install -e .), or copy the "
                           "cellprofiler_plugins folder by hand")


def plugin_files(source: Optional[Path] = None) -> List[Path]:
    """The plugin files to copy: every ``*.py`` of the source folder but ``__init__.py``."""
    source = plugin_source_dir() if source is None else Path(source)
    return sorted(p for p in source.glob("*.py") if p.name != "__init__.py")


def _sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _read_manifest(target: Path) -> Dict[str, str]:
    path = target / MANIFEST
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
        return {str(k): str(v) for k, v in data["files"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        raise CamcorrError("unreadable camcorr manifest", argument="PLUGINS_DIR",
                           expected=f"a JSON manifest {MANIFEST} written by camcorr",
                           received=str(path),
                           fix="Remove the camcorr plugin files and the manifest by hand, then "
                               "install again") from None


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=str(path.parent))
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _write_manifest(target: Path, files: Dict[str, str], version: str) -> None:
    text = json.dumps({"camcorr": version, "files": dict(sorted(files.items()))}, indent=1)
    _atomic_write(target / MANIFEST, (text + "\n").encode())


def install_plugins(target, source: Optional[Path] = None) -> Dict[str, List[str]]:
    """Copy the plugin files into the plugins folder `target` (created if missing).

    Idempotent: files already identical are left alone.  A file of the same name is replaced only
    if the manifest says camcorr wrote it and it is unchanged since; any other file of the same
    name stops the install before anything is written.

    Returns
    -------
    dict
        ``{"written": [...], "unchanged": [...], "removed": [...]}`` file names.

    Raises
    ------
    CamcorrError
        `target` is a file, or holds foreign files with the plugins' names.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as plugins:
    ...     first = install_plugins(plugins)
    ...     again = install_plugins(plugins)
    ...     removed = uninstall_plugins(plugins)
    >>> len(first["written"]) == len(removed["removed"]) > 4, again["written"]
    (True, [])
    """
    from .. import __version__

    target = Path(target).expanduser()
    if target.exists() and not target.is_dir():
        raise CamcorrError("not a folder", argument="PLUGINS_DIR",
                           expected="CellProfiler's plugins folder", received=str(target))
    files = plugin_files(source)
    manifest = _read_manifest(target) if target.is_dir() else {}
    foreign, plan, unchanged = [], [], []
    for src in files:
        dst = target / src.name
        new = src.read_bytes()
        if dst.exists():
            if dst.read_bytes() == new:
                unchanged.append(src.name)
                continue
            if manifest.get(src.name) != _sha(dst):
                foreign.append(src.name)
                continue
        plan.append((dst, new))
    if foreign:
        raise CamcorrError("the plugins folder holds other files with the names of camcorr's "
                           "plugin files", argument="PLUGINS_DIR",
                           expected="no file of these names, or files written by camcorr",
                           received=f"{', '.join(foreign)} in {target}",
                           fix="Move those files away (or choose another plugins folder), then "
                               "install again; nothing was changed")
    target.mkdir(parents=True, exist_ok=True)
    names = {p.name for p in files}
    removed = []
    for name, sha in manifest.items():  # files of an older camcorr no longer shipped
        old = target / name
        if name not in names and old.is_file() and _sha(old) == sha:
            old.unlink()
            removed.append(name)
    for dst, data in plan:
        _atomic_write(dst, data)
    _write_manifest(target, {p.name: _sha(target / p.name) for p in files}, __version__)
    return {"written": [d.name for d, _ in plan], "unchanged": unchanged, "removed": removed}


def uninstall_plugins(target) -> Dict[str, List[str]]:
    """Remove the files the manifest lists and that are unchanged; keep (and report) the rest.

    Raises
    ------
    CamcorrError
        No camcorr manifest in `target`.

    Examples
    --------
    >>> import os, tempfile
    >>> with tempfile.TemporaryDirectory() as plugins:
    ...     written = install_plugins(plugins)["written"]
    ...     print(uninstall_plugins(plugins)["kept"], os.listdir(plugins))
    [] []
    """
    target = Path(target).expanduser()
    manifest = _read_manifest(target) if target.is_dir() else {}
    if not manifest:
        raise CamcorrError("no camcorr plugins installed here", argument="PLUGINS_DIR",
                           expected=f"a folder with {MANIFEST} (written by 'camcorr "
                                    "cellprofiler install')", received=str(target))
    removed, kept = [], []
    for name, sha in sorted(manifest.items()):
        path = target / name
        if not path.is_file():
            continue
        if _sha(path) == sha:
            path.unlink()
            removed.append(name)
        else:
            kept.append(name)
    if kept:
        _write_manifest(target, {n: manifest[n] for n in kept}, "modified")
    else:
        (target / MANIFEST).unlink()
    return {"removed": removed, "kept": kept}
