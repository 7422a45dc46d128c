"""Nothing is lost when parts of the pipeline fail: bridge restarts, worker kills, database outage,
two bridges sharing one subscription. Real processes, real services, own broker instances."""

from __future__ import annotations

import signal
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
import pytest

from gridmon.bench.stack import IngestStack
from gridmon.services.postgres_server import PostgresProcess
from gridmon.services.procs import wait_until
from gridmon.storage.db import migrate
from tests.conftest import EXPECT_TIMESCALEDB
from tests.pipeline_helpers import publish, publish_in_background, reading_payloads, running_stack, stored_rows

pytestmark = pytest.mark.slow


@pytest.fixture()
def stack(migrated_database: str, db: psycopg.Connection):
    with running_stack(migrated_database, workers=2) as s:
        yield s


def _expected(messages: list[tuple[str, bytes, tuple]]) -> list[tuple]:
    return sorted(expected for _, _, expected in messages)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_bridge_restarted_mid_stream_loses_nothing(stack: IngestStack, sig: int) -> None:
    messages = reading_payloads(12000)
    publisher = publish_in_background(stack, [(t, p) for t, p, _ in messages], rate=4000)
    assert wait_until(lambda: stack.stored() > 1000, 30)
    assert stack.bridge is not None
    stack.bridge.send_signal(sig)
    stack.bridge.wait(30)
    time.sleep(1.0)  # readings keep arriving at the broker while no bridge runs
    stack.start_bridge()
    publisher.join(60)
    count, _ = stack.wait_for_rows(12000, 90)
    assert count == 12000
    assert sorted(stored_rows(stack.database_url)) == _expected(messages)


def _pool_children(worker: subprocess.Popen[bytes]) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(worker.pid)], capture_output=True, text=True).stdout
    return [int(pid) for pid in out.split()]


def test_worker_killed_mid_batch_loses_nothing(stack: IngestStack, migrated_database: str) -> None:
    messages = reading_payloads(3000)
    # Hold the table so the ingest task blocks inside its INSERT, then kill the pool processes.
    locker = psycopg.connect(migrated_database)
    locker.execute("LOCK TABLE sensor_readings IN EXCLUSIVE MODE")
    try:
        publish(stack, [(t, p) for t, p, _ in messages])

        def blocked() -> bool:
            row = locker.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%INSERT INTO sensor_readings%'"
            ).fetchone()
            return bool(row and row[0] > 0)

        assert wait_until(blocked, 30)
        assert stack.worker is not None
        children = _pool_children(stack.worker)
        assert children
        for pid in children:
            subprocess.run(["kill", "-KILL", str(pid)], check=False)
    finally:
        locker.rollback()
        locker.close()
    count, _ = stack.wait_for_rows(3000, 90)
    assert count == 3000
    assert sorted(stored_rows(stack.database_url)) == _expected(messages)
    assert stack.worker.poll() is None  # the worker replaced its pool processes and carried on


def test_database_unreachable_for_10s_then_ingest_resumes() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="gridmon-test-pg-"))
    # On the TimescaleDB half the private server preloads it too (the migration runs with it on).
    pg = PostgresProcess(workdir / "pg", timescaledb=EXPECT_TIMESCALEDB).start()
    try:
        url = pg.url("gridmon_outage")
        migrate(url)
        s = IngestStack(database_url=url, workers=1)
        try:
            s.start()
            s.start_bridge()
            s.wait_flowing()
            first = reading_payloads(2000)
            second = reading_payloads(2000, start=1_790_100_000.0)
            publish(s, [(t, p) for t, p, _ in first])
            assert s.wait_for_rows(2000, 60)[0] == 2000
            pg.stop()
            publish(s, [(t, p) for t, p, _ in second])  # accepted by MQTT and the bridge while the DB is down
            time.sleep(10)
            pg.start()
            count, _ = s.wait_for_rows(4000, 120)
            assert count == 4000
            assert sorted(stored_rows(url)) == _expected(first + second)
        finally:
            s.stop()
    finally:
        pg.stop()


def test_two_bridges_on_a_shared_subscription(migrated_database: str, db: psycopg.Connection) -> None:
    s = IngestStack(database_url=migrated_database, workers=2)
    try:
        s.start()
        shared = {"GRIDMON_MQTT_SHARED_GROUP": "ingest"}
        ports = []
        for name in ("bridge-a", "bridge-b"):
            from gridmon.services.mosquitto import free_port

            port = free_port()
            ports.append(port)
            s.start_extra_bridge(name, GRIDMON_BRIDGE_METRICS_PORT=port, **shared)
        s.wait_flowing()
        dup_before = s.worker_counter("gridmon_readings_duplicate_total")
        messages = reading_payloads(10000)
        publish(s, [(t, p) for t, p, _ in messages])
        count, _ = s.wait_for_rows(10000, 90)
        assert count == 10000
        assert sorted(stored_rows(migrated_database)) == _expected(messages)
        assert s.worker_counter("gridmon_readings_duplicate_total") == dup_before  # each reading delivered once
        handled = [_scrape(port, "mqtt_ingest_total") for port in ports]
        assert all(h > 1000 for h in handled), handled  # both bridges took a share
    finally:
        s.stop()


def _scrape(port: int, name: str) -> float:
    import urllib.request

    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + " "))
