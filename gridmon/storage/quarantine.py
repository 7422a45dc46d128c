"""Moving stored readings a job cannot process out of `sensor_readings` into `dead_letters`.

The scan calls these inside its step's transaction: the rows leave the table and become dead
letters in the same commit as the watermark move, so a reading is never in both places nor in
neither. Each letter is the reading as the JSON object a sensor would send (NaN and Infinity
written as such, so a replay names the real problem), on its device's topic; a replay through the
API validates it like any reading and stores it again once whatever was wrong is fixed.
"""

from __future__ import annotations

from datetime import datetime

import psycopg

from gridmon.domain.readings import MAX_DETAIL_CHARS, PHYSICAL_LIMITS, TS_MAX, TS_MIN

# The reading as sensor JSON, built in SQL from the deleted row (`r`).
_PAYLOAD = """convert_to(format(
    '{"device_id":%%s,"timestamp":%%s,"voltage":%%s,"current":%%s,"temperature":%%s%%s}',
    to_json(r.device_id), to_json(to_char(r.ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')),
    r.voltage::text, r.current::text, r.temperature::text,
    CASE WHEN r.extra IS NULL THEN '' ELSE ',"extra":' || r.extra::text END), 'UTF8')"""

_USABLE = """(r.ts >= to_timestamp(%(ts_min)s) AND r.ts < to_timestamp(%(ts_max)s)
    AND r.voltage >= %(v_lo)s AND r.voltage <= %(v_hi)s AND r.current >= %(i_lo)s AND r.current <= %(i_hi)s
    AND r.temperature >= %(t_lo)s AND r.temperature <= %(t_hi)s)"""

_REASON = """CASE
    WHEN NOT (r.ts >= to_timestamp(%(ts_min)s) AND r.ts < to_timestamp(%(ts_max)s)) THEN 'bad_timestamp'
    WHEN r.voltage IN ('NaN', 'Infinity', '-Infinity') OR r.current IN ('NaN', 'Infinity', '-Infinity')
      OR r.temperature IN ('NaN', 'Infinity', '-Infinity') THEN 'non_finite'
    ELSE 'out_of_physical_range' END"""

_MOVE = """
WITH gone AS (
    DELETE FROM sensor_readings r WHERE __WHERE__
    RETURNING r.*, __REASON__ AS reason
), letters AS (
    SELECT 'grid/sensors/' || r.device_id AS topic, __PAYLOAD__ AS body, r.reason FROM gone r
), stored AS (
    INSERT INTO dead_letters (topic, payload, payload_size, payload_sha256, reason, detail)
    SELECT topic, body, length(body), sha256(body), reason, %(detail)s FROM letters
    RETURNING reason
)
SELECT reason, count(*) FROM stored GROUP BY reason ORDER BY reason
"""

_MOVE = _MOVE.replace("__PAYLOAD__", _PAYLOAD)
# A shard's window: its buckets (the (bucket, ingested_at) index) and the ingest-time range.
_WINDOW = (
    "gridmon_bucket(r.device_id) = ANY(%(buckets)s::int[]) AND r.ingested_at >= %(lower)s AND r.ingested_at < %(upper)s"
)


def _bounds() -> dict[str, float]:
    (v_lo, v_hi), (i_lo, i_hi), (t_lo, t_hi) = (PHYSICAL_LIMITS[m] for m in ("voltage", "current", "temperature"))
    return {
        "ts_min": TS_MIN,
        "ts_max": TS_MAX,
        "v_lo": v_lo,
        "v_hi": v_hi,
        "i_lo": i_lo,
        "i_hi": i_hi,
        "t_lo": t_lo,
        "t_hi": t_hi,
    }


def quarantine_unusable(
    conn: psycopg.Connection, lower: datetime, upper: datetime, buckets: tuple[int, int], *, detail: str
) -> dict[str, int]:
    """Move the readings of buckets [low, high) ingested in [lower, upper) that validation would
    reject today (stamped outside the accepted range, non-finite or physically impossible values)
    to dead letters, with that reason. Returns {reason: count}."""
    query = _MOVE.replace("__WHERE__", f"{_WINDOW} AND NOT {_USABLE}").replace("__REASON__", _REASON)
    params: dict[str, object] = {**_bounds(), "lower": lower, "upper": upper, "buckets": list(range(*buckets))}
    params["detail"] = detail[:MAX_DETAIL_CHARS]
    return {str(reason): int(n) for reason, n in conn.execute(query, params)}


def quarantine_device(
    conn: psycopg.Connection,
    device_id: str,
    lower: datetime,
    upper: datetime,
    buckets: tuple[int, int],
    *,
    reason: str,
    detail: str,
) -> int:
    """Move one device's readings ingested in [lower, upper) (its shard's `buckets`) to dead
    letters with `reason`."""
    where = f"{_WINDOW} AND r.device_id = %(device)s"
    query = _MOVE.replace("__WHERE__", where).replace("__REASON__", "%(reason)s::text")
    params: dict[str, object] = {"lower": lower, "upper": upper, "device": device_id, "reason": reason}
    params["buckets"] = list(range(*buckets))
    params["detail"] = detail[:MAX_DETAIL_CHARS]
    return sum(int(n) for _, n in conn.execute(query, params))
