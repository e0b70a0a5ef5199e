"""OffsetStore: committed offsets of every group, durable across restarts.

Like Kafka's ``__consumer_offsets``, commits are themselves a log: every change is one
record appended to an internal partition log (``<data_dir>/internal/offsets/log``) before
it is applied in memory and acknowledged. Record values are compact JSON::

    {"g": group, "c": [[topic, partition, offset], ...]}   a commit
    {"g": group, "d": 1}                                    the group was deleted
    {"t": topic, "d": 1}                                    the topic was deleted

A snapshot (``snapshot-<20-digit log offset>.json``: ``{"log_offset": N, "groups": {group:
[[topic, partition, offset], ...]}}``, written to a temporary file, fsynced, renamed) holds
the whole table as of log offset N; start-up loads the newest readable snapshot and replays
only the records after it, and whole log segments below the snapshot are deleted, so both
start-up time and disk use stay bounded by the snapshot interval.

Durability follows the log's flush policy, as for records: with ``always`` every change is
synced to disk before the call that made it returns; with ``interval`` it is in the page
cache (it survives a crash of the process) and :meth:`OffsetStore.flush_if_due` syncs it.

Thread-safety: ``_lock`` guards the table and the appends (a change is appended and applied
under it, so the log's order is the table's order). Snapshots copy the table under the lock
and write it outside.
"""
from __future__ import annotations

import dataclasses
import glob
import json
import logging
import os
import threading

import orjson

from consumer_api.clock import wall_clock_ms
from consumer_api.durable import fsync_dir
from consumer_api.embedded.storage.partition_log import LogConfig, PartitionLog
from consumer_api.records import NewRecord

log = logging.getLogger(__name__)

#: the internal log needs no retention: snapshots bound it
OFFSETS_LOG = LogConfig(segment_bytes=4 << 20, retention_ms=-1, retention_bytes=-1)


def offsets_log_config(topic_defaults: LogConfig) -> LogConfig:
    """:data:`OFFSETS_LOG` with the flush policy and intervals of the topics' logs, so that
    a commit is as durable when acknowledged as a produced record."""
    return dataclasses.replace(OFFSETS_LOG, flush_policy=topic_defaults.flush_policy,
                               flush_interval_messages=topic_defaults.flush_interval_messages,
                               flush_interval_ms=topic_defaults.flush_interval_ms)


def _dumps(obj) -> bytes:
    """Compact JSON, UTF-8 (what ``json.loads`` reads back)."""
    return orjson.dumps(obj)


