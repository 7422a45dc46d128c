"""The `maintenance_predictions` table: every prediction is kept (history), the newest per device is current.

The predict job locks a device (`lock_device`), reads its previous level, inserts the new
prediction and — on a change into a notified level — writes the notification to the outbox
(`gridmon.storage.outbox`), all in one transaction. `latest_predictions` / `latest_prediction`
serve the API. Every function takes an open psycopg connection; the caller owns the transaction.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from gridmon.domain.maintenance import MaintenancePrediction

log = logging.getLogger(__name__)

_PREDICTION_COLUMNS = (
    "device_id, computed_at, predicted_failure_date, interval_low, interval_high, confidence, "
    "risk_score, risk_level, risk_factors, recommended_actions, inputs"
)


def lock_device(conn: psycopg.Connection, device_id: str) -> None:
    """Serialise concurrent runs for one device until the transaction ends (no double notification)."""
    conn.execute("SELECT pg_advisory_xact_lock(hashtext('gridmon.maintenance:' || %s))", (device_id,))


def previous_level(conn: psycopg.Connection, device_id: str) -> str | None:
    row = conn.execute(
        "SELECT risk_level FROM maintenance_predictions WHERE device_id = %s"
        " ORDER BY computed_at DESC, id DESC LIMIT 1",
        (device_id,),
    ).fetchone()
    return str(row[0]) if row else None


def insert_prediction(conn: psycopg.Connection, prediction: MaintenancePrediction) -> int:
    """Store one prediction; returns its id."""
    low, high = prediction.interval if prediction.interval else (None, None)
    row = conn.execute(
        f"INSERT INTO maintenance_predictions ({_PREDICTION_COLUMNS})"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
        (
            prediction.device_id,
            prediction.computed_at,
            prediction.predicted_failure_date,
            low,
            high,
            prediction.confidence,
            prediction.risk_score,
            prediction.risk_level,
            Jsonb(prediction.risk_factors),
            Jsonb(prediction.recommended_actions),
            Jsonb(prediction.inputs),
        ),
    ).fetchone()
    assert row is not None
    return int(row[0])


def _utc(value: datetime | None) -> datetime | None:
    return value.astimezone(UTC) if value is not None else None


def _from_row(row: tuple[Any, ...]) -> MaintenancePrediction:
    device_id, computed_at, failure, low, high, confidence, score, level, factors, actions, inputs = row
    return MaintenancePrediction(
        device_id=device_id,
        predicted_failure_date=_utc(failure),
        interval=(low.astimezone(UTC), high.astimezone(UTC)) if low is not None and high is not None else None,
        confidence=float(confidence),
        risk_score=float(score),
        risk_level=level,
        risk_factors=list(factors),
        recommended_actions=list(actions),
        computed_at=computed_at.astimezone(UTC),
        inputs=dict(inputs),
    )


def latest_predictions(conn: psycopg.Connection) -> list[MaintenancePrediction]:
    """The newest prediction of every device, ordered by device id."""
    rows = conn.execute(
        f"SELECT DISTINCT ON (device_id) {_PREDICTION_COLUMNS} FROM maintenance_predictions"
        " ORDER BY device_id, computed_at DESC, id DESC"
    ).fetchall()
    return [_from_row(row) for row in rows]


# The devices with predictions, one index probe each (a "skip scan" over the device_id index),
# then each device's newest prediction from (device_id, computed_at DESC, id DESC): the work is
# per device listed, not per prediction ever made. PostgreSQL evaluates the recursive part only
# as far as the LIMIT asks.
_LATEST_PAGE = f"""
WITH RECURSIVE ids AS (
    (SELECT device_id FROM maintenance_predictions WHERE device_id > %(after)s ORDER BY device_id LIMIT 1)
    UNION ALL
    SELECT (SELECT m.device_id FROM maintenance_predictions m WHERE m.device_id > ids.device_id
            ORDER BY m.device_id LIMIT 1)
    FROM ids WHERE ids.device_id IS NOT NULL
)
SELECT p.* FROM ids CROSS JOIN LATERAL (
    SELECT {_PREDICTION_COLUMNS} FROM maintenance_predictions mp WHERE mp.device_id = ids.device_id
    ORDER BY mp.computed_at DESC, mp.id DESC LIMIT 1
) p
WHERE ids.device_id IS NOT NULL AND (%(levels)s::text[] IS NULL OR p.risk_level = ANY(%(levels)s::text[]))
LIMIT %(n)s
"""


def latest_predictions_page(
    conn: psycopg.Connection, *, after: str | None, risk_levels: list[str] | None, limit: int
) -> list[MaintenancePrediction]:
    """The newest prediction of each device after `after` (by device id) whose risk level is one
    of `risk_levels` (all when None), at most `limit`, read by index (see `_LATEST_PAGE`)."""
    params = {"after": after or "", "levels": risk_levels or None, "n": limit}
    return [_from_row(row) for row in conn.execute(_LATEST_PAGE, params).fetchall()]


def latest_prediction(conn: psycopg.Connection, device_id: str) -> MaintenancePrediction | None:
    """The newest prediction of one device, or None."""
    row = conn.execute(
        f"SELECT {_PREDICTION_COLUMNS} FROM maintenance_predictions WHERE device_id = %s"
        " ORDER BY computed_at DESC, id DESC LIMIT 1",
        (device_id,),
    ).fetchone()
    return _from_row(row) if row else None
