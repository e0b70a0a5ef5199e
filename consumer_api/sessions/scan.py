"""What a consume or a read keeps of the records it reads: all of them, or those a filter
matches (:mod:`consumer_api.record_filter`), within a bound on the records examined.

A :class:`Scan` belongs to one request (one thread). :meth:`Scan.keep` is given each window
of records read, in offset order, and says which to return and the offset reading has
reached: a record that does not match is skipped -- the position moves past it as past a
returned one -- so a filtered consumer's commit covers records it never saw. A filtered
request examines at most ``limit`` records; once it has (:attr:`Scan.exhausted`) it returns
what matched so far, so a filter that matches nothing cannot hold a thread.
"""
from __future__ import annotations

from consumer_api.records import record_size


class Scan:
    """``match(key, value, headers) -> bool`` or None (keep every record, no bound);
    ``limit``: the most records a filtered request examines. ``scanned`` counts them."""

    def __init__(self, match=None, limit: int = 100_000):
        self.match = match
        self.limit = limit
        self.scanned = 0

    @property
    def filtered(self) -> bool:
        return self.match is not None

    @property
    def exhausted(self) -> bool:
        """The filtered request examined as many records as it may."""
        return self.match is not None and self.scanned >= self.limit

    def fetch_count(self, wanted: int) -> int:
        """How many records to read for ``wanted`` more matches: a filter reads on to its
        bound (the window's byte limit keeps each read small)."""
        return wanted if self.match is None else max(self.limit - self.scanned, 1)

    def keep(self, records: list, wanted: int) -> tuple[list, int, int]:
        """Of a window of ``records`` (offset order, non-empty): ``(kept, after,
        skipped_bytes)`` -- at most ``wanted`` records to return, the offset after the
        last record examined (the next position), and the stored bytes of the examined
        records not kept (for the caller's ``max_bytes`` accounting)."""
        match = self.match
        if match is None:
            self.scanned += len(records)
            return records, records[-1][0] + 1, 0
        kept: list = []
        skipped = 0
        last = records[0][0]
        for record in records[:self.limit - self.scanned]:
            self.scanned += 1
            last = record[0]
            if match(record[2], record[3], record[4]):
                kept.append(record)
                if len(kept) == wanted:
                    break
            else:
                skipped += record_size(record)
        return kept, last + 1, skipped
