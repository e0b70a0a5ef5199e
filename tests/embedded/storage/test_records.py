"""Record framing (consumer_api.embedded.storage.records): encode/decode round trips,
read limits, CRC checks, crash-recovery scanning and read-only headers."""
from __future__ import annotations

import copy
import pickle
import random

import pytest
from hypothesis import given, settings, strategies as st

from consumer_api.embedded.storage import records
from consumer_api.embedded.storage.records import (
    FIRST_IN_BATCH,
    HEADER_SIZE,
    LAST_IN_BATCH,
    CorruptRecordError,
    decode_from,
    encode_batch,
    encode_headers,
    scan,
)
from consumer_api.records import NewRecord, Record


def decode(*args, **kwargs):
    """``(records, taken)`` of :func:`decode_from` (its stop position left out)."""
    return decode_from(*args, **kwargs)[:2]

NOW = 1_700_000_000_000
NO_MARKS = 1 << 40  # an index interval no batch reaches


def encode(recs, base=0, now=NOW, interval=NO_MARKS, since_mark=0, max_ts=-1):
    return encode_batch(recs, base, now, interval, since_mark, max_ts)


def decode_all(data, **kw):
    kw.setdefault("max_records", 1 << 30)
    kw.setdefault("max_bytes", 1 << 40)
    out, _taken = decode(data, 0, len(data), **kw)
    return out


def frame_size(rec: NewRecord) -> int:
    return (HEADER_SIZE + len(rec.key or b"") + len(rec.value or b"")
            + len(encode_headers(rec.headers)))


def expected(recs, base=0, now=NOW):
    """Records as read back: headers are a dict, or None when the record has none."""
    return [Record(base + i, now if r.timestamp is None else r.timestamp, r.key, r.value,
                   dict(r.headers) if r.headers else None) for i, r in enumerate(recs)]


def frames(data):
    """(offset, timestamp, attributes, position, size) of every frame, validated."""
    out, pos = [], 0
    while pos < len(data):
        got = records.frame_at(data, pos, len(data))
        assert got is not None, f"invalid frame at {pos}"
        offset, ts, attrs, size = got
        out.append((offset, ts, attrs, pos, size))
        pos += size
    return out


MIXED = [
    NewRecord(b"k1", b"v1"),
    NewRecord(None, b"value without key"),
    NewRecord(b"key without value", None),
    NewRecord(None, None),
    NewRecord(b"", b""),
    NewRecord(b"k", b"", {"h": "v"}),
    NewRecord(None, b"x" * 5000, {"trace-id": "abc", "ünïcødé": "värde ✓ 日本語", "": ""},
              timestamp=123),
    NewRecord(b"\x00\xff" * 10, b"\x00" * 7, None, timestamp=0),
    NewRecord(b"k", None, {"only": "header"}, timestamp=NOW + 10_000),
]


# -- round trips ----------------------------------------------------------------------------


def test_round_trip_preserves_every_field():
    batch = encode(MIXED, base=1000)
    got = decode_all(batch.data)
    assert got == expected(MIXED, base=1000)
    assert batch.count == len(MIXED)
    assert len(batch.data) == sum(frame_size(r) for r in MIXED)


def test_null_key_and_value_are_distinct_from_empty_bytes():
    recs = [NewRecord(None, None), NewRecord(b"", b""), NewRecord(None, b""), NewRecord(b"", None)]
    got = decode_all(encode(recs).data)
    assert [(r[2], r[3]) for r in got] == [(None, None), (b"", b""), (None, b""), (b"", None)]


def test_default_timestamp_is_now_and_explicit_timestamps_are_kept():
    recs = [NewRecord(None, b"a"), NewRecord(None, b"b", timestamp=5),
            NewRecord(None, b"c", timestamp=NOW + 99), NewRecord(None, b"d")]
    batch = encode(recs, now=NOW)
    assert [r[1] for r in decode_all(batch.data)] == [NOW, 5, NOW + 99, NOW]
    assert batch.max_timestamp == NOW + 99


