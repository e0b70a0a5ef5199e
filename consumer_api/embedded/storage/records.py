"""Segment format 1: one frame per record, as every ``.log`` file was written before record
batches (:mod:`batches`, format 2). Segments of this format are still read, recovered and
(when a log is opened with it, as tests and benchmarks do) appended to; new segments are
written in format 2.

Frame layout (little-endian), one frame per record, frames back to back::

    at  size  field
    0   4     length       u32  bytes after this field (= 33 + key + value + headers)
    4   4     crc          u32  CRC-32 (zlib) of the ``length - 4`` bytes after this field
    8   8     offset       i64  absolute offset of the record
    16  8     timestamp    i64  epoch milliseconds
    24  1     attributes   u8   bit 0: first record of its append batch,
                                bit 1: last record of its append batch
    25  4     key_len      i32  -1 = null key
    29  4     value_len    i32  -1 = null value
    33  4     headers_len  i32  bytes of the encoded headers (0 = no headers)
    37  ...   key bytes, value bytes, encoded headers

Headers are encoded as repeated ``u16 name_len | name (UTF-8) | u32 value_len | value (UTF-8)``.

A frame whose length field is zero marks the end of the written part of a preallocated
segment. The batch bits make an append batch atomic across a crash: recovery keeps a
batch only if its last frame is intact (see :func:`scan`).

Everything here is pure functions over ``bytes``-like buffers (``mmap`` included); none of
it takes locks. Callers serialise writes and guarantee that ``[pos, end)`` is stable while
they decode it.
"""
from __future__ import annotations

import struct
import zlib
from typing import NamedTuple

from consumer_api.records import FrozenHeaders

HEADER = struct.Struct("<IIqqBiii")
HEADER_SIZE = HEADER.size  # 37
_BODY = struct.Struct("<qqBiii")
_PREFIX = struct.Struct("<II")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")

FIRST_IN_BATCH = 1
LAST_IN_BATCH = 2

#: largest frame we accept when scanning; anything larger is corruption
MAX_FRAME_BYTES = 1 << 30


class IndexMark(NamedTuple):
    """A place where the log wants an index entry: the record at ``offset`` starts at
    ``position`` (relative to the start of the encoded batch); every record before it in
    the segment has a timestamp <= ``max_timestamp_before``."""

    offset: int
    position: int
    max_timestamp_before: int


class EncodedBatch(NamedTuple):
    data: bytes
    count: int
    max_timestamp: int
    marks: list
    since_mark: int  # bytes written after the last mark (carried to the next batch)


class ScanResult(NamedTuple):
    """Outcome of scanning frames from a start position (see :func:`scan`)."""

    end: int  # position after the last frame of the last complete batch
    next_offset: int  # offset after that frame
    max_timestamp: int  # largest timestamp among kept frames (-1 if none)
    marks: list  # IndexMark for kept frames, positions absolute
    scanned_end: int  # position after the last intact frame seen (>= end)
    stop_reason: str  # "end" (clean), "torn" (bad frame/CRC), "offset", "batch" (torn batch)


#: format-1 files have no file header: the first frame starts at byte 0
FILE_HEADER = b""
FORMAT = 1


class CorruptRecordError(Exception):
    """A frame failed its CRC or framing check where the log expected a valid one."""


def encode_headers(headers: dict | None) -> bytes:
    if not headers:
        return b""
    parts = []
    for name, value in headers.items():
        n = name.encode("utf-8")
        v = value.encode("utf-8")
        parts.append(_U16.pack(len(n)))
        parts.append(n)
        parts.append(_U32.pack(len(v)))
        parts.append(v)
    return b"".join(parts)


def decode_headers(buf) -> dict:
    out = {}
    pos, end = 0, len(buf)
    while pos < end:
        (nl,) = _U16.unpack_from(buf, pos)
        pos += 2
        name = bytes(buf[pos:pos + nl]).decode("utf-8")
        pos += nl
        (vl,) = _U32.unpack_from(buf, pos)
        pos += 4
        out[name] = bytes(buf[pos:pos + vl]).decode("utf-8")
        pos += vl
    return out


def _frame(offset: int, ts: int, attrs: int, key, value, hbytes: bytes) -> bytes:
    body = _BODY.pack(offset, ts, attrs, -1 if key is None else len(key),
                      -1 if value is None else len(value), len(hbytes))
    body = b"".join((body, key or b"", value or b"", hbytes))
    return _PREFIX.pack(len(body) + 4, zlib.crc32(body)) + body


