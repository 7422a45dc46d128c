"""The COPY write path against the real database."""

from __future__ import annotations

import psycopg

from gridmon.domain.readings import Rejection
from gridmon.domain.wire import encode_dead
from gridmon.jobs import ingest
from gridmon.storage.db import connection
from gridmon.storage.readings import write_readings

T0 = 1_790_000_000.0


def rows(n: int, device: str = "dev_a", start: float = T0) -> list[tuple]:
    return [(device, start + k * 0.5, 230.0 + k * 0.001, 4.0 + k / 7, 35.0 - k / 3, None) for k in range(n)]


def test_values_stored_exactly(db: psycopg.Connection) -> None:
    batch = [*rows(50), ("dev_b", T0 + 0.123456, 229.987654321, 0.0, -5.25, {"pf": 0.91})]
    with connection() as conn:
        result = write_readings(conn, batch)
    assert (result.inserted, result.duplicates) == (51, 0)
    got = db.execute(
        "SELECT device_id, extract(epoch FROM ts)::float8, voltage, current, temperature, extra "
        "FROM sensor_readings ORDER BY device_id, ts"
    ).fetchall()
    assert [tuple(r) for r in got] == [tuple(r) for r in batch]


def test_redelivered_batch_is_stored_once(db: psycopg.Connection) -> None:
    batch = rows(100)
    with connection() as conn:
        first = write_readings(conn, batch)
    with connection() as conn:
        second = write_readings(conn, batch[50:] + rows(10, start=T0 + 1000))
    assert (first.inserted, first.duplicates) == (100, 0)
    assert (second.inserted, second.duplicates) == (10, 50)
    assert db.execute("SELECT count(*) FROM sensor_readings").fetchone() == (110,)


def test_duplicate_within_one_batch(db: psycopg.Connection) -> None:
    batch = rows(3) + rows(3)
    with connection() as conn:
        result = write_readings(conn, batch)
    assert (result.inserted, result.duplicates) == (3, 3)


def test_devices_upserted_with_first_and_last_seen(db: psycopg.Connection) -> None:
    with connection() as conn:
        write_readings(conn, rows(10, "dev_a", T0 + 100))
    with connection() as conn:
        write_readings(conn, rows(10, "dev_a", T0) + rows(2, "dev_c", T0 + 7))
    got = db.execute(
        "SELECT device_id, extract(epoch FROM first_seen)::float8, extract(epoch FROM last_seen)::float8 "
        "FROM devices ORDER BY device_id"
    ).fetchall()
    assert got == [("dev_a", T0, T0 + 104.5), ("dev_c", T0 + 7, T0 + 7.5)]


def test_store_batch_with_dead_letters(db: psycopg.Connection) -> None:
    dead = [encode_dead(T0, "grid/sensors/x", b"\x00\xffnot json", Rejection("not_json", "not JSON: boom"), keep_bytes=8192)]
    result = ingest.store_batch(rows(5), dead)
    assert (result.inserted, result.dead_letters) == (5, 1)
    letter = db.execute("SELECT topic, payload, reason, detail FROM dead_letters").fetchone()
    assert letter == ("grid/sensors/x", b"\x00\xffnot json", "not_json", "not JSON: boom")


def test_device_id_with_copy_special_characters(db: psycopg.Connection) -> None:
    # Validation forbids these in device ids, but the writer must not corrupt rows if one slips in.
    batch = [("a\\b\tc", T0, 1.0, 2.0, 3.0, {"k\tx": 1.5})]
    with connection() as conn:
        write_readings(conn, batch)
    assert db.execute("SELECT device_id, extra FROM sensor_readings").fetchone() == ("a\\b\tc", {"k\tx": 1.5})


def test_bulk_histogram_observe_matches_one_by_one() -> None:
    from prometheus_client import CollectorRegistry, Histogram

    from gridmon.metrics import observe_many

    registry = CollectorRegistry()
    one = Histogram("one", "x", buckets=(0.1, 1.0, 5.0), registry=registry)
    bulk = Histogram("bulk", "x", buckets=(0.1, 1.0, 5.0), registry=registry)
    values = [0.0, 0.1, 0.10001, 0.5, 1.0, 4.9, 5.0, 7.0, 100.0]
    for v in values:
        one.observe(v)
    observe_many(bulk, values)

    def samples(name: str) -> list[tuple[str, dict, float]]:
        return [(s.name.replace(name, ""), s.labels, s.value) for m in registry.collect() if m.name == name for s in m.samples if not s.name.endswith("_created")]

    assert samples("one") == samples("bulk")


def test_copy_fast_path_and_escaped_path_store_the_same(db: psycopg.Connection) -> None:
    plain = rows(20)
    mixed = [*rows(5, "dev_x", T0 + 50), ("dev_y", T0, 1e-05, 0.5, 1e3, {"pf": 1.0}), ("nullish", T0, 2.0, 3.0, 4.0, None)]
    with connection() as conn:
        write_readings(conn, plain + mixed)
    got = db.execute(
        "SELECT device_id, extract(epoch FROM ts)::float8, voltage, current, temperature, extra FROM sensor_readings"
    ).fetchall()
    assert sorted(tuple(r) for r in got) == sorted(tuple(r) for r in plain + mixed)


def test_readings_as_named_tuples_are_written(db: psycopg.Connection) -> None:
    from gridmon.domain.readings import Reading

    with connection() as conn:
        result = write_readings(conn, [Reading("dev_nt", T0, 230.5, 4.25, 35.0, None), Reading("dev_nt", T0 + 1, 1.0, 2.0, 3.0, {"f": 50.0})])
    assert result.inserted == 2
    assert db.execute("SELECT voltage, extra FROM sensor_readings ORDER BY ts").fetchall() == [(230.5, None), (1.0, {"f": 50.0})]


def test_a_dead_lettered_row_is_in_a_replayable_form() -> None:
    from gridmon.domain.readings import Reading, parse_reading
    from gridmon.domain.screen import row_payload, row_topic

    row = ("dev_r", T0, 231.5, 4.5, 36.0, {"pf": 0.9})
    assert row_topic(row) == "grid/sensors/dev_r"
    assert parse_reading(row_topic(row), row_payload(row), T0 + 1) == Reading("dev_r", T0, 231.5, 4.5, 36.0, {"pf": 0.9})


def test_an_oversized_payload_travels_and_is_kept_as_a_prefix_its_size_and_hash(db: psycopg.Connection) -> None:
    import base64
    import hashlib

    from gridmon.domain.wire import decode_dead
    from gridmon.jobs.ingest import store_batch

    payload = b'{"voltage": 1' + b"0" * (1024 * 1024) + b"}"
    item = encode_dead(T0, "grid/sensors/big", payload, Rejection("too_large", "payload is 1 MB"), keep_bytes=8192)
    assert len(base64.b64decode(item[2])) == 8192  # what crosses the Celery broker
    letter = decode_dead(item)
    assert (letter.size, letter.sha256, letter.truncated) == (len(payload), hashlib.sha256(payload).digest(), True)
    store_batch([], [item])
    stored = db.execute("SELECT length(payload), payload_size, payload_sha256 FROM dead_letters").fetchone()
    assert stored == (8192, len(payload), hashlib.sha256(payload).digest())
