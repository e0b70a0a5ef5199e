"""Segment format 2 (consumer_api.embedded.storage.batches): the bulk codec agrees with the
record-at-a-time reference (batch_reference) byte for byte and record for record, under
every read limit; damage is detected, never decoded; recovery scanning keeps whole batches
only; timestamp lookups agree with a brute-force search."""
from __future__ import annotations

import zlib

import pytest
from hypothesis import given, settings, strategies as st

from consumer_api.embedded.storage import batch_reference, batches, records
from consumer_api.embedded.storage.batches import (
    HEADER_SIZE, CorruptRecordError, decode_from, encode_batch, scan)

NOW = 1_700_000_000_000
NO_MARKS = 1 << 40

_bytes = st.one_of(st.none(), st.binary(max_size=40), st.binary(min_size=120, max_size=400))
_headers = st.one_of(st.none(), st.dictionaries(st.text(max_size=5), st.text(max_size=8),
                                                max_size=3))
_stamp = st.one_of(st.none(), st.integers(0, 2 ** 62), st.integers(NOW - 5, NOW + 5))
_record = st.tuples(st.one_of(st.none(), st.binary(max_size=20)), _bytes, _headers, _stamp)
_batch = st.lists(_record, min_size=1, max_size=30)


def encode_log(batch_list, base=0):
    """Several batches back to back (no file header), and the records as the reference
    reads them."""
    data, offset = b"", base
    for recs in batch_list:
        data += encode_batch(recs, offset, NOW, NO_MARKS, 0, -1).data
        offset += len(recs)
    return data, batch_reference.decode(data, 0, len(data))


def limited(reference, min_offset, max_records, max_bytes, taken):
    """What a read with these limits returns, by the definition (one record at a time)."""
    out = []
    for rec in reference:
        if rec[0] < min_offset:
            continue
        if len(out) == max_records or (taken and taken + rec[5] > max_bytes):
            break
        out.append(rec[:5])
        taken += rec[5]
    return out, taken


def plain(records):
    return [(o, ts, k, v, dict(h) if h is not None else None) for o, ts, k, v, h in records]


@settings(max_examples=300, deadline=None)
@given(_batch, st.integers(0, 2 ** 40))
def test_encoding_is_the_references_byte_for_byte(recs, base):
    assert encode_batch(recs, base, NOW, NO_MARKS, 0, -1).data == \
        batch_reference.encode(recs, base, NOW)


@settings(max_examples=300, deadline=None)
@given(st.lists(_batch, min_size=1, max_size=4), st.integers(0, 120), st.integers(1, 130),
       st.integers(1, 3000), st.integers(0, 400), st.integers(0, 1000))
def test_decoding_with_limits_is_the_references(batch_list, min_offset, max_records, max_bytes,
                                                taken, base):
    data, reference = encode_log(batch_list, base)
    got, now_taken, stop = decode_from(data, 0, len(data), max_records, max_bytes,
                                       min_offset=base + min_offset, taken=taken)
    want, want_taken = limited(reference, base + min_offset, max_records, max_bytes, taken)
    assert plain(got) == want
    assert now_taken == want_taken
    assert (stop < len(data)) == (len(want) < len([r for r in reference
                                                   if r[0] >= base + min_offset]))


@settings(max_examples=200, deadline=None)
@given(_batch, st.data())
def test_a_changed_byte_is_never_decoded(recs, data):
    encoded = bytearray(encode_batch(recs, 0, NOW, NO_MARKS, 0, -1).data)
    at = data.draw(st.integers(0, len(encoded) - 1))
    encoded[at] ^= data.draw(st.integers(1, 255))
    with pytest.raises(CorruptRecordError):
        decode_from(bytes(encoded), 0, len(encoded), 1 << 20, 1 << 40)


@settings(max_examples=200, deadline=None)
@given(st.lists(_batch, min_size=1, max_size=4), st.data())
def test_scan_keeps_the_whole_batches_before_a_cut(batch_list, data):
    encoded, reference = encode_log(batch_list)
    ends, offsets, total, n = [], [], 0, 0
    for recs in batch_list:
        total += len(encode_batch(recs, n, NOW, NO_MARKS, 0, -1).data)
        n += len(recs)
        ends.append(total)
        offsets.append(n)
    cut = data.draw(st.integers(0, len(encoded)))
    torn = encoded[:cut] + bytes(64)  # zeros after the cut, as in a preallocated file
    # zero bytes cut off are put back by the zeros: the cut is in effect after them
    cut += len(encoded[cut:cut + 64]) - len(encoded[cut:cut + 64].lstrip(b"\0"))
    result = scan(torn, 0, len(torn), 0, NO_MARKS)
    whole = [i for i, end in enumerate(ends) if end <= cut]
    kept = ends[whole[-1]] if whole else 0
    assert result.end == kept
    assert result.next_offset == (offsets[whole[-1]] if whole else 0)
    # a zero length field reads as the end of the written part, anything else as torn
    assert result.stop_reason == ("end" if torn[kept:kept + 4] == bytes(4) else "torn")


