"""Shared behaviour of the camcorr CellProfiler modules.

* RST help built from the operation definition (summary, description, the 2D/3D/masks table,
  measurements, references with DOI links);
* settings validation at ``prepare_run`` so a headless run stops before the first image with the
  module's own message (CellProfiler only calls ``validate_module`` from the GUI);
* image measurements for the QC numbers (``get_measurement_columns`` and friends);
* a generic ``display`` (matplotlib through CellProfiler's figure; wx is never imported here);
* helpers to read every image of a group in ``prepare_group`` (for aggregating modules).

Works with CellProfiler 4.2 and 5.x (only APIs common to both are used).
"""
from __future__ import annotations

import logging
import re
import textwrap
from typing import Dict, Iterator, List, Sequence, Tuple

import numpy as np
from cellprofiler_core.constants.measurement import COLTYPE_INTEGER
from cellprofiler_core.module import Module
from cellprofiler_core.setting import ValidationError

from camcorr.errors import CamcorrError

from _compat import patch_saveimages_compression
from _settings import flags_to_settings, rst_escape, upgrade_by_keys

LOGGER = logging.getLogger("camcorr.cellprofiler")
IMAGE = "Image"
#: grouping measurements CellProfiler records for every image set (4.2 and 5.x)
GROUP_NUMBER, GROUP_INDEX, GROUP_LENGTH = "Group_Number", "Group_Index", "Group_Length"

patch_saveimages_compression()


def _rst_reference(ref: str) -> str:
    """A reference with its DOI turned into a link."""
    m = re.search(r"(?:doi:\s*|https?://doi\.org/)(10\.\S+?)[.;,]?(?:\s|$)", ref, re.I)
    if m:
        doi = m.group(1)
        return ref.replace(m.group(0).strip(), f"`doi:{doi} <https://doi.org/{doi}>`__")
    return ref


def build_help(operation, *, intro: str = "", supports: Tuple[str, str, str] = ("YES", "YES", "NO"),
               details: str = "", measurements: Sequence[Tuple[str, str]] = (),
               technical: str = "") -> str:
    """RST help for a camcorr module.

    Parameters
    ----------
    operation : Operation
        Source of the summary, description and references.
    supports : (2D, 3D, masks)
        Entries of the support table ("YES" / "NO").
    measurements : sequence of (feature, description)
    """
    desc = rst_escape(flags_to_settings(textwrap.dedent(operation.description or "").strip(),
                                        operation))
    parts = [intro.strip() or operation.summary, "", desc, "",
             "|", "",
             "============ ============ ===============",
             "Supports 2D? Supports 3D? Respects masks?",
             "============ ============ ===============",
             f"{supports[0]:<12} {supports[1]:<12} {supports[2]:<15}",
             "============ ============ ===============", ""]
    if details:
        parts += [textwrap.dedent(details).strip(), ""]
    parts += ["Units", "^^^^^", "",
              "CellProfiler scales intensities to [0, 1]; this module multiplies them by the image's "
              "scale (65535 for 16-bit files) to work in camera counts (ADU), and divides its results "
              "by the same scale. Save results with SaveImages at the input bit depth (or 32-bit "
              "floating point) to keep ADU.", ""]
    if measurements:
        parts += ["Measurements made by this module", "^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^", ""]
        parts += [f"-  *{name}*: {text}" for name, text in measurements]
        parts += [""]
    if technical:
        parts += ["Technical notes", "^^^^^^^^^^^^^^^", "", textwrap.dedent(technical).strip(), ""]
    if operation.references:
        parts += ["References", "^^^^^^^^^^", ""]
        parts += [f"-  {_rst_reference(rst_escape(r))}" for r in operation.references]
        parts += [""]
    parts += [f"This module is part of camcorr (operation ``{operation.name}``; command line "
              f"``camcorr {' '.join(operation.command)}``)."]
    return "\n".join(parts)


