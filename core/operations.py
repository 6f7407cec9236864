"""One definition per operation, shared by the command line, CellProfiler and Fiji.

Each operation (``flash-correct``, ``median``, ...) is an :class:`Operation` holding its
:class:`Param` list: name, kind, default, limits, unit, label and help.  From that single
definition

* :mod:`camcorr.cli` builds the ``camcorr`` sub-command and its ``--help``,
* ``cellprofiler_plugins/_settings.py`` builds the CellProfiler settings (text = ``label``,
  ``doc`` = ``help``, default = ``default``),
* ``fiji_bridge`` writes the ``#@`` script parameters of the Fiji command,

so the three front ends cannot drift apart.  Validation of a parameter dict
(:meth:`Operation.validate`) is shared too, and raises :class:`~camcorr.errors.CamcorrError`
naming the parameter as the front end shows it.

Operations are found in the ``operations`` module of every sub-package of camcorr
(``camcorr.flash.operations``, ...), as a module-level list ``OPERATIONS``, and in the
``camcorr.operations`` entry-point group (used by ``fiji_bridge`` for ``camcorr fiji ...``).
"""
from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

from .errors import CamcorrError, Limits

__all__ = ["Param", "Operation", "RunResult", "run_status", "all_operations", "get_operation", "kwargs_for",
           "KINDS", "FRONTENDS", "VALUE_KINDS"]

KINDS = ("float", "int", "bool", "choice", "str", "file", "files", "folder", "int_list",
         "float_pair", "int_pair", "image", "images", "output_file", "output_folder")
FRONTENDS = ("cli", "cellprofiler", "fiji")
#: Kinds whose value is a setting handed to the engine (images, files and folders are data).
VALUE_KINDS = ("float", "int", "bool", "choice", "str", "int_list", "float_pair", "int_pair")


