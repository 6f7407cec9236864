"""Fourier ring correlation (FRC) with the 3-sigma noise curve, as numbers, JSON and a plot.

``FRC(r) = Re(sum_ring F1 F2*) / sqrt(sum_ring |F1|^2 sum_ring |F2|^2)`` over rings of width one
Fourier pixel.  For two *independent* noise images the FRC of a ring of ``n_r`` Fourier pixels
(both Hermitian halves counted) fluctuates around 0 with standard deviation ``1/sqrt(n_r)``, so
the ``n_sigma``-sigma curve is ``n_sigma / sqrt(n_r)`` (van Heel 1987; van Heel & Schatz 2005).
Afanasyev et al. (2015) use it to check that images corrected by their a posteriori
normalisation are statistically independent at every spatial frequency: the FRC of two images
(or two averages of disjoint frame sets) of different specimen areas should oscillate around 0
within the 3-sigma curve; a fixed camera pattern shows up as FRC far above it.

Frequencies are in cycles per pixel (0.5 = Nyquist).

References
----------
van Heel, M. (1987). Similarity measures between images. Ultramicroscopy 21, 95-99.
doi:10.1016/0304-3991(87)90010-6
van Heel, M. & Schatz, M. (2005). Fourier shell correlation threshold criteria. J. Struct. Biol.
151, 250-262. doi:10.1016/j.jsb.2005.05.009
Afanasyev, P. et al. (2015). A posteriori correction of camera characteristics from large image
data sets. Sci. Rep. 5, 10317. doi:10.1038/srep10317
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..errors import CamcorrError, Limits, check_choice, check_finite, describe
from ..io import PathLike, atomic_write

__all__ = ["FRCResult", "frc", "WINDOWS", "DEFAULT_N_SIGMA", "LIMITS"]

WINDOWS = ("none", "hann")
#: Level of the noise curve in standard deviations of the FRC of independent noise (van Heel).
DEFAULT_N_SIGMA = 3.0
#: Allowed noise-curve levels (any positive number of standard deviations).
LIMITS = {"n_sigma": Limits(low=0.0, low_inclusive=False)}


@dataclass
class FRCResult:
    """Fourier ring correlation of two images.

    Attributes
    ----------
    frequency : ndarray, shape (R,)
        Ring centre, cycles per pixel (ring ``i`` is at ``i / min(Y, X)``; up to 0.5).
    frc : ndarray, shape (R,)
        Correlation per ring, in [-1, 1].
    threshold : ndarray, shape (R,)
        ``n_sigma / sqrt(n_pixels)``: the noise curve.
    n_pixels : ndarray of int, shape (R,)
        Fourier pixels per ring.
    n_sigma : float
    crossover : float or None
        First frequency where the FRC falls below the noise curve, cycles/pixel (rings whose
        noise curve is >= 1, i.e. with fewer than ``n_sigma**2`` Fourier pixels, are skipped);
        None if it never does.
    resolution : float or None
        ``1 / crossover`` in pixels.
    fraction_above : float
        Fraction of the usable rings (ring >= 1, noise curve < 1) where ``|FRC|`` exceeds the
        noise curve.  About 0.003 for
        independent images (3 sigma); close to 1 for images sharing a pattern.
    """

    frequency: np.ndarray
    frc: np.ndarray
    threshold: np.ndarray
    n_pixels: np.ndarray
    n_sigma: float
    crossover: Optional[float]
    resolution: Optional[float]
    fraction_above: float

    def to_dict(self) -> dict:
        """JSON-serialisable dictionary."""
        return {
            "frequency_cycles_per_pixel": [float(v) for v in self.frequency],
            "frc": [float(v) for v in self.frc],
            "threshold": [float(v) for v in self.threshold],
            "n_pixels": [int(v) for v in self.n_pixels],
            "n_sigma": float(self.n_sigma),
            "crossover_cycles_per_pixel": self.crossover,
            "resolution_pixels": self.resolution,
            "fraction_above_threshold": float(self.fraction_above),
            "reference": "van Heel & Schatz 2005, doi:10.1016/j.jsb.2005.05.009",
        }

    def save_json(self, path: PathLike, *, inputs=()):
        """Write :meth:`to_dict` as JSON (atomically, never over an input)."""
        from ..io import ensure_not_input

        ensure_not_input(path, inputs)

        def _w(tmp):
            with open(tmp, "w") as fh:
                json.dump(self.to_dict(), fh, indent=1)

        return atomic_write(path, _w, suffix=".json")

    def plot(self, path: PathLike, *, title: str = "Fourier ring correlation", inputs=()):
        """Write a PNG plot: FRC and the +/- noise curves against the fraction of Nyquist."""
        import matplotlib

        matplotlib.use("Agg", force=False)
        from matplotlib.figure import Figure

        from ..io import ensure_not_input

        ensure_not_input(path, inputs)
        fig = Figure(figsize=(6.0, 3.6), dpi=110)
        ax = fig.add_subplot(111)
        x = self.frequency / 0.5
        ax.plot(x, self.frc, color="C0", lw=1.2, label="FRC")
        ax.plot(x, self.threshold, color="C3", lw=0.9, ls="--",
                label=f"+/-{self.n_sigma:g} sigma noise curve")
        ax.plot(x, -self.threshold, color="C3", lw=0.9, ls="--")
        ax.axhline(0.0, color="0.5", lw=0.6)
        if self.crossover is not None:
            ax.axvline(self.crossover / 0.5, color="0.3", lw=0.6, ls=":")
        ax.set_xlim(0, 1)
        finite_thr = self.threshold[np.isfinite(self.threshold) & (self.threshold < 1)]
        low = min(float(np.nanmin(self.frc[1:])) if self.frc.size > 1 else 0.0,
                  -float(finite_thr.max()) if finite_thr.size else -0.2)
        ax.set_ylim(max(-1.02, low - 0.05), 1.02)
        ax.set_xlabel("spatial frequency (fraction of Nyquist)")
        ax.set_ylabel("FRC")
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=8, loc="upper right")
        fig.tight_layout()

        def _w(tmp):
            fig.savefig(tmp, format="png")

        return atomic_write(path, _w, suffix=".png")


def _window(shape, kind):
    if kind == "none":
        return None
    wy = np.hanning(shape[0])
    wx = np.hanning(shape[1])
    return np.outer(wy, wx)


def frc(a, b, *, n_sigma: float = DEFAULT_N_SIGMA, window: str = "none") -> FRCResult:
    """Fourier ring correlation of two 2D images and its noise curve.

    Parameters
    ----------
    a, b : ndarray, shape (Y, X)
        Two images of the same shape (e.g. two frames, or two averages of disjoint frame sets).
        Their means are subtracted first.
    n_sigma : float
        Noise-curve level (default 3: van Heel's 3-sigma criterion).
    window : {'none', 'hann'}
        Optional apodisation before the Fourier transform (reduces edge artefacts of
        non-periodic images; the noise curve is then approximate).

    Returns
    -------
    FRCResult

    Raises
    ------
    CamcorrError
        Not 2D, shapes differ, too small (< 8 x 8), NaN/infinite values, constant image.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> img = np.zeros((64, 64))
    >>> img[16:48, 16:48] = 50.0
    >>> r = frc(img + rng.standard_normal((64, 64)), img + rng.standard_normal((64, 64)))
    >>> r.frc.shape, round(r.fraction_above, 2)  # rings above the noise threshold
    ((33,), 0.97)
    >>> frc(rng.standard_normal((64, 64)), rng.standard_normal((64, 64))).fraction_above
    0.0
    """
    check_choice(window, WINDOWS, "window")
    LIMITS["n_sigma"].check(n_sigma, "n_sigma")
    arrays = []
    for name, img in (("a", a), ("b", b)):
        arr = np.asarray(img)
        if arr.dtype.kind not in "uif":
            raise CamcorrError("unsupported pixel type", argument=name,
                               expected="integer or floating-point pixels", received=describe(arr))
        if arr.ndim == 3 and arr.shape[0] == 1:
            arr = arr[0]
        if arr.ndim != 2:
            raise CamcorrError("wrong number of dimensions", argument=name,
                               expected="a 2D image (Y, X)", received=describe(arr),
                               fix="Average or pick the planes first (e.g. two half-set averages)")
        if min(arr.shape) < 8:
            raise CamcorrError("image too small", argument=name,
                               expected="at least 8 x 8 pixels", received=f"shape {arr.shape}")
        check_finite(arr, name)
        arrays.append(arr.astype(np.float64))
    a, b = arrays
    if a.shape != b.shape:
        raise CamcorrError("shapes differ", argument="a/b", expected=f"b of shape {a.shape} like a",
                           received=f"shape {b.shape}", fix="Crop both images to the same size")
    a = a - a.mean()
    b = b - b.mean()
    if not a.any() or not b.any():
        raise CamcorrError("constant image", argument="a" if not a.any() else "b",
                           expected="an image with some contrast", received="a constant image")
    w = _window(a.shape, window)
    if w is not None:
        a, b = a * w, b * w
    fa = np.fft.fft2(a)
    fb = np.fft.fft2(b)
    ny, nx = a.shape
    n = min(ny, nx)
    fy = np.fft.fftfreq(ny)[:, None]
    fx = np.fft.fftfreq(nx)[None, :]
    ring = np.rint(np.sqrt(fy ** 2 + fx ** 2) * n).astype(np.int64)
    n_rings = n // 2 + 1
    keep = ring < n_rings
    idx = ring[keep]
    cross = np.bincount(idx, weights=(fa * np.conj(fb)).real[keep], minlength=n_rings)
    pa = np.bincount(idx, weights=(np.abs(fa) ** 2)[keep], minlength=n_rings)
    pb = np.bincount(idx, weights=(np.abs(fb) ** 2)[keep], minlength=n_rings)
    count = np.bincount(idx, minlength=n_rings)
    with np.errstate(invalid="ignore", divide="ignore"):
        values = cross / np.sqrt(pa * pb)
        thr = n_sigma / np.sqrt(count)
    values[0] = 1.0 if values[0] != values[0] else values[0]  # DC ring: means removed
    freq = np.arange(n_rings) / n
    # rings whose noise curve reaches 1 (a handful of Fourier pixels) cannot decide anything
    usable = (np.arange(n_rings) >= 1) & np.isfinite(values) & (thr < 1.0)
    crossover = None
    for i in np.flatnonzero(usable):
        if values[i] < thr[i]:
            crossover = float(freq[i])
            break
    above = np.abs(values[usable]) > thr[usable]
    return FRCResult(frequency=freq, frc=np.nan_to_num(values), threshold=thr,
                     n_pixels=count, n_sigma=float(n_sigma), crossover=crossover,
                     resolution=(1.0 / crossover) if crossover else None,
                     fraction_above=float(above.mean()) if above.size else 0.0)
