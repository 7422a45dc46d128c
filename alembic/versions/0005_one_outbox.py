"""One outbox for every Redis topic: `maintenance_outbox` folds into `alert_outbox`.

Revision ID: 0005_one_outbox
Revises: 0004
Create Date: 2026-11-30

Alert events and maintenance notifications were two outboxes drained by two publishers with
different columns (`published_at` / `sent_at`). After this revision there is one table, drained
by one publisher (`gridmon.jobs.publish`):
- `topic`: `anomalies` (alert events) or `maintenance` (risk-level notifications);
- `device_id` for every row; `alert_id` (now nullable) for alert events, `prediction_id` for
  notifications; `event` also allows `risk_changed`;
- every row of `maintenance_outbox` is copied over (payload, times, `sent_at` → `published_at`,
  in id order) and the old table dropped. The downgrade moves them back the same way.
"""

from __future__ import annotations

from alembic import op

revision = "0005_one_outbox"
down_revision = "0004"
branch_labels = None
depends_on = None

ALERT_EVENTS = "'opened', 'escalated', 'resolved'"


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE alert_outbox
            ADD COLUMN topic text NOT NULL DEFAULT 'anomalies' CHECK (topic IN ('anomalies', 'maintenance')),
            ADD COLUMN device_id text,
            ADD COLUMN prediction_id bigint REFERENCES maintenance_predictions (id) ON DELETE SET NULL,
            ALTER COLUMN alert_id DROP NOT NULL
        """
    )
    op.execute("UPDATE alert_outbox o SET device_id = a.device_id FROM alerts a WHERE a.id = o.alert_id")
    op.execute("UPDATE alert_outbox SET device_id = payload->>'device_id' WHERE device_id IS NULL")
    op.execute("ALTER TABLE alert_outbox ALTER COLUMN device_id SET NOT NULL")
    op.execute("ALTER TABLE alert_outbox DROP CONSTRAINT alert_outbox_event_check")
    op.execute(
        f"ALTER TABLE alert_outbox ADD CONSTRAINT alert_outbox_event_check"
        f" CHECK (event IN ({ALERT_EVENTS}, 'risk_changed'))"
    )
    op.execute(
        """
        INSERT INTO alert_outbox (topic, device_id, prediction_id, event, payload, created_at, published_at)
        SELECT 'maintenance', device_id, prediction_id, 'risk_changed', payload, created_at, sent_at
        FROM maintenance_outbox ORDER BY id
        """
    )
    op.execute("DROP TABLE maintenance_outbox")


def downgrade() -> None:
    op.execute(
        """
        CREATE TABLE maintenance_outbox (
            id            bigserial PRIMARY KEY,
            device_id     text        NOT NULL,
            prediction_id bigint      REFERENCES maintenance_predictions (id) ON DELETE SET NULL,
            created_at    timestamptz NOT NULL DEFAULT now(),
            payload       jsonb       NOT NULL,
            sent_at       timestamptz
        )
        """
    )
    op.execute("CREATE INDEX maintenance_outbox_unsent ON maintenance_outbox (id) WHERE sent_at IS NULL")
    op.execute(
        """
        INSERT INTO maintenance_outbox (device_id, prediction_id, created_at, payload, sent_at)
        SELECT device_id, prediction_id, created_at, payload, published_at
        FROM alert_outbox WHERE topic = 'maintenance' ORDER BY id
        """
    )
    op.execute("DELETE FROM alert_outbox WHERE topic = 'maintenance'")
    op.execute("ALTER TABLE alert_outbox DROP CONSTRAINT alert_outbox_event_check")
    op.execute(f"ALTER TABLE alert_outbox ADD CONSTRAINT alert_outbox_event_check CHECK (event IN ({ALERT_EVENTS}))")
    op.execute(
        """
        ALTER TABLE alert_outbox
            ALTER COLUMN alert_id SET NOT NULL,
            DROP COLUMN prediction_id,
            DROP COLUMN device_id,
            DROP COLUMN topic
        """
    )
