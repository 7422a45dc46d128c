"""The batch message between the bridge and the ingest task (JSON-safe lists).

readings: `[device_id, ts_epoch, voltage, current, temperature, extra|null]`
dead:     `[received_at_epoch, topic, payload_prefix_base64, reason, detail, payload_size, sha256_hex]`

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


def decode_dead(item: Sequence[Any]) -> DeadLetter:
    received_at, topic, payload_b64, reason, detail, *whole = item
    payload = base64.b64decode(payload_b64)
    if whole:
        size, digest = int(whole[0]), bytes.fromhex(str(whole[1]))
    else:
        size, digest = len(payload), hashlib.sha256(payload).digest()
    return DeadLetter(float(received_at), str(topic), payload, str(reason), str(detail), size, digest)
