"""Operation definition of ``median``.

One definition feeds the ``camcorr`` command line, the CellProfiler module SelectiveMedian and
the Fiji command Selective Median.
"""
from __future__ import annotations

from ..operations import Operation, Param
from .noise_model import DEFAULT_FPR, DEFAULT_MAP_FACTOR
from ..streaming import MEMORY_PARAM
from .selective import DEFAULT_K, LIMITS, RULES

__all__ = ["OPERATIONS", "MEDIAN", "translate_median"]

_CLI = ("cli",)
_GUI = ("cellprofiler", "fiji")

MEDIAN = Operation(
    name="median",
    title="Selective Median",
    command=("median",),
    summary="Find hot, noisy and aberrant-gain pixels and replace only those by the median of "
            "their 8 neighbours.",
    description="""
        Selective median filter (Amat et al. 2015).  The temporal standard deviation of every
        pixel over the planes of the stack (the std projection) is compared with the 3x3 median
        of the std projection (mirrored borders).  Pixels much noisier than their neighbours
        (hot pixels, random-telegraph pixels) are flagged with a robust automatic threshold and,
        in every plane, replaced by the median of their unflagged 8 neighbours.  Every other
        pixel is left exactly as it was; the data type is kept.

        Works on a 3D stack (Z, Y, X) or on a set of 2D frames (N, Y, X): the noise of a pixel
        is judged over all planes, the same pixels are replaced in every plane.  At least 2
        planes are needed; 20 or more find over 99 % of pixels 5x noisier than typical ones on a
        real sCMOS noise map, while flagging under 0.1 % of clean pixels.

        Rule 'mad' (default) flags a pixel whose std exceeds the local median std by more than
        K robust standard deviations (median absolute deviation) of all pixels, and exceeds at
        least 6 of its 8 neighbours (so the flanks of real beads and cells are kept).  Rule
        'knee' reproduces LLSpy's threshold, which flags a few percent of pixels even on clean
        data.  The optional mean pass also flags pixels whose mean deviates from their
        neighbours' (aberrant gain or offset); use it on data without sharp in-focus structure.

        Rule 'chi2' is for short stacks of repeated frames of a static scene (a time series,
        dark or flat frames; not a z-stack through a specimen): each pixel's noise is tested
        against the noise a good pixel shows at its mean level (shot plus read noise, the
        photon-transfer relation fitted robustly on the data, with the camera's read-noise
        variance map if given), with a chi-square test flagging a chosen fraction of clean
        pixels (FPR).  It finds over 99 % of pixels 4x noisier than expected in 10 planes, and
        of pixels 2x noisier in 50 planes, while flagging 0.05 % of clean pixels.
        """,
    params=(
        Param("image", "image", label="Input image stack", required=True,
              help="Raw image stack (Z, Y, X) or set of 2D frames, in ADU, with at least 2 "
                   "planes. Any integer or floating-point type.", metavar="STACK.tif"),
        Param("output", "output_file", label="Output file", cli="--output", short="-o",
              metavar="OUT.tif",
              help="Corrected stack (same type as the input). Default: STACK_median.tif beside "
                   "the input; the input is never overwritten.", frontends=_CLI),
        Param("mask_out", "output_file", label="Mask file", cli="--mask-out", metavar="MASK.tif",
              help="Also write the bad-pixel mask (uint8, 255 = replaced pixel).",
              frontends=_CLI),
        Param("rule", "choice", default="mad", choices=RULES, cli="--rule",
              label="Threshold rule",
              help="'mad': robust threshold (median absolute deviation of the noise ratio to the "
                   "neighbours), flags almost nothing on clean data. 'knee': LLSpy's rule (knee "
                   "of the sorted deviations), for comparison with LLSpy; flags a few percent of "
                   "pixels even on clean data. 'chi2': test every pixel's noise against shot "
                   "plus read noise (with a variance map if given), for short stacks of "
                   "repeated frames of a static scene, not z-stacks through a specimen."),
        Param("k", "float", shown_if=(("rule", ("mad",)),), default=DEFAULT_K, limits=LIMITS["k"],
              cli="--k",
              label="Threshold (robust sigmas)",
              help="Rule 'mad' only: flag a pixel whose noise ratio to its neighbours lies more "
                   "than this many robust standard deviations above the typical ratio. Lower "
                   "finds more hot pixels in short stacks (under 20 planes) at the risk of "
                   "flagging clean ones; higher is more conservative."),
        Param("mean_pass", "bool", default=False, cli="--mean-pass",
              label="Also detect aberrant-gain pixels (mean pass)",
              help="Also flag pixels whose mean over the planes deviates from the 3x3 median of "
                   "the mean projection by more than the threshold (aberrant gain or offset). "
                   "Use on dark frames, flat fields or sparse samples: sharp in-focus structure "
                   "(beads, under ~3 pixels) would be flagged too."),
        Param("mean_k", "float", shown_if=(("mean_pass", (True,)),), default=None,
              limits=LIMITS["mean_k"], cli="--mean-k",
              label="Mean-pass threshold (robust sigmas)",
              help="Threshold of the mean pass in robust standard deviations; blank: the same "
                   "as the noise threshold."),
        Param("fpr", "float", shown_if=(("rule", ("chi2",)),), default=DEFAULT_FPR,
              limits=LIMITS["fpr"], cli="--fpr",
              label="False-positive rate (chi2)",
              help="Rule 'chi2' only: fraction of clean pixels flagged by chance (5 in 10000 "
                   "by default). Lower flags fewer clean pixels but finds fewer noisy ones "
                   "in short stacks."),
        Param("variance_map", "file", shown_if=(("rule", ("chi2",)),), default=None, cli="--variance-map", metavar="VAR.tif",
              label="Read-noise variance map (chi2)",
              help="Rule 'chi2' only, optional: the camera's per-pixel read-noise variance in "
                   "ADU^2 (TIFF, .npy or MATLAB .mat), cropped to the region of the data. "
                   "Without it one read variance for all pixels is fitted from the data."),
        Param("map_factor", "float", shown_if=(("rule", ("chi2",)),), default=DEFAULT_MAP_FACTOR,
              limits=LIMITS["map_factor"],
              cli="--map-factor", label="Map noise factor (chi2)",
              help="Rule 'chi2' with a variance map: also replace pixels whose read-noise std "
                   "in the map is at least this many times the map's median std (0: off)."),
        Param("save_mask", "bool", default=False, label="Also output the bad-pixel mask",
              help="Also output the mask of replaced pixels (a binary image) beside the "
                   "corrected image.", frontends=_GUI, engine_arg=None),
        MEMORY_PARAM,
    ),
    references=("Amat, F. et al. (2015) Nat. Protoc. 10, 1679-1696. doi:10.1038/nprot.2015.111",),
    runner="camcorr.median.cli:run_median",
    engine=("camcorr.median.selective:selective_median",),
    translate="camcorr.median.operations:translate_median",
    cellprofiler_module="SelectiveMedian",
    epilog="Examples: camcorr median raw.tif -o clean.tif --mask-out hot_pixels.tif\n"
           "          camcorr median frames.tif --rule chi2 --variance-map var.tif",
)

OPERATIONS = [MEDIAN]


def translate_median(kwargs: dict, values: dict, *, image_shape=None,
                     argument: str = "--variance-map") -> dict:
    """``median`` values -> :func:`camcorr.median.selective_median` arguments.

    The chi-square settings (false-positive rate, map factor, the read-noise variance map read
    from ``values['variance_map']`` and checked against `image_shape` when known) are passed only
    with rule ``'chi2'``; `argument` names the map in errors.
    """
    if kwargs["rule"] != "chi2":
        kwargs.pop("fpr", None)
        kwargs.pop("map_factor", None)
        return kwargs
    path = values.get("variance_map")
    if path:
        from .noise_model import check_variance_map, read_variance_map

        vmap = read_variance_map(path, argument=argument)
        if image_shape is not None:
            vmap = check_variance_map(vmap, image_shape, argument=argument)
        kwargs["variance_map"] = vmap
    return kwargs
