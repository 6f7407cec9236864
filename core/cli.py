"""The ``camcorr`` command line, generated from the operation definitions.

Every sub-command comes from an :class:`~camcorr.operations.Operation`; its options, defaults and
help text are the ones CellProfiler and Fiji show.  Errors in the input print one paragraph and
exit with status 2; unexpected errors print one paragraph, exit with status 1 and leave the
traceback in a log file (``--debug`` or ``CAMCORR_DEBUG=1`` shows it).  Paths are checked before
any work (:mod:`camcorr.preflight`).
"""
from __future__ import annotations

import argparse
import os
import sys
import textwrap
from typing import Dict, List, Optional, Sequence

from ._version import __version__
from .operations import Operation, Param, RunResult, all_operations, run_status

__all__ = ["main", "build_parser"]

_DESCRIPTION = """\
camcorr: camera and illumination corrections for microscopy.

Typical use:
  camcorr flash calibrate CALIB_DIR            fit the Flash4.0 carryover of your camera
  camcorr flash correct DATA_DIR --params P.tif -o corrected/
  camcorr median STACK.tif -o clean.tif        replace hot and noisy pixels
  camcorr gain estimate MOVIE.tif -o gain.tif  estimate the residual gain of a camera
  camcorr flatfield estimate TILES... -o profiles.npz
  camcorr demo                                 see everything work on simulated data

Run 'camcorr COMMAND --help' for the options of a command.
"""


class _Formatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog):
        super().__init__(prog, max_help_position=32, width=min(100, _term_width()))


def _term_width() -> int:
    try:
        return os.get_terminal_size().columns
    except OSError:
        return 100


def _add_param(parser: argparse.ArgumentParser, p: Param):
    help_text = p.help
    if p.unit:
        help_text += f" Unit: {p.unit}."
    if p.default is not None and p.kind not in ("bool",):
        help_text += " Default: %(default)s."
    kw: Dict = {"help": help_text, "dest": p.name}
    if p.metavar:
        kw["metavar"] = p.metavar
    kind = p.kind
    if kind in ("float", "int"):
        kw["type"] = float if kind == "float" else int
    elif kind == "choice":
        kw["choices"] = p.choices
    elif kind in ("float_pair", "int_pair"):
        kw["nargs"] = 2
        kw["type"] = float if kind == "float_pair" else int
    elif kind in ("files", "images"):
        kw["nargs"] = "+"
    if p.cli is None:  # positional
        kw.pop("dest")
        if kind in ("files", "images"):
            kw["nargs"] = "+"
        elif not p.required and p.default is not None:
            kw["nargs"] = "?"
            kw["default"] = p.default
        parser.add_argument(p.name, **kw)
        return
    flags = [p.cli] + ([p.short] if p.short else [])
    if kind == "bool":
        kw["action"] = argparse.BooleanOptionalAction if p.default else "store_true"
        kw["default"] = bool(p.default)
    else:
        kw["default"] = p.default
        if p.required:
            kw["required"] = True
    parser.add_argument(*flags, **kw)


def build_parser(operations: Optional[Dict[str, Operation]] = None) -> argparse.ArgumentParser:
    """The argparse parser with one sub-command per operation exposed on the command line."""
    ops = operations if operations is not None else all_operations()
    parser = argparse.ArgumentParser(prog="camcorr", description=_DESCRIPTION,
                                     formatter_class=_Formatter)
    parser.add_argument("--version", action="version", version=f"camcorr {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="Show the full traceback of an error (also CAMCORR_DEBUG=1); may be "
                             "given anywhere on the line.")
    groups: Dict[tuple, argparse._SubParsersAction] = {}
    parsers: Dict[tuple, argparse.ArgumentParser] = {(): parser}

    def subparsers_of(path: tuple) -> argparse._SubParsersAction:
        if path not in groups:
            groups[path] = parsers[path].add_subparsers(title="commands", metavar="COMMAND")
        return groups[path]

    for op in sorted(ops.values(), key=lambda o: o.command):
        if "cli" not in op.frontends:
            continue
        for depth in range(1, len(op.command)):
            prefix = op.command[:depth]
            if prefix not in parsers:
                sp = subparsers_of(prefix[:-1]).add_parser(
                    prefix[-1], help=f"{prefix[-1]} commands", formatter_class=_Formatter)
                sp.set_defaults(_parser_help=sp)
                parsers[prefix] = sp
        desc = op.summary + ("\n\n" + textwrap.dedent(op.description).strip() if op.description else "")
        if op.references:
            desc += "\n\nReferences:\n" + "\n".join("  " + r for r in op.references)
        sub = subparsers_of(op.command[:-1]).add_parser(
            op.command[-1], help=op.summary, description=desc, epilog=op.epilog or None,
            formatter_class=_Formatter)
        for p in op.params_for("cli"):
            _add_param(sub, p)
        sub.set_defaults(_operation=op)
        parsers[op.command] = sub
    parser.set_defaults(_parser_help=parser)
    return parser


