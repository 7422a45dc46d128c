"""A private ingest stack for the benchmark: its own Mosquitto (project config), Redis (Celery
broker), database, worker and bridge — nothing of a running gridmon is touched."""

from __future__ import annotations

import logging
import os
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import Popen

import psycopg

from gridmon.services import procs
from gridmon.services.mosquitto import MosquittoProcess, free_port
from gridmon.services.redis_server import RedisProcess
from gridmon.storage.db import migrate
from gridmon.storage.readings import count_readings, truncate_ingest_tables

log = logging.getLogger(__name__)


@dataclass
class IngestStack:
    """Everything the ingest path needs, started in a temporary directory."""

    database_url: str
    workers: int = 2
    broker_url: str | None = None
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="gridmon-bench-")))
    client_id: str = "gridmon-bench-bridge"
    extra_env: dict[str, str] = field(default_factory=dict)
    mosquitto_settings: dict[str, str] = field(default_factory=dict)  # e.g. a stock queue limit

    def __post_init__(self) -> None:
        self.mosquitto = MosquittoProcess(self.workdir / "mosquitto", settings=self.mosquitto_settings)
        self.redis = RedisProcess(self.workdir / "redis")
        self.worker_metrics_port = free_port()
        self.worker: Popen[bytes] | None = None
        self.bridge: Popen[bytes] | None = None
        self.extra_bridges: list[Popen[bytes]] = []

    def start(self) -> IngestStack:
        self.mosquitto.start()
        self.redis.start()
        migrate(self.database_url)
        self.truncate()
        env = self.env()
        self.worker = procs.start_worker(env, self.workdir / "worker.log", concurrency=self.workers)
        return self

    def env(self, **overrides: str | int) -> dict[str, str]:
        return procs.child_env(
            {
                "GRIDMON_DATABASE_URL": self.database_url,
                "GRIDMON_REDIS_URL": self.redis.url,
                "GRIDMON_BROKER_URL": self.broker_url or self.redis.url,
                "GRIDMON_MQTT_HOST": "127.0.0.1",
                "GRIDMON_MQTT_PORT": self.mosquitto.port,
                "GRIDMON_BRIDGE_METRICS_PORT": 0,
                "GRIDMON_WORKER_METRICS_PORT": self.worker_metrics_port,
                "GRIDMON_LOG_LEVEL": os.environ.get("GRIDMON_BENCH_LOG_LEVEL", "WARNING"),
                **self.extra_env,
                **overrides,
            }
        )

    def start_bridge(self) -> Popen[bytes]:
        self.bridge = procs.start_bridge(self.env(), self.workdir / "bridge.log", self.client_id)
        return self.bridge

    def stop_bridge(self) -> None:
        procs.stop(self.bridge)
        self.bridge = None

    def start_extra_bridge(self, client_id: str, **overrides: str | int) -> Popen[bytes]:
        """Another bridge (e.g. a second member of a shared subscription)."""
        proc = procs.start_bridge(self.env(**overrides), self.workdir / f"{client_id}.log", client_id)
        self.extra_bridges.append(proc)
        return proc

    def wait_flowing(self, timeout: float = 60.0) -> None:
        """Publish a probe reading until one is stored, then empty the tables.

        On a fresh broker a bridge's session exists only once it subscribed; a reading published
        before that has no subscriber — hence the repeat.
        """
        from gridmon.simulator.load import make_load_payloads, publish_readings

        deadline = time.monotonic() + timeout
        count = 0
        while count < 1 and time.monotonic() < deadline:
            procs_ = [self.worker, self.bridge, *self.extra_bridges]
            dead = [p for p in procs_ if p is not None and p.poll() is not None]
            if dead:
                raise RuntimeError(f"a stack process exited (code {dead[0].returncode}); logs in {self.workdir}")
            payloads = list(make_load_payloads(1, devices=1, seed=99))
            publish_readings(payloads, host="127.0.0.1", port=self.mosquitto.port, client_id="gridmon-probe")
            count, _ = self.wait_for_rows(1, 2.0)
        if count < 1:
            raise RuntimeError(f"ingest stack not flowing after {timeout:.0f}s; logs in {self.workdir}")
        self.wait_for_rows(10**9, 0.5)  # let stray probe copies land before emptying
        self.truncate()

    def stop(self) -> None:
        for proc in self.extra_bridges:
            procs.stop(proc)
        procs.stop(self.bridge)
        procs.stop(self.worker)
        self.redis.stop()
        self.mosquitto.stop()

    def truncate(self) -> None:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            truncate_ingest_tables(conn)

    def stored(self) -> int:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            return count_readings(conn)

    def worker_counter(self, name: str) -> float:
        """A counter from the worker's Prometheus endpoint (0 when not exported yet)."""
        url = f"http://127.0.0.1:{self.worker_metrics_port}/metrics"
        try:
            text = urllib.request.urlopen(url, timeout=5).read().decode()
        except OSError:
            return 0.0
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def wait_for_rows(self, expected: int, timeout: float) -> tuple[int, float]:
        """Poll until `expected` rows are stored; returns (rows, time.time() when seen)."""
        deadline = time.monotonic() + timeout
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            while True:
                count = count_readings(conn)
                seen = time.time()
                if count >= expected or time.monotonic() > deadline:
                    return count, seen
                time.sleep(0.02)
