"""The step into each device's hole's end lives on `devices` until the hole is left behind.

Revision ID: 0015_seq_hole_end_pending
Revises: 0014_seq_hole_end
Create Date: 2026-12-01

`devices.seg_first_missing`: the readings missing in the step into `seg_first_ts` (the first
reading of the device's latest in-order batch), counted but not yet written to `reading_gaps`.
When two workers commit a device's consecutive batches in the wrong order, the later batch counts
a gap there that the earlier one fills a moment later; kept on the row, that costs no gap row
written and deleted (`gridmon.storage.seq_gaps`). The next batch that is not in the hole writes it
to `reading_gaps` if it is above 0. `prior_first_ts`, `prior_missing`: what the upsert found there
(PostgreSQL 15's RETURNING gives only new values). The view `reading_gaps_all` is what readers
count: the rows plus each device's pending step.

Open holes take their end's gap row onto the device's row (the row is deleted); the default 0 is
added without rewriting the table.
"""

from __future__ import annotations

from alembic import op

revision = "0015_seq_hole_end_pending"
down_revision = "0014_seq_hole_end"
branch_labels = None
depends_on = None

_VIEW = """
CREATE VIEW reading_gaps_all AS
SELECT device_id, ts, missing FROM reading_gaps
UNION ALL
SELECT device_id, seg_first_ts, seg_first_missing FROM devices WHERE seg_first_missing > 0
"""


def upgrade() -> None:
    op.execute(
        "ALTER TABLE devices ADD COLUMN seg_first_missing bigint NOT NULL DEFAULT 0,"
        " ADD COLUMN prior_first_ts timestamptz, ADD COLUMN prior_missing bigint"
    )
    op.execute(
        """
        WITH moved AS (
            DELETE FROM reading_gaps g USING devices d
            WHERE d.seg_pre_ts IS NOT NULL AND g.device_id = d.device_id AND g.ts = d.seg_first_ts
            RETURNING g.device_id, g.missing
        )
        UPDATE devices d SET seg_first_missing = m.missing FROM moved m WHERE d.device_id = m.device_id
        """
    )
    op.execute(_VIEW)


def downgrade() -> None:
    op.execute("DROP VIEW reading_gaps_all")
    op.execute(
        """
        INSERT INTO reading_gaps (device_id, ts, missing)
        SELECT device_id, seg_first_ts, seg_first_missing FROM devices WHERE seg_first_missing > 0
        ON CONFLICT (device_id, ts) DO UPDATE SET missing = EXCLUDED.missing
        """
    )
    op.execute(
        "ALTER TABLE devices DROP COLUMN seg_first_missing, DROP COLUMN prior_first_ts, DROP COLUMN prior_missing"
    )
