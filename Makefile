# camcorr: two user commands.
#   make demo   set up .venv (and, as root on Debian/Ubuntu, system packages) and run the demo
#   make test   same set-up, then the whole test suite (under Xvfb for the Java tests)
# Everything else here is plumbing for those two.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.camcorr-installed
CP_NIGHTLY := 5.0.0.dev784
DEMO_OUT ?= demo_output
PYTEST_ARGS ?=

.PHONY: demo test setup system-packages warmup

demo: setup
	$(VENV)/bin/camcorr demo --out $(DEMO_OUT) --pipelines pipelines

# The Fiji tests run against the trimmed offline Fiji beside the project (../shared/fiji).
SHARED_FIJI ?= $(abspath ../shared/fiji)

test: setup
	CAMCORR_SHARED_FIJI=$${CAMCORR_SHARED_FIJI:-$(SHARED_FIJI)} \
	CAMCORR_REQUIRE_ALL=$${CAMCORR_REQUIRE_ALL:-$${CI:-}} xvfb-run -a -s "-screen 0 1280x1024x24" \
	    $(PY) -m pytest $(PYTEST_ARGS)

setup: system-packages $(STAMP) warmup

# Compile the numba kernels once (seconds when they are already in numba's cache), so that no
# command pays the compilation on its first run.
warmup: $(STAMP)
	$(VENV)/bin/camcorr warmup

# Java 17 (headless), ImageJ 1.x and Xvfb for the Fiji tests, Chromium for the report test,
# wxPython 4.2 (python3-wxgtk4.0) for the CellProfiler GUI test.
# Installed only when running as root on a Debian/Ubuntu machine and something is missing.
system-packages:
	@if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
	    missing=""; \
	    command -v java >/dev/null 2>&1 || missing="$$missing openjdk-17-jre-headless"; \
	    [ -f /usr/share/java/ij.jar ] || missing="$$missing libij-java"; \
	    command -v xvfb-run >/dev/null 2>&1 || missing="$$missing xvfb xauth"; \
	    command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	    [ -d /usr/lib/python3/dist-packages/wx ] || missing="$$missing python3-wxgtk4.0"; \
	    if [ -n "$$missing" ]; then \
	        echo "Installing system packages:$$missing"; \
	        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	    fi; \
	elif ! command -v xvfb-run >/dev/null 2>&1; then \
	    echo "Note: xvfb-run, Java 17 and libij-java are needed for the Fiji tests; install them with your package manager."; \
	fi

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip setuptools wheel

# torch first and pinned, so nothing pulls a CUDA build; then the project with all extras;
# then the CellProfiler GUI package without its wxPython/mysqlclient requirements (headless only).
$(STAMP): $(VENV)/bin/python setup.cfg pyproject.toml
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e ".[all,test]"
	$(PIP) install -q --no-deps cellprofiler-nightly==$(CP_NIGHTLY)
	@# the CellProfiler GUI (tests/test_cellprofiler_gui.py): Debian's wxPython 4.2 for Python 3.11
	@sp=$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'); \
	wx=/usr/lib/python3/dist-packages/wx; \
	if [ -d $$wx ] && [ ! -e $$sp/wx ] && \
	        $(PY) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then \
	    ln -s $$wx $$sp/wx && echo "linked Debian's wxPython ($$wx) into $(VENV)"; fi
	touch $(STAMP)
