"""History rollups: the plain-PostgreSQL refresh (late readings, idempotence, real-time tail), the
choice of source, and the API answering the same on plain PostgreSQL and on TimescaleDB.

The two-database test loads the same readings into a plain database on the test server and into
a TimescaleDB database (GRIDMON_TEST_TIMESCALE_URL, default port 5433 on this host); the
TimescaleDB half is skipped, with the reason, when that server cannot be reached or lacks the
extension.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg import sql

from gridmon.config import get_settings
from gridmon.storage import rollups
from gridmon.storage.db import dispose_engine, migrate
from gridmon.storage.readings import write_readings
from tests.api_support import ClientFactory, make_client

__all__ = ["make_client"]  # the fixture, re-exported for pytest

TEST_DB_URL = os.environ.get("GRIDMON_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/gridmon_test")
_BASE, _, _NAME = TEST_DB_URL.rpartition("/")
TIMESCALE_URL = os.environ.get("GRIDMON_TEST_TIMESCALE_URL", f"postgresql://postgres@127.0.0.1:5433/{_NAME}_ts")
PLAIN_URL = f"{_BASE}/{_NAME}_plain"

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _store(conn: psycopg.Connection, device: str, rows: list[tuple[datetime, float, float, float]]) -> None:
    batch = [(device, when.timestamp(), v, i, t, None) for when, v, i, t in rows]
    with conn.transaction():
        write_readings(conn, batch, [])


def _series(start: datetime, count: int, step_s: float, seed: int) -> list[tuple[datetime, float, float, float]]:
    rng = random.Random(seed)
    return [
        (start + timedelta(seconds=k * step_s), 230 + rng.gauss(0, 2), 10 + rng.random(), 40 + rng.gauss(0, 1))
        for k in range(count)
    ]


def _plain_only(db: psycopg.Connection) -> None:
    if rollups.is_timescale(db):
        pytest.skip("the test database is TimescaleDB: the plain refresh is tested on plain PostgreSQL")


def _minute_rows(conn: psycopg.Connection) -> dict[tuple[str, datetime], tuple[Any, ...]]:
    rows = conn.execute("SELECT * FROM readings_1m ORDER BY device_id, bucket").fetchall()
    return {(r[0], r[1]): tuple(r[2:]) for r in rows}


def test_choose_source_prefers_the_coarsest_rollup_that_divides_the_bucket() -> None:
    assert rollups.choose_source(timedelta(minutes=5), timedelta(minutes=30)) is None  # short range: raw
    assert rollups.choose_source(timedelta(minutes=5), timedelta(hours=24)) == (rollups.MINUTE, "readings_1m")
    assert rollups.choose_source(timedelta(hours=1), timedelta(days=7)) == (rollups.HOUR, "readings_1h")
    assert rollups.choose_source(timedelta(days=1), timedelta(days=30)) == (rollups.HOUR, "readings_1h")
    assert rollups.choose_source(timedelta(hours=1), timedelta(hours=2)) == (rollups.MINUTE, "readings_1m")
    assert rollups.choose_source(timedelta(seconds=30), timedelta(days=1)) is None  # no rollup divides 30 s


def test_plain_refresh_matches_the_raw_rows_takes_late_readings_and_is_idempotent(
    db: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    _plain_only(db)
    monkeypatch.setattr(rollups, "BATCH_DEVICES", 1)  # one statement per device: the batches add up
    _store(db, "dev-a", _series(T0, 360, 20.0, seed=1))  # two hours, one reading per 20 s
    _store(db, "dev-b", _series(T0, 90, 40.0, seed=2))
    first = rollups.refresh_plain(db, timedelta(0))
    assert first.minutes == 120 + 60 and first.hours == 2 + 1

    expected = db.execute(
        """
        SELECT device_id, date_bin('1 minute', ts, '2000-01-01'), count(*), sum(voltage), min(voltage), max(voltage),
               (array_agg(voltage ORDER BY ts DESC))[1], max(ts)
        FROM sensor_readings GROUP BY 1, 2 ORDER BY 1, 2
        """
    ).fetchall()
    got = db.execute(
        "SELECT device_id, bucket, n, voltage_sum, voltage_min, voltage_max, voltage_last, last_ts "
        "FROM readings_1m ORDER BY 1, 2"
    ).fetchall()
    assert [r[:3] + r[4:] for r in got] == [r[:3] + r[4:] for r in expected]
    assert [r[3] for r in got] == pytest.approx([r[3] for r in expected], rel=1e-12)  # sums: another order
    hour = db.execute(
        "SELECT n, voltage_min, voltage_last FROM readings_1h WHERE device_id = 'dev-a' AND bucket = %s", (T0,)
    ).fetchone()
    raw = db.execute(
        "SELECT count(*), min(voltage), (array_agg(voltage ORDER BY ts DESC))[1] FROM sensor_readings "
        "WHERE device_id = 'dev-a' AND ts >= %s AND ts < %s",
        (T0, T0 + timedelta(hours=1)),
    ).fetchone()
    assert hour == raw

    before = _minute_rows(db)
    again = rollups.refresh_plain(db, timedelta(0))
    assert (again.minutes, again.hours) == (0, 0) and _minute_rows(db) == before

    # A late reading into an old bucket: only its minute and hour are recomputed.
    late = T0 + timedelta(minutes=7, seconds=59)
    _store(db, "dev-a", [(late, 999.0, 1.0, 1.0)])
    third = rollups.refresh_plain(db, timedelta(0))
    assert (third.minutes, third.hours) == (1, 1)
    after = _minute_rows(db)
    key = ("dev-a", T0 + timedelta(minutes=7))
    assert after[key][0] == before[key][0] + 1
    assert after[key][2] == before[key][2] and after[key][3] == 999.0  # min unchanged, max is the late one
    assert after[key][4] == 999.0 and after[key][-1] == late  # it is the bucket's last reading
    assert {k: v for k, v in after.items() if k != key} == {k: v for k, v in before.items() if k != key}


def test_plain_refresh_leaves_readings_inside_the_lag_for_the_next_run(db: psycopg.Connection) -> None:
    _plain_only(db)
    _store(db, "dev-a", _series(T0, 10, 10.0, seed=3))
    assert rollups.refresh_plain(db, timedelta(hours=1)).minutes == 0  # ingested just now: inside the lag
    assert db.execute("SELECT count(*) FROM readings_1m").fetchone() == (0,)
    assert rollups.refresh_plain(db, timedelta(0)).minutes == 2


def test_plain_reads_add_the_raw_rows_after_the_watermark(db: psycopg.Connection) -> None:
    _plain_only(db)
    now = datetime.now(UTC).replace(microsecond=0)
    start = now - timedelta(hours=6)
    _store(db, "dev-a", _series(start, 6 * 60, 60.0, seed=4))  # up to a minute ago
    rollups.refresh_plain(db, timedelta(0))
    _store(db, "dev-a", [(now + timedelta(seconds=1), 250.0, 1.0, 1.0)])  # not refreshed yet
    p = rollups.plan(db, start, now + timedelta(minutes=5), timedelta(minutes=5), timescale=False)
    assert p.relation == "readings_1m" and timedelta(0) < p.raw_span <= timedelta(minutes=6)
    rows = rollups.bucketed(db, "dev-a", p, timedelta(minutes=5))
    assert sum(r[1] for r in rows) == 6 * 60 + 1
    count, _avg, _low, high = rollups.totals(db, "dev-a", start, now + timedelta(minutes=5), timescale=False)[:4]
    assert count == 6 * 60 + 1 and high == 250.0


def test_api_bucketed_from_rollups_equals_the_raw_aggregate(db: psycopg.Connection, make_client: ClientFactory) -> None:
    """Unaligned range edges come from raw rows; the interior from the rollup: same numbers as raw."""
    _store(db, "dev-a", _series(T0, 3 * 24 * 360, 10.0, seed=5))  # three days at 10 s
    rollups.materialize(db)
    client = make_client()
    start, end = T0 + timedelta(minutes=17, seconds=5), T0 + timedelta(days=2, hours=5, minutes=3)
    body = client.get(
        "/devices/dev-a/readings", params={"start": start.isoformat(), "end": end.isoformat(), "bucket": "1h"}
    ).json()
    raw = db.execute(
        "SELECT date_bin('1 hour', ts, '2000-01-01') AS b, count(*), avg(voltage), min(voltage), max(voltage) "
        "FROM sensor_readings WHERE ts >= %s AND ts < %s GROUP BY b ORDER BY b",
        (start, end),
    ).fetchall()
    assert [b["count"] for b in body["buckets"]] == [r[1] for r in raw]
    assert [b["voltage"]["avg"] for b in body["buckets"]] == pytest.approx([r[2] for r in raw], rel=1e-12)
    assert [(b["voltage"]["min"], b["voltage"]["max"]) for b in body["buckets"]] == [(r[3], r[4]) for r in raw]


# --- the same answers on both databases -----------------------------------------------------------


def _fresh_database(url: str, monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    base, _, name = url.rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True, connect_timeout=3) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
    monkeypatch.setenv("GRIDMON_TIMESCALEDB", mode)
    # Compression is not what this test compares (and migration 0007's VALIDATE CONSTRAINT is
    # refused on a hypertable with compression enabled, as of this writing).
    monkeypatch.setenv("GRIDMON_TIMESCALE_COMPRESS_AFTER", "")
    get_settings.cache_clear()
    migrate(url)
    get_settings.cache_clear()


def _timescale_reason() -> str | None:
    """Why the TimescaleDB half cannot run here, or None when it can."""
    base = TIMESCALE_URL.rpartition("/")[0]
    try:
        with psycopg.connect(f"{base}/postgres", autocommit=True, connect_timeout=3) as conn:
            row = conn.execute("SELECT current_setting('shared_preload_libraries')").fetchone()
    except psycopg.OperationalError as exc:
        return f"TimescaleDB server not reachable at {base} (GRIDMON_TEST_TIMESCALE_URL): {str(exc).strip()}"
    if "timescaledb" not in str(row[0] if row else ""):
        return f"the server at {base} does not preload timescaledb (GRIDMON_TEST_TIMESCALE_URL)"
    return None


def _load_history(url: str, now: datetime) -> None:
    """Eight days of two devices, the same on each database; no readings within 10 minutes of the
    device-detail windows' starts (the API takes "now" itself, a little later on the second database)."""
    quiet = [now - timedelta(hours=24), now - timedelta(days=7)]
    with psycopg.connect(url, autocommit=True) as conn:
        for k, device in enumerate(("dev-a", "dev-b")):
            rows = _series(now - timedelta(days=8, seconds=-30 * k), 8 * 24 * 60 - 5, 60.0, seed=10 + k)
            rows = [r for r in rows if all(abs(r[0] - q) > timedelta(minutes=10) for q in quiet)]
            _store(conn, device, rows)
        rollups.materialize(conn)


