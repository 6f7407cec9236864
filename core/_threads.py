"""OpenMP wait policy of numba's parallel kernels, chosen before the OpenMP runtime starts.

numba runs ``parallel=True`` kernels on its ``omp`` threading layer (GNU OpenMP) when no TBB is
installed.  Between parallel regions GNU OpenMP's worker threads *spin* (busy-wait, by default
300000 iterations) before they sleep.  On a machine whose cores are also busy with other work this
is pathological: a spinning thread burns the time slice the thread doing the work needs, and
every region waits for its slowest thread.  Measured on a 2-core machine at load 5-6 (gain
estimation, 1024^2 x 8 frames, one call of ~30 parallel regions per frame): 2 threads took
4.0 s wall and 2.1 s of CPU, 1 thread 2.1-2.6 s; with a short spin (1000 iterations, GNU
OpenMP's own value when it has more threads than CPUs) 2 threads took 1.4 s and 0.9 s of CPU.
On a quiet machine the short spin costs a few microseconds per region (a kernel call is
milliseconds or more).  This is the main reason "2 cores vs 1 thread" was below 1 in the
shared-machine benchmarks.

:func:`configure` runs when ``camcorr`` is imported and sets ``GOMP_SPINCOUNT=1000`` unless the
user set ``GOMP_SPINCOUNT`` or ``OMP_WAIT_POLICY``; it only takes effect if GNU OpenMP has not been
loaded yet in the process (it reads the variables when it starts).
"""
from __future__ import annotations

import os

__all__ = ["configure", "SPINCOUNT"]

#: Spins before an idle OpenMP worker sleeps (GNU OpenMP's throttled value).
SPINCOUNT = "1000"


def configure() -> bool:
    """Set the short OpenMP spin unless the user chose a policy; True if it was set."""
    if "GOMP_SPINCOUNT" in os.environ or "OMP_WAIT_POLICY" in os.environ:
        return False
    os.environ["GOMP_SPINCOUNT"] = SPINCOUNT
    return True
