"""A dependency-free progress bar for long command-line work (written to stderr)."""
from __future__ import annotations

import sys
import time
from typing import Iterable, Iterator, Optional, TypeVar

T = TypeVar("T")

__all__ = ["progress", "Progress"]


class Progress:
    """Counts work done and draws ``desc [#####.....] 42% 12/30 eta 5s`` on stderr.

    On a terminal the bar is redrawn in place; otherwise (log files, CI, CellProfiler) a line is
    printed every 10 %.  ``enabled=False`` silences it.
    """

    def __init__(self, total: Optional[int], desc: str = "", *, enabled: bool = True,
                 stream=None, width: int = 30):
        self.total = total
        self.desc = desc
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.width = width
        self.done = 0
        self.start = time.perf_counter()
        self._last_decile = -1
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def update(self, n: int = 1):
        """Record `n` more units of work."""
        self.done += n
        if not self.enabled:
            return
        if self.total:
            frac = min(1.0, self.done / self.total)
            elapsed = time.perf_counter() - self.start
            eta = elapsed / frac * (1 - frac) if frac > 0 else float("nan")
            bar = "#" * int(frac * self.width)
            line = (f"{self.desc} [{bar:.<{self.width}}] {frac:4.0%} {self.done}/{self.total}"
                    f" eta {eta:4.0f}s")
            decile = int(frac * 10)
            if self._tty:
                self.stream.write("\r" + line)
                self.stream.flush()
            elif decile != self._last_decile:
                self.stream.write(line + "\n")
                self.stream.flush()
            self._last_decile = decile

    def close(self):
        """Finish the bar (newline on a terminal)."""
        if self.enabled and self._tty:
            self.stream.write("\n")
            self.stream.flush()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def progress(iterable: Iterable[T], total: Optional[int] = None, desc: str = "",
             enabled: bool = True) -> Iterator[T]:
    """Iterate while drawing a :class:`Progress` bar."""
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    with Progress(total, desc, enabled=enabled) as bar:
        for item in iterable:
            yield item
            bar.update()
