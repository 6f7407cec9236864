"""sCMOS read-noise simulator with known hot, noisy and random-telegraph (RTS) pixels.

The ground truth the selective median filter (:mod:`camcorr.median`) is tested against:

* :func:`load_variance_map` / :func:`load_gain_map` read a *real* per-pixel read-noise variance
  map (ADU^2) and gain map of an sCMOS camera (512 x 512; median variance 4.6 ADU^2, maximum
  1695 ADU^2: a heavy tail of hot pixels), published with Huang et al.'s sCMOS-noise-corrected SIM
  code (ZB20-PKU/sCMOS-noise-corrected-SIM, MIT licence), kept in ``../shared/data``.
* :func:`noisy_stack` draws a (Z, Y, X) stack of Gaussian read noise with that per-pixel
  variance, optionally plus random telegraph noise on chosen pixels and a specimen, and returns
  the truth: the per-pixel noise standard deviation and the mask of pixels whose noise is at
  least ``factor`` times the median noise.
* :func:`clean_stack` draws a defect-free stack (uniform Gaussian read noise), on which a good
  detector should flag (almost) nothing.
* :func:`telegraph_noise` draws two-level random telegraph signals (Markov switching).
* :func:`camera_stack` draws repeated frames of a static scene through a camera with shot noise
  (gain x Poisson), per-pixel read noise and known bad pixels whose noise std is a chosen factor
  times what shot plus read noise predicts (the truth of the chi-square rule of the median).

Axes are (Z, Y, X); values are ADU.

References
----------
Huang, F. et al. (2013). Video-rate nanoscopy using sCMOS camera-specific single-molecule
localization algorithms. Nature Methods 10, 653-658. doi:10.1038/nmeth.2488
Amat, F. et al. (2015). Efficient processing and analysis of large-scale light-sheet microscopy
data. Nature Protocols 10, 1679-1696. doi:10.1038/nprot.2015.111
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple, Union

import numpy as np

from ..errors import CamcorrError, check_range

__all__ = [
    "default_maps_folder",
    "load_variance_map",
    "load_gain_map",
    "telegraph_noise",
    "NoisyStack",
    "noisy_stack",
    "clean_stack",
    "CameraStack",
    "camera_stack",
]

_MAPS_SUBDIR = "scmos_variance_gain_maps"


def default_maps_folder() -> Path:
    """Where the real sCMOS maps are looked for.

    ``$CAMCORR_SHARED_DATA/scmos_variance_gain_maps`` if that variable is set, else
    ``../shared/data/scmos_variance_gain_maps`` beside the repository.
    """
    env = os.environ.get("CAMCORR_SHARED_DATA")
    if env:
        return Path(env) / _MAPS_SUBDIR
    return Path(__file__).resolve().parents[2].parent / "shared" / "data" / _MAPS_SUBDIR


def _load_mat(path, key: str, default_name: str) -> np.ndarray:
    from scipy.io import loadmat

    p = Path(path) if path is not None else default_maps_folder() / default_name
    if p.is_dir():
        p = p / default_name
    if not p.exists():
        raise CamcorrError("sCMOS map not found", argument="path",
                           expected=f"the MATLAB file {default_name} (key {key!r})",
                           received=str(p),
                           fix="Pass the path of the file, or set CAMCORR_SHARED_DATA to the "
                               "folder holding scmos_variance_gain_maps/")
    try:
        mat = loadmat(str(p))
    except Exception as exc:  # scipy raises several types on a bad file
        raise CamcorrError("cannot read as a MATLAB file", argument="path",
                           expected="a .mat file", received=f"{p} ({exc})") from None
    if key not in mat:
        raise CamcorrError("key missing in MATLAB file", argument="path",
                           expected=f"a variable named {key!r}",
                           received=", ".join(k for k in mat if not k.startswith("__")))
    return np.asarray(mat[key], dtype=np.float64)


def load_variance_map(path: Union[str, os.PathLike, None] = None) -> np.ndarray:
    """Real sCMOS read-noise variance map.

    Parameters
    ----------
    path : path-like, optional
        ``varsub.mat`` (or its folder); default ``default_maps_folder()/varsub.mat``.

    Returns
    -------
    ndarray, float64, shape (512, 512)
        Per-pixel read-noise variance in ADU^2.

    Raises
    ------
    CamcorrError
        If the file is missing or does not hold ``varsub``.
    """
    return _load_mat(path, "varsub", "varsub.mat")


def load_gain_map(path: Union[str, os.PathLike, None] = None) -> np.ndarray:
    """Real sCMOS gain map (``gainsub.mat``, key ``gainsub``), float64 (512, 512), ADU/e-.

    The published map holds a few non-physical (negative) values at defective pixels; they are
    returned as stored.
    """
    return _load_mat(path, "gainsub", "gainsub.mat")


def telegraph_noise(n_frames: int, n_pixels: int, *, amplitude, p_switch=0.2,
                    rng: Optional[np.random.Generator] = None) -> np.ndarray:
    """Two-level random telegraph signals (symmetric Markov switching).

    Parameters
    ----------
    n_frames, n_pixels : int
        Output shape (n_frames, n_pixels).
    amplitude : float or array of shape (n_pixels,)
        Step between the two levels, ADU.  Levels are 0 and `amplitude`.
    p_switch : float or array of shape (n_pixels,)
        Probability of switching level between consecutive frames, in (0, 1].  The stationary
        occupancy is 1/2, so the standard deviation of a long record is ``amplitude / 2``.
    rng : numpy.random.Generator, optional

    Returns
    -------
    ndarray, float64, shape (n_frames, n_pixels)
    """
    rng = np.random.default_rng() if rng is None else rng
    amp = np.broadcast_to(np.asarray(amplitude, dtype=np.float64), (n_pixels,))
    p = np.broadcast_to(np.asarray(p_switch, dtype=np.float64), (n_pixels,))
    if np.any(p <= 0) or np.any(p > 1):
        raise CamcorrError("switching probability out of range", argument="p_switch",
                           expected="values in (0, 1]", received=f"min {p.min()}, max {p.max()}")
    state = rng.random(n_pixels) < 0.5
    out = np.empty((n_frames, n_pixels))
    for t in range(n_frames):
        if t:
            state ^= rng.random(n_pixels) < p
        out[t] = state * amp
    return out


@dataclass
class NoisyStack:
    """A simulated stack and its ground truth.

    Attributes
    ----------
    stack : ndarray, shape (Z, Y, X)
        Simulated data (uint16 by default), ADU.
    noise_std : ndarray, float64, shape (Y, X)
        True per-pixel temporal noise standard deviation (read noise plus RTS), ADU.
    truth : ndarray of bool, shape (Y, X)
        Pixels whose ``noise_std`` is at least ``factor`` times the median of ``noise_std``.
    rts : ndarray of bool, shape (Y, X)
        Pixels given random telegraph noise.
    factor : float
        The factor used for ``truth``.
    offset : float
        Camera offset added, ADU.
    """

    stack: np.ndarray
    noise_std: np.ndarray
    truth: np.ndarray
    rts: np.ndarray
    factor: float
    offset: float


def _check_noise_inputs(variance, n_planes, argument: str) -> np.ndarray:
    """The variance map of a simulated stack as float64 (Y, X), and at least 2 planes.

    Raises
    ------
    CamcorrError
        A map that is not 2D or holds negative or non-finite variances; fewer than 2 planes.
    """
    var = np.asarray(variance, dtype=np.float64)
    if var.ndim != 2 or np.any(~np.isfinite(var)) or np.any(var < 0):
        raise CamcorrError("bad variance map", argument=argument,
                           expected="a 2D array of finite variances >= 0 (ADU^2)",
                           received=f"shape {var.shape}")
    if int(n_planes) < 2:
        raise CamcorrError("too few planes", argument="n_planes", expected="at least 2",
                           received=repr(n_planes))
    return var


def noisy_stack(variance_map, n_planes: int, *, offset: float = 100.0, n_rts: int = 0,
                rts_amplitude: Tuple[float, float] = (15.0, 40.0), rts_p_switch: float = 0.3,
                signal=None, factor: float = 5.0, dtype=np.uint16,
                rng: Optional[np.random.Generator] = None) -> NoisyStack:
    """Stack of sCMOS read noise with a per-pixel variance map, plus RTS pixels and a specimen.

    Model, per pixel (y, x) and plane z::

        stack[z, y, x] = offset + signal[z, y, x] + N(0, variance_map[y, x]) + RTS[z, y, x]

    rounded and clipped to `dtype`.

    Parameters
    ----------
    variance_map : ndarray, shape (Y, X)
        Read-noise variance in ADU^2 (e.g. :func:`load_variance_map`).
    n_planes : int
        Number of planes Z (>= 2).
    offset : float
        Camera offset, ADU.
    n_rts : int
        Number of pixels, drawn at random, given a two-level random telegraph signal.
    rts_amplitude : (float, float)
        Range of the RTS step, ADU (uniform); the RTS standard deviation is half the step.
    rts_p_switch : float
        Per-frame switching probability of the RTS pixels.
    signal : ndarray, shape (Z, Y, X) or (Y, X), optional
        Noise-free specimen in ADU, added before the noise.
    factor : float
        ``truth`` marks pixels whose total noise std is at least `factor` x the median.
    dtype : dtype-like
        Output dtype (values are rounded and clipped).
    rng : numpy.random.Generator, optional

    Returns
    -------
    NoisyStack
    """
    rng = np.random.default_rng() if rng is None else rng
    var = _check_noise_inputs(variance_map, n_planes, "variance_map")
    shape = (int(n_planes),) + var.shape
    sigma = np.sqrt(var)
    data = rng.standard_normal(shape) * sigma + offset
    if signal is not None:
        data += np.broadcast_to(np.asarray(signal, dtype=np.float64), shape)
    rts = np.zeros(var.shape, bool)
    noise_var = var.copy()
    if n_rts:
        idx = rng.choice(var.size, size=int(n_rts), replace=False)
        amp = rng.uniform(rts_amplitude[0], rts_amplitude[1], size=idx.size)
        tele = telegraph_noise(shape[0], idx.size, amplitude=amp, p_switch=rts_p_switch, rng=rng)
        flat = data.reshape(shape[0], -1)
        flat[:, idx] += tele
        rts.flat[idx] = True
        noise_var.flat[idx] += (amp / 2.0) ** 2
    noise_std = np.sqrt(noise_var)
    truth = noise_std >= factor * np.median(noise_std)
    dt = np.dtype(dtype)
    if dt.kind in "ui":
        info = np.iinfo(dt)
        data = np.clip(np.rint(data), info.min, info.max)
    stack = data.astype(dt)
    return NoisyStack(stack=stack, noise_std=noise_std, truth=truth, rts=rts,
                      factor=float(factor), offset=float(offset))


def clean_stack(shape: Tuple[int, int, int], *, sigma: float = 2.0, offset: float = 100.0,
                signal=None, dtype=np.uint16,
                rng: Optional[np.random.Generator] = None) -> np.ndarray:
    """Defect-free stack: Gaussian read noise with the same variance at every pixel.

    Parameters
    ----------
    shape : (Z, Y, X)
    sigma : float
        Read-noise standard deviation, ADU (> 0).
    offset : float
        Camera offset, ADU.
    signal : ndarray, optional
        Noise-free specimen (ADU) broadcast to `shape`, added before the noise.
    dtype : dtype-like
    rng : numpy.random.Generator, optional

    Returns
    -------
    ndarray of `dtype`, shape (Z, Y, X)
    """
    check_range(sigma, "sigma", low=0, low_inclusive=False)
    var = np.full(tuple(shape)[1:], float(sigma) ** 2)
    return noisy_stack(var, shape[0], offset=offset, signal=signal, dtype=dtype,
                       rng=rng).stack


@dataclass
class CameraStack:
    """Frames of a static scene from :func:`camera_stack` and their ground truth.

    Attributes
    ----------
    stack : ndarray, shape (Z, Y, X)
        Frames (uint16 by default), ADU.
    expected_std : ndarray, float64, shape (Y, X)
        Noise std a good pixel shows there: ``sqrt(read_variance + gain * signal)``, ADU.
    noise_std : ndarray, float64, shape (Y, X)
        True noise std of every pixel (``factor x expected_std`` at the bad pixels), ADU.
    factor : ndarray, float64, shape (Y, X)
        ``noise_std / expected_std``: 1 at good pixels.
    read_variance : ndarray, float64, shape (Y, X)
        The camera's read-noise variance map, ADU^2 (what a calibration would measure).
    signal : ndarray, float64, shape (Y, X)
        Mean signal above the offset, ADU.
    gain : float
        ADU per electron.
    offset : float
        ADU.
    """

    stack: np.ndarray
    expected_std: np.ndarray
    noise_std: np.ndarray
    factor: np.ndarray
    read_variance: np.ndarray
    signal: np.ndarray
    gain: float
    offset: float


def camera_stack(read_variance, n_planes: int, *, gain: float = 2.0, offset: float = 100.0,
                 electrons=(20.0, 400.0), bad=None, dtype=np.uint16,
                 rng: Optional[np.random.Generator] = None) -> CameraStack:
    """Repeated frames of a static scene with shot and read noise and known bad pixels.

    Model, per pixel (y, x) and frame z::

        stack[z, y, x] = offset + gain * Poisson(e[y, x]) + N(0, read_variance[y, x])
                         + N(0, (factor[y, x]^2 - 1) * expected_var[y, x])

    with ``expected_var = read_variance + gain^2 e`` (shot variance ``gain x`` the mean signal
    in ADU: the photon-transfer relation, Janesick 2007, doi:10.1117/3.725073), rounded and
    clipped to `dtype`.  The scene ``e`` (electrons) is a smooth pattern spanning `electrons`,
    so that the mean level -- and the shot noise -- differs from pixel to pixel.

    Parameters
    ----------
    read_variance : ndarray, shape (Y, X)
        Read-noise variance map, ADU^2 (e.g. :func:`load_variance_map`, or a uniform map).
    n_planes : int
        Frames (>= 2).
    gain : float
        ADU per electron (> 0).
    offset : float
        ADU.
    electrons : (float, float)
        Range of the scene, electrons per pixel per frame (>= 0).
    bad : dict {factor: count}, optional
        Bad pixels: ``count`` pixels, drawn at random (disjoint), whose noise std is ``factor``
        times the expected std (factor > 1).
    dtype : dtype-like
    rng : numpy.random.Generator, optional

    Returns
    -------
    CameraStack
    """
    rng = np.random.default_rng() if rng is None else rng
    read = _check_noise_inputs(read_variance, n_planes, "read_variance")
    check_range(gain, "gain", low=0, low_inclusive=False)
    ny, nx = read.shape
    yy, xx = np.meshgrid(np.linspace(0, 1, ny), np.linspace(0, 1, nx), indexing="ij")
    pattern = 0.5 + 0.25 * np.sin(2 * np.pi * 1.5 * xx) + 0.25 * np.cos(2 * np.pi * yy)
    e = electrons[0] + (electrons[1] - electrons[0]) * np.clip(pattern, 0, 1)
    expected_var = read + gain * gain * e
    factor = np.ones(read.shape)
    if bad:
        total = int(sum(int(c) for c in bad.values()))
        idx = rng.choice(read.size, size=total, replace=False)
        start = 0
        for f, c in bad.items():
            if float(f) <= 1:
                raise CamcorrError("bad-pixel factor must exceed 1", argument="bad",
                                   expected="{factor > 1: count}", received=repr(bad))
            factor.flat[idx[start:start + int(c)]] = float(f)
            start += int(c)
    shape = (int(n_planes), ny, nx)
    data = gain * rng.poisson(e, size=shape).astype(np.float64)
    data += rng.standard_normal(shape) * np.sqrt(read)
    extra = np.sqrt((factor ** 2 - 1.0) * expected_var)
    sel = factor > 1
    if np.any(sel):
        data[:, sel] += rng.standard_normal((shape[0], int(sel.sum()))) * extra[sel]
    data += offset
    dt = np.dtype(dtype)
    if dt.kind in "ui":
        info = np.iinfo(dt)
        data = np.clip(np.rint(data), info.min, info.max)
    expected_std = np.sqrt(expected_var)
    return CameraStack(stack=data.astype(dt), expected_std=expected_std,
                       noise_std=factor * expected_std, factor=factor, read_variance=read,
                       signal=gain * e, gain=float(gain), offset=float(offset))
