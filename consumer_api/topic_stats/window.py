"""A time range, cut into buckets, and what time a record counts at.

A record counts at the largest timestamp among it and every record before it in its
partition. That is how a lookup by timestamp sees a log (the store's time index, Kafka's
``offsetsForTimes``, the read's ``timestamp`` parameter): the records of ``[t1, t2)`` are
exactly those from the first record stamped at or after ``t1`` up to the first stamped at
or after ``t2``. While timestamps never go back it is each record's own timestamp; a
record stamped earlier than one before it counts at that one's time.

Times are epoch milliseconds; a range ``[from_ms, to_ms)`` holds its start, not its end.
"""
from __future__ import annotations

from dataclasses import dataclass

from consumer_api.errors import InvalidRequest

#: most buckets one answer may have
MAX_BUCKETS = 10_000
#: a range without a start covers at least this much before its end
DEFAULT_SPAN_MS = 3_600_000
DEFAULT_BUCKET_MS = 60_000


@dataclass(frozen=True)
class Window:
    """``[from_ms, to_ms)`` in buckets of ``bucket_ms`` from ``from_ms`` on; the last one
    ends at ``to_ms`` (shorter when the range is not a whole number of buckets)."""

    from_ms: int
    to_ms: int
    bucket_ms: int

    @property
    def buckets(self) -> int:
        return -(-(self.to_ms - self.from_ms) // self.bucket_ms)

    def boundaries(self) -> list[int]:
        """Every bucket's start, then ``to_ms``."""
        return list(range(self.from_ms, self.to_ms, self.bucket_ms)) + [self.to_ms]


def bucket_window(now_ms: int, from_ms: int | None = None, to_ms: int | None = None,
                  bucket_ms: int | None = None) -> Window:
    """The window a request asks for. Defaults: 1-minute buckets; ``to_ms`` the end of the
    bucket holding ``now_ms`` (buckets aligned on ``from_ms`` when given, else on the
    epoch); ``from_ms`` the whole buckets that cover an hour before ``to_ms``.
    InvalidRequest naming the field for an empty range or more than MAX_BUCKETS."""
    bucket = bucket_ms or DEFAULT_BUCKET_MS
    if to_ms is None:
        origin = 0 if from_ms is None else from_ms
        to_ms = origin + ((now_ms - origin) // bucket + 1) * bucket
    if from_ms is None:
        from_ms = max(0, to_ms - bucket * -(-DEFAULT_SPAN_MS // bucket))
    window = Window(*time_range(now_ms, from_ms, to_ms), bucket)
    if window.buckets > MAX_BUCKETS:
        raise InvalidRequest(
            f"{window.buckets} buckets of {bucket} ms from {from_ms} to {to_ms}: at most "
            f"{MAX_BUCKETS}; widen bucket_ms or narrow the range",
            {"bucket_ms": [f"Gives {window.buckets} buckets; at most {MAX_BUCKETS}."]})
    return window


def time_range(now_ms: int, from_ms: int | None = None,
               to_ms: int | None = None) -> tuple[int, int]:
    """``(from_ms, to_ms)`` a request asks for. Defaults: ``to_ms`` now, ``from_ms`` an
    hour before ``to_ms``. InvalidRequest naming ``to_ms`` unless ``from_ms < to_ms``."""
    to_ms = now_ms if to_ms is None else to_ms
    from_ms = max(0, to_ms - DEFAULT_SPAN_MS) if from_ms is None else from_ms
    if from_ms >= to_ms:
        raise InvalidRequest(f"the range from {from_ms} to {to_ms} is empty: to_ms must be "
                             "after from_ms",
                             {"to_ms": [f"Must be after from_ms ({from_ms})."]})
    return from_ms, to_ms
