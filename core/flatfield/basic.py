"""BaSiCPy fallback: fit BaSiC when no empty tile, empty plane or measured profile exists.

BaSiCPy 2.0.0 (PyTorch) is imported lazily, only here, so ``camcorr.flatfield`` imports without
it.  The parameters of the Fractal mesoSPIM flat-field task are mapped onto BaSiCPy 2.0, which
rejects some of them (facts read from BaSiCPy 2.0.0's source, github.com/peng-lab/BaSiCPy):

* ``autosegment`` / ``autosegment_margin`` no longer exist: we build the equivalent
  foreground-excluding ``fitting_weight`` (Otsu threshold over all images, foreground dilated
  by the margin gets weight 0, background 1);
* ``max_workers`` no longer exists: it sets the number of torch CPU threads during the fit;
* ``working_size``: BaSiCPy raises TypeError on None and ValueError on a one-element list;
  we accept an int, a (H, W) pair, a one-element list (-> int) and None/0 (-> no rescaling:
  the image size);
* ``smoothness_flatfield`` / ``smoothness_darkfield`` default to None in BaSiCPy (auto), and
  its ``save_model``/``load_model`` round trip then fails on the null; we store the values the
  fit actually used, so the saved model reloads;
* one image makes BaSiCPy fail with IndexError; we raise a clear error instead (or the planes
  of a 3D tile are the images);
* BaSiCPy 2.0 fits in ``'approximate'`` mode by default (2D only); ``'ladmap'`` is selectable.

Reference: Peng T. et al. (2017) A BaSiC tool for background and shading correction of optical
microscopy images. Nat Commun 8:14836. doi:10.1038/ncomms14836
"""
from __future__ import annotations

import contextlib
import warnings
from typing import Optional, Union

import numpy as np
from scipy import ndimage as ndi

from ..errors import CamcorrError, Limits
from .empty import LIMITS as _EMPTY_LIMITS, _check_plane, _darkfield_map
from .profiles import Profiles
from .quality import combine_quality, flatfield_quality
from .sources import DEFAULT_MAX_PLANES, SAMPLING_LIMITS, TileSet, sample_planes

__all__ = ["estimate_basicpy", "autosegment_weights", "check_working_size", "FITTING_MODES",
           "LIMITS"]

FITTING_MODES = ("approximate", "ladmap")
#: Allowed BaSiCPy settings (positive weights, a non-negative margin, at least one worker) and
#: plane sampling.
LIMITS = {"epsilon": Limits(low=0.0, low_inclusive=False),
          "smoothness_flatfield": Limits(low=0.0, low_inclusive=False),
          "smoothness_darkfield": Limits(low=0.0, low_inclusive=False),
          "autosegment_margin": Limits(low=0), "max_workers": Limits(low=1),
          "darkfield": _EMPTY_LIMITS["darkfield"], **SAMPLING_LIMITS}


def check_working_size(working_size, shape) -> Union[int, list]:
    """Validate BaSiCPy's ``working_size`` and return a value BaSiCPy 2.0 accepts.

    Parameters
    ----------
    working_size : int, sequence of 1 or 2 ints, or None
        Fitting size in pixels; None or 0: no rescaling (the image size).
    shape : (int, int)
        (Y, X) of the images.

    Returns
    -------
    int or [int, int]
    """
    if working_size is None:
        return [int(shape[0]), int(shape[1])]
    if np.isscalar(working_size):
        seq = [working_size]
    else:
        seq = list(working_size)
    try:
        vals = [int(v) for v in seq]
        if vals != [float(v) for v in seq]:
            raise ValueError
    except (TypeError, ValueError):
        raise CamcorrError("working size must be whole numbers", argument="working size",
                           expected="one size (e.g. 128), two sizes (H W) or 0 for no rescaling",
                           received=repr(working_size)) from None
    if len(vals) == 1:
        if vals[0] == 0:
            return [int(shape[0]), int(shape[1])]
        if vals[0] < 8:
            raise CamcorrError("working size too small", argument="working size",
                               expected="at least 8 pixels (BaSiCPy default 128), or 0 for the "
                                        "image size", received=str(vals[0]))
        return int(vals[0])
    if len(vals) == 2:
        if min(vals) < 8:
            raise CamcorrError("working size too small", argument="working size",
                               expected="H W of at least 8 pixels each", received=str(vals))
        return vals
    raise CamcorrError("working size needs one or two numbers", argument="working size",
                       expected="128, or H W", received=repr(working_size))


