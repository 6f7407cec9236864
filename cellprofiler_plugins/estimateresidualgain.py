"""EstimateResidualGain: camera gain (or the gain a reference left) from the movie frames.

CellProfiler front end of :func:`camcorr.gain.estimate_gain` (Sorzano et al. 2018) and
:func:`camcorr.gain.gain_report`; settings come from the ``gain-estimate`` operation definition
shared with the ``camcorr`` command line and Fiji.
"""
from __future__ import annotations

from typing import Dict, List

import numpy as np
from cellprofiler_core.constants.measurement import COLTYPE_FLOAT, COLTYPE_INTEGER
from cellprofiler_core.image import Image
from cellprofiler_core.setting import Binary, ValidationError
from cellprofiler_core.setting.subscriber import ImageSubscriber
from cellprofiler_core.setting.text import ImageName

import camcorr.gain as gain
from camcorr.errors import CamcorrError
from camcorr.jsonio import jsonable
from camcorr.operations import get_operation

from _common import CamcorrModule, build_help
from _settings import ParamSettings
from _units import from_adu, image_scale, to_adu

OPERATION = get_operation("gain-estimate")

FEATURES = [("Std", COLTYPE_FLOAT), ("LowPercentile", COLTYPE_FLOAT),
            ("HighPercentile", COLTYPE_FLOAT),
            ("Max", COLTYPE_FLOAT), ("PercentileRatio", COLTYPE_FLOAT),
            ("MaxRatio", COLTYPE_FLOAT), ("FlagStd", COLTYPE_INTEGER),
            ("FlagPercentileRatio", COLTYPE_INTEGER), ("FlagMaxRatio", COLTYPE_INTEGER),
            ("Flagged", COLTYPE_INTEGER), ("NoiseFloor", COLTYPE_FLOAT),
            ("StdAboveNoise", COLTYPE_FLOAT), ("FlagsWithinNoise", COLTYPE_INTEGER),
            ("NFrames", COLTYPE_INTEGER), ("Iterations", COLTYPE_INTEGER),
            ("StdHeldOut", COLTYPE_FLOAT), ("R2Halves", COLTYPE_FLOAT),
            ("ResidualStdHeldOut", COLTYPE_FLOAT), ("HeldOutDisagrees", COLTYPE_INTEGER),
            ("R2Expected", COLTYPE_FLOAT), ("NoiseLimited", COLTYPE_INTEGER)]

#: report key of every feature
_REPORT_KEYS = {"Std": "std", "LowPercentile": "p2_5", "HighPercentile": "p97_5", "Max": "max",
                "PercentileRatio": "percentile_ratio", "MaxRatio": "max_ratio",
                "FlagStd": "flag_std", "FlagPercentileRatio": "flag_percentile_ratio",
                "FlagMaxRatio": "flag_max_ratio", "Flagged": "flagged",
                "NoiseFloor": "noise_floor", "StdAboveNoise": "std_above_noise",
                "FlagsWithinNoise": "flags_within_noise"}
#: held-out feature -> key of the report's "heldout" section (camcorr.gain.heldout)
_HELDOUT_KEYS = {"StdHeldOut": "std_heldout", "R2Halves": "r2_halves",
                 "ResidualStdHeldOut": "residual_std_heldout", "HeldOutDisagrees": "disagree"}

#: Setting keys of every revision, in file order.
SETTING_HISTORY: Dict[int, List[str]] = {
    1: ["image_name", "gain_name", "use_gain_ref", "gain_ref_name", "ref_orientation", "sigmas",
        "reference", "iterations", "tolerance", "offset", "electrons_per_adu", "read_noise_e",
        "output_normalized", "normalized_name"],
    2: ["image_name", "gain_name", "use_gain_ref", "gain_ref_name", "ref_orientation", "sigmas",
        "reference", "iterations", "tolerance", "offset", "electrons_per_adu", "read_noise_e",
        "fields", "output_normalized", "normalized_name"],
}


