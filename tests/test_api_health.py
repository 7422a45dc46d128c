"""API: /health, /ready (against real services, and with our own Redis stopped), /metrics, the
request log, and the JSON error shape."""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from gridmon.domain.readings import dead_letter
from gridmon.heartbeat import beat_key, bridge_key
from gridmon.storage.dead_letters import write_dead_letters
from tests.api_support import ADMIN, ClientFactory, add_alert, add_readings, bearer, make_client

__all__ = ["make_client"]


def test_health_needs_nothing(make_client: ClientFactory) -> None:
    response = make_client(admin=None).get("/health")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture()
def own_redis(tmp_path) -> Iterator[tuple[subprocess.Popen, int]]:
    """A redis-server of our own on a free port (the system Redis is never touched)."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server not installed")
    port = _free_port()
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    yield proc, port
    client.close()
    if proc.poll() is None:
        proc.terminate()
        proc.wait(timeout=10)


def test_ready_turns_503_when_redis_stops(db, own_redis, make_client: ClientFactory) -> None:
    proc, port = own_redis
    url = f"redis://127.0.0.1:{port}/0"
    now = time.time()
    seed = redis.Redis.from_url(url)
    seed.set(bridge_key("test-bridge"), f"{now:.3f}")
    seed.set(beat_key(), f"{now:.3f}")
    seed.close()
    client = make_client(GRIDMON_REDIS_URL=url, GRIDMON_READY_CACHE_S="0")

    before = client.get("/ready", headers=bearer(ADMIN)).json()
    assert before["checks"]["redis"]["ok"] is True
    assert before["checks"]["bridge"]["ok"] is True and before["checks"]["beat"]["ok"] is True
    assert before["checks"]["database"]["ok"] is True

    proc.terminate()
    proc.wait(timeout=10)
    after = client.get("/ready", headers=bearer(ADMIN))
    assert after.status_code == 503
    body = after.json()
    assert body["status"] == "not_ready"
    assert {"redis", "bridge", "beat"} <= set(body["failed"])
    assert "GRIDMON_REDIS_URL" in body["checks"]["redis"]["detail"]
    assert body["checks"]["database"]["ok"] is True


@pytest.mark.slow
def test_ready_is_200_when_everything_answers(db, redis_client, make_client: ClientFactory) -> None:
    """Real PostgreSQL, Redis, Mosquitto and a Celery worker (in a thread); the test plays bridge and beat."""
    from celery.contrib.testing.worker import start_worker

    from gridmon.celery import app as celery_app

    now = time.time()
    redis_client.set(bridge_key("test-bridge"), f"{now:.3f}")
    redis_client.set(beat_key(), f"{now:.3f}")
    client = make_client(GRIDMON_READY_CACHE_S="0")
    with start_worker(celery_app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
        response = client.get("/ready", headers=bearer(ADMIN))
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ready" and body["failed"] == []
    assert set(body["checks"]) == {"database", "redis", "mqtt", "bridge", "workers", "beat"}

    # A stale bridge heartbeat fails the check and names its age.
    redis_client.set(bridge_key("test-bridge"), f"{now - 600:.3f}")
    stale = client.get("/ready", headers=bearer(ADMIN)).json()
    assert "bridge" in stale["failed"] and "old" in stale["checks"]["bridge"]["detail"]


def _metric_values(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


def test_metrics_gauges_from_the_tables(db, make_client: ClientFactory) -> None:
    now = datetime.now(UTC)
    add_readings(db, "on-1", [(now, 230.0, 4.0, 40.0)])
    add_readings(db, "on-2", [(now, 230.0, 4.0, 40.0)])
    add_readings(db, "off-1", [(now - timedelta(hours=1), 230.0, 4.0, 40.0)])
    with db.transaction(), db.cursor() as cur:
        write_dead_letters(
            cur,
            [dead_letter(time.time(), "t", b"x", reason, "d", keep_bytes=64) for reason in ("not_json", "not_json", "non_finite")],
        )
    add_alert(db, "on-1", "voltage", severity="high")
    add_alert(db, "on-2", "voltage", severity="high")
    acked = add_alert(db, "on-2", "temperature", severity="critical")
    db.execute("UPDATE alerts SET state = 'acknowledged' WHERE id = %s", (acked,))
    db.execute(
        """INSERT INTO model_versions (n_samples, features, threshold, status, artifact_path)
           VALUES (10, '[]', 0.5, 'active', '/m.joblib')"""
    )
    client = make_client()
    client.get("/health")

    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    values = _metric_values(response.text)
    assert values[("gridmon_devices", (("status", "online"),))] == 2
    assert values[("gridmon_devices", (("status", "stale"),))] == 1
    assert values[("gridmon_dead_letters_stored", (("reason", "not_json"),))] == 2
    assert values[("gridmon_dead_letters_stored", (("reason", "non_finite"),))] == 1
    assert values[("gridmon_open_alerts", (("severity", "high"), ("state", "open")))] == 2
    assert values[("gridmon_open_alerts", (("severity", "critical"), ("state", "acknowledged")))] == 1
    assert values[("gridmon_active_model_version", (("version", "1"),))] == 1
    assert values[("gridmon_api_database_up", ())] == 1
    health_requests = ("gridmon_api_requests_total", (("method", "GET"), ("route", "/health"), ("status", "200")))
    assert values[health_requests] == 1


def test_one_log_line_per_request_without_the_token(db, make_client: ClientFactory, caplog) -> None:
    client = make_client()
    with caplog.at_level(logging.INFO, logger="gridmon.api.access"):
        client.get("/devices/nope", headers=bearer(ADMIN))
        client.put("/devices/nope", json={"kind": "meter"}, headers=bearer(ADMIN))
    lines = [r.getMessage() for r in caplog.records if r.name == "gridmon.api.access"]
    assert len(lines) == 2
    assert lines[0].startswith("request method=GET path=/devices/nope status=404 duration_ms=")
    assert lines[1].startswith("request method=PUT path=/devices/nope status=404")
    assert all(ADMIN not in line for line in lines)


def test_errors_are_json(db, make_client: ClientFactory) -> None:
    client = make_client()
    unknown = client.get("/no-such-route")
    assert unknown.status_code == 404 and unknown.json() == {"detail": "Not Found"}
    assert client.get("/devices/").status_code == 404  # no redirect to /devices
    wrong_method = client.delete("/devices")
    assert wrong_method.status_code == 405 and wrong_method.json()["detail"]
    # GET and PUT /devices/{id} are two routes; Allow names both.
    assert client.delete("/devices/x").headers["allow"] == "GET, PUT"

    def boom() -> None:
        raise RuntimeError("secret internals")

    client.app.add_api_route("/boom", boom)  # type: ignore[attr-defined]
    crashed = client.get("/boom")
    assert crashed.status_code == 500
    assert crashed.json() == {"detail": "internal error; see the API log"}


def test_database_down_is_503_naming_the_setting(make_client: ClientFactory) -> None:
    from gridmon.storage.db import dispose_engine

    client = make_client(GRIDMON_DATABASE_URL=f"postgresql://postgres@127.0.0.1:{_free_port()}/nowhere")
    dispose_engine()
    try:
        response = client.get("/devices")
        assert response.status_code == 503
        assert "GRIDMON_DATABASE_URL" in response.json()["detail"]
        ready = client.get("/ready", headers=bearer(ADMIN)).json()
        assert ready["checks"]["database"]["ok"] is False
        metrics = _metric_values(client.get("/metrics").text)
        assert metrics[("gridmon_api_database_up", ())] == 0
    finally:
        dispose_engine()
