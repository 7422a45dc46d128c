"""Devices to shards: a stable hash of the device id into 4,096 buckets, shards as bucket ranges.

The same hash exists in SQL (`gridmon_bucket(device_id)`, migration 0006), so a shard's scan
selects its own readings through an index on (bucket, ingested_at). Shard `s` of `n` owns the
buckets [s·4096 // n, (s+1)·4096 // n): any shard count from 1 to 4,096 works, and changing
it regroups whole buckets (see `gridmon scan reshard`).
"""

from __future__ import annotations

import hashlib

BUCKETS = 4096


def bucket_of(device_id: str) -> int:
    """The bucket of a device id (low 12 bits of the first 32 bits of its md5)."""
    return int(hashlib.md5(device_id.encode(), usedforsecurity=False).hexdigest()[:8], 16) & (BUCKETS - 1)


def bucket_range(shard: int, shards: int) -> tuple[int, int]:
    """[low, high) of the buckets shard `shard` of `shards` owns."""
    if not 1 <= shards <= BUCKETS or not 0 <= shard < shards:
        raise ValueError(f"shard {shard} of {shards}: need 1 <= shards <= {BUCKETS} and 0 <= shard < shards")
    return shard * BUCKETS // shards, (shard + 1) * BUCKETS // shards


def shard_of(device_id: str, shards: int) -> int:
    """The shard that scans `device_id` when there are `shards` shards."""
    bucket = bucket_of(device_id)
    # The inverse of bucket_range: the largest s with s * BUCKETS // shards <= bucket.
    return ((bucket + 1) * shards - 1) // BUCKETS


def round_order(shards: int, round_no: int) -> list[int]:
    """The shards in the order one round enqueues them: shard 0 first (its task also does the
    round's housekeeping: staleness, publishing, data gaps), the others rotated by one every
    round, so when a round overruns and its last tasks expire, it is a different shard each time
    (every shard falls behind by at most a round or so, instead of the same few starving)."""
    if shards < 1:
        raise ValueError("need at least one shard")
    rest = shards - 1
    start = round_no % rest if rest else 0
    return [0] + [1 + (start + i) % rest for i in range(rest)]
