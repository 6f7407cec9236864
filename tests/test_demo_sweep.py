"""`camcorr demo` checks never flake: the tiny and small demos over 20 seeds, worst value of each.

Long (about an hour on 2 cores: 40 demo runs), so it is marked ``slow`` and runs only when asked:
``CAMCORR_DEMO_SWEEP=1 pytest tests/test_demo_sweep.py -s`` (``CAMCORR_DEMO_SWEEP_SEEDS`` and
``CAMCORR_DEMO_SWEEP_SIZES`` narrow it; ``CAMCORR_DEMO_SWEEP_OUT`` writes the table as JSON).
It is not part of ``make test`` / CI, whose 90-minute budget it would take whole.  The engine
runner is used (CellProfiler's runner gives the same numbers, tests/test_demo.py).
"""
import json
import os
import re
import shutil

import pytest

from camcorr import demo as demo_mod

from conftest import require

sweep = pytest.mark.skipif(not os.environ.get("CAMCORR_DEMO_SWEEP"),
                           reason="demo sweep over 20 seeds (~1 h): set CAMCORR_DEMO_SWEEP=1")


def worst_value(target: str, values):
    """The value of `values` closest to failing the check's `target` (as the report writes it).

    ``'< a'`` / ``'<= a'``: the largest; ``'>= a'`` / ``'> a'``: the smallest; ``'a - b'``: the
    one farthest from the middle relative to the half-width; ``'yes'``: False if any is False.
    """
    t = target.strip()
    if t == "yes":
        return all(bool(v) for v in values)
    if t.startswith("<"):
        return max(values)
    if t.startswith(">"):
        return min(values)
    m = re.match(r"^\s*([-+0-9.eE]+)\s*-\s*([-+0-9.eE]+)\s*$", t)
    if m:
        lo, hi = float(m.group(1)), float(m.group(2))
        mid, half = (lo + hi) / 2, (hi - lo) / 2
        return max(values, key=lambda v: abs(v - mid) / half)
    raise ValueError(f"unknown target format {target!r}")


def test_worst_value_directions():
    assert worst_value("< 0.05", [0.01, 0.04, 0.02]) == 0.04
    assert worst_value(">= 99", [100, 99.5]) == 99.5
    assert worst_value("0.8 - 1.25", [1.0, 0.85, 1.2]) == 1.2
    assert worst_value("yes", [True, False]) is False


def _sizes():
    return [s for s in os.environ.get("CAMCORR_DEMO_SWEEP_SIZES", "tiny,small").split(",") if s]


def _seeds():
    return list(range(int(os.environ.get("CAMCORR_DEMO_SWEEP_SEEDS", "20"))))


@pytest.mark.slow
@sweep
@pytest.mark.parametrize("size", _sizes())
def test_demo_checks_over_seeds(size, tmp_path):
    missing = [k for k, v in demo_mod.stage_availability().items() if not v]
    require(not missing, "engine stages " + ", ".join(missing))
    table = {}
    failures = []
    for seed in _seeds():
        out = tmp_path / f"{size}_{seed}"
        res = demo_mod.run_demo(out, size=size, runner="engine", seed=seed, quiet=True)
        for c in res.qc.get("checks", []):
            row = table.setdefault(c["name"], {"target": c["target"], "values": []})
            row["values"].append(c["value"])
            if not c["pass"]:
                failures.append(f"seed {seed}: {c['name']} = {c['value']} (target {c['target']})")
        shutil.rmtree(out, ignore_errors=True)
        print(f"{size} seed {seed}: " + "; ".join(
            f"{c['name']} = {c['value']}{'' if c['pass'] else ' FAIL'}"
            for c in res.qc.get("checks", [])), flush=True)
    summary = {name: {"target": row["target"], "n": len(row["values"]),
                      "worst": worst_value(row["target"], row["values"])}
               for name, row in table.items()}
    print(f"\ndemo '{size}', engine runner, seeds {_seeds()[0]}-{_seeds()[-1]}: worst value "
          f"of each check")
    for name, row in summary.items():
        print(f"  {name}: worst {row['worst']} (target {row['target']}, {row['n']} runs)")
    path = os.environ.get("CAMCORR_DEMO_SWEEP_OUT")
    if path:
        with open(f"{path}.{size}.json", "w") as fh:
            json.dump({"summary": summary, "values": table, "failures": failures}, fh, indent=2)
    assert failures == [], "\n".join(failures)
