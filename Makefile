# Two commands do everything on a fresh machine (Python 3.11+, Java 17):
#   make demo   the end-to-end demo
#   make test   lint, type-check and the whole test suite
#   make bench  every benchmark (--quick first, then in full), report in benchmarks/results
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test demo bench lint typecheck pytest venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

# The benchmarks' --quick runs (marker bench) take minutes: make bench runs them.
# The first call keeps the harness whole: folders collected together share no conftest by name.
pytest: $(STAMP)
	$(VENV)/bin/pytest -q --collect-only tests/forward tests/spool tests/ingest tests/secrets >/dev/null
	$(VENV)/bin/pytest -m "not bench"

test: lint typecheck pytest

demo: $(STAMP)
	$(PY) examples/demo.py

# wrk loads the ingest benchmark from outside Python; installed when the machine allows.
# The --quick runs come first (a failure is reported, and the full run still writes its report).
bench: $(STAMP)
	@command -v wrk >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    apt-get install -y -qq wrk || { apt-get update -qq && apt-get install -y -qq wrk; } || true; \
	  elif command -v apt-get >/dev/null 2>&1 && sudo -n true 2>/dev/null; then \
	    sudo apt-get install -y -qq wrk || true; \
	  elif command -v brew >/dev/null 2>&1; then brew install wrk || true; \
	  fi; \
	  command -v wrk >/dev/null 2>&1 || echo "wrk not installed: ingest.py loads with an aiohttp client"; }
	-$(VENV)/bin/pytest -m bench tests/bench -q
	$(PY) benchmarks/_runner.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
