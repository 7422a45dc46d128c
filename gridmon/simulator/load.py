"""Load generation for benchmarks: healthy payloads and paced QoS 1 publishing.

`make_load_payloads` yields valid readings stamped when they are pulled; `publish_readings`
pulls them only when due and when the in-flight window has room, so every reading's timestamp is
its publish time (what publish→committed latency measurements need).
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import orjson

from gridmon.simulator.device import VALUE_DECIMALS, load_cycle_scalar, make_profile
from gridmon.simulator.payload import TOPIC_PREFIX, IsoStamper, topic_for
from gridmon.simulator.publisher import MqttPublisher

_CHUNK = 4096


@dataclass(frozen=True)
class PublishStats:
    """Outcome of `publish_readings`: `count` messages acknowledged by the broker in `seconds`."""

    count: int
    seconds: float
    rate: float
    sent: int = 0
    dropped: int = 0
    reconnects: int = 0


def make_load_payloads(
    count: int | None,
    devices: int = 10,
    seed: int = 0,
    start_ts: float | None = None,
    *,
    step_s: float = 0.001,
    prefix: str = TOPIC_PREFIX,
    clock: Callable[[], float] = time.time,
    seq: bool = False,
) -> Iterator[tuple[str, bytes]]:
    """`count` (None = endless) valid, healthy readings, round-robin over `devices` sensors.

    Values follow the simulator's device model and are drawn in vectorised chunks; the timestamp
    is taken when each payload is created, i.e. when the consumer asks for the next one — a
    publisher that pulls lazily stamps each reading right before publishing it (what latency
    measurements need). Timestamps are strictly increasing, so (device_id, timestamp) is unique.
    With `start_ts`, timestamps are `start_ts + k * step_s` instead: fully reproducible.
    With `seq`, each payload carries its device's reading counter (`seq`, 0, 1, 2, …).
    """
    if devices < 1:
        raise ValueError("devices must be >= 1")
    rng = np.random.default_rng((seed, 3))
    profiles = [make_profile(k, rng) for k in range(devices)]
    topics = [topic_for(p.device_id, prefix) for p in profiles]
    base = np.array([[p.voltage, p.current, p.temperature] for p in profiles])
    sigma = np.array([profiles[0].noise_voltage, profiles[0].noise_current, profiles[0].noise_temperature])
    ids = [p.device_id for p in profiles]
    stamp = IsoStamper()
    produced = 0
    last_us = 0
    while count is None or produced < count:
        size = _CHUNK if count is None else min(_CHUNK, count - produced)
        # The daily cycle moves slowly: evaluating it once per chunk is exact to well under σ.
        load = load_cycle_scalar(clock() if start_ts is None else start_ts + produced * step_s)
        cycle = np.array([-1.0 * load, 0.8 * load, 3.0 * load])
        device = (produced + np.arange(size)) % devices
        values = np.round(base[device] + cycle + rng.normal(0.0, 1.0, (size, 3)) * sigma, VALUE_DECIMALS)
        values[:, 1] = np.maximum(values[:, 1], 0.0)
        rows = values.tolist()
        for k, d in enumerate(device.tolist()):
            if start_ts is None:
                us = int(clock() * 1_000_000)
                us = us if us > last_us else last_us + 1
                last_us = us
            else:
                us = round((start_ts + (produced + k) * step_s) * 1_000_000)
            v, i, t = rows[k]
            payload = {"device_id": ids[d], "timestamp": stamp(us), "voltage": v, "current": i, "temperature": t}
            if seq:
                payload["seq"] = (produced + k) // devices % 2**32
            yield topics[d], orjson.dumps(payload)
        produced += size


def publish_readings(
    payloads: Iterable[tuple[str, bytes]],
    *,
    host: str,
    port: int,
    rate: float | None = None,
    client_id: str | None = None,
    username: str | None = None,
    password: str | None = None,
    qos: int = 1,
    max_inflight: int = 1000,
    connect_timeout: float = 10.0,
    flush_timeout: float = 60.0,
    stop: threading.Event | None = None,
) -> PublishStats:
    """Publish `(topic, payload)` pairs at `rate` messages/s (None = as fast as acknowledged).

    Payloads are pulled from the iterable only when due and when the in-flight window has room,
    so a lazy source (`make_load_payloads`) stamps each one right before it goes out. Nothing is
    dropped: if the broker goes away the publisher waits for it. `seconds` runs from the first
    publish to the last PUBACK.
    """
    publisher = MqttPublisher(
        host=host,
        port=port,
        client_id=client_id or f"gridmon-load-{os.getpid()}-{uuid.uuid4().hex[:6]}",
        username=username,
        password=password,
        qos=qos,
        max_inflight=max_inflight,
        max_backlog=max(max_inflight, 1000),
        block_when_full=True,
    )
    publisher.connect(connect_timeout)
    source = iter(payloads)
    started = time.perf_counter()
    try:
        if rate is None:
            n = 0
            while publisher.wait_for_room():
                item = next(source, None)
                if item is None or (stop is not None and n % 1024 == 0 and stop.is_set()):
                    break
                publisher.publish(*item)
                n += 1
        else:
            _paced(publisher, source, rate, started, stop)
        publisher.flush(flush_timeout)
        seconds = time.perf_counter() - started
    finally:
        publisher.close()
    count = publisher.acked
    return PublishStats(
        count=count,
        seconds=seconds,
        rate=count / seconds if seconds > 0 else 0.0,
        sent=publisher.sent,
        dropped=publisher.dropped,
        reconnects=publisher.reconnects,
    )


def _paced(
    publisher: MqttPublisher,
    source: Iterable[tuple[str, bytes]],
    rate: float,
    started: float,
    stop: threading.Event | None,
) -> None:
    """Publish message k at `started + k / rate`; when behind, catch up in bursts."""
    if rate <= 0:
        raise ValueError("rate must be positive")
    it = iter(source)
    sent = 0
    while stop is None or not stop.is_set():
        due = int((time.perf_counter() - started) * rate) + 1 - sent
        if due <= 0:
            publisher.service(min(max(sent / rate - (time.perf_counter() - started), 0.0), 0.05))
            continue
        for _ in range(min(due, 1000)):
            publisher.wait_for_room()
            item = next(it, None)
            if item is None:
                return
            publisher.publish(*item)
            sent += 1
