"""A segment: one ``.log`` file of frames plus its ``.index`` and ``.timeindex``.

Files are named by the 20-digit base offset (``00000000000000000000.log``). Frame format:
:mod:`records`; index formats: :mod:`index`.

A segment is *active* (the last of its partition: writable maps of preallocated, sparse
files whose blocks are reserved ahead of the writes) or *sealed* (trimmed to its real
length, mapped read-only). Rolling seals the active segment: it adds the final time index
entry, trims all three files and remaps them read-only.

Not thread-safe: the owning :class:`~.partition_log.PartitionLog` holds its lock around
every call.
"""
from __future__ import annotations

import logging
import os

from consumer_api.embedded.storage import records
from consumer_api.embedded.storage.index import OffsetIndex, TimeIndex, index_paths
from consumer_api.embedded.storage.mapped_file import MappedFile, map_readonly

log = logging.getLogger(__name__)


def index_capacity(log_capacity: int, interval: int) -> int:
    """Most index entries a log of ``log_capacity`` bytes can need."""
    return log_capacity // max(interval, 1) + 2


class Segment:
    """State: ``base_offset``; ``next_offset`` (after the last record); ``size`` (bytes of
    frames); ``max_timestamp`` (-1 when empty); ``since_mark`` (log bytes after the last
    index entry); ``active``."""

    def __init__(self, directory: str, base_offset: int, interval: int):
        self.directory = directory
        self.base_offset = base_offset
        self.interval = interval
        self.log_path, self.index_path, self.timeindex_path = index_paths(directory, base_offset)
        self.next_offset = base_offset
        self.size = 0
        self.max_timestamp = -1
        self.since_mark = 0
        self.active = False
        self._log = None  # MappedFile while active
        self.data = b""  # the log's map (writable while active)
        self.index: OffsetIndex | None = None
        self.timeindex: TimeIndex | None = None

    # -- opening ---------------------------------------------------------------------------

    @classmethod
    def create(cls, directory: str, base_offset: int, capacity: int, interval: int) -> "Segment":
        """A new, empty active segment (raises StorageFull if its blocks cannot be reserved)."""
        seg = cls(directory, base_offset, interval)
        entries = index_capacity(capacity, interval)
        seg._log = MappedFile(seg.log_path, capacity, create=True)
        try:
            seg.index = OffsetIndex(seg.index_path, entries, writable=True, create=True)
            seg.timeindex = TimeIndex(seg.timeindex_path, entries, writable=True, create=True)
        except BaseException:
            seg._log.trim(0)
            seg.remove_files()
            raise
        seg.data = seg._log.map
        seg.active = True
        return seg

    @classmethod
    def open_sealed(cls, directory: str, base_offset: int, interval: int) -> "Segment":
        """Map a sealed segment read-only. Its indexes are checked (O(entries)) and rebuilt
        from the log if damaged; the log itself is trusted (it was flushed when sealed) and
        CRC-checked on every read."""
        seg = cls(directory, base_offset, interval)
        seg.data, seg.size = map_readonly(seg.log_path)
        seg._open_sealed_indexes()
        if not seg._sealed_indexes_ok():
            log.warning("rebuilding the damaged indexes of %s", seg.log_path)
            seg._rebuild_sealed_indexes()
        seg.next_offset = seg.base_offset + seg.timeindex.get(seg.timeindex.count - 1)[1]
        seg.max_timestamp = seg.timeindex.last_timestamp()
        return seg

    def _open_sealed_indexes(self):
        for attr, kind, path in (("index", OffsetIndex, self.index_path),
                                 ("timeindex", TimeIndex, self.timeindex_path)):
            if not os.path.exists(path):
                open(path, "wb").close()
            setattr(self, attr, kind(path))

    def _sealed_indexes_ok(self) -> bool:
        n, tn = self.index.count, self.timeindex.count
        if tn != n + 1 or self.index.valid_prefix(self.size) != n:
            return False
        if self.timeindex.valid_prefix(self.size) != tn:
            return False
        for i in (0, n - 1) if n else ():
            rel, pos = self.index.get(i)
            frame = records.frame_at(self.data, pos, self.size)
            if frame is None or frame[0] != self.base_offset + rel or self.timeindex.get(i)[1] != rel:
                return False
        last_rel = self.timeindex.get(tn - 1)[1]
        if n:
            return last_rel > self.index.get(n - 1)[0]
        return last_rel > 0 or self.size == 0

    def _rebuild_sealed_indexes(self):
        """Rebuild both index files of a sealed segment by scanning its log."""
        result = records.scan(self.data, 0, self.size, self._first_offset(), self.interval, 0, -1)
        if result.end != self.size:
            log.error("%s: %d bytes after position %d are unreadable (%s); they stay on disk "
                      "and reads stop before them", self.log_path, self.size - result.end,
                      result.end, result.stop_reason)
        self.index.close()
        self.timeindex.close()
        entries = index_capacity(self.size, self.interval)
        for path in (self.index_path, self.timeindex_path):
            os.unlink(path)
        self.index = OffsetIndex(self.index_path, entries, writable=True, create=True)
        self.timeindex = TimeIndex(self.timeindex_path, entries, writable=True, create=True)
        self._add_marks(result.marks, 0)
        self.timeindex.append(result.max_timestamp, result.next_offset - self.base_offset)
        self.size = result.end
        self.index.seal()
        self.timeindex.seal()

    def _first_offset(self) -> int:
        return records.frame_offset(self.data, 0) if self.size >= records.HEADER_SIZE else self.base_offset

    @classmethod
    def recover(cls, directory: str, base_offset: int, capacity: int, interval: int):
        """Open the last segment of a partition for appending after a clean or unclean stop.

        Scans frames from the last index entry that starts a batch (so the cost does not grow
        with the log), truncates after the last complete batch, wipes everything past that
        point and rebuilds the index tail. Returns ``(segment, dropped_bytes, reason)``.
        """
        seg = cls(directory, base_offset, interval)
        buf, file_len = map_readonly(seg.log_path)
        try:
            start_entry, start_pos, start_ts = seg._recovery_start(buf, file_len)
            result = records.scan(buf, start_pos, file_len, base_offset + start_entry[0],
                                  interval, 0, start_ts)
            dropped = seg._junk_end(buf, result, file_len) - result.end
        finally:
            if hasattr(buf, "close"):
                buf.close()
        kept = seg._kept_entries
        capacity = max(capacity, result.end)
        entries = index_capacity(capacity, interval)
        seg._log = MappedFile(seg.log_path, capacity, used=result.end)
        seg.data = seg._log.map
        seg.index = OffsetIndex(seg.index_path, entries, count=kept, writable=True)
        seg.timeindex = TimeIndex(seg.timeindex_path, entries, count=kept, writable=True)
        seg._add_marks(result.marks, 0)
        seg.size, seg.next_offset, seg.max_timestamp = result.end, result.next_offset, result.max_timestamp
        last_pos = seg.index.get(seg.index.count - 1)[1] if seg.index.count else 0
        seg.since_mark = seg.size - last_pos
        seg.active = True
        return seg, dropped, result.stop_reason

    def _recovery_start(self, buf, file_len):
        """Find the last index entry that is consistent with the log and starts a batch.
        Sets ``_kept_entries``; returns ``((rel, pos), pos, max_timestamp_before)``."""
        self._kept_entries = 0
        for path in (self.index_path, self.timeindex_path):
            if not os.path.exists(path):
                open(path, "wb").close()
        index, timeindex = OffsetIndex(self.index_path), TimeIndex(self.timeindex_path)
        try:
            n = min(index.valid_prefix(file_len), timeindex.valid_prefix(file_len))
            for i in range(n - 1, -1, -1):
                rel, pos = index.get(i)
                ts, trel = timeindex.get(i)
                frame = records.frame_at(buf, pos, file_len)
                if (trel == rel and frame is not None and frame[0] == self.base_offset + rel
                        and frame[2] & records.FIRST_IN_BATCH):
                    self._kept_entries = i + 1
                    return (rel, pos), pos, ts
            return (0, 0), 0, -1
        finally:
            index.close()
            timeindex.close()

    @staticmethod
    def _junk_end(buf, result, file_len) -> int:
        """Where the bytes recovery drops end: after the last non-zero byte (preallocated
        space is zero), or just the intact-but-incomplete batch when the tail is clean."""
        if result.stop_reason == "end":
            return result.end
        tail = bytes(buf[result.scanned_end:file_len]).rstrip(b"\0")
        return result.scanned_end + len(tail)

    # -- writing ---------------------------------------------------------------------------

    def fits(self, nbytes: int) -> bool:
        return self.size + nbytes <= self._log.capacity

    def append(self, batch: records.EncodedBatch) -> None:
        """Write an encoded batch at the end. Raises StorageFull before writing anything
        if the disk cannot hold it; the caller checked :meth:`fits`."""
        self.index.reserve(len(batch.marks))
        self.timeindex.reserve(len(batch.marks))
        pos = self.size
        self._log.write(pos, batch.data)
        self._add_marks(batch.marks, pos)
        self.size += len(batch.data)
        self.next_offset += batch.count
        self.since_mark = batch.since_mark
        if batch.max_timestamp > self.max_timestamp:
            self.max_timestamp = batch.max_timestamp

    def _add_marks(self, marks, base_pos: int) -> None:
        for mark in marks:
            rel = mark.offset - self.base_offset
            self.index.append(rel, base_pos + mark.position)
            self.timeindex.append(mark.max_timestamp_before, rel)

    def sync(self) -> None:
        """Make the log durable (the indexes are rebuilt from it after a crash)."""
        if self._log:
            self._log.sync()

    def dup_fd(self) -> int | None:
        """A duplicate descriptor of the active log file (None when sealed)."""
        return self._log.dup_fd() if self._log else None

    def seal(self) -> None:
        """Roll: final time entry, trim, remap read-only."""
        self.timeindex.reserve(1)
        self.timeindex.append(self.max_timestamp, self.next_offset - self.base_offset)
        self._log.trim(self.size)
        self._log = None
        self.data, _ = map_readonly(self.log_path)
        self.index.seal()
        self.timeindex.seal()
        self.active = False

    def close(self) -> None:
        """Release maps and files; an active segment is trimmed to its real length."""
        if self._log:
            self._log.trim(self.size)
            self._log = None
        elif hasattr(self.data, "close"):
            self.data.close()
        self.data = b""
        for idx in (self.index, self.timeindex):
            if idx is not None:
                idx.close()

    def remove_files(self) -> None:
        for path in (self.log_path, self.index_path, self.timeindex_path):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass

    # -- reading ---------------------------------------------------------------------------

    def read(self, offset: int, max_records: int, max_bytes: int, taken: int):
        """Records from ``offset`` (or the first one after it). See :func:`records.decode`."""
        pos = self.index.lookup(offset - self.base_offset)[1]
        return records.decode(self.data, pos, self.size, max_records, max_bytes,
                              min_offset=offset, taken=taken)

    def offset_for_timestamp(self, timestamp: int) -> int | None:
        """First offset whose record has a timestamp ``>= timestamp``, None if none here."""
        if self.max_timestamp < timestamp:
            return None
        rel = self.timeindex.scan_start(timestamp)
        start = self.base_offset + rel
        pos = self.index.lookup(rel)[1]
        for offset, ts, _pos, _size in records.iter_frames(self.data, pos, self.size):
            if offset >= start and ts >= timestamp:
                return offset
        return None