@dataclass(frozen=True)
class Param:
    """One parameter of an operation.

    Attributes
    ----------
    name : str
        Python identifier, also the key in parameter dicts and the Fiji ``#@`` variable.
    kind : str
        One of :data:`KINDS`.  ``image``/``images`` are the data the operation works on (files on
        the command line, images in CellProfiler and Fiji); ``file``/``folder`` are paths.
    default : object
        Default value, identical in every front end.  ``None`` means "not set".
    label : str
        Short human label: the CellProfiler setting text and the Fiji dialog label.
    help : str
        One paragraph of help, shown by ``--help``, in CellProfiler and in Fiji.
    choices : tuple of str
        Allowed values for ``kind='choice'``.
    limits : camcorr.errors.Limits, optional
        Allowed interval of a number, read from the engine module that owns it (the engine
        checks the same object).  Sets `minval`, `maxval` and whether they are inclusive.
    minval, maxval : float, optional
        Limits for numbers (inclusive unless `limits` says otherwise).  Prefer `limits` for a
        value the engine receives, so that the engine stays the one owner.
    unit : str
        Unit of a number (``'ADU'``, ``'pixels'``, ...), shown beside the label.
    cli : str or None
        Command-line flag (``'--dampening'``); ``None`` makes it positional.
    short : str or None
        Short flag alias (``'-o'``).
    required : bool
        Must be given (positional parameters always are).
    frontends : tuple of str
        Front ends that expose the parameter.
    metavar : str or None
        Placeholder in ``--help``.
    shown_if : tuple of (str, tuple)
        Dialog visibility: the parameter is shown (CellProfiler ``visible_settings``) only while
        every named parameter of the same operation holds one of the listed values, e.g.
        ``(("rule", ("mad",)),)``.  Every front end still accepts the value.
    engine_arg : str or None
        Name of the engine keyword argument this parameter becomes (default: `name`);
        ``None`` for a front-end-only parameter (output paths, progress bars, ...).  The
        registry test checks that the default and limits equal the engine's.
    """

    name: str
    kind: str
    default: Any = None
    label: str = ""
    help: str = ""
    choices: Tuple[str, ...] = ()
    minval: Optional[float] = None
    maxval: Optional[float] = None
    unit: str = ""
    cli: Optional[str] = None
    short: Optional[str] = None
    required: bool = False
    frontends: Tuple[str, ...] = FRONTENDS
    metavar: Optional[str] = None
    shown_if: Tuple[Tuple[str, Tuple[Any, ...]], ...] = ()
    limits: Optional[Limits] = None
    engine_arg: Optional[str] = ""

    def __post_init__(self):
        if self.limits is not None:
            object.__setattr__(self, "minval", self.limits.low)
            object.__setattr__(self, "maxval", self.limits.high)
        if self.engine_arg == "":
            object.__setattr__(self, "engine_arg", self.name)
        if self.kind not in KINDS:
            raise CamcorrError("unknown parameter kind", argument=f"Param({self.name!r}).kind",
                               expected="one of " + ", ".join(KINDS), received=repr(self.kind))
        if self.kind == "choice" and self.default is not None and self.default not in self.choices:
            raise CamcorrError("default not among the choices", argument=self.name,
                               expected=", ".join(self.choices), received=repr(self.default))

    def is_shown(self, values: Dict[str, Any]) -> bool:
        """Whether a dialog shows the parameter, given the current ``{name: value}`` of the others
        (see `shown_if`)."""
        return all(values.get(name) in allowed for name, allowed in self.shown_if)

    @property
    def display_name(self) -> str:
        """How the user sees the parameter on the command line (flag or positional name)."""
        return self.cli or self.name.upper()

    def number_limits(self) -> Limits:
        """The allowed interval of a number (:attr:`limits`, or `minval`/`maxval` inclusive)."""
        return self.limits if self.limits is not None else Limits(self.minval, self.maxval)

    def text(self) -> str:
        """Label with unit, e.g. ``'Dampening factor'`` or ``'Threshold (ADU)'``."""
        label = self.label or self.name.replace("_", " ").capitalize()
        return f"{label} ({self.unit})" if self.unit else label

    def validate(self, value, *, argument: Optional[str] = None):
        """Check and normalise one value; return it.  Raises :class:`CamcorrError`."""
        arg = argument or self.display_name
        if value is None:
            if self.required:
                raise CamcorrError("missing required parameter", argument=arg,
                                   expected=self.help.split(".")[0] or "a value", received="nothing")
            return None
        if self.kind in ("float", "int"):
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise CamcorrError("not a number", argument=arg, expected="a number",
                                   received=repr(value)) from None
            if self.kind == "int":
                if number != int(number):
                    raise CamcorrError("not a whole number", argument=arg,
                                       expected="an integer", received=repr(value))
                number = int(number)
            limits = self.number_limits()
            if not limits.contains(number):
                raise CamcorrError("value out of range", argument=arg,
                                   expected=f"a number in {limits.interval()}"
                                            f"{' ' + self.unit if self.unit else ''}",
                                   received=repr(value), fix=f"Default: {self.default}")
            return number
        if self.kind == "choice":
            if value not in self.choices:
                raise CamcorrError("unknown choice", argument=arg,
                                   expected="one of " + ", ".join(self.choices),
                                   received=repr(value))
            return value
        if self.kind == "bool":
            if isinstance(value, str):
                low = value.strip().lower()
                if low in ("1", "true", "yes", "on"):
                    return True
                if low in ("0", "false", "no", "off"):
                    return False
                raise CamcorrError("not a yes/no value", argument=arg, expected="true or false",
                                   received=repr(value))
            return bool(value)
        if self.kind == "int_list":
            return parse_int_list(value, arg)
        if self.kind in ("float_pair", "int_pair"):
            seq = list(value) if not isinstance(value, str) else value.replace(",", " ").split()
            if len(seq) != 2:
                raise CamcorrError("needs two numbers", argument=arg, expected="two numbers",
                                   received=repr(value))
            cast = int if self.kind == "int_pair" else float
            try:
                return tuple(cast(v) for v in seq)
            except (TypeError, ValueError):
                raise CamcorrError("not numbers", argument=arg, expected="two numbers",
                                   received=repr(value)) from None
        return value


def parse_int_list(value, argument: str) -> Tuple[int, ...]:
    """Parse ``'1,7,8'``, ``'1 7 8'``, ``'3-5'`` or a sequence of ints into a tuple of ints."""
    if isinstance(value, str):
        items: List[int] = []
        for tok in value.replace(";", ",").replace(" ", ",").split(","):
            tok = tok.strip()
            if not tok:
                continue
            try:
                if "-" in tok[1:]:
                    a, b = tok.split("-", 1) if not tok.startswith("-") else (tok, None)
                    a, b = int(a), int(b)
                    if b < a:
                        raise ValueError
                    items.extend(range(a, b + 1))
                else:
                    items.append(int(tok))
            except (TypeError, ValueError):
                raise CamcorrError("not a list of whole numbers", argument=argument,
                                   expected="numbers like 1,7,8 or ranges like 3-5",
                                   received=repr(value)) from None
        return tuple(items)
    try:
        return tuple(int(v) for v in value)
    except (TypeError, ValueError):
        raise CamcorrError("not a list of whole numbers", argument=argument,
                           expected="numbers like 1,7,8", received=repr(value)) from None


