"""Segment format 2: record batches, as Kafka's log format v2 keeps them.

A ``.log`` file of this format starts with :data:`FILE_HEADER` (8 bytes); batches follow
back to back. A produce's share of one partition is one batch: one header and one CRC
over the whole batch, the records inside in columns. Layout (little-endian)::

    at  size  field
    0   4     length       u32  bytes after this field
    4   4     crc          u32  CRC-32 (zlib) of the ``length - 4`` bytes after this field
    8   8     base_offset  i64  offset of the first record; record i has base_offset + i
    16  4     count        u32  records in the batch (>= 1)
    20  8     first_ts     i64  timestamp of the first record (epoch ms)
    28  8     max_ts       i64  largest timestamp in the batch
    36  1     attributes   u8   bit 0: a timestamp-delta column, bit 1: a key-length
                                column, bit 2: a headers-length column
    37  1     widths       u8   the width of each column's entries, 2 bits per column
                                (values, keys, headers, timestamps; 0..3 = 1, 2, 4, 8 bytes)
    38  ...   columns      value lengths, then key lengths, headers lengths and timestamp
                           deltas (from first_ts) when present: ``count`` signed entries
                           each, of the narrowest width that holds them; length -1 = null
    ...       data         every value, then every key, then every record's headers

A column that would say nothing is left out: no key column when every key is null, no
timestamp column when every record has ``first_ts``, no headers column when no record has
headers. Headers are encoded as in format 1 (:func:`records.encode_headers`).

Where Kafka frames each record with varints, the lengths and deltas here are columns of
fixed width per batch: as compact for the usual records, and a column decodes in one C
call, so reading a batch costs a few calls whatever its record count. Offsets are dense,
so a record's offset delta is its place in the batch. (See :mod:`batch_reference` for
the same format written and read a record at a time.)

What a record counts against ``max_bytes`` does not depend on the format:
:data:`RECORD_OVERHEAD` plus its key, value and encoded headers (format 1's frame size).

Pure functions over bytes-like buffers (``mmap`` included); no locks. Callers serialise
writes and keep ``[pos, end)`` stable while they decode it.
"""
from __future__ import annotations

import struct
import zlib
from itertools import accumulate, repeat
from operator import add

from consumer_api.embedded.storage.records import (
    CorruptRecordError, EncodedBatch, IndexMark, ScanResult, decode_headers, encode_headers)
from consumer_api.records import RECORD_OVERHEAD, FrozenHeaders

#: the first bytes of every ``.log`` file of this format (no format-1 file can start so:
#: read as a frame length they say 1.2 GiB, more than a frame may hold)
FILE_HEADER = b"\x89CAL\x02\r\n\x1a"
FORMAT = 2

HEADER = struct.Struct("<IIqIqqBB")
HEADER_SIZE = HEADER.size  # 38
_BODY = struct.Struct("<qIqqBB")
_PREFIX = struct.Struct("<II")
_U32 = struct.Struct("<I")

HAS_TIMESTAMPS = 1
HAS_KEYS = 2
HAS_HEADERS = 4
_ATTRIBUTES = HAS_TIMESTAMPS | HAS_KEYS | HAS_HEADERS

#: largest batch accepted when scanning; anything larger is corruption
MAX_BATCH_BYTES = 1 << 30

_CODES = "bhiq"  # column width code -> struct format character (signed)
_WIDTHS = (1, 2, 4, 8)
_LIMITS = tuple(1 << (8 * w - 1) for w in _WIDTHS)


# -- writing -----------------------------------------------------------------------------------

def _width_code(low: int, high: int) -> int:
    """The narrowest column width code holding every entry in ``[low, high]``."""
    for code, limit in enumerate(_LIMITS):
        if -limit <= low and high < limit:
            return code
    raise ValueError("a column entry exceeds 64 bits")


def _lengths(items: tuple) -> tuple[list, bytes]:
    """``(lengths, data)`` of a column of bytes-or-None (-1 for None)."""
    if None not in items:
        return list(map(len, items)), b"".join(items)
    return [-1 if x is None else len(x) for x in items], b"".join(x for x in items if x)


