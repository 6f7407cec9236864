"""One top-level handler for every front end: an error becomes one paragraph, never a traceback.

:func:`explain` turns any exception raised by camcorr into ``(message, exit_status)``:

* :class:`~camcorr.errors.CamcorrError` (bad input, impossible request): its message, status 2;
* disk full, permission denied, read-only file system, missing files: one sentence naming the
  file and a fix, status 2;
* SIGTERM / SIGINT (:class:`~camcorr.io.Interrupted`): "interrupted", status 143 / 130;
* out of memory: status 3;
* anything else (a bug): one paragraph saying what failed, on which input, where the full
  traceback was written (a log file) and how to report it, status 1.

The command line calls it in :func:`camcorr.cli.main`; the CellProfiler modules and the Fiji
commands call :func:`explain` (or :func:`guarded`) and show the message in their own way.
The traceback goes to the log file always, and to stderr only with ``--debug`` /
``CAMCORR_DEBUG=1``.
"""
from __future__ import annotations

import datetime
import errno
import os
import sys
import tempfile
import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator, Optional, Tuple

from .errors import CamcorrError

__all__ = ["explain", "guarded", "write_log", "log_dir", "debug_requested", "REPORT_HINT",
           "EXIT_BAD_INPUT", "EXIT_BUG", "EXIT_MEMORY"]

EXIT_BAD_INPUT = 2
EXIT_BUG = 1
EXIT_MEMORY = 3
#: How to report a bug; shown after an unexpected error.
REPORT_HINT = ("Please report it to the camcorr maintainers (README, 'Reporting problems') with "
               "the log file and the exact command or pipeline")


def debug_requested() -> bool:
    """Whether ``CAMCORR_DEBUG`` asks for full tracebacks."""
    return os.environ.get("CAMCORR_DEBUG", "").strip().lower() not in ("", "0", "false", "no")


def log_dir() -> Path:
    """Folder for crash logs: ``$CAMCORR_LOG_DIR``, else ``<tmp>/camcorr-logs-<uid>``."""
    env = os.environ.get("CAMCORR_LOG_DIR")
    if env:
        return Path(env)
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return Path(tempfile.gettempdir()) / f"camcorr-logs-{uid}"


def write_log(exc: BaseException, *, what: str = "", inputs: Iterable = (),
              argv: Optional[Iterable[str]] = None) -> Optional[Path]:
    """Write the traceback of `exc` with context to a new log file; return its path (or None)."""
    from ._version import __version__

    try:
        folder = log_dir()
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        path = folder / f"camcorr-{stamp}-{os.getpid()}.log"
        lines = [f"camcorr {__version__}, Python {sys.version.split()[0]}, {sys.platform}",
                 f"what: {what}",
                 f"command: {' '.join(argv) if argv is not None else ' '.join(sys.argv)}",
                 "inputs: " + ", ".join(str(i) for i in inputs), "",
                 "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))]
        with open(path, "w") as fh:
            fh.write("\n".join(lines))
        return path
    except OSError:
        return None


def _os_message(exc: OSError) -> str:
    name = exc.filename if exc.filename is not None else ""
    code = exc.errno
    if code in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
        return (f"disk full ({name or 'output'}); no partial output was left under its final "
                "name. Free some space or choose another destination")
    if code in (errno.EACCES, errno.EPERM):
        return (f"permission denied: {name}. Check that you can read the inputs and write the "
                "output folder")
    if code == errno.EROFS:
        return f"read-only file system: {name}. Choose an output folder you can write to"
    if code == errno.ENOENT:
        return f"file or folder not found: {name}. Check the path"
    if code == errno.ENOTDIR:
        return f"not a folder: {name} (part of the path is a file). Check the path"
    if code == errno.EISDIR:
        return f"is a folder, not a file: {name}"
    return f"{exc.strerror or exc}: {name}".rstrip(": ")


def explain(exc: BaseException, *, what: str = "camcorr", inputs: Iterable = (),
            debug: Optional[bool] = None, argv: Optional[Iterable[str]] = None
            ) -> Tuple[str, int]:
    """One paragraph for the user and the exit status, for any exception.

    Parameters
    ----------
    exc : BaseException
        What was raised.
    what : str
        What was being done, e.g. ``'camcorr median'`` or ``'FlashCarryoverCorrect'``.
    inputs : iterable
        The input files or images (named in the paragraph of an unexpected error).
    debug : bool, optional
        Include the traceback in the message; default: ``CAMCORR_DEBUG``.
    argv : iterable of str, optional
        Command line recorded in the log file.

    Returns
    -------
    message : str
        Paragraph without a traceback (unless `debug`).
    status : int
        2 for bad input and file-system problems, 130/143 for SIGINT/SIGTERM, 3 for out of
        memory, 1 for unexpected errors (bugs).
    """
    from .io import Interrupted

    debug = debug_requested() if debug is None else debug
    inputs = [str(i) for i in inputs]
    tb = ("\n" + "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
          if debug else "")
    if isinstance(exc, CamcorrError):
        return str(exc) + tb, EXIT_BAD_INPUT
    if isinstance(exc, Interrupted):
        return (f"interrupted by {exc.signal_name}; temporary files were removed and no partial "
                "output was left under its final name" + tb, exc.exit_status)
    if isinstance(exc, KeyboardInterrupt):
        return ("interrupted; temporary files were removed and no partial output was left under "
                "its final name" + tb, 130)
    if isinstance(exc, MemoryError):
        return ("out of memory. Process fewer or smaller files at once, or use a machine with "
                "more memory" + tb, EXIT_MEMORY)
    if isinstance(exc, OSError) and exc.errno is not None:
        return _os_message(exc) + tb, EXIT_BAD_INPUT
    log = write_log(exc, what=what, inputs=inputs, argv=argv)
    shown = ", ".join(inputs[:3]) + (f" and {len(inputs) - 3} more" if len(inputs) > 3 else "")
    msg = (f"{what} failed with an unexpected internal error ({type(exc).__name__}: "
           f"{str(exc)[:300]})" + (f" while processing {shown}" if shown else "") + ". "
           "This is a bug in camcorr, not a problem with your input as far as camcorr can tell. "
           + (f"The full traceback is in {log}. " if log else "")
           + REPORT_HINT + (". Run again with --debug to see the traceback here." if not debug
                            else "."))
    return msg + tb, EXIT_BUG


@contextmanager
def guarded(what: str, *, inputs: Iterable = (), exit_on_error: bool = False) -> Iterator[None]:
    """Run a block under :func:`explain`: failures are re-raised as one-paragraph errors.

    Without `exit_on_error` every failure is re-raised as :class:`CamcorrError` (message from
    :func:`explain`, original exception chained) so a host (CellProfiler, Fiji) shows one
    paragraph; interrupts and :class:`CamcorrError` pass through unchanged.  With
    `exit_on_error` the message is printed to stderr and :class:`SystemExit` raised with the
    status (for scripts).
    """
    try:
        yield
    except BaseException as exc:  # noqa: B902 - the one top-level handler
        if isinstance(exc, (SystemExit, GeneratorExit)):
            raise
        msg, status = explain(exc, what=what, inputs=inputs)
        if exit_on_error:
            print(f"{what}: error: {msg}", file=sys.stderr)
            raise SystemExit(status) from None
        if isinstance(exc, (CamcorrError, KeyboardInterrupt)):
            raise
        raise CamcorrError(msg) from exc
