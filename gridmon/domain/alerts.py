"""The alert message consumers receive (Redis list, channel and stream) and its JSON form.

One message per alert *event*: `opened` when an episode starts, `escalated` when its severity
rises, `resolved` when it ends. `episode_id` is the `alerts.id` of the episode, so consumers can
fold the three events of one fault together; `event_id` (the outbox row id, added when
published) lets a consumer drop the rare duplicate (publishing is at-least-once).

Where messages go: each outbox topic has a Redis list (newest first, capped), a pub/sub channel
and a stream (capped). Anomaly events go to `alerts:anomalies…`; maintenance risk-level
notifications (`MAINTENANCE_EVENT`) to `alerts:maintenance…`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

EVENTS = ("opened", "escalated", "resolved")
MAINTENANCE_EVENT = "risk_changed"


@dataclass(frozen=True, slots=True)
class Topic:
    """One kind of outbox message and its Redis keys."""

    name: str
    list_key: str
    channel: str
    stream_key: str


ANOMALIES = Topic("anomalies", "alerts:anomalies", "alerts:anomalies:channel", "alerts:anomalies:stream")
MAINTENANCE = Topic("maintenance", "alerts:maintenance", "alerts:maintenance:channel", "alerts:maintenance:stream")
TOPICS = {topic.name: topic for topic in (ANOMALIES, MAINTENANCE)}


def _epoch(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


def _iso(epoch: float | None) -> str | None:
    return datetime.fromtimestamp(epoch, UTC).isoformat() if epoch is not None else None


@dataclass(frozen=True, slots=True)
class AnomalyAlert:
    """One alert event. `ts` is the reading (epoch s) the event is about; `timestamp` its
    ISO-8601 form, as the original design's consumers expect."""

    device_id: str
    ts: float
    metric: str
    value: float | None
    severity: str
    detector: str
    score: float | None
    description: str
    episode_id: int
    event: str
    state: str
    opened_at: float
    last_seen_at: float
    resolved_at: float | None
    readings_count: int
    kind: str = "limit"
    metrics: list[str] | None = None
    expected: float | None = None
    band_lo: float | None = None
    band_hi: float | None = None

    @property
    def timestamp(self) -> str:
        return _iso(self.ts) or ""

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form (what the outbox stores and Redis consumers read)."""
        data = asdict(self)
        data["timestamp"] = self.timestamp
        return data

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AnomalyAlert:
        """Parse a published message (extra keys such as `event_id` and `timestamp` are ignored)."""
        names = cls.__dataclass_fields__.keys()
        return cls(**{name: data[name] for name in names if name in data})

    @classmethod
    def from_row(cls, row: dict[str, Any], event: str, ts: float | None = None) -> AnomalyAlert:
        """The event message for an `alerts` row (a dict with the table's columns)."""
        if event not in EVENTS:
            raise ValueError(f"unknown alert event {event!r}")
        opened = _epoch(row["opened_at"]) or 0.0
        last_seen = _epoch(row["last_seen_at"]) or opened
        if ts is None:
            ts = last_seen if event == "resolved" else opened
        return cls(
            device_id=row["device_id"],
            ts=ts,
            metric=row["metric"],
            value=row["value"],
            severity=row["severity"],
            detector=row["detector"],
            score=row["score"],
            description=row["description"],
            episode_id=int(row["id"]),
            event=event,
            state=row["state"],
            opened_at=opened,
            last_seen_at=last_seen,
            resolved_at=_epoch(row["resolved_at"]),
            readings_count=int(row["readings_count"]),
            kind=row.get("kind") or "limit",
            metrics=list(row["metrics"]) if row.get("metrics") else [row["metric"]],
            expected=row.get("expected"),
            band_lo=row.get("band_lo"),
            band_hi=row.get("band_hi"),
        )
