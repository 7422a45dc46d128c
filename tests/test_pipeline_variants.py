"""The same end-to-end path with the other supported choices: RabbitMQ as the Celery broker, and an
MQTT 3.1.1 bridge session (instead of MQTT 5)."""

from __future__ import annotations

import contextlib

import psycopg
import pytest
from amqp.exceptions import NotFound
from kombu import Connection

from tests.pipeline_helpers import assert_exactly_stored, publish, reading_payloads, running_stack

pytestmark = pytest.mark.slow

AMQP_URL = "amqp://guest:guest@127.0.0.1:5672//"


def _purge_amqp_ingest_queue() -> None:
    with Connection(AMQP_URL, connect_timeout=5) as conn:
        channel = conn.channel()
        with contextlib.suppress(NotFound):  # the queue does not exist yet on a fresh broker
            channel.queue_purge("ingest")


def test_rabbitmq_as_celery_broker(migrated_database: str, db: psycopg.Connection) -> None:
    _purge_amqp_ingest_queue()
    with running_stack(migrated_database, workers=1, broker_url=AMQP_URL) as stack:
        messages = reading_payloads(3000)
        publish(stack, [(t, p) for t, p, _ in messages])
        assert_exactly_stored(stack, messages, 60)


def test_mqtt_311_bridge_session(migrated_database: str, db: psycopg.Connection) -> None:
    with running_stack(migrated_database, workers=1, bridge_env={"GRIDMON_MQTT_PROTOCOL": 4}) as stack:
        messages = reading_payloads(3000)
        publish(stack, [(t, p) for t, p, _ in messages])
        assert_exactly_stored(stack, messages, 60)
