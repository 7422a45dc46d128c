"""Devices that announce they are offline: a Sparkplug B death opens a `no_data` alert, a birth resolves it.

The bridge turns DDEATH/NDEATH and DBIRTH/NBIRTH into status events (`gridmon.domain.wire`,
`[ts, event, scope, id]`); the ingest job applies them here in the batch's transaction. A device
death opens the device's `no_data` alert (detector `sparkplug`) at the death's time unless one is
already open; an edge node's death does so for every known device of the node (the node itself
and `<node>:<device>`). A birth resolves the device's open `no_data` alert (reason `birth`),
whichever check opened it. The same alert is what the staleness check (`gridmon.alerts.stale`)
opens for a device that falls silent without a word, so both paths end in one alert per silence.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import psycopg

from gridmon.alerts.stale import METRIC
from gridmon.storage import alerts as store
from gridmon.storage import silences
from gridmon.storage.alerts import AlertEvent

log = logging.getLogger(__name__)

DETECTOR = "sparkplug"
SEVERITY = "medium"
_WHAT = {
    "device": "device reported offline (Sparkplug DDEATH)",
    "node": "edge node reported offline (Sparkplug NDEATH)",
}


def apply_status(conn: psycopg.Connection, items: Sequence[Sequence[Any]]) -> list[AlertEvent]:
    """Open or resolve `no_data` alerts for these status events, in order (caller's transaction)."""
    plan: list[tuple[float, str, str, list[str]]] = []
    for ts, event, scope, ident in items:
        devices = [str(ident)] if scope == "device" else silences.node_devices(conn, str(ident))
        plan.append((float(ts), str(event), str(scope), devices))
    # A birth only matters to a device with an open no_data alert: after a restart of a fleet
    # that is a handful of a thousand births, so the rest cost one query, not a lock each.
    births = sorted({d for _, event, _, devices in plan if event == "birth" for d in devices})
    silent = silences.with_unresolved(conn, births, METRIC) if births else set()
    touched = {d for _, event, _, devices in plan if event == "death" for d in devices} | silent
    plan = [(ts, event, scope, [d for d in devices if d in touched]) for ts, event, scope, devices in plan]
    for device in sorted(touched):
        store.lock_key(conn, device, METRIC)  # sorted, like every alert writer
    events: list[AlertEvent] = []
    for ts, event, scope, devices in plan:
        for device in devices:
            current = store.open_alert(conn, device, METRIC)
            if event == "birth":
                if current is not None:
                    events.append(store.resolve_row(conn, current, "birth")[1])
                continue
            if current is not None:
                continue
            row = store.insert_alert(
                conn,
                device_id=device,
                metric=METRIC,
                detector=DETECTOR,
                severity=SEVERITY,
                opened_at=ts,
                last_seen_at=ts,
                value=None,
                value_ts=None,
                score=None,
                description=_WHAT[scope],
                kind="no_data",
            )
            events.append(store.emit(conn, row, "opened", ts))
    if events:
        log.info("device presence events=%d", len(events))
    return events
