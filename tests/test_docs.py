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
    assert attempted >= 150



#: Public engine functions the README documents, beside the engine functions of every operation.
DOCUMENTED = (
    "camcorr.errors:check_frame_block", "camcorr.errors:check_finite",
    "camcorr.stats:RunningMoments",
    "camcorr.median.selective:replace_bad_pixels", "camcorr.median.selective:projections",
    "camcorr.median.noise_model:chi2_threshold",
    "camcorr.flash.correct:carryover", "camcorr.flash.correct:acquisition_order",
    "camcorr.flatfield.empty:estimate_from_empty_tiles",
    "camcorr.flatfield.empty:estimate_from_z_ranges",
    "camcorr.flatfield.apply:rescale_flatfield", "camcorr.flatfield.apply:resample_profiles",
    "camcorr.flatfield.quality:flatfield_quality", "camcorr.flatfield.quality:corner_centre_ratio",
    "camcorr.gain.estimate:sme_frame", "camcorr.gain.qc:counting_noise_floor",
    "camcorr.gain.qc:gain_report",
    "camcorr.aposteriori.normalize:normalize_frame", "camcorr.aposteriori.normalize:select_frames",
    "camcorr.parallel.stream:as_frames",
)

#: Engine functions without a docstring example, and the tests that run them instead.
NO_EXAMPLE = {
    "camcorr.demo.run:run_demo": "the whole demo, minutes (tests/test_demo.py)",
    "camcorr.flatfield.basic:estimate_basicpy": "a BaSiCPy fit (tests/test_flatfield_basicpy.py)",
    "camcorr.parallel.calibration:calibrate_folder":
        "a dask run over a calibration folder, a minute on a loaded machine; the example of "
        "camcorr.flash.calibrate_folder shows the same call (tests/test_parallel.py)",
    "camcorr.report.report:build_report": "reads a demo run folder (tests/test_report.py)",
    "camcorr.warmup:warmup": "compiles every numba kernel (tests/test_warmup.py)",
}


def test_public_engine_functions_have_examples():
    """Every engine function an operation calls, and every one the README documents, shows a
    runnable example (run by test_docstring_examples_run)."""
    from camcorr.operations import all_operations

    refs = {r for op in all_operations().values() for r in op.engine} | set(DOCUMENTED)
    missing = []
    for ref in sorted(refs - set(NO_EXAMPLE)):
        module, _, name = ref.partition(":")
        if ">>>" not in (getattr(importlib.import_module(module), name).__doc__ or ""):
            missing.append(ref)
    assert not missing, "no docstring example:\n" + "\n".join(missing)
    assert set(NO_EXAMPLE) <= refs, "NO_EXAMPLE lists a function that is no longer public"


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
