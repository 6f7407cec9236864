"""Headless CellProfiler: read TIFF without Bio-Formats (no Java, no network).

CellProfiler 5 keeps its preferences in ``~/.config/CellProfiler/CellProfilerLocal.cfg`` through
wxPython; a headless run (``-c``) starts from an empty in-memory configuration instead and reads no
file.  With that empty configuration a ``.tif`` is opened by the Bio-Formats reader, which starts
Java through jgo and downloads ``ome:formats-gpl`` from Maven: on a cluster node without network the
run fails at the first image.

The camcorr plugins therefore apply a small JSON preferences file when CellProfiler runs headless,
as the plugins are loaded (before any image is read).  Keys the user has set are left alone, and
readers are only ever *removed* from the active list, so ``--enable-readers`` still wins.

Which file:

* ``$CAMCORR_CELLPROFILER_PREFERENCES`` if set (``none`` switches the mechanism off);
* else ``pipelines/cellprofiler_headless_preferences.json`` beside this plugins folder (the
  repository layout), which holds::

      {"Reader.Bio-Formats.enabled": false, "Reader.ImageIO.read_tif": true}

CellProfiler 4.2 has no reader framework (it always reads through python-bioformats); there the
function does nothing.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

LOGGER = logging.getLogger("camcorr.cellprofiler")

ENV_VAR = "CAMCORR_CELLPROFILER_PREFERENCES"
DEFAULT_FILE = Path(__file__).resolve().parents[1] / "pipelines" / "cellprofiler_headless_preferences.json"

_applied = {"done": False, "path": None}


def preferences_path():
    """The preferences file that applies, or None (switched off or absent)."""
    env = os.environ.get(ENV_VAR)
    if env is not None:
        if env.strip().lower() in ("", "none", "off", "0"):
            return None
        return Path(env)
    return DEFAULT_FILE if DEFAULT_FILE.is_file() else None


def apply_headless_preferences(force: bool = False):
    """Apply the camcorr headless preferences once per process; return the file used or None."""
    if _applied["done"] and not force:
        return _applied["path"]
    _applied["done"] = True
    try:
        import cellprofiler_core.preferences as cpprefs
    except ImportError:  # pragma: no cover - CellProfiler not installed
        return None
    if not cpprefs.get_headless():
        return None  # GUI: the user's own File > Preferences apply
    path = preferences_path()
    if path is None:
        return None
    try:
        prefs = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        LOGGER.warning("camcorr: cannot read CellProfiler preferences %s: %s", path, exc)
        return None
    for key, value in prefs.items():
        if cpprefs.config_read_typed(key, type(value)) is None:  # never override the user
            cpprefs.config_write(key, value)
    try:
        from cellprofiler_core.constants.reader import AVAILABLE_READERS
    except ImportError:  # CellProfiler 4.2: no reader framework
        AVAILABLE_READERS = None
    if AVAILABLE_READERS is not None:
        for name in list(AVAILABLE_READERS):
            if cpprefs.config_read_typed(f"Reader.{name}.enabled", bool) is False:
                del AVAILABLE_READERS[name]
    _applied["path"] = str(path)
    LOGGER.info("camcorr: applied headless CellProfiler preferences from %s", path)
    return str(path)
