"""Whether a migration may turn the readings table into a TimescaleDB hypertable.

The extension must be both installed (`pg_available_extensions`) and loaded at server start
(`shared_preload_libraries`): a server with the files but without the preload fails on
`CREATE EXTENSION`. The setting `GRIDMON_TIMESCALEDB` (`auto` | `on` | `off`) makes the choice
explicit; `decide` returns it with the reason, and raises for `on` when it cannot be honoured.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class _Scalar(Protocol):
    def __call__(self, sql: str) -> object: ...


PRELOAD_FIX = (
    "add shared_preload_libraries = 'timescaledb' to the server's postgresql.conf and restart it "
    "(or set GRIDMON_TIMESCALEDB=off)"
)
INSTALL_FIX = "install the timescaledb extension for this PostgreSQL version (or set GRIDMON_TIMESCALEDB=off)"


class TimescaleUnavailable(RuntimeError):
    """GRIDMON_TIMESCALEDB=on but the server cannot create the extension."""


@dataclass(frozen=True)
class Decision:
    use: bool
    reason: str


def decide(mode: str, scalar: _Scalar) -> Decision:
    """`scalar(sql)` runs one query and returns its first column of the first row (or None)."""
    if mode == "off":
        return Decision(False, "GRIDMON_TIMESCALEDB=off")
    if scalar("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'") is not None:
        return Decision(True, "the timescaledb extension is already created in this database")
    installed = scalar("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'") is not None
    preload = str(scalar("SELECT current_setting('shared_preload_libraries')") or "")
    loaded = "timescaledb" in [part.strip() for part in preload.split(",")]
    if installed and loaded:
        return Decision(True, "the timescaledb extension is installed and preloaded")
    if not installed:
        why, fix = "the timescaledb extension is not installed on the server", INSTALL_FIX
    else:
        why, fix = "timescaledb is installed but not in shared_preload_libraries", PRELOAD_FIX
    if mode == "on":
        raise TimescaleUnavailable(f"GRIDMON_TIMESCALEDB=on but {why}: {fix}")
    return Decision(False, why)


def is_hypertable(scalar: _Scalar, table: str) -> bool:
    """Whether `table` (in the search path's first schema) is a TimescaleDB hypertable."""
    if not table.isidentifier():
        raise ValueError(f"not a plain table name: {table!r}")
    if scalar("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'") is None:
        return False
    found = scalar(
        "SELECT 1 FROM timescaledb_information.hypertables"
        f" WHERE hypertable_schema = current_schema() AND hypertable_name = '{table}'"
    )
    return found is not None
