"""The rules for committed offsets that every store enforces alike.

* A commit (or a group's offset set by hand) lies in ``[0, high_watermark]``: committing
  past the end would skip records produced later.
* A read starts in ``[log start, high_watermark]``.
* A reset goes to ``earliest`` or ``latest``, of the topics named or else of every topic
  the group has committed; a group with no commits must name them.
"""
from __future__ import annotations

from consumer_api.errors import InvalidRequest, OffsetOutOfRange

RESETS = ("earliest", "latest")


def check_commit(topic: str, partition: int, offset: int, start: int, end: int) -> None:
    """OffsetOutOfRange unless ``offset`` is in ``[0, end]`` (``start``: the log start,
    reported with the error)."""
    if not 0 <= offset <= end:
        raise OffsetOutOfRange(
            f"offset {offset} for partition {partition} of {topic!r} is outside [0, {end}]",
            {"topic": topic, "partition": partition, "log_start_offset": start,
             "high_watermark": end})


def out_of_range(topic: str, partition: int, offset: int, start: int,
                 end: int) -> OffsetOutOfRange:
    """The error for reading ``offset`` outside ``[start, end]`` of a partition, alike on
    every store (``details``: topic, partition, log_start_offset, high_watermark)."""
    return OffsetOutOfRange(
        f"offset {offset} is outside partition {partition} of {topic!r}: valid offsets are "
        f"{start}..{end}",
        {"topic": topic, "partition": partition, "log_start_offset": start,
         "high_watermark": end})


def reset_topics(reset: str, topics, committed: dict) -> list:
    """The topics a reset applies to; InvalidRequest for an unknown reset or when there are
    none (no topics named and nothing committed)."""
    if reset not in RESETS:
        raise InvalidRequest(f"reset must be earliest or latest, not {reset!r}",
                             {"reset": ["Must be one of: earliest, latest."]})
    topics = list(topics or sorted({t for t, _ in committed}))
    if not topics:
        raise InvalidRequest("the group has no committed offsets: name the topics to reset",
                             {"topics": ["Required when the group has no committed offsets."]})
    return topics
