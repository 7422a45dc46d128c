"""Run the live simulator: schedule the fleet's readings in real time and hand them to a sink.

Two schedules:
- natural (default): each sensor reports every 1–3 s, as in the original design;
- load (`rate`): `rate` readings per second in total, round-robin over the sensors.

The sink is either an `MqttPublisher` (QoS 1, reconnecting, keeps readings made while the broker
is away) or a `PrintSink` (dry run). Stops on `count` readings, `duration_s`, or the `stop`
event (the CLI sets it on Ctrl-C / SIGTERM); then ends faults in progress, writes their truth,
and waits briefly for the broker to acknowledge what is in flight.
"""

from __future__ import annotations

import heapq
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from gridmon.simulator.catalogue import DEFAULT_TIME_COMPRESSION, FAULT_KINDS, Fault
from gridmon.simulator.demo import Degradation
from gridmon.simulator.fleet import Fleet
from gridmon.simulator.payload import TOPIC_PREFIX, encode_reading, topic_for
from gridmon.simulator.truth import TruthWriter

log = logging.getLogger(__name__)


class Sink(Protocol):
    """Where readings go: `publish` must not block for long; `service` waits doing I/O."""

    def publish(self, topic: str, payload: bytes) -> bool: ...

    def service(self, timeout: float = 0.0) -> None: ...

    def flush(self, timeout: float | None = None) -> bool: ...

    def close(self) -> None: ...


class PrintSink:
    """Dry run: each payload becomes one line for `write` (the CLI passes `click.echo`)."""

    def __init__(self, write: Callable[[str], None]) -> None:
        self._write = write

    def publish(self, topic: str, payload: bytes) -> bool:
        self._write(payload.decode())
        return True

    def service(self, timeout: float = 0.0) -> None:
        if timeout > 0:
            time.sleep(timeout)

    def flush(self, timeout: float | None = None) -> bool:
        return True

    def close(self) -> None:
        return None


@dataclass
class SimulationConfig:
    """What to simulate and for how long."""

    devices: int = 10
    seed: int = 0
    fleet_seed: int | None = None
    """Who the devices are (default: `seed`); see `gridmon.simulator.identity`."""
    degradation: Degradation | None = None
    anomaly_rate: float = 0.01
    kinds: tuple[str, ...] = FAULT_KINDS
    time_compression: float = DEFAULT_TIME_COMPRESSION
    daily_cycle: bool = True
    interval_s: tuple[float, float] = (1.0, 3.0)
    rate: float | None = None
    count: int | None = None
    duration_s: float | None = None
    topic_prefix: str = TOPIC_PREFIX
    flush_timeout_s: float = 10.0


@dataclass
class SimulationSummary:
    """What a run did (the CLI prints it)."""

    readings: int = 0
    published: int = 0
    dropped: int = 0
    unacked: int = 0
    anomalous_readings: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    rate: float = 0.0
    seed: int = 0
    fleet_seed: int | None = None
    reconnects: int = 0
    truth_path: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Run:
    def __init__(self, config: SimulationConfig, sink: Sink, truth: TruthWriter | None) -> None:
        self.config, self.sink, self.truth = config, sink, truth
        self.fleet = Fleet(
            devices=config.devices,
            seed=config.seed,
            anomaly_rate=config.anomaly_rate,
            kinds=config.kinds,
            time_compression=config.time_compression,
            daily_cycle=config.daily_cycle,
            fleet_seed=config.fleet_seed,
            degradation=config.degradation,
        )
        self.topics = [topic_for(d, config.topic_prefix) for d in self.fleet.device_ids]
        self.seqs = [0] * len(self.topics)  # each device's reading counter (the payload's `seq`)
        self.produced = 0
        self.published = 0
        self.faults: list[Fault] = []

    def emit(self, index: int, now: float) -> None:
        r = self.fleet.reading(index, now)
        seq = self.seqs[index]
        self.seqs[index] = seq + 1
        self.published += self.sink.publish(
            self.topics[index], encode_reading(r.device_id, r.ts, r.voltage, r.current, r.temperature, seq)
        )
        self.produced += 1
        for fault in self.fleet.take_finished():
            self.record(fault)

    def record(self, fault: Fault) -> None:
        self.faults.append(fault)
        if self.truth is not None:
            self.truth.write(fault)
        log.debug("fault device=%s kind=%s start=%.3f end=%.3f", fault.device_id, fault.kind, fault.start, fault.end)

    def remaining(self) -> int | None:
        return None if self.config.count is None else self.config.count - self.produced


def run_simulation(
    config: SimulationConfig,
    sink: Sink,
    *,
    truth: TruthWriter | None = None,
    stop: threading.Event | None = None,
    clock: Callable[[], float] = time.time,
) -> SimulationSummary:
    """Simulate until `config.count` readings, `config.duration_s`, or `stop` is set."""
    lo, hi = config.interval_s
    if not 0 < lo <= hi:
        raise ValueError("interval_s must be (min, max) with 0 < min <= max")
    if config.rate is not None and config.rate <= 0:
        raise ValueError("rate must be positive")
    stop = stop or threading.Event()
    run = _Run(config, sink, truth)
    started = clock()
    deadline = None if config.duration_s is None else started + config.duration_s
    schedule_rnd = random.Random(f"{config.seed}:schedule")
    heap = [(started + schedule_rnd.uniform(0.0, hi), k) for k in range(config.devices)]
    heapq.heapify(heap)
    while not stop.is_set():
        remaining = run.remaining()
        now = clock()
        if (remaining is not None and remaining <= 0) or (deadline is not None and now >= deadline):
            break
        if config.rate is not None:
            due = int((now - started) * config.rate) + 1 - run.produced
            if due <= 0:
                sink.service(min(max(run.produced / config.rate - (now - started), 0.0), 0.05))
                continue
            for _ in range(min(due, 1000, remaining if remaining is not None else due)):
                run.emit(run.produced % config.devices, clock())
        else:
            at, index = heap[0]
            if at > now:
                sink.service(min(at - now, 0.1))
                continue
            heapq.heapreplace(heap, (max(at + schedule_rnd.uniform(lo, hi), now), index))
            run.emit(index, now)
    for fault in run.fleet.finish_all():
        run.record(fault)
    acked_all = sink.flush(config.flush_timeout_s)
    seconds = clock() - started
    sink.close()
    stats = _sink_stats(sink)
    if not acked_all:
        log.warning("simulator stopped with unacknowledged readings unacked=%d", stats.get("unacked", 0))
    by_kind = {kind: sum(1 for f in run.faults if f.kind == kind) for kind in config.kinds}
    return SimulationSummary(
        readings=run.produced,
        published=run.published,
        dropped=stats.get("dropped", 0),
        unacked=stats.get("unacked", 0),
        anomalous_readings=run.fleet.anomalous_readings,
        faults={k: n for k, n in by_kind.items() if n},
        seconds=round(seconds, 3),
        rate=round(run.produced / seconds, 1) if seconds > 0 else 0.0,
        seed=config.seed,
        fleet_seed=config.seed if config.fleet_seed is None else config.fleet_seed,
        reconnects=stats.get("reconnects", 0),
        truth_path=None if truth is None else str(truth.path),
    )


def _sink_stats(sink: Sink) -> dict[str, int]:
    return {name: int(getattr(sink, name)) for name in ("dropped", "unacked", "reconnects") if hasattr(sink, name)}
