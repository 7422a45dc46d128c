"""`make test`'s TimescaleDB half: its file list is current, and without a server it says why it skipped."""

from __future__ import annotations

import os
import re
import subprocess

import yaml

from gridmon.config import REPO_ROOT


def _tsdb_tests() -> list[str]:
    makefile = (REPO_ROOT / "Makefile").read_text()
    match = re.search(r"^TSDB_TESTS := ((?:.*\\\n)*.*)$", makefile, flags=re.M)
    assert match is not None, "TSDB_TESTS is not in the Makefile"
    return match.group(1).replace("\\\n", " ").split()


def test_timescaledb_half_lists_existing_test_files_including_the_timescaledb_tests() -> None:
    files = _tsdb_tests()
    assert "tests/test_timescaledb.py" in files and "tests/test_storage.py" in files
    missing = [name for name in files if not (REPO_ROOT / name).is_file()]
    assert missing == []
    assert len(set(files)) == len(files)


def test_make_says_why_the_timescaledb_half_is_skipped_when_no_server_answers() -> None:
    env = {**os.environ, "GRIDMON_TSDB_TEST_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/gridmon_test"}
    done = subprocess.run(
        ["make", "-s", "test-timescaledb"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == (
        "TimescaleDB half skipped: no PostgreSQL answers at 127.0.0.1:1: start it with .ci/timescaledb-cluster (as root)"
    )


def test_compose_runs_timescaledb_with_the_settings_ci_tests() -> None:
    script = (REPO_ROOT / ".ci/timescaledb-cluster").read_text()
    ci_settings = dict(
        re.findall(r"^(shared_preload_libraries|timescaledb\.telemetry_level) = '?(\w+)'?$", script, re.M)
    )
    assert ci_settings == {"shared_preload_libraries": "timescaledb", "timescaledb.telemetry_level": "off"}
    services = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())["services"]
    command = services["timescaledb"]["command"]
    flags = dict(arg.split("=", 1) for arg in command[1:] if arg != "-c")
    assert flags == ci_settings
    assert services["timescaledb"]["image"].endswith("-pg15")  # the PostgreSQL major CI runs
    assert services["migrate"]["environment"]["GRIDMON_TIMESCALEDB"] == "on"
