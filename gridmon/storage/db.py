"""Database access: one SQLAlchemy engine per process, raw psycopg connections for bulk work.

Forked Celery workers must not share the parent's sockets: `dispose_engine()` is called from
`worker_process_init` (see `gridmon.celery`). The few statements that are about the server, not
a table (create the database, `SELECT 1`, the Alembic upgrade), live here too.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import cast
from urllib.parse import urlsplit

import psycopg
import sqlalchemy.exc
from psycopg import sql
from sqlalchemy import Engine, create_engine

from gridmon.config import REPO_ROOT, get_settings, parts_for_log, with_database

log = logging.getLogger(__name__)

_engines: dict[str, Engine] = {}
_engine_lock = threading.Lock()

API, JOB = "api", "job"
_role: ContextVar[str] = ContextVar("gridmon_db_role", default=JOB)
"""Whose unit of work this is: `api` (requests: GRIDMON_API_STATEMENT_TIMEOUT_S) or `job`
(everything else: GRIDMON_JOB_STATEMENT_TIMEOUT_S). The API's middleware sets it per request;
context variables follow a request into the worker threads its sync routes run in."""


# Errors that mean "the database is not reachable right now" (retry later), as opposed to errors
# about the data itself. Celery tasks retry on these.
TRANSIENT_DB_ERRORS: tuple[type[Exception], ...] = (
    psycopg.OperationalError,
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
)


class DatabaseUnavailable(RuntimeError):
    """The database cannot be reached; the message names the setting to fix."""


def get_engine(role: str | None = None) -> Engine:
    """The process's engine for `role` (default: the current one), created on first use. Each
    role's connections carry its statement timeout, so a runaway query is cancelled by the server."""
    role = role or _role.get()
    with _engine_lock:
        engine = _engines.get(role)
        if engine is None:
            settings = get_settings()
            timeout_s = settings.api_statement_timeout_s if role == API else settings.job_statement_timeout_s
            engine = create_engine(
                settings.sqlalchemy_url,
                pool_size=4,
                max_overflow=4,
                pool_pre_ping=True,
                pool_recycle=1800,
                # A request waits this long for a pooled connection, then answers 503.
                pool_timeout=max(timeout_s, 1.0) if role == API else 30.0,
                connect_args={"options": f"-c statement_timeout={max(int(timeout_s * 1000), 1)}"},
            )
            _engines[role] = engine
        return engine


def dispose_engine() -> None:
    """Drop inherited pooled connections (after fork) without closing the parent's sockets."""
    with _engine_lock:
        for engine in _engines.values():
            engine.dispose(close=False)
        _engines.clear()


@contextmanager
def role(name: str) -> Iterator[None]:
    """Run the enclosed units of work as `name` (`api` or `job`)."""
    token = _role.set(name)
    try:
        yield
    finally:
        _role.reset(token)


@contextmanager
def connection() -> Iterator[psycopg.Connection]:
    """A pooled raw psycopg connection for one unit of work; commits on success."""
    raw = get_engine().raw_connection()
    try:
        conn = cast(psycopg.Connection, raw.driver_connection)
        yield conn
        raw.commit()
    except BaseException:
        raw.rollback()
        raise
    finally:
        raw.close()


def ping_database(url: str, timeout_s: float) -> None:
    """One `SELECT 1` on a fresh connection (readiness); raises psycopg.Error when it fails."""
    with psycopg.connect(url, connect_timeout=max(int(timeout_s), 1), autocommit=True) as conn:
        conn.execute("SELECT 1")


def table_exists(conn: psycopg.Connection, name: str) -> bool:
    """Whether `public.<name>` exists (parts of the schema a partial migration may lack)."""
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"public.{name}",)).fetchone()
    return bool(row and row[0])


def ensure_database(url: str | None = None) -> bool:
    """Create the configured database if it does not exist. Returns True when it was created."""
    url = url or get_settings().database_url
    name = urlsplit(url).path.lstrip("/") or "postgres"
    admin_url = with_database(url, "postgres")
    try:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
                return False
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            log.info("created database name=%s", name)
            return True
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable(
            f"PostgreSQL unreachable at {parts_for_log(url)}: {exc}".strip() + " (set GRIDMON_DATABASE_URL)"
        ) from exc


def migrate(url: str | None = None, revision: str = "head") -> None:
    """`alembic upgrade head` on the configured database as its owner (GRIDMON_DATABASE_OWNER_URL,
    else GRIDMON_DATABASE_URL), creating the database first if missing."""
    from alembic import command
    from alembic.config import Config

    url = url or get_settings().owner_url
    ensure_database(url)
    cfg = Config(str(REPO_ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(REPO_ROOT / "alembic"))
    cfg.attributes["url"] = url.replace("postgresql://", "postgresql+psycopg://", 1)
    cfg.attributes["configure_logger"] = False
    command.upgrade(cfg, revision)
