"""FlatfieldFromEmptyTiles: flat-field of a tiled acquisition, from empty tiles, empty planes,
a measured model or BaSiCPy, applied to every tile of the group in the same run.

CellProfiler front end of :func:`camcorr.flatfield.estimate_flatfield` and
:func:`camcorr.flatfield.apply_flatfield`; settings come from the ``flatfield-estimate`` and
``flatfield-apply`` operation definitions shared with the command line and Fiji.
"""
from __future__ import annotations

from typing import Dict, List

import numpy as np
from cellprofiler_core.constants.measurement import COLTYPE_FLOAT, COLTYPE_INTEGER
from cellprofiler_core.image import Image
from cellprofiler_core.setting import ValidationError
from cellprofiler_core.setting.choice import Choice
from cellprofiler_core.setting.subscriber import ImageSubscriber
from cellprofiler_core.setting.text import ImageName, Text

import camcorr.flatfield as ff
from camcorr.errors import CamcorrError
from camcorr.flatfield.operations import estimate_kwargs
from camcorr.operations import get_operation

from _common import CamcorrModule, build_help
from _settings import ParamSettings, setting_text
from _units import from_adu, image_scale, to_adu

ESTIMATE = get_operation("flatfield-estimate")
APPLY = get_operation("flatfield-apply")

TILE_METADATA = "Metadata"
TILE_ORDER = "Order within the group"
GRID_SETTING = "The grid setting"
GRID_METADATA = "Metadata"

_APPLY_SKIP = ("models_folder", "channel", "profiles")

FEATURES = [("TileNumber", COLTYPE_INTEGER), ("TilesInGroup", COLTYPE_INTEGER),
            ("CVBefore", COLTYPE_FLOAT), ("CVAfter", COLTYPE_FLOAT),
            ("CornerCentreBefore", COLTYPE_FLOAT), ("CornerCentreAfter", COLTYPE_FLOAT),
            ("Improvement", COLTYPE_FLOAT), ("Baseline", COLTYPE_FLOAT),
            ("CVBeforeHeldOut", COLTYPE_FLOAT), ("CVAfterHeldOut", COLTYPE_FLOAT),
            ("CornerCentreBeforeHeldOut", COLTYPE_FLOAT),
            ("CornerCentreAfterHeldOut", COLTYPE_FLOAT), ("OverFitting", COLTYPE_INTEGER),
            ("Sigma", COLTYPE_FLOAT),
            ("RescaleFactor", COLTYPE_FLOAT), ("ClippedToZero", COLTYPE_INTEGER),
            ("ClippedToMaximum", COLTYPE_INTEGER)]

_OWN_KEYS = ["image_name", "output_name", "flatfield_name", "tile_source", "tile_key",
             "grid_source", "grid_keys"]
_EST_KEYS = ["method", "grid", "order", "empty_tiles", "z_levels", "models_folder", "channel", "offset", "darkfield_file:folder", "darkfield_file",
             "sigma", "statistic", "planes", "seed", "get_darkfield", "smoothness_flatfield",
             "smoothness_darkfield", "epsilon", "working_size", "autosegment",
             "autosegment_margin", "max_workers", "fitting_mode"]
#: Setting keys of every revision, in file order.
SETTING_HISTORY: Dict[int, List[str]] = {
    1: _OWN_KEYS + _EST_KEYS + ["baseline", "clip", "resample"],
    2: _OWN_KEYS + _EST_KEYS + ["rescale", "baseline", "clip", "resample"],
}


