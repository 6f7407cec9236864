"""``camcorr demo``: the whole product on a simulated lattice light-sheet acquisition.

* :func:`run_demo` (folder -> :class:`DemoResult`): simulate (:mod:`.simulation`), calibrate and
  correct with the engine or headless CellProfiler (:mod:`.stages`, :mod:`.cellprofiler`),
  check the camera and write the report (:mod:`camcorr.report`).
* :mod:`.cli`: the ``camcorr demo`` runner; :mod:`.operations`: its definition.
"""
from .run import DemoResult, run_demo, stage_availability
from .simulation import SIZES

__all__ = ["run_demo", "DemoResult", "stage_availability", "SIZES"]
