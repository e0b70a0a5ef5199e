"""Committed offsets and positions on the wire: ``{topic: {"partition": offset}}``."""
from __future__ import annotations


def offsets_to_wire(offsets: dict) -> dict:
    """``{(topic, partition): offset}`` -> ``{topic: {"partition": offset}}``, sorted."""
    out: dict = {}
    for (topic, partition), offset in sorted(offsets.items()):
        out.setdefault(topic, {})[str(partition)] = offset
    return out


def offsets_from_wire(offsets: dict) -> dict:
    """``{topic: {partition: offset}}`` (partition keys already ints) -> ``{(t, p): o}``."""
    return {(topic, p): o for topic, parts in offsets.items() for p, o in parts.items()}
