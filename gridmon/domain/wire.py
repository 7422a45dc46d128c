"""The batch message between the bridge and the ingest task (JSON-safe lists).

readings: `[device_id, ts_epoch, voltage, current, temperature, extra|null]`
dead:     `[received_at_epoch, topic, payload_base64, reason, detail]`
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

from gridmon.domain.readings import DeadLetter, Rejection


def encode_dead(received_at: float, topic: str, payload: bytes, rejection: Rejection) -> list[Any]:
    return [received_at, topic, base64.b64encode(payload).decode("ascii"), rejection.reason, rejection.detail]


def decode_dead(item: Sequence[Any]) -> DeadLetter:
    received_at, topic, payload_b64, reason, detail = item
    return DeadLetter(float(received_at), str(topic), base64.b64decode(payload_b64), str(reason), str(detail))
