"""API-side gauges of the Celery broker: messages waiting in each gridmon queue, and (Redis
broker) how long the oldest one has waited.

What the "ingest lagging" alerting rules read. With a Redis broker a queue is a list per priority
step (kombu pushes on the left and pops on the right), so its depth is the lists' lengths and its
oldest message is the last element, whose `gridmon_sent_at` header the publisher stamped
(`gridmon.celery.SENT_AT_HEADER`). With RabbitMQ the depth comes from a passive queue declare;
RabbitMQ cannot show a message without taking it, so there is no age gauge there. Cached for a
few seconds like the table gauges; a broker that does not answer yields `gridmon_api_broker_up 0`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

import orjson
import redis
from kombu import Connection
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gridmon.celery import QUEUES, SENT_AT_HEADER
from gridmon.config import get_settings
from gridmon.redis_client import redis_client

log = logging.getLogger(__name__)

CACHE_S = 5.0
_PRIORITY_SEP = "\x06\x16"  # kombu's Redis transport: "<queue>\x06\x16<priority>" for priorities above 0
_PRIORITY_STEPS = (0, 3, 6, 9)


def _redis_queue(client: redis.Redis, queue: str, now: float) -> tuple[int, float | None]:
    keys = [queue if step == 0 else f"{queue}{_PRIORITY_SEP}{step}" for step in _PRIORITY_STEPS]
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.llen(key)
        pipe.lindex(key, -1)
    replies = pipe.execute()
    depth = sum(int(n) for n in replies[0::2])
    ages = []
    for raw in replies[1::2]:
        if raw is None:
            continue
        try:
            sent = orjson.loads(raw).get("headers", {}).get(SENT_AT_HEADER)
        except (orjson.JSONDecodeError, AttributeError):
            continue
        if isinstance(sent, int | float):
            ages.append(max(now - float(sent), 0.0))
    return depth, (max(ages) if ages else (0.0 if depth == 0 else None))


def queue_stats(broker_url: str) -> dict[str, tuple[int, float | None]]:
    """queue → (messages waiting, age in seconds of the oldest or None when unknown)."""
    now = time.time()
    if broker_url.startswith(("redis://", "rediss://")):
        client = redis_client(broker_url)
        try:
            return {queue: _redis_queue(client, queue, now) for queue in QUEUES}
        finally:
            client.close()
    out: dict[str, tuple[int, float | None]] = {}
    with Connection(broker_url, connect_timeout=2) as conn:
        channel = conn.default_channel
        for queue in QUEUES:
            try:
                _, depth, _ = channel.queue_declare(queue=queue, passive=True)
            except Exception:
                channel = conn.channel()
                depth = 0
            out[queue] = (int(depth), None)
    return out


class BrokerCollector(Collector):
    """`gridmon_celery_queue_messages{queue}` and `gridmon_celery_queue_oldest_message_age_seconds{queue}`."""

    def __init__(self, broker_url: str | None = None) -> None:
        self.broker_url = broker_url or str(get_settings().broker_url)
        self._lock = threading.Lock()
        self._stats: dict[str, tuple[int, float | None]] = {}
        self._ok = True
        self._at = float("-inf")

    def _refresh(self) -> None:
        try:
            self._stats, self._ok = queue_stats(self.broker_url), True
        except Exception as exc:
            log.warning("broker queue query failed error=%s", exc)
            self._stats, self._ok = {}, False
        self._at = time.monotonic()

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            if time.monotonic() - self._at >= CACHE_S:
                self._refresh()
            stats, ok = dict(self._stats), self._ok
        up = GaugeMetricFamily("gridmon_api_broker_up", "1 when the last Celery broker query succeeded")
        up.add_metric([], 1 if ok else 0)
        yield up
        depth = GaugeMetricFamily("gridmon_celery_queue_messages", "Task messages waiting in a queue", labels=["queue"])
        age = GaugeMetricFamily(
            "gridmon_celery_queue_oldest_message_age_seconds",
            "How long the oldest waiting message of a queue has waited (Redis broker)",
            labels=["queue"],
        )
        for queue, (count, oldest) in sorted(stats.items()):
            depth.add_metric([queue], count)
            if oldest is not None:
                age.add_metric([queue], oldest)
        yield depth
        yield age