def test_scan_stops_at_an_offset_gap_and_marks_batches_like_encoding():
    first = encode_batch([(None, b"a" * 300, None, NOW)] * 3, 0, NOW, 256, 0, -1)
    second = encode_batch([(None, b"b" * 300, None, NOW + 1)] * 2, 3, NOW, 256,
                          first.since_mark, first.max_timestamp)
    gap = encode_batch([(None, b"c", None, NOW + 2)], 9, NOW, 256, second.since_mark, NOW + 1)
    data = first.data + second.data + gap.data
    result = scan(data, 0, len(data), 0, 256)
    assert (result.end, result.next_offset, result.stop_reason) == \
        (len(first.data) + len(second.data), 5, "offset")
    assert [(m.offset, m.position, m.max_timestamp_before) for m in result.marks] == \
        [(3, len(first.data), NOW)]
    assert [(m.offset, m.position) for m in second.marks] == [(3, 0)]


@settings(max_examples=200, deadline=None)
@given(st.lists(_batch, min_size=1, max_size=4), st.integers(0, 2 ** 62), st.integers(0, 60))
def test_position_for_timestamp_is_the_first_record_at_or_after(batch_list, target, start):
    data, reference = encode_log(batch_list)
    for t in (target, reference[len(reference) // 2][1]):
        want = next((r for r in reference if r[0] >= start and r[1] >= t), None)
        got = batches.position_for_timestamp(data, 0, len(data), start, t)
        assert (got and got[0], got and got[2]) == (want and want[0], want and want[1])
        if got:  # where its share starts: the bytes of the records before it
            assert got[1] == sum(shares(batch_list)[:got[0]])


def shares(batch_list) -> list:
    """Each record's share of its batch's bytes: its column entries and bytes, the first
    record's also the batch header."""
    out = []
    for recs in batch_list:
        size = len(encode_batch(recs, 0, NOW, NO_MARKS, 0, -1).data)
        data = [len(k or b"") + len(v or b"") + len(records.encode_headers(h))
                for k, v, h, _ts in recs]
        entries = (size - HEADER_SIZE - sum(data)) // len(recs)
        out += [HEADER_SIZE + entries + data[0]] + [entries + n for n in data[1:]]
    return out


def test_columns_take_the_narrowest_width_and_are_left_out_when_empty():
    keyless = encode_batch([(None, b"v" * 100, None, None)] * 10, 0, NOW, NO_MARKS, 0, -1)
    # header + a 1-byte length per record + the values: no key, header or timestamp column
    assert len(keyless.data) == HEADER_SIZE + 10 * (1 + 100)
    wide = encode_batch([(b"k", b"v" * 40_000, None, NOW + i) for i in range(3)], 0, NOW,
                        NO_MARKS, 0, -1)
    # 4-byte value lengths, 1-byte key lengths, 1-byte timestamp deltas
    assert len(wide.data) == HEADER_SIZE + 3 * (4 + 1 + 1) + 3 * (40_000 + 1)


def test_records_read_back_with_read_only_headers_or_none():
    data = encode_batch([(None, b"x", {"a": "1"}, None), (None, b"y", {}, None)], 0, NOW,
                        NO_MARKS, 0, -1).data
    (first, second), _taken, _stop = decode_from(data, 0, len(data), 10, 1 << 20)
    assert first[4] == {"a": "1"} and second[4] is None
    with pytest.raises(TypeError):
        first[4]["b"] = "2"


def test_the_crc_covers_everything_after_itself():
    data = encode_batch([(b"k", b"v", {"h": "x"}, 5)], 7, NOW, NO_MARKS, 0, -1).data
    assert int.from_bytes(data[4:8], "little") == zlib.crc32(data[8:])
    assert batches.batch_at(data, 0, len(data)) == 7
    assert batches.batch_at(data[:-1], 0, len(data) - 1) is None
