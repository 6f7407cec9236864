"""Test harness for the camcorr CellProfiler plugins.

Two ways to exercise a module:

* :func:`run_headless` runs a real ``.cppipe`` exactly as a user would (a copy of the plugins
  folder outside the repository, an unrelated working folder, no camcorr environment variable)::

      python -m cellprofiler -c -r -p PIPELINE -i IN -o OUT --plugins-directory cellprofiler_plugins \
          --enable-readers imageio_reader

  in a subprocess (cwd = repository root) and returns the completed process; :func:`read_image_csv`
  reads the measurements ExportToSpreadsheet wrote, :func:`read_tif` the saved images.
* :class:`GroupRunner` drives a module through a real CellProfiler ``Pipeline``, ``Workspace``,
  ``Measurements`` (the CellProfiler 5 image set) and ``ObjectSet`` in this process: prepare_run,
  prepare_group (which runs the upstream :class:`InjectFrames` module for every cycle), run per
  cycle and post_group, the same calls CellProfiler makes.
"""
from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import tifffile

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = ROOT / "cellprofiler_plugins"
PIPELINES = ROOT / "pipelines"

_initialised = {"done": False}


def init_cellprofiler():
    """Headless CellProfiler, camcorr plugins importable and registered (once per process)."""
    if _initialised["done"]:
        return
    import cellprofiler_core.preferences as cpprefs

    cpprefs.set_headless()
    cpprefs.set_plugin_directory(str(PLUGINS), globally=False)
    if str(PLUGINS) not in sys.path:
        sys.path.insert(0, str(PLUGINS))
    if str(PIPELINES) not in sys.path:
        sys.path.insert(0, str(PIPELINES))
    import cellprofiler_core.modules  # noqa: F401  clears the registry, then loads the plugins
    from cellprofiler_core.utilities.core.plugins import load_plugins

    load_plugins(modules_only=True)
    _initialised["done"] = True


#: CellProfiler's own option that reads TIFF with ImageIO/tifffile instead of Bio-Formats (no
#: Java, no Maven download): documented in the README for offline cluster runs
READERS = ("--enable-readers", "imageio_reader")


def cellprofiler_command(pipeline: Path, in_dir: Path, out_dir: Path, *,
                         plugins: Path | str = "cellprofiler_plugins",
                         extra: Sequence[str] = ()) -> List[str]:
    """The documented headless command line."""
    return [sys.executable, "-m", "cellprofiler", "-c", "-r", "-p", str(pipeline), "-i",
            str(in_dir), "-o", str(out_dir), "--plugins-directory", str(plugins), *extra,
            *READERS]


_portable: Dict[str, Path] = {}


def portable_plugins() -> Path:
    """A copy of the plugins folder outside the repository (how users install plugins), made
    once per test session, and an unrelated empty working folder for the runs."""
    if "plugins" not in _portable:
        base = Path(tempfile.mkdtemp(prefix="camcorr_cp_elsewhere_"))
        shutil.copytree(PLUGINS, base / "my_plugins",
                        ignore=shutil.ignore_patterns("__pycache__"))
        (base / "cwd").mkdir()
        _portable.update(plugins=base / "my_plugins", cwd=base / "cwd")
    return _portable["plugins"]


def user_environment() -> dict:
    """The environment of a user's shell: no camcorr project variable of any kind."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMCORR_")}
    env.setdefault("MPLBACKEND", "Agg")
    return env


def run_headless(pipeline: Path, in_dir: Path, out_dir: Path, *, timeout: float = 600,
                 extra: Sequence[str] = (), plugins: Optional[Path] = None,
                 cwd: Optional[Path] = None, env: Optional[dict] = None
                 ) -> subprocess.CompletedProcess:
    """Run CellProfiler headless on `pipeline` with the documented command line, the way a user
    does: a copy of the plugins folder elsewhere, from an unrelated working folder, with no
    camcorr environment variable (camcorr is imported from the Python environment)."""
    plugins = portable_plugins() if plugins is None else plugins
    cwd = _portable["cwd"] if cwd is None and "cwd" in _portable else (cwd or ROOT)
    cmd = cellprofiler_command(Path(pipeline).resolve(), Path(in_dir).resolve(),
                               Path(out_dir).resolve(), plugins=plugins, extra=extra)
    env = user_environment() if env is None else env
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def explain(proc: subprocess.CompletedProcess) -> str:
    """Last lines of a CellProfiler run's output (for assertion messages)."""
    text = (proc.stdout or "") + "\n" + (proc.stderr or "")
    lines = [ln for ln in text.splitlines() if "MySQL" not in ln and "MySQLdb" not in ln]
    return "\n".join(lines[-40:])


def read_image_csv(out_dir: Path) -> List[Dict[str, str]]:
    """Rows of the Image.csv ExportToSpreadsheet wrote to `out_dir`."""
    paths = sorted(Path(out_dir).glob("*Image.csv"))
    assert paths, f"no Image.csv in {out_dir}: {sorted(p.name for p in Path(out_dir).iterdir())}"
    with open(paths[0], newline="") as fd:
        return list(csv.DictReader(fd))


def read_tif(path: Path) -> np.ndarray:
    return tifffile.imread(str(path))


