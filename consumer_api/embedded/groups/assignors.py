"""Partition assignors: who in a group reads which partitions.

An assignor is a pure function ``assign(members, partitions_of, owners) -> {member: {topic:
[p]}}`` where ``members`` is an ordered mapping ``member_id -> subscribed topics`` (join
order), ``partitions_of(topic)`` gives a topic's partition count (0 when it no longer
exists) and ``owners`` is the previous assignment, ``{(topic, partition): member_id}``
(only ``sticky`` reads it).
Every partition of every subscribed topic goes to exactly one member subscribed to that
topic; members subscribed to nothing that exists get ``{}``. Deterministic for equal
inputs.

* ``range`` (Kafka's RangeAssignor): per topic, members sorted by id, the partitions cut
  into contiguous ranges; the first ``partitions % members`` members get one more.
* ``roundrobin`` (Kafka's RoundRobinAssignor): all partitions of all topics, sorted, dealt
  in turn to the members (sorted by id) subscribed to each partition's topic.
* ``sticky`` (as Kafka's StickyAssignor): every member keeps the partitions it owned that
  still exist and that it still reads; the others go, one at a time, to the least loaded
  member that reads their topic; then, while one member owns two or more partitions more
  than another that could read one of them, one moves. So only what must move moves, and
  with equal subscriptions the counts differ by at most one.

Cost: ``range`` O(members + partitions) per topic; ``roundrobin`` the same when members share
subscriptions, up to O(members x partitions) when they differ; ``sticky`` O(partitions x
members) at most.
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


def range_assign(members: Mapping, partitions_of: Callable[[str], int],
                 owners: Mapping = {}) -> dict:
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


def roundrobin_assign(members: Mapping, partitions_of: Callable[[str], int],
                      owners: Mapping = {}) -> dict:
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


def sticky_assign(members: Mapping, partitions_of: Callable[[str], int],
                  owners: Mapping = {}) -> dict:
    subs = _subscribers(members)
    held: dict[str, list] = {member: [] for member in members}
    orphans = []
    for topic in sorted(subs):
        for partition in range(partitions_of(topic)):
            owner = owners.get((topic, partition))
            if owner in held and topic in members[owner]:
                held[owner].append((topic, partition))
            else:
                orphans.append((topic, partition))
    for topic, partition in orphans:
        _least_loaded(subs[topic], held).append((topic, partition))
    _even_out(members, held)
    out = _empty(members)
    for member, pairs in held.items():
        for topic, partition in sorted(pairs):
            out[member].setdefault(topic, []).append(partition)
    return out


def _least_loaded(candidates: list, held: dict) -> list:
    return held[min(candidates, key=lambda m: (len(held[m]), m))]


def _even_out(members: Mapping, held: dict) -> None:
    """Move partitions one at a time while a move narrows a gap of two or more."""
    while _move_one(members, held):
        pass


def _move_one(members: Mapping, held: dict) -> bool:
    """Move one partition from the most loaded member that can give one to the least
    loaded one that reads its topic and has two or more fewer; False when none can."""
    by_load = sorted(held, key=lambda m: (len(held[m]), m))
    for giver in reversed(by_load):
        for taker in by_load:
            if len(held[giver]) - len(held[taker]) < 2:
                break
            movable = [tp for tp in held[giver] if tp[0] in members[taker]]
            if movable:
                tp = max(movable)
                held[giver].remove(tp)
                held[taker].append(tp)
                return True
    return False


ASSIGNORS = {"range": range_assign, "roundrobin": roundrobin_assign, "sticky": sticky_assign}
