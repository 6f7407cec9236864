"""Multi-tile mosaics with a known flat-field, darkfield and specimen (flat-field ground truth).

Forward model of one plane of one tile, in ADU (gain 1 ADU per photoelectron)::

    I(y, x) = D(y, x) + Poisson(F(y, x) * (b_z + S(y, x))) + N(0, read_noise^2)

* ``F``: flat-field, mean 1: a radial vignetting fall-off from a slightly off-centre optical
  axis plus a weak linear tilt (corner/centre about 0.6-0.7 with the defaults);
* ``D``: darkfield, a camera offset plus a smooth column gradient and a weak row pattern;
* ``b_z``: background photons of plane z (varies by +-15 % with depth in 3D tiles, as haze
  does in light-sheet stacks);
* ``S``: the specimen, a textured elliptical "section" drawn on the whole mosaic; tiles whose
  field of view misses it are empty; in 3D tiles it only occupies the planes
  ``low <= z <= high`` of `z_levels`, so ``z < low`` and ``z > high`` are empty.

Tiles are returned in acquisition order (numbered from 1), laid out on the grid in the given
order (:func:`camcorr.flatfield.grid.tile_grid`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Tuple

import numpy as np
from scipy import ndimage as ndi

__all__ = ["SimulatedTiles", "make_flatfield", "make_darkfield", "simulate_tiles",
           "SimulatedCells", "simulate_cells"]


@dataclass
class SimulatedTiles:
    """Simulated mosaic and its ground truth.

    Attributes
    ----------
    tiles : list of ndarray
        Tiles in acquisition order, (Y, X) or (Z, Y, X), `dtype`, ADU.
    flatfield : ndarray (Y, X) float64
        True flat-field, mean 1.
    darkfield : ndarray (Y, X) float64
        True darkfield, ADU.
    specimen : list of ndarray (Y, X)
        Specimen photons of each tile (before the flat-field).
    empty_tiles : tuple of int
        1-based numbers of the tiles without specimen.
    grid : (int, int)
        (rows, cols).
    order : str
        Tile order on the grid.
    z_levels : (int, int) or None
        ``(low, high)`` for 3D tiles: the specimen occupies ``low <= z <= high``.
    background : ndarray
        Background photons of each plane (length Z, or 1 for 2D tiles).
    """

    tiles: List[np.ndarray]
    flatfield: np.ndarray
    darkfield: np.ndarray
    specimen: List[np.ndarray]
    empty_tiles: Tuple[int, ...]
    grid: Tuple[int, int]
    order: str
    z_levels: Optional[Tuple[int, int]]
    background: np.ndarray = field(default_factory=lambda: np.ones(1))


def make_flatfield(shape=(128, 128), *, vignetting: float = 0.45, tilt: float = 0.06,
                   centre=(0.45, 0.55)) -> np.ndarray:
    """A smooth flat-field (mean 1): quadratic radial fall-off plus a linear tilt.

    Parameters
    ----------
    shape : (int, int)
    vignetting : float
        Relative fall-off at the image corner distance (r = 1 at the corner of a centred axis).
    tilt : float
        Relative change across the width.
    centre : (float, float)
        Optical axis as a fraction of (height, width).
    """
    ny, nx = shape
    y, x = np.mgrid[0:ny, 0:nx].astype(np.float64)
    cy, cx = centre[0] * (ny - 1), centre[1] * (nx - 1)
    r2 = ((y - cy) / (ny / 2)) ** 2 + ((x - cx) / (nx / 2)) ** 2
    f = (1.0 - vignetting * r2 / 2.0) * (1.0 + tilt * (x / (nx - 1) - 0.5))
    return f / f.mean()


def make_darkfield(shape=(128, 128), *, offset: float = 100.0, amplitude: float = 6.0,
                   seed: int = 0) -> np.ndarray:
    """A darkfield in ADU: offset + column gradient + weak fixed row pattern."""
    ny, nx = shape
    rng = np.random.default_rng(seed + 7)
    x = np.linspace(-1, 1, nx)
    rows = ndi.gaussian_filter1d(rng.normal(0, 1, ny), 2)
    rows = rows / (np.abs(rows).max() + 1e-12)
    return offset + amplitude * (x[None, :] + 0.3 * rows[:, None])


def _specimen_canvas(height, width, rng, level, fill):
    """Textured specimen (photons) on the whole mosaic canvas."""
    tex = rng.normal(0, 1, (height, width))
    tex = ndi.gaussian_filter(tex, 3) + 0.5 * ndi.gaussian_filter(rng.normal(0, 1, (height, width)), 1)
    tex = np.exp(1.2 * tex / tex.std())
    tex = tex / tex.mean()
    if fill:
        mask = np.ones((height, width))
    else:
        y, x = np.mgrid[0:height, 0:width].astype(np.float64)
        cy, cx = (height - 1) / 2, (width - 1) / 2
        r = np.sqrt(((y - cy) / (0.36 * height)) ** 2 + ((x - cx) / (0.36 * width)) ** 2)
        mask = ndi.gaussian_filter((r < 1).astype(np.float64), 2)
    return level * tex * mask


def simulate_tiles(rows: int = 3, cols: int = 4, shape=(128, 128), *, n_z: Optional[int] = None,
                   z_levels: Optional[Tuple[int, int]] = None, order: str = "inverted-n",
                   background: float = 300.0, specimen_level: float = 1500.0,
                   offset: float = 100.0, dark_amplitude: float = 6.0,
                   vignetting: float = 0.45, read_noise: float = 2.0, fill: bool = False,
                   dtype=np.uint16, seed: int = 0) -> SimulatedTiles:
    """Simulate a ``rows x cols`` mosaic with known flat-field and darkfield.

    Parameters
    ----------
    rows, cols : int
        Grid size.
    shape : (int, int)
        (Y, X) of every tile.
    n_z : int, optional
        Planes per tile (3D tiles); None gives 2D tiles.
    z_levels : (int, int), optional
        Specimen planes ``low <= z <= high`` in 3D tiles; default ``(n_z // 4, 3 * n_z // 4)``.
    order : {'inverted-n', 'serpentine', 'row-major'}
        Tile order on the grid.
    background, specimen_level : float
        Photons per pixel of the background and mean photons of the specimen.
    offset, dark_amplitude : float
        Darkfield offset and spatial variation, ADU.
    vignetting : float
        Flat-field fall-off (see :func:`make_flatfield`).
    read_noise : float
        Gaussian read noise, ADU rms.
    fill : bool
        Specimen covers the whole mosaic (no empty tile; for the BaSiCPy scenario).
    dtype : dtype
        Output dtype (values clipped to its range).
    seed : int

    Returns
    -------
    SimulatedTiles
    """
    from ..flatfield.grid import tile_grid  # local: keeps simulate importable on its own

    rng = np.random.default_rng(seed)
    ny, nx = shape
    grid = tile_grid(rows, cols, order)
    flat = make_flatfield(shape, vignetting=vignetting)
    dark = make_darkfield(shape, offset=offset, amplitude=dark_amplitude, seed=seed)
    canvas = _specimen_canvas(rows * ny, cols * nx, rng, specimen_level, fill)
    if n_z is not None and z_levels is None:
        z_levels = (n_z // 4, 3 * n_z // 4)
    nz = 1 if n_z is None else int(n_z)
    zs = np.arange(nz)
    bg = background * (1.0 + 0.15 * np.sin(2 * np.pi * zs / max(nz, 2))) if n_z else \
        np.array([background], dtype=np.float64)
    info = np.iinfo(dtype) if np.dtype(dtype).kind in "ui" else None
    tiles, specimen, empty = [], [], []
    for number in range(1, rows * cols + 1):
        r, c = (int(v[0]) for v in np.nonzero(grid == number))
        spec = canvas[r * ny:(r + 1) * ny, c * nx:(c + 1) * nx]
        if spec.max() < 1e-3 * specimen_level:
            spec = np.zeros_like(spec)
            empty.append(number)
        specimen.append(spec)
        planes = []
        for z in range(nz):
            inside = n_z is None or (z_levels[0] <= z <= z_levels[1])
            photons = flat * (bg[z] + (spec if inside else 0.0))
            img = dark + rng.poisson(photons) + rng.normal(0, read_noise, shape)
            if info is not None:
                img = np.clip(np.rint(img), info.min, info.max)
            planes.append(img.astype(dtype))
        tiles.append(planes[0] if n_z is None else np.stack(planes))
    return SimulatedTiles(tiles=tiles, flatfield=flat, darkfield=dark, specimen=specimen,
                          empty_tiles=tuple(empty), grid=(rows, cols), order=order,
                          z_levels=tuple(z_levels) if z_levels is not None else None,
                          background=bg)


@dataclass
class SimulatedCells:
    """Images of a sparse cell specimen in every field, with known flat-field and cells.

    Attributes
    ----------
    images : list of ndarray (Y, X)
        `dtype`, ADU.
    flatfield : ndarray (Y, X) float64
        True flat-field, mean 1.
    darkfield : ndarray (Y, X) float64
        True darkfield, ADU.
    cells : list of ndarray (n_i, 4)
        Per image: centre y, centre x, radius (pixels) and brightness (photons above the
        background, before the flat-field) of every cell.
    coverage : float
        Mean fraction of the field covered by cells.
    """

    images: List[np.ndarray]
    flatfield: np.ndarray
    darkfield: np.ndarray
    cells: List[np.ndarray]
    coverage: float


def simulate_cells(n_images: int = 24, shape=(128, 128), *, coverage: float = 0.1,
                   radius: Tuple[float, float] = (4.0, 9.0), brightness: Tuple[float, float] = (
                       600.0, 3000.0), background: float = 300.0, offset: float = 100.0,
                   dark_amplitude: float = 6.0, vignetting: float = 0.45,
                   read_noise: float = 2.0, level_spread: float = 0.3, flare: float = 0.0,
                   dtype=np.uint16, seed: int = 0) -> SimulatedCells:
    """Fields of view that all hold a sparse specimen (cells), e.g. a plate of wells.

    Forward model of image k, in ADU (gain 1 ADU per photoelectron)::

        I_k = D + Poisson(F * s_k * (b + sum_cells c_i * disk_i) + flare * G * m_k)
              + N(0, read_noise^2)

    with ``F`` the flat-field (:func:`make_flatfield`), ``D`` the darkfield
    (:func:`make_darkfield`), ``s_k`` a per-image level (log-uniform within +-`level_spread`,
    as wells of different density or staining) and cells as soft-edged disks at uniformly
    random positions until `coverage` of the field is covered.  No field is empty.

    Parameters
    ----------
    n_images : int
    shape : (int, int)
    coverage : float
        Target fraction of each field covered by cells (0 < coverage < 0.5).
    radius, brightness : (float, float)
        Uniform ranges of the cell radius (pixels) and brightness (photons above background).
    background : float
        Background photons per pixel.
    offset, dark_amplitude, vignetting, read_noise
        As in :func:`simulate_tiles`.
    level_spread : float
        Per-image level spread (natural-log units).
    flare : float
        Veiling glare: an additive, centre-peaked term ``flare * G * m_k``, with ``G`` a
        Gaussian of sigma 0.3 x the smaller side (1 at the centre) and ``m_k`` the mean light
        of image k reaching the camera (``mean(F * s_k * (b + cells))``).  It is light that
        is not shaded by the flat-field (scattered inside the objective); 0: none.
    dtype : dtype
    seed : int

    Returns
    -------
    SimulatedCells
    """
    rng = np.random.default_rng(seed)
    ny, nx = shape
    flat = make_flatfield(shape, vignetting=vignetting)
    dark = make_darkfield(shape, offset=offset, amplitude=dark_amplitude, seed=seed)
    y, x = np.mgrid[0:ny, 0:nx].astype(np.float64)
    info = np.iinfo(dtype) if np.dtype(dtype).kind in "ui" else None
    images, cells, covered = [], [], []
    for _ in range(int(n_images)):
        spec = np.zeros(shape)
        rows = []
        while (spec > 0.5 * brightness[0]).mean() < coverage:
            cy, cx = rng.uniform(0, ny), rng.uniform(0, nx)
            r = rng.uniform(*radius)
            c = rng.uniform(*brightness)
            d = np.sqrt((y - cy) ** 2 + (x - cx) ** 2)
            spec += c / (1.0 + np.exp((d - r) / 0.7))
            rows.append((cy, cx, r, c))
        covered.append((spec > 0.5 * brightness[0]).mean())
        level = float(np.exp(rng.uniform(-level_spread, level_spread)))
        photons = flat * level * (background + spec)
        if flare:
            g = np.exp(-((y - (ny - 1) / 2) ** 2 + (x - (nx - 1) / 2) ** 2)
                       / (2 * (0.3 * min(ny, nx)) ** 2))
            photons = photons + flare * g * float(photons.mean())
        img = dark + rng.poisson(photons) + rng.normal(0, read_noise, shape)
        if info is not None:
            img = np.clip(np.rint(img), info.min, info.max)
        images.append(img.astype(dtype))
        cells.append(np.asarray(rows, dtype=np.float64).reshape(-1, 4))
    return SimulatedCells(images=images, flatfield=flat, darkfield=dark, cells=cells,
                          coverage=float(np.mean(covered)))
