"""CellProfiler settings generated from a camcorr :class:`~camcorr.operations.Operation`.

The label, default, limits, unit and help of every setting come from the operation's
:class:`~camcorr.operations.Param` (the same definition the command line and Fiji use), so the
three front ends cannot drift apart.  Mapping of parameter kinds:

=============  ===============================================================================
kind           CellProfiler setting(s)
=============  ===============================================================================
float / int    Float / Integer with the Param's limits (Text, blank = automatic, when the
               default is ``None``)
bool           Binary
choice         Choice
str            Text
int_list,      Text (``1,7,8`` / ``3-5``; ``a, b``), parsed by ``Param.validate``
pairs
file           Directory (location) + Filename; the Directory understands "Default Input
               Folder" so pipelines stay portable between a laptop and a cluster
folder         Directory
image(s),      not settings: the plugin declares its own image subscribers and names
outputs
=============  ===============================================================================

Settings round-trip through ``.cppipe`` files by position.  Every setting is a plain CellProfiler
setting; its stable key (the parameter name, ``name:folder`` for the folder of a file) is kept
beside it in :class:`ParamSettings` (never as an attribute of the setting: ``Setting.key()`` is a
CellProfiler method), so :func:`upgrade_by_keys` can map the values of an older module revision
onto the current settings (new settings take their defaults, removed ones are dropped).
Which settings a dialog shows follows ``Param.shown_if`` of the operation definition.
"""
from __future__ import annotations

import os
import re
from typing import Dict, List, Optional, Sequence, Tuple

from cellprofiler_core.preferences import DEFAULT_INPUT_FOLDER_NAME, NO_FOLDER_NAME
from cellprofiler_core.setting import Binary, ValidationError
from cellprofiler_core.setting.choice import Choice
from cellprofiler_core.setting.text import Directory, Filename, Float, Integer, Text

from camcorr.errors import CamcorrError
from camcorr.operations import Operation, Param

SKIPPED_KINDS = ("image", "images", "output_file", "output_folder")


def rst_escape(text: str) -> str:
    """Plain text (operation descriptions and help) made safe as reStructuredText."""
    text = text.replace("\\", "\\\\").replace("*", "\\*").replace("`", "\\`").replace("|", "\\|")
    return re.sub(r"(\w)_(?=[^\w]|$)", r"\1\\_", text)


def flags_to_settings(text: str, operation: Optional[Operation]) -> str:
    """Help written for the command line names flags (``--empty-tiles``); in CellProfiler the
    same parameter is a setting, so name the setting ('Empty tiles') instead."""
    if operation is None:
        return text
    for q in sorted(operation.params, key=lambda q: -len(q.cli or "")):
        if q.cli and q.cli in text:
            label = setting_text(q) if q.kind not in SKIPPED_KINDS else q.label or q.name
            text = re.sub(re.escape(q.cli) + r"(?![\w-])", f"'{label}'", text)
    return text


def _doc(p: Param, operation: Optional[Operation] = None) -> str:
    parts = [rst_escape(flags_to_settings(p.help.strip() or p.text(), operation))]
    if p.unit:
        parts.append(f"Unit: {p.unit}.")
    if p.minval is not None or p.maxval is not None:
        lo = "-inf" if p.minval is None else f"{p.minval:g}"
        hi = "inf" if p.maxval is None else f"{p.maxval:g}"
        parts.append(f"Allowed: [{lo}, {hi}].")
    if p.default is not None:
        parts.append(f"Default: {_default_text(p)}.")
    return " ".join(parts)


def _default_text(p: Param) -> str:
    d = p.default
    if d is None:
        return ""
    if p.kind == "bool":
        return "Yes" if d else "No"
    if p.kind == "int_list":
        return ",".join(str(v) for v in d)
    if p.kind in ("float_pair", "int_pair"):
        return ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in d)
    return str(d)


def setting_text(p: Param) -> str:
    """The setting label of a parameter.  ``.cppipe`` files store ``label:value`` lines split at
    the first colon, so a colon in a label (``'BaSiCPy: epsilon'``) becomes ``' -'``."""
    return p.text().replace(":", " -")


