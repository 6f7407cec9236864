"""Camera simulator with known gain: gain maps, textured specimens, integrating/counting movies.

The ground truth the gain estimator (:mod:`camcorr.gain`) is tested against.  Model of one frame:

* integrating camera (sCMOS/CCD):  ``ADU = offset + G x adu_per_e x Poisson(dose x specimen)
  + Normal(0, read_noise_adu)``, rounded and clipped to uint16;
* counting detector (DED in counting mode): ``counts = Poisson(dose x specimen x G)`` with about
  1 electron per pixel per frame, integer valued.

In both, ``recorded = ideal x G`` on average (Sorzano et al. 2018, Eq. 1), with ``G`` normalised to
mean 1.  Gain maps (:func:`gain_map`) are built from named components, returned separately so a test
can tell what an estimator recovers: per-column and per-row factors (readout channels, stripes),
sensor tiles, a smooth (separable) vignetting-like term, independent pixel-to-pixel scatter and
hot/dead pixels.  :func:`real_gain_map` gives the real per-pixel sCMOS gain map of
``../shared/data/scmos_variance_gain_maps/gainsub.mat`` (normalised to mean 1, its few negative
and implausible pixels clipped).  Specimens (:func:`specimen`) are positive, mean-1, smooth random
textures (log-normal field), so the blind estimator is tested on non-flat images; they can be the
same in every frame (``motion='static'``), drift as a random walk (``'drift'``) or be new in every
frame (``'independent'``, like frames pooled from many exposures).

Axes are (N, Y, X) for movies, (Y, X) for maps.

References
----------
Sorzano, C.O.S. et al. (2018). Blind estimation of DED camera gain in Electron Microscopy.
J. Struct. Biol. 203(2), 90-93. doi:10.1016/j.jsb.2018.03.007
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Iterator, Optional, Tuple

import numpy as np

from ..errors import CamcorrError, check_range

__all__ = [
    "GainMap",
    "gain_map",
    "ded_gain_map",
    "real_gain_map",
    "specimen",
    "Movie",
    "integrating_movie",
    "counting_movie",
    "iter_integrating_frames",
    "r_squared",
    "gain_oracle_r2",
    "gain_error_parts",
]

MOTIONS = ("independent", "drift", "static")


def _rng(rng):
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def _shape2(shape) -> Tuple[int, int]:
    try:
        y, x = (int(s) for s in shape)
    except (TypeError, ValueError):
        raise CamcorrError("invalid shape", argument="shape", expected="(Y, X)",
                           received=repr(shape)) from None
    if y < 2 or x < 2:
        raise CamcorrError("invalid shape", argument="shape", expected="at least 2 x 2",
                           received=repr(shape))
    return y, x


@dataclass
class GainMap:
    """A gain image (mean 1) with its components.

    Attributes
    ----------
    gain : ndarray, float64, shape (Y, X)
        Product of the components, normalised to mean 1.
    components : dict of str -> ndarray
        ``'columns'``, ``'rows'``, ``'tiles'``, ``'smooth'``, ``'pixels'``, ``'defects'``: each a
        multiplicative factor of mean about 1 (broadcastable to (Y, X)).
    hot, dead : ndarray of bool
        Masks of the hot (factor `hot_factor`) and dead (factor `dead_factor`) pixels.
    """

    gain: np.ndarray
    components: Dict[str, np.ndarray] = field(default_factory=dict)
    hot: Optional[np.ndarray] = None
    dead: Optional[np.ndarray] = None


def gain_map(shape, *, column_std: float = 0.05, row_std: float = 0.03, tile_std: float = 0.0,
             tile_size: int = 64, smooth_amplitude: float = 0.05, pixel_std: float = 0.0,
             n_hot: int = 0, hot_factor: float = 5.0, n_dead: int = 0, dead_factor: float = 0.2,
             rng=None) -> GainMap:
    """A known gain map built from named multiplicative components.

    Parameters
    ----------
    shape : (int, int)
        (Y, X).
    column_std, row_std : float
        Relative std of independent per-column and per-row factors (readout channels, stripes).
    tile_std : float
        Relative std of per-tile factors (sensor tiles of `tile_size` pixels).
    tile_size : int
        Tile edge in pixels.
    smooth_amplitude : float
        Peak relative depth of a smooth separable (Gaussian) fall-off towards the corners.
    pixel_std : float
        Relative std of independent per-pixel factors.
    n_hot, n_dead : int
        Number of isolated pixels with factor `hot_factor` / `dead_factor`.
    rng : numpy Generator or seed

    Returns
    -------
    GainMap
    """
    ny, nx = _shape2(shape)
    for name, val in (("column_std", column_std), ("row_std", row_std), ("tile_std", tile_std),
                      ("pixel_std", pixel_std)):
        check_range(val, name, low=0, high=0.5)
    check_range(smooth_amplitude, "smooth_amplitude", low=0, high=0.9)
    r = _rng(rng)
    comp: Dict[str, np.ndarray] = {}
    comp["columns"] = np.clip(1 + column_std * r.standard_normal((1, nx)), 0.05, None)
    comp["rows"] = np.clip(1 + row_std * r.standard_normal((ny, 1)), 0.05, None)
    ty, tx = -(-ny // tile_size), -(-nx // tile_size)
    tiles = np.clip(1 + tile_std * r.standard_normal((ty, tx)), 0.05, None)
    comp["tiles"] = np.repeat(np.repeat(tiles, tile_size, 0), tile_size, 1)[:ny, :nx]
    yy = (np.arange(ny) - (ny - 1) / 2) / (ny / 2)
    xx = (np.arange(nx) - (nx - 1) / 2) / (nx / 2)
    fall = np.exp(-0.5 * (yy[:, None] ** 2 + xx[None, :] ** 2) / 0.8 ** 2)
    fall = (fall - fall.min()) / max(np.ptp(fall), 1e-12)
    comp["smooth"] = 1 - smooth_amplitude * (1 - fall)
    comp["pixels"] = np.clip(1 + pixel_std * r.standard_normal((ny, nx)), 0.05, None)
    defects = np.ones((ny, nx))
    hot = np.zeros((ny, nx), bool)
    dead = np.zeros((ny, nx), bool)
    n_def = int(n_hot) + int(n_dead)
    if n_def:
        flat = r.choice(ny * nx, size=min(n_def, ny * nx), replace=False)
        hot.ravel()[flat[:n_hot]] = True
        dead.ravel()[flat[n_hot:]] = True
        defects[hot] = hot_factor
        defects[dead] = dead_factor
    comp["defects"] = defects
    g = np.ones((ny, nx))
    for c in comp.values():
        g = g * c
    return GainMap(gain=g / g.mean(), components=comp, hot=hot, dead=dead)


def ded_gain_map(shape, *, column_std: float = 0.04, row_std: float = 0.02,
                 modulation_amplitude: float = 0.04, modulation_period_px: float = 44.0,
                 sector_steps: Tuple[float, ...] = (0.015, -0.012), line_amplitude: float = 0.03,
                 n_lines: int = 3, pixel_std: float = 0.005, rng=None) -> GainMap:
    """A gain map like a direct electron detector's: mostly low-frequency column structure.

    Components (each a multiplicative factor, see :class:`GainMap`):

    * ``'columns'``: a smooth sinusoidal modulation across columns (period
      `modulation_period_px`, random phase and a slow random drift of amplitude), times
      independent per-column factors of std `column_std` (readout channels);
    * ``'rows'``: independent per-row factors of std `row_std`;
    * ``'sectors'``: the sensor's readout sectors, equal bands of columns separated by
      ``len(sector_steps)`` boundaries at which the gain steps by the given relative amounts
      (1-2 %);
    * ``'lines'``: `n_lines` weak single-column or single-row lines of relative amplitude
      +-`line_amplitude`;
    * ``'pixels'``: independent per-pixel factors of std `pixel_std`.

    The smooth modulation and the sector steps vary over many columns, so equalising each column
    against its neighbours (Sorzano et al. 2018) sees little of them: they are the test of
    gain estimation at low spatial frequencies.

    Parameters
    ----------
    shape : (int, int)
        (Y, X).
    column_std, row_std, pixel_std : float
        Relative std of the independent per-column, per-row and per-pixel factors.
    modulation_amplitude : float
        Relative amplitude of the column modulation.
    modulation_period_px : float
        Its period in columns (> 2).
    sector_steps : tuple of float
        Relative gain steps between neighbouring readout sectors (each in (-0.5, 0.5)).
    line_amplitude : float
        Relative amplitude of the weak lines.
    n_lines : int
        Number of weak lines (columns or rows, chosen at random).
    rng : numpy Generator or seed

    Returns
    -------
    GainMap
        ``gain`` normalised to mean 1, components ``columns``, ``rows``, ``sectors``,
        ``lines``, ``pixels``.
    """
    ny, nx = _shape2(shape)
    for name, val in (("column_std", column_std), ("row_std", row_std), ("pixel_std", pixel_std),
                      ("modulation_amplitude", modulation_amplitude),
                      ("line_amplitude", line_amplitude)):
        check_range(val, name, low=0, high=0.5)
    check_range(modulation_period_px, "modulation_period_px", low=2, low_inclusive=False)
    check_range(n_lines, "n_lines", low=0)
    steps = tuple(float(v) for v in sector_steps)
    for v in steps:
        check_range(v, "sector_steps", low=-0.5, high=0.5)
    r = _rng(rng)
    x = np.arange(nx)
    phase = r.uniform(0, 2 * np.pi)
    drift = 1 + 0.25 * np.sin(2 * np.pi * x / max(nx, 1) + r.uniform(0, 2 * np.pi))
    modulation = 1 + modulation_amplitude * drift * np.sin(2 * np.pi * x / modulation_period_px
                                                           + phase)
    comp: Dict[str, np.ndarray] = {}
    comp["columns"] = (modulation * np.clip(1 + column_std * r.standard_normal(nx), 0.05,
                                            None))[None, :]
    comp["rows"] = np.clip(1 + row_std * r.standard_normal((ny, 1)), 0.05, None)
    sectors = np.ones(nx)
    for k, step in enumerate(steps):
        edge = int(round((k + 1) * nx / (len(steps) + 1)))
        sectors[edge:] *= 1 + step
    comp["sectors"] = sectors[None, :]
    lines = np.ones((ny, nx))
    for _ in range(int(n_lines)):
        sign = 1 if r.random() < 0.5 else -1
        if r.random() < 0.5:
            lines[:, r.integers(nx)] *= 1 + sign * line_amplitude
        else:
            lines[r.integers(ny), :] *= 1 + sign * line_amplitude
    comp["lines"] = lines
    comp["pixels"] = np.clip(1 + pixel_std * r.standard_normal((ny, nx)), 0.05, None)
    g = np.ones((ny, nx))
    for c in comp.values():
        g = g * c
    return GainMap(gain=g / g.mean(), components=comp)


def real_gain_map(shape=None, *, path=None) -> np.ndarray:
    """The real per-pixel sCMOS gain map (gainsub.mat), mean 1, optionally cropped/tiled.

    The map (512 x 512, ADU per electron, median 2.18) holds a few negative and implausible values
    (min -2.7, max 7.2); they are clipped to [0.5, 2] x the median before normalising.

    Parameters
    ----------
    shape : (int, int), optional
        Crop (or tile, if larger) to this shape.
    path : path, optional
        The .mat file or its folder; default ``../shared/data/scmos_variance_gain_maps``.
    """
    from .noise import load_gain_map

    g = np.asarray(load_gain_map(path), dtype=np.float64)
    med = float(np.median(g))
    g = np.clip(g, 0.5 * med, 2.0 * med)
    if shape is not None:
        ny, nx = _shape2(shape)
        reps = (-(-ny // g.shape[0]), -(-nx // g.shape[1]))
        g = np.tile(g, reps)[:ny, :nx]
    return g / g.mean()


def specimen(shape, *, contrast: float = 0.3, correlation_px: float = 4.0, rng=None) -> np.ndarray:
    """A positive, mean-1 textured specimen: ``exp(contrast x z)`` of a smoothed Gaussian field.

    Parameters
    ----------
    shape : (int, int)
    contrast : float
        Std of the log-intensity (0 = flat illumination).
    correlation_px : float
        Gaussian smoothing of the field in pixels (feature size).
    """
    from scipy.ndimage import gaussian_filter

    ny, nx = _shape2(shape)
    check_range(contrast, "contrast", low=0, high=3)
    r = _rng(rng)
    if contrast == 0:
        return np.ones((ny, nx))
    z = gaussian_filter(r.standard_normal((ny, nx)), correlation_px, mode="wrap")
    z /= max(z.std(), 1e-12)
    s = np.exp(contrast * z)
    return s / s.mean()


@dataclass
class Movie:
    """A simulated movie and its truth.

    Attributes
    ----------
    frames : ndarray, shape (N, Y, X)
        uint16 ADU (integrating) or int32 counts (counting).
    gain : ndarray, float64, shape (Y, X)
        True gain, mean 1 (recorded = ideal x gain).
    mean_ideal : ndarray, float64, shape (Y, X)
        Mean ideal signal per frame (ADU or counts, before the gain).
    dose_e_per_px : ndarray, float64, shape (Y, X)
        Expected total electrons per pixel over the movie (including the gain in counting mode).
    params : dict
        Simulation settings (offset, read noise, conversion, dose, ...).
    """

    frames: np.ndarray
    gain: np.ndarray
    mean_ideal: np.ndarray
    dose_e_per_px: np.ndarray
    params: dict = field(default_factory=dict)


def _specimens(shape, n_frames, motion, contrast, correlation_px, r) -> Iterator[np.ndarray]:
    ny, nx = shape
    if motion not in MOTIONS:
        raise CamcorrError("unknown motion", argument="motion", expected=", ".join(MOTIONS),
                           received=repr(motion))
    if motion == "static":
        s = specimen(shape, contrast=contrast, correlation_px=correlation_px, rng=r)
        for _ in range(n_frames):
            yield s
    elif motion == "independent":
        for _ in range(n_frames):
            yield specimen(shape, contrast=contrast, correlation_px=correlation_px, rng=r)
    else:  # drift: a random walk over a larger field
        pad = 8 * n_frames
        big = specimen((ny + 2 * pad, nx + 2 * pad), contrast=contrast,
                       correlation_px=correlation_px, rng=r)
        y = x = pad
        for _ in range(n_frames):
            yield big[y:y + ny, x:x + nx]
            y = int(np.clip(y + r.integers(-4, 5), 0, 2 * pad))
            x = int(np.clip(x + r.integers(-4, 5), 0, 2 * pad))


def iter_integrating_frames(gain, n_frames: int, *, photons_per_px: float = 200.0,
                            adu_per_e: float = 2.0, read_noise_adu: float = 2.0,
                            offset: float = 100.0, contrast: float = 0.3,
                            correlation_px: float = 4.0, motion: str = "independent",
                            rng=None) -> Iterator[np.ndarray]:
    """Yield the uint16 frames of an integrating movie one at a time (:func:`integrating_movie`)."""
    g = np.asarray(gain, dtype=np.float64)
    r = _rng(rng)
    for s in _specimens(g.shape, n_frames, motion, contrast, correlation_px, r):
        e = r.poisson(photons_per_px * s)
        adu = offset + g * adu_per_e * e + read_noise_adu * r.standard_normal(g.shape)
        yield np.clip(np.rint(adu), 0, 65535).astype(np.uint16)


def integrating_movie(gain, n_frames: int, *, photons_per_px: float = 200.0,
                      adu_per_e: float = 2.0, read_noise_adu: float = 2.0, offset: float = 100.0,
                      contrast: float = 0.3, correlation_px: float = 4.0,
                      motion: str = "independent", rng=None) -> Movie:
    """Integrating-camera movie: ``offset + G x adu_per_e x Poisson(photons x specimen) + noise``.

    Parameters
    ----------
    gain : ndarray (Y, X)
        True gain (normalised to mean 1 here).
    n_frames : int
    photons_per_px : float
        Mean photo-electrons per pixel per frame.
    adu_per_e : float
        Mean conversion gain (ADU per electron).
    read_noise_adu : float
        Gaussian read noise (ADU).
    offset : float
        Camera offset (ADU).
    contrast, correlation_px : float
        Specimen texture (:func:`specimen`).
    motion : {'independent', 'drift', 'static'}
        How the specimen changes between frames.
    rng : numpy Generator or seed
    """
    check_range(n_frames, "n_frames", low=1)
    g = np.asarray(gain, dtype=np.float64)
    g = g / g.mean()
    r = _rng(rng)
    frames = np.stack(list(iter_integrating_frames(
        g, int(n_frames), photons_per_px=photons_per_px, adu_per_e=adu_per_e,
        read_noise_adu=read_noise_adu, offset=offset, contrast=contrast,
        correlation_px=correlation_px, motion=motion, rng=r)))
    mean_ideal = np.full(g.shape, photons_per_px * adu_per_e)
    return Movie(frames=frames, gain=g, mean_ideal=mean_ideal,
                 dose_e_per_px=np.full(g.shape, photons_per_px * n_frames),
                 params=dict(mode="integrating", offset=offset, read_noise_adu=read_noise_adu,
                             adu_per_e=adu_per_e, electrons_per_adu=1.0 / adu_per_e,
                             read_noise_e=read_noise_adu / adu_per_e,
                             photons_per_px=photons_per_px, n_frames=int(n_frames),
                             contrast=contrast, motion=motion))


def counting_movie(gain, n_frames: int, *, dose_per_frame: float = 1.0, contrast: float = 0.3,
                   correlation_px: float = 4.0, motion: str = "independent", rng=None) -> Movie:
    """Counting-detector movie: ``counts = Poisson(dose x specimen x G)`` (int32).

    Parameters
    ----------
    gain : ndarray (Y, X)
        True gain (detection efficiency; normalised to mean 1 here).
    n_frames : int
    dose_per_frame : float
        Mean electrons per pixel per frame (about 1 for counting movies).
    contrast, correlation_px, motion, rng
        As in :func:`integrating_movie`.
    """
    check_range(n_frames, "n_frames", low=1)
    check_range(dose_per_frame, "dose_per_frame", low=0, low_inclusive=False)
    g = np.asarray(gain, dtype=np.float64)
    g = g / g.mean()
    r = _rng(rng)
    frames = np.stack([r.poisson(dose_per_frame * s * g).astype(np.int32)
                       for s in _specimens(g.shape, int(n_frames), motion, contrast,
                                           correlation_px, r)])
    return Movie(frames=frames, gain=g, mean_ideal=np.full(g.shape, float(dose_per_frame)),
                 dose_e_per_px=dose_per_frame * n_frames * g,
                 params=dict(mode="counting", offset=0.0, electrons_per_adu=1.0, read_noise_e=0.0,
                             dose_per_frame=dose_per_frame, n_frames=int(n_frames),
                             contrast=contrast, motion=motion))


def r_squared(estimate, truth) -> float:
    """Coefficient of determination of `estimate` against `truth` (squared Pearson correlation)."""
    a = np.asarray(estimate, dtype=np.float64).ravel()
    b = np.asarray(truth, dtype=np.float64).ravel()
    if a.std() == 0 or b.std() == 0:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1] ** 2)


def gain_error_parts(estimate, truth) -> Dict[str, float]:
    """Where an estimate's error lies: column profile, row profile and 2D rest.

    With ``e`` and ``g`` the orthonormal 2D DCT-II of ``log(estimate)`` and ``log(truth)``
    (each normalised to mean 1), the error power ``(e - g)^2`` summed over the first row (the
    column profile), the first column (the row profile) and the rest (2D), each divided by the
    truth's power without the DC term (Parseval: the shares of the log gain's variance).

    Parameters
    ----------
    estimate, truth : ndarray, shape (Y, X)
        Positive images (any scale).

    Returns
    -------
    dict
        ``col``, ``row``, ``2d`` (float).
    """
    from scipy.fft import dctn

    e, g = (dctn(np.log(np.asarray(x, np.float64) / np.mean(x)), norm="ortho")
            for x in (estimate, truth))
    d = (e - g) ** 2
    total = float(np.sum(g * g) - g[0, 0] ** 2)
    if total <= 0:
        raise CamcorrError("the true gain is flat", argument="truth",
                           expected="a gain with structure", received="constant image")
    return {"col": float(d[0, 1:].sum()) / total, "row": float(d[1:, 0].sum()) / total,
            "2d": float(d[1:, 1:].sum()) / total}


def gain_oracle_r2(blind, pooled, truth, return_estimates: bool = False) -> Dict[str, float]:
    """R^2 against `truth` of oracles that know it and combine a blind estimate with a pooled mean.

    References for :func:`camcorr.gain.scales.combine_scales` (what a combination of the same two
    estimates could reach), not bounds in the strict sense.  With ``a`` and ``b`` the DCT-II
    coefficients of the errors of ``log(blind)`` and ``log(pooled)`` (each normalised to mean 1):

    * ``per_coefficient``: at every coefficient the weight ``a^2 / (a^2 + b^2)`` of the actual
      errors (it knows each coefficient's error, which no estimator does);
    * ``per_coefficient_shrunk``: the same, its 2D part (neither the column nor the row profile)
      then scaled towards the truth by the least-squares factor ``<f g> / <f^2>`` (clipped to
      [0, 1]; ``<.>`` the mean over the 9 x 9 neighbouring coefficients the method's own
      shrinkage uses, ``g`` the truth's coefficients).

    Parameters
    ----------
    blind, pooled, truth : ndarray, shape (Y, X)
        Positive images (any scale).

    return_estimates : bool
        Also return the two oracle estimates (``estimate_per_coefficient``,
        ``estimate_per_coefficient_shrunk``, arrays of shape (Y, X)).

    Returns
    -------
    dict
        ``per_coefficient``, ``per_coefficient_shrunk`` (float).
    """
    from scipy.fft import dctn, idctn
    from scipy.ndimage import uniform_filter

    from ..gain.scales import SHRINK_SMOOTH

    logs = [np.log(np.asarray(x, np.float64) / np.mean(x)) for x in (blind, pooled, truth)]
    s, p, g = (dctn(x, norm="ortho") for x in logs)
    a, b = s - g, p - g
    f = s + a * a / np.maximum(a * a + b * b, 1e-300) * (p - s)
    est = np.exp(idctn(f, norm="ortho"))
    out = {"per_coefficient": r_squared(est, truth)}
    if return_estimates:
        out["estimate_per_coefficient"] = est
    inner = (slice(1, None), slice(1, None))
    v = uniform_filter(f[inner] * g[inner], SHRINK_SMOOTH, mode="nearest") / np.maximum(
        uniform_filter(f[inner] * f[inner], SHRINK_SMOOTH, mode="nearest"), 1e-300)
    f[inner] *= np.clip(v, 0.0, 1.0)
    est = np.exp(idctn(f, norm="ortho"))
    out["per_coefficient_shrunk"] = r_squared(est, truth)
    if return_estimates:
        out["estimate_per_coefficient_shrunk"] = est
    return out
