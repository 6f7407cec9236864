"""The run manifest ``camcorr_run.json``: which files of a correction run the report shows.

Layout (version 1).  Every path is relative to the run folder (absolute paths work too); every
section is optional — the report draws what is there and lists what is missing::

    {
      "camcorr_run": 1,
      "title": "My acquisition",
      "flash": {"calibration_dir": "calib", "params": "calib/FlashParam_....tif",
                "pixel": [row, col]},
      "projections": [                      # maximum projections over Z, before / after
        {"label": "dark channel, carryover", "before": "raw/..._ch1_....tif",
         "after": "corrected/..._ch1_....tif", "offset": "calib/FlashParam_....tif"}],
      "median": {"mask": "median/mask.tif", "counts": {...}},
      "gain": {"image": "gain/gain.tif", "report": "gain/gain_report.json"},
      "frc": {"curves": "frc/frc.json"},    # {"frequency", "before", "after", "threshold"}
      "flatfield": {"profiles": "flatfield/profiles.npz", "before": "x.tif", "after": "y.tif"},
      "truth": {                            # simulator ground truth (optional)
        "flash": "truth/flash_truth.npz",   # A, B, offset, noise (calibration frame)
        "carryover": [{"raw": ..., "corrected": ..., "clean": ..., "carryover": ...}],
        "hot_mask": "truth/hot_mask.tif", "gain": "truth/gain.tif",
        "flatfield": "truth/flatfield.tif"},
      "qc": {"any": "extra numbers copied to qc.json"}
    }

``offset`` of a projection is a number, a 2D TIFF, or a FlashParam file (its third plane); it is
subtracted from ``before`` so raw and corrected data are compared on one scale.
"""
from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any, Dict, Optional

from .._version import __version__
from ..errors import CamcorrError
from ..io import atomic_write
from ..jsonio import json_default

__all__ = ["MANIFEST_NAME", "read_manifest", "write_manifest", "update_manifest", "resolve"]

MANIFEST_NAME = "camcorr_run.json"
VERSION = 1


def resolve(run_dir, path) -> Optional[Path]:
    """`path` relative to `run_dir` (or absolute); ``None`` stays ``None``."""
    if path is None:
        return None
    p = Path(path)
    return p if p.is_absolute() else Path(run_dir) / p


def read_manifest(run_dir) -> Dict[str, Any]:
    """The manifest of `run_dir`; without one, a manifest guessed from known file names.

    Raises
    ------
    CamcorrError
        `run_dir` is not a folder, or its manifest is not valid JSON.
    """
    run = Path(run_dir)
    if not run.is_dir():
        raise CamcorrError("not a folder", argument="RUN_DIR", expected="the folder of a run",
                           received=str(run_dir))
    mpath = run / MANIFEST_NAME
    if mpath.is_file():
        try:
            data = json.loads(mpath.read_text())
        except json.JSONDecodeError as exc:
            raise CamcorrError("the run manifest is not valid JSON", argument=str(mpath),
                               expected="a JSON object", received=str(exc),
                               fix="Fix or delete the file; without it known file names are "
                                   "picked up") from None
        if not isinstance(data, dict):
            raise CamcorrError("the run manifest is not a JSON object", argument=str(mpath),
                               expected="a JSON object", received=type(data).__name__)
        return data
    return _guess(run)


def _first(run: Path, *patterns):
    for pat in patterns:
        hits = sorted(p for p in run.rglob(pat) if "report" not in p.parts)
        if hits:
            return str(hits[0].relative_to(run))
    return None


def _guess(run: Path) -> Dict[str, Any]:
    m: Dict[str, Any] = {"camcorr_run": VERSION, "title": run.name, "guessed": True}
    params = _first(run, "FlashParam_*.tif")
    if params:
        m["flash"] = {"params": params, "calibration_dir": str(Path(params).parent)}
    mask = _first(run, "*mask*.tif", "*mask*.tiff")
    if mask:
        m["median"] = {"mask": mask}
    gain = _first(run, "gain.tif", "*gain*.tif")
    if gain:
        m["gain"] = {"image": gain, "report": _first(run, "gain_report.json", "*gain*.json")}
    frc = _first(run, "frc.json", "*frc*.json")
    if frc:
        m["frc"] = {"curves": frc}
    prof = _first(run, "profiles.npz")
    if prof:
        m["flatfield"] = {"profiles": prof}
    return m


def write_manifest(run_dir, manifest: Dict[str, Any]) -> Path:
    """Write `manifest` as ``RUN_DIR/camcorr_run.json`` (atomically), adding version and date."""
    data = dict(manifest)
    data.setdefault("camcorr_run", VERSION)
    data.setdefault("created", datetime.datetime.now().isoformat(timespec="seconds"))
    data.setdefault("camcorr_version", __version__)
    text = json.dumps(data, indent=2, default=json_default)
    path = Path(run_dir) / MANIFEST_NAME
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))
    return path


def update_manifest(run_dir, section: str, entries: Any) -> Path:
    """Set ``manifest[section] = entries`` in `run_dir`'s manifest (created if absent)."""
    path = Path(run_dir) / MANIFEST_NAME
    data = json.loads(path.read_text()) if path.is_file() else {}
    data[section] = entries
    return write_manifest(run_dir, data)
