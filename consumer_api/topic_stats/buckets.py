"""Records and bytes per time bucket of a topic, from the store's time index.

For each bucket boundary the store says where that time starts in each partition (the
first record at or after it: ``Backend.positions_for_times``); a bucket's records are the
differences of consecutive offsets, its bytes the differences of consecutive byte
positions. The work grows with buckets x partitions (each lookup is a binary search and
a short scan), not with the records. A record counts at the time :mod:`.window` defines.
"""
from __future__ import annotations

import operator

from consumer_api.backend import Backend
from consumer_api.errors import InvalidRequest
from consumer_api.topic_stats.window import Window

#: most lookups (bucket boundaries x partitions) one answer may take: a few seconds' work
MAX_LOOKUPS = 200_000


def time_buckets(backend: Backend, topic: str, partitions: list[int], window: Window) -> dict:
    """``{topic, from_ms, to_ms, bucket_ms, records, bytes, partitions: [{partition,
    records, bytes}], buckets: [{start_ms, records, bytes}]}``: the buckets summed over
    ``partitions``, and each partition's total over the range. Bytes are the records'
    stored size, None everywhere when the store does not tell it. InvalidRequest (naming
    ``bucket_ms``) past MAX_LOOKUPS; TopicNotFound / PartitionNotFound."""
    bounds = window.boundaries()
    lookups = len(bounds) * len(partitions)
    if lookups > MAX_LOOKUPS:
        raise InvalidRequest(
            f"{len(bounds)} bucket boundaries in {len(partitions)} partitions are {lookups} "
            f"lookups, at most {MAX_LOOKUPS}: ask for one partition, wider buckets or a "
            "shorter range", {"bucket_ms": [f"Gives {lookups} lookups with "
                                            f"{len(partitions)} partitions; at most "
                                            f"{MAX_LOOKUPS}."]})
    found = backend.positions_for_times(topic, partitions, bounds)
    known = all(place is not None for positions in found.values() for _, place in positions)
    records = [0] * (len(bounds) - 1)
    sizes = [0] * len(records) if known else None
    totals = []
    for p in partitions:
        offsets, places = zip(*found[p])
        _add_steps(records, offsets)
        if known:
            _add_steps(sizes, places)
        totals.append({"partition": p, "records": offsets[-1] - offsets[0],
                       "bytes": places[-1] - places[0] if known else None})
    return {"topic": topic, "from_ms": window.from_ms, "to_ms": window.to_ms,
            "bucket_ms": window.bucket_ms, "records": sum(records),
            "bytes": sum(sizes) if known else None, "partitions": totals,
            "buckets": [{"start_ms": start, "records": n,
                         "bytes": sizes[i] if known else None}
                        for i, (start, n) in enumerate(zip(bounds, records))]}


def _add_steps(into: list[int], positions) -> None:
    """Add each step between consecutive ``positions`` to ``into``, in place."""
    into[:] = map(operator.add, into, map(operator.sub, positions[1:], positions))
