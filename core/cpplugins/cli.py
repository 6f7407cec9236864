"""Command-line runner of ``camcorr cellprofiler install``."""
from __future__ import annotations

import sys
from typing import Dict

__all__ = ["run_install"]


def run_install(values: Dict) -> int:
    """Command-line runner: install or uninstall; prints what changed."""
    from .install import install_plugins, uninstall_plugins

    target = values["plugins_dir"]
    if values.get("uninstall"):
        res = uninstall_plugins(target)
        print(f"removed {len(res['removed'])} file(s) from {target}")
        if res["kept"]:
            print(f"kept (edited since install): {', '.join(res['kept'])}", file=sys.stderr)
        return 0
    res = install_plugins(target)
    print(f"{len(res['written'])} file(s) written, {len(res['unchanged'])} unchanged"
          + (f", {len(res['removed'])} obsolete removed" if res["removed"] else "")
          + f" in {target}")
    print(f"CellProfiler must run with a Python where camcorr is installed (this one: "
          f"{sys.executable}); set its plugins folder to {target}.")
    return 0
