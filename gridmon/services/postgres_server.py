"""A private PostgreSQL server (initdb + postgres) on its own port, for tests that stop the database.

PostgreSQL refuses to run as root; when this process is root the server runs as the `postgres`
system user (through `runuser`), with its data directory owned by that user.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from pathlib import Path

from gridmon.services.mosquitto import free_port, wait_for_port


def _bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not candidates:
        raise RuntimeError(f"PostgreSQL binary {name!r} not found (install Debian package 'postgresql')")
    return candidates[-1]


class PostgresProcess:
    """initdb once, then start/stop a server on 127.0.0.1:<port> with trust authentication.

    `timescaledb=True` preloads the TimescaleDB extension (it must be installed for this
    PostgreSQL), with its telemetry off, as the TimescaleDB half of the tests needs."""

    def __init__(self, data_dir: Path, port: int | None = None, *, timescaledb: bool = False):
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.timescaledb = timescaledb
        self._as_root = os.geteuid() == 0

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, args: list[str], **kwargs: object) -> subprocess.CompletedProcess[bytes]:
        if self._as_root:
            args = ["runuser", "-u", "postgres", "--", *args]
        return subprocess.run(args, check=True, capture_output=True, **kwargs)  # type: ignore[call-overload]

    def init(self) -> PostgresProcess:
        pgdata = self.data_dir / "pgdata"
        if not (pgdata / "PG_VERSION").exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            if self._as_root:
                shutil.chown(self.data_dir, "postgres", "postgres")
                # the server user must be able to traverse to its directory (temp dirs are 0700)
                parent = self.data_dir.parent
                parent.chmod(parent.stat().st_mode | 0o711)
            self._run([_bin("initdb"), "-D", str(pgdata), "-U", "postgres", "-A", "trust", "--no-sync"])
        return self

    def start(self) -> PostgresProcess:
        self.init()
        pgdata = self.data_dir / "pgdata"
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.data_dir} -c fsync=off"
        )
        if self.timescaledb:
            options += " -c shared_preload_libraries=timescaledb -c timescaledb.telemetry_level=off"
        self._run(
            [_bin("pg_ctl"), "-D", str(pgdata), "-o", options, "-l", str(self.data_dir / "server.log"), "-w", "start"]
        )
        if not wait_for_port(self.port):
            raise RuntimeError(f"PostgreSQL did not start on port {self.port}; see {self.data_dir}/server.log")
        return self

    def stop(self) -> None:
        pgdata = self.data_dir / "pgdata"
        if (pgdata / "postmaster.pid").exists():
            self._run([_bin("pg_ctl"), "-D", str(pgdata), "-m", "fast", "-w", "stop"])
