"""Runners of the ``camcorr parallel`` commands."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Dict

import numpy as np

from ..io import write_tiff
from .options import scheduler_from


def run_dark(values: Dict) -> int:
    """``camcorr parallel dark``."""
    from .stream import moments

    frames = list(values["frames"])
    with scheduler_from(values) as kw:
        m = moments(frames, **kw)
    out = write_tiff(values["output"], np.stack([m.mean, m.std(ddof=1)]).astype(np.float32),
                     inputs=frames, axes="ZYX",
                     imagej_metadata={"Labels": ["offset (ADU)", "read noise (ADU)"]},
                     extra_metadata={"frames": int(m.count)})
    print(f"{m.count} frames; median offset {np.median(m.mean):.2f} ADU, median noise "
          f"{np.median(m.std(ddof=1)):.2f} ADU", file=sys.stderr)
    print(out)
    return 0


def run_calibrate(values: Dict) -> int:
    """``camcorr parallel calibrate``."""
    from .. import flash
    from .calibration import calibrate_folder

    calib_dir = Path(values["calib_dir"])
    with scheduler_from({"scheduler": values.get("scheduler")}) as kw:
        cal = calibrate_folder(calib_dir, chunk=values["chunk_frames"],
                               client=kw["client"])
    name = flash.param_filename(cal.serial, cal.roi, cal.date)
    out = values.get("output")
    target = calib_dir / name if out is None else Path(out)
    if target.is_dir() or target.suffix.lower() not in (".tif", ".tiff"):
        target = target / name
    path = flash.write_params(cal, target)
    print(f"levels {cal.n_levels}, pairs {cal.n_pairs}, dark frames {cal.n_dark_frames}; "
          f"failed fits {cal.n_failed} of {cal.A.size} pixels", file=sys.stderr)
    print(path)
    return 0
