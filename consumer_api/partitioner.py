"""Which partition a produced record goes to.

Keyed records: ``(murmur2(key) & 0x7fffffff) % partitions``, bit for bit what Kafka's
default partitioner (``Utils.murmur2`` / ``Utils.toPositive``) picks, so a key lands on the
same partition here as in a Kafka cluster with the same partition count. Keyless records
are spread round-robin. Thread-safe (a lock guards the round-robin counter).
"""
from __future__ import annotations

import threading

_M = 0x5BD1E995
_SEED = 0x9747B28C
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's 32-bit murmur2 of ``data``, as a signed Java int."""
    length = len(data)
    h = (_SEED ^ length) & _MASK
    end4 = length & ~3
    for i in range(0, end4, 4):
        k = int.from_bytes(data[i:i + 4], "little")
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    tail = length & 3
    if tail == 3:
        h ^= data[end4 + 2] << 16
    if tail >= 2:
        h ^= data[end4 + 1] << 8
    if tail >= 1:
        h ^= data[end4]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def partition_for_key(key: bytes, partitions: int) -> int:
    return (murmur2(key) & 0x7FFFFFFF) % partitions


class Partitioner:
    """Picks partitions for records of one topic."""

    def __init__(self):
        self._next = 0
        self._lock = threading.Lock()

    def advance(self, count: int) -> int:
        """Take ``count`` consecutive round-robin slots; returns the first."""
        with self._lock:
            start = self._next
            self._next = start + count
            return start

    def partition(self, key: bytes | None, partitions: int) -> int:
        if key is None:
            return self.advance(1) % partitions
        return partition_for_key(key, partitions)
