"""GroupService: consumer groups over the topic registry -- membership, commits, admin.

Joins the :class:`GroupCoordinator` (who owns what) and the :class:`OffsetStore` (what is
committed) and checks requests against the topics (existence, offset ranges). A commit is
checked and stored under the coordinator's lock, so a member that lost a partition in a
rebalance can never commit it. Commits (and admin offset changes) follow the registry's flush
policy (see :mod:`~consumer_api.embedded.groups.offsets`). Thread-safe (the parts lock
themselves).

I/O under a lock: every group's commit appends to the one offsets log (and, with
``flush_policy`` ``always``, syncs it) under the one coordinator lock, so commits of all
groups are serialised. That is on purpose: the offsets log is one file, so per-group locks
would still queue on its append and sync, and a commit costs microseconds (tens of them with
a sync) against the fraction of a millisecond of the HTTP request carrying it.
Lock order: coordinator lock -> offset store lock -> the offsets log's partition lock.
"""
from __future__ import annotations

import os

from consumer_api.embedded.groups.coordinator import GroupCoordinator
from consumer_api.embedded.groups.offsets import OffsetStore, offsets_log_config
from consumer_api.embedded.topics import TopicRegistry
from consumer_api.errors import GroupNotEmpty, GroupNotFound
from consumer_api.offset_rules import check_commit, reset_topics