def main(argv: Optional[Sequence[str]] = None,
         operations: Optional[Dict[str, Operation]] = None) -> int:
    """Run the command line; returns the exit status.

    `operations` (``{name: Operation}``) replaces the discovered registry (tests use it).
    ``--debug`` (anywhere on the line) or ``CAMCORR_DEBUG=1`` shows full tracebacks; otherwise
    every failure is one paragraph on stderr (see :func:`camcorr.guard.explain`) and unexpected
    errors leave their traceback in a log file.  SIGTERM and SIGINT remove temporary files and
    exit with 143 and 130.
    """
    from .guard import debug_requested, explain
    from .io import install_signal_handlers

    argv = list(sys.argv[1:] if argv is None else argv)
    debug = debug_requested() or "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    install_signal_handlers()
    prog = "camcorr"
    inputs: List[str] = []
    try:
        parser = build_parser(operations)
        args = parser.parse_args(argv)
        op: Optional[Operation] = getattr(args, "_operation", None)
        if op is None:
            args._parser_help.print_help()
            return 0 if not argv else 2
        prog = "camcorr " + " ".join(op.command)
        values = {p.name: getattr(args, p.name) for p in op.params_for("cli")}
        inputs = _input_paths(op, values)
        values = op.validate(values, frontend="cli")
        from .preflight import check_operation

        check_operation(op, values)
        result = op.load_runner()(values)
        if isinstance(result, RunResult):
            result.print()
        return run_status(result)
    except SystemExit:  # argparse: usage errors (status 2), --help and --version (0)
        raise
    except BaseException as exc:  # noqa: B902 - the one top-level handler of the command line
        _name_as_on_command_line(exc, op if "op" in locals() else None)
        msg, status = explain(exc, what=prog, inputs=inputs, debug=debug, argv=["camcorr"] + argv)
        text = msg if debug else textwrap.fill(msg, 100, break_long_words=False,
                                               break_on_hyphens=False)
        print(f"{prog}: error: {text}", file=sys.stderr)
        return status


def _name_as_on_command_line(exc: BaseException, op: Optional[Operation]) -> None:
    """Engine errors name parameters by their Python name (``gain_ref``); show the flag."""
    from .errors import CamcorrError
    from .preflight import cli_name

    if op is None or not isinstance(exc, CamcorrError) or not exc.argument:
        return
    params = op.params_for("cli")
    names = {p.name: cli_name(p) for p in params}
    data = [p for p in params if p.kind in ("image", "images") and p.cli is None]
    if len(data) == 1:  # the engine's generic name for the data it works on
        for generic in ("frames", "stack", "stacks", "image", "images", "movie", "tiles"):
            names.setdefault(generic, cli_name(data[0]))
    head, sep, rest = exc.argument.partition(":")
    if head in names:
        exc.argument = names[head] + sep + rest
        exc.args = (str(exc),)


def _input_paths(op: Operation, values: Dict) -> List[str]:
    """Input files named on the command line (for the message of an unexpected error)."""
    out: List[str] = []
    for p in op.params_for("cli"):
        v = values.get(p.name)
        if v is None or p.kind not in ("image", "images", "file", "files", "folder"):
            continue
        out.extend(str(x) for x in (v if isinstance(v, (list, tuple)) else [v]))
    return out


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
