"""The same end-to-end path with the other supported choices: RabbitMQ as the Celery broker, and an
MQTT 3.1.1 bridge session (instead of MQTT 5)."""

from __future__ import annotations

import contextlib

import psycopg
import pytest
from kombu import Connection

from gridmon.bench.stack import IngestStack
from tests.pipeline_helpers import publish, reading_payloads, stored_rows

pytestmark = pytest.mark.slow

AMQP_URL = "amqp://guest:guest@127.0.0.1:5672//"


def _purge_amqp_ingest_queue() -> None:
    with Connection(AMQP_URL, connect_timeout=5) as conn:
        channel = conn.channel()
        with contextlib.suppress(Exception):  # the queue does not exist yet on a fresh broker
            channel.queue_purge("ingest")


def test_rabbitmq_as_celery_broker(migrated_database: str, db: psycopg.Connection) -> None:
    _purge_amqp_ingest_queue()
    s = IngestStack(database_url=migrated_database, workers=1, broker_url=AMQP_URL)
    try:
        s.start()
        s.start_bridge()
        s.wait_flowing()
        messages = reading_payloads(3000)
        publish(s, [(t, p) for t, p, _ in messages])
        assert s.wait_for_rows(3000, 60)[0] == 3000
        assert sorted(stored_rows(migrated_database)) == sorted(e for _, _, e in messages)
    finally:
        s.stop()


def test_mqtt_311_bridge_session(migrated_database: str, db: psycopg.Connection) -> None:
    s = IngestStack(database_url=migrated_database, workers=1)
    try:
        s.start()
        s.start_extra_bridge("bridge-v311", GRIDMON_MQTT_PROTOCOL=4)
        s.wait_flowing()
        messages = reading_payloads(3000)
        publish(s, [(t, p) for t, p, _ in messages])
        assert s.wait_for_rows(3000, 60)[0] == 3000
        assert sorted(stored_rows(migrated_database)) == sorted(e for _, _, e in messages)
    finally:
        s.stop()