def test_max_timestamp_carries_the_segment_maximum_in():
    batch = encode([NewRecord(None, b"a", timestamp=10)], max_ts=500)
    assert batch.max_timestamp == 500


def test_unicode_headers_round_trip():
    headers = {"content-type": "application/json", "ключ": "значение", "🔑": "🎉" * 3,
               "empty": ""}
    (rec,) = decode_all(encode([NewRecord(b"k", b"v", headers)]).data)
    assert rec[4] == headers
    assert list(rec[4]) == list(headers)  # order kept


def test_single_record_batch_is_flagged_first_and_last():
    ((_off, _ts, attrs, _pos, _size),) = frames(encode([NewRecord(None, b"x")]).data)
    assert attrs == FIRST_IN_BATCH | LAST_IN_BATCH


@pytest.mark.parametrize("n", [2, 3, 7])
def test_batch_flags_mark_only_first_and_last_frames(n):
    recs = [NewRecord(None, bytes([i]) * i, {"i": str(i)} if i % 2 else None) for i in range(n)]
    batch = encode(recs, base=40)
    fs = frames(batch.data)
    assert [f[0] for f in fs] == list(range(40, 40 + n))
    assert [f[2] for f in fs] == [FIRST_IN_BATCH] + [0] * (n - 2) + [LAST_IN_BATCH]
    assert decode_all(batch.data) == expected(recs, base=40)


optional_bytes = st.one_of(st.none(), st.binary(max_size=64))
headers_st = st.one_of(st.none(), st.dictionaries(st.text(max_size=8), st.text(max_size=16),
                                                   max_size=3))
new_record = st.builds(NewRecord, optional_bytes, optional_bytes, headers_st,
                       st.one_of(st.none(), st.integers(0, 2 ** 62)))


@settings(max_examples=150, deadline=None)
@given(st.lists(new_record, min_size=1, max_size=8), st.integers(0, 2 ** 40))
def test_round_trip_property(recs, base):
    batch = encode(recs, base=base)
    assert decode_all(batch.data) == expected(recs, base=base)
    assert batch.count == len(recs)
    assert batch.max_timestamp == max(r.timestamp if r.timestamp is not None else NOW
                                      for r in recs)
    # every frame is valid and the batch scans as one complete batch
    result = scan(batch.data, 0, len(batch.data), base, NO_MARKS, 0, -1)
    assert (result.end, result.next_offset, result.stop_reason) == (len(batch.data),
                                                                    base + len(recs), "end")


# -- read limits ----------------------------------------------------------------------------

TEN = [NewRecord(None, bytes([65 + i]) * (10 + i)) for i in range(10)]


@pytest.mark.parametrize("limit", [1, 2, 5, 9, 10, 11, 1000])
def test_max_records_truncates(limit):
    data = encode(TEN).data
    got, taken = decode(data, 0, len(data), limit, 1 << 40)
    want = expected(TEN)[:limit]
    assert got == want
    assert taken == sum(frame_size(r) for r in TEN[:limit])


def test_max_bytes_returns_the_longest_prefix_that_fits():
    data = encode(TEN).data
    sizes = [frame_size(r) for r in TEN]
    for max_bytes in range(sizes[0], sum(sizes) + 2):
        got, taken = decode(data, 0, len(data), 1000, max_bytes)
        n = len(got)
        assert got == expected(TEN)[:n]
        assert taken == sum(sizes[:n]) <= max_bytes
        assert n == len(TEN) or sum(sizes[:n + 1]) > max_bytes  # the next one would not fit


@pytest.mark.parametrize("max_bytes", [0, 1, HEADER_SIZE])
def test_at_least_one_record_even_if_it_exceeds_max_bytes(max_bytes):
    data = encode(TEN).data
    got, taken = decode(data, 0, len(data), 1000, max_bytes)
    assert got == expected(TEN)[:1]
    assert taken == frame_size(TEN[0])


