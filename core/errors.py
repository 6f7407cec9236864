"""The one exception type of camcorr, and small input checks that raise it.

Every check names the offending argument, the value that was expected, the value that was
received and, where one exists, a fix.  The command line prints the message and exits with
status 2; the CellProfiler modules and Fiji commands show it as is.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Optional, Tuple

import numpy as np

__all__ = [
    "CamcorrError",
    "check_finite",
    "check_ndim",
    "check_range",
    "check_same_shape",
    "check_choice",
    "check_frame_block",
    "describe",
    "Limits",
]


class CamcorrError(ValueError):
    """Bad input or an impossible request, explained for a person.

    Parameters
    ----------
    message : str
        What went wrong, in one sentence.
    argument : str, optional
        Name of the argument, option, setting or file at fault.
    expected : str, optional
        What would have been accepted.
    received : str, optional
        What was given instead.
    fix : str, optional
        A suggestion the user can act on.

    Notes
    -----
    Subclasses :class:`ValueError`, so code written against numpy/scikit-image habits that catches
    ``ValueError`` keeps working.
    """

    def __init__(self, message: str, *, argument: Optional[str] = None,
                 expected: Optional[str] = None, received: Optional[str] = None,
                 fix: Optional[str] = None):
        self.message = message
        self.argument = argument
        self.expected = expected
        self.received = received
        self.fix = fix
        super().__init__(self.__str__())

    def __str__(self) -> str:  # noqa: D105
        parts = []
        head = self.message.rstrip(".")
        if self.argument:
            head = f"{self.argument}: {head}"
        parts.append(head + ".")
        if self.expected is not None:
            parts.append(f"Expected {self.expected}.")
        if self.received is not None:
            parts.append(f"Received {self.received}.")
        if self.fix:
            parts.append(self.fix.rstrip(".") + ".")
        return " ".join(parts)

    def __reduce__(self):  # picklable across processes (dask, multiprocessing)
        return (_rebuild, (self.message, self.argument, self.expected, self.received, self.fix))


def _rebuild(message, argument, expected, received, fix):
    return CamcorrError(message, argument=argument, expected=expected, received=received, fix=fix)


def describe(value: Any) -> str:
    """Short description of a value for an error message (arrays by shape and dtype)."""
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape} and dtype {value.dtype}"
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return f"a {type(value).__name__} of shape {tuple(value.shape)} and dtype {value.dtype}"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def check_ndim(array, ndims: Iterable[int], argument: str, *, fix: Optional[str] = None):
    """Raise unless ``array.ndim`` is one of `ndims`; return the array."""
    ndims = tuple(ndims)
    ndim = np.ndim(array)
    if ndim not in ndims:
        names = {2: "2D (Y, X)", 3: "3D (Z, Y, X)", 4: "4D (T, Z, Y, X)", 1: "1D"}
        exp = " or ".join(names.get(n, f"{n}D") for n in ndims)
        raise CamcorrError("wrong number of dimensions", argument=argument, expected=exp,
                           received=f"{ndim}D data of shape {np.shape(array)}", fix=fix)
    return array


def check_finite(array, argument: str, *, fix: Optional[str] = None, where: str = ""):
    """Raise if a floating array holds NaN or infinity; return the array.

    `where` (e.g. a file name) is named in the message after the count.

    Examples
    --------
    >>> check_finite(np.array([1.0, np.nan]), "image")
    Traceback (most recent call last):
    ...
    camcorr.errors.CamcorrError: image: contains NaN or infinite values. Expected finite numbers only. Received 1 non-finite value(s), the first at index (1,). Replace or mask the non-finite pixels before calling camcorr.
    """
    arr = np.asarray(array)
    if arr.dtype.kind in "fc":
        bad = ~np.isfinite(arr)
        n_bad = int(np.count_nonzero(bad))
        if n_bad:
            first = tuple(int(i) for i in np.argwhere(bad)[0])
            place = f" in {where}" if where else ""
            raise CamcorrError("contains NaN or infinite values", argument=argument,
                               expected="finite numbers only",
                               received=f"{n_bad} non-finite value(s){place}, the first at "
                                        f"index {first}",
                               fix=fix or "Replace or mask the non-finite pixels before calling camcorr")
    return array


def check_range(value, argument: str, *, low=None, high=None, low_inclusive=True,
                high_inclusive=True, fix: Optional[str] = None):
    """Raise unless the number `value` lies within [low, high]; return it."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise CamcorrError("not a number", argument=argument, expected="a number",
                           received=describe(value), fix=fix) from None
    ok = not math.isnan(v)
    if ok and low is not None:
        ok = v >= low if low_inclusive else v > low
    if ok and high is not None:
        ok = v <= high if high_inclusive else v < high
    if not ok:
        lo = "-inf" if low is None else f"{low}"
        hi = "inf" if high is None else f"{high}"
        interval = ("[" if low_inclusive else "(") + f"{lo}, {hi}" + ("]" if high_inclusive else ")")
        raise CamcorrError("value out of range", argument=argument,
                           expected=f"a number in {interval}", received=f"{value!r}", fix=fix)
    return value


def check_same_shape(a, b, argument_a: str, argument_b: str, *, axes=None, fix=None):
    """Raise unless `a` and `b` have the same shape (or the same trailing `axes` dims)."""
    sa, sb = tuple(np.shape(a)), tuple(np.shape(b))
    if axes is not None:
        sa, sb = sa[-axes:], sb[-axes:]
    if sa != sb:
        raise CamcorrError("shapes differ", argument=f"{argument_a}/{argument_b}",
                           expected=f"{argument_b} with shape {sa} like {argument_a}",
                           received=f"shape {sb}", fix=fix)