class FlatfieldFromEmptyTiles(CamcorrModule):
    module_name = "FlatfieldFromEmptyTiles"
    variable_revision_number = 2
    SETTING_HISTORY = SETTING_HISTORY
    group_product = "the flat-field"
    measurement_category = "Flatfield"

    __doc__ = build_help(
        ESTIMATE,
        intro="""\
**FlatfieldFromEmptyTiles** estimates the illumination profile (flat-field) of a tiled
acquisition from its empty tiles or empty planes (or reads a measured one, or fits BaSiCPy) and
corrects every tile: (I - darkfield) / flatfield.""",
        supports=("YES", "YES", "NO"),
        details=f"""\
One **group** is one tiled acquisition of one channel (Groups module, e.g. by a channel
metadata key); each cycle is one tile. Before the first cycle of a group the module reads all
tiles of the group once (running the modules above it), estimates the flat-field, and then
corrects every tile of the group as the cycles run, so all tiles, including those before the
empty ones, are corrected in the same run.

-  *Tile numbers* (1-based, in acquisition order) come from a metadata key (e.g. ``Tile``
   extracted from the file name) or from the order of the images within the group.
-  *Grid* (rows, columns), used with "Tile order" to find the corner tiles for the z-range
   method, comes from the grid setting or from two metadata keys.
-  Scenarios: *measured* (models folder + channel name), *empty-tiles* (the listed tiles, or
   all tiles of a sparse specimen), *z-range* (planes below/above the specimen of 3D tiles),
   *basicpy* (needs the basicpy extra). *auto* picks one from what is filled in.

Outputs: the corrected tile and the flat-field it was divided by. *Rescale the flat-field*
works like CorrectIlluminationCalculate's "Rescale the illumination function?": *ceiling*
(default) divides the flat-field by its minimum, so dividing by it never brightens a pixel and
no corrected pixel exceeds the input's range (the tiles come out darker by that factor, see
the RescaleFactor measurement); *mean* keeps a mean-1 flat-field and the tiles' average level,
but bright pixels where the flat-field is below 1 can exceed the range (16-bit: 65535) and are
clipped; *none* uses the flat-field as estimated or measured. The *Baseline* is not subtracted
unless chosen ("auto"/"subtract"); then pixels below it are clipped at 0 when *Clip negative
values* is on. Every clipped pixel is counted (ClippedToZero, ClippedToMaximum). Save the
flat-field with SaveImages bit depth "No conversion" (its values are not limited to 0..1).

See also
^^^^^^^^

CellProfiler's **CorrectIlluminationCalculate** and **CorrectIlluminationApply** (the same
correction from the images of a run: "Regular" illumination function over all images,
rescaled, applied by "Divide"); this module adds empty-tile, empty-plane, measured and BaSiCPy
flat-fields and a darkfield (camera offset).""",
        measurements=[
            ("TileNumber", "tile number of the image (1-based)."),
            ("TilesInGroup", "tiles in the group."),
            ("CVBefore / CVAfter", "coefficient of variation of the smoothed background before "
                                   "and after correction (the quality number; lower is flatter)."),
            ("CornerCentreBefore / CornerCentreAfter", "corner/centre ratio of the background "
                                                       "(1.00 is flat)."),
            ("Improvement", "CVBefore / CVAfter."),
            ("Baseline", "baseline actually subtracted, ADU (0 unless the Baseline setting asks "
                         "for it)."),
            ("RescaleFactor", "what the flat-field was divided by (its minimum for 'ceiling', "
                              "its mean for 'mean', 1 for 'none')."),
            ("ClippedToZero / ClippedToMaximum", "pixels of this tile clipped at 0 and at the "
                                                 "top of the input's range."),
            ("CVBeforeHeldOut / CVAfterHeldOut, CornerCentreBeforeHeldOut / "
             "CornerCentreAfterHeldOut", "the same figures held-out: the flat-field estimated "
                                         "on one half of the tiles' planes, measured on the "
                                         "other half (the honest number; blank when there is "
                                         "a single plane)."),
            ("OverFitting", "1 when the held-out and in-sample figures disagree (the "
                            "flat-field follows its own images; the run log says why), else 0."),
            ("Sigma", "smoothing used, pixels (chosen by held-out validation unless set)."),
        ],
        technical="""\
Group state holds the flat-field and darkfield (numpy arrays), the baseline and the quality
figures (JSON). The module is an aggregation module: CellProfiler runs a group in one worker.
All tiles of a group are held in memory while the flat-field is estimated.""")

    def create_settings(self):
        self.image_name = (ImageSubscriber(
            "Select the input tile", "None", doc="One tile per cycle, in camera counts (ADU)."))
        self.output_name = (ImageName("Name the corrected image", "FlatfieldCorrected",
                                           doc="Corrected tile."))
        self.flatfield_name = (ImageName(
            "Name the flat-field image", "Flatfield",
            doc="The flat-field (mean 1), the same for every tile of the group."))
        self.tile_source = (Choice(
            "Tile number from", [TILE_METADATA, TILE_ORDER], TILE_METADATA,
            doc=f"*{TILE_METADATA}*: a metadata key holding the 1-based tile number. "
                f"*{TILE_ORDER}*: the position of the image within its group."))
        self.tile_key = (Text(
            "Metadata key of the tile number", "Tile",
            doc="Name of the metadata key (without the ``Metadata_`` prefix) extracted by the "
                "Metadata module, e.g. Tile from a file name like BrainSection0007.tif."))
        self.grid_source = (Choice(
            "Grid from", [GRID_SETTING, GRID_METADATA], GRID_SETTING,
            doc="Where the mosaic rows and columns come from."))
        self.grid_keys = (Text(
            "Metadata keys of the grid rows, columns", "GridRows,GridColumns",
            doc="Two metadata keys holding the number of rows and of columns."))
        self.estimate = ParamSettings(ESTIMATE)
        self.apply = ParamSettings(APPLY, skip=_APPLY_SKIP)

    def keyed_settings(self):
        return self.own(*_OWN_KEYS) + self.estimate.keyed() + self.apply.keyed()

    def visible_settings(self):
        result = [self.image_name, self.output_name, self.flatfield_name, self.tile_source]
        if self.tile_source.value == TILE_METADATA:
            result.append(self.tile_key)
        result.append(self.grid_source)
        if self.grid_source.value == GRID_METADATA:
            result.append(self.grid_keys)
        names = [n for n in self.estimate.by_name
                 if not (n == "grid" and self.grid_source.value == GRID_METADATA)]
        return result + self.estimate.visible(names) + self.apply.visible()

    def upgrade_settings(self, setting_values, variable_revision_number, module_name):
        old = variable_revision_number
        values, revision = super().upgrade_settings(setting_values, variable_revision_number,
                                                    module_name)
        if old == 1:  # revision 1 divided by the flat-field as estimated: keep what it did
            values[SETTING_HISTORY[2].index("rescale")] = "none"
        return values, revision

    def volumetric(self):
        return True

    def is_aggregation_module(self):
        return True

    def check_settings(self, pipeline):
        values = self.estimate.values()
        self.apply.values()
        if self.tile_source.value == TILE_METADATA and not self.tile_key.value.strip():
            raise ValidationError("Give the metadata key of the tile number", self.tile_key)
        if self.grid_source.value == GRID_METADATA and \
                len([k for k in self.grid_keys.value.split(",") if k.strip()]) != 2:
            raise ValidationError("Give two metadata keys: rows, columns", self.grid_keys)
        if len({self.output_name.value, self.flatfield_name.value}) != 2:
            raise ValidationError("The flat-field needs a name of its own", self.flatfield_name)
        method = ff.choose_method(values["method"], models_folder=values["models_folder"],
                                  empty_tiles=values["empty_tiles"], z_levels=values["z_levels"])
        if method == "measured" and not values["models_folder"]:
            raise ValidationError("The measured method needs a models folder",
                                  self.estimate.main_setting("models_folder"))

    # ---- aggregation ------------------------------------------------------------------------
    def _metadata(self, m, key, image_number, what):
        feature = f"Metadata_{key.strip()}"
        if not m.has_feature("Image", feature):
            raise CamcorrError(f"no metadata '{key.strip()}' for the {what}",
                               argument=f"FlatfieldFromEmptyTiles (setting '{what}')",
                               expected=f"a metadata key {key.strip()!r} from the Metadata module",
                               received="image sets without it",
                               fix="Extract it in the Metadata module (e.g. from the file name), "
                                   f"or use '{TILE_ORDER}'")
        value = m.get_measurement("Image", feature, image_number)
        try:
            return int(float(value))
        except (TypeError, ValueError):
            raise CamcorrError(f"metadata '{key.strip()}' is not a whole number",
                               argument=f"FlatfieldFromEmptyTiles (setting '{what}')",
                               expected="a whole number", received=repr(value)) from None

    def _tile_numbers(self, m, image_numbers) -> Dict[int, int]:
        if self.tile_source.value == TILE_ORDER:
            return {int(n): i + 1 for i, n in enumerate(image_numbers)}
        numbers = {int(n): self._metadata(m, self.tile_key.value, n, self.tile_key.text)
                   for n in image_numbers}
        found = sorted(numbers.values())
        if found != list(range(1, len(found) + 1)):
            raise CamcorrError(
                "the tile numbers of the group are not 1..N", argument=(
                    f"FlatfieldFromEmptyTiles (setting '{self.tile_key.text}')"),
                expected=f"tile numbers 1 to {len(found)}, each once, in every group",
                received=f"{_short(found)}",
                fix="Group the images so that one group is one tiled acquisition of one channel")
        return numbers

    def _grid(self, m, image_numbers, values):
        if self.grid_source.value == GRID_SETTING:
            return values["grid"]
        keys = [k for k in self.grid_keys.value.split(",") if k.strip()]
        first = image_numbers[0]
        return tuple(self._metadata(m, k, first, self.grid_keys.text) for k in keys)

    def prepare_group(self, workspace, grouping, image_numbers):
        d = self.get_dictionary()
        d.clear()
        m = workspace.measurements
        name = self.image_name.value
        try:
            self.require_whole_group(workspace, image_numbers)
            values = self.estimate.values(m)
            tile_of = self._tile_numbers(m, image_numbers)
            values["grid"] = self._grid(m, image_numbers, values)
            if values.get("darkfield_file"):
                from camcorr.io import read_image

                values["darkfield"] = read_image(values["darkfield_file"],
                                                 argument=self.estimate.main_setting(
                                                     "darkfield_file").text)
            tiles: Dict[int, np.ndarray] = {}
            for number, images in self.iter_group_images(workspace, grouping, image_numbers,
                                                         [name]):
                tiles[tile_of[int(number)]] = to_adu(images[name], f"image '{name}'")
            ordered = [tiles[t] for t in sorted(tiles)]
            profiles = ff.estimate_flatfield(ordered, **estimate_kwargs(values))
        except CamcorrError as exc:
            self.fail(_with_setting(exc, self))
        d["flatfield"] = np.asarray(profiles.flatfield, np.float32)
        d["darkfield"] = np.asarray(profiles.darkfield, np.float32)
        base = profiles.baseline
        d["baseline"] = float(base) if np.isscalar(base) else np.asarray(base, np.float64)
        d["source"] = str(profiles.source)
        d["quality"] = _flat_quality(profiles)
        if profiles.quality.get("overfit"):
            import logging

            logging.getLogger(__name__).warning("FlatfieldFromEmptyTiles: %s",
                                                profiles.quality.get("overfit_note"))
        d["tile_of"] = {str(k): int(v) for k, v in tile_of.items()}
        d["n_tiles"] = len(tile_of)
        return True

    def _profiles(self):
        d = self.get_dictionary()
        if "flatfield" not in d:
            raise CamcorrError("no flat-field for this group", argument="FlatfieldFromEmptyTiles",
                               expected="the group's tiles read before its first cycle",
                               received="a cycle outside a prepared group")
        return ff.Profiles(flatfield=d["flatfield"], darkfield=d["darkfield"],
                           baseline=d["baseline"], source=d["source"])

    def run(self, workspace):
        name = self.image_name.value
        image = workspace.image_set.get_image(name, must_be_grayscale=True)
        d = self.get_dictionary()
        try:
            kw = APPLY.engine_kwargs(self.apply.values())  # the operation's one translation
            profiles = self._profiles()
            scale = image_scale(image, name)
            data = to_adu(image, f"image '{name}'")
            number = int(workspace.measurements.image_set_number)
            tile = d["tile_of"].get(str(number), 0)
            counts: dict = {}
            corrected = ff.apply_flatfield(
                data, profiles, baseline=kw["baseline"], index=tile - 1 if tile else None,
                clip=kw["clip"], dtype=np.float32, resample=kw["resample"],
                rescale=kw["rescale"], counts=counts,
                argument=f"FlatfieldFromEmptyTiles image '{name}' (tile {tile})")
        except CamcorrError as exc:
            self.fail(exc)
        # CellProfiler images live in [0, 1] x scale (SaveImages refuses more): pixels above the
        # input's maximum are clipped there and counted (none with Rescale 'ceiling').
        above = int(np.count_nonzero(corrected > scale))
        corrected = np.minimum(corrected, scale)
        workspace.image_set.add(self.output_name.value, Image(
            from_adu(corrected, scale), parent_image=image, scale=scale,
            dimensions=image.dimensions, convert=False))
        flat = (d["flatfield"] / np.float32(counts["rescale_factor"])).astype(np.float32)
        workspace.image_set.add(self.flatfield_name.value, Image(
            flat, dimensions=3 if flat.ndim == 3 else 2, convert=False))
        q = d.get("quality") or {}
        self.add_measurements(workspace, self.output_name.value, {
            "TileNumber": tile,
            "TilesInGroup": d["n_tiles"],
            "CVBefore": q.get("cv_before"),
            "CVAfter": q.get("cv_after"),
            "CornerCentreBefore": q.get("corner_centre_before"),
            "CornerCentreAfter": q.get("corner_centre_after"),
            "Improvement": q.get("improvement"),
            "Baseline": float(counts["baseline"]),
            "RescaleFactor": float(counts["rescale_factor"]),
            "ClippedToZero": int(counts["clipped_low"]),
            "ClippedToMaximum": int(counts["clipped_high"]) + above,
            "CVBeforeHeldOut": q.get("ho_cv_before"),
            "CVAfterHeldOut": q.get("ho_cv_after"),
            "CornerCentreBeforeHeldOut": q.get("ho_corner_centre_before"),
            "CornerCentreAfterHeldOut": q.get("ho_corner_centre_after"),
            "OverFitting": int(bool(q.get("overfit"))),
            "Sigma": q.get("sigma"),
        })
        self.set_display_images(workspace, [(name, data), (self.output_name.value, corrected),
                                            ("Flat-field", flat)])

    def measurement_features(self):
        return FEATURES

    def measurement_image_names(self):
        return [self.output_name.value]


