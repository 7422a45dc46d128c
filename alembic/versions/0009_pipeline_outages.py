"""Pipeline outages: when gridmon itself was not listening.

Revision ID: 0009_pipeline_outages
Revises: 0008_alertmanager
Create Date: 2026-11-30

A row is one interval in which no reading could arrive through no fault of the devices: a planned
stop of `gridmon up` (`planned_stop`, open until the next start) or a gap in the bridges'
heartbeat (`heartbeat_gap`). The staleness check does not count silence inside these intervals
(`gridmon.alerts.stale`); `gridmon.storage.outages.outages_between` gives them to any analysis.
`(source, started_at)` is unique, so recording the same gap twice is harmless.
"""

from __future__ import annotations

from alembic import op

revision = "0009_pipeline_outages"
down_revision = "0008_alertmanager"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE pipeline_outages (
            id          bigserial PRIMARY KEY,
            source      text        NOT NULL,
            reason      text        NOT NULL CHECK (reason IN ('planned_stop', 'heartbeat_gap')),
            started_at  timestamptz NOT NULL,
            ended_at    timestamptz CHECK (ended_at IS NULL OR ended_at >= started_at),
            recorded_at timestamptz NOT NULL DEFAULT now(),
            UNIQUE (source, started_at)
        )
        """
    )
    op.execute("CREATE INDEX pipeline_outages_span ON pipeline_outages (started_at, ended_at)")


def downgrade() -> None:
    op.execute("DROP TABLE pipeline_outages")
