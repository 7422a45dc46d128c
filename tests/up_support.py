"""`gridmon up` as a newcomer runs it, for the end-to-end tests: a child process in external mode
against a private Mosquitto and Redis and a database of its own, in a scratch working directory
(where it writes `.env`) with a scratch data directory, on free ports."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from gridmon.services import procs
from gridmon.services.mosquitto import MosquittoProcess, free_port
from gridmon.services.redis_server import RedisProcess
from tests.conftest import TEST_DB_URL


@dataclass
class PrivateServices:
    """A Mosquitto and a Redis of the test's own, and the database URL for `up`."""

    workdir: Path
    database_url: str
    mosquitto: MosquittoProcess = field(init=False)
    redis: RedisProcess = field(init=False)

    def __post_init__(self) -> None:
        self.mosquitto = MosquittoProcess(self.workdir / "mosquitto")
        self.redis = RedisProcess(self.workdir / "redis")

    def env(self) -> dict[str, str]:
        return {
            "GRIDMON_DATABASE_URL": self.database_url,
            "GRIDMON_REDIS_URL": self.redis.url,
            "GRIDMON_BROKER_URL": self.redis.url,
            "GRIDMON_RESULT_BACKEND": self.redis.url,
            "GRIDMON_MQTT_HOST": "127.0.0.1",
            "GRIDMON_MQTT_PORT": str(self.mosquitto.port),
        }


def fresh_database(suffix: str) -> str:
    """A URL of `<test database>_<suffix>`, dropped if it existed (`up` creates and migrates it)."""
    url = f"{TEST_DB_URL}_{suffix}"
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(TEST_DB_URL.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    return url


@contextmanager
def private_services(workdir: Path, db_suffix: str) -> Iterator[PrivateServices]:
    services = PrivateServices(workdir, fresh_database(db_suffix))
    services.mosquitto.start()
    services.redis.start()
    try:
        yield services
    finally:
        services.redis.stop()
        services.mosquitto.stop()


@dataclass
class UpRun:
    """One running `gridmon up`; `console` is what its terminal shows (stdout and stderr)."""

    proc: subprocess.Popen[bytes]
    console_path: Path
    data_dir: Path
    api_url: str
    database_url: str
    env: dict[str, str]

    def console(self) -> str:
        return self.console_path.read_text(errors="replace")

    def log(self, name: str) -> str:
        path = self.data_dir / "logs" / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def scalar(self, query: str, *args: Any) -> Any:
        with psycopg.connect(self.database_url, connect_timeout=5) as conn:
            row = conn.execute(query, args).fetchone()
            return row[0] if row else None

    def rows(self, query: str, *args: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.database_url, connect_timeout=5) as conn:
            return [tuple(row) for row in conn.execute(query, args).fetchall()]

    def wait_for(self, query: str, timeout: float, *args: Any) -> bool:
        """Poll until `query` returns a true first column (errors, say before the migration, are false)."""

        def holds() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"gridmon up exited with {self.proc.returncode}:\n{self.console()[-4000:]}")
            try:
                return bool(self.scalar(query, *args))
            except psycopg.Error:
                return False

        return procs.wait_until(holds, timeout=timeout, interval=0.5)

    def stop(self, timeout: float = 180.0) -> int:
        """Ctrl-C, as the terminal delivers it; returns the exit code."""
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"gridmon up did not stop in {timeout:.0f} s:\n{self.console()[-4000:]}") from None

    def python(self, code: str) -> str:
        """Run `code` in a Python process with this run's settings; returns its stdout."""
        done = subprocess.run(
            [sys.executable, "-c", code], env=self.env, cwd=self.data_dir.parent, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout


def start_up(
    workdir: Path,
    services: PrivateServices,
    *args: str,
    name: str = "up",
    settings: dict[str, str | int | float] | None = None,
) -> UpRun:
    """`gridmon up --external` in `workdir` (the data directory is `workdir/.gridmon`); `settings`
    by field name (`{"demo_devices": 6}` → GRIDMON_DEMO_DEVICES=6)."""
    data_dir = workdir / ".gridmon"
    api_port = free_port()
    env = procs.child_env(
        {
            **services.env(),
            "GRIDMON_DATA_DIR": str(data_dir),
            "GRIDMON_API_PORT": api_port,
            "GRIDMON_BRIDGE_METRICS_PORT": 0,
            "GRIDMON_WORKER_METRICS_PORT": 0,
            **{f"GRIDMON_{key.upper()}": str(value) for key, value in (settings or {}).items()},
        }
    )
    console = workdir / f"{name}.console"
    command = [sys.executable, "-m", "gridmon.cli.main", "up", "--external", "--flower-port", str(free_port()), *args]
    with console.open("wb") as out:
        proc = subprocess.Popen(command, env=env, cwd=workdir, stdout=out, stderr=subprocess.STDOUT)
    return UpRun(proc, console, data_dir, f"http://127.0.0.1:{api_port}", services.database_url, env)


def simulator_published(log: str) -> int:
    """Readings the simulator child published and the broker acknowledged, over every run in its
    log, from the summary lines (`published N/M readings …[, unacknowledged K]`)."""
    total = 0
    lines = [line for line in log.splitlines() if re.search(r"published \d+/\d+ readings", line)]
    if not lines:
        raise AssertionError(f"no simulator summary in:\n{log[-2000:]}")
    for line in lines:
        published = re.search(r"published (\d+)/\d+ readings", line)
        unacked = re.search(r"unacknowledged (\d+)", line)
        assert published is not None
        total += int(published.group(1)) - (int(unacked.group(1)) if unacked else 0)
    return total


def wait_until_api(run: UpRun, timeout: float = 120.0) -> None:
    import urllib.request

    def answers() -> bool:
        try:
            with urllib.request.urlopen(run.api_url + "/health", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    assert procs.wait_until(answers, timeout, 0.5), run.console()[-3000:]
    time.sleep(0.1)
