"""The streaming anomaly detector: per-device state carried from reading to reading.

`params.py` (the one configuration), `state.py` (what a device carries), `calib.py`
(self-calibrated thresholds), `kernel.py` (the compiled loop), `forest.py` (IsolationForest on
the relations between a device's metrics), `run.py` (`run_device`), `episodes.py` (alarm runs →
alert episodes).

Numba caches the compiled loop next to the sources, but only checks the file a function is
defined in: a change to `calib.py` or to the layout constants in `state.py` would go unnoticed.
`_guard_numba_cache` drops the cache when any source of this package changed.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def _guard_numba_cache() -> None:
    here = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for source in sorted(here.glob("*.py")):
        digest.update(source.name.encode())
        digest.update(source.read_bytes())
    cache = here / "__pycache__"
    stamp = cache / "numba-sources.sha256"
    try:
        if stamp.exists() and stamp.read_text() == digest.hexdigest():
            return
        cache.mkdir(exist_ok=True)
        for stale in (*cache.glob("*.nbi"), *cache.glob("*.nbc")):
            stale.unlink(missing_ok=True)
        stamp.write_text(digest.hexdigest())
    except OSError as exc:  # a read-only install: numba then compiles in memory
        log.debug("numba cache of the detector not checked: %s", exc)


_guard_numba_cache()