def autosegment_weights(images: np.ndarray, margin: int = 10) -> np.ndarray:
    """Foreground-excluding fitting weights (1 background, 0 foreground).

    The foreground is every pixel above Otsu's threshold of all images (after a 1-pixel
    Gaussian), dilated by `margin` pixels; this reproduces BaSiCPy 1.x's ``autosegment``
    option with BaSiCPy 2.0's ``fitting_weight`` argument.

    Parameters
    ----------
    images : ndarray, shape (N, Y, X)
    margin : int
        Dilation of the foreground, pixels.

    Returns
    -------
    ndarray, shape (N, Y, X), float32
    """
    from skimage.filters import threshold_otsu

    LIMITS["autosegment_margin"].check(margin, "autosegment margin")
    sm = np.stack([ndi.gaussian_filter(im.astype(np.float32), 1) for im in images])
    thr = threshold_otsu(sm[:, ::4, ::4])
    fg = sm > thr
    margin = int(margin)
    if margin > 0:
        structure = np.zeros((1, 2 * margin + 1, 2 * margin + 1), dtype=bool)
        yy, xx = np.mgrid[-margin:margin + 1, -margin:margin + 1]
        structure[0] = yy ** 2 + xx ** 2 <= margin ** 2
        fg = ndi.binary_dilation(fg, structure=structure)
    return (~fg).astype(np.float32)


