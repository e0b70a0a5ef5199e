"""StoredEnds: per partition, the offset after the last record this node's producer stored.

A member's pump fetches asynchronously, so a consume right after a produce could find
nothing buffered yet. Members ask :meth:`StoredEnds.end` to tell "nothing was stored"
from "the pump has not fetched it yet" and wait briefly for the latter (read your own
writes, as on the embedded store). Only this node's produces are known; records another
node stored arrive as the pump fetches them.

Thread-safety: every method may be called from any thread (``_lock`` guards ``_ends``).
"""
from __future__ import annotations

import threading


class StoredEnds:
    def __init__(self):
        self._lock = threading.Lock()
        self._ends: dict[tuple[str, int], int] = {}

    def note(self, topic: str, results: list[dict]) -> None:
        """Record a produce's results (``{"partition", "offset", ...}`` per record, each
        partition's offsets rising in request order)."""
        last = {row["partition"]: row["offset"] for row in results}
        with self._lock:
            for partition, offset in last.items():
                tp = (topic, partition)
                if offset >= self._ends.get(tp, 0):
                    self._ends[tp] = offset + 1

    def end(self, topic: str, partition: int) -> int:
        """The offset after the last record this node stored there; 0 when none."""
        with self._lock:
            return self._ends.get((topic, partition), 0)

    def forget(self, topic: str) -> None:
        """The topic was deleted: what was stored in it is gone."""
        with self._lock:
            for tp in [tp for tp in self._ends if tp[0] == topic]:
                del self._ends[tp]
