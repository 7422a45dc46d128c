"""Telemetry schema: sensor_readings (hypertable when TimescaleDB is available), devices, dead_letters.

Revision ID: 0001
Revises:
Create Date: 2026-11-27

One migration serves both databases. When TimescaleDB can be used (`GRIDMON_TIMESCALEDB`, default
`auto`: installed and preloaded, see `gridmon.storage.timescale`) the extension is created
and `sensor_readings` becomes a hypertable on `ts` with compression and retention policies from
settings (GRIDMON_TIMESCALE_*). Without it the same table stays a plain PostgreSQL table with a
BRIN index on `ts` (cheap for append-mostly time data). The TimescaleDB statements are the five
in `_timescale()`; nothing else differs.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import op

from gridmon.config import get_settings
from gridmon.storage.timescale import Decision, decide

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.gridmon")


def _timescale_decision() -> Decision:
    bind = op.get_bind()

    def scalar(sql: str) -> object:
        row = bind.execute(sa.text(sql)).first()
        return None if row is None else row[0]

    return decide(get_settings().timescaledb, scalar)


def _timescale() -> None:
    settings = get_settings()
    op.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    op.get_bind().execute(
        sa.text("SELECT create_hypertable('sensor_readings', 'ts', chunk_time_interval => CAST(:i AS interval))"),
        {"i": settings.timescale_chunk_interval},
    )
    if settings.timescale_compress_after:
        op.execute(
            "ALTER TABLE sensor_readings SET (timescaledb.compress, timescaledb.compress_segmentby = 'device_id')"
        )
        op.get_bind().execute(
            sa.text("SELECT add_compression_policy('sensor_readings', CAST(:a AS interval))"),
            {"a": settings.timescale_compress_after},
        )
    if settings.timescale_retention:
        op.get_bind().execute(
            sa.text("SELECT add_retention_policy('sensor_readings', CAST(:r AS interval))"),
            {"r": settings.timescale_retention},
        )


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE sensor_readings (
            device_id   text             NOT NULL,
            ts          timestamptz      NOT NULL,
            voltage     double precision NOT NULL,
            current     double precision NOT NULL,
            temperature double precision NOT NULL,
            extra       jsonb,
            ingested_at timestamptz      NOT NULL DEFAULT now(),
            PRIMARY KEY (device_id, ts)
        )
        """
    )
    decision = _timescale_decision()
    if decision.use:
        log.info("TimescaleDB (%s): sensor_readings becomes a hypertable", decision.reason)
        _timescale()
    else:
        log.info("plain PostgreSQL (%s): sensor_readings gets a BRIN index on ts", decision.reason)
        op.execute("CREATE INDEX sensor_readings_ts_brin ON sensor_readings USING brin (ts)")
    # Scans read "what was ingested since the watermark": a BRIN on ingested_at serves them.
    op.execute("CREATE INDEX sensor_readings_ingested_brin ON sensor_readings USING brin (ingested_at)")
    op.execute(
        """
        CREATE TABLE devices (
            device_id  text PRIMARY KEY,
            first_seen timestamptz NOT NULL,
            last_seen  timestamptz NOT NULL,
            metadata   jsonb NOT NULL DEFAULT '{}'::jsonb,
            -- the device profile (set through the API; NULL = global defaults apply)
            kind              text,
            location          text,
            nominal_voltage   double precision,
            rated_current     double precision,
            temperature_limit double precision
        )
        """
    )
    op.execute(
        """
        CREATE TABLE dead_letters (
            id          bigserial PRIMARY KEY,
            received_at timestamptz NOT NULL DEFAULT now(),
            topic       text NOT NULL,
            payload     bytea NOT NULL,
            reason      text NOT NULL,
            detail      text NOT NULL
        )
        """
    )
    op.execute("CREATE INDEX dead_letters_reason_received ON dead_letters (reason, received_at)")


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS dead_letters")
    op.execute("DROP TABLE IF EXISTS devices")
    op.execute("DROP TABLE IF EXISTS sensor_readings")
