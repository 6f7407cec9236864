"""``camcorr fiji install`` / ``camcorr fiji uninstall``: put the generated commands into Fiji.

Which folders are accepted
--------------------------
* **Fiji / ImageJ2** (``target='fiji'``): a folder with ``jars/`` holding ``imagej-legacy*.jar``,
  ``imagej-2*.jar`` or ``ij-1*.jar`` (every Fiji.app).  Commands are written to
  ``scripts/Plugins/Camera Corrections/`` (ImageJ macros); Fiji reads them at start-up.  Their
  internal helper (no menu entry) goes to ``lib/camcorr/`` with the jar that runs it,
  ``jars/camcorr-fiji-helper.jar``.  (The ``Python mode/`` and ``Internal/`` sub-folders of
  earlier versions are removed: Fiji's Jython cannot run camcorr; the helper left the menus.)
* **Plain ImageJ 1.x** (``target='ij1'``): a folder with a ``plugins/`` folder and ``ij.jar``
  (or an ImageJ launcher: ``ImageJ``, ``ImageJ.exe``, ``ImageJ.app``), e.g. a copy of Debian's
  ``/usr/share/java/ij.jar`` beside a ``plugins/`` folder.  ImageJ 1.x reads neither ``scripts/`` nor
  ``#@`` lines, so the ImageJ-1.x flavour of the macros (an ImageJ ``Dialog``, same macro keys) is
  written to ``plugins/Camera Corrections/``, which ImageJ 1.x lists under Plugins > Camera
  Corrections (``.ijm`` files with an underscore in a sub-folder of ``plugins/``), with the
  helper class ``CamcorrMacroAbort.class`` (no underscore: no menu entry).

Anything else raises :class:`~camcorr.errors.CamcorrError`.  Installing twice rewrites the same
files (and removes commands of operations that no longer exist); uninstalling removes only the
files carrying the generator's marker and the folders left empty.
"""
from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

from camcorr.errors import CamcorrError
from camcorr.io import atomic_write

from .generate import HELPER_JAR, MARKER, MENU, script_files

__all__ = ["detect_installation", "install", "uninstall", "InstallResult", "check_python",
           "run_install", "run_uninstall"]


@dataclass
class InstallResult:
    """What :func:`install` / :func:`uninstall` did."""

    target: str
    root: Path
    written: List[Path] = field(default_factory=list)
    removed: List[Path] = field(default_factory=list)
    unchanged: List[Path] = field(default_factory=list)
    python: Optional[str] = None

    @property
    def restart_hint(self) -> str:
        app = "Fiji" if self.target == "fiji" else "ImageJ"
        return (f"Restart {app} (or use Help > Refresh Menus) to see the changes under "
                f"Plugins > {MENU}.")


def detect_installation(root) -> str:
    """``'fiji'`` or ``'ij1'`` for a Fiji/ImageJ folder; raises :class:`CamcorrError` otherwise."""
    path = Path(root).expanduser()
    if not path.is_dir():
        raise CamcorrError("no such folder", argument="FIJI_DIR", expected="the Fiji.app folder "
                           "(or an ImageJ 1.x folder with plugins/ and ij.jar)",
                           received=str(path))
    jars = path / "jars"
    if jars.is_dir() and any(jars.glob(pat) for pat in ("imagej-legacy*.jar", "imagej-2*.jar",
                                                        "ij-1*.jar", "ij-[0-9]*.jar")):
        return "fiji"
    launchers = ("ij.jar", "ImageJ", "ImageJ.exe", "ImageJ.app", "ImageJ.sh")
    if (path / "plugins").is_dir() and any((path / n).exists() for n in launchers):
        return "ij1"
    raise CamcorrError("not a Fiji or ImageJ installation", argument="FIJI_DIR",
                       expected="a Fiji.app folder (with jars/imagej-*.jar or jars/ij-*.jar) or an "
                       "ImageJ 1.x folder (plugins/ beside ij.jar or an ImageJ launcher)",
                       received=str(path),
                       fix="Pass the folder that contains Fiji's jars/ and plugins/ folders, e.g. "
                       "~/Fiji.app (on macOS: /Applications/Fiji.app)")


def check_python(python: str, timeout: float = 120.0) -> str:
    """Absolute path of `python` after checking that it can import camcorr."""
    exe = Path(python).expanduser()
    if not exe.is_absolute():
        import shutil

        found = shutil.which(str(python))
        exe = Path(found) if found else exe.absolute()
    if not exe.exists():
        raise CamcorrError("no such Python", argument="--python", expected="the path of a Python "
                           "executable with camcorr installed", received=str(exe))
    try:
        proc = subprocess.run([str(exe), "-c", "import camcorr.cli, fiji_bridge.macro_entry"], capture_output=True,
                              text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CamcorrError("cannot run this Python", argument="--python",
                           expected="a Python executable", received=f"{exe} ({exc})") from None
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["?"])[-1]
        raise CamcorrError("camcorr is not installed in this Python", argument="--python",
                           expected="a Python where 'import camcorr' works",
                           received=f"{exe} ({last})",
                           fix=f"Install it there ({exe} -m pip install camcorr) or pass the "
                           "Python of the environment that has camcorr")
    return str(exe)


