"""A segment: one ``.log`` file of record batches plus its ``.index`` and ``.timeindex``.

Files are named by the 20-digit base offset (``00000000000000000000.log``). A segment's
format (:mod:`formats`): :mod:`batches` (format 2, what new segments are written in) or
:mod:`records` (format 1, segments written before batches), held as ``codec``; index
formats: :mod:`index`. Index entries point at the start of a batch (format 1: of a frame).

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

from consumer_api.embedded.storage import formats, records
from consumer_api.embedded.storage.index import OffsetIndex, TimeIndex, index_paths
from consumer_api.embedded.storage.mapped_file import MappedFile, map_readonly

log = logging.getLogger(__name__)


def index_capacity(log_capacity: int, interval: int) -> int:
    """Most index entries a log of ``log_capacity`` bytes can need."""
    return log_capacity // max(interval, 1) + 2


class Segment:
    """State: ``base_offset``; ``next_offset`` (after the last record); ``size`` (bytes of
    the ``.log`` in use: its file header, if any, and batches); ``start`` (where the first
    batch starts: the file header's length); ``max_timestamp`` (-1 when empty);
    ``since_mark`` (log bytes after the last index entry); ``active``; ``codec`` (the
    format module)."""

    def __init__(self, directory: str, base_offset: int, interval: int,
                 codec=formats.CURRENT):
        self.directory = directory
        self.codec = codec
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
        self._checked = -1  # where a batch starts that a read checked and stopped in

    # -- opening (existing segments: segment_loader) ---------------------------------------

    @classmethod
    def create(cls, directory: str, base_offset: int, capacity: int, interval: int,
               codec=formats.CURRENT) -> "Segment":
        """A new, empty active segment with room for ``capacity`` bytes of batches (raises
        StorageFull if its blocks cannot be reserved)."""
        seg = cls(directory, base_offset, interval, codec)
        entries = index_capacity(capacity, interval)
        seg._log = MappedFile(seg.log_path, capacity + seg.start, create=True)
        try:
            seg.index = OffsetIndex(seg.index_path, entries, writable=True, create=True)
            seg.timeindex = TimeIndex(seg.timeindex_path, entries, writable=True, create=True)
        except BaseException:
            seg._log.trim(0)
            seg.remove_files()
            raise
        seg.activate(seg._log)
        seg.write_file_header()
        return seg

    @property
    def empty(self) -> bool:
        return self.next_offset == self.base_offset

    @property
    def start(self) -> int:
        """Where the first batch starts: after the format's file header."""
        return len(self.codec.FILE_HEADER)

    @property
    def batch_bytes(self) -> int:
        """Bytes of batches (the file header left out): what the segment stores."""
        return self.size - self.start

    def write_file_header(self) -> None:
        """Write the format's file header at the start of an empty active segment."""
        self._log.write(0, self.codec.FILE_HEADER)
        self.size = self.start

    def reformat(self, codec) -> None:
        """Make an empty active segment one of format ``codec``."""
        self.codec = codec
        self.write_file_header()

    def activate(self, log_file: MappedFile) -> None:
        """Make the segment the active one, appending through ``log_file`` (a writable
        map of its ``.log``)."""
        self._log = log_file
        self.data = log_file.map
        self.active = True

    # -- writing ---------------------------------------------------------------------------

    def fits(self, nbytes: int) -> bool:
        return self.size + nbytes <= self._log.capacity

    def grow(self, capacity: int) -> None:
        """Give an empty active segment room for one batch larger than its capacity (its
        indexes keep their size: a full index only makes lookups scan further)."""
        self._log.grow(capacity + self.start)
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
        self.add_marks(batch.marks, pos)
        self.size += len(batch.data)
        self.next_offset += batch.count
        self.since_mark = batch.since_mark
        if batch.max_timestamp > self.max_timestamp:
            self.max_timestamp = batch.max_timestamp

    def add_marks(self, marks, base_pos: int) -> None:
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

    def entry_points_at_its_frame(self, i: int) -> bool:
        """Whether offset-index entry ``i`` points at a batch header carrying its offset."""
        rel, pos = self.index.get(i)
        frame = self.codec.header_at(self.data, pos, self.size)
        return frame is not None and frame[0] == self.base_offset + rel

    def _position(self, rel: int) -> int:
        """Where to start scanning for relative offset ``rel``: the greatest index entry at
        or before it whose batch really starts at its offset (the first batch when none).
        An entry that does not (an index damaged in a plausible-looking way) is skipped
        with a warning."""
        i = self.index.floor(rel)
        while i > 0:
            if self.entry_points_at_its_frame(i - 1):
                return self.index.get(i - 1)[1]
            log.warning("%s: index entry %d does not match the log; scanning from the one "
                        "before", self.index_path, i - 1)
            i -= 1
        return self.start

    def read(self, offset: int, max_records: int, max_bytes: int, taken: int):
        """Records from ``offset`` (or the first one after it): ``(records, taken,
        stopped)`` where ``stopped`` says a limit ended the read before the segment's end.
        See :func:`batches.decode_from`."""
        pos = self._position(offset - self.base_offset)
        got, taken, stop = self.codec.decode_from(self.data, pos, self.size, max_records,
                                                  max_bytes, min_offset=offset, taken=taken,
                                                  checked=self._checked)
        # a read stopped by a limit stopped in a batch it checked: the next one, which
        # goes on from there, need not check it again (written bytes never change)
        self._checked = stop if stop < self.size else -1
        return got, taken, stop < self.size

    def position_for_timestamp(self, timestamp: int) -> tuple[int, int, int] | None:
        """``(offset, byte position in the log, timestamp)`` of the first record whose
        timestamp is ``>= timestamp``, None if none here. Cost: a binary search of each
        index and a scan of at most one index interval (the whole segment if its time
        index fails a CRC)."""
        if self.max_timestamp < timestamp:
            return None
        rel = self.timeindex.scan_start(timestamp)
        start = self.base_offset + rel
        return self.codec.position_for_timestamp(self.data, self._position(rel), self.size,
                                                 start, timestamp)
