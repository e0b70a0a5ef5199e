"""Consumer-group administration on an Apache Kafka cluster, through the AdminClient.

The API's view of a group, from Kafka's: ``state`` is Kafka's group state by name (``Empty``,
``Stable``, ``PreparingRebalance``, ``CompletingRebalance``, ``Dead``); ``members`` are the
consumer ids of the sessions (each session's Kafka client id); ``generation`` is not told
by Kafka's group description and is 0. Offsets are set, reset and deleted only while a group
has no members (GroupNotEmpty otherwise); committing past a partition's high watermark is
refused as on the embedded store.

Thread-safety: the AdminClient is thread-safe; nothing else is kept here.
"""
from __future__ import annotations

from confluent_kafka import (ConsumerGroupTopicPartitions, KafkaError, KafkaException,
                             TopicPartition)

from consumer_api.errors import GroupNotEmpty, GroupNotFound, Unavailable
from consumer_api.kafka.admin import KafkaAdmin, answer, kafka_error
from consumer_api.offset_rules import check_commit, reset_topics

#: librdkafka's assignor names that are not ours
OUR_NAMES = {"cooperative-sticky": "sticky"}

STATES = {"EMPTY": "Empty", "STABLE": "Stable", "PREPARING_REBALANCING": "PreparingRebalance",
          "COMPLETING_REBALANCING": "CompletingRebalance", "DEAD": "Dead", "UNKNOWN": "Unknown"}


class KafkaGroups:
    def __init__(self, admin: KafkaAdmin):
        self._admin = admin
        self._client = admin.client
        self.timeout_s = admin.timeout_s

    # -- reading ---------------------------------------------------------------------------

    def group_ids(self) -> list[str]:
        try:
            listed = answer(self._client.list_consumer_groups(
                request_timeout=self.timeout_s), self.timeout_s)
        except KafkaException as exc:
            raise Unavailable(f"the Kafka cluster could not list groups: {exc}") from None
        return sorted(g.group_id for g in listed.valid)

    def _description(self, group_id: str):
        """Kafka's description of a group, or None when it does not exist."""
        try:
            found = answer(self._client.describe_consumer_groups(
                [group_id], request_timeout=self.timeout_s)[group_id], self.timeout_s)
        except KafkaException as exc:
            error = kafka_error(exc)
            if error is not None and error.code() == KafkaError.GROUP_ID_NOT_FOUND:
                return None
            raise Unavailable(f"the Kafka cluster could not describe group {group_id!r}: "
                              f"{exc}") from None
        return None if found.state.name == "DEAD" else found

    def committed(self, group_id: str) -> dict:
        """``{(topic, partition): offset}`` of every committed offset ({} for none)."""
        request = [ConsumerGroupTopicPartitions(group_id)]
        try:
            found = answer(self._client.list_consumer_group_offsets(
                request, request_timeout=self.timeout_s)[group_id], self.timeout_s)
        except KafkaException as exc:
            error = kafka_error(exc)
            if error is not None and error.code() == KafkaError.GROUP_ID_NOT_FOUND:
                return {}
            raise Unavailable(f"the Kafka cluster could not list the offsets of group "
                              f"{group_id!r}: {exc}") from None
        return {(tp.topic, tp.partition): tp.offset for tp in found.topic_partitions or ()
                if tp.offset >= 0}

    def list_groups(self) -> list[dict]:
        out = []
        for group_id in self.group_ids():
            found = self._description(group_id)
            if found is None:
                continue
            out.append({"group_id": group_id, "state": STATES.get(found.state.name, "Unknown"),
                        "generation": 0,
                        "members": sorted(m.client_id for m in found.members)})
        return out

    def describe(self, group_id: str) -> dict:
        found = self._description(group_id)
        committed = self.committed(group_id)
        if found is None and not committed:
            raise GroupNotFound(f"group {group_id!r} does not exist", {"group_id": group_id})
        members = []
        for m in (found.members if found is not None else ()):
            assignment: dict = {}
            for tp in (m.assignment.topic_partitions if m.assignment else ()):
                assignment.setdefault(tp.topic, []).append(tp.partition)
            members.append({"consumer_id": m.client_id, "topics": sorted(assignment),
                            "assignment": {t: sorted(ps) for t, ps in assignment.items()}})
        topics = {t for t, _ in committed} | {t for m in members for t in m["topics"]}
        rows = []
        existing = self._admin.topics()
        for topic in sorted(t for t in topics if t in existing):
            offsets = self._admin.offsets_of(topic, range(existing[topic]))
            for p, (_start, end) in sorted(offsets.items()):
                done = committed.get((topic, p))
                rows.append({"topic": topic, "partition": p, "committed_offset": done,
                             "high_watermark": end,
                             "lag": None if done is None else max(end - done, 0)})
        state = STATES.get(found.state.name, "Unknown") if found is not None else "Empty"
        assignor = (found.partition_assignor or None) if found is not None else None
        assignor = OUR_NAMES.get(assignor, assignor)
        return {"group_id": group_id, "state": state, "generation": 0,
                "assignor": assignor or "range", "members": members, "offsets": rows}

    # -- changing --------------------------------------------------------------------------

    def set_offsets(self, group_id: str, offsets: dict | None = None, reset: str | None = None,
                    topics=None) -> dict:
        self._refuse_if_members(group_id)
        if reset is not None:
            offsets = self._reset_targets(group_id, reset, topics)
        for (topic, p), offset in offsets.items():
            check_commit(topic, p, offset, *self._admin.log_offsets(topic, p))
        request = [ConsumerGroupTopicPartitions(
            group_id, [TopicPartition(t, p, o) for (t, p), o in offsets.items()])]
        try:
            answer(self._client.alter_consumer_group_offsets(
                request, request_timeout=self.timeout_s)[group_id], self.timeout_s)
        except KafkaException as exc:
            raise _group_error(exc, group_id, "set the offsets of") from None
        return offsets

    def _refuse_if_members(self, group_id: str) -> None:
        found = self._description(group_id)
        if found is not None and found.members:
            raise GroupNotEmpty(f"group {group_id!r} has active members; stop them first",
                                {"group_id": group_id})

    def _reset_targets(self, group_id: str, reset: str, topics) -> dict:
        topics = reset_topics(reset, topics, self.committed(group_id))
        targets = {}
        for topic in topics:
            count = self._admin.partition_count(topic)
            for p, (start, end) in self._admin.offsets_of(topic, range(count)).items():
                targets[(topic, p)] = start if reset == "earliest" else end
        return targets

    def delete(self, group_id: str) -> None:
        if self._description(group_id) is None and not self.committed(group_id):
            raise GroupNotFound(f"group {group_id!r} does not exist", {"group_id": group_id})
        try:
            answer(self._client.delete_consumer_groups(
                [group_id], request_timeout=self.timeout_s)[group_id], self.timeout_s)
        except KafkaException as exc:
            raise _group_error(exc, group_id, "delete") from None


def _group_error(exc: KafkaException, group_id: str, doing: str):
    error = kafka_error(exc)
    code = error.code() if error is not None else None
    if code == KafkaError.GROUP_ID_NOT_FOUND:
        return GroupNotFound(f"group {group_id!r} does not exist", {"group_id": group_id})
    if code in (KafkaError.NON_EMPTY_GROUP, KafkaError.UNKNOWN_MEMBER_ID,
                KafkaError.REBALANCE_IN_PROGRESS):
        return GroupNotEmpty(f"group {group_id!r} has active members; stop them first",
                             {"group_id": group_id})
    return Unavailable(f"the Kafka cluster could not {doing} group {group_id!r}: {exc}")