def _is_ours(path: Path) -> bool:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return MARKER in fh.read(200_000)
    except OSError:
        return False


def _menu_dirs(root: Path, target: str) -> List[Path]:
    """Folders whose camcorr files install/uninstall manage (``Internal/``: the helper's place
    before it left the menus)."""
    if target == "fiji":
        base = root / "scripts" / "Plugins" / MENU
        return [base / "Python mode", base / "Internal", base, root / "lib" / "camcorr"]
    return [root / "plugins" / MENU]


def _single_files(root: Path, target: str) -> List[Path]:
    """Files of camcorr's outside those folders (the helper jar among Fiji's jars)."""
    return [root / HELPER_JAR] if target == "fiji" else []


def install(fiji_dir, python: Optional[str] = None, *, operations=None,
            check: bool = True, cli_module: str = "fiji_bridge.macro_entry") -> InstallResult:
    """Write the Camera Corrections commands into a Fiji or ImageJ 1.x folder.

    Parameters
    ----------
    fiji_dir : path-like
        The Fiji.app folder (or a plain ImageJ 1.x folder, see the module docstring).
    python : str, optional
        Python executable with camcorr installed, baked into the macros (default: this one).
    operations : dict, optional
        Operations to install (default: every operation exposed in Fiji).
    check : bool
        Check that `python` imports camcorr.
    cli_module : str
        Module providing the command line ``main(argv)`` (tests use a stand-in).

    Returns
    -------
    InstallResult

    Raises
    ------
    CamcorrError
        `fiji_dir` is not a Fiji/ImageJ installation, or `python` lacks camcorr.
    """
    root = Path(fiji_dir).expanduser().resolve()
    target = detect_installation(root)
    python = python or sys.executable
    python = check_python(python) if check else str(python)
    files = script_files(operations, target=target, python=python, cli_module=cli_module,
                         fiji_dir=str(root))
    result = InstallResult(target=target, root=root, python=python)
    wanted = set()
    for f in files:
        dest = root / f.relpath
        wanted.add(dest)
        if dest.exists() and (dest.read_bytes() == f.data if f.data else
                              dest.read_text(encoding="utf-8", errors="replace") == f.text):
            result.unchanged.append(dest)
            continue
        if dest.exists() and not _is_ours(dest):
            raise CamcorrError("a file that camcorr did not write is in the way",
                               argument="FIJI_DIR", expected="no file or a camcorr script",
                               received=str(dest), fix="Move it away and install again")
        dest.parent.mkdir(parents=True, exist_ok=True)
        if f.data:
            atomic_write(dest, lambda tmp, data=f.data: Path(tmp).write_bytes(data),
                         suffix=dest.suffix)
        else:
            atomic_write(dest, lambda tmp, text=f.text: Path(tmp).write_text(text, encoding="utf-8"),
                         suffix=dest.suffix)
        result.written.append(dest)
    for folder in _menu_dirs(root, target):  # commands of operations that are gone
        if folder.is_dir():
            for path in folder.iterdir():
                if path.is_file() and path not in wanted and _is_ours(path):
                    path.unlink()
                    result.removed.append(path)
            if folder.name == "Internal":
                try:
                    folder.rmdir()  # the helper's old place, when empty
                except OSError:
                    pass
    return result


def uninstall(fiji_dir) -> InstallResult:
    """Remove every command written by :func:`install` (idempotent)."""
    root = Path(fiji_dir).expanduser().resolve()
    target = detect_installation(root)
    result = InstallResult(target=target, root=root)
    dirs = _menu_dirs(root, "fiji") + _menu_dirs(root, "ij1")
    for path in _single_files(root, "fiji"):
        if path.is_file() and _is_ours(path):
            path.unlink()
            result.removed.append(path)
    for folder in dirs:
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if path.is_file() and _is_ours(path):
                path.unlink()
                result.removed.append(path)
        try:
            folder.rmdir()  # only when empty
        except OSError:
            pass
    return result


def run_install(values: Dict) -> int:
    """Runner of ``camcorr fiji install``."""
    result = install(values["fiji_dir"], values.get("python"))
    for path in result.written:
        print(f"wrote    {path}")
    for path in result.removed:
        print(f"removed  {path}")
    n = len(result.written) + len(result.unchanged)
    print(f"{n} Camera Corrections scripts in {result.root} ({len(result.written)} written, "
          f"{len(result.unchanged)} unchanged); Python: {result.python}")
    print(result.restart_hint)
    return 0


def run_uninstall(values: Dict) -> int:
    """Runner of ``camcorr fiji uninstall``."""
    result = uninstall(values["fiji_dir"])
    for path in result.removed:
        print(f"removed  {path}")
    print(f"{len(result.removed)} Camera Corrections files removed from {result.root}.")
    print(result.restart_hint)
    return 0
