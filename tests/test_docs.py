"""Docstring examples run, and docstrings cite only published sources or files in the repository."""
from __future__ import annotations

import doctest
import importlib
import pkgutil
import re
from pathlib import Path

import camcorr

ROOT = Path(__file__).resolve().parents[1]


def _engine_modules():
    names = ["camcorr"] + [m.name for m in pkgutil.walk_packages(camcorr.__path__, "camcorr.")]
    return [importlib.import_module(n) for n in sorted(names) if not n.endswith("__main__")]


def test_docstring_examples_run():
    """Every example in an engine docstring runs and prints what it shows (none skipped)."""
    finder, runner = doctest.DocTestFinder(), doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    attempted, skipped = 0, []
    for module in _engine_modules():
        for test in finder.find(module, module.__name__):
            for ex in test.examples:
                if ex.options.get(doctest.SKIP):
                    skipped.append(f"{test.name}: {ex.source.strip()}")
            attempted += runner.run(test, out=lambda text: None).attempted
    assert runner.failures == 0, f"{runner.failures} docstring example(s) failed"
    assert not skipped, "skipped examples:\n" + "\n".join(skipped)
    assert attempted >= 15


FORBIDDEN = re.compile(r"seed 0\d\d|\bNOTES(\.md| §| section|\s*$)|engine issues|project notes|"
                       r"\bissue #?\d+\b")


def test_no_citation_of_documents_outside_the_repository():
    """Published sources (DOI, LLSpy documentation) only, not private notes or issue texts."""
    bad = []
    paths = [ROOT / "README.md", ROOT / "Makefile", ROOT / "setup.cfg"]
    for folder in ("core", "cellprofiler_plugins", "fiji_bridge", "pipelines", "benchmarks",
                   "tests"):
        for pattern in ("*.py", "*.md", "*.ijm", "*.bsh", "*.cppipe"):
            paths += sorted((ROOT / folder).rglob(pattern))
    for path in paths:
        if path.name == "test_docs.py" or "test_artifacts" in path.parts:
            continue
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if FORBIDDEN.search(line):
                bad.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not bad, "\n".join(bad)
