"""FlashCarryoverCorrect: remove Hamamatsu Flash4.0 synchronous-readout charge carryover.

CellProfiler front end of :func:`camcorr.flash.correct_interleaved` (channel volumes of one
timepoint) and :func:`camcorr.flash.correct_frame` (2D time series).  Settings come from the
``flash-correct`` operation definition shared with the ``camcorr`` command line and Fiji.
"""
from __future__ import annotations

import os
from typing import Dict, List, Optional

import numpy as np
from cellprofiler_core.constants.measurement import COLTYPE_FLOAT
from cellprofiler_core.image import Image
from cellprofiler_core.setting import HiddenCount, SettingsGroup, ValidationError
from cellprofiler_core.setting.do_something import DoSomething, RemoveSettingButton
from cellprofiler_core.setting.subscriber import ImageSubscriber
from cellprofiler_core.setting.text import ImageName

import camcorr.flash as flash
from camcorr.errors import CamcorrError
from camcorr.operations import get_operation

from _common import CamcorrModule, build_help
from _settings import ParamSettings
from _units import from_adu, image_scale, to_adu

OPERATION = get_operation("flash-correct")

#: Setting keys of every revision (fixed part, in file order); the channel groups follow.
#: Revision 1 had neither the output type nor the 2D time-series mode.
SETTING_HISTORY: Dict[int, List[str]] = {
    1: ["params:folder", "params", "settings:folder", "settings", "dampening", "channel_count"],
    2: ["params:folder", "params", "settings:folder", "settings", "dampening", "dtype",
        "time_series", "channel_count"],
}

FEATURES = [("MeanCarryover", COLTYPE_FLOAT), ("MaxCarryover", COLTYPE_FLOAT),
            ("MeanOffset", COLTYPE_FLOAT), ("FractionBelowZero", COLTYPE_FLOAT)]



