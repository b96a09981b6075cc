# The two commands a new user needs (see README.md):
#   make demo   installs everything, then reviews the bundled example pair with the embedded model
#   make test   installs the test tools (and Chromium when missing), lints (make lint), then runs the test suite
# Re-running either is fast: each install step leaves a stamp in .make/ and is skipped next time.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
STAMPS := .make
# The embedded model's runtime (llama-cpp-python, its build flags and wheel cache) is set up by
# `panel setup embedded` (panel/embedded_setup.py), the one definition of those flags.

.PHONY: demo test lint install
demo: $(STAMPS)/embedded
	$(VENV)/bin/panel review runs/example.yaml

test: lint
	$(PY) -m pytest

# Each check is its own recipe line, so a finding of any one stops `make test` (and CI) before pytest.
# ruff and mypy read their settings from pyproject.toml; mypy runs in the venv to see the packages' types.
lint: $(STAMPS)/test
	$(PY) -m ruff check panel tests bench
	$(PY) -m ruff format --check panel tests bench
	$(PY) -m mypy

install: $(STAMPS)/embedded

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(STAMPS)/base: pyproject.toml | $(PY)
	$(PIP) install -q -e .
	@mkdir -p $(STAMPS) && touch $@

$(STAMPS)/embedded: $(STAMPS)/base Makefile panel/embedded_setup.py
	$(VENV)/bin/panel setup embedded
	@mkdir -p $(STAMPS) && touch $@

$(STAMPS)/test: $(STAMPS)/embedded
	$(PIP) install -q -e ".[test]"
	@command -v chromium >/dev/null 2>&1 || { \
		echo "installing Debian's chromium for the browser tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
	@mkdir -p $(STAMPS) && touch $@
