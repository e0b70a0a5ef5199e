"""Opening the segments of a partition at start-up: sealed ones checked, the last recovered.

Kept apart from :mod:`segment` as Kafka keeps its ``LogLoader`` apart from ``LogSegment``:
a segment knows how to append, seal and read; this module knows how to find out what a
segment on disk holds after a clean or unclean stop.

* :func:`open_sealed` maps a sealed segment read-only, tells its format from its first
  bytes (:mod:`formats`) and checks its indexes (in C over all entries, plus the first
  and last against the log), rebuilding them from the batch headers if they are damaged. The log itself was synced when sealed; every read checks
  CRCs, so damage there surfaces as CorruptLog on read rather than hiding records.
* :func:`recover` opens the last segment for appending: it scans batches from the last
  index entry that starts one (so the cost does not grow with the log), truncates after
  the last whole, CRC-valid batch, wipes everything past it and rebuilds the index tail.
  A file with nothing in it yet gets the format the log writes.

Not thread-safe: the partition log calls these while it opens, before anyone else sees it.
"""
from __future__ import annotations

import logging
import os

from consumer_api.embedded.storage import formats, records
from consumer_api.embedded.storage.index import OffsetIndex, TimeIndex, index_paths
from consumer_api.embedded.storage.mapped_file import MappedFile, map_readonly
from consumer_api.embedded.storage.segment import Segment, index_capacity

log = logging.getLogger(__name__)

#: bytes examined at a time when looking at a segment's tail
CHUNK = 1 << 20


# -- sealed segments ---------------------------------------------------------------------------

def open_sealed(directory: str, base_offset: int, interval: int,
                next_base: int | None = None) -> Segment:
    """A sealed segment, mapped read-only, its indexes checked (``rebuilt`` says whether
    they had to be rebuilt). ``next_base`` (the following segment's base offset) bounds
    the segment when its time index is lost."""
    data, size = map_readonly(index_paths(directory, base_offset)[0])
    codec = formats.of_file_start(bytes(data[:formats.PROBE_BYTES]), blank=records)
    seg = Segment(directory, base_offset, interval, codec)
    seg.data, seg.size = data, size
    seg.index, seg.timeindex = _open_indexes(seg)
    seg.rebuilt = not _sealed_indexes_ok(seg)
    if seg.rebuilt:
        log.warning("rebuilding the damaged indexes of %s", seg.log_path)
        _rebuild_sealed_indexes(seg, next_base)
    seg.next_offset = seg.base_offset + seg.timeindex.get(seg.timeindex.count - 1)[1]
    seg.max_timestamp = seg.timeindex.last_timestamp()
    return seg


def _open_indexes(seg: Segment) -> tuple[OffsetIndex, TimeIndex]:
    """The segment's two index files, read-only (created empty when missing)."""
    for path in (seg.index_path, seg.timeindex_path):
        if not os.path.exists(path):
            open(path, "wb").close()
    return OffsetIndex(seg.index_path), TimeIndex(seg.timeindex_path)


def _sealed_indexes_ok(seg: Segment) -> bool:
    index, timeindex = seg.index, seg.timeindex
    n, tn = index.count, timeindex.count
    if tn != n + 1 or index.valid_prefix(seg.size) != n:
        return False
    if timeindex.valid_prefix(seg.size) != tn:
        return False
    for i in (0, n - 1) if n else ():
        if not seg.entry_points_at_its_frame(i) or not timeindex.intact(i) or \
                timeindex.get(i)[1] != index.get(i)[0]:
            return False
    if not timeindex.intact(tn - 1):  # it gives the segment's end and newest record
        return False
    last_rel = timeindex.get(tn - 1)[1]
    if n:
        return last_rel > index.get(n - 1)[0]
    return last_rel > 0 or seg.size <= seg.start


def _only_zeros_after(seg: Segment, pos: int) -> bool:
    for start in range(pos, seg.size, CHUNK):
        if bytes(seg.data[start:min(start + CHUNK, seg.size)]).strip(b"\0"):
            return False
    return True


def _trim_sealed_log(seg: Segment, size: int) -> None:
    if hasattr(seg.data, "close"):
        seg.data.close()
    os.truncate(seg.log_path, size)
    seg.data, seg.size = map_readonly(seg.log_path)


