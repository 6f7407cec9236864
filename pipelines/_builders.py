"""Small builders for CellProfiler pipelines (used by make_pipelines.py and the tests).

Every pipeline is assembled from module objects of the installed CellProfiler and written with
``Pipeline.dump``, so the files carry the exact setting texts and revision numbers of the
CellProfiler version the tests run (5.0 nightly: ``DateRevision:500``).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = ROOT / "cellprofiler_plugins"


def init_cellprofiler():
    """Headless CellProfiler with the camcorr plugins registered (call before building)."""
    import cellprofiler_core.preferences as cpprefs

    cpprefs.set_headless()
    cpprefs.set_plugin_directory(str(PLUGINS), globally=False)
    import cellprofiler_core.modules  # noqa: F401  (clears the registry, then loads plugins)
    from cellprofiler_core.utilities.core.plugins import load_plugins

    load_plugins(modules_only=True)


def module(name: str, **values):
    """Instantiate module `name` (built-in or plugin); set attributes ``attr=value``."""
    from cellprofiler_core.utilities.core.modules import instantiate_module

    mod = instantiate_module(name)
    for attr, value in values.items():
        getattr(mod, attr).value = value
    return mod


def input_modules(*, regex: str, assignments: Sequence[Tuple[str, str]] = (),
                  single_name: Optional[str] = None, match_keys: Sequence[str] = (),
                  group_keys: Sequence[str] = (), volume: bool = False,
                  exclude: Sequence[str] = ("FlashParam", "profiles", "Settings")) -> List:
    """Images, Metadata, NamesAndTypes, Groups.

    Parameters
    ----------
    regex : str
        Regular expression with named groups, applied to file names (metadata).
    assignments : [(image name, 'file does contain "ch0"'), ...]
        Rules for NamesAndTypes (match by `match_keys`); or `single_name` for all images.
    group_keys : metadata keys to group by (a movie, a tile set); empty = no grouping.
    volume : bool
        Process as 3D (each file one Z stack).
    exclude : file-name prefixes the Images module skips (calibration files beside the data).
    """
    from cellprofiler_core.modules.groups import Groups
    from cellprofiler_core.modules.images import Images
    from cellprofiler_core.modules.metadata import Metadata
    from cellprofiler_core.modules.namesandtypes import NamesAndTypes

    images = Images()
    rule = 'and (extension does isimage) (directory doesnot containregexp "[\\\\/]\\.")'
    for prefix in exclude:
        rule += f' (file doesnot startwith "{prefix}")'
    images.filter.value = rule

    metadata = Metadata()
    metadata.wants_metadata.value = True
    metadata.extraction_methods[0].file_regexp.value = regex

    nt = NamesAndTypes()
    nt.process_as_3d.value = volume
    if single_name:
        nt.assignment_method.value = "All images"
        nt.single_image_provider.value = single_name
        nt.single_rescale_method.value = "Image bit-depth"
    else:
        nt.assignment_method.value = "Images matching rules"
        for i, (name, rule_text) in enumerate(assignments):
            if i > 0:
                nt.add_assignment()
            group = nt.assignments[i]
            group.rule_filter.value = f"and ({rule_text})"
            group.image_name.value = name
            group.rescale_method.value = "Image bit-depth"
        if match_keys:
            nt.matching_choice.value = "Metadata"
            nt.join.build([{name: key for name, _ in assignments} for key in match_keys])

    groups = Groups()
    if group_keys:
        groups.wants_groups.value = True
        for i, key in enumerate(group_keys):
            if i > 0:
                groups.add_grouping_metadata()
            groups.grouping_metadata[i].metadata_choice.value = key
    return [images, metadata, nt, groups]


def save_images(image_name: str, *, suffix: str, bit_depth: str = "16-bit integer",
                when: str = "Every cycle", from_image: Optional[str] = None,
                single_name: Optional[str] = None, volume: bool = False):
    """SaveImages of `image_name` as TIFF in the Default Output Folder.

    The file name is the input file name (of `from_image`) plus `suffix`, or `single_name`
    (for once-per-group images such as a flat-field, saved on the last cycle).
    """
    si = module("SaveImages")
    si.save_image_or_figure.value = "Image"
    si.image_name.value = image_name
    if single_name:
        si.file_name_method.value = "Single name"
        si.single_file_name.value = single_name
    else:
        si.file_name_method.value = "From image filename"
        si.file_image_name.value = from_image or image_name
        si.wants_file_name_suffix.value = True
        si.file_name_suffix.value = suffix
    si.file_format.value = "tiff"
    si.bit_depth.value = bit_depth
    si.overwrite.value = True
    si.when_to_save.value = when
    return si


def export_measurements():
    """ExportToSpreadsheet: Image.csv (all image measurements) in the Default Output Folder."""
    ex = module("ExportToSpreadsheet")
    ex.wants_everything.value = True
    ex.wants_overwrite_without_warning.value = True
    ex.nan_representation.value = "NaN"
    return ex


def build(modules: Sequence, path: Path, notes: Dict[int, Sequence[str]] = None):
    """Number the modules, attach notes, and dump the pipeline to `path`."""
    from cellprofiler_core.pipeline import Pipeline

    pipeline = Pipeline()
    for i, mod in enumerate(modules):
        mod.set_module_num(i + 1)
        if notes and i in notes:
            mod.set_notes(list(notes[i]))
        pipeline.add_module(mod)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as fd:
        pipeline.dump(fd)
    os.replace(tmp, path)
    return path
