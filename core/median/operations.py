"""Operation definitions: ``median``, ``gain-normalize`` and ``frc``.

One definition feeds the ``camcorr`` command line, the CellProfiler module SelectiveMedian and
the Fiji commands (Selective Median, A Posteriori Normalize, Fourier Ring Correlation).
``gain-normalize`` and ``frc`` live in :mod:`camcorr.aposteriori`; they are defined here because
they belong to the same owner.
"""
from __future__ import annotations

from ..operations import Operation, Param

__all__ = ["OPERATIONS", "MEDIAN", "GAIN_NORMALIZE", "FRC"]

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
        Param("rule", "choice", default="mad", choices=("mad", "knee"), cli="--rule",
              label="Threshold rule",
              help="'mad': robust threshold (median absolute deviation of the noise ratio to the "
                   "neighbours), flags almost nothing on clean data. 'knee': LLSpy's rule (knee "
                   "of the sorted deviations), for comparison with LLSpy; flags a few percent of "
                   "pixels even on clean data."),
        Param("k", "float", default=5.0, minval=1.0, maxval=100.0, cli="--k",
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
        Param("mean_k", "float", default=None, minval=1.0, maxval=100.0, cli="--mean-k",
              label="Mean-pass threshold (robust sigmas)",
              help="Threshold of the mean pass in robust standard deviations; blank: the same "
                   "as the noise threshold."),
        Param("save_mask", "bool", default=False, label="Also output the bad-pixel mask",
              help="Also output the mask of replaced pixels (a binary image) beside the "
                   "corrected image.", frontends=_GUI),
    ),
    references=("Amat, F. et al. (2015) Nat. Protoc. 10, 1679-1696. doi:10.1038/nprot.2015.111",),
    runner="camcorr.median.cli:run_median",
    cellprofiler_module="SelectiveMedian",
    epilog="Example: camcorr median raw.tif -o clean.tif --mask-out hot_pixels.tif",
)

GAIN_NORMALIZE = Operation(
    name="gain-normalize",
    title="A Posteriori Normalize",
    command=("gain", "normalize"),
    summary="A posteriori per-pixel normalisation of a large data set (Afanasyev et al.).",
    description="""
        Measures every pixel's mean and standard deviation over all frames of a large,
        statistically homogeneous data set (streamed: memory does not grow with the number of
        frames) and writes every frame corrected as
        I_c = (I_m - mean) / sigma * sigma0 + I0, which removes the fixed offset and gain pattern
        an a priori (flat-field) correction left behind.

        Blank or deviant frames are rejected first: a frame whose mean or standard deviation
        lies more than REJECT_K robust standard deviations from the median over frames (or that
        is constant) is not used in the statistics (it is still written, corrected).  Pixels that
        never change (sigma 0, dead pixels) are set to I0 and counted, or refused with
        --zero-sigma error.  The statistics are kept in two halves (even/odd or random frames),
        saved with --stats, so that frames can be checked by Fourier ring correlation against
        statistics they did not contribute to (see 'camcorr frc').
        """,
    params=(
        Param("frames", "images", label="Frames", required=True, metavar="FRAMES.tif",
              help="TIFF files of the data set (each may hold many frames); all frames must have "
                   "the same size."),
        Param("outdir", "output_folder", label="Output folder", cli="--output", short="-o",
              required=True, metavar="OUTDIR",
              help="Folder for the corrected files (same names as the inputs); must not be the "
                   "folder of the inputs.", frontends=_CLI),
        Param("stats", "output_file", label="Statistics file", cli="--stats",
              metavar="STATS.npz",
              help="Where to save the per-pixel statistics (two half sets, frame selection). "
                   "Default: OUTDIR/normalization_stats.npz.", frontends=_CLI),
        Param("from_stats", "file", label="Use saved statistics", cli="--from-stats",
              metavar="STATS.npz",
              help="Correct the frames with statistics saved earlier instead of measuring them "
                   "(e.g. from the last few thousand frames of the same camera).",
              frontends=_CLI),
        Param("sigma0", "float", default=None, minval=0.0, cli="--sigma0", unit="ADU",
              label="Target standard deviation",
              help="Standard deviation every pixel vector gets; blank: the mean of the per-pixel "
                   "standard deviations (keeps the original contrast)."),
        Param("i0", "float", default=None, cli="--i0", unit="ADU", label="Target mean",
              help="Mean every pixel vector gets; blank: the average density of the data set."),
        Param("reject_k", "float", default=5.0, minval=0.0, maxval=1000.0, cli="--reject-k",
              label="Frame rejection (robust sigmas)",
              help="Reject frames whose mean or standard deviation lies more than this many "
                   "robust standard deviations from the median over frames (blank or deviant "
                   "frames); 0 keeps every non-constant frame."),
        Param("split", "choice", default="even-odd", choices=("even-odd", "random"),
              cli="--split", label="Half-set split",
              help="How accepted frames are split into two halves for unbiased validation."),
        Param("zero_sigma", "choice", default="fill", choices=("fill", "error"),
              cli="--zero-sigma", label="Dead pixels (sigma 0)",
              help="'fill': set pixels that never change to the target mean and report how "
                   "many; 'error': stop with an error if there is any."),
        Param("dtype", "choice", default="keep", choices=("keep", "float32"), cli="--dtype",
              label="Output type",
              help="'keep': the input type (rounded and clipped, never wrapped); 'float32': "
                   "exact values.", frontends=_CLI),
    ),
    references=("Afanasyev, P. et al. (2015) Sci. Rep. 5, 10317. doi:10.1038/srep10317",),
    runner="camcorr.aposteriori.cli:run_normalize",
    frontends=("cli", "fiji"),
    epilog="Example: camcorr gain normalize movies/*.tif -o normalized/ --stats stats.npz",
)

