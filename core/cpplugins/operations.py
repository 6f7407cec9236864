"""Operations of :mod:`camcorr.cpplugins`: ``camcorr cellprofiler install PLUGINS_DIR``."""
from __future__ import annotations

import sys
from typing import Dict

from ..operations import Operation, Param

__all__ = ["OPERATIONS", "CELLPROFILER_INSTALL", "run_install"]

CELLPROFILER_INSTALL = Operation(
    name="cellprofiler-install",
    title="Install CellProfiler Plugins",
    command=("cellprofiler", "install"),
    summary="Copy the camcorr CellProfiler modules into a CellProfiler plugins folder.",
    description="""
        Copies FlashCarryoverCorrect, SelectiveMedian, EstimateResidualGain,
        FlatfieldFromEmptyTiles and their helper files into PLUGINS_DIR (created if missing).
        Running it again updates the files it wrote and leaves identical ones alone; a file of
        the same name that camcorr did not write stops the install before anything changes.
        With --uninstall the files it wrote are removed again.  CellProfiler must run in a Python
        environment where camcorr is installed (the plugins import it); point CellProfiler's
        File > Preferences > "CellProfiler plugins directory", or --plugins-directory, at
        PLUGINS_DIR.
        """,
    params=(
        Param("plugins_dir", "str", required=True, label="Plugins folder", metavar="PLUGINS_DIR",
              help="CellProfiler's plugins folder."),
        Param("uninstall", "bool", default=False, cli="--uninstall", label="Uninstall",
              help="Remove the files an earlier install wrote (edited files are kept)."),
    ),
    runner="camcorr.cpplugins.operations:run_install",
    frontends=("cli",),
    epilog="Example: camcorr cellprofiler install ~/CellProfiler/plugins",
)

OPERATIONS = [CELLPROFILER_INSTALL]


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
