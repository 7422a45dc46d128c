"""Starting and stopping gridmon's own processes (worker, beat, bridge) as children.

Used by the benchmark, the end-to-end tests and `gridmon up`. Children run with this Python
(`sys.executable`), so they use the same environment, and with an explicit environment so a
benchmark or test never talks to the services of a running gridmon by accident.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from gridmon.config import REPO_ROOT


def child_env(overrides: Mapping[str, str | int]) -> dict[str, str]:
    """This process's environment with the given GRIDMON_* overrides (legacy names removed)."""
    env = {k: v for k, v in os.environ.items() if k not in ("DB_DSN", "REDIS_URL", "BROKER_HOST", "BROKER_PORT")}
    env.update({k: str(v) for k, v in overrides.items()})
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def spawn(args: list[str], env: Mapping[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(args, env=dict(env), stdout=out, stderr=subprocess.STDOUT, cwd=REPO_ROOT)


def start_worker(
    env: Mapping[str, str],
    log_path: Path,
    *,
    queues: str = "ingest",
    concurrency: int = 2,
    hostname: str = "gridmon-worker@%h",
) -> subprocess.Popen[bytes]:
    """`celery -A gridmon worker` consuming `queues`."""
    args = [sys.executable, "-m", "celery", "-A", "gridmon", "worker", "-Q", queues, "-c", str(concurrency)]
    args += ["-n", hostname, "--without-gossip", "--without-mingle"]
    return spawn(args, env, log_path)


def start_beat(env: Mapping[str, str], log_path: Path, schedule_file: Path) -> subprocess.Popen[bytes]:
    """`celery -A gridmon beat` with its schedule state in `schedule_file`."""
    args = [sys.executable, "-m", "celery", "-A", "gridmon", "beat", "-s", str(schedule_file)]
    return spawn(args, env, log_path)


def start_bridge(env: Mapping[str, str], log_path: Path, client_id: str) -> subprocess.Popen[bytes]:
    """`python mqtt_bridge.py --client-id ID`."""
    return spawn([sys.executable, str(REPO_ROOT / "mqtt_bridge.py"), "--client-id", client_id], env, log_path)


def stop(proc: subprocess.Popen[bytes] | None, *, timeout: float = 30.0, sig: int = signal.SIGTERM) -> int | None:
    """Signal a child and wait; SIGKILL when it does not exit in time. Returns its exit code."""
    if proc is None or proc.poll() is not None:
        return None if proc is None else proc.returncode
    proc.send_signal(sig)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll `predicate()` until it is true or `timeout` seconds passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
