"""Offsets in the Python client: one shape everywhere. A partition is a
:class:`TopicPartition` (a named tuple, so ``("orders", 0)`` compares equal), offsets are
``{TopicPartition: offset}`` and an assignment is a sorted list of TopicPartition -- whatever
the HTTP body's shape (``{topic: {"partition": offset}}``, ``{topic: [partitions]}``)."""
from __future__ import annotations

from typing import NamedTuple


class TopicPartition(NamedTuple):
    topic: str
    partition: int


def offsets_from_wire(wire: dict) -> dict:
    """``{topic: {"partition": offset}}`` -> ``{TopicPartition: offset}``."""
    return {TopicPartition(t, int(p)): o for t, parts in wire.items() for p, o in parts.items()}


def offsets_to_wire(offsets: dict) -> dict:
    """``{(topic, partition): offset}`` or ``{topic: {partition: offset}}`` -> wire form."""
    out: dict = {}
    for k, v in offsets.items():
        if isinstance(k, tuple):
            out.setdefault(k[0], {})[str(k[1])] = v
        else:
            out[k] = {str(p): o for p, o in v.items()}
    return out


def assignment_from_wire(wire: dict) -> list:
    """``{topic: [partitions]}`` -> sorted ``[TopicPartition]``."""
    return sorted(TopicPartition(t, p) for t, parts in wire.items() for p in parts)
