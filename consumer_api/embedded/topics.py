"""Topics: names, per-topic configuration, and the registry that owns their logs.

On-disk layout under the data directory::

    topics/<name>/topic.json      {"name", "partitions", "config", "created_ms"}
    topics/<name>/<partition>/    the partition's segments (see storage.partition_log)
    staging/                      topics being created (wiped at start-up)
    trash/                        topics being deleted (wiped at start-up)

A topic appears by renaming a complete staging directory into ``topics/`` and disappears
by renaming it into ``trash/``, so a crash never leaves half a topic; a create that fails
(:class:`~consumer_api.errors.StorageFull` when the disk is full) removes whatever it had
staged or published before raising. ``topic.json`` is written to a temporary file, fsynced
and renamed. A name is checked against the rules of API.md *before* it is joined to any
path, so it can never point outside the data directory.

Thread-safety: ``TopicRegistry._lock`` (a Lock) guards the topic table for writers (create,
delete); readers (``get``, ``list``) read the dict without it, which is atomic under the
GIL. A :class:`Topic` is immutable after creation; its partition logs lock themselves.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import uuid
from dataclasses import asdict, dataclass, replace

from consumer_api.errors import (InvalidRequest, PartitionNotFound, StorageFull, TopicExists,
                                 TopicNotFound)
from consumer_api.partitioner import Partitioner
from consumer_api.topic_rules import (MAX_PARTITIONS, MAX_SEGMENT_BYTES, MIN_SEGMENT_BYTES,
                                      check_topic_name, topic_name_problem)
from consumer_api.embedded.storage.mapped_file import is_disk_full
from consumer_api.clock import wall_clock_ms
from consumer_api.durable import fsync_dir
from consumer_api.embedded.storage.partition_log import LogConfig, PartitionLog

log = logging.getLogger(__name__)

META = "topic.json"


@dataclass(frozen=True)
class TopicConfig:
    """Per-topic settings (``-1`` = no retention limit)."""

    retention_ms: int
    retention_bytes: int
    segment_bytes: int

    def problems(self) -> dict:
        out = {}
        if not isinstance(self.retention_ms, int) or self.retention_ms < -1:
            out["retention_ms"] = ["must be -1 (keep forever) or a number of milliseconds >= 0"]
        if not isinstance(self.retention_bytes, int) or self.retention_bytes < -1:
            out["retention_bytes"] = ["must be -1 (no limit) or a number of bytes >= 0"]
        if (not isinstance(self.segment_bytes, int)
                or not MIN_SEGMENT_BYTES <= self.segment_bytes <= MAX_SEGMENT_BYTES):
            out["segment_bytes"] = [f"must be between {MIN_SEGMENT_BYTES} and {MAX_SEGMENT_BYTES}"]
        return out

    def to_dict(self) -> dict:
        return asdict(self)


class Topic:
    """A topic's name, configuration and partition logs (index = partition number)."""

    def __init__(self, name: str, config: TopicConfig, partitions: list, created_ms: int):
        self.name = name
        self.config = config
        self.partitions = partitions
        self.created_ms = created_ms
        self.partitioner = Partitioner()

    def partition(self, number: int) -> PartitionLog:
        if not isinstance(number, int) or not 0 <= number < len(self.partitions):
            raise PartitionNotFound(
                f"topic {self.name!r} has no partition {number} (it has {len(self.partitions)})",
                {"topic": self.name, "partition": number, "partitions": len(self.partitions)})
        return self.partitions[number]


def _write_json_atomically(path: str, data: dict) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(os.path.dirname(path))


