"""Each device's sequence head on `devices`, so in-order batches count gaps without reading back.

Revision ID: 0012_seq_head
Revises: 0011_rollups
Create Date: 2026-11-30

- `devices.last_seq`: the `seq` of the device's latest stored reading (NULL when that reading has
  none, or the device has no reading yet). The ingest upsert keeps it with `last_seen`.
- `devices.prior_seq`, `devices.prior_in_order`: for the latest batch with `seq` that moved the
  device's times, `last_seq` as it was before, and whether the batch lay wholly after `last_seen`.
  That upsert writes them so the batch learns them from `RETURNING`, without a second read of
  the row; nothing else reads them.

The three columns are nullable without a default: adding them rewrites nothing. `last_seq` is
filled from each device's latest stored reading (one index probe per device).
"""

from __future__ import annotations

from alembic import op

revision = "0012_seq_head"
down_revision = "0011_rollups"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "ALTER TABLE devices ADD COLUMN last_seq bigint, ADD COLUMN prior_seq bigint, ADD COLUMN prior_in_order boolean"
    )
    op.execute(
        """
        UPDATE devices d SET last_seq = (
            SELECT r.seq FROM sensor_readings r WHERE r.device_id = d.device_id ORDER BY r.ts DESC LIMIT 1
        )
        """
    )


def downgrade() -> None:
    op.execute("ALTER TABLE devices DROP COLUMN last_seq, DROP COLUMN prior_seq, DROP COLUMN prior_in_order")
