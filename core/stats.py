"""Streamed, mergeable per-pixel statistics.

:class:`RunningMoments` accumulates count, mean and the sum of squared deviations of a stream of
frames with the pairwise update of Chan, Golub & LeVeque (1983), so memory does not grow with the
number of frames, and partial results computed on separate chunks (threads, processes, dask
workers) merge exactly.

References
----------
Chan, T. F., Golub, G. H. & LeVeque, R. J. (1983). Algorithms for computing the sample variance:
analysis and recommendations. The American Statistician 37(3), 242-247.
doi:10.1080/00031305.1983.10483115
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional

import numpy as np

from .errors import CamcorrError, check_frame_block

__all__ = ["RunningMoments", "moments_of"]


@dataclass
class RunningMoments:
    """Per-pixel count, mean and M2 (sum of squared deviations) of a stream of frames.

    Attributes
    ----------
    count : ndarray or int
        Number of frames seen (scalar when every pixel saw every frame).
    mean : ndarray, float64, shape (Y, X)
        Running mean.
    m2 : ndarray, float64, shape (Y, X)
        Running sum of squared deviations from the mean.

    Examples
    --------
    >>> import numpy as np
    >>> acc = RunningMoments().update(np.arange(12.0).reshape(3, 2, 2))
    >>> acc = acc.merge(RunningMoments().update(np.arange(12.0, 24.0).reshape(3, 2, 2)))
    >>> acc.count, acc.mean.tolist(), acc.variance().tolist()
    (6, [[10.0, 11.0], [12.0, 13.0]], [[56.0, 56.0], [56.0, 56.0]])
    """

    count: int = 0
    mean: Optional[np.ndarray] = None
    m2: Optional[np.ndarray] = None

    def update(self, frames) -> "RunningMoments":
        """Add a block of frames, shape (N, Y, X) or one frame (Y, X); returns self."""
        block = check_frame_block(frames, "frames", max_ndim=3)
        n = block.shape[0]
        if n == 0:
            return self
        b = block.astype(np.float64, copy=False)
        bmean = b.mean(axis=0)
        bm2 = ((b - bmean) ** 2).sum(axis=0)
        return self.merge(RunningMoments(n, bmean, bm2))

    def merge(self, other: "RunningMoments") -> "RunningMoments":
        """Merge another partial result into this one (in place); returns self."""
        if other.count == 0:
            return self
        if self.count == 0:
            self.count, self.mean, self.m2 = other.count, other.mean.copy(), other.m2.copy()
            return self
        if self.mean.shape != other.mean.shape:
            raise CamcorrError("frame shapes differ", argument="frames",
                               expected=f"frames of shape {self.mean.shape}",
                               received=f"frames of shape {other.mean.shape}",
                               fix="All frames of one statistic must have the same size")
        n = self.count + other.count
        delta = other.mean - self.mean
        self.mean = self.mean + delta * (other.count / n)
        self.m2 = self.m2 + other.m2 + delta ** 2 * (self.count * other.count / n)
        self.count = n
        return self

    def variance(self, ddof: int = 1) -> np.ndarray:
        """Per-pixel variance (float64), with `ddof` delta degrees of freedom."""
        if self.count - ddof <= 0:
            raise CamcorrError("not enough frames for a variance", argument="frames",
                               expected=f"at least {ddof + 1} frames", received=f"{self.count}",
                               fix="Provide more frames")
        return self.m2 / (self.count - ddof)

    def std(self, ddof: int = 1) -> np.ndarray:
        """Per-pixel standard deviation (float64)."""
        return np.sqrt(self.variance(ddof))

    def to_dict(self) -> dict:
        """Plain arrays (for ``np.savez`` or CellProfiler group state)."""
        return {"count": np.asarray(self.count), "mean": self.mean, "m2": self.m2}

    @classmethod
    def from_dict(cls, d) -> "RunningMoments":
        """Inverse of :meth:`to_dict`."""
        return cls(int(np.asarray(d["count"])), np.asarray(d["mean"], np.float64),
                   np.asarray(d["m2"], np.float64))


def moments_of(blocks: Iterable) -> RunningMoments:
    """Accumulate :class:`RunningMoments` over an iterable of frame blocks."""
    acc = RunningMoments()
    for block in blocks:
        acc.update(block)
    return acc
