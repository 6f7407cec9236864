"""Command-line runner of ``camcorr cellprofiler install``."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Dict

from ..operations import RunResult

__all__ = ["run_install"]


def run_install(values: Dict) -> RunResult:
    """Command-line runner: install or uninstall; the result says what changed."""
    from .install import install_plugins, uninstall_plugins
    from .operations import CELLPROFILER_INSTALL

    result = RunResult()
    target = CELLPROFILER_INSTALL.engine_kwargs(values)["target"]
    if values.get("uninstall"):
        res = uninstall_plugins(target)
        result.numbers.update(removed=len(res["removed"]), kept=len(res["kept"]))
        result.say(f"removed {len(res['removed'])} file(s) from {target}")
        if res["kept"]:
            result.note(f"kept (edited since install): {', '.join(res['kept'])}")
        return result
    res = install_plugins(target)
    result.outputs.extend(str(Path(target) / name) for name in res["written"])
    result.numbers.update(written=len(res["written"]), unchanged=len(res["unchanged"]),
                          removed=len(res["removed"]))
    result.say(f"{len(res['written'])} file(s) written, {len(res['unchanged'])} unchanged"
               + (f", {len(res['removed'])} obsolete removed" if res["removed"] else "")
               + f" in {target}")
    result.say(f"CellProfiler must run with a Python where camcorr is installed (this one: "
               f"{sys.executable}); set its plugins folder to {target}.")
    return result
