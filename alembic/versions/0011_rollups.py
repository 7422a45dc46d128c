"""History rollups: per device, 1-minute and 1-hour buckets of the three core metrics.

Revision ID: 0011_rollups
Revises: 0010_loss_accounting
Create Date: 2026-11-30

Both relations, `readings_1m` and `readings_1h`, have the same columns on both databases:
`device_id`, `bucket` (start, UTC-aligned), `n` (readings), and per metric (voltage, current,
temperature) `<m>_sum`, `<m>_min`, `<m>_max`, `<m>_last`, plus `last_ts` (the time of the
bucket's last reading). The mean is `<m>_sum / n`: a sum, unlike a mean, adds up exactly from
1-minute to 1-hour buckets. Extra metrics (`extra` jsonb) stay raw-only.

- TimescaleDB (the extension exists in this database): continuous aggregates, the 1-hour one
  hierarchical on the 1-minute one, real-time aggregation on (`materialized_only = false`), and a
  refresh policy each.
- Plain PostgreSQL: ordinary tables with the same columns, kept by the periodic task
  `workers.maintenance.refresh_rollups` (`gridmon.jobs.rollups`) from the readings ingested since
  its watermark (`rollup_state`).
"""

from __future__ import annotations

import logging

from alembic import op

revision = "0011_rollups"
down_revision = "0010_loss_accounting"
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.gridmon")

METRICS = ("voltage", "current", "temperature")

# Refresh policies (TimescaleDB): the window each run re-materializes. A late reading older than
# `start_offset` reaches the rollups only by a manual refresh (docs/rollups.md).
POLICIES = {
    "readings_1m": ("7 days", "1 minute", "1 minute"),
    "readings_1h": ("7 days", "1 hour", "5 minutes"),
}


def _aggregates(*, rolled: bool) -> str:
    """The rollup's columns, from raw readings or (`rolled`) from a finer rollup's columns."""
    stamp = "last_ts" if rolled else "ts"
    parts = ["CAST(sum(n) AS bigint) AS n" if rolled else "count(*) AS n"]
    for m in METRICS:
        sources = {part: f"{m}_{part}" if rolled else m for part in ("sum", "min", "max", "last")}
        parts += [
            f"sum({sources['sum']}) AS {m}_sum",
            f"min({sources['min']}) AS {m}_min",
            f"max({sources['max']}) AS {m}_max",
            f"last({sources['last']}, {stamp}) AS {m}_last",
        ]
    parts.append(f"max({stamp}) AS last_ts")
    return ",\n               ".join(parts)


def _has_timescale() -> bool:
    row = op.get_bind().exec_driver_sql("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").first()
    return row is not None


def _continuous_aggregate(view: str, width: str, source: str, stamp: str, *, rolled: bool) -> None:
    op.execute(
        f"""
        CREATE MATERIALIZED VIEW {view}
        WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
        SELECT device_id, time_bucket(INTERVAL '{width}', {stamp}) AS bucket,
               {_aggregates(rolled=rolled)}
        FROM {source}
        GROUP BY device_id, time_bucket(INTERVAL '{width}', {stamp})
        WITH NO DATA
        """
    )


def _timescale() -> None:
    _continuous_aggregate("readings_1m", "1 minute", "sensor_readings", "ts", rolled=False)
    # Hierarchical: the hour is rolled up from the minutes.
    _continuous_aggregate("readings_1h", "1 hour", "readings_1m", "bucket", rolled=True)
    for view, (start, end, every) in POLICIES.items():
        op.execute(
            f"SELECT add_continuous_aggregate_policy('{view}', start_offset => INTERVAL '{start}', "
            f"end_offset => INTERVAL '{end}', schedule_interval => INTERVAL '{every}')"
        )


def _plain() -> None:
    metric_columns = ",\n".join(
        f"{m}_sum double precision NOT NULL, {m}_min double precision NOT NULL, "
        f"{m}_max double precision NOT NULL, {m}_last double precision NOT NULL"
        for m in METRICS
    )
    for table in ("readings_1m", "readings_1h"):
        op.execute(
            f"""
            CREATE TABLE {table} (
                device_id text        NOT NULL,
                bucket    timestamptz NOT NULL,
                n         bigint      NOT NULL,
                {metric_columns},
                last_ts   timestamptz NOT NULL,
                PRIMARY KEY (device_id, bucket)
            )
            """
        )
    op.execute(
        """
        CREATE TABLE rollup_state (
            name      text PRIMARY KEY,
            -- readings ingested up to here are in the tables; NULL = none yet
            watermark timestamptz
        )
        """
    )
    op.execute("INSERT INTO rollup_state (name, watermark) VALUES ('readings', NULL)")


def upgrade() -> None:
    if _has_timescale():
        log.info("TimescaleDB: readings_1m and readings_1h are continuous aggregates")
        _timescale()
    else:
        log.info("plain PostgreSQL: readings_1m and readings_1h are tables kept by the rollup task")
        _plain()


def downgrade() -> None:
    if _has_timescale():
        op.execute("DROP MATERIALIZED VIEW IF EXISTS readings_1h")
        op.execute("DROP MATERIALIZED VIEW IF EXISTS readings_1m")
    else:
        op.execute("DROP TABLE IF EXISTS rollup_state")
        op.execute("DROP TABLE IF EXISTS readings_1h")
        op.execute("DROP TABLE IF EXISTS readings_1m")
