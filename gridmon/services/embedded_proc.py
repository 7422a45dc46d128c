"""Building blocks of the embedded servers: ports, secrets, pid files and foreground server processes.

Each embedded server keeps its state in its own directory under the data directory
(`.gridmon/postgres`, `.gridmon/redis`, `.gridmon/mqtt`) and records its pid there, so a server
left behind by a `gridmon up` that was killed (SIGKILL, a closed terminal) is found and stopped
on the next start instead of holding the port or the data files.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from gridmon.services.mosquitto import wait_for_port

log = logging.getLogger(__name__)


class EmbeddedError(RuntimeError):
    """An embedded server could not be started; the message says which and where its log is."""


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when nothing listens on host:port and we may bind it."""
    with socket.socket() as sock:
        # As the servers do: connections of a previous run in TIME_WAIT must not count as "in use".
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def pick_port(preferred: int, host: str = "127.0.0.1") -> int:
    """`preferred` when free (stable addresses between runs), otherwise any free port (0 = any)."""
    if preferred and port_is_free(preferred, host):
        return preferred
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def read_or_create_secret(path: Path) -> str:
    """A random password kept in `path` (mode 0600), created on first use."""
    if path.exists():
        value = path.read_text().strip()
        if value:
            return value
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value + "\n")
    return value


def stop_stale(pid_file: Path, directory: Path, timeout: float = 15.0) -> int | None:
    """Stop a server a killed run left behind: the pid in `pid_file`, if that process still runs in
    `directory` (we start servers there; redis rewrites its command line, so the working directory
    is what identifies it) — an unrelated process that reused the pid is never touched. Returns the
    pid that was stopped."""
    try:
        pid = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    try:
        proc = psutil.Process(pid)
        if Path(proc.cwd()).resolve() != directory.resolve():
            return None
        log.warning("stopping a server left behind by an earlier run pid=%d cmd=%s", pid, proc.name())
        proc.terminate()
        try:
            proc.wait(timeout)
        except psutil.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)
    except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
        return None
    pid_file.unlink(missing_ok=True)
    return pid


def pid_alive(pid: int | None) -> bool:
    """True while the process exists and is not a zombie."""
    if not pid:
        return False
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


class ServerProcess:
    """A server run in the foreground as our child, in its own session (a Ctrl-C in the terminal
    reaches only `gridmon up`, which stops the servers last, after everything that uses them)."""

    def __init__(self, name: str, directory: Path, port: int):
        self.name = name
        self.directory = directory
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid_file(self) -> Path:
        return self.directory / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.directory / f"{self.name}.log"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def clear_stale(self) -> None:
        """Stop this server if a killed earlier run left it running (before choosing the port)."""
        stop_stale(self.pid_file, self.directory)

    def spawn(
        self,
        args: list[str],
        env: dict[str, str] | None = None,
        timeout: float = 30.0,
        ready: Callable[[], bool] | None = None,
    ) -> None:
        """Start `args`, record the pid, wait until `ready()` (default: the port accepts connections)."""
        with self.log_file.open("ab") as out:
            self.proc = subprocess.Popen(
                args, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=self.directory, start_new_session=True
            )
        self.pid_file.write_text(f"{self.proc.pid}\n")
        is_ready = ready or (lambda: wait_for_port(self.port, timeout=0.2))
        deadline = time.monotonic() + timeout
        while not is_ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise EmbeddedError(f"embedded {self.name} did not start on 127.0.0.1:{self.port}; see {self.log_file}")
            time.sleep(0.05)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM (both servers shut down cleanly on it), SIGKILL after `timeout`."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("embedded %s did not stop in time; killing pid=%d", self.name, self.proc.pid)
                self.proc.kill()
                self.proc.wait()
        self.pid_file.unlink(missing_ok=True)
        self.proc = None