def test_a_big_first_record_comes_back_alone():
    recs = [NewRecord(None, b"x" * 10_000), NewRecord(None, b"y")]
    data = encode(recs).data
    got, _ = decode(data, 0, len(data), 1000, 100)
    assert got == expected(recs)[:1]


def test_bytes_already_taken_count_against_max_bytes():
    data = encode(TEN).data
    size0 = frame_size(TEN[0])
    got, taken = decode(data, 0, len(data), 1000, size0, taken=1)
    assert got == [] and taken == 1  # caller already returned something: nothing fits
    got, taken = decode(data, 0, len(data), 1000, 100 + size0, taken=100)
    assert got == expected(TEN)[:1] and taken == 100 + size0


@pytest.mark.parametrize("min_offset", [0, 100, 103, 109, 110, 500])
def test_min_offset_skips_earlier_records(min_offset):
    data = encode(TEN, base=100).data
    got, taken = decode(data, 0, len(data), 1000, 1 << 40, min_offset=min_offset)
    want = [r for r in expected(TEN, base=100) if r.offset >= min_offset]
    assert got == want
    assert taken == sum(frame_size(TEN[r.offset - 100]) for r in want)  # skipped cost nothing


def test_min_offset_with_max_records_and_max_bytes():
    data = encode(TEN, base=0).data
    got, _ = decode(data, 0, len(data), 2, 1 << 40, min_offset=4)
    assert got == expected(TEN)[4:6]
    got, _ = decode(data, 0, len(data), 100, frame_size(TEN[4]), min_offset=4)
    assert got == expected(TEN)[4:5]


def test_decode_from_a_middle_position():
    batch = encode(TEN, base=0)
    fs = frames(batch.data)
    pos = fs[6][3]
    got, _ = decode(batch.data, pos, len(batch.data), 1000, 1 << 40)
    assert got == expected(TEN)[6:]


# -- corruption -----------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["payload", "timestamp", "header_value", "crc"])
def test_crc_corruption_is_detected(where):
    recs = [NewRecord(b"key", b"value-0"), NewRecord(b"key", b"value-1", {"h": "v"}),
            NewRecord(b"key", b"value-2")]
    data = bytearray(encode(recs).data)
    pos = frames(bytes(data))[1][3]
    target = {"payload": pos + HEADER_SIZE + 3 + 2,  # inside "value-1"
              "timestamp": pos + 16,
              "header_value": pos + frame_size(recs[1]) - 1,
              "crc": pos + 4}[where]
    data[target] ^= 0x40
    with pytest.raises(CorruptRecordError):
        decode_all(bytes(data))
    # the records before the damage are still readable
    got, _ = decode(bytes(data), 0, len(data), 1, 1 << 40)
    assert got == expected(recs)[:1]


def test_corrupt_frame_is_rejected_by_frame_at():
    data = bytearray(encode([NewRecord(None, b"hello")]).data)
    assert records.frame_at(bytes(data), 0, len(data)) is not None
    data[-1] ^= 1
    assert records.frame_at(bytes(data), 0, len(data)) is None
    assert records.frame_at(bytes(data), 0, len(data) - 1) is None  # short


# -- scanning (crash recovery) --------------------------------------------------------------


def three_batches(ts0=1000):
    b1 = [NewRecord(None, b"a" * 50, timestamp=ts0 + 5), NewRecord(None, b"b", timestamp=ts0)]
    b2 = [NewRecord(b"k", b"c" * 70, {"x": "y"}, timestamp=ts0 + 2)]
    b3 = [NewRecord(None, b"d" * 30, timestamp=ts0 + 900) for _ in range(3)]
    e1 = encode(b1, base=10)
    e2 = encode(b2, base=12)
    e3 = encode(b3, base=13)
    return e1, e2, e3


