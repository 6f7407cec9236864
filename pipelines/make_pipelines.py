"""Write the example CellProfiler pipelines of camcorr (``python pipelines/make_pipelines.py``).

The ``.cppipe`` files in this folder are generated here from module objects of the installed
CellProfiler and the camcorr plugins, then saved with ``Pipeline.dump``: they carry exactly the
setting texts and revision numbers of the CellProfiler version the tests run.  Re-run this script
after changing a plugin's settings (the tests check the files load and run).

Input naming each pipeline expects is described in ``pipelines/README.md``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "cellprofiler_plugins"))

import _builders as b  # noqa: E402

INPUT_NOTE = ("Input: see pipelines/README.md. Run headless: python -m cellprofiler -c -r -p "
              "PIPELINE -i IN -o OUT --plugins-directory cellprofiler_plugins")


def median_pipeline():
    """Selective median on 3D stacks: every TIFF of the input folder is one (Z, Y, X) stack."""
    mods = b.input_modules(regex=r"^(?P<Stack>[^.]+)", single_name="raw", volume=True)
    sm = b.module("SelectiveMedian")
    sm.image_name.value = "raw"
    sm.output_name.value = "MedianCorrected"
    sm.mode.value = "Each 3D image on its own"
    sm.params.by_name["save_mask"][0].value = True
    sm.mask_name.value = "BadPixels"
    mods += [sm,
             b.save_images("MedianCorrected", suffix="_median", from_image="raw"),
             b.save_images("BadPixels", suffix="_badpixels", bit_depth="8-bit integer",
                           from_image="raw"),
             b.export_measurements()]
    notes = {
        2: ["Every TIFF is one raw stack (Z, Y, X) in camera counts: 'Process as 3D' is on and "
            "intensities are scaled by the file's bit depth, so the plugin recovers exact ADU."],
        4: ["SelectiveMedian on each volume: the noise (std over Z) of every pixel is compared "
            "with its 8 neighbours; only outliers are replaced in every plane.",
            "Rule 'mad' (default) flags almost nothing on clean data; the mask is output as "
            "BadPixels. Measurements (Flagged, PercentFlagged, ...) go to Image.csv."],
        5: ["16-bit TIFF, same bit depth as the raw data: values stay in ADU."],
    }
    return mods, notes


def _flash_two_channels(time_series: bool) -> list:
    """FlashCarryoverCorrect on ch0, ch1 (acquisition order) + saving both + the measurements."""
    fc = b.module("FlashCarryoverCorrect")
    fc.params.by_name["time_series"][0].value = time_series
    _set_file(fc, "params", "FlashParam_sn100740_roi1001-1011-1048-1050_date20240517.tif")
    _set_file(fc, "settings", "cell1_Settings.txt")
    fc.channels[0].input_name.value = "ch0"
    fc.channels[0].output_name.value = "ch0_flash"
    fc.add_channel()
    fc.channels[1].input_name.value = "ch1"
    fc.channels[1].output_name.value = "ch1_flash"
    return [fc,
            b.save_images("ch0_flash", suffix="_flash", from_image="ch0"),
            b.save_images("ch1_flash", suffix="_flash", from_image="ch1"),
            b.export_measurements()]


def flash_pipeline():
    """Flash4.0 carryover on LLS acquisitions: ``*_ch0_stack0000_*.tif`` + ``*_ch1_...``."""
    mods = b.input_modules(
        regex=r"^(?P<Cell>.+)_ch(?P<Ch>\d+)_stack(?P<Stack>\d{4})",
        assignments=[("ch0", 'file does contain "_ch0_"'), ("ch1", 'file does contain "_ch1_"')],
        match_keys=("Cell", "Stack"), volume=True)
    mods += _flash_two_channels(time_series=False)
    notes = {
        2: ["Channels of one timepoint matched by Cell and Stack metadata; each file is a "
            "volume ('Process as 3D')."],
        4: ["Channels listed in acquisition order (ch0 then ch1). The parameter file and the "
            "acquisition's Settings.txt are read from the Default Input Folder: put them beside "
            "the data (the Images module skips files starting with FlashParam or Settings).",
            "The maps are cut to the ROI in Settings.txt; 'Cycle lasers' there sets the frame "
            "order. Output is offset-subtracted."],
    }
    return mods, notes


def gain_pipeline():
    """Residual gain of movies: 2D frame files ``MOVIE_t0000.tif``, grouped by MOVIE."""
    mods = b.input_modules(regex=r"^(?P<Movie>.+)_t(?P<Timepoint>[0-9]+)", single_name="frame",
                           group_keys=("Movie",))
    eg = b.module("EstimateResidualGain")
    eg.image_name.value = "frame"
    eg.gain_name.value = "Gain"
    eg.params.by_name["offset"][0].value = 100.0
    eg.params.by_name["output_normalized"][0].value = True
    eg.normalized_name.value = "GainNormalized"
    mods += [eg,
             b.save_images("Gain", suffix="", single_name=r"\g<Movie>_gain",
                           bit_depth="No conversion", when="Last cycle"),
             b.save_images("GainNormalized", suffix="_gainnorm", from_image="frame"),
             b.export_measurements()]
    notes = {
        1: ["One 2D TIFF per frame, named MOVIE_tNNNN.tif (zero-padded NNNN: image sets follow "
            "file-name order). 'Extract image planes' is left off: CellProfiler 5's ImageIO "
            "reader splits multi-frame TIFFs wrongly, and Bio-Formats needs Java and network."],
        3: ["Grouped by Movie: one group = one movie = the frames the gain is estimated from."],
        4: ["Before the first frame of a movie, all its frames are read (streamed, one pass per "
            "iteration; one iteration recovers the full gain amplitude) and the gain is estimated; each cycle then outputs the gain and the "
            "frame divided by it. Camera offset 100 ADU (a Flash4.0): set yours, 0 for counting "
            "detectors. Report numbers and flags go to Image.csv (ResidualGain_*)."],
        5: ["The gain (mean 1, float32) is saved once per movie, at its last frame, unconverted "
            "(32-bit floating point refuses values above 1), as MOVIE_gain.tiff."],
        6: ["Normalised frames: 16-bit, same names plus _gainnorm."],
    }
    return mods, notes


WSI_EMPTY = "1,7,8,10,27,37,44,47,48,53,54,55,56,58,59,60,61,62,63"


def flatfield_pipeline():
    """Flat-field from empty tiles of a 2D mosaic: files ``...<number>.tif``, number = tile."""
    mods = b.input_modules(regex=r"(?P<Tile>[0-9]+)\.tiff?$", single_name="tile")
    fm = b.module("FlatfieldFromEmptyTiles")
    fm.image_name.value = "tile"
    fm.output_name.value = "FlatfieldCorrected"
    fm.flatfield_name.value = "Flatfield"
    fm.tile_source.value = "Metadata"
    fm.tile_key.value = "Tile"
    est = fm.estimate.by_name
    est["method"][0].value = "empty-tiles"
    est["grid"][0].value = "7, 9"
    est["order"][0].value = "serpentine"
    est["empty_tiles"][0].value = WSI_EMPTY
    mods += [fm,
             b.save_images("FlatfieldCorrected", suffix="_flatfield", from_image="tile"),
             b.save_images("Flatfield", suffix="", single_name="flatfield",
                           bit_depth="No conversion", when="Last cycle"),
             b.export_measurements()]
    notes = {
        1: ["The tile number is the number at the end of the file name (BrainSection0007.tif -> "
            "tile 7), counted from 1 in acquisition order."],
        3: ["No grouping: all tiles of the input folder form one mosaic. For several channels or "
            "mosaics, group by their metadata so each group is one mosaic of one channel."],
        4: ["Set up for the BaSiC WSI_brain mosaic (7 rows x 9 columns, serpentine, 19 empty "
            "tiles): edit 'Empty tiles' (and the grid) for your acquisition, or choose 'z-range' "
            "for 3D tiles with empty planes, or a models folder for a measured flat-field.",
            "Before the first tile the module reads every tile of the group, estimates the "
            "flat-field, then corrects every tile; quality numbers (CVBefore/CVAfter, "
            "corner/centre) go to Image.csv. Offset 0: set the camera offset for raw data.",
            "Rescale 'ceiling' (like CorrectIlluminationCalculate's rescaling): the flat-field is "
            "divided by its minimum, so no corrected pixel exceeds 65535; Baseline 'none': no "
            "pixel becomes 0. Clipped pixels are counted (ClippedToZero, ClippedToMaximum)."],
        6: ["The flat-field actually divided by is saved once, at the last cycle, unconverted "
            "(float32, minimum 1 with Rescale 'ceiling'; 32-bit floating point would refuse "
            "values above 1)."],
    }
    return mods, notes


def chain_pipeline():
    """Flash carryover -> selective median -> flat-field -> SaveImages on LLS acquisitions."""
    mods, _ = flash_pipeline()
    mods = mods[:5]  # Images, Metadata, NamesAndTypes, Groups, FlashCarryoverCorrect
    for ch in ("ch0", "ch1"):
        sm = b.module("SelectiveMedian")
        sm.image_name.value = f"{ch}_flash"
        sm.output_name.value = f"{ch}_median"
        sm.mode.value = "Each 3D image on its own"
        mods.append(sm)
    for ch in ("ch0", "ch1"):
        fm = b.module("FlatfieldFromEmptyTiles")
        fm.image_name.value = f"{ch}_median"
        fm.output_name.value = f"{ch}_corrected"
        fm.flatfield_name.value = f"{ch}_flatfield"
        fm.tile_source.value = "Order within the group"
        fm.estimate.by_name["method"][0].value = "empty-tiles"
        fm.estimate.by_name["offset"][0].value = 0.0
        mods.append(fm)
    for ch in ("ch0", "ch1"):
        mods.append(b.save_images(f"{ch}_corrected", suffix="_corrected", from_image=ch))
    for ch in ("ch0", "ch1"):
        mods.append(b.save_images(f"{ch}_flatfield", suffix="", single_name=f"{ch}_flatfield",
                                  bit_depth="No conversion", when="Last cycle"))
    mods.append(b.export_measurements())
    notes = {
        2: ["LLS acquisition: *_ch0_stackNNNN_*.tif and *_ch1_stackNNNN_*.tif volumes (one per "
            "channel and timepoint), matched by Cell and Stack metadata, 'Process as 3D'."],
        3: ["No grouping: all timepoints form one group, which is what the flat-field modules "
            "aggregate over (each stack is one 'tile')."],
        4: ["1. Carryover: channels in acquisition order; FlashParam_*.tif and the acquisition's "
            "Settings.txt beside the data (Default Input Folder). Output offset-subtracted."],
        5: ["2. Selective median on each carryover-corrected volume (hot/noisy pixels)."],
        7: ["3. Flat-field per channel from all stacks of the group ('empty-tiles' with no list: "
            "the per-pixel median of sampled planes, for sparse specimens such as beads). "
            "Offset 0: the carryover step already removed it. Computed before the first cycle "
            "(reading every stack through steps 1-2), then applied to every stack."],
        9: ["4. Corrected volumes as 16-bit TIFF (ADU, offset removed): *_corrected.tiff."],
        11: ["Flat-fields saved once (float32, minimum 1: Rescale 'ceiling') as "
             "ch0_flatfield.tiff / ch1_flatfield.tiff."],
    }
    return mods, notes


def flash_timeseries_pipeline():
    """Flash4.0 carryover on 2D time series: ``MOVIE_tNNNN_chC.tif``, grouped by MOVIE."""
    mods = b.input_modules(
        regex=r"^(?P<Movie>.+)_t(?P<Timepoint>[0-9]+)_ch(?P<Ch>[0-9]+)",
        assignments=[("ch0", 'file does contain "_ch0"'), ("ch1", 'file does contain "_ch1"')],
        match_keys=("Movie", "Timepoint"), group_keys=("Movie",))
    mods += _flash_two_channels(time_series=True)
    notes = {
        1: ["One 2D TIFF per frame, named MOVIE_tNNNN_chC.tif (zero-padded NNNN: cycles follow "
            "the timepoint order). 'Extract image planes' is left off: CellProfiler 5's ImageIO "
            "reader splits multi-frame TIFFs wrongly."],
        2: ["The channels of one timepoint are matched by Movie and Timepoint metadata: one cycle "
            "= one timepoint, its 2D frames in ch0, ch1."],
        3: ["Grouped by Movie: the frame taken before a cycle's first channel is the last "
            "channel's raw frame of the previous cycle of the same group; the first cycle of a "
            "group only has its offset subtracted."],
        4: ["Time-series mode (2D frames). Channels listed in acquisition order (ch0 then ch1). "
            "The parameter file and Settings.txt (for the camera ROI) are read from the Default "
            "Input Folder. Output is offset-subtracted."],
    }
    return mods, notes


def median_2d_frames_pipeline():
    """Selective median over the 2D frames of a group: ``MOVIE_tNNNN.tif``, grouped by MOVIE."""
    mods = b.input_modules(regex=r"^(?P<Movie>.+)_t(?P<Timepoint>[0-9]+)", single_name="frame",
                           group_keys=("Movie",))
    sm = b.module("SelectiveMedian")
    sm.image_name.value = "frame"
    sm.output_name.value = "MedianCorrected"
    sm.mode.value = "2D frames of the group"
    sm.params.by_name["save_mask"][0].value = True
    sm.mask_name.value = "BadPixels"
    mods += [sm,
             b.save_images("MedianCorrected", suffix="_median", from_image="frame"),
             b.save_images("BadPixels", suffix="", single_name=r"\g<Movie>_badpixels",
                           bit_depth="8-bit integer", when="Last cycle"),
             b.export_measurements()]
    notes = {
        1: ["One 2D TIFF per frame, named MOVIE_tNNNN.tif (zero-padded NNNN). 'Extract image "
            "planes' is left off: CellProfiler 5's ImageIO reader splits multi-frame TIFFs "
            "wrongly."],
        3: ["Grouped by Movie: the frames of one group form the stack whose per-pixel noise "
            "is examined."],
        4: ["SelectiveMedian, '2D frames of the group': before the group's first cycle all its "
            "frames are read (streamed) and the bad-pixel mask is found; every cycle then "
            "replaces the flagged pixels of its frame by the median of their neighbours.",
            "One mask per group: Flagged/PercentFlagged in Image.csv are the group's."],
        5: ["16-bit TIFF, same bit depth as the raw data: values stay in ADU."],
        6: ["The mask (one per group) is saved at the group's last cycle as "
            "MOVIE_badpixels.tiff."],
    }
    return mods, notes


def _set_file(mod, name, filename, folder="Default Input Folder|"):
    location, fname = mod.params.by_name[name]
    location.value = folder
    fname.value = filename


PIPELINES = {
    "selective_median.cppipe": median_pipeline,
    "flash_carryover.cppipe": flash_pipeline,
    "flatfield_empty_tiles.cppipe": flatfield_pipeline,
    "residual_gain.cppipe": gain_pipeline,
    "chain_flash_median_flatfield.cppipe": chain_pipeline,
    "flash_carryover_timeseries.cppipe": flash_timeseries_pipeline,
    "selective_median_2d_frames.cppipe": median_2d_frames_pipeline,
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="pipelines to write (default: all)")
    parser.add_argument("--out", default=str(HERE), help="folder (default: pipelines/)")
    args = parser.parse_args(argv)
    b.init_cellprofiler()
    for name, fn in PIPELINES.items():
        if args.names and name not in args.names:
            continue
        mods, notes = fn()
        path = b.build(mods, Path(args.out) / name, notes)
        print("wrote", path)


if __name__ == "__main__":
    main()
