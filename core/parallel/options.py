"""Shared command-line parameters for dask streaming, and the scheduler they select.

Any operation whose work is a streamed statistic can add these two parameters to its
``params`` so that ``--scheduler ADDRESS`` and ``--chunk-frames N`` reach it; its runner then
calls :func:`scheduler_from` with the validated values::

    from camcorr.parallel.options import SCHEDULER_PARAM, CHUNK_PARAM, scheduler_from

    MYOP = Operation(..., params=(..., SCHEDULER_PARAM, CHUNK_PARAM))

    def run_cli(values):
        with scheduler_from(values) as compute_kwargs:
            moments = camcorr.parallel.dark_moments(frames, **compute_kwargs)

Importing this module does not import dask (front ends that never stream stay light).
"""
from __future__ import annotations

import contextlib
from typing import Dict, Iterator, Optional

from ..errors import CamcorrError
from ..operations import Param
from .stream import DEFAULT_CHUNK_FRAMES, LIMITS

__all__ = ["SCHEDULER_PARAM", "CHUNK_PARAM", "scheduler_from", "connect"]

SCHEDULER_PARAM = Param(
    "scheduler", "str", default=None, cli="--scheduler", label="Dask scheduler",
    metavar="ADDRESS",
    help="Address of a running dask distributed scheduler (e.g. tcp://10.0.0.5:8786) to run the "
         "streamed statistics on a cluster; default: threads on this machine.  A file name of a "
         "scheduler JSON file (dask-scheduler --scheduler-file) also works.",
    frontends=("cli",))

CHUNK_PARAM = Param(
    "chunk_frames", "int", default=DEFAULT_CHUNK_FRAMES, limits=LIMITS["chunk_frames"],
    cli="--chunk-frames", label="Frames per chunk",
    metavar="N",
    help="Frames (planes) per dask chunk.  Memory per worker thread is about N x Y x X x 8 bytes "
         "plus the running statistics; lower it for very large frames.",
    frontends=("cli",))


@contextlib.contextmanager
def connect(address: Optional[str], *, timeout: str = "20s") -> Iterator[Optional[object]]:
    """Context manager yielding a ``distributed.Client`` for `address`, or ``None`` (local threads).

    Parameters
    ----------
    address : str or None
        ``tcp://host:port`` (or ``host:port``), or the path of a scheduler file; ``None`` or an
        empty string: no cluster (dask's local threaded scheduler).
    timeout : str
        How long to try to reach the scheduler.

    Raises
    ------
    CamcorrError
        When ``distributed`` is missing or the scheduler cannot be reached.
    """
    if not address:
        yield None
        return
    try:
        from distributed import Client
    except ImportError:
        raise CamcorrError("dask distributed is not installed", argument="--scheduler",
                           expected="the 'dask' extra", received=address,
                           fix="pip install 'camcorr[dask]'") from None
    import os

    if os.path.isfile(address):
        import json

        try:
            with open(address) as fh:
                ok = "address" in json.load(fh)
        except (OSError, ValueError, TypeError):
            ok = False
        if not ok:
            raise CamcorrError("not a dask scheduler file", argument="--scheduler",
                               expected="a scheduler address (tcp://host:8786) or the JSON file "
                                        "written by 'dask scheduler --scheduler-file'",
                               received=address)
    try:
        if os.path.isfile(address):
            client = Client(scheduler_file=address, timeout=timeout)
        else:
            client = Client(address, timeout=timeout)
    except (OSError, TimeoutError, ValueError) as exc:
        raise CamcorrError("cannot reach the dask scheduler", argument="--scheduler",
                           expected="the address of a running scheduler (tcp://host:8786)",
                           received=f"{address} ({exc})",
                           fix="Start one with 'dask scheduler' and 'dask worker ADDRESS', or "
                               "leave --scheduler out to use this machine") from None
    try:
        yield client
    finally:
        client.close()


@contextlib.contextmanager
def scheduler_from(values: Dict) -> Iterator[Dict]:
    """Keyword arguments (``client=``, ``chunk_frames=``) for :mod:`camcorr.parallel` functions.

    `values` is an operation's validated parameter dict holding ``scheduler`` and/or
    ``chunk_frames``.
    """
    with connect(values.get("scheduler")) as client:
        kwargs = {"client": client}
        if values.get("chunk_frames"):
            kwargs["chunk_frames"] = int(values["chunk_frames"])
        yield kwargs
