"""What predictive maintenance reads from `sensor_readings`: the bucket frame of one device
(`BUCKETS_SQL`, the database-side twin of `gridmon.maintenance.buckets.bucketize`; a test compares
the two on real rows), its newest reading and the fleet's recent voltage variance.

The aging expression uses the constants of `gridmon.domain.maintenance`, like the pandas path.
"""

from __future__ import annotations

from typing import Protocol

import pandas as pd
import psycopg

from gridmon.domain.maintenance import AGING_A, AGING_B, KELVIN, CurrentReading

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


class BucketProfile(Protocol):
    """The device fields the bucket query needs (a `DeviceProfile`)."""

    @property
    def device_id(self) -> str: ...
    @property
    def rated_current(self) -> float: ...


class BucketConfig(Protocol):
    """The analysis settings the bucket query needs (a `MaintenanceConfig`)."""

    @property
    def bucket_s(self) -> float: ...
    @property
    def spike_factor(self) -> float: ...
    @property
    def hotspot_rise_c(self) -> float: ...


def load_buckets(
    conn: psycopg.Connection, profile: BucketProfile, *, start: float, end: float, config: BucketConfig
) -> pd.DataFrame:
    """The bucket frame of one device over (start, end] (float columns, named as in the query)."""
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
    with conn.cursor() as cur:
        rows = cur.execute(BUCKETS_SQL, params).fetchall()
        names = [column.name for column in cur.description or ()]
    if not rows:
        return pd.DataFrame({name: pd.Series(dtype=float) for name in names})
    return pd.DataFrame(rows, columns=names).astype(float)


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
