# rgdiff: set-up, run and check. Every target works from a fresh clone.
#
# The venv is rebuilt only when a requirements file is newer than its stamp, so a second
# `make test` goes straight to ruff and pytest.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip install --disable-pip-version-check
STAMP_RUN := $(VENV)/.stamp-run
STAMP_DEV := $(VENV)/.stamp-dev
CHROMIUM  := /usr/bin/chromium

.PHONY: help venv venv-dev run test fuzz load chromium lint format bench clean

help:
	@echo "make run     create .venv if needed, install requirements, serve http://127.0.0.1:8501"
	@echo "             (another port: make run PORT=8502)"
	@echo "make test    install dev requirements and Debian chromium, then ruff check + pytest"
	@echo "make fuzz    300 random control combinations on every page (CI runs a rotating 100)"
	@echo "make load    8 concurrent browser sessions x 2 waves on a real server, then network"
	@echo "             sampling throughput with 1, 4 and 8 sessions at once: the figures"
	@echo "make lint    ruff check and ruff format --check"
	@echo "make format  ruff format and ruff check --fix"
	@echo "make bench   run every bench/*.py"
	@echo "make clean   remove .venv and caches"

$(PY):
	python3 -m venv $(VENV)

# torch is pinned as plain torch==2.13.0: pip's own config finds the local CPU wheel.
$(STAMP_RUN): requirements.txt | $(PY)
	$(PIP) -r requirements.txt
	touch $@

# Both files in one resolve, so a dev pin can never silently move a runtime pin.
$(STAMP_DEV): requirements.txt requirements-dev.txt $(STAMP_RUN)
	$(PIP) -r requirements.txt -r requirements-dev.txt
	touch $@

venv: $(STAMP_RUN)

venv-dev: $(STAMP_DEV)

# Another port: make run PORT=8502
PORT ?= 8501
# The default dataset (60 000 glyphs at 32 x 32) is rendered once per machine and cached on
# disk (rgdiff_core.glyphs.cache_dir()), here rather than on the first page load.
run: venv
	@$(PY) -c "from rgdiff_core import data, glyphs; \
	  print('default dataset: 60 000 glyphs (cache:', glyphs.cache_dir(), ')', flush=True); \
	  data.load_dataset('glyphs', 32)"
	$(PY) -m streamlit run app.py --server.port $(PORT)

# The browser tests drive Debian's chromium (no Playwright browser download).
chromium:
	@if [ ! -x $(CHROMIUM) ]; then \
	  if [ "$$(id -u)" -ne 0 ]; then \
	    echo "error: $(CHROMIUM) is missing and installing it needs root." >&2; \
	    echo "       run: sudo apt-get update && sudo apt-get install -y chromium" >&2; \
	    exit 1; \
	  fi; \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; \
	fi

test: venv-dev chromium
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest

# The full page fuzz: 300 combinations per page from seed 0 (RGDIFF_FUZZ_SEED / _N override;
# RGDIFF_FUZZ_FREE_SIZE=1 also draws the image size, much slower). Summaries in
# test-artifacts/fuzz/. `make test` runs 100 per page from a seed that changes every day.
FUZZ_N    ?= 300
FUZZ_SEED ?= 0
fuzz: venv-dev
	RGDIFF_FUZZ_N=$(FUZZ_N) RGDIFF_FUZZ_SEED=$(FUZZ_SEED) $(PY) -m pytest tests/test_fuzz_pages.py::test_fuzz_page

load: venv-dev chromium
	PYTHONPATH=. $(PY) bench/bench_load.py --sessions 8 --waves 2 --throughput 1,4,8

lint: venv-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: venv-dev
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Runs every script even after a failure, then fails if any did.
bench: venv
	@status=0; \
	for f in bench/bench_*.py; do \
	  [ -e "$$f" ] || continue; \
	  echo "== $$f"; \
	  PYTHONPATH=. $(PY) "$$f" || { echo "FAILED: $$f" >&2; status=1; }; \
	done; \
	exit $$status

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis test-artifacts
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
