"""Helpers shared by the test modules: file systems for the fault and bad-input tests, the
flat-field error metric of the flat-field tests."""
from __future__ import annotations

import subprocess
from pathlib import Path


def mount_tmpfs(path: Path, size: str, *, readonly: bool = False) -> bool:
    """Mount a tmpfs of `size` (e.g. ``'64k'``) at `path` (created); False if not permitted
    (mounting needs root or CAP_SYS_ADMIN)."""
    path.mkdir(parents=True, exist_ok=True)
    opts = f"size={size}" + (",ro" if readonly else "")
    try:
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)],
                           capture_output=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return False
    return r.returncode == 0


def umount(path: Path) -> None:
    """Unmount `path` (lazily: a file still open in a finished subprocess does not block it)."""
    subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=20)


def rms_rel(estimate, truth) -> float:
    """RMS of the relative flat-field error, after normalising both to mean 1."""
    import numpy as np

    e = np.asarray(estimate, float) / np.mean(estimate)
    t = np.asarray(truth, float) / np.mean(truth)
    return float(np.sqrt(np.mean((e / t - 1) ** 2)))