def _answers(client: Any, now: datetime) -> dict[str, Any]:
    hour = now.replace(minute=0, second=0, microsecond=0)
    ranges = {
        "24h-5m": (now - timedelta(hours=24), now, "5m"),
        "7d-1h": (now - timedelta(days=7), now, "1h"),
        "30d-1d": (now - timedelta(days=30), now, "1d"),
        "aligned-6h-1m": (hour - timedelta(hours=6), hour, "1m"),
        "30min-1m": (now - timedelta(minutes=30), now, "1m"),
    }
    out: dict[str, Any] = {}
    for name, (start, end, bucket) in ranges.items():
        params = {"start": start.isoformat(), "end": end.isoformat(), "bucket": bucket}
        for device in ("dev-a", "dev-b"):
            response = client.get(f"/devices/{device}/readings", params=params)
            assert response.status_code == 200, response.text
            out[f"{name}/{device}"] = response.json()["buckets"]
    for window in ("24h", "7d"):
        detail = client.get("/devices/dev-a", params={"window": window}).json()
        out[f"stats-{window}"] = {k: v for k, v in detail["stats"].items() if k not in ("start", "end")}
    return out


def _same(left: Any, right: Any, path: str = "") -> None:
    if isinstance(left, dict):
        assert isinstance(right, dict) and left.keys() == right.keys(), path
        for key in left:
            _same(left[key], right[key], f"{path}.{key}")
    elif isinstance(left, list):
        assert isinstance(right, list) and len(left) == len(right), path
        for k, (a, b) in enumerate(zip(left, right, strict=True)):
            _same(a, b, f"{path}[{k}]")
    elif isinstance(left, float) and isinstance(right, float):
        assert left == pytest.approx(right, rel=1e-9), path  # sums added in another order
    else:
        assert left == right, path


