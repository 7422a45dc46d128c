"""SQL of predictive maintenance: what the analysis reads and where predictions are kept.

Reads: device profiles, the bucket frame of a device (`BUCKETS_SQL`, the database-side twin of
`buckets.bucketize`), its newest reading, the fleet's recent voltage variance, anomaly episodes
from `alerts` when that table exists. Writes: `maintenance_predictions` (history kept) and the
notification outbox. `latest_predictions` / `latest_prediction` serve the API.

Every function takes an open psycopg connection; the caller owns the transaction.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import psycopg
from psycopg.types.json import Jsonb

from gridmon.maintenance.aging import AGING_A, AGING_B, KELVIN
from gridmon.maintenance.buckets import BUCKET_COLUMNS, empty_buckets
from gridmon.maintenance.model import DeviceProfile, Episode, MaintenanceConfig, MaintenancePrediction
from gridmon.maintenance.predict import CurrentReading

log = logging.getLogger(__name__)

# Same columns and definitions as buckets.bucketize (a test compares the two on real rows).
BUCKETS_SQL = """
SELECT floor(extract(epoch FROM ts)::float8 / %(bucket_s)s) * %(bucket_s)s AS bucket,
       count(*)::float8                                                   AS n,
       avg(extract(epoch FROM ts)::float8)                                AS t_mean,
       min(extract(epoch FROM ts)::float8)                                AS t_min,
       max(extract(epoch FROM ts)::float8)                                AS t_max,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY temperature)           AS temp_median,
       max(temperature)                                                   AS temp_max,
       avg(voltage)                                                       AS volt_mean,
       var_pop(voltage)                                                   AS volt_var,
       avg(current)                                                       AS cur_mean,
       max(current)                                                       AS cur_max,
       (count(*) FILTER (WHERE current > %(rated)s))::float8              AS cur_over,
       (count(*) FILTER (WHERE current > %(spike)s))::float8              AS cur_spikes,
       avg(exp(%(aging_a)s - %(aging_b)s / (temperature + %(rise)s + %(kelvin)s))) AS faa_mean
  FROM sensor_readings
 WHERE device_id = %(device_id)s
   AND ts > to_timestamp(%(start)s) AND ts <= to_timestamp(%(end)s)
 GROUP BY 1
 ORDER BY 1
"""

_PREDICTION_COLUMNS = (
    "device_id, computed_at, predicted_failure_date, interval_low, interval_high, confidence, "
    "risk_score, risk_level, risk_factors, recommended_actions, inputs"
)


def load_profiles(conn: psycopg.Connection, *, device_id: str | None, seen_since: float) -> list[DeviceProfile]:
    """The devices to predict: one named device (defaults if it has no row), or all seen recently."""
    if device_id is not None:
        row = conn.execute(
            "SELECT temperature_limit, rated_current FROM devices WHERE device_id = %s", (device_id,)
        ).fetchone()
        return [DeviceProfile.from_columns(device_id, *(row or (None, None)))]
    rows = conn.execute(
        "SELECT device_id, temperature_limit, rated_current FROM devices"
        " WHERE last_seen > to_timestamp(%s) ORDER BY device_id",
        (seen_since,),
    ).fetchall()
    return [DeviceProfile.from_columns(*row) for row in rows]


def load_buckets(
    conn: psycopg.Connection, profile: DeviceProfile, *, start: float, end: float, config: MaintenanceConfig
) -> pd.DataFrame:
    """The bucket frame of one device over (start, end]."""
    params = {
        "device_id": profile.device_id,
        "start": start,
        "end": end,
        "bucket_s": config.bucket_s,
        "rated": profile.rated_current,
        "spike": config.spike_factor * profile.rated_current,
        "rise": config.hotspot_rise_c,
        "aging_a": AGING_A,
        "aging_b": AGING_B,
        "kelvin": KELVIN,
    }
    rows = conn.execute(BUCKETS_SQL, params).fetchall()
    if not rows:
        return empty_buckets()
    return pd.DataFrame(rows, columns=list(BUCKET_COLUMNS)).astype(float)


def load_newest_reading(conn: psycopg.Connection, device_id: str, *, start: float, end: float) -> CurrentReading | None:
    """The device's newest reading in (start, end] — ORDER BY ts DESC, so the first row is the latest."""
    row = conn.execute(
        "SELECT extract(epoch FROM ts)::float8, voltage, current, temperature FROM sensor_readings"
        " WHERE device_id = %s AND ts > to_timestamp(%s) AND ts <= to_timestamp(%s)"
        " ORDER BY ts DESC LIMIT 1",
        (device_id, start, end),
    ).fetchone()
    return CurrentReading(*map(float, row)) if row else None


def load_fleet_voltage_vars(conn: psycopg.Connection, *, start: float, end: float) -> dict[str, float]:
    """Population voltage variance per device over (start, end]."""
    rows = conn.execute(
        "SELECT device_id, var_pop(voltage) FROM sensor_readings"
        " WHERE ts > to_timestamp(%s) AND ts <= to_timestamp(%s) GROUP BY device_id",
        (start, end),
    ).fetchall()
    return {device: float(var) for device, var in rows if var is not None}


def alerts_table_exists(conn: psycopg.Connection) -> bool:
    row = conn.execute("SELECT to_regclass('public.alerts') IS NOT NULL").fetchone()
    return bool(row and row[0])


def load_episodes(conn: psycopg.Connection, device_id: str, *, since: float) -> list[Episode]:
    """Anomaly episodes (alerts) of the device opened after `since`; none when there is no alerts table."""
    if not alerts_table_exists(conn):
        return []
    try:
        with conn.transaction():
            rows = conn.execute(
                "SELECT metric, detector, severity, state, extract(epoch FROM opened_at)::float8 FROM alerts"
                " WHERE device_id = %s AND opened_at > to_timestamp(%s) ORDER BY opened_at",
                (device_id, since),
            ).fetchall()
    except psycopg.errors.UndefinedColumn as exc:
        log.warning("alerts table has an unexpected shape, episodes ignored error=%s", exc)
        return []
    return [Episode(str(m), str(d), str(sev), str(state), float(at)) for m, d, sev, state, at in rows]


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


def enqueue_notification(conn: psycopg.Connection, device_id: str, prediction_id: int, payload: dict[str, Any]) -> None:
    conn.execute(
        "INSERT INTO maintenance_outbox (device_id, prediction_id, payload) VALUES (%s, %s, %s)",
        (device_id, prediction_id, Jsonb(payload)),
    )


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


def latest_prediction(conn: psycopg.Connection, device_id: str) -> MaintenancePrediction | None:
    """The newest prediction of one device, or None."""
    row = conn.execute(
        f"SELECT {_PREDICTION_COLUMNS} FROM maintenance_predictions WHERE device_id = %s"
        " ORDER BY computed_at DESC, id DESC LIMIT 1",
        (device_id,),
    ).fetchone()
    return _from_row(row) if row else None
