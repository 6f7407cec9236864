"""camcorr: camera and illumination corrections for microscopy.

The engine behind the camcorr command line, the CellProfiler modules in
``cellprofiler_plugins/`` and the Fiji commands of ``fiji_bridge``.  Pure numpy, scipy, numba and
tifffile; it never imports CellProfiler, Java or Fiji code.

Sub-packages
------------
flash      Hamamatsu Flash4.0 synchronous-readout charge-carryover calibration and correction.
median     Selective median filter for hot, noisy and aberrant-gain pixels.
gain       Blind residual-gain estimation (Sorzano et al.) and its quality report.
aposteriori A posteriori mean/sigma normalisation (Afanasyev et al.), Fourier ring correlation.
flatfield  Flat-field from measured profiles, empty tiles or z-ranges, or BaSiCPy.
simulate   Camera and specimen simulators with known ground truth.
report     Quality report (HTML + PNG + JSON) of a correction run.
parallel   Streaming statistics over dask arrays, optionally on a dask cluster.

Conventions
-----------
Axes are (..., Z, Y, X).  Camera quantities (offset, noise, carryover, thresholds, darkfield,
baseline) are in ADU.  Outputs keep the input dtype unless asked, clipped, never wrapped.
"""
import os as _os

from . import _numba_cache, _threads

# before any kernel module imports numba: a read-only install gets a private writable cache
_numba_cache.configure(_os.path.dirname(__file__))
# before numba's OpenMP runtime starts: idle workers spin briefly, then sleep (busy machines)
_threads.configure()

from ._version import __version__  # noqa: E402
from .errors import CamcorrError  # noqa: E402

__all__ = ["__version__", "CamcorrError"]
