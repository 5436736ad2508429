# The two commands of the README:
#   make demo   set up (if needed) and run the whole pipeline on the embedded defaults
#   make test   set up (if needed) and run the test suite (what CI runs)
# Set-up makes .venv/ at the repo root with `personasim` in it, every package at the
# version of requirements.lock (regenerate it with `make lock`); the data packages of
# requirements-data.txt are installed --no-deps.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PIP    := $(BIN)/python -m pip
DEMO_DIR ?= runs/demo
PYTEST_ARGS ?=

LOCK       := requirements.lock
BUILD_LOCK := requirements-build.lock
PIP_VERSION := 26.3
PIP_TOOLS_VERSION := 7.6.2

# llama.cpp is compiled for one fixed x86-64 level (AVX2, FMA, F16C, BMI2), never for the
# build machine (-march=native): a native build on a CPU with AMX crashed in decode on the
# packaged Q4_1 model (llama.cpp's AMX kernels for Q4_0/Q4_1), and a native wheel would
# die with an illegal instruction on an older CPU that later runs the same .venv.
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
  -DGGML_BMI2=ON -DGGML_AVX512=OFF -DGGML_AVX512_VBMI=OFF -DGGML_AVX512_VNNI=OFF \
  -DGGML_AVX512_BF16=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF
LLAMA_VERSION := $(shell sed -n 's/^llama-cpp-python==//p' $(LOCK))
LLAMA_TAG     := $(shell printf '%s' '$(LLAMA_VERSION) $(LLAMA_CMAKE_ARGS)' | sha256sum | cut -c1-12)
# The wheel is built once per version and flags, outside pip's cache (pip would reuse a
# wheel built with other flags from the same source archive).
WHEEL_CACHE ?= $(HOME)/.cache/personasim/wheels
LLAMA_WHEEL := $(WHEEL_CACHE)/llama-cpp-python-$(LLAMA_TAG)

.PHONY: setup demo test lint lock clean-venv browser

setup: $(STAMP)

# torch is installed first, on its own, pinned: a CPU build lies on disk on our machines
# (pip finds it there). tests/test_lock.py checks the pin equals constraints.txt's and
# the lock's.
$(STAMP): pyproject.toml $(LOCK) $(BUILD_LOCK) requirements-data.txt Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet pip==$(PIP_VERSION)
	@test -f $(LLAMA_WHEEL)/.done || { \
	  echo "building llama-cpp-python $(LLAMA_VERSION) for AVX2 (once, about 6 minutes)"; \
	  rm -rf $(LLAMA_WHEEL).tmp && mkdir -p $(LLAMA_WHEEL).tmp && \
	  CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PIP) wheel --quiet --no-deps --no-cache-dir \
	    --build-constraint $(BUILD_LOCK) -w $(LLAMA_WHEEL).tmp llama-cpp-python==$(LLAMA_VERSION) && \
	  touch $(LLAMA_WHEEL).tmp/.done && rm -rf $(LLAMA_WHEEL) && mv $(LLAMA_WHEEL).tmp $(LLAMA_WHEEL); }
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet --no-deps $(LLAMA_WHEEL)/llama_cpp_python-$(LLAMA_VERSION)-*.whl
	$(PIP) install --quiet --build-constraint $(BUILD_LOCK) -r $(LOCK)
	$(PIP) install --quiet --no-deps --build-constraint $(BUILD_LOCK) -e .
	$(PIP) install --quiet --no-deps -r requirements-data.txt
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/personasim run --workdir $(DEMO_DIR) --config configs/demo.toml

test: $(STAMP) browser
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Regenerate the locks from pyproject.toml (the extras `make setup` installs) and the
# torch pin of constraints.txt. Keeps the current pins where they still satisfy the
# ranges; `make lock UPGRADE=1` moves every package to its newest release. Run it where
# the CPU build of torch is visible to pip (our machines: /opt/wheels), then `make test`.
LOCK_VENV := .lock-venv
lock:
	test -x $(LOCK_VENV)/bin/python || $(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install --quiet pip==$(PIP_VERSION) pip-tools==$(PIP_TOOLS_VERSION)
	CUSTOM_COMPILE_COMMAND="make lock" $(LOCK_VENV)/bin/pip-compile --quiet $(if $(UPGRADE),--upgrade) \
	  --extra test --extra llamacpp --extra ray -c constraints.txt --strip-extras --allow-unsafe \
	  --no-emit-index-url --no-emit-find-links -o $(LOCK) pyproject.toml
	# The lock pins torch's version; its build (CPU or CUDA) is the machine's.
	sed -i 's/^torch==\([0-9.]*\)+[a-z0-9]*/torch==\1/' $(LOCK)
	CUSTOM_COMPILE_COMMAND="make lock" $(LOCK_VENV)/bin/pip-compile --quiet $(if $(UPGRADE),--upgrade) \
	  --strip-extras --allow-unsafe --no-emit-index-url --no-emit-find-links \
	  -o $(BUILD_LOCK) build-requirements.in

# Debian's Chromium renders the HTML report in a test (skipped where it cannot be had).
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	  && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
	  || echo "chromium could not be installed: the report's browser test will be skipped"

lint: $(STAMP)
	$(BIN)/python -m ruff check src tests benchmarks

clean-venv:
	rm -rf $(VENV)
