"""Checks of a command's paths before any work: inputs distinct, outputs writable and safe.

:func:`check_operation` runs in :func:`camcorr.cli.main` between parameter validation and the
runner, using the parameter kinds of the operation registry (``image``/``images``/``file`` are
inputs, ``output_file``/``output_folder`` outputs):

* the same file given twice as an input (``flash correct A.tif A.tif``) is refused: it would be
  processed as two channels, and one output would overwrite the other;
* an output equal to any input, parameter or settings file is refused, as are two outputs that
  name the same file;
* an output that is an existing folder (file expected), lies under a regular file, sits on a
  read-only file system or in a folder the user cannot write, or whose file system lacks room
  for the estimated output, is refused before the computation (:func:`camcorr.io.preflight_output`);
* operations that name their outputs after their inputs refuse an output folder that holds
  those inputs.

Stale camcorr temporary files of killed runs are removed from the output folders on the way.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List, Tuple

from .errors import CamcorrError
from .io import preflight_output

__all__ = ["check_operation", "check_distinct_inputs", "cli_name", "SAME_NAME_OUTPUTS"]

_INPUT_KINDS = ("image", "images", "file", "files")
#: Operations that write ``<output folder>/<input file name>`` for every input.
SAME_NAME_OUTPUTS = ("flash-correct", "flatfield-apply", "gain-normalize")
# Estimated output size from the input sizes: "same" (about the inputs' size), "one" (the size of
# the largest single input), or a fixed small size for reductions (a few planes).
#: Output-file parameters that may name a folder (the operation names the file inside it).
FOLDER_OK_OUTPUTS = (("flash-calibrate", "output"), ("parallel-calibrate", "output"),
                     ("flatfield-estimate", "output"))
_SIZE_RULE = {"flash-correct": "same", "flatfield-apply": "same", "gain-normalize": "same",
              "median": "one"}


def cli_name(p) -> str:
    """How the command line shows parameter `p`: its flag, or its usage placeholder
    (``STACK`` for metavar ``STACK.tif``) for a positional one."""
    if p.cli:
        return p.cli
    if p.metavar:
        return p.metavar.split(".")[0].split()[0].upper()
    return p.name.upper()


def _as_list(v) -> List:
    if v is None:
        return []
    return list(v) if isinstance(v, (list, tuple)) else [v]


def _key(path: str) -> Tuple:
    try:
        st = os.stat(path)
        return ("inode", st.st_dev, st.st_ino)
    except OSError:
        return ("path", os.path.normcase(os.path.abspath(path)))


def check_distinct_inputs(named: List[Tuple[str, str]]) -> None:
    """Raise if one file appears twice among `named` ``(argument, path)`` inputs.

    Files are compared by identity (device and inode), so a symlink or a second spelling of the
    same path is caught too.
    """
    seen: Dict[Tuple, Tuple[str, str]] = {}
    for arg, path in named:
        if os.path.isdir(path):
            continue
        k = _key(path)
        if k in seen:
            arg0, path0 = seen[k]
            where = arg if arg == arg0 else f"{arg0} and {arg}"
            raise CamcorrError("the same file is given twice", argument=where,
                               expected="distinct input files",
                               received=f"{path0} and {path}" if path0 != path else f"{path} twice",
                               fix="Remove the duplicate (every input is processed separately "
                                   "and its output would overwrite the other)")
        seen[k] = (arg, path)


def _expected_bytes(op, inputs: List[Tuple[str, str, str]]) -> int:
    rule = _SIZE_RULE.get(op.name)
    sizes = []
    for _arg, kind, path in inputs:
        if kind in ("image", "images"):
            try:
                sizes.append(os.path.getsize(path))
            except OSError:
                pass
    if not sizes or rule is None:
        return 0
    return sum(sizes) if rule == "same" else max(sizes)


def check_operation(op, values: Dict) -> None:
    """Check the paths of a validated parameter dict of `op` before the runner starts.

    Raises
    ------
    CamcorrError
        Naming the parameter as the command line shows it (``--output``, ``STACK``, ...).
    """
    params = op.params_for("cli")
    inputs: List[Tuple[str, str, str]] = []  # (argument, kind, path)
    for p in params:
        if p.kind in _INPUT_KINDS:
            for v in _as_list(values.get(p.name)):
                inputs.append((cli_name(p), p.kind, str(v)))
    check_distinct_inputs([(a, path) for a, kind, path in inputs])
    input_files = [path for _a, _k, path in inputs if os.path.isfile(path)]
    outputs: List[Tuple[str, str]] = []
    expected = _expected_bytes(op, inputs)
    for p in params:
        if p.kind not in ("output_file", "output_folder"):
            continue
        v = values.get(p.name)
        if v is None:
            continue
        if str(v).strip() == "":
            raise CamcorrError("empty path", argument=cli_name(p), expected="a file or folder name",
                               received="an empty string",
                               fix="Leave the option out to use the default")
        # some output files may be given as a folder to hold a file named by the operation
        # (flash calibrate); the others need a file name
        folder = p.kind == "output_folder" or (
            (op.name, p.name) in FOLDER_OK_OUTPUTS and os.path.isdir(str(v)))
        preflight_output(v, argument=cli_name(p), inputs=input_files,
                         expected_bytes=expected, folder=folder)
        if folder and op.name in SAME_NAME_OUTPUTS:
            out = Path(v)
            for arg, kind, path in inputs:
                if kind in ("image", "images") and os.path.isfile(path) and \
                        _key(str(out / Path(path).name)) == _key(path):
                    raise CamcorrError("would overwrite an input file", argument=cli_name(p),
                                       expected="an output folder other than the inputs' folder",
                                       received=f"{v} (holds the input {path})",
                                       fix="Choose another output folder (e.g. -o corrected/)")
        if p.kind == "output_file" and not os.path.isdir(str(v)):
            outputs.append((cli_name(p), str(v)))
    for i, (arg, path) in enumerate(outputs):
        for arg2, path2 in outputs[:i]:
            if _key(path) == _key(path2):
                raise CamcorrError("two outputs name the same file", argument=f"{arg2}/{arg}",
                                   expected="different files", received=path)
