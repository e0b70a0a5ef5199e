"""The two sparse indexes of a segment, memory-mapped.

``.index`` (offset index), 8-byte entries ``relative_offset u32 | position u32``: the record
at ``base_offset + relative_offset`` starts at byte ``position`` of the ``.log``. Entries
strictly increase in both fields. The first record (relative offset 0, position 0) is
implicit and never stored, so an all-zero entry marks the end of a preallocated file.

``.timeindex`` (time index), 16-byte entries ``max_timestamp i64 | relative_offset u32 |
crc32 u32`` (zlib CRC-32 of the first 12 bytes): every record of the segment *before*
``base_offset + relative_offset`` has a timestamp ``<= max_timestamp``. Timestamps never
decrease along the file. An offset-index entry can be checked against the log (the frame at
its position carries its offset); a time-index claim cannot without reading every earlier
record, hence the CRC: lookups use only entries that pass it. Entry ``i`` of both files is
written together (same relative offset); a sealed segment's time index has one extra last
entry whose offset is the segment's end and whose timestamp is the segment's largest.

Entries are appended every ``index_interval_bytes`` of log. Lookups are binary searches
over the map (no copy of the index into the heap). Not thread-safe: the owning segment's
partition lock serialises access.
"""
from __future__ import annotations

import logging
import operator
import os
import struct
import zlib

from consumer_api.embedded.storage.mapped_file import MappedFile, map_readonly

log = logging.getLogger(__name__)


