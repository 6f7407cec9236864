"""SelectiveMedian: replace hot, noisy and aberrant-gain pixels only (Amat et al. 2015).

CellProfiler front end of :mod:`camcorr.median`; settings come from the ``median`` operation
definition shared with the ``camcorr`` command line and Fiji.
"""
from __future__ import annotations

from typing import Dict, List

import numpy as np
from cellprofiler_core.constants.measurement import COLTYPE_FLOAT, COLTYPE_INTEGER
from cellprofiler_core.image import Image
from cellprofiler_core.setting import ValidationError
from cellprofiler_core.setting.choice import Choice
from cellprofiler_core.setting.subscriber import ImageSubscriber
from cellprofiler_core.setting.text import ImageName

import camcorr.median as median
from camcorr.errors import CamcorrError
from camcorr.operations import get_operation

from _common import CamcorrModule, build_help
from _settings import ParamSettings
from _units import from_adu, image_scale, to_adu

OPERATION = get_operation("median")

MODE_3D = "Each 3D image on its own"
MODE_2D = "2D frames of the group"

FEATURES = [("Flagged", COLTYPE_INTEGER), ("PercentFlagged", COLTYPE_FLOAT),
            ("StdThreshold", COLTYPE_FLOAT), ("RingFallback", COLTYPE_INTEGER),
            ("NPlanes", COLTYPE_INTEGER)]

#: Setting keys of every revision, in file order.  Revision 1 had no mean-pass threshold of its
#: own (the mean pass used the noise threshold); revision 3 added rule 'chi2' and its settings.
SETTING_HISTORY: Dict[int, List[str]] = {
    1: ["image_name", "output_name", "mode", "rule", "k", "mean_pass", "save_mask", "mask_name"],
    2: ["image_name", "output_name", "mode", "rule", "k", "mean_pass", "mean_k", "save_mask",
        "mask_name"],
    3: ["image_name", "output_name", "mode", "rule", "k", "mean_pass", "mean_k", "fpr",
        "variance_map:folder", "variance_map", "map_factor", "save_mask", "mask_name"],
}


