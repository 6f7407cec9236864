"""Operations ``flatfield-estimate`` and ``flatfield-apply`` (CLI, CellProfiler, Fiji).

One definition feeds ``camcorr flatfield estimate|apply``, the CellProfiler module
FlatfieldFromEmptyTiles and the Fiji commands "Flatfield Estimate" / "Flatfield Apply".
"""
from __future__ import annotations

from typing import Dict

from ..operations import Operation, Param
from ..streaming import MEMORY_PARAM
from . import METHODS
from .basic import FITTING_MODES, LIMITS as BASIC_LIMITS
from .empty import LIMITS, STATISTICS
from .grid import ORDERS

__all__ = ["OPERATIONS", "ESTIMATE", "APPLY", "estimate_kwargs", "translate_estimate"]

_REFERENCES = (
    "Peng T. et al. (2017) A BaSiC tool for background and shading correction of optical "
    "microscopy images. Nat Commun 8:14836. doi:10.1038/ncomms14836",
)

#: the BaSiCPy parameters are shown in dialogs only for these methods
_IF_BASICPY = (("method", ("basicpy", "auto")),)

_TILES = Param(
    "tiles", "images", required=True, label="Tiles", metavar="TILES",
    help="Tiles of one channel in acquisition order (numbered from 1 in this order): 2D (Y, X) "
         "or 3D (Z, Y, X) TIFF files in ADU.  Planes are read lazily; only sampled planes are "
         "loaded.")

