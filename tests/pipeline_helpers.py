"""Shared helpers for the end-to-end pipeline tests (real Mosquitto, Redis, PostgreSQL, Celery)."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import orjson
import psycopg

from gridmon.bench.stack import IngestStack
from gridmon.simulator.load import PublishStats, publish_readings

T0 = 1_790_000_000.0


def reading_payloads(
    n: int, *, device_prefix: str = "dev", devices: int = 20, start: float = T0
) -> list[tuple[str, bytes, tuple]]:
    """n distinct readings with distinct, exactly representable values: (topic, payload, expected row)."""
    out = []
    for k in range(n):
        device = f"{device_prefix}{k % devices:03d}"
        ts = start + k * 0.001
        values = (200.0 + (k % 5000) * 0.01, (k % 997) * 0.01, 20.0 + (k % 613) * 0.1)
        doc = {
            "device_id": device,
            "timestamp": ts,
            "voltage": values[0],
            "current": values[1],
            "temperature": values[2],
        }
        out.append((f"grid/sensors/{device}", orjson.dumps(doc), (device, round(ts, 6), *values)))
    return out


def publish(
    stack: IngestStack, messages: Iterable[tuple[str, bytes]], client_id: str = "test-pub", rate: float | None = None
) -> PublishStats:
    return publish_readings(list(messages), host="127.0.0.1", port=stack.mosquitto.port, client_id=client_id, rate=rate)


def publish_in_background(stack: IngestStack, messages: Sequence[tuple[str, bytes]], rate: float) -> threading.Thread:
    thread = threading.Thread(target=publish, args=(stack, messages, "test-bg-pub", rate), daemon=True)
    thread.start()
    return thread


def stored_rows(database_url: str) -> list[tuple]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT device_id, round(extract(epoch FROM ts)::numeric, 6)::float8, voltage, current, temperature "
            "FROM sensor_readings"
        ).fetchall()
    return [tuple(r) for r in rows]


@contextmanager
def running_stack(
    database_url: str, *, bridge_env: dict[str, Any] | None = None, **stack_args: Any
) -> Iterator[IngestStack]:
    """A started private ingest stack with one bridge (given extra env, if any), flowing."""
    stack = IngestStack(database_url=database_url, **stack_args)
    try:
        stack.start()
        if bridge_env is None:
            stack.start_bridge()
        else:
            stack.start_extra_bridge("bridge-variant", **bridge_env)
        stack.wait_flowing()
        yield stack
    finally:
        stack.stop()


def assert_exactly_stored(stack: IngestStack, messages: list[tuple[str, bytes, tuple]], timeout: float = 90) -> None:
    """Publish-independent check: exactly these readings are stored, with their values."""
    count, _ = stack.wait_for_rows(len(messages), timeout)
    assert count == len(messages)
    assert sorted(stored_rows(stack.database_url)) == sorted(expected for _, _, expected in messages)