class CamcorrModule(Module):
    """Base class: category, validation at prepare_run, measurements, display."""

    category = "Image Processing"
    #: measurement category, e.g. "FlashCarryover"
    measurement_category = "Camcorr"
    #: setting keys of every revision, in file order ({revision: [key, ...]}); the keyed
    #: settings (see :meth:`keyed_settings`) of the current revision come first, anything after
    #: them (repeated groups) is kept as is by :meth:`upgrade_settings`.
    SETTING_HISTORY: Dict[int, List[str]] = {}

    # ---- settings -----------------------------------------------------------------------------
    def keyed_settings(self) -> List[Tuple[str, object]]:
        """``(stable key, setting)`` of the fixed settings, in file order (subclasses).

        The keys live here, not on the settings: CellProfiler's ``Setting.key()`` is a method
        that validation and every image chooser call."""
        raise NotImplementedError

    def own(self, *names: str) -> List[Tuple[str, object]]:
        """``(attribute name, setting)`` pairs for the module's own settings."""
        return [(n, getattr(self, n)) for n in names]

    def settings(self):
        return [s for _, s in self.keyed_settings()]

    @classmethod
    def setting_keys(cls) -> List[str]:
        """Keys of the keyed settings of a fresh module (the current revision's layout)."""
        return [k for k, _ in cls().keyed_settings()]

    def upgrade_settings(self, setting_values, variable_revision_number, module_name):
        """Map values of an older revision onto the current keys (new keys get the defaults)."""
        if variable_revision_number < self.variable_revision_number:
            defaults = {k: s.value_text for k, s in type(self)().keyed_settings()}
            setting_values = upgrade_by_keys(
                list(setting_values), self.SETTING_HISTORY[variable_revision_number],
                self.SETTING_HISTORY[self.variable_revision_number], defaults)
            variable_revision_number = self.variable_revision_number
        return setting_values, variable_revision_number

    # ---- to be provided by subclasses -------------------------------------------------------
    def measurement_features(self) -> List[Tuple[str, str]]:
        """[(feature, coltype)] recorded per output image (see measurement_image_names)."""
        return []

    def measurement_image_names(self) -> List[str]:
        """Image names the features are recorded for."""
        return []

    def check_settings(self, pipeline) -> None:
        """Raise ValidationError(message, setting) for bad settings (subclasses)."""

    # ---- validation ---------------------------------------------------------------------------
    def validate_module(self, pipeline):
        self.check_settings(pipeline)

    def prepare_run(self, workspace):
        """Validate the settings before the first image (headless runs skip validate_module)."""
        try:
            self.check_settings(workspace.pipeline)
        except ValidationError as exc:
            setting = exc.get_setting() if hasattr(exc, "get_setting") else None
            where = f" (setting '{setting.text}')" if setting is not None else ""
            LOGGER.error("%s #%d%s: %s", self.module_name, self.module_num, where, exc.message)
            raise CamcorrError(f"{self.module_name}{where}: {exc.message}") from None
        return True

    def fail(self, exc: CamcorrError, setting=None):
        """Log a CamcorrError with the module name and raise it again (stops the run)."""
        LOGGER.error("%s #%d: %s", self.module_name, self.module_num, exc)
        raise exc

    # ---- measurements -------------------------------------------------------------------------
    def feature_name(self, feature: str, image_name: str) -> str:
        return f"{self.measurement_category}_{feature}_{image_name}"

    def get_measurement_columns(self, pipeline):
        cols = []
        for image_name in self.measurement_image_names():
            for feature, coltype in self.measurement_features():
                cols.append((IMAGE, self.feature_name(feature, image_name), coltype))
        return cols

    def get_categories(self, pipeline, object_name):
        if object_name == IMAGE and self.measurement_features():
            return [self.measurement_category]
        return []

    def get_measurements(self, pipeline, object_name, category):
        if object_name == IMAGE and category == self.measurement_category:
            return [f for f, _ in self.measurement_features()]
        return []

    def get_measurement_images(self, pipeline, object_name, category, measurement):
        if (object_name == IMAGE and category == self.measurement_category
                and measurement in [f for f, _ in self.measurement_features()]):
            return self.measurement_image_names()
        return []

    def add_measurements(self, workspace, image_name: str, values: Dict[str, float]):
        """Record ``{feature: value}`` as image measurements of `image_name`."""
        known = dict(self.measurement_features())
        m = workspace.measurements
        for feature, value in values.items():
            if feature not in known:
                raise KeyError(f"{feature} is not declared in measurement_features")
            if known[feature] == COLTYPE_INTEGER:
                value = int(value)
            else:
                value = float(value) if value is not None else np.nan
            m.add_image_measurement(self.feature_name(feature, image_name), value)
        stats = getattr(workspace.display_data, "statistics", None)
        if stats is None:
            stats = []
        stats += [(f"{image_name} {f}", f"{v:.4g}" if isinstance(v, float) else str(v))
                  for f, v in values.items()]
        workspace.display_data.statistics = stats

    # ---- display ------------------------------------------------------------------------------
    def set_display_images(self, workspace, images: Sequence[Tuple[str, np.ndarray]]):
        """Images shown by :meth:`display` (2D: as is; 3D: the middle plane)."""
        if not self.show_window:
            return
        shown = []
        for title, data in images:
            data = np.asarray(data)
            if data.ndim == 3:
                title = f"{title} (plane {data.shape[0] // 2})"
                data = data[data.shape[0] // 2]
            shown.append((title, data))
        workspace.display_data.images = shown

    def display(self, workspace, figure):
        images = getattr(workspace.display_data, "images", None) or []
        stats = getattr(workspace.display_data, "statistics", None) or []
        n = len(images) + (1 if stats else 0)
        if n == 0:
            return
        figure.set_subplots((n, 1))
        first = None
        for i, (title, data) in enumerate(images):
            first = figure.subplot_imshow_grayscale(i, 0, data, title=title,
                                                    sharexy=first if first is not None else None)
        if stats:
            figure.subplot_table(len(images), 0, [list(r) for r in stats],
                                 col_labels=["Measurement", "Value"])

    # ---- aggregation helpers ------------------------------------------------------------------
    #: what the module computes from a whole group, for the partial-group message
    group_product = "its result"

    def require_whole_group(self, workspace, image_numbers) -> None:
        """Refuse a run that holds only part of a group (``-f/-l``, ``--first-image-set``).

        CellProfiler hands ``prepare_group`` only the image sets of this run; a module that
        aggregates over the group would silently compute from the subset (a different result
        that looks plausible).  ``Group_Index`` and ``Group_Length`` are measured on the whole
        image set list, so a subset shows as a first index above 1 or fewer image sets than the
        group's length.  Without grouping measurements (a bare workspace) nothing is checked.
        """
        m = workspace.measurements
        numbers = [int(n) for n in image_numbers]
        if not numbers or not all(m.has_feature(IMAGE, f) for f in (GROUP_INDEX, GROUP_LENGTH)):
            return
        first = numbers[0]
        index = int(m.get_measurement(IMAGE, GROUP_INDEX, first))
        length = int(m.get_measurement(IMAGE, GROUP_LENGTH, first))
        if index == 1 and len(numbers) == length:
            return
        group = m.get_measurement(IMAGE, GROUP_NUMBER, first) if m.has_feature(
            IMAGE, GROUP_NUMBER) else "?"
        raise CamcorrError(
            f"{self.module_name} computes {self.group_product} from every image set of a group, "
            "and this run holds only part of the group",
            argument=f"{self.module_name} (group {group})",
            expected=f"all {length} image sets of the group (Group_Index 1 to {length})",
            received=f"{len(numbers)} image set(s) starting at Group_Index {index} (image set "
                     f"{first})",
            fix="Run whole groups: leave out -f/-l (--first-image-set/--last-image-set), or "
                "choose groups with -g Metadata_KEY=VALUE (CreateBatchFiles with "
                "--get-batch-commands writes one such command per group)")

    def iter_group_images(self, workspace, grouping, image_numbers, names: Sequence[str],
                          title: str = "") -> Iterator[Tuple[int, Dict[str, object]]]:
        """Yield ``(image_number, {name: Image})`` for every cycle of the group.

        Runs the modules upstream of this one for each image set of the group (the way
        CorrectIlluminationCalculate "All: First cycle" did), so the images are exactly those
        this module will see later in the run.  CellProfiler 5 keeps one image cache for all
        image numbers during this pass; it is emptied between cycles here.
        """
        pipeline = workspace.pipeline
        m = workspace.measurements
        _reset_images(m)
        message = f"{self.module_name} is reading {len(image_numbers)} image sets of the group"
        gen = pipeline.run_group_with_yield(workspace, grouping, image_numbers, self,
                                            title or self.module_name, message)
        index = 0
        try:
            for w in gen:
                image_number = image_numbers[index]
                index += 1
                images = {name: w.image_set.get_image(name, cache=False) for name in names}
                yield image_number, images
                _reset_images(w.image_set)
        finally:
            gen.close()
            _reset_images(m)


def _reset_images(image_set):
    """Drop cached images and providers added by modules (CellProfiler 5 image sets)."""
    if hasattr(image_set, "clear_cache"):
        image_set.clear_cache()
    providers = getattr(image_set, "providers", None)
    if providers is not None and hasattr(image_set, "remove_image_provider"):
        for name in {p.name for p in providers}:
            image_set.remove_image_provider(name)