def test_scan_keeps_complete_batches():
    e1, e2, e3 = three_batches()
    data = e1.data + e2.data + e3.data
    r = scan(data, 0, len(data), 10, NO_MARKS, 0, -1)
    assert (r.end, r.next_offset, r.scanned_end, r.stop_reason) == (len(data), 16, len(data),
                                                                    "end")
    assert r.max_timestamp == 1900


def test_scan_stops_cleanly_at_zero_fill():
    e1, e2, _ = three_batches()
    data = e1.data + e2.data
    buf = data + bytes(4096)  # preallocated, unwritten space
    r = scan(buf, 0, len(buf), 10, NO_MARKS, 0, -1)
    assert (r.end, r.next_offset, r.stop_reason) == (len(data), 13, "end")


@pytest.mark.parametrize("kept_frames", [1, 2])
@pytest.mark.parametrize("tail", [b"", bytes(1000)])
def test_scan_drops_a_torn_batch(kept_frames, tail):
    """A batch whose LAST_IN_BATCH frame never made it to disk is dropped whole."""
    e1, e2, e3 = three_batches()
    good = e1.data + e2.data
    partial = b"".join(e3.data[f[3]:f[3] + f[4]] for f in frames(e3.data)[:kept_frames])
    buf = good + partial + tail
    r = scan(buf, 0, len(buf), 10, NO_MARKS, 0, -1)
    assert r.end == len(good)
    assert r.next_offset == 13
    assert r.scanned_end == len(good) + len(partial)
    assert r.stop_reason == "batch"
    assert r.max_timestamp == 1005  # the torn batch's timestamps do not count
    assert decode_all(buf[:r.end]) == decode_all(good)


@pytest.mark.parametrize("junk", [b"\x01\x02\x03\x04\x05" * 20, b"\xff" * 64,
                                  b"\x30\x00\x00\x00" + b"garbage!" * 10])
def test_scan_stops_at_junk(junk):
    e1, e2, _ = three_batches()
    good = e1.data + e2.data
    buf = good + junk + bytes(100)
    r = scan(buf, 0, len(buf), 10, NO_MARKS, 0, -1)
    assert (r.end, r.next_offset, r.stop_reason) == (len(good), 13, "torn")


def test_scan_drops_a_batch_with_a_corrupt_frame_and_everything_after():
    e1, e2, e3 = three_batches()
    data = bytearray(e1.data + e2.data + e3.data)
    data[len(e1.data) + HEADER_SIZE + 2] ^= 0xFF  # damage e2's payload
    r = scan(bytes(data), 0, len(data), 10, NO_MARKS, 0, -1)
    assert (r.end, r.next_offset, r.stop_reason) == (len(e1.data), 12, "torn")


def test_scan_stops_at_an_offset_gap():
    e1, _, e3 = three_batches()  # offsets 10-11 then 13-15: 12 is missing
    data = e1.data + e3.data
    r = scan(data, 0, len(data), 10, NO_MARKS, 0, -1)
    assert (r.end, r.next_offset, r.stop_reason) == (len(e1.data), 12, "offset")


def test_scan_needs_the_expected_first_offset():
    e1, _, _ = three_batches()
    r = scan(e1.data, 0, len(e1.data), 11, NO_MARKS, 0, -1)
    assert (r.end, r.next_offset) == (0, 11)


def test_scan_rebuilds_the_same_index_marks_as_encoding():
    """Recovery re-derives index entries by scanning; they must equal the ones written."""
    rng = random.Random(7)
    interval = 200
    data, written_marks = b"", []
    since, max_ts, offset = 0, -1, 0
    for _ in range(40):
        recs = [NewRecord(None, b"z" * rng.randint(0, 400), timestamp=rng.randint(0, 10_000))
                for _ in range(rng.randint(1, 4))]
        b = encode_batch(recs, offset, NOW, interval, since, max_ts)
        written_marks += [m._replace(position=m.position + len(data)) for m in b.marks]
        data += b.data
        since, max_ts, offset = b.since_mark, b.max_timestamp, offset + b.count
    assert len(written_marks) > 10
    r = scan(data, 0, len(data), 0, interval, 0, -1)
    assert r.marks == written_marks
    assert (r.end, r.next_offset, r.max_timestamp) == (len(data), offset, max_ts)