def _rebuild_sealed_indexes(seg: Segment, next_base: int | None) -> None:
    """Rebuild both index files of a sealed segment from its batch headers."""
    result = seg.codec.scan(seg.data, seg.start, seg.size, seg.base_offset, seg.interval,
                            whole_batches=False, verify=False)
    next_offset = result.next_offset
    if result.end != seg.size and _only_zeros_after(seg, result.end):
        _trim_sealed_log(seg, result.end)  # a roll crashed before it trimmed this file
    if result.end != seg.size:
        log.error("%s: the batch at byte %d is damaged; the records after it in this "
                  "segment cannot be located and reads there fail with corrupt_log",
                  seg.log_path, result.end)
        next_offset = max(next_offset, next_base or next_offset)
    seg.index.close()
    seg.timeindex.close()
    entries = index_capacity(seg.size, seg.interval)
    for path in (seg.index_path, seg.timeindex_path):
        os.unlink(path)
    seg.index = OffsetIndex(seg.index_path, entries, writable=True, create=True)
    seg.timeindex = TimeIndex(seg.timeindex_path, entries, writable=True, create=True)
    seg.add_marks(result.marks, 0)
    seg.timeindex.append(result.max_timestamp, next_offset - seg.base_offset)
    seg.index.seal()
    seg.timeindex.seal()


# -- the active segment ------------------------------------------------------------------------

def recover(directory: str, base_offset: int, capacity: int, interval: int,
            blank_format=formats.CURRENT):
    """Open the last segment of a partition for appending after a clean or unclean stop,
    with room for ``capacity`` bytes of batches; a file that holds nothing yet becomes one
    of ``blank_format``. Returns ``(segment, dropped_bytes, reason)`` (``reason``: why the
    scan stopped, see :func:`batches.scan`)."""
    buf, file_len = map_readonly(index_paths(directory, base_offset)[0])
    try:
        head = bytes(buf[:formats.PROBE_BYTES])
        codec = formats.of_file_start(head, blank=blank_format)
        seg = Segment(directory, base_offset, interval, codec)
        kept, start_rel, start_pos, start_ts = _recovery_start(seg, buf, file_len)
        result = codec.scan(buf, start_pos, file_len, base_offset + start_rel, interval, 0,
                            start_ts)
        dropped = _junk_end(buf, result, file_len) - result.end
    finally:
        if hasattr(buf, "close"):
            buf.close()
    capacity = max(capacity + seg.start, result.end)
    entries = index_capacity(capacity, interval)
    seg.activate(MappedFile(seg.log_path, capacity, used=result.end))
    if head[:seg.start] != codec.FILE_HEADER:
        seg.write_file_header()  # a blank file
    seg.index = OffsetIndex(seg.index_path, entries, count=kept, writable=True)
    seg.timeindex = TimeIndex(seg.timeindex_path, entries, count=kept, writable=True)
    seg.add_marks(result.marks, 0)
    seg.size, seg.next_offset, seg.max_timestamp = (result.end, result.next_offset,
                                                    result.max_timestamp)
    last_pos = seg.index.get(seg.index.count - 1)[1] if seg.index.count else seg.start
    seg.since_mark = seg.size - last_pos
    return seg, dropped, result.stop_reason


def _recovery_start(seg: Segment, buf, file_len: int) -> tuple[int, int, int, int]:
    """The last index entry that is consistent with the log and starts a batch:
    ``(entries kept, its relative offset, its position, max timestamp before it)``;
    ``(0, 0, start, -1)`` when there is none (scan from the first batch)."""
    index, timeindex = _open_indexes(seg)
    try:
        n = min(index.valid_prefix(file_len), timeindex.valid_prefix(file_len))
        for i in range(n - 1, -1, -1):
            rel, pos = index.get(i)
            ts, trel = timeindex.get(i)
            if (trel == rel and seg.codec.batch_at(buf, pos, file_len) == seg.base_offset + rel
                    and timeindex.intact(i)):
                return i + 1, rel, pos, ts
        return 0, 0, seg.start, -1
    finally:
        index.close()
        timeindex.close()


def _junk_end(buf, result: records.ScanResult, file_len: int) -> int:
    """Where the bytes recovery drops end: after the last non-zero byte (preallocated
    space is zero), or just the intact-but-incomplete batch when the tail is clean.
    Searches backwards a MiB at a time."""
    if result.stop_reason == "end":
        return result.end
    end = file_len
    while end > result.scanned_end:
        start = max(result.scanned_end, end - CHUNK)
        tail = bytes(buf[start:end]).rstrip(b"\0")
        if tail:
            return start + len(tail)
        end = start
    return result.scanned_end
