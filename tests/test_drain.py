"""What `gridmon up` says is left in the ingest queue when its workers stop, against a private
redis-server as the Celery broker (no worker consumes: the messages stay)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gridmon.config import get_settings
from gridmon.services.redis_server import RedisProcess
from gridmon.up.drain import Backlog, IngestDrain, IngestQueue


@pytest.fixture()
def broker_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    with RedisProcess(tmp_path / "redis") as redis_server:
        monkeypatch.setenv("GRIDMON_BROKER_URL", redis_server.url)
        monkeypatch.setenv("GRIDMON_RESULT_BACKEND", redis_server.url)
        get_settings.cache_clear()
        from gridmon.celery import make_app

        app = make_app()
        try:
            yield app
        finally:
            get_settings.cache_clear()


def reading(k: int) -> list[Any]:
    return [f"dev-{k}", 1_790_000_000.0 + k, 230.0, 4.0, 35.0, None]


def test_an_empty_queue_is_drained_at_once(broker_app: Any) -> None:
    queue = IngestQueue(app=broker_app, worker="ingest@nowhere")
    assert queue.backlog() == Backlog(0, 0, 0)
    drained = IngestDrain(queue, timeout_s=5).wait()
    assert drained is not None and drained.empty


def test_what_stays_queued_is_counted_in_readings(broker_app: Any, caplog: pytest.LogCaptureFixture) -> None:
    broker_app.send_task("workers.ingest.ingest_batch", args=([reading(0), reading(1), reading(2)], []))
    broker_app.send_task("workers.ingest.ingest_batch", args=([reading(3)], []))
    broker_app.send_task("workers.system.beat_heartbeat")  # shares the queue, holds no reading
    queue = IngestQueue(app=broker_app, worker="ingest@nowhere")
    assert queue.backlog() == Backlog(messages=3, readings=4, batches=2)

    drain = IngestDrain(queue, timeout_s=0.5, poll_s=0.1)
    with caplog.at_level(logging.INFO, logger="gridmon.up.drain"):
        waited = drain.wait()
        assert waited is not None and not waited.empty  # nobody consumes: the wait is bounded
        left = drain.report()
    assert left == Backlog(messages=3, readings=4, batches=2)
    assert "did not drain in 0 s (4 readings in 2 ingest batches left)" in caplog.text
    assert "4 readings in 2 ingest batches stay queued; they will be written at the next start" in caplog.text


def test_a_broker_that_is_gone_ends_the_wait(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gridmon.services.mosquitto import free_port

    monkeypatch.setenv("GRIDMON_BROKER_URL", f"redis://127.0.0.1:{free_port()}/0")
    get_settings.cache_clear()
    try:
        from gridmon.celery import make_app

        app = make_app()
        app.conf.broker_connection_retry = False
        app.conf.broker_connection_max_retries = 0
        assert IngestDrain(IngestQueue(app=app), timeout_s=5).wait() is None
    finally:
        get_settings.cache_clear()
