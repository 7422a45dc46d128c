"""The Alertmanager sink of the one publisher: outbox rows → Alertmanager's v2 API (`POST /api/v2/alerts`).

Alertmanager holds alert *state*, so this sink posts the current state of what changed rather
than replaying events: for a batch of pending outbox rows it reads the current `alerts` rows they
name (an anomaly, `no_data`, …) and the latest prediction of the devices of maintenance rows,
maps them (`gridmon.domain.alertmanager`) and posts them in one request. Only after
Alertmanager answered 200 are the rows marked `alertmanager_at` (same transaction as the read),
so Alertmanager down leaves them pending and the next drain sends them: at-least-once, like the
Redis sink, and independent of it (own column, own lock, own back-off).

Every `alertmanager_resend_s` a drain also posts every alert still firing (unresolved alerts,
devices whose latest risk level is a notified one): Alertmanager resolves an alert nobody
re-sends within its `resolve_timeout`. The label set posted as firing is remembered per alert key
(`gridmon.storage.alertmanager`); when it changes (escalation changes `severity`, a profile
change moves `location`) the old label set is posted resolved, and a remembered alert that is no
longer firing is posted resolved, so nothing is left to time out in Alertmanager.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import orjson
import psycopg

from gridmon.config import Settings
from gridmon.domain import alertmanager as am
from gridmon.domain.alerts import ANOMALIES, MAINTENANCE
from gridmon.maintenance.model import MaintenanceConfig
from gridmon.storage import alertmanager as store
from gridmon.storage import db, outbox

log = logging.getLogger(__name__)

SINK = outbox.ALERTMANAGER
API_PATH = "/api/v2/alerts"


class AlertmanagerRefused(RuntimeError):
    """Alertmanager could not be reached or did not accept a post."""


@dataclass
class Plan:
    """What one post says: the alerts, and the remembered label sets to update after it."""

    alerts: list[am.Alert]
    firing: dict[str, am.Labels]
    gone: set[str]


def _anomaly_key(alert_id: int) -> str:
    return f"anomaly:{alert_id}"


def _maintenance_key(device_id: str) -> str:
    return f"maintenance:{device_id}"


def plan(
    conn: psycopg.Connection,
    rows: Sequence[outbox.PendingRow],
    *,
    full: bool,
    public_url: str,
    notify_levels: Sequence[str],
    now: datetime,
) -> Plan:
    """The alerts to post for these outbox rows (and, with `full`, for everything still firing)."""
    alert_ids = {int(p["episode_id"]) for _, topic, _, p in rows if topic == ANOMALIES.name}
    devices = {str(p["device_id"]) for _, topic, _, p in rows if topic == MAINTENANCE.name}
    remembered = store.sent_labels(conn, None) if full else {}
    if full:
        alert_ids.update(store.unresolved_alert_ids(conn))
        devices.update(store.devices_at_levels(conn, notify_levels))
        for key in remembered:
            kind, _, ident = key.partition(":")
            if kind == "anomaly":
                alert_ids.add(int(ident))
            else:
                devices.add(ident)
    else:
        keys = [_anomaly_key(i) for i in alert_ids] + [_maintenance_key(d) for d in devices]
        remembered = store.sent_labels(conn, keys)

    current: dict[str, am.Alert] = {}
    for alert_id, row in store.alerts_by_id(conn, alert_ids).items():
        current[_anomaly_key(alert_id)] = am.anomaly_alert(row, public_url)
    for device_id, row in store.latest_predictions(conn, devices).items():
        firing = row["risk_level"] in notify_levels
        current[_maintenance_key(device_id)] = am.maintenance_alert(row, public_url, firing=firing, now=now)

    out = Plan([], {}, set())
    for key in sorted(set(current) | set(remembered)):
        alert = current.get(key)
        before = remembered.get(key)
        if alert is not None:
            out.alerts.append(alert)
        if before is not None and (alert is None or alert["labels"] != before):
            out.alerts.append(am.resolved(before, now))
        if alert is not None and "endsAt" not in alert:
            out.firing[key] = alert["labels"]
        elif before is not None:
            out.gone.add(key)
    return out


class AlertmanagerSink:
    """Posts outbox rows to one Alertmanager. One per publisher (per process)."""

    def __init__(self, settings: Settings, *, batch_size: int = 500, client: httpx.Client | None = None) -> None:
        assert settings.alertmanager_url is not None
        self.url = settings.alertmanager_url + API_PATH
        self.public_url = settings.public_url
        self.resend_s = settings.alertmanager_resend_s
        self.backoff_s = settings.publish_backoff_s
        self.idle_check_s = settings.publish_idle_check_s
        self.batch_size = batch_size
        self.notify_levels = MaintenanceConfig().notify_levels
        self._client = client or httpx.Client(timeout=settings.alertmanager_timeout_s)
        self._resend_at = 0.0
        self._retry_at = 0.0
        self._next_idle_check = 0.0
        self.pending = False

    def close(self) -> None:
        self._client.close()

    def _post(self, alerts: list[am.Alert]) -> None:
        try:
            response = self._client.post(
                self.url, content=orjson.dumps(alerts), headers={"Content-Type": "application/json"}
            )
        except httpx.HTTPError as exc:
            raise AlertmanagerRefused(
                f"Alertmanager unreachable at {self.url}: {exc} (set GRIDMON_ALERTMANAGER_URL)"
            ) from None
        if response.status_code != 200:
            raise AlertmanagerRefused(
                f"Alertmanager at {self.url} answered {response.status_code}: {response.text[:200]}"
            )

    def _drain_batch(self, wait: bool, full: bool) -> tuple[int, str | None]:
        """(rows delivered, None), (-rows pending, error) or (-1, None) when another drainer holds the lock."""
        with db.connection() as conn:
            if not outbox.lock_for_drain(conn, wait=wait, sink=SINK):
                return -1, None
            rows = outbox.pending(conn, self.batch_size, sink=SINK)
            if not rows and not full:
                return 0, None
            todo = plan(
                conn,
                rows,
                full=full,
                public_url=self.public_url,
                notify_levels=self.notify_levels,
                now=datetime.now(UTC),
            )
            if todo.alerts:
                try:
                    self._post(todo.alerts)
                except AlertmanagerRefused as exc:
                    conn.rollback()
                    return -max(len(rows), 1), str(exc)
            store.remember(conn, todo.firing)
            store.forget(conn, todo.gone)
            outbox.mark_published(conn, [row[0] for row in rows], sink=SINK)
        if todo.alerts:
            log.info("alertmanager posted alerts=%d events=%d full=%s", len(todo.alerts), len(rows), full)
        return len(rows), None

    def drain(self, *, wait: bool = True) -> tuple[int, str | None]:
        """Deliver every pending row (and re-send the firing alerts when due); stops at the first failure."""
        delivered = 0
        full = time.monotonic() >= self._resend_at
        while True:
            try:
                count, error = self._drain_batch(wait, full)
            except psycopg.errors.LockNotAvailable:
                count, error = -1, None
            if error is not None:
                self.pending = True
                self._retry_at = time.monotonic() + self.backoff_s
                log.warning("alertmanager not reached, events stay pending pending=%d error=%s", -count, error)
                return delivered, error
            if count < 0:
                self.pending = True
                return delivered, None
            if full:
                self._resend_at = time.monotonic() + self.resend_s
                full = False
            delivered += count
            if count < self.batch_size:
                self.pending = False
                return delivered, None

    def due(self, wrote_events: bool) -> bool:
        """Whether the ingest path should drain now (events written, something pending, a re-send
        due, or the idle check), never while Alertmanager is known to be down."""
        now = time.monotonic()
        if now < self._retry_at:
            return False
        if not (wrote_events or self.pending or now >= self._resend_at or now >= self._next_idle_check):
            return False
        self._next_idle_check = now + self.idle_check_s
        return True
