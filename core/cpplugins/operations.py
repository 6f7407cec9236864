"""Operations of :mod:`camcorr.cpplugins`: ``camcorr cellprofiler install PLUGINS_DIR``."""
from __future__ import annotations

from ..operations import Operation, Param

__all__ = ["OPERATIONS", "CELLPROFILER_INSTALL"]

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
              help="CellProfiler's plugins folder.", engine_arg="target"),
        Param("uninstall", "bool", default=False, cli="--uninstall", label="Uninstall",
              help="Remove the files an earlier install wrote (edited files are kept).",
              engine_arg=None),
    ),
    engine=("camcorr.cpplugins.install:install_plugins",
            "camcorr.cpplugins.install:uninstall_plugins"),
    runner="camcorr.cpplugins.cli:run_install",
    frontends=("cli",),
    epilog="Example: camcorr cellprofiler install ~/CellProfiler/plugins",
)

OPERATIONS = [CELLPROFILER_INSTALL]
