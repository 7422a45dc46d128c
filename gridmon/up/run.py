"""`gridmon up`: pick the services, migrate, then run bridge, workers, beat, API, Flower, simulator.

Everything runs as children of this process (see `supervisor.py`); their logs go to
`<data_dir>/logs/<name>.log`, this process's own detailed log to `<data_dir>/logs/up.log`, and the
terminal shows a short human console (`gridmon.logsetup.configure_console`). The services are the
configured ones, or embedded servers started here under the data directory (`mode.py` decides,
`gridmon.services.embedded` runs them); the children learn which through GRIDMON_* variables.
One `up` per data directory at a time: the run lock is taken before anything starts, embedded
servers included.

With the simulator, the first start writes days of demo history first (`demo.py`). A stop runs in
dependency order — simulator, bridge, then the ingest worker once the ingest queue is drained
(`drain.py`), then the rest — and is recorded as a planned pipeline outage, closed at the next
start, so the devices' silence in between raises no `no_data` alert.
"""

from __future__ import annotations

import fcntl
import logging
import os
import secrets
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, TextIO
from urllib.parse import urlsplit

from gridmon.bridge.broker_check import check_broker
from gridmon.config import REPO_ROOT, Settings, get_settings, parts_for_log
from gridmon.logsetup import configure_console
from gridmon.storage import db, outages
from gridmon.storage.db import dispose_engine, migrate
from gridmon.up import demo
from gridmon.up.checks import check_all
from gridmon.up.drain import IngestDrain, IngestQueue
from gridmon.up.mode import Mode, configured_services, decide
from gridmon.up.status import StatusProbe, StatusReporter
from gridmon.up.supervisor import StopStep, Supervisor

if TYPE_CHECKING:
    from gridmon.services.embedded import EmbeddedServices

log = logging.getLogger(__name__)


class AlreadyRunning(RuntimeError):
    pass


def ensure_secrets(env_file: Path) -> list[str]:
    """Generate an admin token and a Flower password into `.env` on the first run."""
    created = []
    settings = get_settings()
    lines = []
    if not settings.admin_token:
        token = secrets.token_urlsafe(32)
        lines.append(f"GRIDMON_ADMIN_TOKEN={token}")
        created.append(f"admin token (Authorization: Bearer …): {token}")
    if not settings.flower_password:
        password = secrets.token_urlsafe(16)
        lines.append(f"GRIDMON_FLOWER_PASSWORD={password}")
        created.append(f"Flower login: {settings.flower_user} / {password}")
    if lines:
        with env_file.open("a") as fh:
            fh.write("\n".join(lines) + "\n")
        env_file.chmod(0o600)
        get_settings.cache_clear()
    return created


def announce_secrets(created: list[str], stream: TextIO | None = None) -> None:
    """Show generated secrets once, on the terminal, and never through logging: log lines end up
    in files and collectors. When the output is not a terminal (a service manager, a redirect),
    only say where the secrets are."""
    if not created:
        return
    out = stream if stream is not None else sys.stderr
    if out.isatty():
        out.write("generated on this first run (shown once; also saved in .env, mode 0600):\n")
        out.writelines(f"  {line}\n" for line in created)
    else:
        out.write(f"generated {len(created)} secret(s) on this first run; read them in .env (mode 0600)\n")
    out.flush()


class RunLock:
    """An exclusive lock on `<data_dir>/up.pid` for the life of one `up` (flock: the kernel drops it
    when the process dies, however it dies, so there are no stale locks to judge)."""

    def __init__(self, path: Path):
        self.path = path
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise AlreadyRunning(
                f"gridmon is already running (pid {other}, data in {self.path.parent}); "
                "stop it first (Ctrl-C in its terminal)"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def __exit__(self, *_: object) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)  # the file stays: unlinking a flock'ed file races a new run
            os.close(self._fd)
            self._fd = None


ChildSpec = tuple[str, list[str], dict[str, str]]


def _children(settings: Settings, data_dir: Path, simulate: bool, flower_port: int = 5555) -> list[ChildSpec]:
    """What `up` runs. Ingest has its own worker so a retrain never delays it."""
    py = sys.executable
    celery = [py, "-m", "celery", "-A", "gridmon"]
    # Flower reads its basic auth from the environment, which keeps the password out of `ps`.
    flower_env = {"FLOWER_BASIC_AUTH": f"{settings.flower_user}:{settings.flower_password}"}
    analytics_metrics = str(settings.worker_metrics_port + 1) if settings.worker_metrics_port else "0"
    children: list[ChildSpec] = [
        ("worker-ingest", [*celery, "worker", "-Q", "ingest", "-c", "2", "-n", "ingest@%h"], {}),
        (
            "worker-analytics",
            [*celery, "worker", "-Q", "scan,ml,maintenance", "-c", "1", "-n", "analytics@%h"],
            {"GRIDMON_WORKER_METRICS_PORT": analytics_metrics},
        ),
        ("beat", [*celery, "beat", "-s", str(data_dir / "celerybeat-schedule")], {}),
        ("bridge", [py, str(REPO_ROOT / "mqtt_bridge.py")], {}),
        ("flower", [*celery, "flower", f"--port={flower_port}", "--address=127.0.0.1"], flower_env),
    ]
    cli = [py, "-m", "gridmon.cli.main"]
    if _has_module("gridmon.cli.serve"):
        children.append(("api", [*cli, "api"], {}))
    if simulate and _has_module("gridmon.cli.simulate"):
        children.append(("simulator", [*cli, "simulate", *demo.simulator_args(settings)], {}))
    return children


