"""When a maintenance prediction is announced, and what the announcement says (pure decisions).

A device is announced when its risk level changes to one of `MaintenanceConfig.notify_levels`
(once per change, not every run). The predict job (`gridmon.jobs.predict`) writes the message to
the outbox in the same transaction as the prediction; the one publisher (`gridmon.jobs.publish`)
delivers it to `alerts:maintenance` (list, channel and stream) like every other outbox event.
"""

from __future__ import annotations

from typing import Any

from gridmon.maintenance.model import MaintenancePrediction


def should_notify(previous: str | None, current: str, notify_levels: tuple[str, ...]) -> bool:
    """A change of level into a notified level (a first prediction counts as a change)."""
    return current in notify_levels and current != previous


def message(prediction: MaintenancePrediction, previous: str | None, prediction_id: int) -> dict[str, Any]:
    """The JSON body of a maintenance alert."""
    return {
        "type": "maintenance",
        "prediction_id": prediction_id,
        "previous_level": previous,
        **{k: v for k, v in prediction.to_dict().items() if k != "inputs"},
    }