class EstimateResidualGain(CamcorrModule):
    module_name = "EstimateResidualGain"
    variable_revision_number = 2
    SETTING_HISTORY = SETTING_HISTORY
    group_product = "the gain"
    measurement_category = "ResidualGain"

    __doc__ = build_help(
        OPERATION,
        intro="""\
**EstimateResidualGain** estimates, from the frames of a movie themselves, the per-pixel gain of
the camera, or (with a gain reference) the gain the reference left uncorrected, and reports
whether a gain calibration looks suspect.""",
        supports=("YES", "NO", "NO"),
        details="""\
One **group** is one movie (Groups module, e.g. grouped by a movie metadata key): each cycle is
one 2D frame. Before the first cycle of a group the module reads all frames of the group
(running the modules above it, once per iteration; frames are streamed, memory does not grow
with their number), estimates the gain, and then, cycle by cycle, outputs the gain image
(the same for the whole group) and optionally the frame divided by the gain
((frame - offset) / gain + offset, clipped to the input's range). The report numbers and the
three flags of a suspect calibration are recorded as image measurements of every cycle.

A gain reference, if used, is an image of the same pipeline (e.g. loaded by NamesAndTypes as a
single image, or computed upstream); it is read from the group's first cycle.""",
        measurements=[
            ("Std, LowPercentile, HighPercentile, Max", "standard deviation, 2.5th and 97.5th "
             "percentiles and maximum of the mean-1 (residual) gain."),
            ("PercentileRatio, MaxRatio", "p97.5/p2.5 and max/p97.5."),
            ("FlagStd, FlagPercentileRatio, FlagMaxRatio, Flagged", "1 when std > 0.04, "
             "p97.5/p2.5 > 1.15, max/p97.5 > 4.5, or any of them (Sorzano et al.)."),
            ("NoiseFloor, StdAboveNoise, FlagsWithinNoise", "the std a flat gain would show at "
             "this dose (half-set estimate), the std beyond it, and 1 when every raised flag is "
             "explained by noise (-1: unknown)."),
            ("NFrames, Iterations", "frames and iterations used."),
            ("StdHeldOut, R2Halves, ResidualStdHeldOut, HeldOutDisagrees", "held-out "
             "validation (gain estimated on the even frames, evaluated on the odd ones): the "
             "std the other half reproduces (beside Std, the in-sample one), R^2 between the "
             "halves, the gain one half leaves in the other, and 1 when in-sample and held-out "
             "disagree (part of Std is noise, not gain)."),
            ("R2Expected, NoiseLimited", "with independent fields: the R^2 to expect against "
             "the true gain (from the held-out error and the structure left below the pooled "
             "mean's noise), and 1 when it is below 0.9 because the specimen's pooled residual "
             "limits the low spatial frequencies (more frames help); NaN / -1 with one field."),
        ],
        technical="""\
Group state holds the gain (numpy array) and the report (JSON). The module is an aggregation
module: CellProfiler runs a group in one worker. 3D images are refused (frames are 2D).""")

    def create_settings(self):
        self.image_name = (ImageSubscriber(
            "Select the movie frame", "None",
            doc="One raw 2D frame per cycle (camera counts); the frames of a group form the "
                "movie."))
        self.gain_name = (ImageName(
            "Name the gain image", "Gain",
            doc="Estimated gain, mean 1 (residual gain with a reference); save it with "
                "SaveImages bit depth 'No conversion'."))
        ref = OPERATION.param("gain_ref")
        self.use_gain_ref = (Binary(
            "Use a gain reference?", False,
            doc=ref.help))
        self.gain_ref_name = (ImageSubscriber(
            "Select the gain reference image", "None", doc=ref.help))
        self.params = ParamSettings(OPERATION)
        self.normalized_name = (ImageName(
            "Name the normalised image", "GainNormalized",
            doc="The frame divided by the estimated (total) gain."))

    def keyed_settings(self):
        return self.own("image_name", "gain_name", "use_gain_ref", "gain_ref_name") + \
            self.params.keyed() + self.own("normalized_name")

    def visible_settings(self):
        result = [self.image_name, self.gain_name, self.use_gain_ref]
        if self.use_gain_ref.value:  # the reference is an image here, not a parameter value
            result += [self.gain_ref_name] + self.params.visible(["ref_orientation"])
        result += self.params.visible([n for n in self.params.by_name if n != "ref_orientation"])
        if self.params.raw("output_normalized"):
            result.append(self.normalized_name)
        return result

    def upgrade_settings(self, setting_values, variable_revision_number, module_name):
        values = list(setting_values)
        # pipelines saved before the label lost its colon ("Gain reference: use one?") store
        # the value as " use one?:Yes" (.cppipe lines split at the first colon)
        if len(values) > 2 and values[2].startswith(" use one?:"):
            values[2] = values[2].split(":", 1)[1]
        return super().upgrade_settings(values, variable_revision_number, module_name)

    def is_aggregation_module(self):
        return True

    def check_settings(self, pipeline):
        self._engine_kwargs()
        if self.use_gain_ref.value and self.gain_ref_name.value in ("None", "", None):
            raise ValidationError("Choose the gain reference image", self.gain_ref_name)
        names = [self.gain_name.value]
        if self.params.raw("output_normalized"):
            names.append(self.normalized_name.value)
        if len(set(names)) != len(names):
            raise ValidationError("The normalised image needs a name of its own",
                                  self.normalized_name)

    def _engine_kwargs(self) -> dict:
        """The operation's own translation (sigma grid parsed, limits of the engine)."""
        setting = self.params.main_setting("sigmas")
        try:
            return OPERATION.engine_kwargs(self.params.values(), argument=setting.text)
        except CamcorrError as exc:
            raise ValidationError(str(exc), setting) from None

    # ---- aggregation ------------------------------------------------------------------------
    def prepare_group(self, workspace, grouping, image_numbers):
        d = self.get_dictionary()
        d.clear()
        name = self.image_name.value
        try:
            self.require_whole_group(workspace, image_numbers)
        except CamcorrError as exc:
            self.fail(exc)
        names = [name] + ([self.gain_ref_name.value] if self.use_gain_ref.value else [])
        ref = {}

        def frames():
            for _, images in self.iter_group_images(workspace, grouping, image_numbers, names):
                data = to_adu(images[name], f"image '{name}'")
                if data.ndim != 2:
                    raise CamcorrError(
                        "wrong image dimensionality", argument=f"EstimateResidualGain image "
                                                               f"'{name}'",
                        expected="2D frames (one frame per cycle, a movie per group)",
                        received=f"a {data.ndim}D image of shape {data.shape}",
                        fix="Load the movie's frames as 2D planes (NamesAndTypes 'Process as "
                            "3D?' = No, Images 'Extract image planes' on for multi-frame files)")
                if self.use_gain_ref.value and "ref" not in ref:
                    im = images[self.gain_ref_name.value]
                    ref["ref"] = np.asarray(im.pixel_data, np.float64)  # unitless, no scale
                yield data

        try:
            kwargs = self._engine_kwargs()
            if self.use_gain_ref.value:  # the reference comes with the first frame
                first = iter(frames())
                next(first, None)
                first.close()
                kwargs["gain_ref"] = ref.get("ref")
            result = gain.estimate_gain(frames, **kwargs)
        except ValidationError as exc:
            self.fail(CamcorrError(f"setting '{exc.get_setting().text}': {exc.message}"))
        except CamcorrError as exc:
            self.fail(CamcorrError(f"group of {len(image_numbers)} frame(s): {exc}"))
        d["gain"] = np.asarray(result.gain, np.float32)
        total = result.total_gain if result.total_gain is not None else result.gain
        d["total_gain"] = np.asarray(total, np.float32)
        d["report"] = {k: jsonable(v) for k, v in result.report.items()}
        d["n_frames"] = int(result.n_frames)
        d["iterations"] = int(result.iterations)
        return True

    def run(self, workspace):
        name = self.image_name.value
        d = self.get_dictionary()
        if "gain" not in d:
            self.fail(CamcorrError("no gain for this group", argument="EstimateResidualGain",
                                   expected="the group's frames read before its first cycle",
                                   received="a cycle outside a prepared group"))
        g = d["gain"]
        workspace.image_set.add(self.gain_name.value, Image(g, dimensions=2, convert=False))
        shown = [("Gain", g)]
        if self.params.raw("output_normalized"):
            image = workspace.image_set.get_image(name, must_be_grayscale=True)
            try:
                scale = image_scale(image, name)
                data = to_adu(image, f"image '{name}'")
                offset = float(self.params.values()["offset"])
                norm = (data - offset) / d["total_gain"] + offset
            except CamcorrError as exc:
                self.fail(exc)
            norm = np.clip(norm, 0, scale)
            workspace.image_set.add(self.normalized_name.value, Image(
                from_adu(norm, scale), parent_image=image, scale=scale, dimensions=2,
                convert=False))
            shown = [(name, data), (self.normalized_name.value, norm)] + shown
        rep = d["report"]
        values = {}
        for feature, key in _REPORT_KEYS.items():
            v = rep.get(key)
            if feature.startswith("Flag"):
                values[feature] = -1 if v is None else int(bool(v))
            else:
                values[feature] = np.nan if v is None else float(v)
        ho = rep.get("heldout") or {}
        for feature, key in _HELDOUT_KEYS.items():
            v = ho.get(key)
            if feature == "HeldOutDisagrees":
                values[feature] = -1 if v is None else int(bool(v))
            else:
                values[feature] = np.nan if v is None else float(v)
        sc = rep.get("scales") or {}
        v = sc.get("r2_expected")
        values["R2Expected"] = np.nan if v is None else float(v)
        v = sc.get("noise_limited")
        values["NoiseLimited"] = -1 if v is None else int(bool(v))
        values["NFrames"] = d["n_frames"]
        values["Iterations"] = d["iterations"]
        self.add_measurements(workspace, self.gain_name.value, values)
        self.set_display_images(workspace, shown)

    def measurement_features(self):
        return FEATURES

    def measurement_image_names(self):
        return [self.gain_name.value]
