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
        self.rebuilt = False  # True when opening had to rebuild the indexes
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
    def open_sealed(cls, directory: str, base_offset: int, interval: int,
                    next_base: int | None = None) -> "Segment":
        """Map a sealed segment read-only. Its indexes are checked (in C over all entries,
        plus the first and last against the log) and rebuilt from the frame headers if
        damaged. The log itself was synced when sealed; every read checks CRCs, so damage
        there surfaces as CorruptLog on read rather than hiding records. ``next_base`` (the
        following segment's base offset) bounds the segment when its time index is lost."""
        seg = cls(directory, base_offset, interval)
        seg.data, seg.size = map_readonly(seg.log_path)
        seg._open_sealed_indexes()
        seg.rebuilt = not seg._sealed_indexes_ok()
        if seg.rebuilt:
            log.warning("rebuilding the damaged indexes of %s", seg.log_path)
            seg._rebuild_sealed_indexes(next_base)
        seg.next_offset = seg.base_offset + seg.timeindex.get(seg.timeindex.count - 1)[1]
        seg.max_timestamp = seg.timeindex.last_timestamp()
        return seg

    def _open_sealed_indexes(self):
        for attr, kind, path in (("index", OffsetIndex, self.index_path),
                                 ("timeindex", TimeIndex, self.timeindex_path)):
            if not os.path.exists(path):
                open(path, "wb").close()
            setattr(self, attr, kind(path))

    def _entry_points_at_its_frame(self, i: int) -> bool:
        rel, pos = self.index.get(i)
        frame = records.header_at(self.data, pos, self.size)
        return frame is not None and frame[0] == self.base_offset + rel

    def _sealed_indexes_ok(self) -> bool:
        n, tn = self.index.count, self.timeindex.count
        if tn != n + 1 or self.index.valid_prefix(self.size) != n:
            return False
        if self.timeindex.valid_prefix(self.size) != tn:
            return False
        for i in (0, n - 1) if n else ():
            if not self._entry_points_at_its_frame(i) or not self.timeindex.intact(i) or \
                    self.timeindex.get(i)[1] != self.index.get(i)[0]:
                return False
        if not self.timeindex.intact(tn - 1):  # it gives the segment's end and newest record
            return False
        last_rel = self.timeindex.get(tn - 1)[1]
        if n:
            return last_rel > self.index.get(n - 1)[0]
        return last_rel > 0 or self.size == 0

    def _only_zeros_after(self, pos: int) -> bool:
        for start in range(pos, self.size, 1 << 20):
            if bytes(self.data[start:min(start + (1 << 20), self.size)]).strip(b"\0"):
                return False
        return True

    def _trim_sealed_log(self, size: int) -> None:
        if hasattr(self.data, "close"):
            self.data.close()
        os.truncate(self.log_path, size)
        self.data, self.size = map_readonly(self.log_path)

    def _rebuild_sealed_indexes(self, next_base: int | None):
        """Rebuild both index files of a sealed segment from its frame headers."""
        result = records.walk(self.data, self.size, self.base_offset, self.interval)
        next_offset = result.next_offset
        if result.end != self.size and self._only_zeros_after(result.end):
            self._trim_sealed_log(result.end)  # a roll crashed before it trimmed this file
        if result.end != self.size:
            log.error("%s: the frame at byte %d is damaged; the records after it in this "
                      "segment cannot be located and reads there fail with corrupt_log",
                      self.log_path, result.end)
            next_offset = max(next_offset, next_base or next_offset)
        self.index.close()
        self.timeindex.close()
        entries = index_capacity(self.size, self.interval)
        for path in (self.index_path, self.timeindex_path):
            os.unlink(path)
        self.index = OffsetIndex(self.index_path, entries, writable=True, create=True)
        self.timeindex = TimeIndex(self.timeindex_path, entries, writable=True, create=True)
        self._add_marks(result.marks, 0)
        self.timeindex.append(result.max_timestamp, next_offset - self.base_offset)
        self.index.seal()
        self.timeindex.seal()

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
                        and frame[2] & records.FIRST_IN_BATCH and timeindex.intact(i)):
                    self._kept_entries = i + 1
                    return (rel, pos), pos, ts
            return (0, 0), 0, -1
        finally:
            index.close()
            timeindex.close()

    @staticmethod
    def _junk_end(buf, result, file_len) -> int:
        """Where the bytes recovery drops end: after the last non-zero byte (preallocated
        space is zero), or just the intact-but-incomplete batch when the tail is clean.
        Searches backwards a MiB at a time."""
        if result.stop_reason == "end":
            return result.end
        end = file_len
        while end > result.scanned_end:
            start = max(result.scanned_end, end - (1 << 20))
            tail = bytes(buf[start:end]).rstrip(b"\0")
            if tail:
                return start + len(tail)
            end = start
        return result.scanned_end

    # -- writing ---------------------------------------------------------------------------

    def fits(self, nbytes: int) -> bool:
        return self.size + nbytes <= self._log.capacity

    def grow(self, capacity: int) -> None:
        """Give an empty active segment room for one batch larger than its capacity (its
        indexes keep their size: a full index only makes lookups scan further)."""
        self._log.grow(capacity)
        self.data = self._log.map

    def reserve(self, batch: records.EncodedBatch) -> None:
        """Give ``batch`` disk blocks at the end of the log (and its index entries theirs),
        writing nothing; raises StorageFull. The caller checked :meth:`fits`."""
        if batch.marks:
            self.index.reserve(len(batch.marks))
            self.timeindex.reserve(len(batch.marks))
        self._log.reserve(self.size + len(batch.data))

    def append(self, batch: records.EncodedBatch) -> None:
        """Write an encoded batch at the end. Raises StorageFull before writing anything
        if the disk cannot hold it (nothing to reserve after :meth:`reserve`)."""
        self.reserve(batch)
        pos = self.size
        self._log.write(pos, batch.data)
        self._add_marks(batch.marks, pos)
        self.size += len(batch.data)
        self.next_offset += batch.count
        self.since_mark = batch.since_mark
        if batch.max_timestamp > self.max_timestamp:
            self.max_timestamp = batch.max_timestamp

    def _add_marks(self, marks, base_pos: int) -> None:
        if not marks:
            return
        base = self.base_offset
        self.index.extend([(m.offset - base, base_pos + m.position) for m in marks])
        self.timeindex.extend([(m.max_timestamp_before, m.offset - base) for m in marks])

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

    def close(self, sync: bool = True) -> None:
        """Release maps and files; an active segment is trimmed to its real length (and
        synced, unless ``sync`` is False because the files are about to be deleted)."""
        if self._log:
            self._log.trim(self.size, sync)
            self._log = None
        elif hasattr(self.data, "close"):
            self.data.close()
        self.data = b""
        for idx in (self.index, self.timeindex):
            if idx is not None:
                idx.close(sync)

    def remove_files(self) -> None:
        for path in (self.log_path, self.index_path, self.timeindex_path):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass

    # -- reading ---------------------------------------------------------------------------

    def _position(self, rel: int) -> int:
        """Where to start scanning for relative offset ``rel``: the greatest index entry at
        or before it whose frame really carries its offset. An entry that does not (an
        index damaged in a plausible-looking way) is skipped with a warning."""
        i = self.index.floor(rel)
        while i > 0:
            if self._entry_points_at_its_frame(i - 1):
                return self.index.get(i - 1)[1]
            log.warning("%s: index entry %d does not match the log; scanning from the one "
                        "before", self.index_path, i - 1)
            i -= 1
        return 0

    def read(self, offset: int, max_records: int, max_bytes: int, taken: int):
        """Records from ``offset`` (or the first one after it): ``(records, taken,
        stopped)`` where ``stopped`` says a limit ended the read before the segment's end.
        See :func:`records.decode_from`."""
        pos = self._position(offset - self.base_offset)
        got, taken, stop = records.decode_from(self.data, pos, self.size, max_records, max_bytes,
                                          min_offset=offset, taken=taken)
        return got, taken, stop < self.size

    def offset_for_timestamp(self, timestamp: int) -> int | None:
        """First offset whose record has a timestamp ``>= timestamp``, None if none here."""
        if self.max_timestamp < timestamp:
            return None
        rel = self.timeindex.scan_start(timestamp)
        start = self.base_offset + rel
        pos = self._position(rel)
        for offset, ts, _pos, _size in records.iter_frames(self.data, pos, self.size):
            if offset >= start and ts >= timestamp:
                return offset
        return None
