"""Whether the TimescaleDB half of `make test` can run: `python scripts/timescaledb_ready.py URL`.

Exits 0 when the server of URL answers and can create the timescaledb extension (installed and
preloaded); otherwise prints the reason on one line and exits 1, so the Makefile can say
"TimescaleDB half skipped: <reason>" instead of failing a checkout without the cluster.
"""

from __future__ import annotations

import sys

import psycopg

from gridmon.config import parts_for_log, with_database
from gridmon.storage.timescale import TimescaleUnavailable, decide

START_HINT = "start it with .ci/timescaledb-cluster (as root)"


def reason_not_ready(url: str) -> str | None:
    """None when ready, else why not."""
    server = parts_for_log(url).rsplit("/", 1)[0]
    try:
        conn = psycopg.connect(with_database(url, "postgres"), autocommit=True, connect_timeout=5)
    except psycopg.OperationalError:
        return f"no PostgreSQL answers at {server}: {START_HINT}"
    with conn:

        def scalar(sql: str) -> object:
            row = conn.execute(sql.encode()).fetchone()
            return None if row is None else row[0]

        try:
            decide("on", scalar)
        except TimescaleUnavailable as exc:
            why = str(exc).removeprefix("GRIDMON_TIMESCALEDB=on but ").split(": ", 1)[0]
            return f"on {server} {why}: {START_HINT} or set GRIDMON_TSDB_TEST_DATABASE_URL"
    return None


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: timescaledb_ready.py DATABASE_URL", file=sys.stderr)
        return 2
    reason = reason_not_ready(sys.argv[1])
    if reason is None:
        return 0
    print(reason)
    return 1


if __name__ == "__main__":
    sys.exit(main())
