"""gridmon alerts as Prometheus Alertmanager alerts (the v2 API's `postableAlert`): pure mapping.

Which `alertname` an alert gets is decided by a table, so a new kind of alert is one line:
- `ALERTNAME_BY_KIND` maps the `alerts.kind` column: `limit` (safety limits) and `anomaly` (the
  streaming detector) → `GridAnomaly`, `no_data` → `GridNoData`, `data_gap` (a device's `seq`
  shows readings lost, `gridmon.alerts.gaps`) → `GridDataGap`;
- a maintenance notification (outbox topic `maintenance`) is `GridMaintenance`.

Labels (the alert's identity in Alertmanager, all low-cardinality): `alertname`, `device`,
`metric`, `severity`, `detector`, and the device profile's `kind` and `location` when set.
Annotations: `summary`, `description`, `value`, `expected` and `band` (only when the alert row
carries them: the streaming detector's expected value and band, columns `expected`, `band_lo`,
`band_hi`), `metrics` (an anomaly's metrics), `episode_id`, `link` (the device page).
`startsAt` is when the episode opened; `endsAt` is set only once it resolved — a firing alert
carries none, so Alertmanager resolves it after its `resolve_timeout` unless it is posted again
(the publisher re-sends firing alerts every `alertmanager_resend_s`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

ANOMALY = "GridAnomaly"
MAINTENANCE = "GridMaintenance"
NO_DATA = "GridNoData"
DATA_GAP = "GridDataGap"

ALERTNAME_BY_KIND: dict[str, str] = {
    "limit": ANOMALY,
    "anomaly": ANOMALY,
    "no_data": NO_DATA,
    "data_gap": DATA_GAP,
}
"""Alert kinds (the `alerts.kind` column) → alertname; an unknown kind is `GridAnomaly`."""

PROFILE_LABELS = ("kind", "location")  # labels from the row's `device_kind`, `device_location`
MAINTENANCE_METRIC = "risk"
MAINTENANCE_DETECTOR = "maintenance"

Alert = dict[str, Any]
Labels = dict[str, str]


def iso(value: Any) -> str:
    """An RFC 3339 time from a datetime, epoch seconds or an ISO string (as stored in JSON)."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, int | float):
        moment = datetime.fromtimestamp(value, UTC)
    else:
        moment = datetime.fromisoformat(str(value))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def alertname_for(row: dict[str, Any]) -> str:
    """The alertname of an `alerts` row (rows from before the `kind` column: `no_data` by metric)."""
    kind = row.get("kind") or ("no_data" if row.get("metric") == "no_data" else "limit")
    return ALERTNAME_BY_KIND.get(str(kind), ANOMALY)


def device_link(public_url: str, device_id: str) -> str:
    return f"{public_url}/#/device/{quote(device_id, safe='')}"


def _profile(labels: Labels, row: dict[str, Any]) -> Labels:
    for name in PROFILE_LABELS:
        value = row.get(f"device_{name}")
        if value:
            labels[name] = str(value)
    return labels


def _number(value: Any) -> str:
    return f"{float(value):.6g}"


def expectation(row: dict[str, Any]) -> dict[str, str]:
    """The `expected` value and `band` annotations of an alert, those its row has."""
    out = {}
    if row.get("expected") is not None:
        out["expected"] = _number(row["expected"])
    low, high = row.get("band_lo"), row.get("band_hi")
    if low is not None and high is not None:
        out["band"] = f"{_number(low)} .. {_number(high)}"
    return out


def anomaly_labels(row: dict[str, Any]) -> Labels:
    """The labels of an `alerts` row (with the device's `kind`/`location` when known)."""
    labels = {
        "alertname": alertname_for(row),
        "device": str(row["device_id"]),
        "metric": str(row["metric"]),
        "severity": str(row["severity"]),
        "detector": str(row["detector"]),
    }
    return _profile(labels, row)


def anomaly_alert(row: dict[str, Any], public_url: str) -> Alert:
    """The Alertmanager alert for the current state of an `alerts` row (resolved → `endsAt`)."""
    labels = anomaly_labels(row)
    link = device_link(public_url, labels["device"])
    annotations = {
        "summary": f"{labels['alertname']} on {labels['device']} ({labels['metric']}, {labels['severity']})",
        "description": str(row.get("description") or ""),
        "episode_id": str(row["id"]),
        "link": link,
    }
    if row.get("value") is not None:
        annotations["value"] = _number(row["value"])
    annotations.update(expectation(row))
    if row.get("metrics"):
        annotations["metrics"] = ",".join(str(m) for m in row["metrics"])
    alert: Alert = {
        "labels": labels,
        "annotations": annotations,
        "startsAt": iso(row["opened_at"]),
        "generatorURL": link,
    }
    if row.get("state") == "resolved":
        alert["endsAt"] = iso(row.get("resolved_at") or row["last_seen_at"])
    return alert


def maintenance_labels(row: dict[str, Any]) -> Labels:
    """The labels of a device's maintenance alert (its latest prediction, with profile columns)."""
    labels = {
        "alertname": MAINTENANCE,
        "device": str(row["device_id"]),
        "metric": MAINTENANCE_METRIC,
        "severity": str(row["risk_level"]),
        "detector": MAINTENANCE_DETECTOR,
    }
    return _profile(labels, row)


def maintenance_alert(row: dict[str, Any], public_url: str, *, firing: bool, now: datetime) -> Alert:
    """A device's maintenance alert: firing while its latest risk level is a notified one."""
    labels = maintenance_labels(row)
    link = device_link(public_url, labels["device"])
    failure = row.get("predicted_failure_date")
    description = f"maintenance risk {row['risk_level']} (score {_number(row['risk_score'])})"
    if failure:
        description += f", predicted failure {iso(failure)}"
    alert: Alert = {
        "labels": labels,
        "annotations": {
            "summary": f"{MAINTENANCE} on {labels['device']} ({labels['severity']})",
            "description": description,
            "value": _number(row["risk_score"]),
            "link": link,
        },
        "startsAt": iso(row["computed_at"]),
        "generatorURL": link,
    }
    if not firing:
        alert["endsAt"] = iso(now)
    return alert


def resolved(labels: Labels, ends_at: datetime) -> Alert:
    """A resolution of a label set Alertmanager holds (labels changed or the alert went away)."""
    return {"labels": dict(labels), "annotations": {}, "startsAt": iso(ends_at), "endsAt": iso(ends_at)}
