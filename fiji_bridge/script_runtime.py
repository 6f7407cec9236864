"""What the generated Python-mode scripts (``#!Python``) call inside Fiji."""
from __future__ import annotations

from typing import Dict, Optional

__all__ = ["run_script", "SHOW_DIALOGS"]

#: Show errors in a dialog as well as the log when Fiji has a display and the command was not
#: called from a macro (set to False to keep a scripted session free of modal dialogs).
SHOW_DIALOGS = True


def run_script(name: str, imp=None, values: Optional[Dict] = None):
    """Run operation `name` on the script's ``ImagePlus`` with the dialog `values`.

    Empty text fields mean "not set".  Errors are written to the ImageJ log (and shown in a dialog
    when Fiji has a display) and re-raised.
    """
    from camcorr.errors import CamcorrError

    from .session import run_operation

    clean = {k: (None if isinstance(v, str) and v.strip() == "" else
                 (str(v) if v is not None and type(v).__name__ == "File" else v))
             for k, v in (values or {}).items()}
    if imp is None and name and _needs_image(name):
        _report(name, "no image is open. Open the image to correct first.")
        raise CamcorrError("no image is open", argument=name, fix="Open an image first")
    try:
        return run_operation(name, imp, **clean)
    except CamcorrError as exc:
        _report(name, str(exc))
        raise


def _needs_image(name: str) -> bool:
    from camcorr.operations import get_operation

    from .generate import _roles

    return _roles(get_operation(name))[0] is not None


def _report(name: str, message: str):
    try:
        from ij import IJ

        IJ.log(f"[Camera Corrections] ERROR in {name}: {message}")
        from ij import Macro
        from ij.macro import Interpreter
        from java.awt import GraphicsEnvironment

        if (SHOW_DIALOGS and not GraphicsEnvironment.isHeadless()
                and not Interpreter.isBatchMode() and Macro.getOptions() is None):
            IJ.showMessage("Camera Corrections", message)
    except Exception:  # not inside a JVM
        pass
