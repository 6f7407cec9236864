"""The one conversion of camcorr values (numpy scalars and arrays, paths, tuples) to JSON."""
from __future__ import annotations

from pathlib import PurePath
from typing import Any, Optional

import numpy as np

__all__ = ["jsonable", "json_default"]


def jsonable(obj: Any, *, max_array: Optional[int] = None) -> Any:
    """`obj` with numpy scalars/arrays, paths and tuples made JSON types, recursively.

    Parameters
    ----------
    obj : object
        Dicts (keys become strings), lists/tuples, numpy scalars and arrays, paths, numbers.
    max_array : int, optional
        Arrays with more elements are written as ``'array(shape)'`` instead of their values.

    Returns
    -------
    object
        The converted value; other objects are returned unchanged.

    Examples
    --------
    >>> jsonable({"n": np.int64(3), 2: (np.float32(0.5), None), "a": np.arange(3)})
    {'n': 3, '2': [0.5, None], 'a': [0, 1, 2]}
    >>> jsonable({"big": np.zeros((4, 5))}, max_array=16)
    {'big': 'array(4, 5)'}
    """
    if isinstance(obj, dict):
        return {str(k): jsonable(v, max_array=max_array) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v, max_array=max_array) for v in obj]
    if isinstance(obj, np.ndarray):
        if max_array is not None and obj.size > max_array:
            return "array(" + ", ".join(str(n) for n in obj.shape) + ")"
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, PurePath):
        return str(obj)
    return obj


def json_default(obj: Any) -> Any:
    """``json.dumps(..., default=json_default)``: numpy and path values; TypeError otherwise.

    Examples
    --------
    >>> import json
    >>> json.dumps({"x": np.float64(1.5)}, default=json_default)
    '{"x": 1.5}'
    """
    converted = jsonable(obj)
    if converted is obj:
        raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
    return converted
