"""Shared test fixtures.

Optional components (CellProfiler, Java + ImageJ, BaSiCPy, Chromium, the real data in
``../shared/data``) are skipped with a reason on a developer machine that lacks them, but in CI
(``CAMCORR_REQUIRE_ALL`` set, as ``make test`` does when ``CI`` is set) a missing component is a
failure, not a skip.  ``FIJI_DIR`` tests are opt-in and only ever skipped.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("CAMCORR_SHARED_DATA", ROOT.parent / "shared" / "data"))


def require(condition: bool, what: str):
    """Skip (developer machine) or fail (CI) when a required component is missing."""
    if condition:
        return
    if os.environ.get("CAMCORR_REQUIRE_ALL"):
        pytest.fail(f"required component missing in CI: {what}", pytrace=False)
    pytest.skip(f"{what} not available")


def require_module(name: str, what: str = ""):
    """Import and return module `name`, or skip/fail as :func:`require` does."""
    try:
        return __import__(name, fromlist=["_"])
    except ImportError as exc:
        require(False, f"{what or name} ({exc})")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` beside the project (real public data; never copied into the repo)."""
    require(SHARED_DATA.is_dir(), f"real test data folder {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def rng():
    """A seeded random generator, so every simulated ground truth is reproducible."""
    import numpy as np

    return np.random.default_rng(20261121)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Print the summaries tests leave in ``config._camcorr_summaries`` (bad-input table, ...)."""
    for text in getattr(config, "_camcorr_summaries", []):
        terminalreporter.write_sep("-", "camcorr reliability")
        terminalreporter.write_line(text)
