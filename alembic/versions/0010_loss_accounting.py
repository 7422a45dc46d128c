"""Loss accounting: a device's `seq` with each reading, the gaps it reveals, the `data_gap` alert.

Revision ID: 0010_loss_accounting
Revises: 0009_pipeline_outages
Create Date: 2026-11-30

- `sensor_readings.seq`: the device's reading counter as received (0 ≤ seq < 2^32), NULL for
  readings without one. Adding a nullable column without a default rewrites nothing.
- `reading_gaps`: one row per stored reading that follows a gap in its device's sequence:
  `missing` readings were skipped between it and the device's previous stored reading (by time).
  Rows are recomputed from `sensor_readings` for the span a batch touched
  (`gridmon.storage.seq_gaps`), so they never depend on how often a batch was delivered.
- `alerts.kind` admits `data_gap` (a device missing more than a share of its readings).
"""

from __future__ import annotations

from alembic import op

revision = "0010_loss_accounting"
down_revision = "0009_pipeline_outages"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE sensor_readings ADD COLUMN seq bigint")
    op.execute(
        """
        CREATE TABLE reading_gaps (
            device_id text        NOT NULL,
            ts        timestamptz NOT NULL,
            missing   bigint      NOT NULL CHECK (missing > 0),
            PRIMARY KEY (device_id, ts)
        )
        """
    )
    op.execute("CREATE INDEX reading_gaps_ts ON reading_gaps (ts)")
    op.execute("ALTER TABLE alerts DROP CONSTRAINT IF EXISTS alerts_kind_check")
    op.execute(
        "ALTER TABLE alerts ADD CONSTRAINT alerts_kind_check "
        "CHECK (kind IN ('limit', 'anomaly', 'no_data', 'data_gap'))"
    )


def downgrade() -> None:
    op.execute("DELETE FROM alerts WHERE kind = 'data_gap'")
    op.execute("ALTER TABLE alerts DROP CONSTRAINT IF EXISTS alerts_kind_check")
    op.execute("ALTER TABLE alerts ADD CONSTRAINT alerts_kind_check CHECK (kind IN ('limit', 'anomaly', 'no_data'))")
    op.execute("DROP TABLE reading_gaps")
    op.execute("ALTER TABLE sensor_readings DROP COLUMN seq")
