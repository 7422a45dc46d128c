"""Hardening: one accepted time range enforced by the database; dead letters keep a bounded prefix.

Revision ID: 0007_hardening
Revises: 0006_stream_detector
Create Date: 2026-12-01

- `sensor_readings.ts` must lie in [2000-01-01, 2100-01-01) UTC (CHECK `sensor_readings_ts_range`),
  the range validation accepts (`gridmon.domain.readings.TS_MIN`/`TS_MAX`); so do `devices`'
  first/last seen times. A reading stamped year 0 used to be stored as `0001-12-31 BC` and then
  broke every scan and the device list.
- Rows already outside the range are not deleted: each becomes a dead letter (reason
  `bad_timestamp`, the reading as the JSON object a sensor would send, on its device's topic), so
  nothing is silently lost, then leaves the table. Devices whose first/last seen times were
  outside the range get the span of their remaining readings (or the range's edges when none
  remain). Alerts opened, last seen or valued outside the range were raised by such readings:
  they are deleted with their outbox rows, and `alert_readings` rows outside the range too; a
  detector state whose last reading was outside it is dropped (the device starts afresh).
- `dead_letters` gains `payload_size` and `payload_sha256` (of the whole payload as received);
  `payload` keeps at most the first GRIDMON_DEAD_LETTER_PAYLOAD_BYTES bytes. Existing payloads
  longer than that are cut here too.
- The latest prediction per device is served from `(device_id, computed_at DESC, id DESC)`.

The CHECKs are added NOT VALID and then validated, so writers are not blocked while existing rows
are checked; on a TimescaleDB hypertable (which refuses VALIDATE CONSTRAINT once compression is
enabled) the CHECK is added in one validated step. The downgrade drops the CHECKs and the new
columns; moved rows stay dead letters.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import op

from gridmon.config import get_settings
from gridmon.storage.timescale import is_hypertable

revision = "0007_hardening"
down_revision = "0006_stream_detector"
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.gridmon")

LOW = "'2000-01-01 00:00:00+00'::timestamptz"
HIGH = "'2100-01-01 00:00:00+00'::timestamptz"


def _inside(column: str) -> str:
    return f"({column} >= {LOW} AND {column} < {HIGH})"


def _outside(column: str) -> str:
    return f"({column} IS NOT NULL AND NOT {_inside(column)})"


def _move_readings() -> None:
    moved = op.get_bind().execute(
        sa.text(
            f"""
            WITH gone AS (
                DELETE FROM sensor_readings WHERE {_outside("ts")}
                RETURNING device_id, ts, voltage, current, temperature, extra
            ), letters AS (
                SELECT device_id,
                       convert_to(jsonb_strip_nulls(jsonb_build_object(
                           'device_id', device_id, 'timestamp', ts::text, 'voltage', voltage,
                           'current', current, 'temperature', temperature, 'extra', extra))::text, 'UTF8') AS body
                FROM gone
            )
            INSERT INTO dead_letters (topic, payload, payload_size, payload_sha256, reason, detail)
            SELECT 'grid/sensors/' || device_id, body, length(body), sha256(body), 'bad_timestamp',
                   'moved by migration 0007: ts outside 2000-01-01T00:00:00Z .. 2100-01-01T00:00:00Z'
            FROM letters
            """
        )
    ).rowcount
    if moved:
        log.warning("moved %d reading(s) stamped outside [2000, 2100) to dead_letters (bad_timestamp)", moved)


def _repair_devices() -> None:
    op.execute(
        f"""
        UPDATE devices d
        SET first_seen = COALESCE(s.first_ts, GREATEST(LEAST(d.first_seen, {HIGH} - interval '1 microsecond'), {LOW})),
            last_seen = COALESCE(s.last_ts, GREATEST(LEAST(d.last_seen, {HIGH} - interval '1 microsecond'), {LOW}))
        FROM (
            SELECT dd.device_id, min(r.ts) AS first_ts, max(r.ts) AS last_ts
            FROM devices dd LEFT JOIN sensor_readings r USING (device_id)
            WHERE {_outside("dd.first_seen")} OR {_outside("dd.last_seen")}
            GROUP BY dd.device_id
        ) s
        WHERE s.device_id = d.device_id
        """
    )


def _drop_alerts() -> None:
    bind = op.get_bind()
    gone = bind.execute(
        sa.text(
            f"DELETE FROM alerts WHERE {_outside('opened_at')} OR {_outside('last_seen_at')}"
            f" OR {_outside('value_ts')}"
        )
    ).rowcount
    bind.execute(sa.text(f"DELETE FROM alert_readings WHERE {_outside('ts')}"))
    # A device whose detector state ends at such a reading starts afresh with its next one.
    bind.execute(sa.text(f"DELETE FROM detector_state WHERE {_outside('last_ts')}"))
    if gone:
        log.warning("deleted %d alert(s) raised by readings stamped outside [2000, 2100)", gone)


def _check(table: str, name: str, condition: str) -> None:
    bind = op.get_bind()

    def scalar(sql: str) -> object:
        row = bind.execute(sa.text(sql)).first()
        return None if row is None else row[0]

    if is_hypertable(scalar, table):
        # TimescaleDB rejects VALIDATE CONSTRAINT on a hypertable with compression enabled; a
        # CHECK added in one step is checked against the existing rows there instead.
        op.execute(f"ALTER TABLE {table} ADD CONSTRAINT {name} CHECK ({condition})")
        return
    op.execute(f"ALTER TABLE {table} ADD CONSTRAINT {name} CHECK ({condition}) NOT VALID")
    op.execute(f"ALTER TABLE {table} VALIDATE CONSTRAINT {name}")


def upgrade() -> None:
    prefix = get_settings().dead_letter_payload_bytes
    op.execute("ALTER TABLE dead_letters ADD COLUMN payload_size integer, ADD COLUMN payload_sha256 bytea")
    op.execute("UPDATE dead_letters SET payload_size = length(payload), payload_sha256 = sha256(payload)")
    op.get_bind().execute(
        sa.text("UPDATE dead_letters SET payload = substring(payload FROM 1 FOR :n) WHERE length(payload) > :n"),
        {"n": prefix},
    )
    op.execute(
        "ALTER TABLE dead_letters ALTER COLUMN payload_size SET NOT NULL, ALTER COLUMN payload_sha256 SET NOT NULL"
    )
    _move_readings()
    _repair_devices()
    _drop_alerts()
    _check("sensor_readings", "sensor_readings_ts_range", _inside("ts"))
    _check("devices", "devices_seen_range", f"{_inside('first_seen')} AND {_inside('last_seen')}")
    op.execute("DROP INDEX IF EXISTS maintenance_predictions_device_computed")
    op.execute(
        "CREATE INDEX maintenance_predictions_latest ON maintenance_predictions (device_id, computed_at DESC, id DESC)"
    )


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS maintenance_predictions_latest")
    op.execute(
        "CREATE INDEX maintenance_predictions_device_computed ON maintenance_predictions (device_id, computed_at DESC)"
    )
    op.execute("ALTER TABLE devices DROP CONSTRAINT IF EXISTS devices_seen_range")
    op.execute("ALTER TABLE sensor_readings DROP CONSTRAINT IF EXISTS sensor_readings_ts_range")
    op.execute("ALTER TABLE dead_letters DROP COLUMN IF EXISTS payload_sha256, DROP COLUMN IF EXISTS payload_size")
