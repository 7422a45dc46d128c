"""What the Alertmanager sink reads and remembers: alert state with device profiles, and the
`alertmanager_alerts` table (the label set last posted as firing, per alert key).

Alert rows are returned as `to_jsonb(alerts)` plus the device profile's `device_kind` and
`device_location` (the alert's own `kind` is another thing), so columns a later revision adds
reach the mapping without a change here.
Times in those dicts are ISO strings.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

Row = dict[str, Any]

_ALERTS = """
SELECT to_jsonb(a) || jsonb_build_object('device_kind', d.kind, 'device_location', d.location)
FROM alerts a LEFT JOIN devices d ON d.device_id = a.device_id
"""

_LATEST_PREDICTIONS = """
SELECT DISTINCT ON (p.device_id) p.device_id, p.risk_level, p.risk_score, p.predicted_failure_date,
       p.computed_at, d.kind, d.location
FROM maintenance_predictions p LEFT JOIN devices d ON d.device_id = p.device_id
WHERE {where}
ORDER BY p.device_id, p.computed_at DESC, p.id DESC
"""
_PREDICTION_FIELDS = (
    "device_id",
    "risk_level",
    "risk_score",
    "predicted_failure_date",
    "computed_at",
    "device_kind",
    "device_location",
)


def alerts_by_id(conn: psycopg.Connection, ids: Iterable[int]) -> dict[int, Row]:
    """Current rows of these alerts (with profile columns), by id."""
    rows = conn.execute(_ALERTS + " WHERE a.id = ANY(%s)", (sorted(set(ids)),)).fetchall()
    return {int(row[0]["id"]): row[0] for row in rows}


def unresolved_alert_ids(conn: psycopg.Connection) -> list[int]:
    return [int(r[0]) for r in conn.execute("SELECT id FROM alerts WHERE state <> 'resolved' ORDER BY id")]


def latest_predictions(conn: psycopg.Connection, device_ids: Iterable[str]) -> dict[str, Row]:
    """The newest prediction of each of these devices (with profile columns), by device."""
    rows = conn.execute(
        _LATEST_PREDICTIONS.format(where="p.device_id = ANY(%s)"), (sorted(set(device_ids)),)
    ).fetchall()
    return {str(r[0]): dict(zip(_PREDICTION_FIELDS, r, strict=True)) for r in rows}


def devices_at_levels(conn: psycopg.Connection, levels: Sequence[str]) -> list[str]:
    """Devices whose newest prediction is at one of `levels`."""
    rows = conn.execute(
        "SELECT device_id FROM (SELECT DISTINCT ON (device_id) device_id, risk_level FROM maintenance_predictions"
        " ORDER BY device_id, computed_at DESC, id DESC) latest WHERE risk_level = ANY(%s)",
        (list(levels),),
    ).fetchall()
    return [str(r[0]) for r in rows]


def sent_labels(conn: psycopg.Connection, keys: Iterable[str] | None = None) -> dict[str, dict[str, str]]:
    """The label set last posted as firing, per key (all keys when `keys` is None)."""
    if keys is None:
        rows = conn.execute("SELECT key, labels FROM alertmanager_alerts").fetchall()
    else:
        rows = conn.execute(
            "SELECT key, labels FROM alertmanager_alerts WHERE key = ANY(%s)", (sorted(set(keys)),)
        ).fetchall()
    return {str(k): dict(v) for k, v in rows}


def remember(conn: psycopg.Connection, firing: dict[str, dict[str, str]]) -> None:
    """Record the label sets just posted as firing."""
    for key, labels in sorted(firing.items()):
        conn.execute(
            "INSERT INTO alertmanager_alerts (key, labels) VALUES (%s, %s)"
            " ON CONFLICT (key) DO UPDATE SET labels = EXCLUDED.labels, updated_at = now()",
            (key, Jsonb(labels)),
        )


def forget(conn: psycopg.Connection, keys: Iterable[str]) -> None:
    """Drop keys whose alert was posted resolved."""
    conn.execute("DELETE FROM alertmanager_alerts WHERE key = ANY(%s)", (sorted(set(keys)),))