def make_settings(p: Param, operation: Optional[Operation] = None) -> List[Tuple[str, object]]:
    """The CellProfiler setting(s) for one parameter, as ``(stable key, setting)`` pairs.

    The settings are plain CellProfiler settings; their stable keys (for :func:`upgrade_by_keys`)
    live only in the returned pairs, never on the setting objects."""
    text, doc = setting_text(p), _doc(p, operation)
    kind = p.kind
    if kind == "float" and p.default is not None:
        setting = Float(text, float(p.default), minval=p.minval, maxval=p.maxval, doc=doc)
    elif kind == "int" and p.default is not None:
        setting = Integer(text, int(p.default),
                          minval=None if p.minval is None else int(p.minval),
                          maxval=None if p.maxval is None else int(p.maxval), doc=doc)
    elif kind == "bool":
        setting = Binary(text, bool(p.default), doc=doc)
    elif kind == "choice":
        setting = Choice(text, list(p.choices), value=p.default or p.choices[0], doc=doc)
    elif kind == "folder":
        if p.default is None and not p.required:  # optional: "None" = not given
            setting = Directory(text, allow_metadata=False, doc=doc,
                                dir_choices=[NO_FOLDER_NAME] + list(Directory.DIR_ALL))
            setting.value = setting.join_string(NO_FOLDER_NAME, "")
        else:
            setting = Directory(text, allow_metadata=False, doc=doc)
            setting.value = setting.join_string(DEFAULT_INPUT_FOLDER_NAME, "")
    elif kind == "file":
        location = Directory(f"{text} - folder", allow_metadata=False,
                             doc=f"Folder that holds the file below. {doc}")
        location.value = location.join_string(DEFAULT_INPUT_FOLDER_NAME, "")

        def get_dir(loc=location):
            return loc.get_absolute_path()

        def set_dir(path, loc=location):
            dir_choice, custom = loc.get_parts_from_path(path)
            loc.join_parts(dir_choice, custom)

        name = Filename(text, "" if p.default is None else os.path.basename(str(p.default)),
                        doc=doc, get_directory_fn=get_dir, set_directory_fn=set_dir)
        return [(f"{p.name}:folder", location), (p.name, name)]
    else:  # str, int_list, pairs, numbers without a default (blank = automatic)
        setting = Text(text, _default_text(p), doc=doc)
    return [(p.name, setting)]


class ParamSettings:
    """The settings of an operation's CellProfiler parameters.

    Parameters
    ----------
    operation : Operation
    skip : sequence of str
        Parameter names the plugin handles itself (or hides).
    """

    def __init__(self, operation: Operation, skip: Sequence[str] = ()):
        self.operation = operation
        self.by_name: Dict[str, List] = {}
        self.param: Dict[str, Param] = {}
        self._keys: Dict[str, List[str]] = {}
        for p in operation.params_for("cellprofiler"):
            if p.kind in SKIPPED_KINDS or p.name in skip:
                continue
            pairs = make_settings(p, operation)
            self.by_name[p.name] = [s for _, s in pairs]
            self._keys[p.name] = [k for k, _ in pairs]
            self.param[p.name] = p

    def __contains__(self, name):
        return name in self.by_name

    def settings(self, names: Optional[Sequence[str]] = None) -> List:
        """Flat list of settings (all, or those of `names`), in operation order."""
        names = list(self.by_name) if names is None else names
        return [s for n in names for s in self.by_name[n]]

    def keyed(self, names: Optional[Sequence[str]] = None) -> List[Tuple[str, object]]:
        """``(stable key, setting)`` pairs, in the order of :meth:`settings`."""
        names = list(self.by_name) if names is None else names
        return [(k, s) for n in names for k, s in zip(self._keys[n], self.by_name[n])]

    def visible(self, names: Optional[Sequence[str]] = None) -> List:
        """The settings to show: those whose parameter is shown for the current values of the
        others (``Param.shown_if`` of the operation definition)."""
        names = list(self.by_name) if names is None else names
        current = {n: self.raw(n) for n in self.by_name if self.param[n].kind not in
                   ("file", "folder")}
        return self.settings([n for n in names if self.param[n].is_shown(current)])

    def main_setting(self, name: str):
        """The setting to tie an error about parameter `name` to (the file name for files)."""
        return self.by_name[name][-1]

    def raw(self, name: str, measurements=None, image_set_number=None):
        """The value of one parameter as the operation expects it (before validation)."""
        settings = self.by_name[name]
        p = self.param[name]
        if p.kind == "file":
            fname = settings[1].value
            if fname in ("", "None", None):
                return None
            if os.path.isabs(fname):
                return fname
            folder = settings[0].get_absolute_path(measurements, image_set_number)
            return os.path.join(folder, fname)
        if p.kind == "folder":
            path = settings[0].get_absolute_path(measurements, image_set_number)
            return path or None
        value = settings[0].value
        if isinstance(settings[0], Text) and not isinstance(settings[0], (Float, Integer)):
            value = value.strip()
            if value == "":
                return None
        return value

    def values(self, measurements=None, image_set_number=None) -> dict:
        """Validated ``{name: value}`` for the operation; raises :class:`ValidationError`."""
        raw = {n: self.raw(n, measurements, image_set_number) for n in self.by_name}
        out = {}
        for name, value in raw.items():
            p = self.param[name]
            try:
                out[name] = p.validate(value, argument=setting_text(p))
            except CamcorrError as exc:
                raise ValidationError(str(exc), self.main_setting(name)) from None
            if p.kind == "file" and out[name] is not None and not os.path.isfile(out[name]):
                raise ValidationError(
                    str(CamcorrError("file not found", argument=setting_text(p),
                                     expected="an existing file", received=out[name],
                                     fix="Check the folder and file name settings")),
                    self.main_setting(name))
        return out


def upgrade_by_keys(values: List[str], old_keys: Sequence[str], new_keys: Sequence[str],
                    defaults: Dict[str, str]) -> List[str]:
    """Map setting values saved under `old_keys` onto `new_keys`.

    The first ``len(old_keys)`` values are the fixed settings; anything after them (repeated
    groups such as a channel list) is kept as is at the end.
    """
    n = len(old_keys)
    if len(values) < n:
        raise ValueError(f"expected at least {n} setting values, got {len(values)}")
    old = dict(zip(old_keys, values[:n]))
    return [old.get(k, defaults.get(k, "")) for k in new_keys] + list(values[n:])