def encode_batch(records, base_offset: int, now_ms: int, mark_interval: int,
                 since_mark: int, max_ts: int) -> EncodedBatch:
    """Encode ``records`` (a non-empty sequence of :class:`NewRecord`-shaped tuples) as one
    batch. Offsets are ``base_offset, base_offset + 1, ...``; a record without a timestamp
    gets ``now_ms``. The batch gets an index mark (at its start) once ``mark_interval``
    bytes have been written since the previous mark (``since_mark`` carries that count in
    and out); ``max_ts`` is the largest timestamp already in the segment (-1 if none)."""
    keys, values, headers, stamps = zip(*records)
    n = len(values)
    lens, data = _lengths(values)
    columns, parts, attributes = [(0, lens)], [data], 0
    if keys.count(None) != n:
        attributes |= HAS_KEYS
        klens, kdata = _lengths(keys)
        columns.append((1, klens))
        parts.append(kdata)
    if any(headers):
        attributes |= HAS_HEADERS
        encoded = [encode_headers(h) for h in headers]
        columns.append((2, list(map(len, encoded))))
        parts.append(b"".join(encoded))
    first, batch_max, deltas = _timestamps(stamps, now_ms)
    if deltas is not None:
        attributes |= HAS_TIMESTAMPS
        columns.append((3, deltas))
    widths, packed = 0, []
    for slot, column in columns:
        code = _width_code(min(column), max(column))
        widths |= code << (2 * slot)
        packed.append(struct.pack(f"<{n}{_CODES[code]}", *column))
    pieces = [_BODY.pack(base_offset, n, first, batch_max, attributes, widths), *packed, *parts]
    crc = 0
    for piece in pieces:  # the CRC piece by piece: the batch is copied once, by the join
        crc = zlib.crc32(piece, crc)
    data = b"".join((_PREFIX.pack(sum(map(len, pieces)) + 4, crc), *pieces))
    marks = []
    if since_mark >= mark_interval:
        marks.append(IndexMark(base_offset, 0, max_ts))
        since_mark = 0
    return EncodedBatch(data, n, max(max_ts, batch_max), marks, since_mark + len(data))


def _timestamps(stamps: tuple, now_ms: int) -> tuple:
    """``(first_ts, max_ts, deltas)`` of a batch's timestamps (None stamped ``now_ms``);
    ``deltas`` None when every record has the first one's."""
    n = len(stamps)
    if stamps.count(None) == n:
        return now_ms, now_ms, None
    if None in stamps:
        stamps = [now_ms if t is None else t for t in stamps]
    first = stamps[0]
    if stamps.count(first) == n:
        return first, first, None
    return first, max(stamps), [t - first for t in stamps]


# -- the header --------------------------------------------------------------------------------

def header_at(buf, pos: int, limit: int):
    """``(base_offset, first_ts, count, size, max_ts)`` from the header of the batch at ``pos``
    without checking its CRC, or None when the header cannot be a batch's (short, zero,
    inconsistent, or reaching past ``limit``)."""
    if pos < 0 or pos + HEADER_SIZE > limit:
        return None
    length, _crc, base, count, first, last, attributes, widths = HEADER.unpack_from(buf, pos)
    size = length + 4
    if (size < HEADER_SIZE or size > MAX_BATCH_BYTES or pos + size > limit or count < 1
            or attributes & ~_ATTRIBUTES or last < first or base < 0):
        return None
    if HEADER_SIZE + count * _columns_width(attributes, widths) > size:
        return None
    return base, first, count, size, last


def _columns_width(attributes: int, widths: int) -> int:
    """Bytes per record of the columns present."""
    total = _WIDTHS[widths & 3]
    for slot, bit in ((1, HAS_KEYS), (2, HAS_HEADERS), (3, HAS_TIMESTAMPS)):
        if attributes & bit:
            total += _WIDTHS[(widths >> 2 * slot) & 3]
    return total


def crc_ok(buf, pos: int, size: int) -> bool:
    """Whether the batch of ``size`` bytes at ``pos`` has the CRC it was written with."""
    return zlib.crc32(buf[pos + 8:pos + size]) == _U32.unpack_from(buf, pos + 4)[0]


def batch_at(buf, pos: int, limit: int) -> int | None:
    """The base offset of the whole, CRC-valid batch at ``pos``, or None."""
    found = header_at(buf, pos, limit)
    if found is None or not crc_ok(buf, pos, found[3]):
        return None
    return found[0]


# -- reading -----------------------------------------------------------------------------------