@pytest.fixture()
def both_databases(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str]]:
    reason = _timescale_reason()
    if reason is not None:
        pytest.skip(f"TimescaleDB half skipped: {reason}")
    _fresh_database(PLAIN_URL, monkeypatch, "off")
    _fresh_database(TIMESCALE_URL, monkeypatch, "on")
    yield PLAIN_URL, TIMESCALE_URL
    dispose_engine()


def test_the_api_answers_the_same_on_plain_postgresql_and_timescaledb(
    both_databases: tuple[str, str], make_client: ClientFactory
) -> None:
    plain_url, timescale_url = both_databases
    now = datetime.now(UTC).replace(microsecond=0)
    for url in both_databases:
        _load_history(url, now)
    answers = []
    for url in (plain_url, timescale_url):
        dispose_engine()
        answers.append(_answers(make_client(GRIDMON_DATABASE_URL=url), now))
    plain, timescale = answers
    assert sum(b["count"] for b in plain["7d-1h/dev-a"]) > 9000  # the ranges hold data
    with psycopg.connect(timescale_url) as conn:
        assert rollups.is_timescale(conn)
        assert conn.execute("SELECT count(*) FROM readings_1h").fetchone()[0] > 0  # type: ignore[index]
    _same(plain, timescale)

    # A reading after the materialized history: TimescaleDB's real-time aggregation and the plain
    # reads' raw tail both show it before any refresh.
    fresh = now + timedelta(seconds=90)
    params = {"start": (now - timedelta(hours=2)).isoformat(), "end": (now + timedelta(minutes=10)).isoformat()}
    tails = []
    for url in both_databases:
        with psycopg.connect(url, autocommit=True) as conn:
            _store(conn, "dev-a", [(fresh, 300.0, 1.0, 1.0)])
        dispose_engine()
        client = make_client(GRIDMON_DATABASE_URL=url)
        tails.append(client.get("/devices/dev-a/readings", params={**params, "bucket": "1m"}).json()["buckets"])
    assert tails[0][-1]["start"] == tails[1][-1]["start"] and tails[0][-1]["voltage"]["max"] == 300.0
    _same(tails[0], tails[1])