def to_uint16(adu: np.ndarray) -> np.ndarray:
    """What SaveImages '16-bit integer' writes for data in ADU of a uint16 input."""
    return np.clip(np.rint(np.asarray(adu, np.float64)), 0, 65535).astype(np.uint16)


# ---------------------------------------------------------------------------------------------
# In-process runs through a real Workspace
# ---------------------------------------------------------------------------------------------

def make_image(adu: np.ndarray, *, scale: float = 65535.0, volume: Optional[bool] = None):
    """A CellProfiler Image holding `adu` / scale, as NamesAndTypes would make it."""
    from cellprofiler_core.image import Image

    adu = np.asarray(adu)
    volume = adu.ndim == 3 if volume is None else volume
    return Image((adu.astype(np.float64) / scale).astype(np.float32), scale=scale,
                 dimensions=3 if volume else 2, convert=False)


def inject_module_class():
    from cellprofiler_core.module import Module

    class InjectFrames(Module):
        """Provides image ``name`` = frames[name][image_number - 1] in every cycle (tests only)."""

        module_name = "InjectFrames"
        category = "Test"
        variable_revision_number = 1
        do_not_check = True

        def create_settings(self):
            self.frames: Dict[str, list] = {}
            self.scale = 65535.0

        def settings(self):
            return []

        def run(self, workspace):
            n = workspace.measurements.image_set_number
            for name, frames in self.frames.items():
                workspace.image_set.add(name, make_image(frames[n - 1], scale=self.scale))

    return InjectFrames


class GroupRunner:
    """Run `module` on cycles of injected images in one group, through real CellProfiler objects.

    Parameters
    ----------
    module : a camcorr CellProfiler module (settings already set)
    frames : {image name: list of arrays in ADU, one per cycle}
    scale : intensity scale of the injected images (65535 = uint16 files)
    """

    def __init__(self, module, frames: Dict[str, Sequence[np.ndarray]], scale: float = 65535.0):
        from cellprofiler_core.image import ImageSetList
        from cellprofiler_core.measurement import Measurements
        from cellprofiler_core.pipeline import Pipeline

        inject = inject_module_class()()
        inject.frames = {k: list(v) for k, v in frames.items()}
        inject.scale = scale
        self.pipeline = Pipeline()
        inject.set_module_num(1)
        module.set_module_num(2)
        self.pipeline.add_module(inject)
        self.pipeline.add_module(module)
        self.module = module
        self.n = len(next(iter(frames.values())))
        self.measurements = Measurements()
        self.image_set_list = ImageSetList()

    def workspace(self, module=None):
        from cellprofiler_core.object import ObjectSet
        from cellprofiler_core.workspace import Workspace

        return Workspace(self.pipeline, module or self.module, self.measurements, ObjectSet(),
                         self.measurements, self.image_set_list)

    def run(self, keep: Sequence[str] = ()) -> List[Dict[str, object]]:
        """prepare_run, prepare_group, run every cycle, post_group; returns, per cycle, the images
        named in `keep` (CellProfiler Image objects) and the image measurements."""
        from cellprofiler_core.constants.measurement import GROUP_INDEX, GROUP_NUMBER

        m = self.measurements
        numbers = list(range(1, self.n + 1))
        for i in numbers:
            m.add_measurement("Image", GROUP_NUMBER, 1, image_set_number=i)
            m.add_measurement("Image", GROUP_INDEX, i, image_set_number=i)
            m.add_measurement("Image", "Group_Length", len(numbers), image_set_number=i)
        ws = self.workspace()
        assert self.module.prepare_run(ws) is not False
        self.module.prepare_group(ws, {}, numbers)
        results = []
        for n in numbers:
            m.next_image_set(n)
            for mod in self.pipeline.modules():
                mod.run(self.workspace(mod))
            out = {name: m.get_image(name) for name in keep}
            out["measurements"] = {f: m.get_current_image_measurement(f)
                                   for f in m.get_feature_names("Image")
                                   if f.startswith(self.module.measurement_category)}
            results.append(out)
        self.module.post_group(self.workspace(), {})
        return results


def write_flash_timeseries(folder: Path):
    """Three timepoints of a 2-channel Flash4.0 acquisition as 2D TIFFs
    (``movA_t{t}_ch{c}.tif``), its ``Settings.txt`` and a carryover parameter file covering its
    ROI, in `folder` (created); returns the simulated acquisition."""
    from camcorr.flash.params import params_from_arrays, write_params
    from camcorr.simulate import lls

    folder.mkdir(parents=True, exist_ok=True)
    acq = lls.write_acquisition(folder, n_planes=3, seed=11, camera_seed=0,
                                peaks=(3000.0, 0.0), write=False)
    for t in range(3):
        for c in range(2):
            tifffile.imwrite(folder / f"movA_t{t:04d}_ch{c}.tif", acq.raw[0, c, t])
    lls.write_settings(folder / "cell1_Settings.txt", acq.truth.roi)
    calib = lls.sensor_maps((1001, 1011, 1048, 1050), seed=0)
    write_params(params_from_arrays(calib.A, calib.B, calib.offset, calib.noise, roi=calib.roi,
                                    serial="100740", date="20240517"), folder)
    return acq
