"""Operation definition of ``camcorr warmup``."""
from __future__ import annotations

from ..operations import Operation, Param

__all__ = ["OPERATIONS", "WARMUP"]

WARMUP = Operation(
    name="warmup",
    title="Warm-up",
    command=("warmup",),
    summary="Compile the numba kernels the commands and plugins use (run once after install).",
    description="""
        Runs every engine function the command line, CellProfiler and Fiji call on tiny
        simulated data, in the pixel types they use, so that numba compiles its kernels now
        and keeps them in its cache: the first real run of a command then starts at full speed
        instead of spending seconds compiling.  A second run only loads the cache (seconds).
        'make test', 'make demo' and the install instructions run it.  Run it as the user who
        owns the install (or with the NUMBA_CACHE_DIR the users will have).
        """,
    params=(
        Param("only", "str", default=None, cli="--only", metavar="STEPS",
              label="Steps",
              help="Comma-separated subset of the steps: flash, median, gain, flatfield, "
                   "aposteriori. Default: all.", frontends=("cli",), engine_arg="steps"),
    ),
    runner="camcorr.warmup.cli:run_warmup",
    engine=("camcorr.warmup:warmup",),
    frontends=("cli",),
    epilog="Example: camcorr warmup",
)

OPERATIONS = [WARMUP]