def encode_batch(records, base_offset: int, now_ms: int, mark_interval: int,
                 since_mark: int, max_ts: int) -> EncodedBatch:
    """Frame ``records`` (a sequence of :class:`NewRecord`-shaped tuples) as one batch.

    Offsets are ``base_offset, base_offset + 1, ...``; a record without a timestamp gets
    ``now_ms``. An index mark is emitted before a record once ``mark_interval`` bytes have
    been written since the previous mark (``since_mark`` carries that count in and out);
    ``max_ts`` is the largest timestamp already in the segment (-1 if none).
    """
    parts = []
    add = parts.append
    body_pack = _BODY.pack
    prefix_pack = _PREFIX.pack
    crc32 = zlib.crc32
    marks = []
    pos = 0
    offset = base_offset
    for key, value, headers, ts in records:
        if ts is None:
            ts = now_ms
        if since_mark >= mark_interval:
            marks.append(IndexMark(offset, pos, max_ts))
            since_mark = 0
        if headers:
            hbytes = encode_headers(headers)
            body = body_pack(offset, ts, 0, -1 if key is None else len(key),
                             -1 if value is None else len(value), len(hbytes))
            body = b"".join((body, key or b"", value or b"", hbytes))
        elif key is None:
            body = body_pack(offset, ts, 0, -1, -1 if value is None else len(value), 0)
            if value:
                body += value
        else:
            body = b"".join((body_pack(offset, ts, 0, len(key), -1 if value is None else len(value), 0),
                             key, value or b""))
        size = len(body) + 4
        add(prefix_pack(size, crc32(body)))
        add(body)
        size += 4
        pos += size
        since_mark += size
        if ts > max_ts:
            max_ts = ts
        offset += 1
    _flag_batch_ends(parts, records, base_offset, now_ms)
    return EncodedBatch(b"".join(parts), len(records), max_ts, marks, since_mark)


def _flag_batch_ends(parts: list, records, base_offset: int, now_ms: int) -> None:
    """Re-frame the first and last records with their batch bits (the loop above frames
    every record with attributes 0; frame sizes do not change)."""
    last = len(records) - 1
    for i in {0, last}:
        key, value, headers, ts = records[i]
        attrs = (FIRST_IN_BATCH if i == 0 else 0) | (LAST_IN_BATCH if i == last else 0)
        frame = _frame(base_offset + i, now_ms if ts is None else ts, attrs, key, value,
                       encode_headers(headers))
        parts[2 * i] = b""
        parts[2 * i + 1] = frame




def decode_from(buf, pos: int, end: int, max_records: int, max_bytes: int,
                min_offset: int = 0, taken: int = 0, verify: bool = True, checked: int = -1):
    """Decode frames from ``buf[pos:end]`` (which must hold whole frames).

    Records come back as plain ``(offset, timestamp, key, value, headers)`` tuples (the
    fields of :class:`Record`, which compares equal, and cheaper to make). ``headers`` is
    None for a record without headers, so that a record is a tuple of only ints, bytes and
    None, which the garbage collector stops tracking.
    Frames with ``offset < min_offset`` are skipped without decoding their payload. Stops
    after ``max_records`` records, or before the record that would take the frame bytes
    returned past ``max_bytes`` -- unless nothing was taken yet (``taken`` counts bytes
    already returned by the caller), so a consumer always gets at least one record.
    Returns ``(records, bytes_taken_in_total, stop_position)``; ``stop_position < end``
    means a limit stopped the read. With ``verify`` every returned frame's CRC is checked
    (:class:`CorruptRecordError` if wrong); ``checked`` is format 2's (a frame is checked
    whenever it is read).
    """
    out = []
    add = out.append
    unpack = HEADER.unpack_from
    crc32 = zlib.crc32
    left = max_records
    while pos < end:
        if pos + HEADER_SIZE > end:
            raise CorruptRecordError(f"a damaged frame at byte {pos}")
        length, crc, offset, ts, _attrs, kl, vl, hl = unpack(buf, pos)
        size = length + 4
        if size < HEADER_SIZE or pos + size > end:
            raise CorruptRecordError(f"a damaged frame at byte {pos}")
        if offset < min_offset:
            pos += size
            continue
        if taken and taken + size > max_bytes:
            return out, taken, pos
        start = pos + 8
        pos += size
        frame = buf[start:pos]
        if verify and crc32(frame) != crc:
            raise CorruptRecordError(f"CRC mismatch in the record at offset {offset}")
        if kl < 0:
            key = None
            p = 29
        else:
            key = frame[29:29 + kl]
            p = 29 + kl
        if vl >= 0:
            value = frame[p:p + vl]
            p += vl
        else:
            value = None
        add((offset, ts, key, value, FrozenHeaders(decode_headers(frame[p:p + hl])) if hl else None))
        taken += size
        left -= 1
        if not left:
            break
    return out, taken, pos


