"""Operation definitions of :mod:`camcorr.aposteriori`: ``gain-normalize`` and ``frc``.

One definition feeds the ``camcorr`` command line and the Fiji commands (A Posteriori
Normalize, Fourier Ring Correlation).
"""
from __future__ import annotations

from ..operations import Operation, Param
from ..streaming import MEMORY_PARAM
from .frc import DEFAULT_N_SIGMA, LIMITS as FRC_LIMITS, WINDOWS
from .normalize import DEFAULT_REJECT_K, LIMITS, SPLITS, ZERO_SIGMA

__all__ = ["OPERATIONS", "GAIN_NORMALIZE", "FRC"]

_CLI = ("cli",)

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
                   "Default: OUTDIR/normalization_stats.npz (in Fiji: not kept).",
              frontends=("cli", "fiji")),
        Param("from_stats", "file", label="Use saved statistics", cli="--from-stats",
              metavar="STATS.npz",
              help="Correct the frames with statistics saved earlier instead of measuring them "
                   "(e.g. from the last few thousand frames of the same camera).",
              frontends=("cli", "fiji")),
        Param("sigma0", "float", default=None, limits=LIMITS["sigma0"], cli="--sigma0", unit="ADU",
              label="Target standard deviation",
              help="Standard deviation every pixel vector gets; blank: the mean of the per-pixel "
                   "standard deviations (keeps the original contrast)."),
        Param("i0", "float", default=None, cli="--i0", unit="ADU", label="Target mean",
              help="Mean every pixel vector gets; blank: the average density of the data set."),
        Param("reject_k", "float", default=DEFAULT_REJECT_K, limits=LIMITS["reject_k"],
              cli="--reject-k",
              label="Frame rejection (robust sigmas)",
              help="Reject frames whose mean or standard deviation lies more than this many "
                   "robust standard deviations from the median over frames (blank or deviant "
                   "frames); 0 keeps every non-constant frame."),
        Param("split", "choice", default="even-odd", choices=SPLITS,
              cli="--split", label="Half-set split",
              help="How accepted frames are split into two halves for unbiased validation."),
        Param("zero_sigma", "choice", default="fill", choices=ZERO_SIGMA,
              cli="--zero-sigma", label="Dead pixels (sigma 0)",
              help="'fill': set pixels that never change to the target mean and report how "
                   "many; 'error': stop with an error if there is any."),
        Param("dtype", "choice", default="keep", choices=("keep", "float32"), cli="--dtype",
              label="Output type",
              help="'keep': the input type (rounded and clipped, never wrapped); 'float32': "
                   "exact values.", frontends=_CLI, engine_arg=None),
        MEMORY_PARAM,
    ),
    references=("Afanasyev, P. et al. (2015) Sci. Rep. 5, 10317. doi:10.1038/srep10317",),
    runner="camcorr.aposteriori.cli:run_normalize",
    engine=("camcorr.aposteriori.normalize:compute_stats", "camcorr.aposteriori.normalize:normalize"),
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
        Param("n_sigma", "float", default=DEFAULT_N_SIGMA, limits=FRC_LIMITS["n_sigma"], cli="--n-sigma",
              label="Noise curve (sigmas)",
              help="Level of the noise curve in standard deviations of the FRC of independent "
                   "noise (van Heel: 3)."),
        Param("window", "choice", default="none", choices=WINDOWS, cli="--window",
              label="Apodisation",
              help="'hann' tapers the image edges before the Fourier transform (for images that "
                   "are not periodic); 'none' keeps the noise curve exact."),
    ),
    references=("van Heel, M. & Schatz, M. (2005) J. Struct. Biol. 151, 250-262. "
                "doi:10.1016/j.jsb.2005.05.009",
                "Afanasyev, P. et al. (2015) Sci. Rep. 5, 10317. doi:10.1038/srep10317"),
    runner="camcorr.aposteriori.cli:run_frc",
    engine=("camcorr.aposteriori.frc:frc",),
    frontends=("cli", "fiji"),
    epilog="Example: camcorr frc half1.tif half2.tif --plot frc.png --json frc.json",
)

OPERATIONS = [GAIN_NORMALIZE, FRC]