class FlashCarryoverCorrect(CamcorrModule):
    module_name = "FlashCarryoverCorrect"
    variable_revision_number = 2
    SETTING_HISTORY = SETTING_HISTORY
    measurement_category = "FlashCarryover"

    __doc__ = build_help(
        OPERATION,
        intro="""\
**FlashCarryoverCorrect** removes the charge that a Hamamatsu Flash4.0 carries from one frame
into the next in synchronous-readout mode (lattice light-sheet microscopes), and subtracts the
camera offset.""",
        supports=("YES", "YES", "NO"),
        details="""\
Two modes:

-  Volumes (time-series setting off): give the channel images of one timepoint **in
   acquisition order** (ch0, ch1, ...), each loaded as a volume (NamesAndTypes "Process as 3D?"
   = Yes). The frames were taken ch0z0, ch1z0, ..., ch0z1, ... ("Cycle lasers: per Z") or stack by
   stack ("per stack"); each frame is corrected with the raw frame taken just before it.
-  *2D time series* (time-series setting on): each cycle holds 2D frames (one per channel, in
   acquisition order); the frame taken before the first channel of a cycle is the last channel's raw frame of the
   **previous cycle of the same group**. Group the images by movie (Groups module) so the cycles
   of a group are the movie's frames in time order; the first frame of each group only has its
   offset subtracted.

The parameter file is the LLSpy-compatible ``FlashParam_sn..._roi{L}-{T}-{R}-{B}_date....tif``
written by ``camcorr flash calibrate`` (or by LLSpy). If the data were acquired with a smaller
camera ROI than the calibration, give the acquisition's ``Settings.txt``: the parameter maps are
cut to the data's ROI. Without it, the maps must have the images' size.

Output is offset-subtracted. Output type *keep* rounds and clips the result to the input's range
(0..65535 ADU for 16-bit data), as the command line does; *float32* keeps values below 0 (read
noise around a dark background), which SaveImages at 16 bits would clip anyway.""",
        measurements=[
            ("MeanCarryover", "mean carryover removed from the image, ADU (0 for a first frame)."),
            ("MaxCarryover", "largest carryover removed from a pixel, ADU."),
            ("MeanOffset", "mean camera offset subtracted, ADU."),
            ("FractionBelowZero", "fraction of output pixels below 0 ADU (read noise around a "
                                  "dark background; large values mean a wrong offset)."),
        ],
        technical="""\
Group state holds only numpy arrays and JSON values (the last raw frame and its image number).
In time-series mode the module is an aggregation module, so CellProfiler runs a whole group in
one worker, in order.""")

    def create_settings(self):
        self.params = ParamSettings(OPERATION)
        self.channels: List[SettingsGroup] = []
        self.channel_count = (HiddenCount(self.channels, "Channel count"))
        self.add_channel(can_remove=False)
        self.add_button = DoSomething("", "Add another channel", self.add_channel)

    def add_channel(self, can_remove=True):
        group = SettingsGroup()
        n = len(self.channels)
        group.append("input_name", ImageSubscriber(
            "Raw channel image (acquisition order)", "None" if n else "ch0",
            doc="A raw channel image of this timepoint, uint16 camera counts (not rescaled). "
                "List the channels in the order the camera took them."))
        group.append("output_name", ImageName(
            "Name the corrected image", f"ch{n}_flash",
            doc="Name of the carryover-corrected, offset-subtracted image."))
        if can_remove:
            group.append("remover", RemoveSettingButton("", "Remove this channel",
                                                        self.channels, group))
        self.channels.append(group)

    # ---- settings ---------------------------------------------------------------------------
    def keyed_settings(self):
        """The fixed settings (SETTING_HISTORY keys); the channel groups follow them."""
        return self.params.keyed() + self.own("channel_count")

    @property
    def time_series(self) -> bool:
        return bool(self.params.raw("time_series"))

    def settings(self):
        result = [s for _, s in self.keyed_settings()]
        for g in self.channels:
            result += [g.input_name, g.output_name]
        return result

    def visible_settings(self):
        result = self.params.visible()
        for g in self.channels:
            result += [g.input_name, g.output_name]
            if hasattr(g, "remover"):
                result.append(g.remover)
        return result + [self.add_button]

    def help_settings(self):
        return self.params.settings() + [self.channels[0].input_name,
                                                       self.channels[0].output_name]

    def prepare_settings(self, setting_values):
        n_fixed = len(self.keyed_settings())
        count = int(setting_values[n_fixed - 1])
        while len(self.channels) > count:
            del self.channels[-1]
        while len(self.channels) < count:
            self.add_channel()

    def volumetric(self):
        return True

    def is_aggregation_module(self):
        return self.time_series

    # ---- validation -------------------------------------------------------------------------
    def check_settings(self, pipeline):
        values = self.params.values()
        names = [g.input_name.value for g in self.channels]
        outs = [g.output_name.value for g in self.channels]
        for g in self.channels:
            if g.input_name.value in ("None", "", None):
                raise ValidationError("Choose a raw channel image", g.input_name)
        if len(set(names)) != len(names):
            raise ValidationError("Each channel image may be listed once", self.channels[-1].input_name)
        if len(set(outs)) != len(outs):
            raise ValidationError("Corrected images need distinct names", self.channels[-1].output_name)
        self.load_params(values)  # file readable, ROI of Settings.txt inside the calibration

    def load_params(self, values: Optional[dict] = None):
        """Parameters cut to the data ROI (cached per file pair); ValidationError on failure."""
        values = self.params.values() if values is None else values
        pfile, sfile = values.get("params"), values.get("settings")
        key = (pfile, _mtime(pfile), sfile, _mtime(sfile))
        cache = getattr(self, "_params_cache", None)
        if cache is not None and cache[0] == key:
            return cache[1], cache[2]
        if pfile is None:
            raise ValidationError("Choose the carryover parameter file (FlashParam_*.tif)",
                                  self.params.main_setting("params"))
        try:  # the operation's own translation: ROI crop (serials compared), laser cycle
            kwargs = OPERATION.engine_kwargs(values)
        except CamcorrError as exc:
            name = "settings" if exc.argument == "settings" else "params"
            raise ValidationError(str(exc), self.params.main_setting(name)) from None
        params, cycle = kwargs["params"], kwargs["cycle"]
        self._params_cache = (key, params, cycle)
        return params, cycle

    # ---- run ----------------------------------------------------------------------------------
    def prepare_group(self, workspace, grouping, image_numbers):
        d = self.get_dictionary()
        d.clear()
        d["group_image_numbers"] = [int(n) for n in image_numbers]
        return True

    def run(self, workspace):
        try:
            values = self.params.values()
            params, cycle = self.load_params(values)
        except ValidationError as exc:
            self.fail(CamcorrError(f"setting '{exc.get_setting().text}': {exc.message}"))
        dampening = values.get("dampening", flash.DEFAULT_DAMPENING)
        keep = values.get("dtype", "keep") == "keep"
        images = [workspace.image_set.get_image(g.input_name.value, must_be_grayscale=True)
                  for g in self.channels]
        try:
            raws = [to_adu(im, f"image '{g.input_name.value}'")
                    for im, g in zip(images, self.channels)]
            self._check_dims(images, raws)
            if not self.time_series:
                outs = flash.correct_interleaved(raws, params, dampening=dampening, cycle=cycle)
            else:
                prev = self._previous_raw(workspace)
                outs = []
                for raw in raws:
                    outs.append(flash.correct_frame(raw, prev, params, dampening))
                    prev = raw
                d = self.get_dictionary()
                d["previous_image_number"] = int(workspace.measurements.image_set_number)
                d["previous_raw"] = raws[-1]
        except CamcorrError as exc:
            self.fail(exc)
        shown = []
        for g, image, raw, out in zip(self.channels, images, raws, outs):
            scale = image_scale(image, g.input_name.value)
            removed = (raw - params.offset) - out  # carryover removed, ADU
            self.add_measurements(workspace, g.output_name.value, {
                "MeanCarryover": float(np.mean(removed)),
                "MaxCarryover": float(np.max(removed)),
                "MeanOffset": float(np.mean(params.offset)),
                "FractionBelowZero": float(np.mean(out < 0)),
            })
            if keep:  # as the engine does for integer output: rounded, clipped, never wrapped
                out = np.clip(np.rint(out), 0, scale).astype(np.float32)
            result = Image(from_adu(out, scale), parent_image=image, scale=scale,
                           dimensions=image.dimensions, convert=False)
            workspace.image_set.add(g.output_name.value, result)
            shown += [(g.input_name.value, raw), (g.output_name.value, out)]
        self.set_display_images(workspace, shown)

    def _check_dims(self, images, raws):
        want = 2 if self.time_series else 3
        for g, im, raw in zip(self.channels, images, raws):
            if raw.ndim != want:
                fix = ("Set 'Process as 3D?' to Yes in NamesAndTypes, or switch on "
                       f"'{self.params.main_setting('time_series').text}' for 2D frames"
                       if want == 3 else
                       f"Switch off '{self.params.main_setting('time_series').text}' for volumes")
                raise CamcorrError("wrong image dimensionality for the chosen acquisition layout",
                                   argument=f"FlashCarryoverCorrect image '{g.input_name.value}'",
                                   expected=f"{want}D images ("
                                            f"{'time series' if self.time_series else 'volumes'})",
                                   received=f"{raw.ndim}D image of shape {raw.shape}", fix=fix)

    def _previous_raw(self, workspace):
        d = self.get_dictionary()
        numbers = d.get("group_image_numbers") or []
        current = int(workspace.measurements.image_set_number)
        if current not in numbers or numbers.index(current) == 0:
            # CellProfiler hands prepare_group only the image sets of this run: a run started
            # inside a group (-f/-l) would silently treat a middle frame as the first one.
            group_index = self._group_index(workspace)
            if group_index is not None and group_index > 1:
                raise CamcorrError(
                    "the time series starts in the middle of a group",
                    argument="FlashCarryoverCorrect",
                    expected="the first cycle of a group to be its first frame (Group_Index 1)",
                    received=f"image set {current} with Group_Index {group_index}: the frame "
                             "before it was not processed, so its carryover cannot be removed",
                    fix="Run whole groups (one movie per group, in time order); do not start a "
                        "time series in the middle with -f/-l")
            return None
        expected = numbers[numbers.index(current) - 1]
        if d.get("previous_image_number") != expected:
            raise CamcorrError(
                "the previous frame of this time series was not processed",
                argument="FlashCarryoverCorrect",
                expected=f"image set {expected} (the previous cycle of the group) processed "
                         "just before",
                received=f"image set {current} after {d.get('previous_image_number')}",
                fix="Run whole groups (one movie per group, in time order); do not start a "
                    "time series in the middle with -f/-l")
        return d["previous_raw"]

    @staticmethod
    def _group_index(workspace):
        """Group_Index of the current image set (1-based), or None if CellProfiler has none."""
        try:
            value = workspace.measurements.get_measurement("Image", "Group_Index")
        except Exception:  # no grouping measurement (e.g. a bare Workspace in a test)
            return None
        try:
            return int(value)
        except (TypeError, ValueError):
            return None

    def measurement_features(self):
        return FEATURES

    def measurement_image_names(self):
        return [g.output_name.value for g in self.channels]


def _mtime(path):
    try:
        return os.path.getmtime(path) if path else None
    except OSError:
        return None


