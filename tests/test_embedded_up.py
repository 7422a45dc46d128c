"""`gridmon up` around embedded mode: which mode it picks, the run lock, `--external`, servers left
behind by a killed run, and the status figures."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import psycopg
import pytest

from gridmon.services import procs
from gridmon.services.embedded import EmbeddedServices
from gridmon.up.checks import ServiceCheck
from gridmon.up.mode import Mode, configured_services, decide
from gridmon.up.run import AlreadyRunning, RunLock
from gridmon.up.status import Snapshot, StatusProbe, StatusReporter
from tests.conftest import TEST_DB_URL


def check(name: str, ok: bool) -> ServiceCheck:
    return ServiceCheck(name, ok, "127.0.0.1:1", f"GRIDMON_{name.upper()}_URL", "" if ok else "refused")


ALL_DOWN = [check("postgres", False), check("redis", False), check("mqtt", False), check("celery", False)]
ALL_UP = [check("postgres", True), check("redis", True), check("mqtt", True), check("celery", True)]


def test_fresh_machine_gets_embedded_servers() -> None:
    decision = decide(Mode.AUTO, [], lambda: ALL_DOWN)
    assert decision.embedded and not decision.failed


def test_running_default_services_are_used() -> None:
    decision = decide(Mode.AUTO, [], lambda: ALL_UP)
    assert not decision.embedded and not decision.failed


def test_a_configured_service_that_is_down_is_reported_not_replaced() -> None:
    decision = decide(Mode.AUTO, ["GRIDMON_DATABASE_URL"], lambda: ALL_DOWN)
    assert not decision.embedded
    assert [c.name for c in decision.failed] == ["postgres", "redis", "mqtt", "celery"]
    assert "GRIDMON_DATABASE_URL" in decision.reason


def test_half_a_setup_is_reported_with_the_embedded_hint() -> None:
    partial = [check("postgres", True), check("redis", True), check("mqtt", False), check("celery", True)]
    decision = decide(Mode.AUTO, [], lambda: partial)
    assert not decision.embedded and [c.name for c in decision.failed] == ["mqtt"]
    assert "--embedded" in decision.hint


def test_forced_modes() -> None:
    def no_checks() -> list[ServiceCheck]:
        raise AssertionError("--embedded must not probe the system services")

    assert decide(Mode.EMBEDDED, ["GRIDMON_DATABASE_URL"], no_checks).embedded
    external = decide(Mode.EXTERNAL, [], lambda: ALL_DOWN)
    assert not external.embedded and len(external.failed) == 4


def test_configured_services_come_from_env_and_dotenv(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("GRIDMON_ADMIN_TOKEN=x\nBROKER_HOST=mqtt.example\n")
    found = configured_services({"DB_DSN": "postgresql://x/y", "GRIDMON_REDIS_URL": ""}, env_file)
    assert found == ["DB_DSN", "BROKER_HOST"]
    assert configured_services({}, tmp_path / "missing.env") == []


def test_the_run_lock_admits_one_up_per_data_dir(tmp_path: Path) -> None:
    lock = tmp_path / "up.pid"
    with RunLock(lock):
        with pytest.raises(AlreadyRunning, match=f"pid {os.getpid()}"), RunLock(lock):
            pass
        # A second `gridmon up` process on the same data directory says so and exits 3.
        env = procs.child_env({"GRIDMON_DATA_DIR": str(tmp_path)})
        done = subprocess.run(
            [sys.executable, "-m", "gridmon.cli.main", "up", "--embedded"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 3, done.stderr
        assert "already running" in done.stderr
        assert not (tmp_path / "postgres").exists()  # nothing embedded was started
    with RunLock(lock):  # released: the next run may start
        pass


def test_external_names_the_missing_service_and_starts_nothing_embedded(tmp_path: Path) -> None:
    env = procs.child_env({"GRIDMON_DATA_DIR": str(tmp_path / "data"), "GRIDMON_MQTT_PORT": "1"})
    done = subprocess.run(
        [sys.executable, "-m", "gridmon.cli.main", "up", "--external"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "mqtt" in done.stderr and "GRIDMON_MQTT_HOST / GRIDMON_MQTT_PORT" in done.stderr
    assert "postgres   DOWN" not in done.stderr  # the test database answers
    assert not (tmp_path / "data" / "postgres").exists()


@pytest.mark.slow
def test_servers_left_behind_by_a_killed_run_are_replaced(tmp_path: Path) -> None:
    ports = {"postgres": 0, "redis": 0, "mqtt": 0}
    first = EmbeddedServices(tmp_path, ports=ports).start()
    orphans = {name: psutil.Process(pid) for name, pid in first.pids().items() if pid}
    assert len(orphans) == 3
    # `gridmon up` was SIGKILLed: nobody stops `first`. The next run must still start.
    second = EmbeddedServices(tmp_path, ports=ports).start()
    try:
        # gone, or exited and waiting for init to reap it (the old postmaster's parent is init)
        assert [n for n, p in orphans.items() if p.is_running() and p.status() != psutil.STATUS_ZOMBIE] == []
        assert second.dead() is None
        with psycopg.connect(second.env()["GRIDMON_DATABASE_URL"].rsplit("/", 1)[0] + "/postgres") as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        second.stop()


def test_status_figures_and_log_line(db: psycopg.Connection, caplog: pytest.LogCaptureFixture) -> None:
    db.execute(
        "INSERT INTO sensor_readings (device_id, ts, voltage, current, temperature) "
        "SELECT 'st-' || i, now() - make_interval(secs => i), 230, 4, 35 FROM generate_series(1, 25) AS i"
    )
    probe = StatusProbe(TEST_DB_URL, workers=lambda: 2)
    first = probe.sample()
    assert first is not None and (first.rows, first.workers, first.readings_per_s) == (25, 2, 0.0)
    db.execute(
        "INSERT INTO sensor_readings (device_id, ts, voltage, current, temperature) VALUES ('st-x', now(), 1, 1, 1)"
    )
    second = probe.sample()
    assert second is not None and second.rows == 26 and second.readings_per_s > 0
    reporter = StatusReporter(probe, live=False)
    with caplog.at_level(logging.INFO, logger="gridmon.up.status"):
        reporter.show(Snapshot(12.4, 26, 3, 2))
    assert "status: 12 readings/s · 26 rows stored · 3 open alerts · 2 workers" in caplog.text
    assert (
        Snapshot(1234.0, 1_000_000, 0, None).line()
        == "1,234 readings/s · 1,000,000 rows stored · 0 open alerts · ? workers"
    )
    assert Snapshot(1.0, 1, 1, 1).line() == "1 readings/s · 1 row stored · 1 open alert · 1 worker"


def test_a_dead_embedded_server_stops_everything(tmp_path: Path) -> None:
    from gridmon.up.supervisor import Supervisor

    saved = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    supervisor = Supervisor(dict(os.environ), tmp_path, tmp_path / "logs", grace_s=5)
    child = supervisor.start("sleeper", [sys.executable, "-c", "import time; time.sleep(60)"])
    stopped: list[bool] = []
    try:
        code = supervisor.run(watch=lambda: "redis", on_stop=lambda: stopped.append(True))
    finally:
        signal.signal(signal.SIGINT, saved[0])
        signal.signal(signal.SIGTERM, saved[1])
    assert code == 1 and stopped == [True]
    assert child.proc is not None and child.proc.returncode is not None