class SelectiveMedian(CamcorrModule):
    module_name = "SelectiveMedian"
    variable_revision_number = 3
    SETTING_HISTORY = SETTING_HISTORY
    group_product = "the bad-pixel mask"
    measurement_category = "SelectiveMedian"

    __doc__ = build_help(
        OPERATION,
        intro="""\
**SelectiveMedian** finds pixels much noisier than their neighbours over the planes of a stack
(hot and random-telegraph pixels of sCMOS cameras) and replaces only those pixels, in every
plane, by the median of their 8 neighbours. Every other pixel is left exactly as it was.""",
        supports=("YES", "YES", "NO"),
        details=f"""\
The noise of a pixel is its standard deviation over many planes, so the module needs several
planes of the same camera pixels:

-  *{MODE_3D}*: every image is a (Z, Y, X) volume (NamesAndTypes "Process as 3D?" = Yes); the
   mask is found on that volume and applied to all its planes.
-  *{MODE_2D}*: every image is one 2D frame; the frames of one **group** (Groups module: a movie,
   or all frames of a camera session) form the stack. Before the first cycle of the group, the
   module reads all frames of the group once (running the modules above it), finds the mask,
   and then corrects every frame of the group with that same mask as the cycles run.

Optionally the mask of replaced pixels is output as a binary image (2D; for volumes it applies
to every plane).""",
        measurements=[
            ("Flagged", "number of pixels replaced (per plane)."),
            ("PercentFlagged", "percentage of pixels replaced."),
            ("StdThreshold", "noise threshold, as a factor over the local median noise for rule "
                             "'mad', over the expected noise for rule 'chi2' (ADU for rule "
                             "'knee')."),
            ("RingFallback", "replaced pixels whose 8 neighbours were all bad (5x5 ring used)."),
            ("NPlanes", "planes (or frames of the group) the noise was measured on."),
        ],
        technical="""\
In 2D mode the group state holds the mask (a numpy array) and the JSON counts; the module is an
aggregation module, so CellProfiler runs a whole group in one worker. Memory does not grow with
the number of frames (the noise is accumulated frame by frame).""")

    def create_settings(self):
        self.image_name = (ImageSubscriber(
            "Select the input image", "None",
            doc="Raw image in camera counts: a volume (3D mode) or one frame (2D mode)."))
        self.output_name = (ImageName(
            "Name the output image", "MedianCorrected",
            doc="Name of the image with the bad pixels replaced."))
        self.mode = (Choice(
            "Stack to measure the noise on", [MODE_3D, MODE_2D], MODE_3D,
            doc=f"*{MODE_3D}*: each volume on its own. *{MODE_2D}*: the frames of the group "
                "form the stack (mask found before the group's first cycle)."))
        self.params = ParamSettings(OPERATION)
        self.mask_name = (ImageName(
            "Name the mask image", "BadPixels",
            doc="Binary image, true where a pixel was replaced."))

    def keyed_settings(self):
        return self.own("image_name", "output_name", "mode") + self.params.keyed() + \
            self.own("mask_name")

    def visible_settings(self):
        result = [self.image_name, self.output_name, self.mode] + self.params.visible()
        if self.params.raw("save_mask"):
            result.append(self.mask_name)
        return result

    def volumetric(self):
        return True

    def is_aggregation_module(self):
        return self.mode.value == MODE_2D

    def check_settings(self, pipeline):
        self.params.values()
        if self.params.raw("save_mask") and self.mask_name.value == self.output_name.value:
            raise ValidationError("The mask needs a name of its own", self.mask_name)

    def engine_kwargs(self) -> dict:
        """The operation's own translation of the settings (:meth:`Operation.engine_kwargs`)."""
        return OPERATION.engine_kwargs(self.params.values(),
                                       argument="SelectiveMedian read-noise variance map")

    def _check_dims(self, data, name):
        want = 3 if self.mode.value == MODE_3D else 2
        if data.ndim != want:
            fix = (f"Load volumes with NamesAndTypes 'Process as 3D?' = Yes, or choose '{MODE_2D}'"
                   if want == 3 else f"Choose '{MODE_3D}' for volumes")
            raise CamcorrError("wrong image dimensionality for the chosen stack",
                               argument=f"SelectiveMedian image '{name}'",
                               expected=f"a {want}D image for '{self.mode.value}'",
                               received=f"a {data.ndim}D image of shape {data.shape}", fix=fix)

    # ---- aggregation (2D mode) ----------------------------------------------------------------
    def prepare_group(self, workspace, grouping, image_numbers):
        d = self.get_dictionary()
        d.clear()
        if self.mode.value != MODE_2D:
            return True
        try:
            self.require_whole_group(workspace, image_numbers)
        except CamcorrError as exc:
            self.fail(exc)
        name = self.image_name.value

        def frames():
            for _, images in self.iter_group_images(workspace, grouping, image_numbers, [name]):
                data = to_adu(images[name], f"image '{name}'")
                self._check_dims(data, name)
                yield data

        try:
            bad = median.find_bad_pixels(frames(), **self.engine_kwargs())
        except CamcorrError as exc:
            self.fail(CamcorrError(f"group of {len(image_numbers)} frame(s): {exc}"))
        d["mask"] = np.asarray(bad.mask, bool)
        d["counts"] = {k: float(v) for k, v in bad.counts.items()}
        d["thresholds"] = {k: (None if v is None else float(v)) for k, v in bad.thresholds.items()}
        d["n_planes"] = int(bad.n_planes)
        return True

    def run(self, workspace):
        name = self.image_name.value
        image = workspace.image_set.get_image(name, must_be_grayscale=True)
        try:
            scale = image_scale(image, name)
            data = to_adu(image, f"image '{name}'")
            self._check_dims(data, name)
            if self.mode.value == MODE_3D:
                result = median.selective_median(data, **self.engine_kwargs())
                corrected, mask = result.corrected, result.mask
                counts, thresholds = result.counts, result.thresholds
                n_planes = result.bad.n_planes if result.bad is not None else data.shape[0]
            else:
                d = self.get_dictionary()
                if "mask" not in d:
                    raise CamcorrError("no bad-pixel mask for this group",
                                       argument="SelectiveMedian",
                                       expected="the group's frames read before its first cycle",
                                       received="a cycle outside a prepared group")
                mask = d["mask"]
                corrected, fallback = median.replace_bad_pixels(data, mask, return_fallback=True)
                counts = dict(d["counts"], ring_fallback=fallback)
                thresholds, n_planes = d["thresholds"], d["n_planes"]
        except CamcorrError as exc:
            self.fail(exc)
        out = Image(from_adu(corrected, scale), parent_image=image, scale=scale,
                    dimensions=image.dimensions, convert=False)
        workspace.image_set.add(self.output_name.value, out)
        if self.params.raw("save_mask"):
            workspace.image_set.add(self.mask_name.value,
                                    Image(np.asarray(mask, bool), dimensions=2, convert=False))
        self.add_measurements(workspace, self.output_name.value, {
            "Flagged": int(counts.get("flagged", np.count_nonzero(mask))),
            "PercentFlagged": float(counts.get("percent", 100.0 * np.mean(mask))),
            "StdThreshold": float(thresholds.get("std_ratio") or thresholds.get("std") or np.nan),
            "RingFallback": int(counts.get("ring_fallback", 0)),
            "NPlanes": int(n_planes),
        })
        self.set_display_images(workspace, [(name, data), (self.output_name.value, corrected),
                                            ("Replaced pixels", np.asarray(mask, np.float32))])

    def measurement_features(self):
        return FEATURES

    def measurement_image_names(self):
        return [self.output_name.value]