def test_the_periodic_job_refreshes_on_plain_postgresql(db: psycopg.Connection) -> None:
    from gridmon.jobs.rollups import refresh_rollups

    _plain_only(db)
    _store(db, "dev-a", _series(T0, 30, 10.0, seed=6))
    assert refresh_rollups(lag_s=0) == {
        "database": "postgresql",
        "minutes": 5,
        "hours": 1,
        "watermark": refresh_rollups(lag_s=3600)["watermark"],  # nothing new: the same watermark
    }
    assert db.execute("SELECT sum(n) FROM readings_1h").fetchone() == (30,)


def test_only_the_part_read_raw_counts_against_the_row_budget(
    db: psycopg.Connection, make_client: ClientFactory
) -> None:
    _plain_only(db)
    _store(db, "dev-a", _series(T0, 600, 1.0, seed=7))  # one reading a second
    client = make_client(GRIDMON_API_MAX_ROWS_PER_REQUEST="1000")
    params = {"start": (T0 - timedelta(hours=23)).isoformat(), "end": (T0 + timedelta(hours=1)).isoformat()}
    before = client.get("/devices/dev-a/readings", params={**params, "bucket": "1h"})
    assert before.status_code == 400 and "narrow the range" in before.json()["detail"]  # no rollup yet: all raw
    rollups.materialize(db)
    after = client.get("/devices/dev-a/readings", params={**params, "bucket": "1h"})
    assert after.status_code == 200 and [b["count"] for b in after.json()["buckets"]] == [600]
