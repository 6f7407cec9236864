"""Tile numbering on a mosaic grid and validation of tile-number lists.

Tiles are numbered from 1 in the order they are given (file order on the command line, image
order in a CellProfiler group).  A grid of ``rows x cols`` tiles is laid out in one of three
acquisition orders:

``inverted-n`` (mesoSPIM default)
    down the first column, then down the next one, left to right::

        1 4 7
        2 5 8
        3 6 9

``serpentine``
    by rows, the direction alternating from one row to the next (a "snake")::

        1 2 3
        6 5 4
        7 8 9

    The mirrored snake (first row right to left, as in the BaSiCPy WSI_brain mosaic) has the
    same four corner tiles.

``row-major``
    by rows, always left to right::

        1 2 3
        4 5 6
        7 8 9

The tile order of the Fractal mesoSPIM flat-field task is the inverted N; its
four corner tiles are ``1, R, (C-1)R+1, CR``.
"""
from __future__ import annotations

from typing import Iterable, Optional, Tuple

import numpy as np

from ..errors import CamcorrError

__all__ = ["ORDERS", "tile_grid", "corner_tiles", "check_tile_numbers", "check_grid"]

ORDERS = ("inverted-n", "serpentine", "row-major")


def check_grid(rows: int, cols: int, n_tiles: Optional[int] = None, *,
               argument: str = "grid") -> Tuple[int, int]:
    """Validate a ``rows x cols`` grid (and that it holds `n_tiles` tiles, if given)."""
    try:
        r, c = int(rows), int(cols)
    except (TypeError, ValueError):
        raise CamcorrError("grid size is not two whole numbers", argument=argument,
                           expected="ROWS COLS, e.g. 7 9", received=f"{rows!r} {cols!r}") from None
    if r < 1 or c < 1 or r != rows or c != cols:
        raise CamcorrError("grid size must be positive whole numbers", argument=argument,
                           expected="ROWS COLS >= 1, e.g. 7 9", received=f"{rows} {cols}")
    if n_tiles is not None and r * c != n_tiles:
        raise CamcorrError("grid does not match the number of tiles", argument=argument,
                           expected=f"ROWS x COLS = {n_tiles} (the number of tiles given)",
                           received=f"{r} x {c} = {r * c}",
                           fix="Give every tile of the mosaic, in acquisition order, or fix the grid")
    return r, c


def tile_grid(rows: int, cols: int, order: str = "inverted-n") -> np.ndarray:
    """Tile numbers (1-based) at each grid position.

    Parameters
    ----------
    rows, cols : int
        Grid size.
    order : {'inverted-n', 'serpentine', 'row-major'}
        Acquisition order (see the module docstring).

    Returns
    -------
    ndarray of int, shape (rows, cols)
        ``grid[r, c]`` is the number of the tile in row `r`, column `c` (top-left is (0, 0)).
    """
    rows, cols = check_grid(rows, cols)
    if order not in ORDERS:
        raise CamcorrError("unknown tile order", argument="order",
                           expected="one of " + ", ".join(ORDERS), received=repr(order))
    numbers = np.arange(1, rows * cols + 1)
    if order == "inverted-n":
        return numbers.reshape(cols, rows).T.copy()
    grid = numbers.reshape(rows, cols).copy()
    if order == "serpentine":
        grid[1::2] = grid[1::2, ::-1]
    return grid


def corner_tiles(rows: int, cols: int, order: str = "inverted-n") -> Tuple[int, ...]:
    """Numbers of the (up to) four corner tiles of a grid, sorted, without duplicates.

    A single row or column has two corner tiles; a 1 x 1 grid has one.

    Examples
    --------
    >>> corner_tiles(3, 3)
    (1, 3, 7, 9)
    >>> corner_tiles(1, 5)
    (1, 5)
    """
    grid = tile_grid(rows, cols, order)
    corners = {int(grid[0, 0]), int(grid[0, -1]), int(grid[-1, 0]), int(grid[-1, -1])}
    return tuple(sorted(corners))


def check_tile_numbers(numbers: Iterable[int], n_tiles: int, *,
                       argument: str = "empty tiles") -> Tuple[int, ...]:
    """Validate 1-based tile numbers against the number of tiles given.

    Returns
    -------
    tuple of int
        The numbers, in the order given.

    Raises
    ------
    CamcorrError
        If a number is zero or negative, larger than `n_tiles`, not whole, repeated, or the list
        is empty.
    """
    try:
        raw = list(numbers)
    except TypeError:
        raise CamcorrError("not a list of tile numbers", argument=argument,
                           expected="tile numbers like 1,7,8", received=repr(numbers)) from None
    if not raw:
        raise CamcorrError("no tile numbers given", argument=argument,
                           expected=f"at least one tile number between 1 and {n_tiles}",
                           received="an empty list")
    out = []
    for v in raw:
        try:
            iv = int(v)
        except (TypeError, ValueError):
            iv = None
        if iv is None or iv != v:
            raise CamcorrError("tile number is not a whole number", argument=argument,
                               expected="whole numbers like 1,7,8", received=repr(v))
        if iv < 1 or iv > n_tiles:
            raise CamcorrError("tile number out of range", argument=argument,
                               expected=f"tile numbers from 1 to {n_tiles} (tiles are numbered "
                                        "from 1, in the order given)",
                               received=str(iv),
                               fix="Tile 0 does not exist; check the list against the number of "
                                   "tiles given" if iv < 1 else
                                   "Give all tiles of the mosaic, or remove the number")
        if iv in out:
            raise CamcorrError("tile number listed twice", argument=argument,
                               expected="each tile at most once", received=str(iv))
        out.append(iv)
    return tuple(out)
