"""Fiji front end of camcorr: Fiji commands generated from the operation definitions, and Fiji
driven from Python with pyimagej.

Importing this package never starts a JVM; the Java-facing functions import Java when called.

Public API
----------
install(fiji_dir, python=None) / uninstall(fiji_dir)
    Write/remove the Plugins > Camera Corrections commands (``camcorr fiji install``).
script_files(...), render_ijm(op, flavour)
    The generated command scripts.
start_fiji(fiji_dir, mode='headless')
    pyimagej gateway of a local Fiji.app, offline.
run_operation(name, image, ij=None, **values)
    Run an operation on an ImagePlus / Dataset / array; returns an ImagePlus.
run_on_array(name, array, values)
    The same on numpy arrays.
run_in_memory(name, array, values)
    Operations of ``engine.IN_MEMORY`` (selective median, gain estimate, flat-field apply, a
    posteriori normalisation, flash correction: a (Z, Y, X) array, flat-field apply also (Y, X);
    FRC: a (Y, X) image) without temporary files; returns the RunResult (arrays, numbers).
numpy_to_imageplus(array, title, axes=None, calibration=None), imageplus_to_numpy(imp,
keep_axes=False), imageplus_axes(imp), imageplus_calibration(imp),
start_ij1(ij_jar=None, plugins_dir=None, gui=False)
    numpy <-> ImageJ 1.x conversion through JPype; hyperstacks keep their axes ('ZCYX', ...).
"""
from importlib import import_module

_EXPORTS = {
    "install": "install", "uninstall": "install", "detect_installation": "install",
    "script_files": "generate", "render_ijm": "generate",
    "start_fiji": "session", "run_operation": "session", "to_numpy": "session",
    "run_on_array": "engine", "run_in_memory": "engine",
    "numpy_to_imageplus": "convert", "imageplus_to_numpy": "convert", "imageplus_axes": "convert",
    "imageplus_calibration": "convert", "start_ij1": "convert", "find_ij_jar": "convert",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