def iter_frames(buf, pos: int, end: int):
    """Yield ``(offset, timestamp, position, size)`` of the frames in ``buf[pos:end]``
    without decoding payloads or checking CRCs (for seeks within trusted data)."""
    unpack = HEADER.unpack_from
    while pos < end:
        length, _crc, offset, ts = unpack(buf, pos)[:4]
        yield offset, ts, pos, length + 4
        pos += length + 4


def header_at(buf, pos: int, limit: int):
    """``(offset, timestamp, attributes, size)`` from the header of the frame at ``pos``
    without checking its CRC, or None when the header cannot be a frame's (short, zero,
    lengths that do not add up, or reaching past ``limit``)."""
    if pos < 0 or pos + HEADER_SIZE > limit:
        return None
    length, _crc, offset, ts, attrs, kl, vl, hl = HEADER.unpack_from(buf, pos)
    size = length + 4
    if length < HEADER_SIZE - 4 or size > MAX_FRAME_BYTES or pos + size > limit:
        return None
    if kl < -1 or vl < -1 or hl < 0 or HEADER_SIZE + max(kl, 0) + max(vl, 0) + hl != size:
        return None
    return offset, ts, attrs, size


def frame_at(buf, pos: int, limit: int):
    """Like :func:`header_at`, and None too when the frame fails its CRC."""
    frame = header_at(buf, pos, limit)
    if frame is None or zlib.crc32(buf[pos + 8:pos + frame[3]]) != _PREFIX.unpack_from(buf, pos)[1]:
        return None
    return frame


def batch_at(buf, pos: int, limit: int) -> int | None:
    """The offset of the CRC-valid frame at ``pos`` if it is the first of its batch, or
    None."""
    frame = frame_at(buf, pos, limit)
    return frame[0] if frame is not None and frame[2] & FIRST_IN_BATCH else None


def position_for_timestamp(buf, pos: int, end: int, start_offset: int, timestamp: int):
    """``(offset, position of its frame, timestamp)`` of the first record at an offset
    ``>= start_offset`` whose timestamp is ``>= timestamp`` among the frames from ``pos``
    to ``end``, or None."""
    for offset, ts, at, _size in iter_frames(buf, pos, end):
        if offset >= start_offset and ts >= timestamp:
            return offset, at, ts
    return None


def scan(buf, pos: int, limit: int, expected_offset: int, mark_interval: int,
         since_mark: int = 0, max_timestamp: int = -1, whole_batches: bool = True,
         verify: bool = True) -> ScanResult:
    """Walk frames from ``pos`` (which must be the first frame of a batch) up to ``limit``.

    Keeps frames while they are well formed, pass their CRC and carry consecutive offsets
    starting at ``expected_offset``; the result ends after the last frame flagged
    ``LAST_IN_BATCH`` so that a torn batch is dropped whole. ``marks`` lists index marks
    for the kept frames (absolute positions) using the same cadence as
    :func:`encode_batch`. Cost: proportional to the bytes scanned.

    With ``whole_batches`` False every frame is kept on its own (the batch flags are not
    looked at); with ``verify`` False only the headers are checked, not the CRCs -- how the
    indexes of a sealed segment are rebuilt (its CRCs are checked when it is read).
    """
    kept_end, kept_next, kept_ts = pos, expected_offset, max_timestamp
    marks, kept_marks = [], 0
    reason = "end"
    in_batch = False
    read_frame = frame_at if verify else header_at
    while True:
        if pos + 4 > limit or _U32.unpack_from(buf, pos)[0] == 0:
            reason = "batch" if in_batch else "end"
            break
        frame = read_frame(buf, pos, limit)
        if frame is None:
            reason = "torn"
            break
        offset, ts, attrs, size = frame
        if offset != expected_offset or (
                whole_batches and not in_batch and not attrs & FIRST_IN_BATCH):
            reason = "offset"
            break
        if since_mark >= mark_interval:
            marks.append(IndexMark(offset, pos, max_timestamp))
            since_mark = 0
        in_batch = True
        max_timestamp = max(max_timestamp, ts)
        pos += size
        since_mark += size
        expected_offset += 1
        if attrs & LAST_IN_BATCH or not whole_batches:
            in_batch = False
            kept_end, kept_next, kept_ts = pos, expected_offset, max_timestamp
            kept_marks = len(marks)
    return ScanResult(kept_end, kept_next, kept_ts, marks[:kept_marks], pos, reason)