_ESTIMATE_PARAMS = (
    _TILES,
    Param("output", "output_file", required=True, cli="--output", short="-o",
          label="Profiles file", metavar="PROFILES",
          help="Where to write the profiles: a .npz file (BaSiCPy's profiles.npz format: "
               "flatfield, darkfield, baseline), or a folder name without .npz, which receives "
               "profiles.npz and settings.json and then also loads with BaSiCPy's "
               "BaSiC.load_model.", frontends=("cli", "fiji")),
    Param("report", "output_file", default=None, cli="--report", label="Report file",
          metavar="REPORT.json",
          help="Also write the quality figures as JSON: in-sample and held-out residual "
               "non-uniformity, the over-fitting verdict and the smoothing used (with the "
               "held-out criterion of every candidate when it was chosen).",
          frontends=("cli",), engine_arg=None),
    Param("method", "choice", default="auto", choices=METHODS, cli="--method", label="Method",
          help="Where the flat-field comes from. 'auto': a models folder -> 'measured'; "
               "z-levels -> 'z-range'; empty tiles -> 'empty-tiles'; none of them -> 'basicpy'. "
               "'empty-tiles' without a tile list uses every tile (the median or mean of all "
               "images, for sparse specimens)."),
    Param("grid", "int_pair", default=None, cli="--grid", label="Grid (rows, columns)",
          metavar=("ROWS", "COLS"),
          help="Mosaic geometry, rows x columns; must equal the number of tiles.  Used to find "
               "the four corner tiles for the z-range method when no empty tiles are listed."),
    Param("order", "choice", default="inverted-n", choices=ORDERS, cli="--order",
          label="Tile order",
          help="Acquisition order of the tiles on the grid: 'inverted-n' (mesoSPIM: down the "
               "first column, then the next), 'serpentine' (by rows, alternating direction) or "
               "'row-major' (by rows, left to right)."),
    Param("empty_tiles", "int_list", default=None, cli="--empty-tiles", label="Empty tiles",
          metavar="LIST",
          help="Numbers of the tiles that hold no specimen, counted from 1 in the order the "
               "tiles are given, e.g. 1,7,8 or 3-5.  With z-levels: the tiles to sample the "
               "empty planes from."),
    Param("z_levels", "int_pair", default=None, cli="--z-levels", label="Empty z-levels",
          metavar=("LOW", "HIGH"),
          help="Planes z < LOW and z > HIGH (counted from 0) are empty and sampled, e.g. 50 600 "
               "for a 660-plane stack.  Needs 3D tiles; 0 <= LOW < HIGH <= Z - 1."),
    Param("models_folder", "folder", default=None, cli="--models-folder",
          label="Models folder", metavar="DIR",
          help="Folder with one sub-folder per channel, each holding profiles.npz with a "
               "measured 'flatfield' (and optional 'darkfield', 'baseline'); a BaSiCPy model "
               "folder works as is.  When given, the measured flat-field is used."),
    Param("channel", "str", default=None, cli="--channel", label="Channel name",
          metavar="NAME",
          help="Channel sub-folder of the models folder, named exactly as the channel."),
    Param("offset", "float", default=0.0, limits=LIMITS["darkfield"], cli="--offset", unit="ADU",
          engine_arg="darkfield",
          label="Camera offset",
          help="Dark signal subtracted before estimating (the camera offset, e.g. 100 ADU for a "
               "Hamamatsu Flash4.0); stored as the darkfield.  Without it the offset is folded "
               "into the flat-field and the correction is too weak."),
    Param("darkfield_file", "file", default=None, cli="--darkfield", label="Darkfield image",
          metavar="TIFF",
          help="A measured dark image (shutter closed, ADU, same size as the tiles), used "
               "instead of the camera offset."),
    Param("sigma", "float", default=None, limits=LIMITS["sigma"], cli="--sigma", unit="pixels",
          label="Smoothing",
          help="Gaussian smoothing of the empty-plane statistic (0: none).  Empty (default): "
               "chosen from the data: the planes are split in two alternate halves and the "
               "sigma (2, 4, 8, ... up to 1/8 of the image side) whose flat-field from one half "
               "best flattens the other half is used (held-out validation).  The statistic is "
               "taken over blocks of floor(SIGMA) pixels (2 when chosen) and interpolated "
               "back, which is SIGMA^2 times faster and widens the smoothing by under 5 "
               "percent."),
    Param("statistic", "choice", default="auto", choices=("auto",) + STATISTICS,
          cli="--statistic", label="Statistic",
          help="Per-pixel statistic over the sampled planes: 'median' (robust to the odd object "
               "in an empty plane, and to a sparse specimen in every tile), 'mean' (the "
               "smoothed average of all images, as CellProfiler's 'Regular' illumination "
               "function), 'quantiles' (each pixel's intensity deciles fitted as a line of "
               "the field's: the slope is the flat-field, the intercept an additive term such "
               "as veiling glare, subtracted with the darkfield; for tiles that all hold "
               "specimen) or 'auto' (default): chosen with the smoothing by held-out "
               "validation; 'median' or 'quantiles' when no empty tile is listed (every tile "
               "holds specimen), chosen by how flat the held-out tiles' cells come out."),
    Param("planes", "int", default=None, limits=LIMITS["n_planes"], cli="--planes",
          label="Planes to sample", engine_arg="n_planes",
          metavar="N",
          help="Number of planes sampled (seeded, uniform without replacement).  Default: every "
               "eligible plane, at most 200.  Asking for more than exist is an error."),
    Param("seed", "int", default=0, limits=LIMITS["seed"], cli="--seed", label="Random seed",
          help="Seed of the plane sampler: the same data and seed give the same flat-field."),
    Param("get_darkfield", "bool", shown_if=_IF_BASICPY, default=False, cli="--get-darkfield",
          label="BaSiCPy: estimate darkfield",
          help="BaSiCPy method: also estimate the darkfield shading component (BaSiCPy warns "
               "that it can be unstable)."),
    Param("smoothness_flatfield", "float", shown_if=_IF_BASICPY, default=None,
          limits=BASIC_LIMITS["smoothness_flatfield"], cli="--smoothness-flatfield",
          label="BaSiCPy: flat-field smoothness",
          help="BaSiCPy method: weight of the flat-field term (larger: smoother).  Default: "
               "BaSiCPy's automatic value, stored in the output so the model reloads."),
    Param("smoothness_darkfield", "float", shown_if=_IF_BASICPY, default=None,
          limits=BASIC_LIMITS["smoothness_darkfield"], cli="--smoothness-darkfield",
          label="BaSiCPy: darkfield smoothness",
          help="BaSiCPy method: weight of the darkfield term.  Default: 0.1 x the flat-field "
               "smoothness (BaSiCPy's rule)."),
    Param("epsilon", "float", shown_if=_IF_BASICPY, default=0.1, limits=BASIC_LIMITS["epsilon"],
          cli="--epsilon",
          label="BaSiCPy: epsilon",
          help="BaSiCPy method: weight regularisation term; larger can give smoother models."),
    Param("working_size", "int_list", shown_if=_IF_BASICPY, default=(128,), cli="--working-size",
          label="BaSiCPy: working size", metavar="N or H,W",
          help="BaSiCPy method: images are resized to this size for the fit (one number or "
               "H,W; 0 = no rescaling).  Smaller is faster and uses less memory."),
    Param("autosegment", "bool", shown_if=_IF_BASICPY, default=False, cli="--autosegment",
          label="BaSiCPy: exclude foreground",
          help="BaSiCPy method: exclude the specimen from the fit (Otsu threshold over all "
               "images; BaSiCPy 1.x's autosegment, passed to BaSiCPy 2 as fitting weights)."),
    Param("autosegment_margin", "int", shown_if=_IF_BASICPY, default=10,
          limits=BASIC_LIMITS["autosegment_margin"],
          cli="--autosegment-margin", unit="pixels", label="BaSiCPy: foreground margin",
          help="BaSiCPy method: the excluded foreground is dilated by this many pixels."),
    Param("max_workers", "int", shown_if=_IF_BASICPY, default=None,
          limits=BASIC_LIMITS["max_workers"], cli="--max-workers",
          label="BaSiCPy: threads",
          help="BaSiCPy method: CPU threads torch may use during the fit (default: torch's)."),
    Param("fitting_mode", "choice", shown_if=_IF_BASICPY, default="approximate",
          choices=FITTING_MODES,
          cli="--fitting-mode", label="BaSiCPy: fitting mode",
          help="BaSiCPy method: optimiser; 'approximate' is BaSiCPy 2.0's default and fast, "
               "'ladmap' the original BaSiC algorithm."),
)

