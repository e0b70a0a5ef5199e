"""EmbeddedMember: one consumer session's place in a group of the embedded engine.

Implements :class:`consumer_api.backend.Member` over the :class:`GroupService` (joins and
rebalances complete at once, under the coordinator's lock) and the partition logs (reads
straight from the log; a watch is an append listener of the partition, called on the
appending thread). Nothing is read ahead, so :meth:`reposition` has nothing to drop.

Thread-safety: ``_manual`` and ``_left`` are single attribute writes made by the calls the
session serialises and read by the others (atomic under the GIL); everything else is the
group service's and the logs' (they lock themselves).
"""
from __future__ import annotations

from typing import Sequence

from consumer_api.backend import Assignment, TopicPartition, Wake
from consumer_api.embedded.groups.service import GroupService
from consumer_api.embedded.topics import TopicRegistry
from consumer_api.errors import PartitionNotFound, TopicNotFound


class EmbeddedMember:
    __slots__ = ("_groups", "_topics", "group_id", "member_id", "_wake", "_manual", "_left")

    def __init__(self, groups: GroupService, topics: TopicRegistry, group_id: str,
                 member_id: str, wake: Wake):
        self._groups = groups
        self._topics = topics
        self.group_id = group_id
        self.member_id = member_id
        self._wake = wake
        self._manual: Assignment | None = None
        self._left = False

    # -- membership ------------------------------------------------------------------------

    def join(self, topics: Sequence[str], assignor: str | None = None) -> Assignment:
        generation, partitions = self._groups.join(self.group_id, self.member_id, topics,
                                                   self._wake, assignor)
        since = {(t, p): generation for t, ps in partitions.items() for p in ps}
        return Assignment(generation, partitions, since)

    def assignment(self) -> Assignment | None:
        if self._left:
            return None
        if self._manual is not None:
            return self._manual
        found = self._groups.membership(self.group_id, self.member_id)
        return None if found is None else Assignment(*found)

    def assign(self, partitions: dict[str, list[int]]) -> Assignment:
        if self._manual is None:
            self._groups.leave(self.group_id, self.member_id)
        self._manual = Assignment(-1, {t: sorted(set(ps)) for t, ps in partitions.items() if ps})
        return self._manual

    def leave(self) -> None:
        if self._manual is None and not self._left:
            self._groups.leave(self.group_id, self.member_id)
        self._left = True

    # -- records ---------------------------------------------------------------------------

    def fetch(self, topic: str, partition: int, offset: int, max_records: int,
              max_bytes: int, taken: int) -> tuple[list, int]:
        return self._topics.get(topic).partition(partition).fetch(offset, max_records,
                                                                  max_bytes, taken)

    def high_watermark(self, topic: str, partition: int) -> int:
        return self._topics.get(topic).partition(partition).high_watermark

    def watch(self, topic: str, partition: int) -> None:
        try:
            self._topics.get(topic).partition(partition).add_listener(self._wake)
        except (TopicNotFound, PartitionNotFound):
            pass

    def unwatch(self, topic: str, partition: int) -> None:
        try:
            self._topics.get(topic).partition(partition).remove_listener(self._wake)
        except (TopicNotFound, PartitionNotFound):
            pass

    def reposition(self, topic: str, partition: int, offset: int) -> None:
        """Nothing is read ahead here."""

    # -- offsets ---------------------------------------------------------------------------

    def commit(self, offsets: dict[TopicPartition, int]) -> None:
        owner = None if self._manual is not None else self.member_id
        self._groups.commit(self.group_id, owner, offsets)

    def committed(self, partitions: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        get = self._groups.offsets.get
        out = {}
        for topic, partition in partitions:
            offset = get(self.group_id, topic, partition)
            if offset is not None:
                out[(topic, partition)] = offset
        return out
