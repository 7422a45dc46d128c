"""The seq of each device's hole's end on `devices`, so a batch in the hole reads no readings.

Revision ID: 0014_seq_hole_end
Revises: 0013_seq_hole
Create Date: 2026-12-01

`devices.seg_first_seq`: the seq of the first reading of the device's latest in-order batch (the
reading at `seg_first_ts`, the end of the device's hole; `gridmon.storage.seq_gaps`). Ingest read it
from `sensor_readings` whenever a batch landed in the hole; kept on the row, the whole accounting
of such a batch happens in its `devices` upsert.

The column is nullable without a default: adding it rewrites nothing. Open holes are filled from
the reading at their end (one index probe per device with a hole); a hole whose end is no longer
stored is closed (`seg_pre_ts` NULL: its device's next batch out of order is recomputed).
"""

from __future__ import annotations

from alembic import op

revision = "0014_seq_hole_end"
down_revision = "0013_seq_hole"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE devices ADD COLUMN seg_first_seq bigint")
    op.execute(
        """
        UPDATE devices d SET seg_first_seq = r.seq
        FROM sensor_readings r
        WHERE d.seg_pre_ts IS NOT NULL AND r.device_id = d.device_id AND r.ts = d.seg_first_ts
        """
    )
    op.execute(
        """
        UPDATE devices d SET seg_pre_ts = NULL
        WHERE d.seg_pre_ts IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM sensor_readings r WHERE r.device_id = d.device_id AND r.ts = d.seg_first_ts)
        """
    )


def downgrade() -> None:
    op.execute("ALTER TABLE devices DROP COLUMN seg_first_seq")
