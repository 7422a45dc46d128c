"""Detection state: alerts (episodes), their outbox, model versions, scan watermarks.

Revision ID: 0002_alerts
Revises: 0001
Create Date: 2026-11-27

- `alerts`: one row per episode (its id is the episode id). At most one unresolved alert per
  (device_id, metric), enforced by a partial unique index, so concurrent writers (the ingest
  hook and the scan) cannot open the same fault twice.
- `alert_readings`: which reading timestamps an alert already counted, so the ingest hook and
  the scan (which both see safety-limit violations) never count a reading twice.
- `alert_outbox`: events written in the same transaction as the alert change and published to
  Redis afterwards; `published_at` stays NULL until Redis has them.
- `model_versions`: trained IsolationForest versions; at most one `active`.
- `scan_state`: the ingest-time watermark of each incremental scan.
"""

from __future__ import annotations

from alembic import op

revision = "0002_alerts"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE alerts (
            id             bigserial PRIMARY KEY,
            device_id      text NOT NULL,
            metric         text NOT NULL,
            detector       text NOT NULL,
            state          text NOT NULL DEFAULT 'open'
                           CHECK (state IN ('open', 'acknowledged', 'resolved')),
            severity       text NOT NULL CHECK (severity IN ('low', 'medium', 'high', 'critical')),
            opened_at      timestamptz NOT NULL,
            last_seen_at   timestamptz NOT NULL,
            resolved_at    timestamptz,
            resolved_reason text,
            value          double precision,
            value_ts       timestamptz,
            score          double precision,
            description    text NOT NULL DEFAULT '',
            readings_count integer NOT NULL DEFAULT 0,
            ack_note       text,
            acked_at       timestamptz,
            created_at     timestamptz NOT NULL DEFAULT now(),
            updated_at     timestamptz NOT NULL DEFAULT now(),
            CHECK ((state = 'resolved') = (resolved_at IS NOT NULL))
        )
        """
    )
    op.execute("CREATE UNIQUE INDEX alerts_one_unresolved ON alerts (device_id, metric) WHERE state <> 'resolved'")
    op.execute("CREATE INDEX alerts_device_metric_opened ON alerts (device_id, metric, opened_at)")
    op.execute("CREATE INDEX alerts_state_opened ON alerts (state, opened_at DESC)")
    op.execute(
        """
        CREATE TABLE alert_readings (
            alert_id bigint NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
            ts       timestamptz NOT NULL,
            PRIMARY KEY (alert_id, ts)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE alert_outbox (
            id           bigserial PRIMARY KEY,
            alert_id     bigint NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
            event        text NOT NULL CHECK (event IN ('opened', 'escalated', 'resolved')),
            payload      jsonb NOT NULL,
            created_at   timestamptz NOT NULL DEFAULT now(),
            published_at timestamptz
        )
        """
    )
    # The publisher only ever looks for unpublished rows, in id order.
    op.execute("CREATE INDEX alert_outbox_pending ON alert_outbox (id) WHERE published_at IS NULL")
    op.execute("CREATE INDEX alert_outbox_alert ON alert_outbox (alert_id)")
    op.execute(
        """
        CREATE TABLE model_versions (
            id            serial PRIMARY KEY,
            trained_at    timestamptz NOT NULL DEFAULT now(),
            window_start  timestamptz,
            window_end    timestamptz,
            n_samples     integer NOT NULL,
            features      jsonb NOT NULL,
            threshold     double precision NOT NULL,
            params        jsonb NOT NULL DEFAULT '{}'::jsonb,
            metrics       jsonb NOT NULL DEFAULT '{}'::jsonb,
            status        text NOT NULL DEFAULT 'inactive' CHECK (status IN ('active', 'inactive')),
            artifact_path text NOT NULL,
            note          text,
            activated_at  timestamptz
        )
        """
    )
    op.execute("CREATE UNIQUE INDEX model_versions_one_active ON model_versions (status) WHERE status = 'active'")
    op.execute(
        """
        CREATE TABLE scan_state (
            name       text PRIMARY KEY,
            watermark  timestamptz NOT NULL,
            updated_at timestamptz NOT NULL DEFAULT now(),
            readings   bigint NOT NULL DEFAULT 0
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS scan_state")
    op.execute("DROP TABLE IF EXISTS model_versions")
    op.execute("DROP TABLE IF EXISTS alert_outbox")
    op.execute("DROP TABLE IF EXISTS alert_readings")
    op.execute("DROP TABLE IF EXISTS alerts")
