"""Partition assignors: who in a group reads which partitions.

An assignor is a pure function ``assign(members, partitions_of) -> {member: {topic: [p]}}``
where ``members`` is an ordered mapping ``member_id -> subscribed topics`` (join order) and
``partitions_of(topic)`` gives a topic's partition count (0 when it no longer exists).
Every partition of every subscribed topic goes to exactly one member subscribed to that
topic; members subscribed to nothing that exists get ``{}``. Deterministic for equal
inputs.

* ``range`` (Kafka's RangeAssignor): per topic, members sorted by id, the partitions cut
  into contiguous ranges; the first ``partitions % members`` members get one more.
* ``roundrobin`` (Kafka's RoundRobinAssignor): all partitions of all topics, sorted, dealt
  in turn to the members (sorted by id) subscribed to each partition's topic.

Cost: ``range`` O(members + partitions) per topic; ``roundrobin`` the same when members share
subscriptions, up to O(members x partitions) when they differ.
"""
from __future__ import annotations

from typing import Callable, Mapping


def _empty(members: Mapping) -> dict:
    return {member: {} for member in members}


def _subscribers(members: Mapping) -> dict:
    by_topic: dict[str, list] = {}
    for member in sorted(members):
        for topic in members[member]:
            by_topic.setdefault(topic, []).append(member)
    return by_topic


def range_assign(members: Mapping, partitions_of: Callable[[str], int]) -> dict:
    out = _empty(members)
    for topic, subs in sorted(_subscribers(members).items()):
        count = partitions_of(topic)
        per, extra = divmod(count, len(subs))
        start = 0
        for i, member in enumerate(subs):
            n = per + (1 if i < extra else 0)
            if n:
                out[member][topic] = list(range(start, start + n))
            start += n
    return out


def roundrobin_assign(members: Mapping, partitions_of: Callable[[str], int]) -> dict:
    out = _empty(members)
    subs = _subscribers(members)
    ring = sorted(members)
    position = 0
    for topic in sorted(subs):
        eligible = set(subs[topic])
        for partition in range(partitions_of(topic)):
            while ring[position % len(ring)] not in eligible:
                position += 1
            member = ring[position % len(ring)]
            out[member].setdefault(topic, []).append(partition)
            position += 1
    return out


ASSIGNORS = {"range": range_assign, "roundrobin": roundrobin_assign}