ESTIMATE = Operation(
    name="flatfield-estimate",
    title="Flatfield Estimate",
    command=("flatfield", "estimate"),
    summary="Estimate the flat-field of one channel: measured, from empty tiles or z-ranges, "
            "or with BaSiCPy.",
    description="""
        Three scenarios, chosen from what you give (or forced with --method):

        1. A measured flat-field: --models-folder DIR --channel NAME reads
           DIR/NAME/profiles.npz (a BaSiCPy model folder works as is).
        2. Empty data: --empty-tiles lists tiles without specimen; --z-levels LOW HIGH marks
           the planes z < LOW and z > HIGH of 3D tiles as empty (sampled from the listed tiles,
           or from the four corner tiles of --grid).  Sampled planes (seeded) minus the offset,
           each divided by its median, per-pixel median, Gaussian smoothing, mean 1.  The
           baseline (1st percentile of the corrected background, ADU) is stored too.
        3. Nothing of the above: BaSiCPy 2.0 is fitted on the tiles (slower; needs the
           'basicpy' extra).

        Every scenario reports quality numbers: the coefficient of variation of the smoothed
        background and its corner/centre ratio, before and after correction (1.00 is flat),
        in-sample (on the images the flat-field was estimated from) and held-out (estimated on
        one half of the images, measured on the other), with a warning when they disagree
        (over-fitting).  Unless --sigma/--statistic are given, they are chosen by the same
        held-out split.
        """,
    params=_ESTIMATE_PARAMS,
    references=_REFERENCES,
    runner="camcorr.flatfield.cli:run_estimate",
    translate="camcorr.flatfield.operations:translate_estimate",
    engine=("camcorr.flatfield:estimate_flatfield", "camcorr.flatfield.basic:estimate_basicpy"),
    cellprofiler_module="FlatfieldFromEmptyTiles",
    epilog="Example: camcorr flatfield estimate tiles/*.tif --grid 7 9 --order serpentine "
           "--empty-tiles 1,7,8 --offset 100 -o profiles.npz",
)

APPLY = Operation(
    name="flatfield-apply",
    title="Flatfield Apply",
    command=("flatfield", "apply"),
    summary="Correct tiles with a flat-field: (I - darkfield) / flatfield (- baseline).",
    description="""
        Each tile (2D or 3D; a 2D flat-field is applied to every plane) becomes
        (I - darkfield) / flatfield (minus the baseline if asked), clipped at 0 and to the range
        of the output dtype (the input dtype unless --dtype says otherwise); clipped pixels are
        counted on standard error.  The flat-field is first divided by its minimum (--rescale
        ceiling, the default), so no pixel is pushed past the range.  Tiles must have the
        flat-field's size unless --resample is given.  Outputs keep the input file names and
        metadata and never overwrite an input.
        """,
    params=(
        _TILES,
        Param("profiles", "file", default=None, cli="--profiles", label="Profiles file",
              metavar="NPZ",
              help="profiles.npz written by 'camcorr flatfield estimate' or BaSiCPy (a folder "
                   "holding one works too)."),
        Param("models_folder", "folder", default=None, cli="--models-folder",
              label="Models folder", metavar="DIR",
              help="Instead of --profiles: folder with one sub-folder per channel holding "
                   "profiles.npz."),
        Param("channel", "str", default=None, cli="--channel", label="Channel name",
              metavar="NAME", help="Channel sub-folder of the models folder."),
        Param("output", "output_folder", required=True, cli="--output", short="-o",
              label="Output folder", metavar="OUTDIR",
              help="Folder for the corrected tiles (same file names as the inputs).",
              frontends=("cli",)),
        Param("rescale", "choice", default="ceiling", choices=("ceiling", "mean", "none"),
              cli="--rescale", label="Rescale the flat-field",
              help="'ceiling': divide the flat-field by its minimum first, so that dividing by "
                   "it never brightens a pixel and nothing is pushed past the top of the "
                   "input's range (as CellProfiler's CorrectIlluminationCalculate 'Rescale: "
                   "Yes'); the corrected tiles are darker by that factor.  'mean': flat-field "
                   "of mean 1, the tiles keep their average level, but bright pixels where the "
                   "flat-field is below 1 can exceed the range and are clipped (counted).  "
                   "'none': the flat-field as estimated or measured."),
        Param("baseline", "choice", default="none", choices=("none", "auto", "subtract"),
              cli="--baseline", label="Baseline",
              help="'none' subtracts nothing: no pixel above the darkfield becomes 0.  'auto' "
                   "subtracts a single baseline (the background level from empty data; pixels "
                   "below it are clipped at 0) and ignores BaSiCPy's per-image baseline; "
                   "'subtract' also subtracts the per-image baseline (tiles in fitting order)."),
        Param("clip", "bool", default=True, cli="--clip", label="Clip negative values",
              help="Set values below 0 to 0 (integer outputs are always clipped to their "
                   "range, never wrapped)."),
        Param("dtype", "choice", default="keep", choices=("keep", "float32", "uint16", "uint8"),
              cli="--dtype", label="Output type",
              help="Pixel type of the corrected tiles; 'keep' keeps the input type.",
              frontends=("cli", "fiji"), engine_arg=None),
        Param("resample", "bool", default=False, cli="--resample",
              label="Resample profiles to the tile size",
              help="When a tile's size differs from the flat-field's, resample the profiles "
                   "(bilinear) instead of stopping with an error.  Only for consistently "
                   "binned or scaled tiles."),
        MEMORY_PARAM,
    ),
    references=_REFERENCES,
    runner="camcorr.flatfield.cli:run_apply",
    engine=("camcorr.flatfield.apply:apply_flatfield", "camcorr.flatfield.profiles:load_profiles"),
    cellprofiler_module="FlatfieldFromEmptyTiles",
    epilog="Example: camcorr flatfield apply tiles/*.tif --profiles profiles.npz -o corrected/",
)

