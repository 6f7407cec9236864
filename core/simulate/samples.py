"""Tiny input files for every command-line operation, as cameras write them (uint16).

Used where a real first run of each command is needed on next to no data: the cold-start
benchmark and the test that ``camcorr warmup`` leaves nothing to compile.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Union

import numpy as np

__all__ = ["N_TILES", "write_cli_samples"]

#: Number of flat-field tiles written (``tile_1.tif`` ... ``tile_6.tif``).
N_TILES = 6


def write_cli_samples(folder: Union[str, Path], seed: int = 0) -> Dict[str, Path]:
    """Write tiny uint16 inputs of every command into ``folder``.

    Parameters
    ----------
    folder : str or Path
        Existing folder; files of the same names are replaced.
    seed : int
        Seed of the noise.

    Returns
    -------
    dict
        ``'params'``: Flash parameter file of a (20, 24) ROI; ``'stack'``: (6, 20, 24) ZYX stack
        of that ROI at ~150 ADU; ``'movie'``: (4, 40, 48) TYX movie at ~30 counts;
        ``'tiles'``: the folder of :data:`N_TILES` (32, 36) tiles ``tile_K.tif`` with a known
        cosine flat-field (+-20 %) over an offset of 100 ADU.

    Examples
    --------
    >>> import tempfile, tifffile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     paths = write_cli_samples(d)
    ...     tifffile.imread(paths["stack"]).shape, tifffile.imread(paths["movie"]).dtype.name
    ((6, 20, 24), 'uint16')
    """
    import tifffile

    from ..flash.params import params_from_arrays, write_params
    from . import lls

    d = Path(folder)
    rng = np.random.default_rng(seed)
    roi = (1, 1, 20, 24)
    t = lls.sensor_maps(roi)
    paths = {"params": d / "params.tif", "stack": d / "stack.tif", "movie": d / "movie.tif",
             "tiles": d}
    write_params(params_from_arrays(t.A, t.B, t.offset, t.noise, roi=roi), paths["params"])
    tifffile.imwrite(paths["stack"], rng.poisson(150, (6,) + t.A.shape).astype(np.uint16),
                     imagej=True, metadata={"axes": "ZYX"})
    tifffile.imwrite(paths["movie"], rng.poisson(30, (4, 40, 48)).astype(np.uint16),
                     imagej=True, metadata={"axes": "TYX"})
    yy, xx = np.mgrid[0:32, 0:36]
    flat = 1.0 + 0.2 * np.cos(yy / 9.0) * np.cos(xx / 11.0)
    for i in range(N_TILES):
        tile = 100 + 400 * flat * rng.uniform(0.9, 1.1) + rng.normal(0, 3, flat.shape)
        tifffile.imwrite(d / f"tile_{i + 1}.tif", tile.astype(np.uint16))
    return paths