class _Lengths:
    """A length column: ``raw`` entries (-1 for null), ``lens`` (nulls as 0), ``total``
    bytes of data, which starts at ``at``."""

    __slots__ = ("raw", "lens", "nulls", "total", "at")

    def __init__(self, raw: tuple, at: int):
        self.raw = raw
        self.nulls = min(raw) < 0
        self.lens = [x if x > 0 else 0 for x in raw] if self.nulls else raw
        self.total = sum(self.lens)
        self.at = at

    def items(self, buf, start: int, stop: int) -> list:
        """Items ``start`` to ``stop - 1``: bytes, or None for a null."""
        ends = list(accumulate(self.lens[:stop], initial=self.at))
        items = [buf[i:j] for i, j in zip(ends[start:stop], ends[start + 1:])]
        if self.nulls:
            items = [None if n < 0 else x for n, x in zip(self.raw[start:stop], items)]
        return items


class _Columns:
    """One batch's columns, unpacked; records are sliced out by :meth:`records`.
    CorruptRecordError when the lengths do not add up to the batch's size."""

    __slots__ = ("base", "count", "first_ts", "values", "keys", "headers", "deltas", "buf",
                 "data_at_start")

    def __init__(self, buf, pos: int, size: int):
        (_length, _crc, self.base, n, self.first_ts, _max, attributes,
         widths) = HEADER.unpack_from(buf, pos)
        self.count = n
        self.buf = buf
        at = pos + HEADER_SIZE
        cols = []
        for slot, bit in ((0, 0), (1, HAS_KEYS), (2, HAS_HEADERS), (3, HAS_TIMESTAMPS)):
            if bit and not attributes & bit:
                cols.append(None)
                continue
            code = (widths >> 2 * slot) & 3
            cols.append(struct.unpack_from(f"<{n}{_CODES[code]}", buf, at))
            at += n * _WIDTHS[code]
        self.deltas = cols[3]
        self.data_at_start = at - pos  # the columns end, the bytes start
        self.values = self.keys = self.headers = None
        for name, raw in zip(("values", "keys", "headers"), cols):
            if raw is not None:
                column = _Lengths(raw, at)
                setattr(self, name, column)
                at += column.total
        if at != pos + size:
            raise CorruptRecordError(f"a damaged batch at byte {pos} (lengths do not add up)")

    def share_start(self, i: int) -> int:
        """Where record ``i``'s share of the batch starts, from the batch's start (see
        :func:`position_for_timestamp`)."""
        if not i:
            return 0
        entries = (self.data_at_start - HEADER_SIZE) // self.count
        return HEADER_SIZE + i * entries + sum(sum(c.lens[:i]) for c in self._data_columns())

    def _data_columns(self):
        return [c for c in (self.values, self.keys, self.headers) if c is not None]

    def sizes(self, start: int, stop: int) -> list:
        """What records ``start`` to ``stop - 1`` count against ``max_bytes``, each."""
        sizes = repeat(RECORD_OVERHEAD, stop - start)
        for column in self._data_columns():
            sizes = map(add, sizes, column.lens[start:stop])
        return list(sizes)

    def total_size(self, start: int, stop: int) -> int:
        if start == 0 and stop == self.count:
            return RECORD_OVERHEAD * self.count + sum(c.total for c in self._data_columns())
        return sum(self.sizes(start, stop))

    def records(self, start: int, stop: int) -> list:
        """Records ``start`` to ``stop - 1`` as ``(offset, timestamp, key, value,
        headers)`` tuples."""
        k = stop - start
        buf = self.buf
        values = self.values.items(buf, start, stop)
        keys = repeat(None, k) if self.keys is None else self.keys.items(buf, start, stop)
        headers = repeat(None, k)
        if self.headers is not None:
            headers = [FrozenHeaders(decode_headers(h)) if h else None
                       for h in self.headers.items(buf, start, stop)]
        if self.deltas is None:
            stamps = repeat(self.first_ts, k)
        else:
            stamps = map(add, self.deltas[start:stop], repeat(self.first_ts, k))
        base = self.base
        return list(zip(range(base + start, base + stop), stamps, keys, values, headers))


