"""Predictive maintenance: maintenance_predictions (history kept) and the notification outbox.

Revision ID: 0003_maintenance
Revises: 0001
Create Date: 2026-11-27

A branch of its own off 0001 (alerts are 0002, a sibling head); `gridmon migrate` upgrades heads.

`maintenance_outbox` holds the Redis notifications of risk-level changes: a row is written in the
same transaction as the prediction that caused it and marked sent once Redis took it, so a Redis
outage delays a notification instead of losing it.
"""

from __future__ import annotations

from alembic import op

revision = "0003_maintenance"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE maintenance_predictions (
            id                     bigserial PRIMARY KEY,
            device_id              text             NOT NULL,
            computed_at            timestamptz      NOT NULL,
            predicted_failure_date timestamptz,
            interval_low           timestamptz,
            interval_high          timestamptz,
            confidence             double precision NOT NULL,
            risk_score             double precision NOT NULL,
            risk_level             text             NOT NULL
                CHECK (risk_level IN ('low', 'medium', 'high', 'critical')),
            risk_factors           jsonb            NOT NULL DEFAULT '[]'::jsonb,
            recommended_actions    jsonb            NOT NULL DEFAULT '[]'::jsonb,
            inputs                 jsonb            NOT NULL DEFAULT '{}'::jsonb
        )
        """
    )
    op.execute(
        "CREATE INDEX maintenance_predictions_device_computed ON maintenance_predictions (device_id, computed_at DESC)"
    )
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


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS maintenance_outbox")
    op.execute("DROP TABLE IF EXISTS maintenance_predictions")
