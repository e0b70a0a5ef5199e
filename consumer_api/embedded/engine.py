"""The embedded engine: everything that lives in one data directory of one process.

``Engine(config)`` takes the data directory's lock file, opens (and recovers) every topic,
and owns the maintenance thread that flushes logs on the flush interval and enforces
retention. Threads are started by :meth:`start`, never at construction, so that a forking
server (gunicorn) starts them in the worker that serves requests.
"""
from __future__ import annotations

import logging
import resource
import threading
import time

from consumer_api.backend import BackendStats, PartitionStats
from consumer_api.config import Config
from consumer_api.embedded.groups.service import GroupService
from consumer_api.embedded.lockfile import DataDirLock
from consumer_api.embedded.member import EmbeddedMember
from consumer_api.clock import wall_clock_ms
from consumer_api.embedded.storage.partition_log import LogConfig, append_all
from consumer_api.embedded.topics import TopicRegistry

log = logging.getLogger(__name__)


def _raise_open_files_limit() -> None:
    """Each segment holds a few descriptors (its maps): allow as many as the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Engine:
    """``Engine(config)`` takes the data directory's lock at once (a second process fails
    fast; the previous worker of the same server, after a reload, is waited for up to
    ``sibling_wait_s``) and, unless ``open_now`` is False, opens and recovers every log; a
    server opens them in the background with :meth:`open` so that it can answer health
    probes (``ready`` is 503) meanwhile."""

    def __init__(self, config: Config, now_ms=wall_clock_ms, open_now: bool = True,
                 sibling_wait_s: float = 0.0):
        self.config = config
        self._now_ms = now_ms
        self.is_open = False
        self.open_seconds = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_retention_ms = 0
        _raise_open_files_limit()
        self._dir_lock = DataDirLock(config.data_dir, sibling_wait_s)
        if open_now:
            self.open()

    def open(self) -> None:
        """Open every topic (recovering their logs) and the consumer groups' offsets."""
        started = time.monotonic()
        try:
            self.topics = TopicRegistry(self.config.data_dir, LogConfig.from_config(self.config),
                                        self._now_ms)
            self.groups = GroupService(self.topics, self.config.data_dir,
                                       self.config.default_assignor, self._now_ms)
        except BaseException:
            if hasattr(self, "topics"):
                self.topics.close()
            self._dir_lock.release()
            raise
        self.open_seconds = time.monotonic() - started
        self.is_open = True
        log.info("opened %s: %d topics in %.3f s, %d bytes dropped by recovery",
                 self.config.data_dir, len(self.topics.list()), self.open_seconds,
                 self.topics.recovered_bytes_dropped)

    # -- topics and records (the backend seam: consumer_api.backend.Backend) ---------------

    def create_topic(self, name: str, partitions: int, config: dict | None = None) -> dict:
        topic = self.topics.create(name, partitions, config)
        self.groups.topic_created(name)
        return {"name": topic.name, "partitions": len(topic.partitions),
                "config": topic.config.to_dict()}

    def list_topics(self) -> list[dict]:
        out = []
        for topic in self.topics.list():
            parts = []
            for number, plog in enumerate(topic.partitions):
                start, end = plog.offsets()
                parts.append({"partition": number, "log_start_offset": start,
                              "high_watermark": end})
            out.append({"name": topic.name, "partitions": parts})
        return out

    def describe_topic(self, name: str) -> dict:
        topic = self.topics.get(name)
        parts = []
        for number, plog in enumerate(topic.partitions):
            start, end = plog.offsets()
            parts.append({"partition": number, "log_start_offset": start, "high_watermark": end,
                          "size_bytes": plog.size_bytes})
        return {"name": topic.name, "config": topic.config.to_dict(), "partitions": parts}

    def delete_topic(self, name: str) -> None:
        """Delete a topic, its committed offsets, and its partitions from every group's
        assignment (members subscribed to it are rebalanced)."""
        self.topics.delete(name)
        self.groups.topic_deleted(name)

    def produce(self, topic: str, records: list, partitions: list) -> list[dict]:
        """Append ``records`` (:class:`NewRecord`-shaped tuples) to a topic;
        ``partitions[i]`` is record i's explicit partition or None (keyed: Kafka's
        murmur2; keyless: round-robin). Every explicit partition is checked before anything
        is appended; each partition's share of the request is one atomic batch, and a full
        disk (StorageFull) stores none of the shares (see ``append_all``). Returns
        ``{"partition", "offset", "timestamp"}`` per record, in request order (the API's
        form: built once, here, rather than as tuples converted again by the caller)."""
        topic = self.topics.get(topic)  # the name, then the Topic
        now = self._now_ms()
        if partitions.count(None) == len(partitions) and all(r[0] is None for r in records):
            return self._produce_round_robin(topic, records, now)
        count = len(topic.partitions)
        choose = topic.partitioner.partition
        batches: dict[int, list] = {}
        chosen = []
        for record, partition in zip(records, partitions):
            if partition is None:
                partition = choose(record[0], count)
            elif partition >= count:
                topic.partition(partition)  # raises PartitionNotFound
            batch = batches.get(partition)
            if batch is None:
                batches[partition] = batch = []
            batch.append(record)
            chosen.append(partition)
        shares = [(topic.partitions[p], batch) for p, batch in batches.items()]
        next_offset = dict(zip(batches, append_all(shares, now)))
        out = []
        for record, partition in zip(records, chosen):
            offset = next_offset[partition]
            next_offset[partition] = offset + 1
            ts = record[3]
            out.append({"partition": partition, "offset": offset,
                        "timestamp": now if ts is None else ts})
        return out

    @staticmethod
    def _produce_round_robin(topic, records: list, now: int) -> list[tuple]:
        """Keyless records without explicit partitions: record ``i`` goes to partition
        ``(start + i) % n`` -- the same spread as choosing one by one, with one slice per
        partition instead of a Python step per record."""
        n, k = len(topic.partitions), len(records)
        start = topic.partitioner.advance(k)
        shares = [((start + j) % n, records[j::n]) for j in range(min(n, k))]
        bases = append_all([(topic.partitions[p], share) for p, share in shares], now)
        out: list = [None] * k
        for j, ((p, share), base) in enumerate(zip(shares, bases)):
            out[j::n] = [{"partition": p, "offset": base + q,
                          "timestamp": now if r[3] is None else r[3]} for q, r in enumerate(share)]
        return out

    def read(self, topic: str, partition: int, offset: int | None, max_records: int,
             max_bytes: int) -> list:
        """Stateless read of one partition from ``offset`` (default: the log start)."""
        plog = self.topics.get(topic).partition(partition)
        if offset is None:
            offset = plog.log_start_offset
        return plog.read(offset, max_records, max_bytes)

    def fetch(self, topic: str, partition: int, offset: int, max_records: int, max_bytes: int,
              taken: int):
        """``(records, taken)``: see PartitionLog.fetch."""
        return self.topics.get(topic).partition(partition).fetch(offset, max_records, max_bytes,
                                                                  taken)

    def partition_count(self, topic: str) -> int:
        return len(self.topics.get(topic).partitions)

    def log_offsets(self, topic: str, partition: int) -> tuple[int, int]:
        """``(log_start_offset, high_watermark)``; TopicNotFound / PartitionNotFound."""
        return self.topics.get(topic).partition(partition).offsets()

    def offset_for_timestamp(self, topic: str, partition: int, timestamp: int) -> int:
        """First offset with a timestamp >= ``timestamp``; the high watermark if none."""
        plog = self.topics.get(topic).partition(partition)
        found = plog.offset_for_timestamp(timestamp)
        return plog.high_watermark if found is None else found

    def positions_for_times(self, topic: str, partitions, timestamps) -> dict:
        """``{partition: [(offset, byte), ...]}``: see PartitionLog.positions_for_times."""
        found = self.topics.get(topic)
        logs = {p: found.partition(p) for p in partitions}  # PartitionNotFound first
        return {p: plog.positions_for_times(timestamps) for p, plog in logs.items()}

    def stats(self) -> BackendStats:
        partitions = []
        for topic in self.topics.list():
            for number, plog in enumerate(topic.partitions):
                start, end = plog.offsets()
                partitions.append(PartitionStats(topic.name, number, start, end,
                                                 plog.size_bytes))
        offsets = self.groups.offsets
        committed = {group: offsets.committed(group) for group in offsets.group_ids()}
        return BackendStats(partitions, committed, self.groups.coordinator.rebalances)

    # -- consumer groups -------------------------------------------------------------------

    def member(self, group_id: str, member_id: str, wake) -> EmbeddedMember:
        return EmbeddedMember(self.groups, self.topics, group_id, member_id, wake)

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

    # -- maintenance -----------------------------------------------------------------------

    def start(self) -> None:
        """Start the maintenance thread (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._maintain, name="log-maintenance",
                                            daemon=True)
            self._thread.start()

    def _maintain(self) -> None:
        period_s = max(0.05, min(self.config.flush_interval_ms,
                                 self.config.retention_check_interval_ms) / 1000)
        while not self._stop.wait(period_s):
            try:
                self.run_maintenance()
            except Exception:  # keep maintaining; the next pass retries
                log.exception("log maintenance failed")

    def run_maintenance(self, now_ms: int | None = None) -> dict:
        """One pass: flush partitions whose flush interval passed; enforce retention when
        its check interval passed. Returns counts (for tests and metrics)."""
        now = self._now_ms() if now_ms is None else now_ms
        flushed = deleted = 0
        retention_due = now - self._last_retention_ms >= self.config.retention_check_interval_ms
        for _topic, _number, plog in self.topics.partitions():
            flushed += plog.flush_if_due(now)
            if retention_due:
                deleted += plog.enforce_retention(now)
        if retention_due:
            self._last_retention_ms = now
        flushed += self.groups.offsets.flush_if_due(now)
        self.groups.offsets.maybe_snapshot()
        return {"flushed": flushed, "segments_deleted": deleted}

    # -- shutdown --------------------------------------------------------------------------

    def close(self) -> None:
        """Stop maintenance, flush and close every log, release the data directory."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if not self.is_open:
            self._dir_lock.release()
            return
        self.is_open = False
        try:
            self.groups.close()
        finally:
            self.topics.close()
            self._dir_lock.release()