@dataclass
class RunResult:
    """What a runner did, for the front end to show or use: no printing in the runners.

    Attributes
    ----------
    outputs : list of str
        Files and folders written, in order.
    arrays : dict
        Result arrays by name, for in-process callers (Fiji's Python mode, scripts).
    numbers : dict
        The run's figures by name (counts, thresholds, QC numbers).
    messages : list of str
        Lines for the user's standard output (the result summary, paths written).
    notes : list of str
        Lines for standard error (notes and warnings about the input).
    status : int
        Exit status (0: success).

    Examples
    --------
    >>> r = RunResult()
    >>> r.say("wrote out.tif"); r.note("note: one channel assumed")
    >>> r.outputs.append("out.tif")
    >>> r.status, r.messages, r.notes
    (0, ['wrote out.tif'], ['note: one channel assumed'])
    """

    outputs: List[str] = field(default_factory=list)
    arrays: Dict[str, Any] = field(default_factory=dict)
    numbers: Dict[str, Any] = field(default_factory=dict)
    messages: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)
    status: int = 0

    def say(self, line: str) -> None:
        """Add a line for standard output."""
        self.messages.append(str(line))

    def note(self, line: str) -> None:
        """Add a line for standard error."""
        self.notes.append(str(line))

    def print(self, out=None, err=None) -> None:
        """The thin printing layer: notes to `err`, messages to `out` (default: sys streams)."""
        err = sys.stderr if err is None else err
        out = sys.stdout if out is None else out
        for line in self.notes:
            print(line, file=err)
        for line in self.messages:
            print(line, file=out)


def run_status(result) -> int:
    """Exit status of a runner's return value (a :class:`RunResult`, an int or None)."""
    if isinstance(result, RunResult):
        return int(result.status)
    return int(result or 0)


@dataclass(frozen=True)
class Operation:
    """An operation, as every front end sees it.

    Attributes
    ----------
    name : str
        Stable identifier, e.g. ``'flash-correct'``.
    title : str
        Human title; the Fiji menu entry (stable: macros call it).
    command : tuple of str
        Command-line path, e.g. ``('flash', 'correct')``.
    summary : str
        One line.
    description : str
        Paragraphs of plain text (valid reStructuredText) for ``--help``, CellProfiler and Fiji.
    params : tuple of Param
    references : tuple of str
        Citations with DOI.
    runner : str
        ``'module:function'`` that runs the operation with a dict of validated parameters and
        returns a :class:`RunResult` (files, arrays, numbers, messages); the command line prints
        it.
    engine : tuple of str
        ``'module:function'`` of the engine functions the parameters are passed to; their
        signatures own the defaults, their modules' ``LIMITS`` the limits (checked by the tests).
    translate : str
        ``'module:function'`` called by :meth:`engine_kwargs` as ``f(kwargs, values, **context)``
        for what a plain copy of the values cannot do (parse a grid, read a file, crop to a
        ROI); empty when the values are the engine's arguments as they are.
    frontends : tuple of str
        Front ends that expose the operation.
    cellprofiler_module : str or None
        Name of the CellProfiler module class built on it.
    """

    name: str
    title: str
    command: Tuple[str, ...]
    summary: str
    description: str = ""
    params: Tuple[Param, ...] = ()
    references: Tuple[str, ...] = ()
    runner: str = ""
    frontends: Tuple[str, ...] = FRONTENDS
    cellprofiler_module: Optional[str] = None
    epilog: str = ""
    engine: Tuple[str, ...] = ()
    translate: str = ""

    def __post_init__(self):
        names = {p.name for p in self.params}
        for p in self.params:
            for other, allowed in p.shown_if:
                if other not in names or not isinstance(allowed, tuple):
                    raise CamcorrError("bad shown_if", argument=f"{self.name}: {p.name}.shown_if",
                                       expected="(parameter name of this operation, tuple of "
                                                "values) pairs", received=repr((other, allowed)))

    def param(self, name: str) -> Param:
        """The parameter called `name`."""
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(f"{self.name} has no parameter {name!r}")

    def params_for(self, frontend: str) -> Tuple[Param, ...]:
        """Parameters exposed by `frontend`."""
        return tuple(p for p in self.params if frontend in p.frontends)

    def defaults(self) -> Dict[str, Any]:
        """``{name: default}`` for every parameter."""
        return {p.name: p.default for p in self.params}

    def validate(self, values: Dict[str, Any], *, frontend: str = "cli",
                 labels: Optional[Callable[[Param], str]] = None) -> Dict[str, Any]:
        """Check a parameter dict and fill defaults; returns a new dict.

        Parameters
        ----------
        values : dict
            ``{name: value}``; missing names take their default.
        frontend : str
            Only the parameters of this front end are required.
        labels : callable, optional
            ``labels(param) -> str``: how the front end names a parameter in messages
            (CellProfiler: the setting text); default: the command-line flag.
        """
        out = {}
        for p in self.params:
            value = values.get(p.name, p.default)
            arg = labels(p) if labels else p.display_name
            if frontend not in p.frontends and value is None:
                out[p.name] = None
                continue
            out[p.name] = p.validate(value, argument=arg)
        unknown = set(values) - {p.name for p in self.params}
        if unknown:
            raise CamcorrError("unknown parameter", argument=self.name,
                               expected="one of " + ", ".join(p.name for p in self.params),
                               received=", ".join(sorted(unknown)))
        return out

    def engine_kwargs(self, values: Dict[str, Any], **context) -> Dict[str, Any]:
        """Validated values -> keyword arguments of the engine: the one translation of this
        operation, called by the command line, the CellProfiler modules and Fiji.

        Every parameter with an :attr:`Param.engine_arg` is passed on under that name (missing
        values take their default), so a new parameter reaches the engine without other edits;
        then :attr:`translate` (if any) converts what needs converting.  `context` holds what a
        front end knows beside the values (e.g. ``image_shape``, an array it already has,
        ``notes``: a list receiving messages for the user).

        Raises
        ------
        CamcorrError
            From the translation (unreadable file, a grid that does not parse, ...).
        """
        kwargs = {p.engine_arg: values.get(p.name, p.default) for p in self.params
                  if p.engine_arg is not None and p.kind in VALUE_KINDS}
        if self.translate:
            module, _, func = self.translate.partition(":")
            kwargs = getattr(importlib.import_module(module), func)(kwargs, values, **context)
        return kwargs

    def load_runner(self) -> Callable[[Dict[str, Any]], "RunResult"]:
        """Import and return the runner: ``runner(values) -> RunResult`` (no printing)."""
        module, _, func = self.runner.partition(":")
        return getattr(importlib.import_module(module), func)