def stop_plan(drain: IngestDrain) -> list[StopStep]:
    """Stop in dependency order: no new readings, the bridge hands over its last batch, the
    ingest worker writes what is queued (bounded wait), then everything else."""
    return [
        StopStep(("simulator",)),
        StopStep(("bridge",)),
        StopStep(("worker-ingest",), before=drain.wait, after=drain.report),
    ]


def _shown(path: Path) -> str:
    """`path` relative to the working directory when it lies inside it (shorter on the console)."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def outage_source(data_dir: Path) -> str:
    """How this data directory's `up` names its planned stops in `pipeline_outages`."""
    return f"gridmon up {data_dir}"


def mark_stop(source: str, *, begin: bool) -> None:
    """Record the start (`begin`) or the end of a planned stop; a database error only warns."""
    try:
        with db.connection() as conn:
            if begin:
                outages.begin_stop(conn, source, time.time())
            elif outages.end_stops(conn, source, time.time()):
                log.info("the previous stop is recorded as a pipeline outage (no device is blamed for it)")
    except Exception as exc:  # the stop must go on; the bridge heartbeat records the gap as well
        log.warning("could not record the planned stop: %s", exc)


def _has_module(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def external_where(settings: Settings) -> list[str]:
    """Where the configured services are (no credentials)."""
    redis = urlsplit(settings.redis_url)
    broker = urlsplit(settings.broker_url or settings.redis_url)
    protocol = "5" if settings.mqtt_protocol == 5 else "3.1.1"
    return [
        f"postgres  postgresql://{parts_for_log(settings.database_url)}",
        f"redis     redis://{redis.hostname}:{redis.port or 6379}{redis.path}",
        f"mqtt      mqtt://{settings.mqtt_host}:{settings.mqtt_port} (MQTT {protocol})",
        f"celery    {broker.scheme}://{broker.hostname}:{broker.port or ''}",
    ]


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    # Until the supervisor takes over, SIGTERM unwinds like Ctrl-C, so `finally` stops what started.
    raise KeyboardInterrupt(signal.Signals(signum).name)


def up(*, simulate: bool = True, mode: Mode = Mode.AUTO, flower_port: int = 5555) -> int:
    """Run the system in the foreground until Ctrl-C. Returns the exit code."""
    settings = get_settings()
    data_dir = settings.data_dir.resolve()
    signal.signal(signal.SIGTERM, _interrupt)
    configure_console(data_dir / "logs" / "up.log")
    with RunLock(data_dir / "up.pid"):
        decision = decide(mode, configured_services(), lambda: check_all(settings))
        if not decision.embedded and decision.failed:
            for check in decision.failed:
                log.error("service %s", check.line())
            if decision.hint:
                log.error("%s", decision.hint)
            return 2
        from gridmon.services.embedded import EmbeddedServices, apply_env

        embedded = EmbeddedServices(data_dir) if decision.embedded else None
        try:
            if embedded is not None:
                log.info("embedded mode (%s): starting PostgreSQL, Redis and MQTT in %s", decision.reason, data_dir)
                embedded.start()
                apply_env(embedded.env())
                get_settings.cache_clear()
                dispose_engine()
                where = embedded.where()
            else:
                log.info("external mode (%s)", decision.reason)
                where = external_where(settings)
                check_broker(settings, selftest=settings.broker_selftest)
            for line in where:
                log.info("  %s", line)
            return _run_children(data_dir, simulate, flower_port, embedded)
        finally:
            if embedded is not None:
                embedded.stop()


def _run_children(data_dir: Path, simulate: bool, flower_port: int, embedded: EmbeddedServices | None) -> int:
    announce_secrets(ensure_secrets(Path(".env")))  # the file pydantic-settings reads (cwd)
    settings = get_settings()
    migrate()
    source = outage_source(data_dir)
    mark_stop(source, begin=False)
    backfill = demo.backfill(settings, data_dir) if simulate else None
    if backfill is not None and backfill.readings:
        log.info(
            "history written in %.0f s: %s readings of %d devices, %d faults (ground truth in %s)",
            backfill.seconds,
            f"{backfill.readings:,}",
            backfill.devices,
            backfill.faults,
            _shown(data_dir / "simulator" / "truth.jsonl"),
        )
    # Children run where `up` was started, so they read the same `.env` (with the secrets just
    # generated) and resolve the same data directory.
    env = {**os.environ, "GRIDMON_DATA_DIR": str(data_dir)}
    drain = IngestDrain(IngestQueue(), settings.stop_drain_timeout_s)
    supervisor = Supervisor(env, Path.cwd(), data_dir / "logs", stop_plan=stop_plan(drain))
    try:
        for name, args, child_env in _children(settings, data_dir, simulate, flower_port):
            supervisor.start(name, args, child_env)
    except BaseException:
        mark_stop(source, begin=True)
        supervisor.stop_all()
        raise
    if backfill is not None and backfill.readings:
        demo.queue_first_analyses()
        log.info("a retrain and a maintenance prediction are queued: model and outlook follow in a minute or two")
    log.info(
        "gridmon is running · dashboard http://%s:%d · Flower http://127.0.0.1:%d",
        settings.api_host,
        settings.api_port,
        flower_port,
    )
    log.info("detailed logs in %s · Ctrl-C stops everything", _shown(data_dir / "logs"))

    with StatusReporter(StatusProbe(settings.database_url)) as reporter:

        def stopping() -> None:
            reporter.stop()
            mark_stop(source, begin=True)

        return supervisor.run(watch=embedded.dead if embedded is not None else None, on_stop=stopping)
