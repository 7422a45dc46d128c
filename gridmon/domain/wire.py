"""The batch message between the bridge and the ingest task (JSON-safe lists).

readings: `[device_id, ts_epoch, voltage, current, temperature, extra|null]`, optionally followed
          by the device's `seq` (an integer in [0, 2^32) or null; see `gridmon.domain.readings.Reading`)
dead:     `[received_at_epoch, topic, payload_prefix_base64, reason, detail, payload_size, sha256_hex]`
status:   `[ts_epoch, event, scope, id]`: a Sparkplug B birth or death (`event` `birth`|`death`,
          `scope` `device`|`node`, `id` the gridmon device id or the edge node id)

A dead letter's payload travels already cut to the prefix `dead_letters` keeps
(GRIDMON_DEAD_LETTER_PAYLOAD_BYTES), so a 1 MB payload costs the Celery broker a few kilobytes.
The five-item form of earlier bridges (the whole payload) is still read.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from typing import Any

from gridmon.domain.readings import DeadLetter, Rejection, dead_letter


def encode_dead(received_at: float, topic: str, payload: bytes, rejection: Rejection, *, keep_bytes: int) -> list[Any]:
    letter = dead_letter(received_at, topic, payload, rejection.reason, rejection.detail, keep_bytes=keep_bytes)
    return [
        received_at,
        letter.topic,
        base64.b64encode(letter.payload).decode("ascii"),
        letter.reason,
        letter.detail,
        letter.size,
        letter.sha256.hex(),
    ]


STATUS_EVENTS = ("birth", "death")
STATUS_SCOPES = ("device", "node")


def encode_status(ts: float, event: str, scope: str, ident: str) -> list[Any]:
    if event not in STATUS_EVENTS or scope not in STATUS_SCOPES:
        raise ValueError(f"unknown status {event!r}/{scope!r}")
    return [ts, event, scope, ident]


def core_row(item: Sequence[Any]) -> Sequence[Any]:
    """A wire reading without its optional trailing `seq`."""
    return item[:6] if len(item) > 6 else item


def row_seq(item: Sequence[Any]) -> int | None:
    """A wire reading's `seq`, or None when it has none."""
    return item[6] if len(item) > 6 else None


def decode_dead(item: Sequence[Any]) -> DeadLetter:
    received_at, topic, payload_b64, reason, detail, *whole = item
    payload = base64.b64decode(payload_b64)
    if whole:
        size, digest = int(whole[0]), bytes.fromhex(str(whole[1]))
    else:
        size, digest = len(payload), hashlib.sha256(payload).digest()
    return DeadLetter(float(received_at), str(topic), payload, str(reason), str(detail), size, digest)
