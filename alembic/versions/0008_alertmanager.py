"""Alertmanager delivery: per-sink outbox state and the label sets Alertmanager holds.

Revision ID: 0008_alertmanager
Revises: 0007_hardening
Create Date: 2026-12-01

The one outbox now has two sinks that deliver independently, each marking its own column only
after its target accepted the row: `published_at` (Redis, as before) and `alertmanager_at`
(Alertmanager). Rows that exist when this revision runs are marked delivered to Alertmanager:
Alertmanager learns the alerts that are still firing from the publisher's periodic re-send.

`alertmanager_alerts` remembers, per alert key (`anomaly:<alert id>`, `maintenance:<device>`),
the label set last posted as firing: when an alert's labels change (severity escalates, a device
moves to another location), the previous label set is resolved in Alertmanager instead of being
left to time out, and a maintenance alert whose device left the notified risk levels is resolved.
"""

from __future__ import annotations

from alembic import op

revision = "0008_alertmanager"
down_revision = "0007_hardening"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE alert_outbox ADD COLUMN alertmanager_at timestamptz")
    op.execute("UPDATE alert_outbox SET alertmanager_at = coalesce(published_at, created_at)")
    op.execute("CREATE INDEX alert_outbox_alertmanager_pending ON alert_outbox (id) WHERE alertmanager_at IS NULL")
    op.execute(
        """
        CREATE TABLE alertmanager_alerts (
            key        text PRIMARY KEY,
            labels     jsonb       NOT NULL,
            updated_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE alertmanager_alerts")
    op.execute("DROP INDEX alert_outbox_alertmanager_pending")
    op.execute("ALTER TABLE alert_outbox DROP COLUMN alertmanager_at")