class OffsetStore:
    def __init__(self, directory: str, log_config: LogConfig = OFFSETS_LOG,
                 now_ms=wall_clock_ms, snapshot_every_records: int = 10_000):
        self.directory = directory
        self.snapshot_every_records = snapshot_every_records
        os.makedirs(directory, exist_ok=True)
        self._lock = threading.Lock()
        self._groups: dict[str, dict[tuple[str, int], int]] = {}
        self._log = PartitionLog(os.path.join(directory, "log"), log_config, now_ms)
        self._snapshot_offset = self._load()
        self.replayed_records = self._replay(self._snapshot_offset)

    # -- start-up --------------------------------------------------------------------------

    def _snapshot_paths(self) -> list[str]:
        return sorted(glob.glob(os.path.join(self.directory, "snapshot-*.json")))

    def _load(self) -> int:
        for leftover in glob.glob(os.path.join(self.directory, "snapshot-*.json.tmp")):
            os.unlink(leftover)  # a snapshot interrupted before its rename
        for path in reversed(self._snapshot_paths()):
            try:
                with open(path, encoding="utf-8") as f:
                    data = json.load(f)
                self._groups = {g: {(t, p): o for t, p, o in rows}
                                for g, rows in data["groups"].items()}
                return data["log_offset"]
            except Exception as exc:  # any damage: fall back to the older snapshot
                log.error("ignoring unreadable offsets snapshot %s: %s", path, exc)
        return 0

    def _replay(self, start: int) -> int:
        log_start, end = self._log.offsets()
        if start < log_start:
            log.error("offsets log starts at %d but the snapshot covers only up to %d; "
                      "commits in between are lost", log_start, start)
            start = log_start
        count = 0
        while start < end:
            batch = self._log.read(start, 10_000, 64 << 20)
            for offset, _ts, _key, value, _headers in batch:
                self._apply(json.loads(value))
                start = offset + 1
                count += 1
        return count

    # -- changes ---------------------------------------------------------------------------

    def _apply(self, change: dict) -> None:
        if "c" in change:
            table = self._groups.setdefault(change["g"], {})
            for topic, partition, offset in change["c"]:
                table[(topic, partition)] = offset
        elif "g" in change:
            self._groups.pop(change["g"], None)
        elif "t" in change:
            topic = change["t"]
            for group_id in list(self._groups):
                table = self._groups[group_id]
                for key in [k for k in table if k[0] == topic]:
                    del table[key]
                if not table:
                    del self._groups[group_id]

    def _record(self, key: str | None, change: dict) -> None:
        """Append a change, then apply it. Call with ``_lock`` held."""
        self._log.append([NewRecord(key.encode() if key else None, _dumps(change), None, None)])
        self._apply(change)

    def commit(self, group_id: str, offsets: dict) -> None:
        """Durably record ``{(topic, partition): offset}`` for a group."""
        if not offsets:
            return
        rows = [[t, p, o] for (t, p), o in offsets.items()]
        with self._lock:
            self._record(group_id, {"g": group_id, "c": rows})

    def delete_group(self, group_id: str) -> bool:
        with self._lock:
            if group_id not in self._groups:
                return False
            self._record(group_id, {"g": group_id, "d": 1})
            return True

    def delete_topic(self, topic: str) -> None:
        with self._lock:
            if any(k[0] == topic for table in self._groups.values() for k in table):
                self._record(None, {"t": topic, "d": 1})

    # -- queries ---------------------------------------------------------------------------

    def committed(self, group_id: str) -> dict:
        """A copy of the group's ``{(topic, partition): offset}``."""
        with self._lock:
            return dict(self._groups.get(group_id, ()))

    def get(self, group_id: str, topic: str, partition: int) -> int | None:
        table = self._groups.get(group_id)
        return table.get((topic, partition)) if table else None

    def group_ids(self) -> list[str]:
        with self._lock:
            return list(self._groups)

    # -- snapshots -------------------------------------------------------------------------

    def maybe_snapshot(self) -> bool:
        """Snapshot when ``snapshot_every_records`` changes accumulated since the last."""
        if self._log.high_watermark - self._snapshot_offset < self.snapshot_every_records:
            return False
        self.snapshot()
        return True

    def snapshot(self) -> None:
        with self._lock:
            offset = self._log.high_watermark
            if offset == self._snapshot_offset:
                return
            groups = {g: [[t, p, o] for (t, p), o in table.items()]
                      for g, table in self._groups.items()}
        # the log up to the snapshot must be on disk first: after a machine crash it must
        # never end below a snapshot, or later commits would reuse offsets replay skips
        self._log.flush()
        path = os.path.join(self.directory, f"snapshot-{offset:020d}.json")
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(_dumps({"log_offset": offset, "groups": groups}))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_dir(self.directory)
        self._snapshot_offset = offset
        for old in self._snapshot_paths()[:-2]:  # keep the newest two
            os.unlink(old)
        kept = self._snapshot_paths()
        if len(kept) == 2:  # the log stays complete from the older one on (its fallback)
            self._log.delete_segments_before(_offset_of(kept[0]))

    def flush_if_due(self, now_ms: int) -> bool:
        """Sync commits to disk on the same interval as the topics' logs."""
        return self._log.flush_if_due(now_ms)

    def close(self) -> None:
        try:
            self.snapshot()
        finally:
            self._log.close()


def _offset_of(path: str) -> int:
    return int(os.path.basename(path)[len("snapshot-"):-len(".json")])
