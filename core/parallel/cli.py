"""Runners of the ``camcorr parallel`` commands."""
from __future__ import annotations

from pathlib import Path
from typing import Dict

import numpy as np

from ..io import write_tiff
from ..operations import RunResult
from .options import scheduler_from


def run_dark(values: Dict) -> RunResult:
    """``camcorr parallel dark``."""
    result = RunResult()
    from .stream import moments

    frames = list(values["frames"])
    with scheduler_from(values) as kw:
        m = moments(frames, **kw)
    out = write_tiff(values["output"], np.stack([m.mean, m.std(ddof=1)]).astype(np.float32),
                     inputs=frames, axes="ZYX",
                     imagej_metadata={"Labels": ["offset (ADU)", "read noise (ADU)"]},
                     extra_metadata={"frames": int(m.count)})
    result.note(f"{m.count} frames; median offset {np.median(m.mean):.2f} ADU, median noise "
                f"{np.median(m.std(ddof=1)):.2f} ADU")
    result.arrays.update(offset=m.mean, noise=m.std(ddof=1))
    result.outputs.append(str(out))
    result.say(out)
    return result


def run_calibrate(values: Dict) -> RunResult:
    """``camcorr parallel calibrate``."""
    result = RunResult()
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
    result.note(f"levels {cal.n_levels}, pairs {cal.n_pairs}, dark frames {cal.n_dark_frames}; "
                f"failed fits {cal.n_failed} of {cal.A.size} pixels")
    result.outputs.append(str(path))
    result.say(path)
    return result
