"""Operation definitions of :mod:`camcorr.flash` (command line, CellProfiler, Fiji)."""
from __future__ import annotations

from ..operations import Operation, Param
from ..streaming import MEMORY_PARAM
from .correct import DEFAULT_DAMPENING, LIMITS

__all__ = ["OPERATIONS", "CALIBRATE", "CORRECT", "translate_correct"]

_REFS = ("Lambert, T. LLSpy camera corrections: Flash4.0 charge carryover "
         "(llspy.readthedocs.io/en/latest/camera.html)",
         "Amat, F. et al. (2015) Nat. Protoc. 10, 1679-1696, doi:10.1038/nprot.2015.111")

CALIBRATE = Operation(
    name="flash-calibrate",
    title="Flash Carryover Calibrate",
    command=("flash", "calibrate"),
    summary="Measure the charge carryover of a Flash4.0 camera from bright/dark image pairs.",
    description="""
        A Hamamatsu Flash4.0 in synchronous-readout mode keeps part of the charge of a bright
        exposure and adds it to the next one: faint ghost copies of bright channel 0 objects
        appear in channel 1 and smear across deskewed projections.  This command measures, for
        every camera pixel, how much carries over: carryover = A * (1 - exp(-B * x)), x being the
        previous frame minus the camera offset.

        CALIB_DIR must hold, as for LLSpy ('lls camera -c'):
          * pairs of stacks *_ch0_*.tif (bright, even illumination, e.g. fluorescein) and
            *_ch1_*.tif (dark, no light, acquired right after each bright plane), at many laser
            powers from 0.1 % up to about 5000 counts, ~200 planes per power;
          * dark frames: any *.tif whose name contains 'dark' (thousands of frames, same ROI);
          * the *Settings.txt of the acquisition (camera serial number and ROI).

        The result is an LLSpy-compatible parameter file FlashParam_sn<serial>_roi<L-T-R-B>_
        date<YYYYMMDD>.tif (4 float32 planes: A, B, offset, read noise) written into CALIB_DIR
        (or -o), plus FlashFitQuality_*.tif (fit residual in ADU and a failure code per pixel).
        Files are read a block at a time: memory does not grow with the number of frames.
        Use the parameter file with 'camcorr flash correct' (or LLSpy).
        """,
    params=(
        Param("calib_dir", "folder", required=True, label="Calibration folder",
              metavar="CALIB_DIR",
              help="Folder of bright (*_ch0_*) / dark (*_ch1_*) stack pairs, *dark* frames and "
                   "the acquisition's Settings.txt."),
        Param("output", "output_file", default=None, cli="--output", short="-o",
              label="Parameter file", metavar="PARAMS.tif",
              help="Where to write the parameter file: a .tif path or a folder (then LLSpy's name "
                   "FlashParam_sn.._roi.._date...tif is used). Default: inside CALIB_DIR.",
              frontends=("cli", "fiji")),
        Param("progress", "bool", default=True, cli="--progress", label="Progress bar",
              help="Show a progress bar while reading the frames (--no-progress to hide it).",
              frontends=("cli",), engine_arg=None),
    ),
    references=_REFS,
    runner="camcorr.flash.cli:run_calibrate",
    engine=("camcorr.flash.calibrate:calibrate_folder",),
    frontends=("cli", "fiji"),
    epilog="Example: camcorr flash calibrate /data/flash_calibration_2024-05-17/",
)