@contextlib.contextmanager
def _torch_threads(n: Optional[int]):
    import torch

    old = torch.get_num_threads()
    if n:
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _blocks(a: np.ndarray, f: int) -> np.ndarray:
    """Mean over f x f blocks of the last two axes (cropping the remainder)."""
    if f <= 1:
        return a
    ny, nx = (a.shape[-2] // f) * f, (a.shape[-1] // f) * f
    a = a[..., :ny, :nx]
    return a.reshape(a.shape[:-2] + (ny // f, f, nx // f, f)).mean(axis=(-3, -1))


def _import_basic():
    try:
        from basicpy import BaSiC
    except ImportError as exc:
        raise CamcorrError("BaSiCPy is not installed", argument="method basicpy",
                           expected="basicpy 2.0 with torch (pip install 'camcorr[basicpy]')",
                           received=f"ImportError: {exc}",
                           fix="Install the extra, or give empty tiles, z-levels or a models "
                               "folder instead") from None
    return BaSiC


def estimate_basicpy(tiles, *, darkfield=0.0, get_darkfield: bool = False,
                     smoothness_flatfield: Optional[float] = None,
                     smoothness_darkfield: Optional[float] = None, epsilon: float = 0.1,
                     working_size=128, autosegment: bool = False, autosegment_margin: int = 10,
                     max_workers: Optional[int] = None, fitting_mode: str = "approximate",
                     n_planes: Optional[int] = None, seed: int = 0,
                     max_planes: int = DEFAULT_MAX_PLANES, held_out: bool = True) -> Profiles:
    """Fit BaSiCPy 2.0 to the tiles (or a seeded sample of their planes).

    Parameters
    ----------
    tiles : sequence of array_like or path-like, or TileSet
        Tiles, 2D (Y, X) or 3D (Z, Y, X), ADU; every plane is one BaSiC image.
    darkfield : float or ndarray (Y, X)
        Known darkfield (ADU, e.g. the camera offset) subtracted before fitting and added to the
        fitted darkfield.
    get_darkfield : bool
        Let BaSiC also estimate a darkfield.
    smoothness_flatfield, smoothness_darkfield : float, optional
        BaSiC's regularisation weights; None: BaSiC's automatic value (stored after the fit).
    epsilon : float
        BaSiC's weight regularisation term.
    working_size : int, (int, int), or None
        Fitting size (see :func:`check_working_size`).
    autosegment : bool
        Exclude the foreground from the fit (see :func:`autosegment_weights`).
    autosegment_margin : int
        Foreground dilation, pixels.
    max_workers : int, optional
        torch CPU threads during the fit.
    fitting_mode : {'approximate', 'ladmap'}
        BaSiC's optimiser ('approximate' is BaSiCPy 2.0's default).
    n_planes, seed, max_planes
        Plane sampling (see :func:`camcorr.flatfield.sources.sample_planes`); all planes are
        loaded in memory for the fit.  A single in-memory (N, Y, X) stack (``[stack]``) used
        entirely without darkfield is passed to BaSiCPy as is, without a copy.
    held_out : bool
        Also fit BaSiC on alternate images (half of them) and measure that fit on the other
        half: the held-out quality figures (about 1.5x the fitting time).

    Returns
    -------
    Profiles
        ``source='basicpy'``; ``quality`` measured on the per-pixel 10th percentile of the
        images (their background), in-sample and held-out
        (:func:`~camcorr.flatfield.quality.combine_quality`); baseline per image (BaSiCPy's); ``meta['basicpy_settings']``
        holds the BaSiC settings used (smoothness values resolved), so the model saved with
        :func:`save_profiles` to a folder reloads with ``BaSiC.load_model``.

    Raises
    ------
    CamcorrError
        Fewer than two images, bad working size, unknown fitting mode, NaNs, BaSiCPy missing.
    """
    if fitting_mode not in FITTING_MODES:
        raise CamcorrError("unknown fitting mode", argument="fitting mode",
                           expected="one of " + ", ".join(FITTING_MODES), received=repr(fitting_mode))
    LIMITS["epsilon"].check(epsilon, "epsilon")
    for name, v in (("smoothness_flatfield", smoothness_flatfield),
                    ("smoothness_darkfield", smoothness_darkfield)):
        if v is not None:
            LIMITS[name].check(v, name.replace("_", " "))
    if max_workers is not None:
        LIMITS["max_workers"].check(max_workers, "max workers")
    ts = tiles if isinstance(tiles, TileSet) else TileSet(tiles, argument="tiles")
    try:
        ws = check_working_size(working_size, ts.shape)
        candidates = [(i, range(n)) for i, n in enumerate(ts.n_planes)]
        picks = sample_planes(candidates, n_planes, seed=seed, max_planes=max_planes)
        if len(picks) < 2:
            raise CamcorrError("BaSiCPy needs at least two images", argument="tiles",
                               expected="two or more images (or a 3D tile with several planes)",
                               received=f"{len(picks)} image",
                               fix="With one image, use a measured flat-field (models folder), "
                                   "its empty regions (empty tiles / z-levels), or more images")
        dark = _darkfield_map(darkfield, ts.shape)
        # Without a darkfield, keep the tiles' dtype (half the memory of float32 for uint16;
        # BaSiCPy converts image by image while resizing to the working size).
        no_dark = not np.any(dark)
        common = np.result_type(*[d for d in ts.dtypes if d is not None])
        dtype = common if no_dark and common.itemsize <= 4 else np.float32
        whole = (len(ts) == 1 and not ts.is_path(0) and ts.ndims[0] == 3 and no_dark
                 and len(picks) == ts.n_planes[0] and ts.dtypes[0] == dtype)
        if whole:  # one in-memory (N, Y, X) stack used entirely: no copy
            images = np.asarray(ts.tile(0))
            if images.dtype.kind == "f":
                _check_plane(images, ts, 0, "all")
            picks = []
        else:
            images = np.empty((len(picks),) + tuple(ts.shape), dtype=dtype)
        for j, (t, z) in enumerate(picks):
            plane = ts.plane(t, z)
            _check_plane(plane, ts, t, z)
            if no_dark:
                images[j] = plane
            else:
                np.subtract(plane, dark, out=images[j], casting="unsafe")
    finally:
        ts.close()
    BaSiC = _import_basic()
    kwargs = dict(get_darkfield=bool(get_darkfield), epsilon=float(epsilon),
                  working_size=ws, fitting_mode=fitting_mode)
    # BaSiCPy 2.0 types these as float with default None: passing None explicitly fails
    # its validation, so only pass given values.
    if smoothness_flatfield is not None:
        kwargs["smoothness_flatfield"] = float(smoothness_flatfield)
    if smoothness_darkfield is not None:
        kwargs["smoothness_darkfield"] = float(smoothness_darkfield)

    def fit(imgs):
        weights = autosegment_weights(imgs, autosegment_margin) if autosegment else None
        with _torch_threads(max_workers), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="get_darkfield=True")
            b = BaSiC(**kwargs)
            b.fit(imgs, fitting_weight=weights)
        return b

    basic = fit(images)
    # Store the smoothness values the fit used, so the model survives save/load.
    basic.smoothness_flatfield = float(basic._smoothness_flatfield)
    basic.smoothness_darkfield = float(basic._smoothness_darkfield)
    flat = np.asarray(basic.flatfield, dtype=np.float64)
    fitted_dark = np.asarray(basic.darkfield, dtype=np.float64)
    mean = flat.mean()
    flat_n = flat / mean
    total_dark = dark + fitted_dark
    # Quality reference: the per-pixel 10th percentile over the images, i.e. the background
    # wherever at least ~10 % of the images are empty there (sparse specimens, mosaics),
    # computed on a <= ~128-pixel grid of sample pixels (shading is smooth; keeps it cheap
    # next to the fit), the profiles averaged over the same blocks.
    f = max(1, min(ts.shape) // 128)
    ny, nx = (ts.shape[0] // f), (ts.shape[1] // f)

    def background(imgs):
        return np.percentile(imgs[:, f // 2::f, f // 2::f][:, :ny, :nx], 10, axis=0)

    in_sample = flatfield_quality(background(images), _blocks(flat_n, f),
                                  _blocks(fitted_dark, f))
    n = images.shape[0]
    if held_out and n >= 4:
        # held-out: BaSiC fitted (same settings) on alternate images, evaluated on the others
        # (the same alternate halves as split_halves, as views: no copy of the images)
        half = fit(images[0::2])
        hf = np.asarray(half.flatfield, np.float64)
        ho = flatfield_quality(background(images[1::2]), _blocks(hf / hf.mean(), f),
                               _blocks(np.asarray(half.darkfield, np.float64), f))
        split = (f"BaSiC refitted on {(n + 1) // 2} alternate images of {n}, evaluated on "
                 f"the other {n // 2}")
    else:
        ho = None
        split = ("not measured (held_out=False)" if not held_out
                 else f"not possible with {n} images (at least 4)")
    quality = combine_quality(in_sample, ho, split=split)
    settings = {k: v for k, v in basic.model_dump().items()
                if isinstance(v, (int, float, str, bool, list, dict, type(None)))}
    meta = {"n_planes_used": int(images.shape[0]), "seed": int(seed), "autosegment": bool(autosegment),
            "autosegment_margin": int(autosegment_margin), "max_workers": max_workers,
            "basicpy_settings": settings}
    baseline = np.asarray(basic.baseline, dtype=np.float64).ravel() * mean
    return Profiles(flatfield=flat_n, darkfield=total_dark, baseline=baseline, source="basicpy",
                    quality=quality, meta=meta)