def check_choice(value, choices: Iterable, argument: str):
    """Raise unless `value` is one of `choices`; return it."""
    choices = tuple(choices)
    if value not in choices:
        raise CamcorrError("unknown choice", argument=argument,
                           expected="one of " + ", ".join(repr(c) for c in choices),
                           received=repr(value))
    return value


def check_frame_block(block, argument: str, *, shape: Optional[Tuple[int, int]] = None,
                      max_ndim: Optional[int] = None, min_size: int = 1,
                      finite: bool = False, fix: Optional[str] = None) -> np.ndarray:
    """The one validator of a block of frames: a frame (Y, X) or frames (..., Y, X) as (N, Y, X).

    Every engine function that takes frames block by block (moments, gain, a posteriori
    statistics, selective median) checks each block with it, so the same input gets the same
    message everywhere.

    Parameters
    ----------
    block : array_like, shape (Y, X) or (..., Y, X)
        One frame or several frames; leading axes are flattened into N.
    argument : str
        Name of the input in the caller's words (for the message).
    shape : (int, int), optional
        Required frame shape (Y, X), e.g. that of the earlier blocks of the same run.
    max_ndim : int, optional
        Highest accepted number of dimensions (3: a frame or a block (N, Y, X) only).
    min_size : int
        Smallest accepted frame height and width, pixels.
    finite : bool
        Also refuse NaN and infinity (:func:`check_finite`).
    fix : str, optional
        The suggested fix of a frame shape other than `shape` (what the caller's user should do).

    Returns
    -------
    ndarray, shape (N, Y, X)
        A view of `block` (not copied), dtype kept.

    Raises
    ------
    CamcorrError
        Non-numeric pixels, fewer than 2 (or more than `max_ndim`) dimensions, a frame shape
        other than `shape`, frames smaller than `min_size`, or non-finite values.

    Examples
    --------
    >>> import numpy as np
    >>> check_frame_block(np.zeros((4, 5)), "frames").shape
    (1, 4, 5)
    >>> check_frame_block(np.zeros((2, 3, 4, 5), np.uint16), "frames").shape
    (6, 4, 5)
    >>> check_frame_block(np.zeros((2, 4, 6)), "frames", shape=(4, 5))
    Traceback (most recent call last):
    ...
    camcorr.errors.CamcorrError: frames: frame shapes differ. Expected frames of shape (4, 5). Received frames of shape (4, 6).
    """
    arr = np.asarray(block)
    if arr.dtype.kind not in "uif":
        raise CamcorrError("unsupported pixel type", argument=argument,
                           expected="integer or floating-point pixels", received=describe(arr))
    if arr.ndim < 2 or (max_ndim is not None and arr.ndim > max_ndim):
        exp = ("a frame (Y, X) or a block of frames (N, Y, X)" if max_ndim == 3
               else "a frame (Y, X) or frames (..., Y, X)")
        raise CamcorrError("wrong number of dimensions", argument=argument, expected=exp,
                           received=f"{arr.ndim}D data of shape {arr.shape}")
    arr = arr.reshape((-1,) + arr.shape[-2:])
    if shape is not None and tuple(arr.shape[1:]) != tuple(shape):
        raise CamcorrError("frame shapes differ", argument=argument,
                           expected=f"frames of shape {tuple(shape)}",
                           received=f"frames of shape {tuple(arr.shape[1:])}", fix=fix)
    if arr.shape[1] < min_size or arr.shape[2] < min_size:
        raise CamcorrError("frames too small", argument=argument,
                           expected=f"frames of at least {min_size} x {min_size} pixels",
                           received=f"shape {tuple(arr.shape[1:])}")
    if finite:
        check_finite(arr, argument)
    return arr


@dataclass(frozen=True)
class Limits:
    """The allowed interval of one engine parameter, owned by the engine module that uses it.

    The operation registry reads these (``Param(..., limits=...)``), so the command line,
    CellProfiler and Fiji accept exactly what the engine accepts.

    Examples
    --------
    >>> K = Limits(low=0.0, low_inclusive=False)
    >>> K.interval()
    '(0.0, inf]'
    >>> K.check(5.0, "k")
    5.0
    >>> K.contains(float("inf")), K.contains(float("nan"))
    (False, False)
    >>> try:
    ...     K.check(0, "k")
    ... except CamcorrError as exc:
    ...     print(exc)
    k: value out of range. Expected a number in (0.0, inf]. Received 0.
    """

    low: Optional[float] = None
    high: Optional[float] = None
    low_inclusive: bool = True
    high_inclusive: bool = True

    def interval(self) -> str:
        """``'[low, high]'`` with ``(``/``)`` for open ends and ``-inf``/``inf`` for no bound."""
        lo = "-inf" if self.low is None else f"{self.low}"
        hi = "inf" if self.high is None else f"{self.high}"
        return (("[" if self.low_inclusive else "(") + f"{lo}, {hi}"
                + ("]" if self.high_inclusive else ")"))

    def contains(self, value) -> bool:
        """Whether the number `value` lies within the limits (NaN and infinities never do)."""
        v = float(value)
        if not math.isfinite(v):
            return False
        if self.low is not None and not (v >= self.low if self.low_inclusive else v > self.low):
            return False
        if self.high is not None and not (v <= self.high if self.high_inclusive else v < self.high):
            return False
        return True

    def check(self, value, argument: str, *, fix: Optional[str] = None):
        """Raise :class:`CamcorrError` unless `value` is a finite number within the limits;
        return it."""
        check_range(value, argument, low=self.low, high=self.high,
                    low_inclusive=self.low_inclusive, high_inclusive=self.high_inclusive, fix=fix)
        if not math.isfinite(float(value)):
            raise CamcorrError("not a finite number", argument=argument,
                               expected=f"a finite number in {self.interval()}",
                               received=repr(value), fix=fix)
        return value