FRC = Operation(
    name="frc",
    title="Fourier Ring Correlation",
    command=("frc",),
    summary="Fourier ring correlation of two images with the 3-sigma noise curve.",
    description="""
        Correlation of two images ring by ring in Fourier space, with van Heel's 3-sigma curve:
        the largest correlation two independent noise images reach by chance.  Two images (or
        averages of two disjoint sets of frames) of different specimen areas should stay
        within the curve at every frequency after a good camera correction; a fixed camera
        pattern shows as FRC above it (Afanasyev et al. 2015).  For two images of the same
        object, the frequency where the FRC crosses the curve is a resolution estimate.
        Prints the cross-over frequency and the fraction of rings above the curve; writes the
        curve as JSON and a PNG plot on request.
        """,
    params=(
        Param("a", "image", label="First image", required=True, metavar="A.tif",
              help="2D image (a single-plane TIFF)."),
        Param("b", "image", label="Second image", required=True, metavar="B.tif",
              help="2D image of the same size."),
        Param("plot", "output_file", label="Plot file", cli="--plot", metavar="FRC.png",
              help="Write a PNG plot of the FRC and the noise curves.", frontends=_CLI),
        Param("json", "output_file", label="JSON file", cli="--json", metavar="FRC.json",
              help="Write frequencies, FRC, noise curve and cross-over as JSON.",
              frontends=_CLI),
        Param("n_sigma", "float", default=3.0, minval=0.5, maxval=10.0, cli="--n-sigma",
              label="Noise curve (sigmas)",
              help="Level of the noise curve in standard deviations of the FRC of independent "
                   "noise (van Heel: 3)."),
        Param("window", "choice", default="none", choices=("none", "hann"), cli="--window",
              label="Apodisation",
              help="'hann' tapers the image edges before the Fourier transform (for images that "
                   "are not periodic); 'none' keeps the noise curve exact."),
    ),
    references=("van Heel, M. & Schatz, M. (2005) J. Struct. Biol. 151, 250-262. "
                "doi:10.1016/j.jsb.2005.05.009",
                "Afanasyev, P. et al. (2015) Sci. Rep. 5, 10317. doi:10.1038/srep10317"),
    runner="camcorr.aposteriori.cli:run_frc",
    frontends=("cli", "fiji"),
    epilog="Example: camcorr frc half1.tif half2.tif --plot frc.png --json frc.json",
)

OPERATIONS = [MEDIAN, GAIN_NORMALIZE, FRC]