def decode_from(buf, pos: int, end: int, max_records: int, max_bytes: int,
                min_offset: int = 0, taken: int = 0, verify: bool = True, checked: int = -1):
    """Decode the records of the batches in ``buf[pos:end]`` (which must hold whole batches,
    ``pos`` at the start of one).

    Records come back as ``(offset, timestamp, key, value, headers)`` tuples (``headers``
    None for a record without). Records with ``offset < min_offset`` are skipped (whole
    batches by their header alone). Stops after ``max_records`` records, or before the
    record that would take what was returned past ``max_bytes`` (counted as
    :data:`RECORD_OVERHEAD` + key + value + headers per record) -- unless nothing was
    taken yet (``taken`` counts what the caller already holds), so a consumer always gets
    at least one record. Returns ``(records, taken, stop_position)``; ``stop_position <
    end`` means a limit stopped the read, in the batch that starts there. With ``verify``
    each batch read from is checked against its CRC once (:class:`CorruptRecordError` if
    wrong) -- but the one starting at ``checked``, which the caller checked already (the
    stop position of its previous read: a batch's bytes never change once written).
    """
    out: list = []
    left = max_records
    while pos < end and left > 0:
        found = header_at(buf, pos, end)
        if found is None:
            raise CorruptRecordError(f"a damaged batch at byte {pos}")
        base, _first, count, size, _max = found
        if base + count <= min_offset:
            pos += size
            continue
        if verify and pos != checked and not crc_ok(buf, pos, size):
            raise CorruptRecordError(f"CRC mismatch in the batch at offset {base}")
        batch = _Columns(buf, pos, size)
        start = max(min_offset - base, 0)
        stop = min(count, start + left)
        total = batch.total_size(start, stop)
        if taken + total > max_bytes:
            sizes = batch.sizes(start, stop)
            fit = _fitting(sizes, max_bytes - taken) or (0 if taken else 1)
            if not fit:
                return out, taken, pos
            stop = start + fit
            total = sum(sizes[:fit])
        out += batch.records(start, stop)
        taken += total
        left -= stop - start
        if stop < count:
            return out, taken, pos
        pos += size
    return out, taken, pos


def _fitting(sizes: list, room: int) -> int:
    """How many of ``sizes`` fit, in order, in ``room``."""
    for i, total in enumerate(accumulate(sizes)):
        if total > room:
            return i
    return len(sizes)


def position_for_timestamp(buf, pos: int, end: int, start_offset: int, timestamp: int):
    """``(offset, position, timestamp)`` of the first record at an offset ``>=
    start_offset`` whose timestamp is ``>= timestamp`` among the batches from ``pos`` (a
    batch start) to ``end``, or None. Batches whose largest timestamp is older are skipped
    by their header. A record's position is where its share of its batch starts: the
    first record's share is the header, its column entries and its bytes, each other
    record's its column entries and bytes -- so the difference of two positions is the
    bytes the records between them take, and a batch's shares add up to its size."""
    while pos < end:
        found = header_at(buf, pos, end)
        if found is None:
            raise CorruptRecordError(f"a damaged batch at byte {pos}")
        base, first, count, size, batch_max = found
        if base + count > start_offset and batch_max >= timestamp:
            batch = _Columns(buf, pos, size)
            deltas = batch.deltas or repeat(0, count)
            for i, delta in enumerate(deltas):
                if base + i >= start_offset and first + delta >= timestamp:
                    return base + i, pos + batch.share_start(i), first + delta
        pos += size
    return None


# -- recovery ----------------------------------------------------------------------------------

def scan(buf, pos: int, limit: int, expected_offset: int, mark_interval: int,
         since_mark: int = 0, max_timestamp: int = -1, whole_batches: bool = True,
         verify: bool = True) -> ScanResult:
    """Walk batches from ``pos`` (a batch start) up to ``limit``, keeping them while they
    are well formed, pass their CRC (unless ``verify`` is False: how a sealed segment's
    indexes are rebuilt, its CRCs being checked when it is read) and carry consecutive
    offsets from ``expected_offset``. A torn or damaged batch is dropped whole with all
    after it. ``marks`` lists index marks (absolute positions) with the cadence of
    :func:`encode_batch`. ``whole_batches`` is accepted for the signature of format 1 (a
    batch here is always whole). Cost: proportional to the bytes scanned."""
    marks = []
    reason = "end"
    while True:
        if pos + 4 > limit:
            if bytes(buf[pos:limit]).strip(b"\0"):
                reason = "torn"  # a few bytes of a batch's length field
            break
        if _U32.unpack_from(buf, pos)[0] == 0:
            break
        found = header_at(buf, pos, limit)
        if found is None or (verify and not crc_ok(buf, pos, found[3])):
            reason = "torn"
            break
        base, _first, count, size, batch_max = found
        if base != expected_offset:
            reason = "offset"
            break
        if since_mark >= mark_interval:
            marks.append(IndexMark(base, pos, max_timestamp))
            since_mark = 0
        max_timestamp = max(max_timestamp, batch_max)
        pos += size
        since_mark += size
        expected_offset += count
    return ScanResult(pos, expected_offset, max_timestamp, marks, pos, reason)