OPERATIONS = [ESTIMATE, APPLY]


def translate_estimate(kwargs: Dict, values: Dict, *, darkfield=None) -> Dict:
    """``flatfield-estimate`` values -> :func:`camcorr.flatfield.estimate_flatfield` arguments.

    The darkfield is, in order: `darkfield` (an array the front end already has, ADU),
    ``values['darkfield']`` (the same, for older callers), the image file
    ``values['darkfield_file']``, or the scalar camera offset ``values['offset']`` (ADU).
    Settings that :func:`~camcorr.flatfield.estimate_flatfield` does not take but
    :func:`~camcorr.flatfield.estimate_basicpy` does go into ``basicpy_options``; a one-number
    working size is that number, 0 none.
    """
    import inspect

    from ..operations import kwargs_for
    from . import estimate_flatfield
    from .basic import estimate_basicpy

    kwargs = dict(kwargs)
    if kwargs.get("sigma") is None:  # empty: chosen from the data
        kwargs["sigma"] = "auto"
    if not kwargs.get("statistic"):
        kwargs["statistic"] = "auto"
    ws = kwargs.pop("working_size", None)
    if ws is not None:
        ws = list(ws)
        ws = ws[0] if len(ws) == 1 else ws
        ws = None if ws == 0 else ws
    if darkfield is None:
        darkfield = values.get("darkfield")
    if darkfield is None and values.get("darkfield_file"):
        from ..io import read_image

        darkfield = read_image(values["darkfield_file"], argument="darkfield image")
    if darkfield is not None:
        kwargs["darkfield"] = darkfield
    kwargs["models_folder"] = values.get("models_folder")
    empty = kwargs.get("empty_tiles")
    kwargs["empty_tiles"] = list(empty) if empty else None
    for key in ("z_levels", "grid"):
        kwargs[key] = tuple(kwargs[key]) if kwargs.get(key) is not None else None
    top = kwargs_for(estimate_flatfield, kwargs)
    basic_names = inspect.signature(estimate_basicpy).parameters
    top["basicpy_options"] = dict({k: v for k, v in kwargs.items()
                                   if k not in top and k in basic_names}, working_size=ws)
    return top


def estimate_kwargs(values: Dict) -> Dict:
    """Keyword arguments of :func:`camcorr.flatfield.estimate_flatfield` from validated values
    (:meth:`ESTIMATE.engine_kwargs <camcorr.operations.Operation.engine_kwargs>`).

    Front ends (CLI, CellProfiler, Fiji) share this mapping (see :func:`translate_estimate`).
    Then call::

        profiles = camcorr.flatfield.estimate_flatfield(tiles, **estimate_kwargs(values))

    with `tiles` a list of 2D/3D arrays (ADU) or TIFF paths, in acquisition order.  Missing
    values take the operation's defaults (which are the engine's).
    """
    return ESTIMATE.engine_kwargs(values)