def _flat_quality(profiles) -> Dict[str, object]:
    """Quality figures as plain floats for the group state: in-sample keys as they are,
    held-out ones prefixed ``ho_``, the over-fitting flag and the sigma used."""
    def num(v):
        return float(v) if isinstance(v, (int, float, np.floating)) and v is not None else None

    q = profiles.quality or {}
    out = {k: num(v) for k, v in q.items() if not isinstance(v, (dict, str, bool))}
    for k, v in (q.get("held_out") or {}).items():
        out[f"ho_{k}"] = num(v)
    out["overfit"] = 1.0 if q.get("overfit") else 0.0
    out["sigma"] = num((profiles.meta or {}).get("sigma"))
    return out


def _short(values, n=12):
    text = ", ".join(str(v) for v in values[:n])
    return text + (", ..." if len(values) > n else "")


def _with_setting(exc: CamcorrError, module) -> CamcorrError:
    """Name the module and, where the engine names a parameter, the setting."""
    arg = exc.argument or ""
    for p in list(ESTIMATE.params) + list(APPLY.params):
        if arg and arg.lower() in (p.name.replace("_", " "), p.name, p.label.lower(),
                                   (p.cli or "").lower()):
            arg = f"FlatfieldFromEmptyTiles (setting '{setting_text(p)}')"
            break
    else:
        if not arg.startswith("FlatfieldFromEmptyTiles"):
            arg = f"FlatfieldFromEmptyTiles ({arg})" if arg else "FlatfieldFromEmptyTiles"
    return CamcorrError(exc.message, argument=arg, expected=exc.expected, received=exc.received,
                        fix=exc.fix)
