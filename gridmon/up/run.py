"""`gridmon up`: check services, migrate, then run bridge, workers, beat, API, Flower, simulator.

Everything runs as children of this process (see `supervisor.py`); logs go to
`<data_dir>/logs/<name>.log`; a status line is logged every few seconds.
"""

from __future__ import annotations

import logging
import os
import secrets
import sys
import time
from pathlib import Path

import psycopg

from gridmon.config import Settings, get_settings
from gridmon.db import REPO_ROOT, migrate
from gridmon.up.checks import check_all
from gridmon.up.supervisor import Supervisor

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


def acquire_lock(lock: Path) -> None:
    lock.parent.mkdir(parents=True, exist_ok=True)
    if lock.exists():
        try:
            pid = int(lock.read_text().strip())
            os.kill(pid, 0)
        except (ValueError, ProcessLookupError):
            pass  # stale lock from a run that did not exit cleanly
        except PermissionError:
            raise AlreadyRunning(f"gridmon is already running (pid {lock.read_text().strip()})") from None
        else:
            raise AlreadyRunning(f"gridmon is already running (pid {pid}); stop it first (Ctrl-C in its terminal)")
    lock.write_text(str(os.getpid()))


ChildSpec = tuple[str, list[str], dict[str, str]]


def _children(settings: Settings, data_dir: Path, simulate: bool) -> list[ChildSpec]:
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
        ("flower", [*celery, "flower", "--port=5555", "--address=127.0.0.1"], flower_env),
    ]
    cli = [py, "-m", "gridmon.cli.main"]
    if _has_module("gridmon.cli.serve"):
        children.append(("api", [*cli, "api"], {}))
    if simulate and _has_module("gridmon.cli.simulate"):
        children.append(("simulator", [*cli, "simulate"], {}))
    return children


def _has_module(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


class Status:
    """A periodic status line: readings/s, rows stored, open alerts, workers answering."""

    def __init__(self, database_url: str):
        self.database_url = database_url
        self.last: tuple[float, int] | None = None

    def __call__(self) -> None:
        try:
            with psycopg.connect(self.database_url, connect_timeout=2) as conn:
                rows = _scalar(conn, "SELECT count(*) FROM sensor_readings")
                alerts = (
                    _scalar(conn, "SELECT count(*) FROM alerts WHERE state <> 'resolved'")
                    if _scalar(conn, "SELECT count(*) FROM pg_tables WHERE tablename = 'alerts'")
                    else 0
                )
        except psycopg.Error as exc:
            log.warning("status unavailable error=%s", exc)
            return
        now = time.monotonic()
        rate = 0.0
        if self.last is not None and now > self.last[0]:
            rate = (rows - self.last[1]) / (now - self.last[0])
        self.last = (now, rows)
        log.info("status readings_per_s=%.0f rows=%d open_alerts=%d", rate, rows, alerts)


def _scalar(conn: psycopg.Connection, query: str) -> int:
    row = conn.execute(query).fetchone()
    return int(row[0]) if row else 0


def up(*, simulate: bool = True) -> int:
    """Run the system in the foreground until Ctrl-C. Returns the exit code."""
    settings = get_settings()
    data_dir = settings.data_dir.resolve()
    failed = [check for check in check_all(settings) if not check.ok]
    for check in failed:
        log.error("service %s", check.line())
    if failed:
        return 2
    acquire_lock(data_dir / "up.pid")
    try:
        for line in ensure_secrets(Path(".env")):  # the file pydantic-settings reads (cwd)
            log.warning("generated %s (saved in .env)", line)
        settings = get_settings()
        migrate()
        supervisor = Supervisor(dict(os.environ), REPO_ROOT, data_dir / "logs")
        for name, args, child_env in _children(settings, data_dir, simulate):
            supervisor.start(name, args, child_env)
        log.info(
            "gridmon running: api http://%s:%d  flower http://127.0.0.1:5555  logs %s  (Ctrl-C stops everything)",
            settings.api_host,
            settings.api_port,
            data_dir / "logs",
        )
        return supervisor.run(status=Status(settings.database_url), status_every_s=5.0)
    finally:
        (data_dir / "up.pid").unlink(missing_ok=True)
