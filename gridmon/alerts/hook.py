"""The ingest path's safety-limit check: a 260 V reading becomes an alert within one batch.

`safety_hook` runs after every stored batch (registered in `gridmon.ingest.after_store_hooks`
by `install()`): it checks the batch against the safety limits and folds any findings into
alerts through the same episode tracker and outbox as the scan, then drains the outbox, so the
alert reaches Redis seconds after the reading was published and a long over-voltage stays one
alert. It never resolves an alert as normal (only the scan, which runs every detector, knows a
reading is normal); a new finding more than the episode gap after an open alert closes that one
(reason `gap`) and opens another. The scan checks safety limits too, so a batch whose hook failed is still covered
a scan later; `alert_readings` keeps the reading from being counted twice.
"""

from __future__ import annotations

import functools
import logging
import operator
from collections.abc import Sequence
from typing import Any

import numpy as np

from gridmon import db
from gridmon.alerts.publisher import get_publisher
from gridmon.alerts.tracker import apply_findings
from gridmon.config import get_settings
from gridmon.detection.safety import check_safety
from gridmon.detection_store.frames import rows_to_frame
from gridmon.detection_store.limits import CachedLimits

log = logging.getLogger(__name__)

_CORE_VALUES = operator.itemgetter(2, 3, 4)  # voltage, current, temperature of a stored row


@functools.lru_cache(maxsize=1)
def _limits() -> CachedLimits:
    return CachedLimits()


def safety_hook(rows: Sequence[Sequence[Any]]) -> None:
    """Check one stored batch (rows of device_id, ts, voltage, current, temperature, extra)."""
    if not rows:
        return
    cached = _limits()
    wrote = False
    # The common case, a batch of normal readings, costs one vectorised comparison.
    values = np.array(list(map(_CORE_VALUES, rows)), dtype=float).T
    low, high = cached.inner_band()
    if bool(np.all((values >= low) & (values <= high))):
        get_publisher().drain_if_due(False)
        return
    result = check_safety(rows_to_frame(rows), cached.get(), cached.default)
    if result.findings:
        with db.connection() as conn:
            events = apply_findings(conn, result.findings, gap_s=get_settings().episode_gap_s)
        wrote = bool(events)
    get_publisher().drain_if_due(wrote)


def install() -> None:
    """Register `safety_hook` with the ingest path (idempotent)."""
    from gridmon.ingest import after_store_hooks

    if safety_hook not in after_store_hooks:
        after_store_hooks.append(safety_hook)
        log.debug("safety-limit hook installed")
