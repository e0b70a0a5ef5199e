"""KafkaBackend: the store over an Apache Kafka cluster.

Parts: :class:`~consumer_api.kafka.admin.KafkaAdmin` (topics, offsets),
:class:`~consumer_api.kafka.producer.KafkaProducer` (one per node, placement as the
embedded engine's), a few :class:`~consumer_api.kafka.reader.Reader` threads (stateless
reads, one Consumer each), :class:`~consumer_api.kafka.groups.KafkaGroups` (group
administration) and a :class:`~consumer_api.kafka.member.KafkaMember` per consumer session
(a Kafka consumer in its group, owned by a pump thread). What Kafka does not say, the store
leaves out: a partition's ``size_bytes`` is None.

Thread-safety: every method may be called from any request thread; the parts lock
themselves, and each Consumer is owned by one thread.
"""
from __future__ import annotations

import itertools
import logging
import threading
import weakref

from consumer_api.backend import BackendStats, PartitionStats
from consumer_api.errors import TopicNotFound
from consumer_api.kafka.admin import KafkaAdmin
from consumer_api.kafka.groups import KafkaGroups
from consumer_api.kafka.member import KafkaMember
from consumer_api.kafka.producer import KafkaProducer
from consumer_api.kafka.reader import Reader
from consumer_api.kafka.stored_ends import StoredEnds

#: threads (each with its Consumer) serving stateless reads
READERS = 2
#: where librdkafka's own log lines go (instead of stderr)
client_log = logging.getLogger("consumer_api.kafka.client")


class KafkaBackend:
    """``client_config``: librdkafka settings every client gets (``bootstrap.servers`` at
    least); ``timeout_s``: the most a call waits for the cluster."""

    def __init__(self, client_config: dict, timeout_s: float = 30.0,
                 replication_factor: int = -1):
        self._config = {**client_config, "logger": client_log}
        self.timeout_s = timeout_s
        self._replication = replication_factor
        self._open = False
        self._turn = itertools.count()
        self._stored = StoredEnds()
        self._members: "weakref.WeakSet[KafkaMember]" = weakref.WeakSet()
        self._rebalance_lock = threading.Lock()
        self.rebalances = 0  # this node's members' rebalances (under _rebalance_lock)

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self._open

    def open(self) -> None:
        self.admin = KafkaAdmin(self._config, self.timeout_s, self._replication)
        self.admin.topics()  # the cluster answers, or Unavailable
        self.groups = KafkaGroups(self.admin)
        self.producer = KafkaProducer(self._config, self.admin.partition_count,
                                      self.timeout_s)
        self._readers = [Reader(self._config, self.timeout_s, f"reader-{i}")
                         for i in range(READERS)]
        self._open = True

    def start(self) -> None:
        """Nothing to start: the parts' threads start with them."""

    def close(self) -> None:
        if not self._open:
            return
        self._open = False
        for member in list(self._members):
            member.leave()
        self.producer.close()
        for reader in self._readers:
            reader.close()

    # -- topics ------------------------------------------------------------------------------

    def create_topic(self, name: str, partitions: int, config: dict | None = None) -> dict:
        return self.admin.create_topic(name, partitions, config)

    def list_topics(self) -> list[dict]:
        out = []
        for name, count in self.admin.topics().items():
            try:
                offsets = self.admin.offsets_of(name, range(count))
            except TopicNotFound:
                continue  # deleted meanwhile
            out.append({"name": name, "partitions": [
                {"partition": p, "log_start_offset": start, "high_watermark": end}
                for p, (start, end) in sorted(offsets.items())]})
        return out

    def describe_topic(self, name: str) -> dict:
        offsets = self.admin.offsets_of(name, range(self.admin.partition_count(name)))
        return {"name": name, "config": self.admin.topic_config(name), "partitions": [
            {"partition": p, "log_start_offset": start, "high_watermark": end,
             "size_bytes": None} for p, (start, end) in sorted(offsets.items())]}

    def delete_topic(self, name: str) -> None:
        self.admin.partition_count(name)  # TopicNotFound
        self.admin.delete_topic(name)
        self._stored.forget(name)

    def partition_count(self, topic: str) -> int:
        return self.admin.partition_count(topic)

    def log_offsets(self, topic: str, partition: int) -> tuple[int, int]:
        return self.admin.log_offsets(topic, partition)

    def offset_for_timestamp(self, topic: str, partition: int, timestamp: int) -> int:
        return self.admin.offset_for_timestamp(topic, partition, timestamp)

    def positions_for_times(self, topic: str, partitions, timestamps) -> dict:
        """Offsets from the cluster's time index; bytes None (Kafka does not tell them)."""
        found = self.admin.offsets_for_times(topic, partitions, timestamps)
        return {p: [(offset, None) for offset in offsets] for p, offsets in found.items()}

    # -- records -----------------------------------------------------------------------------

    def produce(self, topic: str, records: list, partitions: list) -> list[dict]:
        results = self.producer.produce(topic, records, partitions)
        self._stored.note(topic, results)
        return results

    def read(self, topic: str, partition: int, offset: int | None, max_records: int,
             max_bytes: int) -> list:
        if offset is None:
            offset = self.admin.log_offsets(topic, partition)[0]
        return self.fetch(topic, partition, offset, max_records, max_bytes, 0)[0]

    def fetch(self, topic: str, partition: int, offset: int, max_records: int,
              max_bytes: int, taken: int) -> tuple[list, int]:
        _start, end = self.admin.check_offset(topic, partition, offset)
        reader = self._readers[next(self._turn) % len(self._readers)]
        return reader.fetch(topic, partition, offset, end, max_records, max_bytes, taken)

    def stats(self) -> BackendStats:
        partitions = []
        for topic in self.list_topics():
            for row in topic["partitions"]:
                partitions.append(PartitionStats(topic["name"], row["partition"],
                                                 row["log_start_offset"],
                                                 row["high_watermark"], None))
        committed = {g: self.groups.committed(g) for g in self.groups.group_ids()}
        return BackendStats(partitions, {g: c for g, c in committed.items() if c},
                            self.rebalances)

    # -- consumer groups ---------------------------------------------------------------------

    def member(self, group_id: str, member_id: str, wake) -> KafkaMember:
        member = KafkaMember(self._config, self.admin, group_id, member_id, wake,
                             self._count_rebalance, self.timeout_s,
                             stored_end=self._stored.end)
        self._members.add(member)
        return member

    def _count_rebalance(self) -> None:
        with self._rebalance_lock:
            self.rebalances += 1

    def list_groups(self) -> list[dict]:
        return self.groups.list_groups()

    def describe_group(self, group_id: str) -> dict:
        return self.groups.describe(group_id)

    def committed(self, group_id: str) -> dict:
        return self.groups.committed(group_id)

    def set_offsets(self, group_id: str, offsets: dict | None = None, reset: str | None = None,
                    topics=None) -> dict:
        return self.groups.set_offsets(group_id, offsets, reset, topics)

    def delete_group(self, group_id: str) -> None:
        self.groups.delete(group_id)