CORRECT = Operation(
    name="flash-correct",
    title="Flash Carryover Correct",
    command=("flash", "correct"),
    summary="Remove Flash4.0 charge carryover from lattice light-sheet stacks.",
    description="""
        Subtracts the camera offset and the charge carried over from the previous camera frame,
        using a parameter file from 'camcorr flash calibrate' (or LLSpy).  The previous frame is
        the one the camera took just before: with 'Cycle lasers: per Z' the channels alternate
        plane by plane (ch0 z0, ch1 z0, ..., ch0 z1, ...), so give the channel stacks of ONE
        timepoint in acquisition order (ch0 first).  A folder of LLS files is also accepted:
        its *_ch<c>_stack<t>_*.tif files are grouped by timepoint and camera, channels in order.
        One ImageJ hyperstack file (axes with C, e.g. ZCYX as Fiji saves a 2-channel stack) is
        also accepted: its channels, in C order, are the channels of one timepoint (with a T
        axis, each timepoint is corrected on its own); the result is a hyperstack of the same
        layout.  A single single-channel stack is corrected as a single-channel acquisition (the
        previous frame is the previous plane) and a one-line note says so.  In Fiji, the
        current image is the input: open the channels as one hyperstack with C channels.

        The data's Settings.txt tells where the data's camera ROI lies inside the calibration
        ROI; it is taken from --settings, or found beside the data.  Without it the parameter
        file must have exactly the size of the images.

        Output: corrected stacks with the same names in OUTDIR, offset subtracted.  By default
        they keep the input type (uint16), rounded and clipped at 0 and at the type maximum
        (never wrapped); --dtype float32 keeps negative noise values.  Inputs are never
        overwritten.  In twin-camera mode the carryover is already cleared: no need to correct.
        """,
    params=(
        Param("images", "images", required=True, label="Raw stacks", metavar="STACK.tif",
              help="Channel stacks of one timepoint in acquisition order (ch0 first), one "
                   "multi-channel ImageJ hyperstack (axes with C: the channels of one "
                   "timepoint), or one folder of LLS files.", frontends=("cli",)),
        Param("params", "file", required=True, cli="--params", short="-p",
              label="Carryover parameter file", metavar="PARAMS.tif",
              help="FlashParam_*.tif written by 'camcorr flash calibrate' or by LLSpy. Its name "
                   "must contain roi<L>-<T>-<R>-<B> to align it with data of another ROI."),
        Param("settings", "file", default=None, cli="--settings", short="-s",
              label="Settings.txt of the data (optional)", metavar="Settings.txt",
              help="The data's LLS Settings.txt (camera ROI, laser cycling). Default: the "
                   "*Settings.txt beside the data, if there is exactly one. Without it the "
                   "parameter file must have the images' size."),
        Param("dampening", "float", default=DEFAULT_DAMPENING, cli="--dampening", short="-d",
              limits=LIMITS["dampening"], label="Dampening factor", metavar="D",
              help="Fraction of the predicted carryover to subtract. 1.0 removes the fitted "
                   "carryover entirely (best on simulated data); LLSpy uses 0.88."),
        Param("dtype", "choice", default="keep", choices=("keep", "float32"), cli="--dtype",
              label="Output type",
              help="'keep': same type as the input (uint16), clipped at 0 and at the maximum; "
                   "'float32': floating point, negative noise values kept.", engine_arg=None),
        Param("time_series", "bool", default=False, label="Treat images as consecutive frames",
              help="2D time-series mode: each image is one camera frame and the previous image "
                   "(of this channel sequence) is the frame acquired just before it; the first "
                   "one gets offset subtraction only.", frontends=("cellprofiler", "fiji"),
              engine_arg=None),
        Param("output", "output_folder", default=None, cli="--output", short="-o",
              label="Output folder", metavar="OUTDIR",
              help="Folder for the corrected stacks (same file names). Default: a folder "
                   "'flash_corrected' beside the data.", frontends=("cli",)),
        MEMORY_PARAM,
    ),
    references=_REFS,
    runner="camcorr.flash.cli:run_correct",
    translate="camcorr.flash.operations:translate_correct",
    engine=("camcorr.flash.correct:correct_interleaved", "camcorr.flash.correct:correct_frame"),
    cellprofiler_module="FlashCarryoverCorrect",
    epilog=("Examples:\n"
            "  camcorr flash correct cell1/ --params FlashParam_sn100740_roi513-769-1536-1280_"
            "date20240517.tif -o cell1_corrected/\n"
            "  camcorr flash correct cell1_CamA_ch0_stack0000_488nm.tif "
            "cell1_CamA_ch1_stack0000_642nm.tif -p P.tif -s cell1_Settings.txt -o out/"),
)

OPERATIONS = [CALIBRATE, CORRECT]


def translate_correct(kwargs: dict, values: dict, *, image_shape=None, settings=None,
                      notes=None) -> dict:
    """``flash-correct`` values -> :func:`camcorr.flash.correct_interleaved` arguments.

    Reads the parameter file ``values['params']``, cuts it to the data's camera ROI from the
    Settings.txt (`settings`, an :class:`~camcorr.flash.settings.LLSSettings` the front end found,
    else the file ``values['settings']``; the serial numbers are compared) and checks it against
    `image_shape` when known; the laser cycling ('per Z' or 'per stack') comes from the same
    Settings.txt ('per Z' without one).  Messages for the user are appended to `notes` (a list).
    """
    from .params import prepare_params, read_params
    from .settings import parse_settings

    say = notes.append if notes is not None else (lambda message: None)
    if settings is None and values.get("settings"):
        settings = parse_settings(values["settings"])
    if settings is not None and settings.twin_cam:
        say("note: the Settings.txt says twin-camera mode, which clears the carryover: the "
            "correction is probably not needed")
    kwargs["params"] = prepare_params(read_params(values["params"]), image_shape, settings,
                                      note=say)
    kwargs["cycle"] = "per Z" if settings is None or settings.interleaved_per_z else "per stack"
    return kwargs
