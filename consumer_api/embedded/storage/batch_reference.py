"""Segment format 2 (:mod:`batches`) written and read a record at a time: the reference.

As plain as the format allows -- one step per record and per column entry -- so that it
can be checked by eye against the layout in :mod:`batches`; the property tests
(``tests/embedded/storage/test_batches.py``) check that :func:`batches.encode_batch` and
:func:`batches.decode_from` give exactly what these give. Not used by the server.
"""
from __future__ import annotations

import struct
import zlib

from consumer_api.embedded.storage.batches import (
    HAS_HEADERS, HAS_KEYS, HAS_TIMESTAMPS, HEADER, RECORD_OVERHEAD)
from consumer_api.embedded.storage.records import decode_headers, encode_headers

_CODES = "bhiq"


def _code(column: list) -> int:
    for code, char in enumerate(_CODES):
        limit = 1 << (8 * struct.calcsize(char) - 1)
        if all(-limit <= x < limit for x in column):
            return code
    raise ValueError("a column entry exceeds 64 bits")


def _length(data) -> int:
    return -1 if data is None else len(data)


def encode(records, base_offset: int, now_ms: int) -> bytes:
    """One batch of ``records`` (``(key, value, headers, timestamp)``) at ``base_offset``."""
    stamps = [now_ms if r[3] is None else r[3] for r in records]
    encoded_headers = [encode_headers(r[2]) for r in records]
    columns = {0: [_length(r[1]) for r in records]}
    attributes = 0
    if any(r[0] is not None for r in records):
        attributes |= HAS_KEYS
        columns[1] = [_length(r[0]) for r in records]
    if any(encoded_headers):
        attributes |= HAS_HEADERS
        columns[2] = [len(h) for h in encoded_headers]
    if any(t != stamps[0] for t in stamps):
        attributes |= HAS_TIMESTAMPS
        columns[3] = [t - stamps[0] for t in stamps]
    widths = 0
    packed = b""
    for slot, column in columns.items():
        code = _code(column)
        widths |= code << (2 * slot)
        for entry in column:
            packed += struct.pack("<" + _CODES[code], entry)
    data = b""
    for r in records:
        data += r[1] or b""
    if attributes & HAS_KEYS:
        for r in records:
            data += r[0] or b""
    if attributes & HAS_HEADERS:
        for h in encoded_headers:
            data += h
    body = HEADER.pack(0, 0, base_offset, len(records), stamps[0], max(stamps), attributes,
                       widths)[8:] + packed + data
    return struct.pack("<II", len(body) + 4, zlib.crc32(body)) + body


def decode(buf, pos: int, end: int) -> list:
    """Every record of the batches in ``buf[pos:end]``, as ``(offset, timestamp, key,
    value, headers, size)`` where ``size`` is what it counts against ``max_bytes``."""
    out = []
    while pos < end:
        (length, crc, base, count, first, _max, attributes,
         widths) = HEADER.unpack_from(buf, pos)
        assert zlib.crc32(buf[pos + 8:pos + 4 + length]) == crc
        at = pos + HEADER.size
        columns = {}
        for slot, bit in ((0, 0), (1, HAS_KEYS), (2, HAS_HEADERS), (3, HAS_TIMESTAMPS)):
            if bit and not attributes & bit:
                continue
            char = _CODES[(widths >> 2 * slot) & 3]
            columns[slot] = []
            for _ in range(count):
                columns[slot].append(struct.unpack_from("<" + char, buf, at)[0])
                at += struct.calcsize(char)
        items = {}
        for slot in (0, 1, 2):
            items[slot] = []
            for n in columns.get(slot, [-1] * count if slot == 1 else [0] * count):
                items[slot].append(None if n < 0 else bytes(buf[at:at + n]))
                at += max(n, 0)
        for i in range(count):
            key, value, raw = items[1][i], items[0][i], items[2][i]
            ts = first + (columns[3][i] if 3 in columns else 0)
            headers = decode_headers(raw) if raw else None
            size = RECORD_OVERHEAD + len(key or b"") + len(value or b"") + len(raw or b"")
            out.append((base + i, ts, key, value, headers, size))
        pos += 4 + length
    return out