def test_encode_marks_point_at_frames_and_bound_earlier_timestamps():
    rng = random.Random(3)
    recs = [NewRecord(None, b"m" * rng.randint(0, 300), timestamp=rng.randint(0, 1000))
            for _ in range(60)]
    batch = encode(recs, base=500, interval=256)
    fs = frames(batch.data)
    by_pos = {f[3]: f for f in fs}
    assert batch.marks
    for mark in batch.marks:
        assert by_pos[mark.position][0] == mark.offset
        before = [r.timestamp for r in recs[:mark.offset - 500]]
        assert mark.max_timestamp_before == max(before)
    gaps = [b.position - a.position for a, b in zip(batch.marks, batch.marks[1:])]
    assert all(g >= 256 for g in gaps)


# -- headers as read back ----------------------------------------------------------------------


def read_headers():
    recs = [NewRecord(None, b"v", {"a": "1", "b": "2"}), NewRecord(None, b"w"),
            NewRecord(None, b"x", {})]
    got = decode_all(encode(recs).data)
    return [r[4] for r in got]


def test_headers_read_back_as_dicts_or_none():
    with_headers, without, empty = read_headers()
    assert isinstance(with_headers, dict) and with_headers == {"a": "1", "b": "2"}
    assert with_headers.get("a") == "1" and "b" in with_headers
    assert without is None
    assert empty is None  # no headers and empty headers are stored the same way


MUTATIONS = {
    "set": lambda h: h.__setitem__("a", "x"),
    "add": lambda h: h.__setitem__("new", "x"),
    "del": lambda h: h.__delitem__("a"),
    "clear": lambda h: h.clear(),
    "pop": lambda h: h.pop("a"),
    "popitem": lambda h: h.popitem(),
    "setdefault": lambda h: h.setdefault("new", "x"),
    "update": lambda h: h.update({"a": "x"}),
    "update_kw": lambda h: h.update(a="x"),
}


@pytest.mark.parametrize("name", list(MUTATIONS))
def test_headers_refuse_mutation(name):
    h = read_headers()[0]
    before = dict(h)
    with pytest.raises(TypeError):
        MUTATIONS[name](h)
    assert h == before


def test_headers_refuse_in_place_union():
    h = read_headers()[0]
    alias = h
    with pytest.raises(TypeError):
        alias |= {"a": "x", "injected": "y"}
    assert h == {"a": "1", "b": "2"}


def test_headers_of_two_reads_are_independent_of_each_other():
    recs = [NewRecord(None, b"v", {"a": "1"})]
    data = encode(recs).data
    first, second = decode_all(data)[0][4], decode_all(data)[0][4]
    merged = first | {"b": "2"}  # the non-mutating union makes a new dict
    assert merged == {"a": "1", "b": "2"}
    assert first == second == {"a": "1"}


def test_headers_copy_gives_an_equal_dict():
    with_headers = read_headers()[0]
    c = dict(with_headers)
    c["a"] = "changed"
    assert with_headers == {"a": "1", "b": "2"}
    assert with_headers.copy() == {"a": "1", "b": "2"}


def test_records_can_be_copied_and_pickled():
    recs = decode_all(encode([NewRecord(b"k", b"v", {"a": "1"}), NewRecord(b"k", b"w")]).data)
    assert copy.deepcopy(recs) == recs
    assert copy.copy(recs[0][4]) == {"a": "1"}
    loaded = pickle.loads(pickle.dumps(recs))
    assert loaded == recs
    with pytest.raises(TypeError):  # still read-only after the round trip
        loaded[0][4]["a"] = "x"
