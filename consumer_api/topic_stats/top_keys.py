"""Records by key over a time range, counted by reading them, bounded in work.

The range's records are read from every partition at once and counted in time order (the
time :mod:`.window` defines: each partition's times never decrease, so the partitions
merge like sorted lists). When the bound on records or bytes stops the count, it stops
between two milliseconds: every record before ``scanned_to_ms`` was counted and none at
or after it -- the records of the millisecond the bound fell in are left out -- so a
client continues with ``from_ms=scanned_to_ms`` or narrows the range. Only when one
millisecond alone holds more than the bound are its first records (in partition order)
counted, and ``scanned_to_ms`` is that millisecond.

Memory: a window of records per partition (WINDOWS_BYTES shared among them, at least
4 KiB each, and a record larger than its window comes whole) and a counter per distinct
key counted.
"""
from __future__ import annotations

import heapq
from collections import Counter
from typing import NamedTuple

from consumer_api.backend import Backend
from consumer_api.errors import OffsetOutOfRange
from consumer_api.records import record_size

#: most records one read of a partition brings
WINDOW_RECORDS = 1000
#: bytes one read of a partition brings, at least and at most
WINDOW_BYTES = (4 << 10, 1 << 20)
#: bytes the reads of all partitions bring, together (while each gets its least)
WINDOWS_BYTES = 4 << 20


class Bound(NamedTuple):
    """Most records and bytes (:func:`record_size`) one count reads."""

    records: int
    bytes: int



class _Partition:
    """The records of one partition in ``[offset, end)``, read a window at a time; ``time``
    is the head record's (the largest timestamp so far)."""

    def __init__(self, backend: Backend, topic: str, partition: int, offset: int, end: int,
                 window_bytes: int):
        self.backend, self.topic, self.partition = backend, topic, partition
        self.offset, self.end, self.window_bytes = offset, end, window_bytes
        self.records: list = []
        self.at = 0
        self.time = -1

    def head(self):
        return self.records[self.at]

    def advance(self) -> bool:
        """Move to the next record; False at the end of the range."""
        self.at += 1
        if self.at == len(self.records) and not self._read():
            return False
        self.time = max(self.time, self.head()[1])
        return True

    def start(self) -> bool:
        self.at = -1
        return self.advance()

    def _read(self) -> bool:
        while self.offset < self.end:
            try:
                got, _ = self.backend.fetch(self.topic, self.partition, self.offset,
                                            min(WINDOW_RECORDS, self.end - self.offset),
                                            self.window_bytes, 0)
            except OffsetOutOfRange as exc:
                start = exc.details.get("log_start_offset", self.end)
                if start <= self.offset:  # past the end: the topic was made again, smaller
                    break
                self.offset = start  # retention deleted records meanwhile: not counted
                continue
            got = [r for r in got if r[0] < self.end]
            if not got:
                break
            self.records, self.at, self.offset = got, 0, got[-1][0] + 1
            return True
        self.records, self.at = [], 0
        return False


def top_keys(backend: Backend, topic: str, partitions: list[int], from_ms: int, to_ms: int,
             top: int, bound: Bound) -> dict:
    """``{topic, from_ms, to_ms, partitions, keys: [{key, records}], distinct_keys,
    scanned_records, scanned_bytes, complete, scanned_to_ms, stopped_by}``: the ``top`` keys
    by records (most first; ties by key, null first) among the records of ``[from_ms,
    to_ms)`` in ``partitions``. ``key`` is bytes or None here. ``stopped_by`` is None,
    ``"records"`` or ``"bytes"``. TopicNotFound / PartitionNotFound."""
    found = backend.positions_for_times(topic, partitions, [from_ms, to_ms])
    window_bytes = min(max(WINDOWS_BYTES // max(len(partitions), 1), WINDOW_BYTES[0]),
                       WINDOW_BYTES[1])
    sources = [_Partition(backend, topic, p, found[p][0][0], found[p][1][0], window_bytes)
               for p in partitions if found[p][0][0] < found[p][1][0]]
    count = _Count(bound)
    count.merge(sources)
    counts = count.result()
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0] is not None, kv[0] or b""))
    return {"topic": topic, "from_ms": from_ms, "to_ms": to_ms, "partitions": list(partitions),
            "keys": [{"key": key, "records": n} for key, n in ranked[:top]],
            "distinct_keys": len(counts), "scanned_records": count.records,
            "scanned_bytes": count.bytes, "complete": count.stopped_by is None,
            "scanned_to_ms": to_ms if count.stopped_by is None else count.stop_ms,
            "stopped_by": count.stopped_by}


class _Count:
    """Keys counted in time order: ``done`` holds the milliseconds before ``time``,
    ``current`` the one at ``time``. After :meth:`merge`, ``stopped_by`` says what stopped
    it (None: nothing) and ``stop_ms`` the time of the first record left out."""

    def __init__(self, bound: Bound):
        self.bound = bound
        self.done: Counter = Counter()
        self.current: Counter = Counter()
        self.time = -1
        self.records = self.bytes = 0  # counted, ``current`` included
        self._before = (0, 0)  # records and bytes counted before ``time``
        self.stopped_by: str | None = None
        self.stop_ms = -1

    def merge(self, sources: list[_Partition]) -> None:
        """Count the sources' records in time order until they end or the bound stops
        the count."""
        heap = [(s.time, i) for i, s in enumerate(sources) if s.start()]
        heapq.heapify(heap)
        while heap:
            time, i = heap[0]
            source = sources[i]
            record = source.head()
            size = record_size(record)
            if self.records + 1 > self.bound.records or self.bytes + size > self.bound.bytes:
                self.stopped_by = "records" if self.records + 1 > self.bound.records else "bytes"
                self.stop_ms = time
                return
            self._add(time, record[2], size)
            if source.advance():
                heapq.heapreplace(heap, (source.time, i))
            else:
                heapq.heappop(heap)

    def _add(self, time: int, key, size: int) -> None:
        if time != self.time:
            self.done.update(self.current)
            self.current.clear()
            self.time = time
            self._before = (self.records, self.bytes)
        self.current[key] += 1
        self.records += 1
        self.bytes += size

    def result(self) -> Counter:
        """The counts: when the bound fell inside a millisecond, without that millisecond
        -- unless it is all there is."""
        if self.stopped_by is not None and self.stop_ms == self.time and self.done:
            self.records, self.bytes = self._before
            return self.done
        self.done.update(self.current)
        return self.done
