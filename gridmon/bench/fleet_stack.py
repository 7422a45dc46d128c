"""The fleet benchmark's private stack: the ingest stack (`stack.py`: Mosquitto, Redis, database,
ingest worker, bridge) plus scan workers, a maintenance worker, beat and the API — every
process of a deployment, each started as gridmon starts it, nothing of a running gridmon touched."""

from __future__ import annotations

import sys
import time
import urllib.request
from dataclasses import dataclass, field
from subprocess import Popen

import orjson
import psycopg
from celery import Celery
from celery.exceptions import TaskRevokedError
from kombu import Exchange, Queue
from kombu.serialization import register

from gridmon.bench.stack import IngestStack
from gridmon.services import procs
from gridmon.services.mosquitto import free_port
from gridmon.storage import bench_fleet

# The benchmark is a client of the private broker and does not import the Celery app (a process of
# its own layer): the exchange, queue names and reply serializer are gridmon.celery's, restated.
EXCHANGE = "gridmon"
QUEUE_MAINTENANCE = "maintenance"
QUEUES = ("ingest", "scan", "ml", QUEUE_MAINTENANCE)
SERIALIZER = "orjson"
register(SERIALIZER, orjson.dumps, orjson.loads, content_type="application/x-orjson", content_encoding="binary")

# Beat would also run the maintenance predictions; the benchmark drives (and times) those itself.
_BEAT_PREDICT_OFF_S = 7 * 86400


@dataclass
class FleetOptions:
    scan_workers: int
    scan_interval_s: float
    shards: int
    ingest_workers: int = 2


@dataclass
class FleetStack(IngestStack):
    """`IngestStack` plus the analytics processes and the API."""

    options: FleetOptions = field(default_factory=lambda: FleetOptions(1, 5.0, 16))

    def __post_init__(self) -> None:
        super().__post_init__()
        options = self.options
        self.workers = options.ingest_workers
        self.api_port = free_port()
        self.extra_env.update(
            {
                "GRIDMON_SCAN_SHARDS": str(options.shards),
                "GRIDMON_SCAN_INTERVAL_S": str(options.scan_interval_s),
                "GRIDMON_PREDICT_INTERVAL_S": str(_BEAT_PREDICT_OFF_S),
                "GRIDMON_API_PORT": str(self.api_port),
                "GRIDMON_API_HOST": "127.0.0.1",
            }
        )
        self.scan_worker: Popen[bytes] | None = None
        self.maintenance_worker: Popen[bytes] | None = None
        self.beat: Popen[bytes] | None = None
        self.api: Popen[bytes] | None = None
        self._client: Celery | None = None

    def reset(self) -> None:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            bench_fleet.reset_fleet_tables(conn)

    def start_analytics(self) -> None:
        """Scan workers, the maintenance worker and the API; waits until all answer."""
        env = self.env(GRIDMON_READ_TOKEN="")
        self.scan_worker = procs.start_worker(
            self.env(GRIDMON_WORKER_METRICS_PORT=free_port()),
            self.workdir / "scan-worker.log",
            queues="scan",
            concurrency=self.options.scan_workers,
            hostname="scan@%h",
        )
        self.maintenance_worker = procs.start_worker(
            self.env(GRIDMON_WORKER_METRICS_PORT=free_port()),
            self.workdir / "maintenance-worker.log",
            queues=QUEUE_MAINTENANCE,
            concurrency=1,
            hostname="maintenance@%h",
        )
        self.api = procs.spawn([sys.executable, "-m", "gridmon.cli.main", "api"], env, self.workdir / "api.log")
        self._wait_api()
        self._wait_workers(3)

    def start_beat(self) -> None:
        self.beat = procs.start_beat(self.env(), self.workdir / "beat.log", self.workdir / "celerybeat-schedule")

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def _wait_api(self, timeout: float = 60.0) -> None:
        def up() -> bool:
            self._check_alive()
            try:
                with urllib.request.urlopen(self.api_url + "/health", timeout=2) as resp:
                    return bool(resp.status == 200)
            except OSError:
                return False

        if not procs.wait_until(up, timeout, 0.2):
            raise RuntimeError(f"the API did not answer within {timeout:.0f}s; logs in {self.workdir}")

    def _wait_workers(self, expected: int, timeout: float = 90.0) -> None:
        app = self.client()

        def all_ready() -> bool:
            self._check_alive()
            return len(app.control.ping(timeout=1.0) or []) >= expected

        if not procs.wait_until(all_ready, timeout, 0.5):
            raise RuntimeError(f"Celery workers not ready within {timeout:.0f}s; logs in {self.workdir}")

    def _check_alive(self) -> None:
        for name in ("worker", "bridge", "scan_worker", "maintenance_worker", "api", "beat"):
            proc = getattr(self, name, None)
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"the {name} process exited (code {proc.returncode}); logs in {self.workdir}")

    def client(self) -> Celery:
        """A Celery client of the private broker with gridmon's queues (sends, waits for results)."""
        if self._client is None:
            exchange = Exchange(EXCHANGE, type="direct")
            app = Celery("gridmon-bench", broker=self.redis.url, backend=self.redis.url)
            app.conf.update(
                task_queues=[Queue(name, exchange, routing_key=name) for name in QUEUES],
                task_serializer="json",
                accept_content=["json", SERIALIZER],
                result_serializer="json",
                broker_connection_retry_on_startup=True,
            )
            self._client = app
        return self._client

    def predict_cycle(self, shards: int, expires: float) -> tuple[float, int]:
        """One maintenance cycle as beat's `predict_all` enqueues it: one `predict_shard` per
        shard, each expiring after `expires` seconds (beat's predict interval). Returns (seconds
        from enqueueing to the last shard's outcome, shards that expired unrun)."""
        app = self.client()
        queue = Queue(QUEUE_MAINTENANCE, Exchange(EXCHANGE, type="direct"), routing_key=QUEUE_MAINTENANCE)
        started = time.perf_counter()
        results = [
            app.send_task("workers.maintenance.predict_shard", args=[s], queue=queue, expires=expires)
            for s in range(shards)
        ]
        expired = 0
        for result in results:
            try:
                result.get(timeout=expires + 600.0, propagate=True)
            except TaskRevokedError:
                expired += 1
        return time.perf_counter() - started, expired

    def pids(self) -> dict[str, list[int]]:
        """Root process id of each kind (children are found by the CPU tracker)."""
        kinds = {
            "bridge": self.bridge,
            "ingest_worker": self.worker,
            "scan_worker": self.scan_worker,
            "maintenance_worker": self.maintenance_worker,
            "beat": self.beat,
            "api": self.api,
            "mosquitto": self.mosquitto.proc,
            "redis": self.redis.proc,
        }
        return {kind: [proc.pid] for kind, proc in kinds.items() if proc is not None}

    def stop(self) -> None:
        for proc in (self.beat, self.api, self.scan_worker, self.maintenance_worker):
            procs.stop(proc)
        super().stop()
