# gridmon — developer entry points. `make run` starts the whole system, `make test` checks it.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: install editable run screenshots test lint typecheck unit bench-ingest bench-detect eval clean

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	@$(MAKE) -s editable PY=$(PY)
	@touch $@

# The project itself, editable. setuptools warns on every editable install about same-named
# folders in the working directory (a box of asterisks that reads like an error); the checkout
# is the package's home, so the warning is silenced for this one command.
editable:
	PYTHONWARNINGS=ignore $(PY) -m pip install -q --no-deps -e .

## run: migrate and start bridge, workers, beat, API, Flower and the simulator (Ctrl-C stops all);
## embedded servers when no service is configured or answering. UP_ARGS=--embedded|--external forces.
UP_ARGS ?=
run: install
	$(VENV)/bin/gridmon up $(UP_ARGS)

## screenshots: README's pictures (docs/screenshots/) of a real `make run`, taken by headless Chromium;
## uses the running gridmon if one answers, else starts one, waits for the demo, and stops it
screenshots: install
	$(PY) scripts/screenshots.py

## test: lint, type-check and the whole suite against the real services
test: install lint typecheck
	$(VENV)/bin/pytest

lint: install
	$(VENV)/bin/ruff check .

typecheck: install
	$(VENV)/bin/mypy

unit: install
	$(VENV)/bin/pytest -m "not slow"

bench-ingest: install
	$(VENV)/bin/gridmon bench ingest --readings 300000 --json

bench-detect: install
	$(VENV)/bin/gridmon bench detect --json

eval: install
	$(VENV)/bin/gridmon eval --json

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
