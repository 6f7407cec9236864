"""Where numba keeps its compiled-kernel cache, chosen before numba is imported.

The kernels of camcorr are compiled with ``cache=True``.  numba stores the cache beside the
source (``__pycache__`` of the installed package) or, when that is not writable, in the user's
cache folder under HOME.  On a shared cluster install neither may be writable, and numba then
fails at import ("cannot cache function ...: no locator available").  :func:`configure` runs when
``camcorr`` is imported: if the user did not set ``NUMBA_CACHE_DIR`` and the package folder is
not writable, it points numba at a private, writable folder in the temporary directory
(``<tmp>/camcorr-numba-<uid>``, mode 0700), so kernels compile once per machine and user.
"""
from __future__ import annotations

import os
import stat
import sys
import tempfile

__all__ = ["configure", "private_cache_dir"]


def _writable_dir(path: str) -> bool:
    probe = os.path.join(path, f".camcorr-probe-{os.getpid()}")
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError:
        return False
    os.close(fd)
    try:
        os.unlink(probe)
    except OSError:
        pass
    return True


def _in_tree_writable(package_dir: str) -> bool:
    cache = os.path.join(package_dir, "__pycache__")
    if os.path.isdir(cache):
        return _writable_dir(cache)
    return _writable_dir(package_dir)


def private_cache_dir() -> str | None:
    """A folder only this user can write, under the temporary directory; None if none can be made."""
    uid = os.getuid() if hasattr(os, "getuid") else 0
    base = os.path.join(tempfile.gettempdir(), f"camcorr-numba-{uid}")
    try:
        os.makedirs(base, mode=0o700, exist_ok=True)
        st = os.lstat(base)
        # another user's folder, or one others can write, could feed us compiled code: refuse it
        if (stat.S_ISDIR(st.st_mode) and (not hasattr(os, "getuid") or st.st_uid == uid)
                and not st.st_mode & 0o022 and _writable_dir(base)):
            return base
    except OSError:
        pass
    try:
        return tempfile.mkdtemp(prefix="camcorr-numba-")
    except OSError:
        return None


def configure(package_dir: str) -> str | None:
    """Point numba's cache at a writable folder if the install is read-only; return that folder.

    Does nothing when ``NUMBA_CACHE_DIR`` is already set or the package folder is writable.
    Works whether or not numba is already imported (CellProfiler imports it first).
    """
    if os.environ.get("NUMBA_CACHE_DIR"):
        return None
    # check the sub-packages that hold kernels too (a partly writable install is possible)
    dirs = [package_dir] + [os.path.join(package_dir, d) for d in ("median", "gain", "flash",
                                                                    "flatfield")]
    if all(_in_tree_writable(d) for d in dirs if os.path.isdir(d)):
        return None
    folder = private_cache_dir()
    if folder is None:
        return None
    os.environ["NUMBA_CACHE_DIR"] = folder
    numba_config = sys.modules.get("numba.core.config")
    if numba_config is not None:
        numba_config.CACHE_DIR = folder
    return folder
