"""Operation definition of :mod:`camcorr.gain`: ``gain-estimate`` (``camcorr gain estimate``).

The same definition feeds the command line, the CellProfiler module EstimateResidualGain (which
aggregates the frames of a group with :class:`~camcorr.gain.GainAccumulator` and outputs the gain
image, optionally the normalised frames, and the report numbers and flags as measurements) and
the Fiji command "Estimate Residual Gain".
"""
from __future__ import annotations

from ..operations import Operation, Param
from .estimate import DEFAULT_SIGMAS, LIMITS, ORIENTATIONS, REFERENCES
from .scales import DEFAULT_FIELDS, FIELDS

__all__ = ["translate_estimate", "OPERATIONS", "GAIN_ESTIMATE", "SIGMAS_DEFAULT_TEXT"]

_CLI = ("cli",)
_GUI = ("cellprofiler", "fiji")
#: The engine's default sigma grid as the text the front ends show.
SIGMAS_DEFAULT_TEXT = ",".join(f"{s:g}" for s in DEFAULT_SIGMAS)

GAIN_ESTIMATE = Operation(
    name="gain-estimate",
    title="Estimate Residual Gain",
    command=("gain", "estimate"),
    summary="Estimate a camera's gain, or the gain left after a gain reference, from the movies "
            "themselves.",
    description="""
        Blind gain estimation of Sorzano et al. (2018): every frame is equalised so that
        neighbouring columns, and neighbouring rows, have the same histogram (smooth midway
        equalisation, width chosen per frame by minimal total variation); the gain is the sum of
        the recorded frames over the sum of the equalised frames.  Unlike the published operator,
        each column (row) is equalised onto its neighbours *without itself* and the rows are
        equalised after the columns (not averaged with them), so one pass recovers the full
        amplitude of the gain instead of a third of it.  The output is the
        gain in the orientation recorded = ideal x gain, normalised to mean 1: divide the frames
        by it to correct them.

        With a gain reference (residual mode) every frame is corrected by the reference first and
        the gain *left over* is estimated: flat for a good reference.  The report gives the
        standard deviation, 2.5/97.5 percentiles and maximum of that gain, the three flags of a
        suspect calibration (std > 0.04, p97.5/p2.5 > 1.15, max/p97.5 > 4.5) and the noise
        floor the data's dose allows, so a flag raised by shot noise alone can be told from a
        real calibration problem.

        Held-out validation: the gain is also estimated from the even and from the odd frames
        alone; the report gives, beside the in-sample std, the std that the other half
        reproduces, the R^2 between the halves and the gain one half leaves in the other, and
        says when in-sample and held-out disagree (structure that is noise, not gain).

        The method sees gain that differs between neighbouring columns or rows (readout
        channels, stripes, tiles) and isolated hot or dead pixels.  It assumes all columns (rows)
        of a frame have similar histograms: frames dominated by a few large objects (phase-plate
        images, a foil hole across the field) break that assumption.  Use many frames (tens or
        more); frames of several movies of the same camera can be pooled.  If the frames show
        independent fields (several movies, a moving specimen), say so (fields = independent):
        the low spatial frequencies the equalisation cannot see then come from the pooled mean
        of the frames.
        """,
    params=(
        Param("movies", "images", label="Movie frames", required=True, metavar="MOVIE",
              help="Movie(s) of the camera, raw (not gain-corrected) frames in ADU or counts: "
                   "TIFF stacks, or MRC movies (.mrc/.mrcs) if mrcfile is installed. All frames of "
                   "all movies are pooled; they are streamed, so any number fits in memory. In "
                   "CellProfiler: the image of each cycle; the frames of a group are pooled."),
        Param("output", "output_file", label="Gain image file", cli="--output", short="-o",
              required=True, metavar="GAIN.tif",
              help="Where to write the estimated gain (float32 TIFF, mean 1; in residual mode "
                   "the residual gain). Never one of the inputs.", frontends=_CLI),
        Param("gain_ref", "image", label="Gain reference (optional)", cli="--gain-ref",
              metavar="REF.tif",
              help="Measured gain reference of the camera: switches to residual mode (the frames "
                   "are corrected by it and the gain left over is estimated; flat if the "
                   "reference is right). Must have the frames' shape and no pixel <= 0. Leave "
                   "empty for blind estimation."),
        Param("ref_orientation", "choice", default="divide", choices=ORIENTATIONS,
              cli="--ref-orientation", label="The reference is applied by",
              help="'divide': corrected = frame / reference (recorded = ideal x gain, the "
                   "orientation camcorr writes). 'multiply': corrected = frame x reference (gain "
                   "references written for RELION, MotionCor2 and SerialEM)."),
        Param("report", "output_file", label="Report file", cli="--report", metavar="REPORT.json",
              help="Also write the report (statistics, flags, noise floors, settings) as JSON.",
              frontends=_CLI),
        Param("sigmas", "str", default=SIGMAS_DEFAULT_TEXT, cli="--sigmas", label="Sigma grid",
              metavar="S,S,...",
              help="Candidate widths (in columns/rows) of the Gaussian weighting of neighbouring "
                   "columns/rows; per frame and direction the one giving the least total "
                   "variation is used. 0 (no equalisation) is a real candidate. Comma- or "
                   "space-separated numbers in " + LIMITS["sigmas"].interval() + "."),
        Param("reference", "choice", default="smooth", choices=REFERENCES,
              cli="--reference", label="Equalisation reference",
              help="'smooth': each column (row) is equalised to its Gaussian-weighted neighbours "
                   "(robust to specimen structure, misses slow trends). 'single': every column "
                   "(row) is equalised to the mean of all (midway equalisation; also sees slow "
                   "column/row trends, but takes large specimen features for gain)."),
        Param("iterations", "int", default=1, limits=LIMITS["iterations"], cli="--iterations",
              label="Maximum iterations",
              help="Each iteration re-estimates the gain on the frames divided by the current "
                   "estimate (one pass over the frames). One iteration recovers the full "
                   "amplitude; 2-3 sharpen estimates from integrating cameras slightly (R^2 "
                   "0.85 -> 0.89 at 10 % specimen texture) but fit the shot noise of counting "
                   "movies (their residual std grows)."),
        Param("tolerance", "float", default=1e-3, limits=LIMITS["tolerance"], cli="--tolerance",
              label="Tolerance",
              help="Stop iterating when the RMS change of the (mean 1) gain is below this."),
        Param("offset", "float", default=0.0, limits=LIMITS["offset"], cli="--offset",
              unit="ADU", label="Camera offset",
              help="Dark level subtracted from every frame first (integrating cameras; 0 for "
                   "counting detectors and offset-free data)."),
        Param("electrons_per_adu", "float", default=1.0, limits=LIMITS["electrons_per_adu"],
              cli="--electrons-per-adu", unit="e/ADU", label="Electrons per ADU",
              help="Conversion factor of the camera, for the noise floor of the report only "
                   "(1 for counting data)."),
        Param("read_noise_e", "float", default=0.0, limits=LIMITS["read_noise_e"], cli="--read-noise",
              unit="e", label="Read noise",
              help="Read noise per frame in electrons, for the noise floor of the report only "
                   "(0 for counting detectors)."),
        Param("fields", "choice", default=DEFAULT_FIELDS, choices=FIELDS, cli="--fields",
              label="The frames show",
              help="'same': one field of view in every frame (a single exposure's movie); the "
                   "blind estimate is used, which cannot see gain structure that is smooth over "
                   "a few columns/rows (the report gives the periods). 'independent': "
                   "independent fields (several movies, a moving specimen, frames pooled from "
                   "many exposures); the pooled mean of the frames then supplies the low "
                   "spatial frequencies, weighted against the blind estimate at every frequency "
                   "by their errors estimated from the frames (the report's scales.r2_expected "
                   "and noise_limited say how far the specimen's pooled residual limits it). "
                   "With 'independent', illumination that is the same in every frame is counted "
                   "as gain."),
        Param("output_normalized", "bool", default=False,
              label="Also output the gain-normalised images",
              help="Also output every frame divided by the estimated (total) gain.",
              frontends=_GUI, engine_arg=None),
    ),
    references=(
        "Sorzano, C.O.S. et al. (2018) Blind estimation of DED camera gain in Electron "
        "Microscopy. J. Struct. Biol. 203(2), 90-93. doi:10.1016/j.jsb.2018.03.007",
        "Tendero, Y., Landeau, S. & Gilles, J. (2012) Non-uniformity correction of infrared "
        "images by midway equalization. Image Process. Line 2, 134-146. "
        "doi:10.5201/ipol.2012.glmt-mire",
    ),
    runner="camcorr.gain.cli:run_estimate",
    translate="camcorr.gain.operations:translate_estimate",
    engine=("camcorr.gain.estimate:estimate_gain",),
    cellprofiler_module="EstimateResidualGain",
    epilog="Examples:\n"
           "  camcorr gain estimate movie_*.tif -o gain.tif --report gain_report.json\n"
           "  camcorr gain estimate movie.mrc --gain-ref ref.tif -o residual.tif --report r.json",
)

OPERATIONS = [GAIN_ESTIMATE]


def translate_estimate(kwargs: dict, values: dict, *, argument: str = "--sigmas",
                       gain_ref=None) -> dict:
    """``gain-estimate`` values -> :func:`camcorr.gain.estimate_gain` keyword arguments.

    The sigma grid text becomes numbers (`argument` names it in errors: the CLI flag, a
    CellProfiler setting text); `gain_ref` (an array the front end has read) is passed on.
    """
    from .estimate import parse_sigmas

    kwargs["sigmas"] = parse_sigmas(kwargs["sigmas"], argument=argument)
    kwargs["gain_ref"] = gain_ref
    return kwargs