class _Entries:
    """Fixed-size entries in a mapped file; ``count`` valid entries from the start."""

    ENTRY: struct.Struct

    def __init__(self, path: str, max_entries: int = 0, count: int = 0, writable: bool = False,
                 create: bool = False):
        self.path = path
        self.writable = writable
        size = self.ENTRY.size
        if writable:
            self._file = MappedFile(path, max(max_entries, count) * size, count * size, create)
            self.map = self._file.map
            self.count = count
        else:
            self._file = None
            self.map, length = map_readonly(path)
            self.count = min(count, length // size) if count else length // size

    @property
    def capacity(self) -> int:
        return self._file.capacity // self.ENTRY.size if self._file else self.count

    def get(self, i: int) -> tuple:
        return self.ENTRY.unpack_from(self.map, i * self.ENTRY.size)

    def reserve(self, more: int) -> None:
        """Reserve disk blocks for ``more`` entries (raises StorageFull)."""
        if self._file:
            self._file.reserve(min(self.count + more, self.capacity) * self.ENTRY.size)

    def append(self, *fields) -> None:
        self.extend((fields,))

    def extend(self, rows) -> None:
        """Append entries (tuples of fields) in one write; entries past the capacity are
        dropped (a full index only makes lookups scan a little longer)."""
        rows = list(rows)[:max(0, self.capacity - self.count)]
        if rows:
            self._file.write(self.count * self.ENTRY.size, self._pack(rows))
            self.count += len(rows)

    def _pack(self, rows: list) -> bytes:
        pack = self.ENTRY.pack
        return b"".join([pack(*r) for r in rows])

    def truncate(self, count: int) -> None:
        """Forget entries from ``count`` on (zeroing them in a writable file)."""
        if count < self.count and self._file:
            size = self.ENTRY.size
            self.map[count * size:self.count * size] = bytes((self.count - count) * size)
        self.count = min(count, self.count)

    def _bisect(self, field: int, key, intact=None) -> int | None:
        """Number of entries whose ``field`` is ``< key`` (entries sorted on it); None if
        ``intact(i)`` is given and rejects an entry the search reads."""
        lo, hi = 0, self.count
        unpack, size = self.ENTRY.unpack_from, self.ENTRY.size
        while lo < hi:
            mid = (lo + hi) // 2
            if intact is not None and not intact(mid):
                return None
            if unpack(self.map, mid * size)[field] < key:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def seal(self) -> None:
        """Trim a writable file to its entries and reopen it read-only."""
        if self._file:
            self._file.trim(self.count * self.ENTRY.size)
            self._file = None
            self.map, _ = map_readonly(self.path)

    def close(self, sync: bool = True) -> None:
        if self._file:
            self._file.trim(self.count * self.ENTRY.size, sync)
            self._file = None
        elif hasattr(self.map, "close"):
            self.map.close()
        self.map = b""

    def columns(self) -> tuple:
        """The valid entries as columns (one tuple per field), unpacked in one C call."""
        if not self.count:
            return tuple(() for _ in self.ENTRY.format[1:])
        fmt = "<" + self.ENTRY.format[1:] * self.count
        flat = struct.unpack(fmt, self.map[:self.count * self.ENTRY.size])
        width = len(self.ENTRY.format) - 1
        return tuple(flat[i::width] for i in range(width))

    def valid_prefix(self, log_size: int) -> int:
        """Length of the longest prefix of well-formed entries (see ``_follows``). The
        common case (all valid) is checked column-wise in C; a damaged index is walked
        entry by entry to find where the damage starts."""
        if not self.count or self._all_follow(self.columns(), log_size):
            return self.count
        prev = None
        data = self.map[:self.count * self.ENTRY.size]
        for i, entry in enumerate(self.ENTRY.iter_unpack(data)):
            if not self._follows(prev, entry, log_size):
                return i
            prev = entry
        return self.count


class OffsetIndex(_Entries):
    ENTRY = struct.Struct("<II")

    @staticmethod
    def _follows(prev, entry, log_size) -> bool:
        """Offsets and positions strictly increase from above zero, inside the log."""
        prev = prev or (0, 0)
        return prev[0] < entry[0] and prev[1] < entry[1] < log_size

    @staticmethod
    def _all_follow(columns, log_size) -> bool:
        rels, positions = columns
        return (rels[0] > 0 and positions[0] > 0 and positions[-1] < log_size
                and all(map(operator.lt, rels, rels[1:]))
                and all(map(operator.lt, positions, positions[1:])))

    def floor(self, relative_offset: int) -> int:
        """How many entries are at or before ``relative_offset`` (entry ``floor - 1`` is
        the greatest of them)."""
        return self._bisect(0, relative_offset + 1)


class TimeIndex(_Entries):
    """Entries ``(max_timestamp, relative_offset, crc)``; rows to append are
    ``(max_timestamp, relative_offset)`` (the CRC is added here)."""

    ENTRY = struct.Struct("<qII")
    _FIELDS = struct.Struct("<qI")

    def _pack(self, rows: list) -> bytes:
        pack, crc32 = self._FIELDS.pack, zlib.crc32
        out = []
        for row in rows:
            fields = pack(*row)
            out.append(fields + crc32(fields).to_bytes(4, "little"))
        return b"".join(out)

    def get(self, i: int) -> tuple[int, int]:
        """``(max_timestamp, relative_offset)`` of entry ``i`` (its CRC: :meth:`intact`)."""
        return self._FIELDS.unpack_from(self.map, i * self.ENTRY.size)

    def intact(self, i: int) -> bool:
        """Whether entry ``i`` still has the CRC it was written with."""
        size = self.ENTRY.size
        raw = self.map[i * size:(i + 1) * size]
        return len(raw) == size and \
            zlib.crc32(raw[:12]) == int.from_bytes(raw[12:], "little")

    @staticmethod
    def _follows(prev, entry, log_size) -> bool:
        """Timestamps never decrease; offsets strictly increase from above zero."""
        prev = prev or (-1, 0)
        return prev[0] <= entry[0] and prev[1] < entry[1]

    @staticmethod
    def _all_follow(columns, log_size) -> bool:
        stamps, rels, _crcs = columns
        return (stamps[0] >= -1 and rels[0] > 0
                and all(map(operator.le, stamps, stamps[1:]))
                and all(map(operator.lt, rels, rels[1:])))

    def scan_start(self, timestamp: int) -> int:
        """Relative offset from which to scan for the first record with a timestamp
        ``>= timestamp``: after the last entry whose records are all older. Every entry the
        binary search reads must pass its CRC; if one does not, 0 (scan the whole segment:
        slower, never wrong)."""
        i = self._bisect(0, timestamp, self.intact)
        if i is None:
            log.warning("%s: a time index entry fails its CRC; scanning the segment from its "
                        "start", self.path)
            return 0
        return self.get(i - 1)[1] if i else 0

    def last_timestamp(self) -> int:
        return self.get(self.count - 1)[0] if self.count else -1


def index_paths(directory: str, base_offset: int) -> tuple[str, str, str]:
    """``(log, index, timeindex)`` paths of the segment starting at ``base_offset``."""
    stem = os.path.join(directory, f"{base_offset:020d}")
    return stem + ".log", stem + ".index", stem + ".timeindex"
