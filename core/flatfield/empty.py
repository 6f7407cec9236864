"""Flat-field from empty tiles or from the empty top/bottom planes of tiles.

Model (after the flat-field correction task of the Fractal task package for mesoSPIM, whose profiles.npz follows BaSiCPy (Peng et al. 2017, doi:10.1038/ncomms14836)): an
empty plane is ``E(y, x) = D(y, x) + b * F(y, x) + noise``, with ``D`` the darkfield (ADU,
given: camera offset or a dark image), ``b`` the background level of that plane and ``F`` the
flat-field (mean 1).  We

1. sample planes with a seeded sampler (:func:`camcorr.flatfield.sources.sample_planes`);
2. subtract ``D`` and, by default, divide every plane by its own median (so planes of
   different background level, e.g. at different depths, weigh equally);
3. take the per-pixel median (or mean) over the planes (median: robust to the odd bright
   object);
4. smooth with a Gaussian of `sigma` pixels and divide by the mean (mean-1 flat-field);
   unless given, sigma and the statistic are chosen from the data: the planes are split in two
   alternate halves and the candidate whose flat-field from one half best flattens the other
   half wins (:mod:`camcorr.flatfield.smoothing`); the same split gives the held-out quality
   figures reported beside the in-sample ones;
5. baseline = 1st percentile of the corrected median image in ADU (one number: the background
   left after correction, as in the Fractal mesoSPIM flat-field task).

Streaming: the planes are read lazily (memory map or TIFF page) and the median is computed in
row blocks holding at most ``memory_limit`` bytes, so memory depends on the number of sampled
planes (200 by default) and the block size, not on the number of planes in the data.

The empty z-ranges follow the Fractal task's documented *text*: with ``z_levels = (low, high)`` the planes
``z < low`` and ``z > high`` are sampled (its code takes ``[Z - high, Z)`` for the top range,
which includes the sample; that bug is not reproduced).
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np

from ..errors import CamcorrError, Limits, describe
from ..io import native_byte_order
from ._kernels import bin_subtract, median_over_planes, plane_level
from ._kernels import unbin2d as _unbin2d
from .grid import ORDERS, check_grid, check_tile_numbers, corner_tiles
from .profiles import Profiles
from .quality import (combine_quality, flatfield_quality, mean_quality, smoothed_cv,
                      split_halves)
from .smoothing import (AUTO, MIN_SPECIMEN_SPREAD, QUANTILE_LEVELS, choose_smoothing, sigma_grid,
                        smooth_affine, smooth_normalise, specimen_spread_ratio)
from .sources import DEFAULT_MAX_PLANES, SAMPLING_LIMITS, TileSet, sample_planes

__all__ = ["estimate_from_empty_tiles", "estimate_from_z_ranges", "eligible_z",
           "check_z_levels", "flatfield_from_planes", "plane_statistic", "plane_statistics",
           "resolve_smoothing", "bin2d", "unbin2d", "LIMITS", "STATISTICS"]

STATISTICS = ("median", "mean", "quantiles")
"""Per-pixel statistics over the planes ('quantiles': the affine model of
:mod:`camcorr.flatfield.smoothing`, flat-field and additive term)."""
AUTO_STATISTICS = ("median", "mean")
"""Candidates of 'auto' on empty planes."""
AUTO_STATISTICS_SPECIMEN = ("median", "quantiles")
"""Candidates of 'auto' when every plane may hold specimen ('quantiles' only where the
intensity distribution's spread is specimen, not noise: see
:data:`~camcorr.flatfield.smoothing.MIN_SPECIMEN_SPREAD`)."""
#: Allowed smoothing, scalar darkfield (ADU), number of sampled planes and seed.
LIMITS = {"sigma": Limits(0.0, 200.0), "darkfield": Limits(low=0.0), **SAMPLING_LIMITS}
_DEFAULT_MEMORY = 512 * 2 ** 20


def check_z_levels(z_levels, n_planes: int, *, argument: str = "z-levels",
                   tile: str = "") -> Tuple[int, int]:
    """Validate ``(low, high)`` for tiles of `n_planes` planes; return them as ints.

    Raises
    ------
    CamcorrError
        Unless ``0 <= low < high <= n_planes - 1`` with at least one eligible plane.
    """
    try:
        low, high = (int(v) for v in z_levels)
        if (low, high) != tuple(z_levels):
            raise ValueError
    except (TypeError, ValueError):
        raise CamcorrError("z-levels must be two whole numbers", argument=argument,
                           expected="LOW HIGH, e.g. 50 600", received=repr(z_levels)) from None
    where = f" of {tile}" if tile else ""
    if low == high:
        raise CamcorrError("z-levels are equal", argument=argument,
                           expected="LOW < HIGH: planes z < LOW and z > HIGH are sampled",
                           received=f"{low} {high}")
    if low > high:
        raise CamcorrError("z-levels in the wrong order", argument=argument,
                           expected="LOW < HIGH: planes z < LOW and z > HIGH are sampled",
                           received=f"{low} {high}", fix=f"Write {high} {low}")
    if low < 0 or high > n_planes - 1:
        raise CamcorrError("z-levels out of range", argument=argument,
                           expected=f"0 <= LOW < HIGH <= {n_planes - 1} (the stack{where} has "
                                    f"{n_planes} planes, numbered from 0)",
                           received=f"{low} {high}")
    if low == 0 and high == n_planes - 1:
        raise CamcorrError("z-levels leave no plane to sample", argument=argument,
                           expected=f"LOW > 0 or HIGH < {n_planes - 1}", received=f"{low} {high}")
    return low, high


def eligible_z(n_planes: int, z_levels) -> list:
    """Planes ``z < low`` and ``z > high`` of a stack of `n_planes` (as one sorted sequence)."""
    low, high = check_z_levels(z_levels, n_planes)
    return list(range(0, low)) + list(range(high + 1, n_planes))


def _darkfield_map(darkfield, shape, argument="darkfield") -> np.ndarray:
    dark = np.asarray(darkfield if darkfield is not None else 0.0, dtype=np.float32)
    if dark.ndim == 0:
        LIMITS["darkfield"].check(float(dark), argument)
        return np.full(shape, float(dark), dtype=np.float32)
    if dark.shape != tuple(shape):
        raise CamcorrError("darkfield shape does not match the tiles", argument=argument,
                           expected=f"a number (ADU) or an image of shape {tuple(shape)}",
                           received=describe(dark))
    if not np.all(np.isfinite(dark)):
        raise CamcorrError("darkfield contains NaN or infinite values", argument=argument,
                           expected="finite values (ADU)", received="non-finite pixels")
    return dark


def _check_plane(plane: np.ndarray, tiles: TileSet, t: int, z: int):
    if plane.dtype.kind == "f" and not np.all(np.isfinite(plane)):
        n = int(np.count_nonzero(~np.isfinite(plane)))
        raise CamcorrError("tile contains NaN or infinite values",
                           argument=f"{tiles.argument}: {tiles.name(t)}, plane {z}",
                           expected="finite pixel values", received=f"{n} non-finite pixel(s)",
                           fix="Replace or mask the non-finite pixels before estimating")


def _plane_level(plane: np.ndarray, dark: np.ndarray) -> float:
    """Median of (plane - dark) on a regular subsample of about 8000 pixels (robust level;
    :func:`~camcorr.flatfield._kernels.plane_level`)."""
    return plane_level(plane, dark)


def bin2d(image: np.ndarray, b: int) -> np.ndarray:
    """Mean over b x b blocks (a partial last block is averaged over what it holds)."""
    if b <= 1:
        return image
    ny, nx = image.shape
    if ny % b == 0 and nx % b == 0:  # sums of strided slices: ~2 passes over the data
        rows = image[0::b].astype(np.float32)
        for i in range(1, b):
            rows += image[i::b]
        out = rows[:, 0::b].copy()
        for j in range(1, b):
            out += rows[:, j::b]
        out *= np.float32(1.0 / (b * b))
        return out
    rs = np.add.reduceat(np.add.reduceat(image.astype(np.float32), np.arange(0, ny, b), axis=0),
                         np.arange(0, nx, b), axis=1)
    cy = np.minimum(b, ny - np.arange(0, ny, b)).astype(np.float32)
    cx = np.minimum(b, nx - np.arange(0, nx, b)).astype(np.float32)
    return rs / cy[:, None] / cx[None, :]


def unbin2d(binned: np.ndarray, b: int, shape) -> np.ndarray:
    """Bilinear interpolation of b x b block values (at the block centres) back to `shape`
    (linear extrapolation beyond the outermost block centres; numba,
    :func:`camcorr.flatfield._kernels.unbin2d`)."""
    return _unbin2d(binned, b, shape)


def plane_statistic(tiles: TileSet, picks, dark: np.ndarray, *, statistic: str = "median",
                    normalize_planes: bool = True, memory_limit: int = _DEFAULT_MEMORY,
                    binning: int = 1):
    """Per-pixel median (or mean) of the chosen planes minus `dark`, streamed in row blocks.

    See :func:`plane_statistics` (this returns the one statistic asked for, and the levels).
    """
    stats, levels = plane_statistics(tiles, picks, dark, statistics=(statistic,),
                                     normalize_planes=normalize_planes,
                                     memory_limit=memory_limit, binning=binning)
    return stats[statistic], levels


def plane_statistics(tiles: TileSet, picks, dark: np.ndarray, *,
                     statistics: Sequence[str] = ("median",), normalize_planes: bool = True,
                     memory_limit: int = _DEFAULT_MEMORY, binning: int = 1):
    """Per-pixel median (or mean) of the chosen planes minus `dark`, streamed in row blocks.

    Parameters
    ----------
    binning : int
        Each plane is averaged over ``binning x binning`` blocks before the statistic (1: none).

    statistics : sequence of {'median', 'mean', 'quantiles'}
        Statistics computed in the same pass over the planes.

    Returns
    -------
    stats : dict of str -> ndarray (ceil(Y / binning), ceil(X / binning)) float32
        Each statistic, in ADU, or in units of each plane's median level when
        `normalize_planes`.  'quantiles' is (J, Yb, Xb): the
        :data:`~camcorr.flatfield.smoothing.QUANTILE_LEVELS` percentiles over the planes; with
        it comes 'quantiles_noise' (0-d): the pixel noise of the binned planes (robust standard
        deviation of horizontal neighbour differences / sqrt 2, median over planes and blocks).
    levels : ndarray (n,)
        Median level of each plane (ADU above `dark`); ones when not normalising.
    """
    ny, nx = tiles.shape
    bn = max(1, int(binning))
    nby, nbx = -(-ny // bn), -(-nx // bn)
    k = len(picks)
    if k == 0:
        raise CamcorrError("no planes to estimate from", argument="planes",
                           expected="at least one plane", received="none")
    brows = int(max(1, min(nby, memory_limit // max(1, k * nbx * 4))))
    rows = brows * bn  # full-resolution rows per block (a multiple of the binning)
    # pass 1 (only when the statistic is computed in several row blocks): plane levels
    levels = np.ones(k, dtype=np.float64)
    if normalize_planes and rows < ny:
        for j, (t, z) in enumerate(picks):
            plane = tiles.plane(t, z)
            _check_plane(plane, tiles, t, z)
            levels[j] = _plane_level(plane, dark)
    out = {name: np.empty(((len(QUANTILE_LEVELS),) if name == "quantiles" else ()) + (nby, nbx),
                          dtype=np.float32) for name in statistics}
    noise = []
    buf = np.empty((k, brows, nbx), dtype=np.float32)
    for r0 in range(0, ny, rows):
        r1 = min(ny, r0 + rows)
        b0, b1 = r0 // bn, -(-r1 // bn)
        b = buf[:, : b1 - b0] if b1 - b0 < brows else buf
        for j, (t, z) in enumerate(picks):
            plane = tiles.plane(t, z)
            if rows >= ny:  # one block: native byte order once for the level and the means
                plane = native_byte_order(plane)
            if rows >= ny or not normalize_planes:
                if r0 == 0:
                    _check_plane(plane, tiles, t, z)
                if normalize_planes:
                    levels[j] = _plane_level(plane, dark)
            if normalize_planes and not levels[j] > 0:
                raise CamcorrError("plane has no signal above the darkfield",
                                   argument=f"{tiles.argument}: {tiles.name(t)}, plane {z}",
                                   expected="a background level above the darkfield/offset",
                                   received=f"median level {levels[j]:.3g} ADU",
                                   fix="Check the darkfield/offset, or use "
                                       "normalize_planes=False")
            scale = 1.0 / levels[j] if normalize_planes else 1.0
            if bn > 1:  # fused subtract + block mean + scale (numba; numpy reference tested)
                bin_subtract(plane[r0:r1], dark[r0:r1], bn, scale, out=b[j])
            else:
                np.subtract(plane[r0:r1], dark[r0:r1], out=b[j], casting="unsafe")
                if normalize_planes:
                    b[j] *= np.float32(scale)
        for name, stat in out.items():
            if name == "quantiles":
                stat[:, b0:b1] = np.percentile(b, QUANTILE_LEVELS, axis=0)
                if b.shape[2] > 1:
                    noise.append(np.median(np.abs(np.diff(b, axis=2)).reshape(k, -1), axis=1))
            else:
                stat[b0:b1] = median_over_planes(b) if name == "median" else b.mean(axis=0)
    if "quantiles" in out:
        out["quantiles_noise"] = np.asarray(
            1.4826 * float(np.median(np.concatenate(noise))) / np.sqrt(2) if noise else 0.0)
    return out, levels


def resolve_smoothing(sigma, statistic, shape, *, sparse: bool = False):
    """Candidate sigmas and statistics for `sigma` / `statistic` ('auto'/None or fixed).

    Returns
    -------
    sigmas : tuple of float
        One fixed value, or :func:`~camcorr.flatfield.smoothing.sigma_grid` for 'auto'.
    statistics : tuple of str
        One fixed statistic, or :data:`AUTO_STATISTICS` for 'auto'
        (:data:`AUTO_STATISTICS_SPECIMEN` when `sparse`: every tile holds specimen, which the
        mean follows).
    """
    if sigma is None or (isinstance(sigma, str) and sigma == AUTO):
        sigmas = sigma_grid(shape)
    else:
        LIMITS["sigma"].check(sigma, "sigma")
        sigmas = (float(sigma),)
    if statistic is None or statistic == AUTO:
        statistics = AUTO_STATISTICS_SPECIMEN if sparse else AUTO_STATISTICS
    elif statistic in STATISTICS:
        statistics = (statistic,)
    else:
        raise CamcorrError("unknown statistic", argument="statistic",
                           expected="one of auto, " + ", ".join(STATISTICS),
                           received=repr(statistic))
    return sigmas, statistics


def flatfield_from_planes(tiles: TileSet, picks, *, darkfield=0.0, sigma=AUTO,
                          statistic: str = AUTO, normalize_planes: bool = True,
                          memory_limit: int = _DEFAULT_MEMORY, binning: Optional[int] = None,
                          sparse: bool = False):
    """Flat-field, baseline and quality from chosen planes (the common core of both scenarios).

    Parameters
    ----------
    tiles : TileSet
    picks : list of (tile_index, z)
        Planes to use (0-based), e.g. from :func:`~camcorr.flatfield.sources.sample_planes`.
    darkfield : float or ndarray (Y, X)
        ADU subtracted from every plane first.
    sigma : float or 'auto'
        Gaussian smoothing of the statistic, pixels (0: none).  'auto' (or None): the sigma of
        :func:`~camcorr.flatfield.smoothing.sigma_grid` with the lowest held-out
        non-uniformity (:func:`~camcorr.flatfield.smoothing.choose_smoothing`).
    statistic : {'auto', 'median', 'mean', 'quantiles'}
        Per-pixel statistic over the planes; 'auto' chooses between 'median' and 'mean' like
        sigma, or, when `sparse`, between 'median' and 'quantiles' (the affine model of
        :mod:`~camcorr.flatfield.smoothing`: flat-field and an additive term, which joins the
        returned darkfield; a candidate only when the planes' intensity distribution is
        specimen rather than noise, :data:`~camcorr.flatfield.smoothing.MIN_SPECIMEN_SPREAD`),
        with every candidate judged on the held-out half's whole distribution.
    normalize_planes : bool
        Divide each plane by its own median first.
    memory_limit : int
        Bytes of float32 plane data held at once (row blocks beyond that).
    binning : int, optional
        The statistic is taken over ``b x b`` block means, smoothed with ``sigma / b`` and
        interpolated back (bilinear).  Default ``b = max(1, floor(sigma))`` (the smallest
        candidate sigma for 'auto'): the box adds less than 5 % to the Gaussian's width, and
        the median costs b^2 times less.  1: full resolution.
    sparse : bool
        Every plane may hold specimen (all tiles of a sparse specimen): 'auto' never uses the
        mean.

    Returns
    -------
    flatfield : ndarray (Y, X) float32, mean 1
    darkfield : ndarray (Y, X) float32
        The given darkfield, plus the additive term when the statistic is 'quantiles'.
    baseline : float, ADU
    quality : dict
        :func:`~camcorr.flatfield.quality.combine_quality`: in-sample figures (the flat-field
        of all planes on the median of all planes), held-out ones (two-fold: the flat-field of
        one alternate half of the planes on the median of the other half, both ways, averaged;
        None with a single plane) and the over-fitting verdict.
    choice : dict
        ``sigma``, ``statistic`` and ``binning`` used, ``chosen`` (True when picked from the
        data), ``table`` (the held-out criterion of every candidate; empty when fixed) and
        ``specimen_spread`` (:func:`~camcorr.flatfield.smoothing.specimen_spread_ratio`, None
        unless 'quantiles' was considered).

    Notes
    -----
    With two or more planes the statistic is the plane-weighted average of the two halves'
    statistics (for 'mean' that is exactly the mean; for 'median' an average of two medians,
    as robust and as precise to within a few percent of the noise).
    """
    sigmas, statistics = resolve_smoothing(sigma, statistic, tiles.shape, sparse=sparse)
    dark = _darkfield_map(darkfield, tiles.shape)
    bn = max(1, int(min(sigmas))) if binning is None else int(binning)
    if bn < 1:
        raise CamcorrError("binning must be at least 1", argument="binning",
                           expected="an integer >= 1", received=str(binning))
    # the held-out target is always the robust background (median), whatever is estimated
    needed = tuple(dict.fromkeys(("median",) + statistics))
    kw = dict(statistics=needed, normalize_planes=normalize_planes, memory_limit=memory_limit,
              binning=bn)
    held_out = len(picks) >= 2
    table = []
    spread = cells = None
    models = {}  # (statistic, sigma) -> binned models of halves a and b, from the choice
    if held_out:
        half_a, half_b = split_halves(picks)
        stats_a, lev_a = plane_statistics(tiles, half_a, dark, **kw)
        stats_b, lev_b = plane_statistics(tiles, half_b, dark, **kw)
        wa = len(half_a) / len(picks)
        stats = {k: wa * stats_a[k] + (1 - wa) * stats_b[k] for k in needed}
        levels = np.concatenate([lev_a, lev_b])
        if "quantiles" in needed:
            spread = specimen_spread_ratio(
                stats["quantiles"], 0.5 * float(stats_a["quantiles_noise"]
                                                + stats_b["quantiles_noise"]))
            if len(statistics) > 1 and spread < MIN_SPECIMEN_SPREAD:
                # the deciles are noise, not specimen: their slope is not the flat-field
                statistics = tuple(k for k in statistics if k != "quantiles")
        if len(sigmas) * len(statistics) > 1:
            dist = "quantiles" in statistics
            sig, stat_name, table = choose_smoothing(
                {k: stats_a[k] for k in statistics}, {k: stats_b[k] for k in statistics},
                stats_a["median"], stats_b["median"], sigmas, bn, argument=tiles.argument,
                quantiles_a=stats_a["quantiles"] if dist else None,
                quantiles_b=stats_b["quantiles"] if dist else None, models=models)
            if dist and len(statistics) > 1:
                sig, stat_name, cells = _choose_by_cells(
                    tiles, (half_a, half_b), (stats_a, stats_b), table, dark, bn,
                    float(np.median(np.concatenate([lev_a, lev_b]))) if normalize_planes
                    else 1.0, (sig, stat_name))
        else:
            sig, stat_name = sigmas[0], statistics[0]
    else:
        stats, levels = plane_statistics(tiles, picks, dark, **kw)
        # one plane: nothing to validate on; the largest candidate is the safe choice
        sig, stat_name = max(sigmas), statistics[0]
        if stat_name == "quantiles":
            raise CamcorrError("the 'quantiles' statistic needs several planes",
                               argument="statistic", expected="two or more planes",
                               received="one plane", fix="Use statistic 'median'")
    level = float(np.median(levels)) if normalize_planes else 1.0

    def model(st):
        """(binned flat-field, binned additive term in ADU) of the chosen candidate."""
        if stat_name == "quantiles":
            f, z = smooth_affine(st["quantiles"], sig / bn, tiles.argument)
            return f, np.asarray(z, np.float64) * level
        return smooth_normalise(st[stat_name], sig / bn, tiles.argument), 0.0

    flat_binned, add_binned = model(stats)
    if bn > 1:
        full = unbin2d(flat_binned, bn, tiles.shape)
        flat = (full / full.mean()).astype(np.float32)
    else:
        flat = flat_binned
    if stat_name == "quantiles":
        # the additive term (flare, haze, an offset not given) joins the darkfield: the
        # corrected image is (I - darkfield - additive) / flat-field
        add = add_binned if bn == 1 else unbin2d(np.asarray(add_binned, np.float32), bn,
                                                 tiles.shape)
        dark = (dark + np.asarray(add, np.float32)).astype(np.float32)
    reference = stats["median" if stat_name == "quantiles" else stat_name].astype(np.float64) * level
    baseline = float(np.percentile((reference - add_binned) / flat_binned, 1))
    in_sample = flatfield_quality(stats["median"].astype(np.float64) * level, flat_binned,
                                  add_binned)
    if held_out:
        # the choice's models of the halves (additive terms there are in plane units: only
        # reused without one)
        cached = models.get((stat_name, float(sig))) if stat_name != "quantiles" else None
        (fa, za), (fb, zb) = cached or (model(stats_a), model(stats_b))
        ho = mean_quality(flatfield_quality(stats_b["median"].astype(np.float64) * level, fa, za),
                          flatfield_quality(stats_a["median"].astype(np.float64) * level, fb, zb))
        split = (f"two-fold: alternate halves of the {len(picks)} sampled planes, each "
                 "corrected with the flat-field of the other")
        floor = smoothed_cv(stats_b["median"].astype(np.float64)
                            / np.maximum(stats_a["median"], 1e-12)) / np.sqrt(2)
    else:
        ho, split, floor = None, "not possible with a single plane", None
    quality = combine_quality(in_sample, ho, split=split, noise_floor=floor)
    choice = {"sigma": float(sig), "statistic": stat_name, "binning": bn,
              "chosen": len(sigmas) * len(statistics) > 1 and held_out, "table": table,
              "specimen_spread": None if spread is None else float(spread),
              "cell_criterion": cells}
    quality["smoothing"] = {k: choice[k] for k in ("sigma", "statistic", "chosen")}
    return flat, dark, baseline, quality, choice


CELL_CRITERION_PLANES = 48
"""Most planes per half segmented by the cell criterion of :func:`_choose_by_cells`."""
SMOOTHER_WITHIN = 0.01
"""In :func:`_choose_by_cells`, each statistic takes the largest sigma whose held-out
criterion is within this fraction of its best: the smoothest flat-field that predicts the
held-out half as well (the 'one standard error' rule of cross-validation, Breiman L. et al.
(1984) Classification and Regression Trees, ch. 3.4.3, doi:10.1201/9781315139470).  On
CellProfiler's example images the 'quantiles' criterion is 0.05491 at sigma 16 and 0.05522 at
32, where the flat-field has less cell-scale structure and the held-out background CV is 0.041
instead of 0.052."""


def _full_model(st: dict, name: str, sigma: float, bn: int, shape, level: float, argument: str):
    """Full-resolution (flat-field, additive term in ADU) of candidate `name` at `sigma` px."""
    if name == "quantiles":
        f, z = smooth_affine(st["quantiles"], sigma / bn, argument)
        z = np.asarray(z, np.float32) * np.float32(level)
    else:
        f, z = smooth_normalise(st[name], sigma / bn, argument), None
    if bn > 1:
        f = unbin2d(f, bn, shape)
        z = None if z is None else unbin2d(z, bn, shape)
    return f / f.mean(), (0.0 if z is None else z)


def _choose_by_cells(tiles: TileSet, halves, stats, table, dark, bn, level, fallback):
    """Between the statistics (best sigma of each by the table, the smoothest within
    :data:`SMOOTHER_WITHIN` of it), the one whose flat-field leaves the held-out half's cells
    least dependent on position.

    Every held-out plane is corrected and segmented as a user would
    (:func:`~camcorr.flatfield.quality.cell_position_dependence`, Otsu); the criterion is the
    CV of the fitted map of cell intensity against position, averaged over both directions.

    Returns
    -------
    sigma, statistic, cells : float, str, dict
        ``cells`` maps each statistic to its sigma and held-out cell CV (None when no cells
        were found: then `fallback`, the distribution criterion's choice, is kept).
    """
    from .quality import cell_position_dependence

    lowest = {}
    for row in table:
        if row["criterion"] is not None:
            name = row["statistic"]
            lowest[name] = min(lowest.get(name, np.inf), row["criterion"])
    best = {}
    for row in table:
        name = row["statistic"]
        if row["criterion"] is not None and \
                row["criterion"] <= lowest[name] * (1 + SMOOTHER_WITHIN) and \
                row["sigma"] >= best.get(name, (-1.0, None))[0]:
            best[name] = (row["sigma"], row["criterion"])
    out = {}
    for name, (s, _) in best.items():
        cvs = []
        try:
            for k in (0, 1):
                flat, add = _full_model(stats[k], name, s, bn, tiles.shape, level, tiles.argument)
                held = halves[1 - k]
                step = max(1, -(-len(held) // CELL_CRITERION_PLANES))
                planes = (tiles.plane(t, z) for t, z in held[::step])
                cvs.append(cell_position_dependence(planes, flat, dark + add)["cv"])
        except CamcorrError:
            return fallback[0], fallback[1], None
        out[name] = {"sigma": float(s), "heldout_cell_cv": float(np.mean(cvs))}
    if not out:
        return fallback[0], fallback[1], None
    name = min(out, key=lambda k: out[k]["heldout_cell_cv"])
    return out[name]["sigma"], name, out


def _choice_meta(choice: dict) -> dict:
    """Profiles.meta entries of the smoothing used (and how it was chosen)."""
    return {"sigma": choice["sigma"], "statistic": choice["statistic"],
            "binning": choice["binning"], "smoothing_chosen": bool(choice["chosen"]),
            "smoothing_table": choice["table"], "specimen_spread": choice.get("specimen_spread"),
            "cell_criterion": choice.get("cell_criterion")}


def _open(tiles, numbers):
    """TileSet opening only the tiles `numbers` (1-based)."""
    if isinstance(tiles, TileSet):
        return tiles
    return TileSet(tiles, argument="tiles", only=[n - 1 for n in numbers])


def estimate_from_empty_tiles(tiles, empty_tiles: Optional[Sequence[int]] = None, *,
                              darkfield=0.0, sigma=AUTO, n_planes: Optional[int] = None,
                              seed: int = 0, max_planes: int = DEFAULT_MAX_PLANES,
                              statistic: str = AUTO, normalize_planes: bool = True,
                              memory_limit: int = _DEFAULT_MEMORY,
                              binning: Optional[int] = None) -> Profiles:
    """Flat-field from whole empty tiles.

    Parameters
    ----------
    tiles : sequence of array_like or path-like, or TileSet
        All tiles, in acquisition order; each 2D (Y, X) or 3D (Z, Y, X); ADU.
    empty_tiles : sequence of int, optional
        1-based numbers of the empty tiles (in the order of `tiles`); default: every tile
        (e.g. the median of all images of a sparse specimen).
    darkfield : float or ndarray (Y, X)
        Darkfield in ADU (camera offset, or a dark image), subtracted before the statistic and
        stored in the profiles.  Without it the offset is folded into the flat-field.
    sigma : float or 'auto'
        Gaussian smoothing, pixels; 'auto' (default): chosen from the data by held-out
        validation (see :func:`flatfield_from_planes`).
    n_planes : int, optional
        Exactly this many planes (error if fewer exist); default: all, capped at `max_planes`.
    seed : int
        Seed of the plane sampler.
    max_planes : int
        Cap when `n_planes` is not given.
    statistic : {'auto', 'median', 'mean', 'quantiles'}
        'auto' (default): chosen with sigma from held-out validation; 'median' or 'quantiles'
        (flat-field and additive term from each pixel's intensity distribution; the additive
        term joins the darkfield) when `empty_tiles` is not given (every tile holds specimen,
        which the mean follows); see :func:`flatfield_from_planes`.
    normalize_planes : bool
        Divide each plane by its own median before the statistic.
    memory_limit : int
        Bytes of plane data held at once.
    binning : int, optional
        Block size of the statistic (default ``max(1, floor(sigma))``; 1: full resolution);
        see :func:`flatfield_from_planes`.

    Returns
    -------
    Profiles
        ``source='empty-tiles'``; ``meta`` lists the tiles and planes used and the smoothing
        (chosen or given); ``quality`` holds in-sample and held-out figures
        (:func:`~camcorr.flatfield.quality.combine_quality`).

    Raises
    ------
    CamcorrError
        Tile numbers zero, out of range or repeated; fewer planes than `n_planes`; NaNs.

    Examples
    --------
    >>> import numpy as np
    >>> yy, xx = np.mgrid[:64, :64]
    >>> flat = 1 - 0.15 * ((yy - 31.5) ** 2 + (xx - 31.5) ** 2) / 31.5 ** 2
    >>> rng = np.random.default_rng(0)
    >>> tiles = [rng.poisson(500 * flat).astype(np.uint16) for _ in range(6)]  # empty tiles
    >>> prof = estimate_from_empty_tiles(tiles, None, sigma=4)
    >>> prof.flatfield.shape, round(float(prof.flatfield.mean()), 3)
    ((64, 64), 1.0)
    >>> from camcorr.flatfield import corner_centre_ratio
    >>> round(corner_centre_ratio(prof.flatfield), 2)  # the true flat-field: 0.76
    0.76
    """
    n_tiles = len(TileSet.as_list(tiles))
    numbers = (tuple(range(1, n_tiles + 1)) if empty_tiles is None or len(empty_tiles) == 0
               else check_tile_numbers(empty_tiles, n_tiles, argument="empty tiles"))
    seed = int(seed)
    ts = _open(tiles, numbers)
    try:
        candidates = [(n - 1, range(ts.n_planes[n - 1])) for n in numbers]
        picks = sample_planes(candidates, n_planes, seed=seed, max_planes=max_planes)
        # no tile listed: every tile holds (sparse) specimen -> robust statistic only
        sparse = empty_tiles is None or len(empty_tiles) == 0
        flat, dark, baseline, quality, choice = flatfield_from_planes(
            ts, picks, darkfield=darkfield, sigma=sigma, statistic=statistic,
            normalize_planes=normalize_planes, memory_limit=memory_limit, binning=binning,
            sparse=sparse)
    finally:
        ts.close()
    meta = {"tiles_used": list(numbers), "n_planes_used": len(picks), "seed": seed,
            "normalize_planes": bool(normalize_planes), **_choice_meta(choice)}
    return Profiles(flatfield=flat, darkfield=dark, baseline=baseline, source="empty-tiles",
                    quality=quality, meta=meta)


def estimate_from_z_ranges(tiles, z_levels, *, empty_tiles: Optional[Sequence[int]] = None,
                           grid: Optional[Tuple[int, int]] = None, order: str = "inverted-n",
                           darkfield=0.0, sigma=AUTO, n_planes: Optional[int] = None,
                           seed: int = 0, max_planes: int = DEFAULT_MAX_PLANES,
                           statistic: str = AUTO, normalize_planes: bool = True,
                           memory_limit: int = _DEFAULT_MEMORY,
                           binning: Optional[int] = None) -> Profiles:
    """Flat-field from the empty planes at the bottom and top of 3D tiles.

    Parameters
    ----------
    tiles : sequence of array_like or path-like, or TileSet
        All tiles in acquisition order, 3D (Z, Y, X), ADU.
    z_levels : (int, int)
        ``(low, high)``: planes ``z < low`` and ``z > high`` (0-based) are empty and sampled.
        ``0 <= low < high <= Z - 1`` for every tile used.
    empty_tiles : sequence of int, optional
        1-based tiles to sample from.  Default: the four corner tiles of `grid` (in `order`),
        or every tile when no grid is given.
    grid : (rows, cols), optional
        Mosaic geometry; ``rows * cols`` must equal the number of tiles.
    order : {'inverted-n', 'serpentine', 'row-major'}
        Tile order on the grid (see :mod:`camcorr.flatfield.grid`).
    darkfield, sigma, n_planes, seed, max_planes, statistic, normalize_planes, memory_limit, binning
        As in :func:`estimate_from_empty_tiles`.

    Returns
    -------
    Profiles
        ``source='z-range'``.

    Raises
    ------
    CamcorrError
        z-levels equal, reversed or out of range; 2D tiles; bad tile numbers or grid; fewer
        planes than requested; NaNs.

    Examples
    --------
    >>> import numpy as np
    >>> ramp = np.linspace(0.8, 1.2, 64)[None, :] * np.ones((64, 1))  # brighter to the right
    >>> stacks = [np.random.default_rng(t).poisson(500 * ramp, (4, 64, 64)) for t in range(3)]
    >>> for s in stacks:
    ...     s[1:3, 20:40, 20:40] += 2000  # the specimen, in planes 1-2 of every tile
    >>> prof = estimate_from_z_ranges(stacks, (1, 2), sigma=4)  # planes 0 and 3 are empty
    >>> right_over_left = lambda f: round(float(f[:, -8:].mean() / f[:, :8].mean()), 2)
    >>> prof.source, right_over_left(ramp), right_over_left(prof.flatfield)
    ('z-range', 1.43, 1.43)
    """
    if order not in ORDERS:
        raise CamcorrError("unknown tile order", argument="order",
                           expected="one of " + ", ".join(ORDERS), received=repr(order))
    n_tiles = len(TileSet.as_list(tiles))
    if empty_tiles is not None and len(empty_tiles) > 0:
        numbers = check_tile_numbers(empty_tiles, n_tiles, argument="empty tiles")
    elif grid is not None:
        r, c = check_grid(grid[0], grid[1], n_tiles)
        numbers = corner_tiles(r, c, order)
    else:
        numbers = tuple(range(1, n_tiles + 1))
    seed = int(seed)
    ts = _open(tiles, numbers)
    try:
        candidates = []
        for n in numbers:
            if ts.ndims[n - 1] != 3:
                raise CamcorrError("z-levels need 3D tiles", argument=f"tiles: {ts.name(n - 1)}",
                                   expected="a (Z, Y, X) stack", received="a 2D image",
                                   fix="Use empty tiles instead of z-levels for 2D tiles")
            low, high = check_z_levels(z_levels, ts.n_planes[n - 1], tile=ts.name(n - 1))
            candidates.append((n - 1, list(range(0, low)) + list(range(high + 1,
                                                                       ts.n_planes[n - 1]))))
        picks = sample_planes(candidates, n_planes, seed=seed, max_planes=max_planes)
        flat, dark, baseline, quality, choice = flatfield_from_planes(
            ts, picks, darkfield=darkfield, sigma=sigma, statistic=statistic,
            normalize_planes=normalize_planes, memory_limit=memory_limit, binning=binning)
    finally:
        ts.close()
    meta = {"tiles_used": list(numbers), "z_levels": [int(v) for v in z_levels],
            "grid": list(grid) if grid is not None else None, "order": order,
            "n_planes_used": len(picks), "seed": seed,
            "normalize_planes": bool(normalize_planes), **_choice_meta(choice)}
    return Profiles(flatfield=flat, darkfield=dark, baseline=baseline, source="z-range",
                    quality=quality, meta=meta)
