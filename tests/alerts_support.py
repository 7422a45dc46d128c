"""Helpers for the alert, scan and training tests: readings in the real table, Redis readers."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import orjson
import pytest
import redis

from gridmon.config import get_settings
from gridmon.jobs.ingest import cached_limits
from gridmon.jobs.publish import LIST_KEY, STREAM_KEY, get_publisher
from gridmon.storage import db
from gridmon.storage.readings import write_readings

Rows = list[list[Any]]


def normal_rows(device: str, start: float, n: int, *, step: float = 2.0, seed: int = 0) -> Rows:
    """`n` normal readings (230 V, 4 A, 35 °C with noise) every `step` seconds from `start`."""
    rng = np.random.default_rng(seed)
    return [
        [
            device,
            start + i * step,
            float(230.0 + rng.normal(0, 0.7)),
            float(4.0 + rng.normal(0, 0.1)),
            float(35.0 + rng.normal(0, 0.5)),
            None,
        ]
        for i in range(n)
    ]


def with_voltage(rows: Rows, voltage: float) -> Rows:
    """The same readings with the voltage replaced (an over-voltage stretch)."""
    return [[r[0], r[1], voltage, *r[3:]] for r in rows]


def store(rows: Sequence[Sequence[Any]]) -> None:
    """Store readings in one transaction, bypassing the ingest job's safety check (scan-only tests)."""
    with db.connection() as conn:
        write_readings(conn, rows)


def stream_events(client: redis.Redis) -> list[dict[str, Any]]:
    """Every message on the alert stream, oldest first."""
    return [orjson.loads(fields[b"data"]) for _, fields in client.xrange(STREAM_KEY)]


def list_events(client: redis.Redis) -> list[dict[str, Any]]:
    """Every message on the alert list, oldest first (the list is newest-first)."""
    return [orjson.loads(item) for item in reversed(client.lrange(LIST_KEY, 0, -1))]


def alerts(conn: Any, *, stale: bool = False) -> list[dict[str, Any]]:
    """Alert rows by id; `no_data` ones only with `stale` (test data is an hour old, so the
    staleness check sees every device as silent)."""
    from psycopg.rows import dict_row

    where = "" if stale else "WHERE metric <> 'no_data'"
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(f"SELECT * FROM alerts {where} ORDER BY id").fetchall()


def outbox(conn: Any) -> list[tuple[int, str, Any]]:
    return conn.execute("SELECT alert_id, event, published_at FROM alert_outbox ORDER BY id").fetchall()


@pytest.fixture()
def fresh_alerting(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Per-test process state: a new publisher and limit cache, scans that read up to now."""
    settings = get_settings()
    monkeypatch.setattr(settings, "scan_safety_lag_s", 0.0)
    monkeypatch.setattr(settings, "scan_initial_lookback_s", 86400.0)
    get_publisher.cache_clear()
    cached_limits.cache_clear()
    yield
    get_publisher().close()
    get_publisher.cache_clear()
    cached_limits.cache_clear()


def base_time() -> float:
    """A start time an hour ago, on a whole second (readings are in the retrain window)."""
    return float(int(time.time()) - 3600)
