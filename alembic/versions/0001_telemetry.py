"""Telemetry schema: sensor_readings (hypertable when TimescaleDB is available), devices, dead_letters.

Revision ID: 0001
Revises:
Create Date: 2026-11-27

One migration serves both databases. With the `timescaledb` extension available it is created
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

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.gridmon")


def _timescale_available() -> bool:
    bind = op.get_bind()
    found = bind.execute(sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'")).first()
    return found is not None


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
    if _timescale_available():
        log.info("timescaledb available: sensor_readings becomes a hypertable")
        _timescale()
    else:
        log.info("timescaledb not available: plain PostgreSQL table with a BRIN index on ts")
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
