"""Done-when of issue 14, end to end: readings a broker drops are counted, and only those.

A private Mosquitto with the stock per-client queue (`max_queued_messages 1000`) drops most of a
burst published while the bridge is down; the devices' `seq` makes ingest count exactly what is
absent from the table, and the `data_gap` check raises its alert. The project's lossless broker
settings lose nothing, and nothing is reported missing.
"""

from __future__ import annotations

import logging
import time

import orjson
import psycopg
import pytest

from gridmon.alerts.gaps import check_gaps
from gridmon.bench.stack import IngestStack
from gridmon.storage.seq_gaps import missing_total
from tests.pipeline_helpers import T0, publish, running_stack

pytestmark = pytest.mark.slow

DEVICES = 5
log = logging.getLogger(__name__)


def seq_payloads(first: int, count: int, start: float) -> list[tuple[str, bytes]]:
    """`count` readings per device, seq first … first+count-1, one device after another per step."""
    out = []
    for k in range(first, first + count):
        for d in range(DEVICES):
            device = f"gap{d:02d}"
            doc = {"timestamp": start + k * 0.01 + d * 0.001, "voltage": 230.0, "current": 4.0, "temperature": 35.0,
                   "seq": k}
            out.append((f"grid/sensors/{device}", orjson.dumps(doc)))
    return out


def settle(stack: IngestStack, quiet_s: float = 3.0, timeout: float = 120.0) -> int:
    """Rows stored once the count has not changed for `quiet_s`."""
    deadline = time.monotonic() + timeout
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        now = stack.stored()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return now
        time.sleep(0.3)
    return last


def run_burst(stack: IngestStack) -> tuple[int, int]:
    """Readings published with the bridge up, then a burst with it down, then more with it up.
    Returns (published, stored)."""
    before = seq_payloads(0, 100, T0)
    burst = seq_payloads(100, 1000, T0)  # 5,000 messages for the bridge's queue
    after = seq_payloads(1100, 100, T0)
    publish(stack, before, client_id="gap-pub-1")
    stack.wait_for_rows(len(before), 60)
    stack.stop_bridge()
    publish(stack, burst, client_id="gap-pub-2")
    stack.start_bridge()
    time.sleep(2.0)  # the bridge resubscribes (its session persists) before the tail is published
    publish(stack, after, client_id="gap-pub-3")
    stored = settle(stack)
    return len(before) + len(burst) + len(after), stored


@pytest.mark.parametrize("lossy", [True, False], ids=["stock-queue-1000", "lossless"])
def test_missing_readings_equal_what_the_broker_dropped(
    lossy: bool, migrated_database: str, db: psycopg.Connection
) -> None:
    settings = {"max_queued_messages": "1000"} if lossy else {}
    with running_stack(migrated_database, workers=1, mosquitto_settings=settings) as stack:
        published, stored = run_burst(stack)
    absent = published - stored
    missing = missing_total(db)
    log.info("published=%d stored=%d absent=%d readings_missing=%d", published, stored, absent, missing)
    with db.transaction():
        events = check_gaps(db, share=0.05, window_s=10 * 365 * 86400, min_missing=10, now=T0 + 60)
    if lossy:
        assert absent > 1000, f"the stock queue should have dropped most of the burst ({absent} absent)"
        assert abs(missing - absent) <= 0.01 * absent, (missing, absent)
        assert {e.device_id for e in events if e.event == "opened"} == {f"gap{d:02d}" for d in range(DEVICES)}
        assert db.execute("SELECT count(*) FROM alerts WHERE kind = 'data_gap' AND state = 'open'").fetchone() == (
            DEVICES,
        )
    else:
        assert (absent, missing, events) == (0, 0, [])
