"""Each device's hole behind its latest in-order batch, so batches committed out of order are
accounted without reading back.

Revision ID: 0013_seq_hole
Revises: 0012_seq_head
Create Date: 2026-11-30

Ingest locks a batch's `devices` rows after its readings moved (`gridmon.storage.seq_gaps`), so
two workers move in parallel and may commit a device's consecutive batches in the wrong order.
The earlier batch then lies in the device's *hole*: after the reading stored just before the
later batch and before that batch's first reading. These columns keep the hole:
- `seg_pre_ts`, `seg_pre_seq`: the reading stored just before the device's latest in-order batch
  (moved forward by each batch that lands in the hole);
- `seg_first_ts`: that batch's first reading (its seq is read from `sensor_readings` when a batch
  lands in the hole);
- `prior_way` replaces `prior_in_order`: which way the latest batch with `seq` took (1 in order,
  2 in the hole, 0 elsewhere; `gridmon.domain.seq`). Written for the batch's `RETURNING` (like
  `prior_seq`); nothing else reads it.
The hole exists while `seg_pre_ts` is not NULL: NULL until a device's next in-order batch with
`seq`. Adding the columns rewrites nothing.
"""

from __future__ import annotations

from alembic import op

revision = "0013_seq_hole"
down_revision = "0012_seq_head"
branch_labels = None
depends_on = None

_COLUMNS = {
    "seg_pre_ts": "timestamptz",
    "seg_pre_seq": "bigint",
    "seg_first_ts": "timestamptz",
    "prior_way": "smallint",
}


def upgrade() -> None:
    added = ", ".join(f"ADD COLUMN {name} {kind}" for name, kind in _COLUMNS.items())
    op.execute(f"ALTER TABLE devices DROP COLUMN prior_in_order, {added}")


def downgrade() -> None:
    dropped = ", ".join(f"DROP COLUMN {name}" for name in _COLUMNS)
    op.execute(f"ALTER TABLE devices ADD COLUMN prior_in_order boolean, {dropped}")
