# gridmon — developer entry points. `make run` starts the whole system, `make test` checks it.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: install editable run screenshots test test-timescaledb lint typecheck unit bench-ingest bench-detect eval clean

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

## test: lint, type-check, the whole suite against the real services (plain PostgreSQL), then the
## TimescaleDB half (below), or "TimescaleDB half skipped: <why>" when no TimescaleDB server answers
test: install lint typecheck
	$(VENV)/bin/pytest
	@$(MAKE) -s test-timescaledb

# The TimescaleDB half: the test files that run SQL against sensor_readings and the tables around
# it — storage, migrations, the TimescaleDB features, the API, scan, alerts, ingest and the
# pipeline, maintenance, training, outages, the database role. The rest (detectors, evaluation,
# simulator, MQTT/Sparkplug wire formats, the embedded servers, the browser and `gridmon up` tests)
# runs no SQL a hypertable could treat differently, and the whole suite twice would double CI's
# time (about 9 minutes on 2 cores). A new test file that queries readings belongs in this list.
# GRIDMON_TIMESCALEDB=on makes the migration fail instead of silently migrating plain, and
# GRIDMON_TEST_EXPECT_TIMESCALEDB=1 makes tests/conftest.py fail the session unless
# sensor_readings really is a hypertable. The server: `.ci/timescaledb-cluster` (port
# GRIDMON_TSDB_PORT, default 5433), or any URL in GRIDMON_TSDB_TEST_DATABASE_URL.
TSDB_TESTS := tests/test_timescaledb.py tests/test_storage.py tests/test_migrations.py \
	tests/test_api_devices.py tests/test_api_alerts.py tests/test_api_admin.py tests/test_api_health.py \
	tests/test_api_hardening.py tests/test_api_schema.py tests/test_scan.py tests/test_scan_anomaly.py \
	tests/test_alerts.py tests/test_maintenance_task.py tests/test_training.py tests/test_outages.py \
	tests/test_poison.py tests/test_pipeline_e2e.py tests/test_pipeline_faults.py tests/test_db_role.py \
	tests/test_rollups.py tests/test_loss_accounting.py tests/test_seq_paths.py tests/test_bench_query.py
GRIDMON_TSDB_PORT ?= 5433
GRIDMON_TSDB_TEST_DATABASE_URL ?= postgresql://postgres@127.0.0.1:$(GRIDMON_TSDB_PORT)/gridmon_test

test-timescaledb: install
	@if reason=$$($(PY) scripts/timescaledb_ready.py "$(GRIDMON_TSDB_TEST_DATABASE_URL)"); then \
	  echo "TimescaleDB half: $(words $(TSDB_TESTS)) test files against $(GRIDMON_TSDB_TEST_DATABASE_URL)"; \
	  GRIDMON_TEST_DATABASE_URL="$(GRIDMON_TSDB_TEST_DATABASE_URL)" GRIDMON_TIMESCALEDB=on \
	    GRIDMON_TEST_EXPECT_TIMESCALEDB=1 $(VENV)/bin/pytest $(TSDB_TESTS); \
	else \
	  echo "TimescaleDB half skipped: $$reason"; \
	fi

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
