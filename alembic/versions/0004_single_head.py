"""Join the detection (0002) and maintenance (0003) branches into one head.

Revision ID: 0004
Revises: 0002_alerts, 0003_maintenance
Create Date: 2026-11-27

Both branches start from 0001 and touch different tables; after this revision
`alembic upgrade head` (one head) and `gridmon migrate` work the same way.
"""

from __future__ import annotations

revision = "0004"
down_revision = ("0002_alerts", "0003_maintenance")
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
