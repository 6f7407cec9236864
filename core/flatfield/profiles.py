"""Illumination profiles: the flat-field, darkfield and baseline of one channel, and their file.

The file is BaSiCPy's own model file ``profiles.npz`` (``numpy.savez`` with the keys
``flatfield``, ``darkfield`` and ``baseline``), so a folder written by BaSiCPy's
``BaSiC.save_model`` is a valid models folder, and a folder written by :func:`save_profiles`
loads back with ``BaSiC.load_model`` (facts from BaSiCPy 2.0.0, read from its source,
github.com/peng-lab/BaSiCPy; checked by ``tests/test_flatfield_basicpy.py``).

Conventions
-----------
* ``flatfield``: (Y, X) (or (Z, Y, X)) relative gain, mean 1, no unit.
* ``darkfield``: same shape, ADU; the signal with no light (camera offset plus dark current).
* ``baseline``: ADU, either one number (the background level left after flat-field
  correction, subtracted when applying) or one number per image (BaSiCPy's per-image
  baseline, used for time-lapse correction; ignored unless asked for).

Corrected image: ``(I - darkfield) / flatfield - baseline``.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

import numpy as np

from ..errors import CamcorrError, describe
from ..jsonio import jsonable
from ..io import atomic_write

__all__ = ["Profiles", "load_profiles", "read_profiles", "save_profiles", "check_profiles",
           "PROFILES_NAME"]

PROFILES_NAME = "profiles.npz"
_SETTINGS_NAME = "settings.json"


@dataclass
class Profiles:
    """Flat-field model of one channel.

    Attributes
    ----------
    flatfield : ndarray, shape (Y, X) or (Z, Y, X), float32
        Relative illumination, mean 1.
    darkfield : ndarray, same shape as `flatfield`, float32, ADU
        Zeros when unknown.
    baseline : float or ndarray of shape (n_images,), ADU
        Scalar background level, or BaSiCPy's per-image baseline.
    source : str
        How the profiles were obtained (``'measured'``, ``'empty-tiles'``, ``'z-range'``,
        ``'basicpy'``).
    quality : dict
        Residual non-uniformity figures (see :func:`camcorr.flatfield.flatfield_quality`).
    meta : dict
        Settings and provenance (tiles used, planes sampled, seed, ...), JSON-serialisable.
    """

    flatfield: np.ndarray
    darkfield: Optional[np.ndarray] = None
    baseline: Union[float, np.ndarray] = 0.0
    source: str = "measured"
    quality: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        self.flatfield = np.asarray(self.flatfield, dtype=np.float32)
        if self.darkfield is None:
            self.darkfield = np.zeros_like(self.flatfield)
        else:
            dark = np.asarray(self.darkfield, dtype=np.float32)
            if dark.ndim == 0:
                dark = np.full(self.flatfield.shape, float(dark), dtype=np.float32)
            self.darkfield = dark
        base = np.asarray(self.baseline, dtype=np.float64)
        self.baseline = float(base) if base.size == 1 else base.ravel()

    @property
    def shape(self):
        """Shape of the flat-field, (Y, X) or (Z, Y, X)."""
        return self.flatfield.shape

    @property
    def per_image_baseline(self) -> bool:
        """True when the baseline holds one value per image (BaSiCPy time-lapse model)."""
        return not np.isscalar(self.baseline)


def check_profiles(profiles: Profiles, *, argument: str = "profiles") -> Profiles:
    """Validate a :class:`Profiles`; return it.

    Raises
    ------
    CamcorrError
        If the flat-field is not 2D/3D, holds NaN/inf or values <= 0, or the darkfield shape or
        values are wrong.
    """
    flat = profiles.flatfield
    if flat.ndim not in (2, 3):
        raise CamcorrError("flat-field must be an image", argument=f"{argument}: flatfield",
                           expected="a 2D (Y, X) or 3D (Z, Y, X) array", received=describe(flat))
    n_bad = int(np.count_nonzero(~np.isfinite(flat)))
    if n_bad:
        raise CamcorrError("flat-field contains NaN or infinite values",
                           argument=f"{argument}: flatfield", expected="finite values",
                           received=f"{n_bad} non-finite pixel(s)",
                           fix="Re-estimate the flat-field from inputs without NaNs")
    n_low = int(np.count_nonzero(flat <= 0))
    if n_low:
        raise CamcorrError("flat-field has zero or negative pixels",
                           argument=f"{argument}: flatfield", expected="values > 0 (mean 1)",
                           received=f"{n_low} pixel(s) <= 0",
                           fix="Estimate it from more (or brighter) empty planes, or smooth it more")
    if profiles.darkfield.shape != flat.shape:
        raise CamcorrError("darkfield and flat-field shapes differ",
                           argument=f"{argument}: darkfield", expected=f"shape {flat.shape}",
                           received=f"shape {profiles.darkfield.shape}")
    if not np.all(np.isfinite(profiles.darkfield)):
        raise CamcorrError("darkfield contains NaN or infinite values",
                           argument=f"{argument}: darkfield", expected="finite values (ADU)",
                           received="non-finite pixels")
    if not np.all(np.isfinite(np.asarray(profiles.baseline))):
        raise CamcorrError("baseline contains NaN or infinite values",
                           argument=f"{argument}: baseline", expected="finite values (ADU)",
                           received=repr(profiles.baseline))
    return profiles


def read_profiles(path: Union[str, os.PathLike], *, argument: str = "profiles") -> Profiles:
    """Read a ``profiles.npz`` file (or a folder holding one).

    Parameters
    ----------
    path : path-like
        The ``.npz`` file, or a folder containing ``profiles.npz`` (e.g. a BaSiCPy model folder).

    Raises
    ------
    CamcorrError
        If the file is missing, unreadable, or lacks the ``flatfield`` key.
    """
    p = Path(path)
    if p.is_dir():
        p = p / PROFILES_NAME
    if not p.is_file():
        raise CamcorrError("profiles file not found", argument=argument,
                           expected=f"an existing {PROFILES_NAME} (or a folder holding one)",
                           received=str(p))
    try:
        with np.load(p, allow_pickle=False) as npz:
            keys = set(npz.files)
            if "flatfield" not in keys:
                raise CamcorrError("key 'flatfield' missing in the profiles file", argument=argument,
                                   expected="an .npz file with the key 'flatfield' (and optionally "
                                            "'darkfield', 'baseline')",
                                   received=f"{p} with keys {sorted(keys) or 'none'}")
            flat = np.array(npz["flatfield"])
            dark = np.array(npz["darkfield"]) if "darkfield" in keys else None
            base = np.array(npz["baseline"]) if "baseline" in keys else np.array(0.0)
            meta = {}
            if "camcorr_meta" in keys:
                try:
                    meta = json.loads(str(npz["camcorr_meta"]))
                except ValueError:
                    meta = {}
    except CamcorrError:
        raise
    except Exception as exc:
        raise CamcorrError("cannot read the profiles file", argument=argument,
                           expected="a numpy .npz file", received=f"{p} ({type(exc).__name__}: "
                                                                  f"{exc})") from None
    if base.dtype == object or (base.ndim == 0 and base.dtype.kind not in "biuf"):
        base = 0.0  # BaSiCPy writes array(None, dtype=object) for an unfitted model
    if dark is not None and (dark.dtype.kind not in "biuf"):
        dark = None
    profiles = Profiles(flatfield=flat, darkfield=dark, baseline=base,
                        source=meta.get("source", "measured"),
                        quality=meta.get("quality", {}), meta=meta.get("meta", {}))
    return check_profiles(profiles, argument=str(p))


def load_profiles(models_folder: Union[str, os.PathLike], channel: str) -> Profiles:
    """Load the measured profiles of `channel`: ``<models_folder>/<channel>/profiles.npz``.

    A BaSiCPy model folder (``BaSiC.save_model``) named after the channel works as is.

    Parameters
    ----------
    models_folder : path-like
        Folder holding one sub-folder per channel.
    channel : str
        Channel name, exactly as the sub-folder is named.

    Returns
    -------
    Profiles

    Raises
    ------
    CamcorrError
        Naming the folder, the channel and what is missing (folder, channel sub-folder, file or
        the ``flatfield`` key).

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> import numpy as np
    >>> prof = Profiles(flatfield=np.array([[0.8, 1.0], [1.0, 1.2]]))
    >>> with tempfile.TemporaryDirectory() as models:
    ...     path = save_profiles(prof, Path(models) / "DAPI" / "profiles.npz")
    ...     flat = load_profiles(models, "DAPI").flatfield
    >>> flat.dtype, bool(np.allclose(flat, prof.flatfield))
    (dtype('float32'), True)
    """
    folder = Path(models_folder)
    if not folder.is_dir():
        raise CamcorrError("models folder not found", argument="models folder",
                           expected="a folder with one sub-folder per channel",
                           received=str(folder))
    if not channel or not str(channel).strip():
        raise CamcorrError("no channel name given", argument="channel",
                           expected=f"one of the sub-folders of {folder}: "
                                    f"{_list_channels(folder)}", received=repr(channel))
    sub = folder / str(channel)
    if not sub.is_dir():
        raise CamcorrError(f"channel '{channel}' has no folder in the models folder",
                           argument="channel",
                           expected=f"a sub-folder of {folder} named after the channel; found "
                                    f"{_list_channels(folder)}",
                           received=repr(channel))
    npz = sub / PROFILES_NAME
    if not npz.is_file():
        raise CamcorrError(f"channel '{channel}': {PROFILES_NAME} missing", argument="models folder",
                           expected=f"the file {npz}", received=f"folder {sub} without it")
    try:
        return read_profiles(npz, argument=f"models folder {folder}, channel '{channel}'")
    except CamcorrError as exc:
        if exc.argument and str(folder) in exc.argument:
            raise
        raise CamcorrError(exc.message, argument=f"models folder {folder}, channel '{channel}'",
                           expected=exc.expected, received=exc.received, fix=exc.fix) from None


def _list_channels(folder: Path) -> str:
    names = sorted(p.name for p in folder.iterdir() if p.is_dir())
    return ", ".join(names) if names else "no sub-folders"


def _basicpy_settings(profiles: Profiles) -> dict:
    """A ``settings.json`` that ``BaSiC.load_model`` accepts (no ``null`` smoothness values)."""
    meta = profiles.meta or {}
    settings = dict(meta.get("basicpy_settings") or {})
    # BaSiCPy 2.0 leaves smoothness_* as None when they are auto-tuned, and then its own
    # load_model fails on the null; always store numbers.
    settings.setdefault("smoothness_flatfield", 1.0)
    settings.setdefault("smoothness_darkfield", 0.1)
    for key in ("smoothness_flatfield", "smoothness_darkfield"):
        if settings.get(key) is None:
            settings[key] = 1.0 if key == "smoothness_flatfield" else 0.1
    settings.setdefault("get_darkfield", bool(np.any(profiles.darkfield)))
    return settings


def save_profiles(profiles: Profiles, path: Union[str, os.PathLike], *,
                  inputs=()) -> Path:
    """Write profiles as a BaSiCPy-compatible ``profiles.npz`` (atomically).

    Parameters
    ----------
    profiles : Profiles
    path : path-like
        An ``.npz`` file name, or a folder: then ``<folder>/profiles.npz`` and a
        ``settings.json`` are written, and the folder loads with BaSiCPy's
        ``BaSiC.load_model`` as well as with :func:`load_profiles`.
    inputs : iterable of path-like
        Files that must not be overwritten.

    Returns
    -------
    pathlib.Path
        The ``.npz`` file written.

    Notes
    -----
    Keys: ``flatfield`` and ``darkfield`` (float32 images), ``baseline`` (0-d or 1-d float),
    and ``camcorr_meta`` (a JSON string with the source, quality and settings), which BaSiCPy
    ignores.
    """
    from ..io import ensure_not_input

    check_profiles(profiles)
    p = Path(path)
    folder_mode = p.suffix.lower() != ".npz"
    npz_path = p / PROFILES_NAME if folder_mode else p
    ensure_not_input(npz_path, inputs)
    meta = json.dumps({"source": profiles.source, "quality": jsonable(profiles.quality),
                       "meta": jsonable(profiles.meta)})

    def _writer(tmp):
        with open(tmp, "wb") as fh:
            np.savez(fh, flatfield=profiles.flatfield.astype(np.float32),
                     darkfield=profiles.darkfield.astype(np.float32),
                     baseline=np.asarray(profiles.baseline, dtype=np.float32),
                     camcorr_meta=np.array(meta))

    atomic_write(npz_path, _writer, suffix=".npz")
    if folder_mode:
        settings = json.dumps(_basicpy_settings(profiles))
        atomic_write(p / _SETTINGS_NAME, lambda tmp: Path(tmp).write_text(settings))
    return npz_path
