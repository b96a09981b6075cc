# The two commands a new user needs (see README.md):
#   make demo   installs everything, then reviews the bundled example pair with the embedded model
#   make test   installs the test tools (and Chromium when missing), then runs the test suite
# Re-running either is fast: each install step leaves a stamp in .make/ and is skipped next time.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
STAMPS := .make
# The embedded model's runtime (llama-cpp-python, its build flags and wheel cache) is set up by
# `panel setup embedded` (panel/embedded_setup.py), the one definition of those flags.

.PHONY: demo test install
demo: $(STAMPS)/embedded
	$(VENV)/bin/panel review runs/example.yaml

test: $(STAMPS)/test
	$(PY) -m pytest

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
