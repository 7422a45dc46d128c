"""Helpers for the API tests: an app built for given tokens, and known data in the real tables."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from gridmon.config import get_settings
from gridmon.storage.readings import write_readings

ADMIN = "admin-token-0123456789abcdef"
READER = "read-token-0123456789abcdef"
WRONG = "wrong-token-0123456789abcdef"

ClientFactory = Callable[..., TestClient]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture()
def make_client(monkeypatch: pytest.MonkeyPatch) -> Iterator[ClientFactory]:
    """`make_client(admin=ADMIN, read=None)`: a TestClient of an app built with those tokens."""
    from gridmon.api import create_app

    clients: list[TestClient] = []

    def factory(admin: str | None = ADMIN, read: str | None = None, **env: str) -> TestClient:
        for name, value in (("GRIDMON_ADMIN_TOKEN", admin), ("GRIDMON_READ_TOKEN", read)):
            # Empty, not unset: an unset variable would let a developer's `.env` fill it in.
            monkeypatch.setenv(name, value or "")
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()
        client = TestClient(create_app(), raise_server_exceptions=False)
        clients.append(client)
        return client

    yield factory
    for client in clients:
        client.close()
    monkeypatch.undo()
    get_settings.cache_clear()


def ts(text: str) -> datetime:
    """An ISO time (naive = UTC)."""
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def add_readings(
    conn: psycopg.Connection, device_id: str, rows: Sequence[tuple[datetime, float, float, float]]
) -> None:
    """Store (ts, voltage, current, temperature) rows through the real write path."""
    batch = [(device_id, when.timestamp(), v, i, t, None) for when, v, i, t in rows]
    with conn.transaction():
        write_readings(conn, batch, [])


def add_alert(conn: psycopg.Connection, device_id: str, metric: str = "voltage", **fields: Any) -> int:
    """Insert an alert through the alerts store; returns its id."""
    from gridmon.storage import alerts as store

    now = datetime.now(UTC).timestamp()
    values: dict[str, Any] = {
        "detector": "safety",
        "severity": "high",
        "opened_at": now - 60,
        "last_seen_at": now,
        "value": 260.0,
        "value_ts": now,
        "score": 3.0,
        "description": f"{metric} out of range",
        "readings_count": 5,
    }
    values.update(fields)
    with conn.transaction():
        row = store.insert_alert(conn, device_id=device_id, metric=metric, **values)
    return int(row["id"])