class GroupService:
    def __init__(self, registry: TopicRegistry, data_dir: str, default_assignor: str, now_ms,
                 snapshot_every_records: int = 10_000):
        self.registry = registry
        self.coordinator = GroupCoordinator(self.partition_count, default_assignor)
        self.offsets = OffsetStore(os.path.join(data_dir, "internal", "offsets"),
                                   offsets_log_config(registry.log_defaults), now_ms,
                                   snapshot_every_records)

    def partition_count(self, topic: str) -> int:
        return len(self.registry.get(topic).partitions)

    # -- members ---------------------------------------------------------------------------

    def join(self, group_id: str, member_id: str, topics, wake,
             assignor: str | None = None) -> tuple:
        """Join (or re-subscribe) and rebalance; TopicNotFound for an unknown topic."""
        for topic in topics:
            self.registry.get(topic)
        return self.coordinator.join(group_id, member_id, topics, wake, assignor)

    def leave(self, group_id: str, member_id: str) -> bool:
        return self.coordinator.leave(group_id, member_id)

    def assignment(self, group_id: str, member_id: str):
        return self.coordinator.assignment(group_id, member_id)

    def membership(self, group_id: str, member_id: str):
        return self.coordinator.membership(group_id, member_id)

    # -- offsets ---------------------------------------------------------------------------

    def check_offsets(self, offsets: dict) -> None:
        """Every ``(topic, partition): offset`` names an existing partition and an offset in
        ``[0, high_watermark]`` (committing past the end would skip records produced
        later); raises TopicNotFound / PartitionNotFound / OffsetOutOfRange."""
        for (topic, p), offset in offsets.items():
            check_commit(topic, p, offset, *self.registry.get(topic).partition(p).offsets())

    def commit(self, group_id: str, member_id: str | None, offsets: dict) -> None:
        """Commit ``{(topic, partition): offset}`` for ``member_id`` (None: a manually
        assigned session, which may commit only partitions no member owns)."""
        self.check_offsets(offsets)
        with self.coordinator.locked():
            self._check_topics_exist(offsets)  # a topic deleted since check_offsets
            self.coordinator.check_owned(group_id, member_id, offsets)
            self.offsets.commit(group_id, offsets)

    def _check_topics_exist(self, offsets: dict) -> None:
        for topic, _p in offsets:
            self.registry.get(topic)

    def committed(self, group_id: str) -> dict:
        return self.offsets.committed(group_id)

    # -- admin -----------------------------------------------------------------------------

    def _exists(self, group_id: str) -> bool:
        return self.coordinator.describe(group_id) is not None or bool(
            self.offsets.committed(group_id))

    def list_groups(self) -> list[dict]:
        ids = set(self.coordinator.group_ids()) | set(self.offsets.group_ids())
        out = []
        for group_id in sorted(ids):
            info = self._summary(group_id)
            if info is not None:
                out.append(info)
        return out

    def _summary(self, group_id: str) -> dict | None:
        info = self.coordinator.describe(group_id)
        if info is None:
            if not self.offsets.committed(group_id):
                return None
            return {"group_id": group_id, "state": "Empty", "generation": 0, "members": []}
        return {"group_id": group_id, "state": info["state"], "generation": info["generation"],
                "members": [m["consumer_id"] for m in info["members"]]}

    def describe(self, group_id: str) -> dict:
        """Members and, per partition of every topic the group reads or has committed,
        the committed offset, high watermark and lag (None where nothing is committed)."""
        info = self.coordinator.describe(group_id)
        committed = self.offsets.committed(group_id)
        if info is None and not committed:
            raise GroupNotFound(f"group {group_id!r} does not exist", {"group_id": group_id})
        info = info or {"group_id": group_id, "state": "Empty", "generation": 0,
                        "assignor": self.coordinator.default_assignor, "members": []}
        topics = {t for t, _ in committed} | {t for m in info["members"] for t in m["topics"]}
        rows = []
        for topic in sorted(topics):
            if not self.registry.exists(topic):
                continue
            for p, plog in enumerate(self.registry.get(topic).partitions):
                end = plog.high_watermark
                done = committed.get((topic, p))
                rows.append({"topic": topic, "partition": p, "committed_offset": done,
                             "high_watermark": end,
                             "lag": None if done is None else max(end - done, 0)})
        return {**info, "offsets": rows}

    def set_offsets(self, group_id: str, offsets: dict | None = None, reset: str | None = None,
                    topics=None) -> dict:
        """Set a group's committed offsets while it has no members: explicit
        ``{(topic, partition): offset}``, or ``reset`` to ``earliest``/``latest`` for
        ``topics`` (default: every topic it has committed). Returns what was set."""
        self._refuse_if_members(group_id)
        if reset is not None:
            offsets = self._reset_targets(group_id, reset, topics)
        self.check_offsets(offsets)
        with self.coordinator.locked():
            self._refuse_if_members(group_id)
            self._check_topics_exist(offsets)
            self.offsets.commit(group_id, offsets)
        return offsets

    def _refuse_if_members(self, group_id: str) -> None:
        if self.coordinator.has_members(group_id):
            raise GroupNotEmpty(f"group {group_id!r} has active members; stop them first",
                                {"group_id": group_id})

    def _reset_targets(self, group_id: str, reset: str, topics) -> dict:
        topics = reset_topics(reset, topics, self.offsets.committed(group_id))
        targets = {}
        for topic in topics:
            for p, plog in enumerate(self.registry.get(topic).partitions):
                start, end = plog.offsets()
                targets[(topic, p)] = start if reset == "earliest" else end
        return targets

    def delete(self, group_id: str) -> None:
        """Delete an empty group and its committed offsets (GroupNotEmpty while it has
        members, GroupNotFound if it never existed)."""
        if not self._exists(group_id):
            raise GroupNotFound(f"group {group_id!r} does not exist", {"group_id": group_id})
        self.coordinator.forget(group_id)
        self.offsets.delete_group(group_id)

    # -- topic events ----------------------------------------------------------------------

    def topic_created(self, topic: str) -> None:
        self.coordinator.topics_changed(topic)

    def topic_deleted(self, topic: str) -> None:
        """Members lose the topic's partitions and its committed offsets go, atomically
        with respect to commits (both under the coordinator's lock)."""
        self.coordinator.topics_changed(topic, then=lambda: self.offsets.delete_topic(topic))

    def close(self) -> None:
        self.offsets.close()
