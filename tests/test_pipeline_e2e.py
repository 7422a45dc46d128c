"""End to end over the real path: MQTT (project-config Mosquitto) → bridge → Celery → PostgreSQL."""

from __future__ import annotations

import re

import orjson
import psycopg
import pytest

from gridmon.bench.stack import IngestStack
from tests.pipeline_helpers import T0, assert_exactly_stored, publish, reading_payloads, running_stack

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stack(migrated_database: str):
    with running_stack(migrated_database, workers=2) as s:
        yield s


@pytest.fixture()
def clean(stack: IngestStack, db: psycopg.Connection) -> IngestStack:
    return stack


def test_n_readings_in_same_n_rows_out_values_exact(clean: IngestStack) -> None:
    messages = reading_payloads(5000)
    stats = publish(clean, [(t, p) for t, p, _ in messages])
    assert stats.count == 5000
    assert_exactly_stored(clean, messages, 60)


def test_duplicate_reading_stored_once(clean: IngestStack) -> None:
    before = clean.worker_counter("gridmon_readings_duplicate_total")
    topic, payload, _ = reading_payloads(1)[0]
    publish(clean, [(topic, payload)] * 3)
    clean.wait_for_rows(1, 30)
    # wait until the worker saw all three copies
    deadline_ok = _wait(lambda: clean.worker_counter("gridmon_readings_duplicate_total") - before >= 2, 30)
    assert deadline_ok
    assert clean.stored() == 1


def test_bad_inputs_dead_lettered_good_readings_stored(clean: IngestStack, db: psycopg.Connection) -> None:
    good = reading_payloads(200, device_prefix="good")
    bad = [
        (b"not json", "not_json"),
        (b"[1,2]", "not_object"),
        (orjson.dumps({"device_id": "b1", "timestamp": T0, "voltage": 1.0, "current": 1.0}), "missing_field"),
        (
            orjson.dumps({"device_id": "b2", "timestamp": T0, "voltage": "x", "current": 1.0, "temperature": 1.0}),
            "non_numeric",
        ),
        (b'{"device_id":"b3","timestamp":1790000000,"voltage":NaN,"current":1,"temperature":1}', "non_finite"),
        (
            orjson.dumps({"device_id": "bad id!", "timestamp": T0, "voltage": 1.0, "current": 1.0, "temperature": 1.0}),
            "bad_device_id",
        ),
        (
            orjson.dumps({"device_id": "b4", "timestamp": T0, "voltage": 5000.0, "current": 1.0, "temperature": 1.0}),
            "out_of_physical_range",
        ),
        (
            orjson.dumps({"device_id": "b5", "timestamp": "soon", "voltage": 1.0, "current": 1.0, "temperature": 1.0}),
            "bad_timestamp",
        ),
        (
            orjson.dumps({"device_id": "b6", "timestamp": 4e9, "voltage": 1.0, "current": 1.0, "temperature": 1.0}),
            "future_timestamp",
        ),
        (b"{" + b'"k":1,' * 12000 + b'"z":1}', "too_large"),
    ]
    stream: list[tuple[str, bytes]] = []
    for k, (topic, payload, _) in enumerate(good):
        stream.append((topic, payload))
        if k % 20 == 0 and k // 20 < len(bad):
            # On the topic of the device the payload names (a payload naming another device is
            # a device_mismatch of its own), else on a topic of its own.
            named = re.search(rb'"device_id":"(b\d)"', bad[k // 20][0])
            stream.append((f"grid/sensors/{named.group(1).decode() if named else 'broken'}", bad[k // 20][0]))
    publish(clean, stream)
    assert clean.wait_for_rows(200, 60)[0] == 200
    assert _wait(lambda: db.execute("SELECT count(*) FROM dead_letters").fetchone() == (len(bad),), 30)
    reasons = sorted(r for (r,) in db.execute("SELECT reason FROM dead_letters"))
    assert reasons == sorted(reason for _, reason in bad)
    payloads = {bytes(p) for (p,) in db.execute("SELECT payload FROM dead_letters")}
    # The exact bytes are kept for replay, up to GRIDMON_DEAD_LETTER_PAYLOAD_BYTES (the 72 KB one: its prefix).
    assert payloads == {payload[:8192] for payload, _ in bad}


def test_out_of_safe_range_readings_are_stored(clean: IngestStack, db: psycopg.Connection) -> None:
    docs = [
        {"device_id": "hot", "timestamp": T0, "voltage": 230.0, "current": 4.0, "temperature": 95.0},
        {"device_id": "spike", "timestamp": T0, "voltage": 262.5, "current": 4.0, "temperature": 35.0},
        {"device_id": "sag", "timestamp": T0, "voltage": 170.0, "current": 4.0, "temperature": 35.0},
        {"device_id": "surge", "timestamp": T0, "voltage": 230.0, "current": 31.0, "temperature": 35.0},
    ]
    publish(clean, [(f"grid/sensors/{d['device_id']}", orjson.dumps(d)) for d in docs])
    assert clean.wait_for_rows(4, 30)[0] == 4
    assert db.execute("SELECT count(*) FROM dead_letters").fetchone() == (0,)


def _wait(predicate, timeout: float) -> bool:
    from gridmon.services.procs import wait_until

    return wait_until(predicate, timeout, interval=0.1)