def kwargs_for(func: Callable, kwargs: Dict[str, Any]) -> Dict[str, Any]:
    """The items of `kwargs` that `func` accepts as keyword arguments.

    For operations whose values feed more than one engine function (statistics, then the
    correction).

    Examples
    --------
    >>> def f(a, *, k=1.0):
    ...     return a * k
    >>> kwargs_for(f, {"k": 2.0, "other": 3})
    {'k': 2.0}
    """
    import inspect

    names = inspect.signature(func).parameters
    return {k: v for k, v in kwargs.items() if k in names}


_REGISTRY: Optional[Dict[str, Operation]] = None


def _discover() -> Dict[str, Operation]:
    import camcorr

    found: Dict[str, Operation] = {}

    def add(ops: Iterable[Operation], origin: str):
        for op in ops:
            if op.name in found:
                raise CamcorrError("operation defined twice", argument=op.name,
                                   expected="one definition", received=origin)
            found[op.name] = op

    for info in sorted(pkgutil.iter_modules(camcorr.__path__), key=lambda i: i.name):
        if not info.ispkg:
            continue
        modname = f"camcorr.{info.name}.operations"
        try:
            spec = importlib.util.find_spec(modname)
        except ModuleNotFoundError:
            spec = None
        if spec is None:
            continue
        module = importlib.import_module(modname)
        add(getattr(module, "OPERATIONS", ()), modname)
    try:
        from importlib.metadata import entry_points
        eps = entry_points(group="camcorr.operations")
    except Exception:  # pragma: no cover - very old importlib.metadata
        eps = ()
    for ep in eps:
        try:
            ops = ep.load()
        except ImportError:
            continue  # front end not installed in this environment
        add(ops, ep.value)
    return found


def all_operations() -> Dict[str, Operation]:
    """Every operation, by name (discovered once per process)."""
    global _REGISTRY
    if _REGISTRY is None:
        _REGISTRY = _discover()
    return dict(_REGISTRY)


def get_operation(name: str) -> Operation:
    """The operation called `name`; raises :class:`CamcorrError` listing the known ones."""
    ops = all_operations()
    if name not in ops:
        raise CamcorrError("unknown operation", argument="operation",
                           expected="one of " + ", ".join(sorted(ops)), received=repr(name))
    return ops[name]
