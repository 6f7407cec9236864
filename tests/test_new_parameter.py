"""A parameter added to one operation's definition reaches every front end and the engine call.

The fixture adds ``toy_level`` to the ``median`` operation only (a copy of the registry, no other
edit): the command line gets ``--toy-level`` with its help, default and limits, the CellProfiler
module SelectiveMedian gets a setting, the generated Fiji script gets a ``#@`` parameter passed
as ``--toy-level``, and the operation's one translation (:meth:`Operation.engine_kwargs`, which
the command line, CellProfiler and Fiji call) hands the value to the engine.
"""
from __future__ import annotations

import dataclasses

import pytest

import camcorr.operations as registry
from camcorr.errors import CamcorrError
from camcorr.operations import Param

TOY = Param("toy_level", "float", default=0.25, minval=0.0, maxval=1.0, cli="--toy-level",
            label="Toy level", help="A parameter the test adds to the median operation.")


@pytest.fixture
def median_with_toy(monkeypatch):
    ops = registry.all_operations()
    op = dataclasses.replace(ops["median"], params=ops["median"].params + (TOY,))
    monkeypatch.setattr(registry, "_REGISTRY", {**ops, "median": op})
    return op


def test_new_parameter_on_the_command_line(median_with_toy, capsys):
    from camcorr.cli import build_parser, main

    with pytest.raises(SystemExit):
        main(["median", "--help"])
    help_text = capsys.readouterr().out
    assert "--toy-level" in help_text and "A parameter the test adds" in help_text
    assert "Default: 0.25" in help_text
    args = build_parser().parse_args(["median", "stack.tif", "--toy-level", "0.5"])
    values = median_with_toy.validate({p.name: getattr(args, p.name)
                                       for p in median_with_toy.params_for("cli")})
    kwargs = median_with_toy.engine_kwargs(values)
    assert kwargs["toy_level"] == 0.5
    assert kwargs["k"] == median_with_toy.param("k").default  # the others unchanged
    assert main(["median", "stack.tif", "--toy-level", "2"]) == 2  # the limits apply
    assert "--toy-level: value out of range" in capsys.readouterr().err
    with pytest.raises(CamcorrError, match="toy-level"):
        median_with_toy.validate({"image": "stack.tif", "toy_level": -1})


def test_new_parameter_in_the_fiji_script(median_with_toy):
    from fiji_bridge.generate import render_ijm

    fiji = render_ijm(median_with_toy, "fiji")
    line = [ln for ln in fiji.splitlines() if ln.startswith("#@") and ln.endswith(" toy_level")]
    assert len(line) == 1 and 'label="Toy level"' in line[0] and "value=0.25" in line[0]
    assert "min=0" in line[0] and "max=1" in line[0]
    assert '"--toy-level"' in fiji  # passed to the command line, hence to engine_kwargs
    ij1 = render_ijm(median_with_toy, "ij1")
    assert "toy_level" in ij1 and '"--toy-level"' in ij1


def test_new_parameter_in_the_cellprofiler_module(median_with_toy, monkeypatch):
    from conftest import require_module

    require_module("cellprofiler_core", "CellProfiler (cellprofiler extra)")
    import cp_helpers as h

    h.init_cellprofiler()
    import selectivemedian

    monkeypatch.setattr(selectivemedian, "OPERATION", median_with_toy)
    module = selectivemedian.SelectiveMedian()
    settings = [s for s in module.settings() if getattr(s, "text", "").startswith("Toy level")]
    assert len(settings) == 1 and float(settings[0].value) == 0.25
    settings[0].value = 0.75
    assert module.engine_kwargs()["toy_level"] == 0.75
