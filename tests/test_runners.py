"""Runners return a RunResult (files, small arrays, numbers, messages) and print nothing; the command
line is the thin layer that prints it."""
from __future__ import annotations

import numpy as np
import tifffile

from camcorr.cli import main
from camcorr.median import selective_median
from camcorr.operations import RunResult, get_operation


def _hot_stack(rng):
    stack = rng.poisson(400, (12, 24, 20)).astype(np.uint16)
    stack[:, 5, 7] = rng.integers(0, 4000, 12).astype(np.uint16)  # a hot, very noisy pixel
    return stack


def test_runner_returns_the_result_and_prints_nothing(tmp_path, rng, capsys):
    stack = _hot_stack(rng)
    src = tmp_path / "stack.tif"
    tifffile.imwrite(src, stack)
    op = get_operation("median")
    values = op.validate({"image": str(src), "output": str(tmp_path / "out.tif"),
                          "mask_out": str(tmp_path / "mask.tif")})
    result = op.load_runner()(values)
    assert isinstance(result, RunResult) and result.status == 0
    assert capsys.readouterr() == ("", "")  # the runner itself prints nothing
    expected = selective_median(stack, **op.engine_kwargs(values))
    np.testing.assert_array_equal(result.arrays["mask"], expected.mask)
    assert bool(expected.mask[5, 7]) and result.numbers["flagged"] == int(expected.mask.sum())
    assert result.outputs == [str(tmp_path / "out.tif"), str(tmp_path / "mask.tif")]
    # the corrected stack is streamed to its file, never held whole in memory
    assert "corrected" not in result.arrays
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "out.tif"), expected.corrected)
    assert any("wrote" in m for m in result.messages)


def test_command_line_prints_the_runner_messages(tmp_path, rng, capsys):
    src = tmp_path / "stack.tif"
    tifffile.imwrite(src, _hot_stack(rng))
    op = get_operation("median")
    values = op.validate({"image": str(src), "output": str(tmp_path / "a.tif")})
    messages = op.load_runner()(values).messages
    capsys.readouterr()
    assert main(["median", str(src), "-o", str(tmp_path / "a.tif")]) == 0
    out = capsys.readouterr().out
    assert out.splitlines() == messages
