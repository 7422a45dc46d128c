"""Caps on open live streams: in total per API process and per client address.

Each dashboard stream holds a connection (and a little memory) for up to five minutes; without a
cap, one client could open thousands. A stream beyond a cap is refused with 503 and `Retry-After`
before it starts, and its slot is given back when it ends, however it ends.
"""

from __future__ import annotations

import threading
from collections import Counter

from fastapi import HTTPException

RETRY_AFTER_S = 10


class Slot:
    """One open stream's place; `release` is idempotent."""

    def __init__(self, owner: StreamSlots, client: str) -> None:
        self._owner = owner
        self._client = client
        self._released = False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._owner._release(self._client)


class StreamSlots:
    """Counts open streams; `acquire` raises a 503 HTTPException beyond either cap."""

    def __init__(self, total: int, per_client: int) -> None:
        self.total = total
        self.per_client = per_client
        self._open: Counter[str] = Counter()
        self._lock = threading.Lock()

    @property
    def open(self) -> int:
        return sum(self._open.values())

    def acquire(self, client: str) -> Slot:
        with self._lock:
            if self.open >= self.total:
                raise _busy(f"{self.total} live streams are open on this API process (GRIDMON_LIVE_MAX_STREAMS)")
            if self._open[client] >= self.per_client:
                raise _busy(
                    f"{self.per_client} live streams are open from this address (GRIDMON_LIVE_MAX_STREAMS_PER_CLIENT)"
                )
            self._open[client] += 1
        return Slot(self, client)

    def _release(self, client: str) -> None:
        with self._lock:
            self._open[client] -= 1
            if self._open[client] <= 0:
                del self._open[client]


def _busy(detail: str) -> HTTPException:
    headers = {"Retry-After": str(RETRY_AFTER_S)}
    return HTTPException(status_code=503, detail=f"{detail}; try again later", headers=headers)
