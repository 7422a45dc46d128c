"""Streaming detector: per-device state, device-level anomaly alerts, shard-friendly index.

Revision ID: 0006_stream_detector
Revises: 0005_one_outbox
Create Date: 2026-11-30

- `detector_state`: one row per device with its serialised detector state (`state`, see
  `gridmon.detection.stream.state`), the forest version its forest calibration belongs to, and
  how far it has read. Scans read and write it; a device without a row starts fresh.
- `alerts.kind`: `limit` (safety limits, per metric), `anomaly` (the statistical detector,
  one alert per device and fault, listing its `metrics`) or `no_data`. Anomaly alerts carry the
  expected value and band of their peak metric at the peak (`expected`, `band_lo`, `band_hi`).
  At most one unresolved anomaly alert per device; the per-(device, metric) rule stays for the
  other kinds. Unresolved alerts of the old per-metric statistical detector are resolved with
  reason `superseded` (the new detector re-raises what is still anomalous).
- `gridmon_bucket(device_id)`: a stable hash of the id into 4,096 buckets (md5, the same in
  Python: `gridmon.storage.buckets.bucket_of`); shards are ranges of buckets, and the index on
  (bucket, ingested_at) lets a shard's scan read only its own new readings.
"""

from __future__ import annotations

from alembic import op

revision = "0006_stream_detector"
down_revision = "0005_one_outbox"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE detector_state (
            device_id      text PRIMARY KEY,
            forest_version integer,
            state          bytea NOT NULL,
            readings       bigint NOT NULL DEFAULT 0,
            last_ts        timestamptz,
            updated_at     timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(
        """
        ALTER TABLE alerts
            ADD COLUMN kind text NOT NULL DEFAULT 'limit' CHECK (kind IN ('limit', 'anomaly', 'no_data')),
            ADD COLUMN metrics text[],
            ADD COLUMN expected double precision,
            ADD COLUMN band_lo double precision,
            ADD COLUMN band_hi double precision
        """
    )
    op.execute("UPDATE alerts SET kind = 'no_data' WHERE metric = 'no_data'")
    op.execute("UPDATE alerts SET kind = 'anomaly' WHERE kind = 'limit' AND detector NOT LIKE '%safety%'")
    op.execute(
        """UPDATE alerts SET state = 'resolved', resolved_at = now(), resolved_reason = 'superseded', updated_at = now()
           WHERE kind = 'anomaly' AND state <> 'resolved'"""
    )
    op.execute("UPDATE alerts SET metrics = ARRAY[metric]")
    op.execute("DROP INDEX alerts_one_unresolved")
    op.execute(
        "CREATE UNIQUE INDEX alerts_one_unresolved ON alerts (device_id, metric) "
        "WHERE state <> 'resolved' AND kind <> 'anomaly'"
    )
    op.execute(
        "CREATE UNIQUE INDEX alerts_one_unresolved_anomaly ON alerts (device_id) "
        "WHERE state <> 'resolved' AND kind = 'anomaly'"
    )
    op.execute(
        """
        CREATE FUNCTION gridmon_bucket(device_id text) RETURNS integer
        LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURN
            (('x' || substr(md5(device_id), 1, 8))::bit(32)::integer) & 4095
        """
    )
    op.execute(
        "CREATE INDEX sensor_readings_bucket_ingested ON sensor_readings (gridmon_bucket(device_id), ingested_at)"
    )


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS sensor_readings_bucket_ingested")
    op.execute("DROP FUNCTION IF EXISTS gridmon_bucket(text)")
    op.execute("DROP INDEX IF EXISTS alerts_one_unresolved_anomaly")
    op.execute("DROP INDEX IF EXISTS alerts_one_unresolved")
    # The old rule allows one unresolved alert per (device, metric) of any kind.
    op.execute(
        """UPDATE alerts a SET state = 'resolved', resolved_at = now(), resolved_reason = 'superseded'
           WHERE state <> 'resolved' AND kind = 'anomaly' AND EXISTS (
               SELECT 1 FROM alerts b WHERE b.device_id = a.device_id AND b.metric = a.metric
                 AND b.state <> 'resolved' AND b.id <> a.id)"""
    )
    op.execute("CREATE UNIQUE INDEX alerts_one_unresolved ON alerts (device_id, metric) WHERE state <> 'resolved'")
    op.execute(
        "ALTER TABLE alerts DROP COLUMN band_hi, DROP COLUMN band_lo, DROP COLUMN expected, "
        "DROP COLUMN metrics, DROP COLUMN kind"
    )
    op.execute("DROP TABLE IF EXISTS detector_state")