class TopicRegistry:
    """Creates, opens, lists and deletes topics under ``root`` (``<data_dir>``).

    ``log_defaults`` supplies the settings a topic does not override (flush policy, index
    interval, and default retention/segment size). ``internal=True`` admits ``__`` names
    (for the server's own topics, kept under a separate root).
    """

    def __init__(self, root: str, log_defaults: LogConfig, now_ms=wall_clock_ms,
                 internal: bool = False):
        self.root = root
        self.log_defaults = log_defaults
        self._now_ms = now_ms
        self._internal = internal
        self._lock = threading.Lock()
        self._topics: dict[str, Topic] = {}
        self.recovered_bytes_dropped = 0
        for sub in ("topics", "staging", "trash"):
            os.makedirs(os.path.join(root, sub), exist_ok=True)
        for sub in ("staging", "trash"):
            self._wipe(os.path.join(root, sub))
        self._open_all()

    # -- paths -----------------------------------------------------------------------------

    def _topic_dir(self, name: str) -> str:
        check_topic_name(name, self._internal)  # never build a path from an unchecked name
        return os.path.join(self.root, "topics", name)

    @staticmethod
    def _wipe(directory: str) -> None:
        for entry in os.listdir(directory):
            shutil.rmtree(os.path.join(directory, entry), ignore_errors=True)

    # -- opening ---------------------------------------------------------------------------

    def _open_all(self) -> None:
        topics_dir = os.path.join(self.root, "topics")
        for name in sorted(os.listdir(topics_dir)):
            if topic_name_problem(name, self._internal):
                log.warning("ignoring %r in %s: not a topic name", name, topics_dir)
                continue
            meta_path = os.path.join(topics_dir, name, META)
            try:
                with open(meta_path, encoding="utf-8") as f:
                    meta = json.load(f)
            except (OSError, ValueError) as exc:
                log.error("ignoring topic directory %r: unreadable %s (%s)", name, META, exc)
                continue
            topic = self._open_topic(name, meta["partitions"], TopicConfig(**meta["config"]),
                                     meta.get("created_ms", 0))
            self._topics[name] = topic

    def _log_config(self, config: TopicConfig) -> LogConfig:
        return replace(self.log_defaults, segment_bytes=config.segment_bytes,
                       retention_ms=config.retention_ms,
                       retention_bytes=config.retention_bytes)

    def _open_topic(self, name: str, partitions: int, config: TopicConfig, created_ms: int) -> Topic:
        directory = self._topic_dir(name)
        log_config = self._log_config(config)
        logs = []
        try:
            for p in range(partitions):
                plog = PartitionLog(os.path.join(directory, str(p)), log_config, self._now_ms,
                                    name=(name, p))
                self.recovered_bytes_dropped += plog.recovery.dropped_bytes
                logs.append(plog)
        except BaseException:
            for plog in logs:
                plog.close()
            raise
        return Topic(name, config, logs, created_ms)

    # -- API -------------------------------------------------------------------------------

    def default_config(self, **overrides) -> TopicConfig:
        d = self.log_defaults
        values = dict(retention_ms=d.retention_ms, retention_bytes=d.retention_bytes,
                      segment_bytes=d.segment_bytes)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return TopicConfig(**values)

    def create(self, name: str, partitions: int, config: dict | None = None) -> Topic:
        """Create a topic; raises InvalidRequest (bad name, count or config), TopicExists, or
        StorageFull (the disk is full; nothing of the topic is left on disk and the name can
        be created again later)."""
        check_topic_name(name, self._internal)
        problems = {}
        if not isinstance(partitions, int) or isinstance(partitions, bool) \
                or not 1 <= partitions <= MAX_PARTITIONS:
            problems["partitions"] = [f"must be between 1 and {MAX_PARTITIONS}"]
        unknown = set(config or ()) - {"retention_ms", "retention_bytes", "segment_bytes"}
        if unknown:
            problems["config"] = [f"unknown setting(s): {', '.join(sorted(unknown))}"]
            config = {}
        topic_config = self.default_config(**(config or {}))
        problems.update(topic_config.problems())
        if problems:
            raise InvalidRequest("invalid topic: " + "; ".join(
                f"{k} {' '.join(v)}" for k, v in problems.items()), problems)
        with self._lock:
            if name in self._topics:
                raise TopicExists(f"topic {name!r} already exists", {"topic": name})
            topic = self._create_files(name, partitions, topic_config, self._now_ms())
            self._topics[name] = topic
        log.info("created topic %s with %d partitions", name, partitions)
        return topic

    def _create_files(self, name: str, partitions: int, config: TopicConfig,
                      created_ms: int) -> Topic:
        """Stage, publish and open a new topic's files. If any step fails, nothing of the
        topic is left on disk and the error propagates, an OSError of a full disk as
        StorageFull. Call with ``_lock`` held."""
        try:
            staging = self._stage(name, partitions, config, created_ms)
            try:
                self._publish(staging, name)
                return self._open_topic(name, partitions, config, created_ms)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)  # not renamed yet
                self._unpublish(name)  # renamed
                raise
        except OSError as exc:
            if is_disk_full(exc):
                raise StorageFull(f"no space left to create topic {name!r}: {exc.strerror}",
                                  {"topic": name}) from exc
            raise

    def _stage(self, name: str, partitions: int, config: TopicConfig, created_ms: int) -> str:
        """Build a complete topic directory (partition directories and ``topic.json``)
        under ``staging/`` and return its path; on failure it is removed again."""
        staging = os.path.join(self.root, "staging", uuid.uuid4().hex)
        os.mkdir(staging)
        try:
            for p in range(partitions):
                os.mkdir(os.path.join(staging, str(p)))
            _write_json_atomically(os.path.join(staging, META), {
                "name": name, "partitions": partitions, "config": config.to_dict(),
                "created_ms": created_ms})
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return staging

    def _publish(self, staging: str, name: str) -> None:
        """Rename a staged topic to ``topics/<name>``, replacing a stray directory of that
        name (one no registered topic owns)."""
        final = self._topic_dir(name)
        if os.path.exists(final):
            shutil.rmtree(final)
        os.rename(staging, final)
        fsync_dir(os.path.dirname(final))

    def _unpublish(self, name: str) -> None:
        """Remove ``topics/<name>`` of a topic that failed to open, if it is there."""
        if os.path.exists(self._topic_dir(name)):
            shutil.rmtree(self._move_to_trash(name), ignore_errors=True)

    def _move_to_trash(self, name: str) -> str:
        """Rename ``topics/<name>`` into ``trash/`` (the topic is gone once this returns,
        even after a crash); returns the path in ``trash/`` for the caller to remove."""
        trash = os.path.join(self.root, "trash", uuid.uuid4().hex)
        os.rename(self._topic_dir(name), trash)
        fsync_dir(os.path.join(self.root, "topics"))
        return trash

    def get(self, name: str) -> Topic:
        topic = self._topics.get(name)
        if topic is None:
            raise TopicNotFound(f"topic {name!r} does not exist", {"topic": name})
        return topic

    def exists(self, name: str) -> bool:
        return name in self._topics

    def list(self) -> list[Topic]:
        return sorted(self._topics.values(), key=lambda t: t.name)

    def delete(self, name: str) -> None:
        """Delete a topic and its files; waiters on its partitions wake up."""
        with self._lock:
            topic = self._topics.pop(name, None)
            if topic is None:
                raise TopicNotFound(f"topic {name!r} does not exist", {"topic": name})
            for plog in topic.partitions:
                plog.close(sync=False)
            trash = self._move_to_trash(name)
        shutil.rmtree(trash, ignore_errors=True)
        log.info("deleted topic %s", name)

    def partitions(self):
        """Every partition log of every topic, as ``(topic, number, log)``."""
        for topic in list(self._topics.values()):
            for number, plog in enumerate(topic.partitions):
                yield topic, number, plog

    def close(self) -> None:
        with self._lock:
            for topic in self._topics.values():
                for plog in topic.partitions:
                    plog.close()
            self._topics.clear()
