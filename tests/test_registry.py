"""The operation registry against the engine: one owner for every default and limit.

Every parameter an operation passes to the engine (``Param.engine_arg``) must have the default
of the engine function's signature and the limits of the engine module's ``LIMITS`` entry, so
the command line, CellProfiler and Fiji accept and default to exactly what the engine does.
"""
from __future__ import annotations

import importlib
import inspect
import sys

import pytest

from camcorr.errors import CamcorrError, Limits
from camcorr.operations import VALUE_KINDS, Param, all_operations


def _engine_functions(op):
    out = []
    for ref in op.engine:
        module, _, name = ref.partition(":")
        out.append(getattr(importlib.import_module(module), name))
    return out


def _as_engine_value(param: Param, value):
    """The registry default as the engine receives it (text grids become tuples of numbers)."""
    if value is None:
        return None
    if param.kind == "str" and isinstance(value, str) and "," in value:
        return tuple(float(v) for v in value.split(","))
    if param.kind == "int_list" and len(value) == 1:
        return value[0]  # a one-number list is that number (BaSiCPy's working size)
    if param.kind in ("int_list", "int_pair", "float_pair"):
        return tuple(value)
    return value


def _cases():
    for op in sorted(all_operations().values(), key=lambda o: o.name):
        for p in op.params:
            if p.kind in VALUE_KINDS and p.engine_arg is not None:
                yield pytest.param(op, p, id=f"{op.name}.{p.name}")


CASES = list(_cases())


def test_the_walk_covers_every_engine_operation():
    """Every operation with engine-bound parameters names its engine functions."""
    names = {case.values[0].name for case in CASES}
    assert {"median", "flash-correct", "flatfield-estimate", "flatfield-apply", "gain-estimate",
            "gain-normalize", "frc", "parallel-dark", "parallel-calibrate", "demo"} <= names
    for op in all_operations().values():
        if any(p.kind in VALUE_KINDS and p.engine_arg is not None for p in op.params):
            assert op.engine, f"{op.name}: parameters reach the engine but Operation.engine is empty"


@pytest.mark.parametrize("op,param", CASES)
def test_registry_default_and_limits_equal_the_engines(op, param):
    funcs = [f for f in _engine_functions(op)
             if param.engine_arg in inspect.signature(f).parameters]
    assert funcs, (f"{op.name}: no engine function of {op.engine} takes {param.engine_arg!r} "
                   f"(parameter {param.name!r}); set Param.engine_arg")
    for func in funcs:
        engine_default = inspect.signature(func).parameters[param.engine_arg].default
        if engine_default is not inspect.Parameter.empty:
            if isinstance(engine_default, list):
                engine_default = tuple(engine_default)
            registry_default = _as_engine_value(param, param.default)
            if registry_default is None and engine_default == "auto" and param.kind == "float":
                registry_default = "auto"  # an empty number is chosen from the data
            assert registry_default == engine_default, (
                f"{op.name}.{param.name}: registry default {param.default!r} != "
                f"{func.__module__}.{func.__name__}({param.engine_arg}={engine_default!r})")
        if param.kind in ("float", "int"):
            owner = sys.modules[func.__module__]
            engine_limits = getattr(owner, "LIMITS", {}).get(param.engine_arg, Limits())
            assert param.number_limits() == engine_limits, (
                f"{op.name}.{param.name}: registry limits {param.number_limits().interval()} != "
                f"{owner.__name__}.LIMITS[{param.engine_arg!r}] {engine_limits.interval()}")


def test_engine_limits_are_enforced_by_the_registry_and_the_engine():
    """An open lower bound (k > 0) is refused by the registry exactly as by the engine."""
    import numpy as np

    from camcorr.median import selective_median
    from camcorr.median.selective import LIMITS

    op = all_operations()["median"]
    assert op.param("k").number_limits() == LIMITS["k"]
    op.validate({"image": "x.tif", "k": 0.5})  # the old registry refused k < 1
    with pytest.raises(CamcorrError, match=r"--k: value out of range.*\(0\.0, inf\]"):
        op.validate({"image": "x.tif", "k": 0})
    stack = np.random.default_rng(0).poisson(100, (4, 8, 8)).astype(np.uint16)
    with pytest.raises(CamcorrError, match=r"k: value out of range"):
        selective_median(stack, k=0)
