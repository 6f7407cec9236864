"""Flat-field estimation (measured profiles, empty tiles, empty z-ranges, BaSiCPy) and application.

Three scenarios (after the flat-field correction task of the Fractal task package for mesoSPIM, whose profiles.npz follows BaSiCPy (Peng et al. 2017, doi:10.1038/ncomms14836)):

1. a measured flat-field: :func:`load_profiles` reads ``<models_folder>/<channel>/profiles.npz``;
2. empty data: :func:`estimate_from_empty_tiles` (whole empty tiles) or
   :func:`estimate_from_z_ranges` (empty planes below/above the specimen);
3. neither: :func:`estimate_basicpy` fits BaSiCPy 2.0 (imported lazily).

:func:`estimate_flatfield` picks the scenario from what is given.  :func:`apply_flatfield`
corrects a tile; :func:`flatfield_quality` measures the residual non-uniformity; every estimate
carries it in ``Profiles.quality``, in-sample and held-out (estimated on one half of the inputs,
measured on the other; :func:`combine_quality`), with an over-fitting warning when they
disagree.  The smoothing (sigma) and statistic are chosen by the same held-out split unless
given (:mod:`camcorr.flatfield.smoothing`).  :func:`cell_position_dependence` measures what
users see: how a cell's intensity depends on its position in the field.  BaSiCPy and torch are
only imported by the BaSiCPy path.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

from ..errors import CamcorrError
from .apply import apply_flatfield, resample_profiles
from .basic import autosegment_weights, check_working_size, estimate_basicpy
from .empty import (LIMITS, STATISTICS, check_z_levels, estimate_from_empty_tiles,
                    estimate_from_z_ranges, flatfield_from_planes, plane_statistic)
from .grid import ORDERS, check_tile_numbers, corner_tiles, tile_grid
from .profiles import Profiles, check_profiles, load_profiles, read_profiles, save_profiles
from .quality import (cell_position_dependence, combine_quality, corner_centre_ratio,
                      flatfield_quality, format_quality, segment_cells, smoothed_cv)
from .smoothing import AUTO, choose_smoothing, sigma_grid
from .sources import TileSet, sample_planes

__all__ = [
    "Profiles", "load_profiles", "read_profiles", "save_profiles", "check_profiles",
    "estimate_from_empty_tiles", "estimate_from_z_ranges", "estimate_basicpy",
    "estimate_flatfield", "choose_method", "apply_flatfield", "resample_profiles",
    "corner_tiles", "tile_grid", "check_tile_numbers", "check_z_levels", "ORDERS", "METHODS",
    "flatfield_quality", "corner_centre_ratio", "smoothed_cv", "TileSet", "sample_planes",
    "autosegment_weights", "check_working_size", "flatfield_from_planes", "AUTO",
    "combine_quality", "format_quality", "cell_position_dependence", "segment_cells",
    "choose_smoothing", "sigma_grid", "STATISTICS", "LIMITS",
]

METHODS = ("auto", "measured", "empty-tiles", "z-range", "basicpy")


def choose_method(method: str = "auto", *, models_folder=None, empty_tiles=None,
                  z_levels=None) -> str:
    """The scenario that `method` ('auto' or explicit) resolves to.

    'auto': a models folder -> 'measured'; z-levels -> 'z-range'; empty tiles -> 'empty-tiles';
    nothing -> 'basicpy' (the rule of the Fractal mesoSPIM flat-field task).
    """
    if method not in METHODS:
        raise CamcorrError("unknown method", argument="method",
                           expected="one of " + ", ".join(METHODS), received=repr(method))
    if method != "auto":
        return method
    if models_folder:
        return "measured"
    if z_levels is not None:
        return "z-range"
    if empty_tiles:
        return "empty-tiles"
    return "basicpy"


def estimate_flatfield(tiles=None, *, method: str = "auto",
                       empty_tiles: Optional[Sequence[int]] = None,
                       z_levels: Optional[Tuple[int, int]] = None,
                       grid: Optional[Tuple[int, int]] = None, order: str = "inverted-n",
                       models_folder=None, channel: Optional[str] = None, darkfield=0.0,
                       sigma=AUTO, statistic: str = AUTO,
                       n_planes: Optional[int] = None, seed: int = 0,
                       basicpy_options: Optional[dict] = None) -> Profiles:
    """Profiles for one channel, from whichever source is given (the three scenarios of the module
    docstring).

    Parameters
    ----------
    tiles : sequence of array_like or path-like, optional
        All tiles in acquisition order (2D or 3D, ADU); optional for 'measured' (then used
        only for the quality number).
    method : {'auto', 'measured', 'empty-tiles', 'z-range', 'basicpy'}
        See :func:`choose_method`.  'empty-tiles' without `empty_tiles` uses every tile.
    empty_tiles, z_levels, grid, order, darkfield, sigma, statistic, n_planes, seed
        See :func:`estimate_from_empty_tiles` and :func:`estimate_from_z_ranges`; `sigma`
        and `statistic` default to 'auto' (chosen by held-out validation).
    models_folder, channel
        See :func:`load_profiles`.
    basicpy_options : dict, optional
        Keyword arguments of :func:`estimate_basicpy`.

    Returns
    -------
    Profiles
        With ``quality`` filled whenever tiles are given: in-sample and held-out figures and
        the over-fitting verdict (:func:`combine_quality`).

    Examples
    --------
    >>> import numpy as np
    >>> profile = 1 - 0.2 * np.linspace(-1, 1, 64) ** 2
    >>> shading = np.outer(profile, profile)  # darker towards the corners
    >>> tiles = [np.random.default_rng(i).poisson(800 * shading) for i in range(6)]
    >>> prof = estimate_flatfield(tiles, empty_tiles=[1, 2, 3, 4, 5, 6], sigma=4)
    >>> prof.source, round(corner_centre_ratio(shading), 2)
    ('empty-tiles', 0.71)
    >>> round(corner_centre_ratio(prof.flatfield), 2)  # the estimate has the same shading
    0.71
    """
    m = choose_method(method, models_folder=models_folder, empty_tiles=empty_tiles,
                      z_levels=z_levels)
    if grid is not None and tiles is not None:
        from .grid import check_grid

        check_grid(grid[0], grid[1], len(TileSet.as_list(tiles)))
    if m != "measured" and tiles is None:
        raise CamcorrError("no tiles given", argument="tiles",
                           expected=f"the tiles to estimate the flat-field from ({m})",
                           received="none")
    if m == "measured":
        if not models_folder:
            raise CamcorrError("no models folder given", argument="models folder",
                               expected="a folder with <channel>/profiles.npz", received="none")
        profiles = load_profiles(models_folder, channel)
        if tiles is not None and len(tiles) > 0:
            ts = TileSet(tiles)
            try:
                picks = sample_planes([(i, range(n)) for i, n in enumerate(ts.n_planes)],
                                      n_planes, seed=seed)
                if profiles.shape[-2:] != ts.shape:
                    raise CamcorrError(f"measured flat-field of channel '{channel}' and the "
                                       "tiles differ in size", argument="models folder",
                                       expected=f"tiles of (Y, X) = {profiles.shape[-2:]}",
                                       received=f"tiles of (Y, X) = {ts.shape}",
                                       fix="Use the profiles measured for this camera and ROI")
                if profiles.flatfield.ndim == 2:
                    ref, _ = plane_statistic(ts, picks, profiles.darkfield,
                                             normalize_planes=False)
                    q = flatfield_quality(ref, profiles.flatfield, 0.0)
                    # the measured profile was not estimated from these tiles: every figure
                    # on them is already held-out
                    profiles.quality = combine_quality(
                        q, q, split="none needed: the measured flat-field was not estimated "
                                    "from these tiles")
            finally:
                ts.close()
        return profiles
    if m == "empty-tiles":
        return estimate_from_empty_tiles(tiles, empty_tiles, darkfield=darkfield, sigma=sigma,
                                         statistic=statistic, n_planes=n_planes, seed=seed)
    if m == "z-range":
        if z_levels is None:
            raise CamcorrError("no z-levels given", argument="z-levels",
                               expected="LOW HIGH (planes z < LOW and z > HIGH are empty)",
                               received="none")
        return estimate_from_z_ranges(tiles, z_levels, empty_tiles=empty_tiles, grid=grid,
                                      order=order, darkfield=darkfield, sigma=sigma,
                                      statistic=statistic, n_planes=n_planes, seed=seed)
    return estimate_basicpy(tiles, darkfield=darkfield, n_planes=n_planes, seed=seed,
                            **(basicpy_options or {}))
