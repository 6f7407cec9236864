"""The demo's CellProfiler chain: locate pipeline and plugins, run CellProfiler headless,
collect its outputs."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
import tifffile

from ..errors import CamcorrError
from .simulation import NAME

__all__ = ["find_pipelines_dir", "cellprofiler_command", "check_cellprofiler",
           "adapt_pipeline", "run_cellprofiler_chain", "CHAIN_PIPELINE"]


# --------------------------------------------------------------------------- locating things
def find_pipelines_dir(pipelines=None) -> Optional[Path]:
    """The example ``pipelines/`` folder the demo runs.

    Looked up in this order: the explicit `pipelines` argument (``camcorr demo --pipelines``),
    ``$CAMCORR_PIPELINES``, then ``pipelines/`` in the current folder (the checkout's root, where
    ``make demo`` runs).  No search through parent folders: what runs is what was named.

    Parameters
    ----------
    pipelines : str or Path, optional
        Folder holding ``chain_flash_median_flatfield.cppipe``.

    Returns
    -------
    Path or None
        None when nothing was named and the current folder has no ``pipelines/``.

    Examples
    --------
    >>> find_pipelines_dir("/data/my_pipelines").name
    'my_pipelines'
    """
    if pipelines:
        return Path(pipelines).expanduser().resolve()  # CellProfiler runs in another folder
    env = os.environ.get("CAMCORR_PIPELINES")
    if env:
        return Path(env).expanduser().resolve()
    cand = Path.cwd() / "pipelines"
    return cand if cand.is_dir() else None


def _plugins_dir(pipelines: Path) -> Path:
    env = os.environ.get("CAMCORR_PLUGINS")
    return Path(env).expanduser().resolve() if env else pipelines.parent / "cellprofiler_plugins"


def cellprofiler_command(pipeline: Path, inp: Path, out: Path, plugins: Path) -> List[str]:
    """The headless CellProfiler command line for one batch (this Python's CellProfiler).

    ``--enable-readers imageio_reader`` (CellProfiler's own option) reads the TIFFs with
    ImageIO/tifffile instead of Bio-Formats, which would start Java and download its jars."""
    return [sys.executable, "-m", "cellprofiler", "-c", "-r", "-p", str(pipeline), "-i", str(inp),
            "-o", str(out), "--plugins-directory", str(plugins),
            "--enable-readers", "imageio_reader"]



CHAIN_PIPELINE = "chain_flash_median_flatfield.cppipe"


def check_cellprofiler(pipelines=None) -> Dict[str, Path]:
    """Locate the chained pipeline, the plugins and CellProfiler itself.

    Parameters
    ----------
    pipelines : str or Path, optional
        The pipelines folder (see :func:`find_pipelines_dir`).

    Returns
    -------
    dict with ``pipeline`` and ``plugins``

    Raises
    ------
    CamcorrError
        The pipeline or the plugins folder is not found, or CellProfiler is not installed.
    """
    pipes = find_pipelines_dir(pipelines)
    pipeline = None if pipes is None else pipes / CHAIN_PIPELINE
    if pipeline is None or not pipeline.is_file():
        raise CamcorrError("the chained CellProfiler pipeline was not found", argument="--pipelines",
                           expected=f"a folder holding {CHAIN_PIPELINE} (the checkout's "
                                    "pipelines/ folder)",
                           received=str(pipeline) if pipeline else
                           "nothing named and no pipelines/ in the current folder",
                           fix="Pass --pipelines PATH/TO/camcorr/pipelines (or run from the "
                               "checkout's root, as make demo does), or use --runner engine to "
                               "run the same chain without CellProfiler")
    plugins = _plugins_dir(pipes)
    if not plugins.is_dir():
        raise CamcorrError("the camcorr CellProfiler plugins were not found", argument="--runner",
                           expected="a cellprofiler_plugins folder beside pipelines/ "
                                    "(or $CAMCORR_PLUGINS)", received=str(plugins),
                           fix="Use --runner engine, or set CAMCORR_PLUGINS")
    import importlib.util

    if importlib.util.find_spec("cellprofiler") is None or \
            importlib.util.find_spec("cellprofiler_core") is None:
        raise CamcorrError("CellProfiler is not installed in this Python", argument="--runner",
                           expected="the 'cellprofiler' extra (cellprofiler-core and the "
                                    "cellprofiler package, as 'make demo' installs them)",
                           received=sys.executable,
                           fix="Run 'make demo' (it installs CellProfiler into .venv), or use "
                               "--runner engine")
    return {"pipeline": pipeline, "plugins": plugins}


def adapt_pipeline(text: str, *, params_name: str, settings_name: str, z_levels=None) -> str:
    """The chained pipeline with this run's parameter file, Settings.txt and z-levels.

    The shipped pipeline names an example parameter file and Settings.txt; the demo's files
    have their own names (ROI and date are part of a FlashParam name), so the names are
    substituted in a copy of the pipeline (the .cppipe is text).
    """
    import re

    text = re.sub(r"FlashParam_sn[^|\n\\/*]*?\.tiff?", params_name, text)
    text = re.sub(r"[A-Za-z0-9_.-]*_Settings\.txt", settings_name, text)
    if z_levels is not None:
        lo, hi = z_levels

        def zsub(m):
            return f"{m.group(1)}{lo}, {hi}"

        text = re.sub(r"((?i:[^\n]*z[- ]?(?:levels|range)[^\n:]*):)[ \t]*-?\d+[ \t]*,[ \t]*-?\d+",
                      zsub, text)
    return text


def run_cellprofiler_chain(sim: Dict[str, Any], params_file: Path, out: Path,
                           cfg: Dict[str, Any], quiet: bool = False,
                           pipelines=None) -> Dict[str, Any]:
    """The chained pipeline, headless with CellProfiler and the camcorr plugins.

    ``python -m cellprofiler -c -r -p chain.cppipe -i IN -o OUT --plugins-directory PLUGINS``
    reading TIFF with ImageIO (no Bio-Formats, no Java), on an input folder holding the
    raw stacks, their Settings.txt and the parameter file.  The log is kept in
    ``OUT/cellprofiler/cellprofiler.log``.
    """
    found = check_cellprofiler(pipelines)
    cp = out / "cellprofiler"
    inp, res = cp / "input", cp / "output"
    inp.mkdir(parents=True, exist_ok=True)
    res.mkdir(parents=True, exist_ok=True)
    for row in sim["files"]:
        for f in row:
            shutil.copy2(f, inp / f.name)
    settings = out / "raw" / f"{NAME}_Settings.txt"
    shutil.copy2(settings, inp / settings.name)
    shutil.copy2(params_file, inp / params_file.name)
    text = found["pipeline"].read_text()
    pipeline = cp / CHAIN_PIPELINE
    pipeline.write_text(adapt_pipeline(text, params_name=params_file.name,
                                       settings_name=settings.name, z_levels=cfg["z_levels"]))
    cmd = cellprofiler_command(pipeline, inp, res, found["plugins"])
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "2")
    log = cp / "cellprofiler.log"
    with open(log, "w") as fh:
        fh.write(" ".join(cmd) + "\n\n")
        fh.flush()
        proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=cp,
                              timeout=1800)
    if proc.returncode != 0:
        tail = "\n".join(log.read_text().splitlines()[-15:])
        raise CamcorrError("the CellProfiler run failed", argument="--runner cellprofiler",
                           expected="exit status 0", received=f"{proc.returncode}; log {log}:\n{tail}",
                           fix="Read the log; --runner engine runs the chain without CellProfiler")
    return collect_cellprofiler_outputs(sim, res, out)


def collect_cellprofiler_outputs(sim: Dict[str, Any], res: Path, out: Path) -> Dict[str, Any]:
    """Find the chain's saved images: corrected stacks, bad-pixel masks, flat-fields."""
    saved = sorted(p for p in res.rglob("*") if p.suffix.lower() in (".tif", ".tiff"))
    masks: Dict[int, np.ndarray] = {}
    flats: Dict[int, np.ndarray] = {}
    corrected_dir = out / "corrected"
    corrected_dir.mkdir(parents=True, exist_ok=True)
    rank = ("flatfield", "corrected", "chain", "median", "flash")
    for row in sim["files"]:
        for c, f in enumerate(row):
            stem = f.stem
            mine = [p for p in saved if p.stem.startswith(stem) and p.stem != stem]
            images = [p for p in mine if not any(k in p.stem.lower() for k in ("mask", "badpix"))]
            if not images:
                raise CamcorrError("CellProfiler saved no corrected image for a stack",
                                   argument="--runner cellprofiler",
                                   expected=f"an image named {stem}*.tif in {res}",
                                   received=", ".join(p.name for p in saved[:6]) or "nothing")
            images.sort(key=lambda p: next((i for i, k in enumerate(rank)
                                            if k in p.stem[len(stem):].lower()), len(rank)))
            shutil.copy2(images[0], corrected_dir / f.name)
            for p in mine:
                if any(k in p.stem.lower() for k in ("mask", "badpix")):
                    m = tifffile.imread(p) > 0
                    m = m.reshape((-1,) + m.shape[-2:]).any(axis=0)
                    masks[c] = masks.get(c, np.zeros(m.shape, bool)) | m
    for p in saved:
        low = p.stem.lower()
        if "flatfield" in low and not any(p.stem.startswith(r.stem) for row in sim["files"]
                                          for r in row):
            arr = tifffile.imread(p).astype(np.float32)
            arr = arr.reshape((-1,) + arr.shape[-2:])[0]
            c = 1 if ("ch1" in low or "642" in low) else (0 if ("ch0" in low or "488" in low) else None)
            for cc in ((c,) if c is not None else (0, 1)):
                flats.setdefault(cc, arr / arr.mean())
    measurements = _cellprofiler_measurements(res)
    stack_masks: List = []
    if not masks:
        # the chain does not save the SelectiveMedian mask: recompute it with the engine on the
        # same flash-corrected stacks (same algorithm and defaults as the plugin); the plugin's
        # own counts (Image.csv) are kept beside it in qc.json for comparison.
        from .. import median

        for row in sim["files"]:
            for c, f in enumerate(row):
                stack = tifffile.imread(out / "stages" / "flash" / f.name)
                m = np.asarray(median.find_bad_pixels(stack).mask, bool)
                masks[c] = masks.get(c, np.zeros(m.shape, bool)) | m
                stack_masks.append((f.name, m))
    return {"masks": masks, "stack_masks": stack_masks, "flat": flats, "profiles": None,
            "saved": [str(p) for p in saved], "measurements": measurements}


def _cellprofiler_measurements(res: Path) -> Dict[str, Any]:
    """The camcorr modules' measurements from the exported Image.csv (one entry per cycle)."""
    import csv

    files = sorted(res.glob("*Image.csv"))
    if not files:
        return {}
    out: Dict[str, Any] = {}
    with open(files[0], newline="") as fh:
        for i, row in enumerate(csv.DictReader(fh)):
            for k, v in row.items():
                if k.split("_")[0] in ("FlashCarryover", "SelectiveMedian", "Flatfield",
                                       "ResidualGain"):
                    try:
                        val = float(v)
                    except (TypeError, ValueError):
                        continue
                    out.setdefault(k, []).append(round(val, 6))
    return {k: (v[0] if len(v) == 1 else v) for k, v in out.items()}


