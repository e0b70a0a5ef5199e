"""PartitionLog: appends and reads across segment rolls, index lookups, timestamps,
reopen, retention, flushing, concurrency and waiting."""
from __future__ import annotations

import os
import random
import re
import threading

import pytest

from consumer_api.embedded.storage import batches
from consumer_api.embedded.storage.partition_log import LogConfig, PartitionLog
from consumer_api.embedded.storage.batches import RECORD_OVERHEAD
from consumer_api.embedded.storage.records import encode_headers
from consumer_api.records import NewRecord, Record
from consumer_api.errors import OffsetOutOfRange, Unavailable

DAY_MS = 24 * 3600 * 1000
EVERYTHING = dict(max_records=1 << 30, max_bytes=1 << 40)


# -- helpers --------------------------------------------------------------------------------


class Model:
    """What the log should contain: the records appended so far, by offset."""

    def __init__(self):
        self.records: list[Record] = []
        self.batch_bytes: dict[int, int] = {}  # base offset -> bytes of its batch on disk
        self.shares: list[int] = []  # per record: the bytes of its batch it accounts for

    def add(self, base, batch, now):
        assert base == len(self.records), "base offsets must be dense"
        size = len(batches.encode_batch(batch, base, now, 1, 0, -1).data)
        self.batch_bytes[base] = size
        # each record's share of its batch: its column entries and bytes, the first's also
        # the header (batches.position_for_timestamp)
        data = [len(r.key or b"") + len(r.value or b"") + len(encode_headers(r.headers))
                for r in batch]
        entries = (size - batches.HEADER_SIZE - sum(data)) // len(batch)
        self.shares += [entries + n for n in data]
        self.shares[base] += batches.HEADER_SIZE
        for i, r in enumerate(batch):
            self.records.append(Record(base + i, now if r.timestamp is None else r.timestamp,
                                       r.key, r.value, dict(r.headers) if r.headers else None))


def disk_bytes(model, start, end) -> int:
    """Bytes of a segment's ``.log`` holding the batches from ``start`` to ``end``."""
    return len(batches.FILE_HEADER) + sum(n for base, n in model.batch_bytes.items()
                                          if start <= base < end)


def frame_size(rec) -> int:
    """What a record counts against ``max_bytes``."""
    key, value, headers = rec[2], rec[3], rec[4]
    return (RECORD_OVERHEAD + len(key or b"") + len(value or b"")
            + len(encode_headers(headers or {})))


def open_log(directory, clock, **cfg):
    cfg.setdefault("index_interval_bytes", 256)
    return PartitionLog(directory, LogConfig(**cfg), now_ms=clock.now_ms)


def read_all(plog, start=None):
    start = plog.log_start_offset if start is None else start
    out, pos = [], start
    while pos < plog.high_watermark:
        got = plog.read(pos, **EVERYTHING)
        assert got, f"no progress reading at {pos}"
        out.extend(got)
        pos = got[-1][0] + 1
    return out


def segment_files(directory):
    return sorted(os.listdir(directory))


def segment_bases(directory):
    return sorted(int(n[:-4]) for n in os.listdir(directory) if n.endswith(".log"))


def random_batch(rng, i, max_value=1500):
    n = rng.choice([1, 1, 1, 2, 3, 5])
    batch = []
    for j in range(n):
        kind = rng.random()
        key = None if kind < 0.3 else f"key-{i}-{j}".encode()
        value = None if kind > 0.95 else rng.randbytes(rng.choice([0, 1, 10, 100, 300, max_value]))
        headers = {"i": str(i), "ü": "✓" * j} if kind < 0.2 else None
        batch.append(NewRecord(key, value, headers))
    return batch


def fill(plog, clock, model, rng, batches, max_value=1500, tick=True):
    for i in range(batches):
        batch = random_batch(rng, i, max_value)
        base = plog.append(batch)
        model.add(base, batch, clock.now_ms())
        if tick:
            clock.advance(rng.randint(0, 3))
    return model


@pytest.fixture
def logs():
    """Collects logs opened by a test and closes them at the end."""
    opened = []
    yield opened
    for plog in opened:
        plog.close()


@pytest.fixture
def make_log(data_dir, clock, logs):
    def make(directory=data_dir, **cfg):
        plog = open_log(directory, clock, **cfg)
        logs.append(plog)
        return plog
    return make


@pytest.fixture
def filled(make_log, clock):
    """A log of many small segments holding mixed records, and its model."""
    plog = make_log(segment_bytes=8192)
    model = fill(plog, clock, Model(), random.Random(1), 250)
    assert len(segment_bases(plog.directory)) >= 8
    return plog, model


# -- append / read ----------------------------------------------------------------------------


def test_empty_log(make_log):
    plog = make_log(segment_bytes=4096)
    assert plog.offsets() == (0, 0)
    assert plog.high_watermark == 0 and plog.log_start_offset == 0
    assert plog.read(0) == []
    assert plog.offset_for_timestamp(0) is None


def test_append_returns_dense_base_offsets_and_reads_back(filled):
    plog, model = filled
    assert plog.high_watermark == len(model.records)
    assert plog.log_start_offset == 0
    got = read_all(plog)
    assert got == model.records
    assert [r[0] for r in got] == list(range(len(model.records)))


def test_empty_batch_is_rejected(make_log):
    plog = make_log(segment_bytes=4096)
    with pytest.raises(ValueError):
        plog.append([])
    assert plog.high_watermark == 0


def test_segment_files_are_named_by_base_offset(filled):
    plog, model = filled
    names = segment_files(plog.directory)
    bases = segment_bases(plog.directory)
    assert bases[0] == 0
    assert names == sorted(f"{b:020d}{ext}" for b in bases
                           for ext in (".log", ".index", ".timeindex"))
    assert all(re.fullmatch(r"\d{20}\.(log|index|timeindex)", n) for n in names)
    # each base is the offset of the first record in that file
    for b in bases[1:]:
        assert 0 < b < len(model.records)
    assert bases == sorted(set(bases))


def test_sealed_segments_are_trimmed_to_their_frames(filled, clock):
    plog, model = filled
    bases = segment_bases(plog.directory)
    ends = bases[1:] + [len(model.records)]

    def check(sealed_bases):
        for base, end in zip(bases, ends):
            if base not in sealed_bases:
                continue
            want = disk_bytes(model, base, end)
            assert os.path.getsize(os.path.join(plog.directory, f"{base:020d}.log")) == want
            idx = os.path.getsize(os.path.join(plog.directory, f"{base:020d}.index"))
            tidx = os.path.getsize(os.path.join(plog.directory, f"{base:020d}.timeindex"))
            assert idx % 8 == 0 and tidx % 16 == 0
            if want > 2048:  # index_interval_bytes is 256: entries were written
                assert idx > 0

    check(set(bases[:-1]))
    plog.close()
    check(set(bases))  # the active segment is trimmed on close too


def test_read_at_every_offset_returns_that_record_first(filled):
    plog, model = filled
    hw = plog.high_watermark
    for o in range(plog.log_start_offset, hw):
        assert plog.read(o, max_records=1) == [model.records[o]], o
        assert plog.read(o, max_records=3) == model.records[o:o + 3], o
    assert plog.read(hw) == []
    assert plog.read(hw, max_records=1, max_bytes=1) == []


def test_read_at_every_offset_with_large_index_interval(make_log, clock):
    """Same with few index entries (long scans from the segment start)."""
    plog = make_log(segment_bytes=16384, index_interval_bytes=1 << 20)
    model = fill(plog, clock, Model(), random.Random(2), 120)
    for o in range(plog.high_watermark):
        assert plog.read(o, max_records=2) == model.records[o:o + 2]


@pytest.mark.parametrize("offset", [-1, -100, "hw+1", "hw+1000"])
def test_read_outside_the_log_raises_offset_out_of_range(filled, offset):
    plog, _ = filled
    hw = plog.high_watermark
    if isinstance(offset, str):
        offset = hw + int(offset[3:])
    with pytest.raises(OffsetOutOfRange) as exc:
        plog.read(offset)
    assert exc.value.code == "offset_out_of_range"
    assert exc.value.details == {"log_start_offset": 0, "high_watermark": hw}


def test_max_records_across_segment_boundaries(filled):
    plog, model = filled
    bases = segment_bases(plog.directory)
    hw = plog.high_watermark
    for base in bases[1:]:
        for start in (base - 3, base - 1, base):
            for n in (1, 2, 4, 7, 50):
                if start < 0:
                    continue
                assert plog.read(start, max_records=n, max_bytes=1 << 40) == \
                    model.records[start:min(start + n, hw)]


def _expected_max_bytes(model, start, max_bytes, max_records=1 << 30):
    out, taken = [], 0
    for rec in model.records[start:]:
        size = frame_size(rec)
        if out and taken + size > max_bytes:
            break
        out.append(rec)
        taken += size
        if len(out) >= max_records:
            break
    return out


def test_max_bytes_with_equal_sized_records_across_segments(make_log, clock):
    plog = make_log(segment_bytes=4096)
    model = Model()
    for i in range(120):
        batch = [NewRecord(None, b"%07d" % i + b"." * 193)]
        model.add(plog.append(batch), batch, clock.now_ms())
    size = frame_size(model.records[0])
    assert len(segment_bases(plog.directory)) > 5
    for start in range(0, 120, 7):
        for max_bytes in (1, size, size + 1, 3 * size - 1, 3 * size, 25 * size, 1 << 30):
            got = plog.read(start, max_bytes=max_bytes)
            assert got == _expected_max_bytes(model, start, max_bytes), (start, max_bytes)


def test_one_record_bigger_than_max_bytes_comes_back_alone(make_log, clock):
    plog = make_log(segment_bytes=65536)
    plog.append([NewRecord(None, b"big" * 5000)])
    plog.append([NewRecord(None, b"small")])
    got = plog.read(0, max_bytes=10)
    assert [r[0] for r in got] == [0] and got[0][3] == b"big" * 5000
    assert [r[0] for r in plog.read(1, max_bytes=1)] == [1]


def test_max_bytes_never_skips_records_at_a_segment_boundary(make_log):
    """Regression: read() used to go on into the next segment after max_bytes stopped it
    inside a segment, returning a smaller record from there and skipping the ones between."""
    plog = make_log(segment_bytes=4096)
    plog.append([NewRecord(None, b"a" * 10)])     # offset 0, segment 0
    plog.append([NewRecord(None, b"b" * 4000)])   # offset 1, segment 0 (now full)
    plog.append([NewRecord(None, b"c" * 10)])     # offset 2, segment 2
    assert segment_bases(plog.directory) == [0, 2]
    got = plog.read(0, max_bytes=200)
    assert [r[0] for r in got] == [0]  # record 1 does not fit: stop before it


def test_max_bytes_returns_a_contiguous_prefix_with_mixed_sizes(filled):
    plog, model = filled
    for start in range(0, plog.high_watermark, 5):
        for max_bytes in (1, 200, 1000, 3000, 9000, 30000):
            got = plog.read(start, max_bytes=max_bytes)
            assert got == _expected_max_bytes(model, start, max_bytes, 500), (start, max_bytes)


def test_batch_bigger_than_a_segment_gets_its_own_segment(make_log, clock):
    plog = make_log(segment_bytes=4096)
    model = Model()
    small = [NewRecord(b"s", b"x" * 100)]
    for _ in range(3):
        model.add(plog.append(small), small, clock.now_ms())
    big = [NewRecord(b"big", bytes([i]) * 1500, {"n": str(i)}) for i in range(8)]  # ~12 KiB
    base = plog.append(big)
    assert base == 3
    model.add(base, big, clock.now_ms())
    after = [NewRecord(None, b"after")]
    model.add(plog.append(after), after, clock.now_ms())
    assert segment_bases(plog.directory) == [0, 3, 11]
    big_bytes = disk_bytes(model, 3, 11)
    assert big_bytes > 4096
    assert os.path.getsize(os.path.join(plog.directory, f"{3:020d}.log")) == big_bytes
    assert read_all(plog) == model.records
    for o in range(plog.high_watermark):
        assert plog.read(o, max_records=1) == [model.records[o]]
    plog.close()
    plog = open_log(plog.directory, clock, segment_bytes=4096)
    try:
        assert read_all(plog) == model.records
        assert plog.recovery.dropped_bytes == 0
    finally:
        plog.close()


def test_batch_bigger_than_a_segment_into_an_empty_log(make_log, clock):
    plog = make_log(segment_bytes=4096)
    big = [NewRecord(None, b"y" * 3000) for _ in range(5)]
    assert plog.append(big) == 0
    assert plog.append([NewRecord(None, b"z")]) == 5
    got = read_all(plog)
    assert [r[3] for r in got] == [b"y" * 3000] * 5 + [b"z"]
    assert segment_bases(plog.directory) == [0, 5]


def test_a_batch_is_never_split_across_segments(make_log, clock):
    plog = make_log(segment_bytes=4096)
    rng = random.Random(5)
    batches = []
    for _ in range(60):
        batch = [NewRecord(None, b"q" * rng.randint(50, 700)) for _ in range(rng.randint(1, 4))]
        batches.append((plog.append(batch), len(batch)))
    bases = set(segment_bases(plog.directory))
    for base, n in batches:
        assert not any(base < b < base + n for b in bases)


# -- timestamps -------------------------------------------------------------------------------


def brute_offset_for_timestamp(model, t, start=0):
    for rec in model.records[start:]:
        if rec.timestamp >= t:
            return rec.offset
    return None


def _timestamped_log(make_log, clock):
    plog = make_log(segment_bytes=4096)
    rng = random.Random(11)
    model = Model()
    base_ts = clock.now_ms()
    for i in range(220):
        batch = []
        for _ in range(rng.randint(1, 3)):
            choice = rng.random()
            ts = None if choice < 0.2 else base_ts + rng.randint(-5000, 20_000) + i * 50
            batch.append(NewRecord(None, b"t" * rng.randint(0, 250), timestamp=ts))
        model.add(plog.append(batch), batch, clock.now_ms())
        clock.advance(37)
    assert len(segment_bases(plog.directory)) > 5
    return plog, model


def _check_timestamps(plog, model):
    stamps = sorted({r.timestamp for r in model.records})
    probes = set(range(stamps[0] - 3, stamps[-1] + 3, 97))
    probes |= set(stamps) | {s + 1 for s in stamps} | {s - 1 for s in stamps}
    probes |= {0, -1, 2 ** 62}
    for t in sorted(probes):
        assert plog.offset_for_timestamp(t) == brute_offset_for_timestamp(model, t), t
    assert plog.offset_for_timestamp(stamps[-1] + 1) is None


def test_offset_for_timestamp_matches_brute_force(make_log, clock):
    plog, model = _timestamped_log(make_log, clock)
    assert any(b.timestamp < a.timestamp for a, b in zip(model.records, model.records[1:]))
    _check_timestamps(plog, model)


def test_offset_for_timestamp_after_reopen(make_log, clock, data_dir):
    plog, model = _timestamped_log(make_log, clock)
    plog.close()
    plog = make_log(segment_bytes=4096)
    assert plog.recovery.dropped_bytes == 0
    assert read_all(plog) == model.records
    _check_timestamps(plog, model)
    # and it stays right as the reopened active segment grows
    rng = random.Random(12)
    for i in range(40):
        batch = [NewRecord(None, b"n" * rng.randint(0, 300),
                           timestamp=clock.now_ms() + rng.randint(-30_000, 30_000))]
        model.add(plog.append(batch), batch, clock.now_ms())
    _check_timestamps(plog, model)


def test_default_timestamps_come_from_the_log_clock(make_log, clock):
    plog = make_log(segment_bytes=4096)
    t0 = clock.now_ms()
    plog.append([NewRecord(None, b"a"), NewRecord(None, b"b", timestamp=5)])
    clock.advance(1234)
    plog.append([NewRecord(None, b"c")])
    assert [r[1] for r in plog.read(0)] == [t0, 5, t0 + 1234]
    assert plog.offset_for_timestamp(t0 + 1) == 2
    assert plog.offset_for_timestamp(6) == 0
    assert plog.offset_for_timestamp(t0 + 1235) is None


# -- close / reopen ---------------------------------------------------------------------------


def test_close_and_reopen_preserves_everything(filled, clock, data_dir, logs):
    plog, model = filled
    bases = segment_bases(data_dir)
    hw = plog.high_watermark
    some_ts = [r.timestamp for r in model.records[::17]]
    before_ts = {t: plog.offset_for_timestamp(t) for t in some_ts}
    plog.close()
    assert plog.closed
    with pytest.raises(Unavailable):
        plog.read(0)
    with pytest.raises(Unavailable):
        plog.append([NewRecord(None, b"late")])

    plog = open_log(data_dir, clock, segment_bytes=8192)
    logs.append(plog)
    assert plog.recovery.dropped_bytes == 0
    assert plog.recovery.high_watermark == hw
    assert plog.recovery.segments == len(bases)
    assert plog.offsets() == (0, hw)
    assert segment_bases(data_dir) == bases
    assert read_all(plog) == model.records
    assert {t: plog.offset_for_timestamp(t) for t in some_ts} == before_ts

    # appending continues at the right offsets, also across rolls
    fill(plog, clock, model, random.Random(99), 60)
    assert read_all(plog) == model.records
    plog.close()
    plog = open_log(data_dir, clock, segment_bytes=8192)
    logs.append(plog)
    assert plog.recovery.dropped_bytes == 0
    assert read_all(plog) == model.records
    for o in range(0, plog.high_watermark, 3):
        assert plog.read(o, max_records=1) == [model.records[o]]


def test_reopening_does_not_change_what_ends_up_on_disk(tmp_path, clock):
    """A log closed and reopened between appends ends with the same files, byte for byte
    (logs and both indexes), as one written in a single session."""
    rng = random.Random(21)
    batches = [[NewRecord(None, b"L" * rng.randint(0, 900), timestamp=1000 + rng.randint(0, 99))
                for _ in range(rng.randint(1, 3))] for _ in range(150)]
    a_dir, b_dir = str(tmp_path / "a"), str(tmp_path / "b")
    a = open_log(a_dir, clock, segment_bytes=8192)
    for batch in batches:
        a.append(batch)
    a.close()
    b = open_log(b_dir, clock, segment_bytes=8192)
    for i, batch in enumerate(batches):
        b.append(batch)
        if i % 7 == 3:
            b.close()
            b = open_log(b_dir, clock, segment_bytes=8192)
            assert b.recovery.dropped_bytes == 0
    b.close()
    names = segment_files(a_dir)
    assert len(names) > 12 and names == segment_files(b_dir)
    for name in names:
        with open(os.path.join(a_dir, name), "rb") as fa:
            with open(os.path.join(b_dir, name), "rb") as fb:
                assert fa.read() == fb.read(), name


def test_close_is_idempotent(make_log):
    plog = make_log(segment_bytes=4096)
    plog.append([NewRecord(None, b"x")])
    plog.close()
    plog.close()
    assert plog.closed


# -- retention --------------------------------------------------------------------------------


def _old_and_new(make_log, clock, old=60, new=30, **cfg):
    """``old`` records stamped 10 days ago, then ``new`` records stamped now."""
    plog = make_log(segment_bytes=4096, **cfg)
    model = Model()
    old_ts = clock.now_ms() - 10 * DAY_MS
    for i in range(old):
        b = [NewRecord(None, b"o" * 200, timestamp=old_ts + i)]
        model.add(plog.append(b), b, clock.now_ms())
    for _ in range(new):
        b = [NewRecord(None, b"n" * 200)]
        model.add(plog.append(b), b, clock.now_ms())
    return plog, model


def test_retention_by_time_deletes_whole_old_segments(make_log, clock, data_dir):
    plog, model = _old_and_new(make_log, clock, retention_ms=DAY_MS)
    bases = segment_bases(data_dir)
    ends = bases[1:] + [plog.high_watermark]
    horizon = clock.now_ms() - DAY_MS
    expired = []
    for base, end in zip(bases, ends):
        if max(r.timestamp for r in model.records[base:end]) >= horizon:
            break
        expired.append(base)
    assert len(expired) >= 2
    new_start = bases[len(expired)]

    assert plog.enforce_retention(clock.now_ms()) == len(expired)
    assert plog.log_start_offset == new_start
    assert plog.offsets() == (new_start, 90)
    assert segment_bases(data_dir) == bases[len(expired):]
    for base in expired:
        for ext in (".log", ".index", ".timeindex"):
            assert not os.path.exists(os.path.join(data_dir, f"{base:020d}{ext}"))
    assert read_all(plog) == model.records[new_start:]
    for o in (0, new_start - 1):
        with pytest.raises(OffsetOutOfRange) as exc:
            plog.read(o)
        assert exc.value.details == {"log_start_offset": new_start, "high_watermark": 90}
    assert plog.read(new_start, max_records=1) == [model.records[new_start]]
    assert plog.offset_for_timestamp(0) == new_start
    # nothing more is due
    assert plog.enforce_retention(clock.now_ms()) == 0
    assert plog.log_start_offset == new_start


def test_retention_by_time_survives_reopen(make_log, clock, data_dir, logs):
    plog, model = _old_and_new(make_log, clock, retention_ms=DAY_MS)
    plog.enforce_retention(clock.now_ms())
    start = plog.log_start_offset
    assert start > 0
    plog.close()
    plog = open_log(data_dir, clock, segment_bytes=4096, retention_ms=DAY_MS)
    logs.append(plog)
    assert plog.offsets() == (start, 90)
    assert read_all(plog) == model.records[start:]
    with pytest.raises(OffsetOutOfRange):
        plog.read(start - 1)


def _assert_emptied(plog, data_dir, hw):
    assert plog.offsets() == (hw, hw)
    assert plog.read(hw) == []
    with pytest.raises(OffsetOutOfRange) as exc:
        plog.read(hw - 1)
    assert exc.value.details == {"log_start_offset": hw, "high_watermark": hw}
    assert segment_bases(data_dir) == [hw]
    assert plog.offset_for_timestamp(0) is None
    assert plog.append([NewRecord(None, b"fresh")]) == hw
    assert [r[3] for r in plog.read(hw)] == [b"fresh"]


def test_expired_single_active_segment_is_rolled_and_deleted(make_log, clock, data_dir):
    plog = make_log(segment_bytes=1 << 20, retention_ms=DAY_MS)
    for _ in range(10):
        plog.append([NewRecord(None, b"x" * 100)])
    assert segment_bases(data_dir) == [0]
    assert plog.enforce_retention(clock.now_ms()) == 0  # not expired yet
    clock.advance(DAY_MS)
    assert plog.enforce_retention(clock.now_ms()) == 0  # exactly at the horizon: kept
    clock.advance(1)
    assert plog.enforce_retention(clock.now_ms()) == 1
    _assert_emptied(plog, data_dir, 10)


def test_everything_expired_across_many_segments_empties_the_log(make_log, clock, data_dir,
                                                                 logs):
    plog, _model = _old_and_new(make_log, clock, retention_ms=DAY_MS)
    segments = len(segment_bases(data_dir))
    assert segments > 3
    clock.advance(2 * DAY_MS)
    assert plog.enforce_retention(clock.now_ms()) == segments
    _assert_emptied(plog, data_dir, 90)
    plog.close()
    plog = open_log(data_dir, clock, segment_bytes=4096, retention_ms=DAY_MS)
    logs.append(plog)
    assert plog.offsets() == (90, 91)
    assert [r[3] for r in read_all(plog)] == [b"fresh"]


def test_enforce_retention_uses_the_log_clock_by_default(make_log, clock):
    plog, _ = _old_and_new(make_log, clock, retention_ms=DAY_MS)
    assert plog.enforce_retention() > 0
    assert plog.log_start_offset > 0


def test_retention_by_size_keeps_at_least_retention_bytes(make_log, clock, data_dir):
    plog = make_log(segment_bytes=4096, retention_ms=-1, retention_bytes=10_000)
    model = Model()
    for i in range(100):
        b = [NewRecord(None, b"%05d" % i + b"s" * 195)]
        model.add(plog.append(b), b, clock.now_ms())
    total = plog.size_bytes
    assert total == sum(model.batch_bytes.values())
    bases = segment_bases(data_dir)
    deleted = plog.enforce_retention(clock.now_ms())
    assert deleted > 0
    remaining = segment_bases(data_dir)
    assert remaining == bases[deleted:]
    size = plog.size_bytes
    assert size >= 10_000
    first_size = os.path.getsize(os.path.join(data_dir, f"{remaining[0]:020d}.log")) - \
        len(batches.FILE_HEADER)
    assert size - first_size < 10_000  # deleting one more would go below the limit
    assert plog.log_start_offset == remaining[0]
    assert read_all(plog) == model.records[remaining[0]:]
    assert plog.enforce_retention(clock.now_ms()) == 0


def test_retention_disabled_keeps_everything(make_log, clock, data_dir):
    plog, model = _old_and_new(make_log, clock, retention_ms=-1, retention_bytes=-1)
    bases = segment_bases(data_dir)
    clock.advance(1000 * DAY_MS)
    assert plog.enforce_retention(clock.now_ms()) == 0
    assert plog.log_start_offset == 0
    assert segment_bases(data_dir) == bases
    assert read_all(plog) == model.records


def test_retention_on_a_closed_log_does_nothing(make_log, clock, data_dir):
    plog, _ = _old_and_new(make_log, clock, retention_ms=DAY_MS)
    bases = segment_bases(data_dir)
    plog.close()
    assert plog.enforce_retention(clock.now_ms()) == 0
    assert segment_bases(data_dir) == bases


# -- flushing ---------------------------------------------------------------------------------


@pytest.fixture
def syncs(monkeypatch):
    """Counts fdatasync calls (the storage engine's durability point)."""
    calls = []
    real = os.fdatasync

    def counting(fd):
        calls.append(fd)
        return real(fd)

    monkeypatch.setattr(os, "fdatasync", counting)
    return calls


def test_flush_policy_always_syncs_before_append_returns(make_log, clock, syncs):
    plog = make_log(segment_bytes=1 << 20, flush_policy="always")
    for i in range(5):
        before = len(syncs)
        plog.append([NewRecord(None, b"x" * 10), NewRecord(None, b"y")])
        assert len(syncs) > before, f"append {i} returned without syncing"
    clock.advance(10 * 1000)
    assert plog.flush_if_due(clock.now_ms()) is False  # nothing left unflushed


def test_flush_policy_interval_by_time(make_log, clock, syncs):
    plog = make_log(segment_bytes=1 << 20, flush_policy="interval", flush_interval_ms=1000)
    assert plog.flush_if_due(clock.now_ms()) is False  # nothing written yet
    t0 = clock.now_ms()
    plog.append([NewRecord(None, b"a")])
    clock.advance(400)
    plog.append([NewRecord(None, b"b")])  # does not restart the interval
    assert syncs == []
    assert plog.flush_if_due(t0 + 999) is False
    assert syncs == []
    assert plog.flush_if_due(t0 + 1000) is True
    assert len(syncs) == 1
    assert plog.flush_if_due(t0 + 5000) is False  # already flushed
    assert len(syncs) == 1
    clock.advance(10_000)
    plog.append([NewRecord(None, b"c")])
    assert plog.flush_if_due() is False  # default: the log clock, just appended
    clock.advance(1000)
    assert plog.flush_if_due() is True
    assert len(syncs) == 2


def test_flush_policy_interval_by_message_count(make_log, clock, syncs):
    plog = make_log(segment_bytes=1 << 20, flush_policy="interval",
                    flush_interval_messages=3, flush_interval_ms=10**9)
    plog.append([NewRecord(None, b"1")])
    plog.append([NewRecord(None, b"2")])
    assert syncs == []
    plog.append([NewRecord(None, b"3")])
    assert len(syncs) == 1
    plog.append([NewRecord(None, b"4"), NewRecord(None, b"5")])
    assert len(syncs) == 1
    plog.append([NewRecord(None, b"6")])
    assert len(syncs) == 2
    clock.advance(10**9)
    assert plog.flush_if_due(clock.now_ms()) is False  # the count flush reset the timer


def test_explicit_flush_resets_the_interval(make_log, clock, syncs):
    plog = make_log(segment_bytes=1 << 20, flush_policy="interval", flush_interval_ms=1000)
    plog.append([NewRecord(None, b"a")])
    plog.flush()
    assert len(syncs) == 1
    clock.advance(5000)
    assert plog.flush_if_due(clock.now_ms()) is False


# -- concurrency ------------------------------------------------------------------------------


def _parse(rec):
    tid, seq, i, k = rec[3].split(b"|")[0].decode().split(":")
    return int(tid), int(seq), int(i), int(k)


def test_concurrent_appenders_and_readers(make_log):
    plog = make_log(segment_bytes=16384)
    writers, readers, per_writer = 4, 4, 120
    errors, bases = [], {t: [] for t in range(writers)}
    start = threading.Barrier(writers + readers)
    done = threading.Event()
    seen_counts = [0] * readers

    def appender(tid):
        try:
            rng = random.Random(tid)
            start.wait()
            for seq in range(per_writer):
                k = rng.randint(1, 5)
                batch = [NewRecord(str(tid).encode(),
                                   f"{tid}:{seq}:{i}:{k}|".encode() + b"p" * rng.randint(0, 600))
                         for i in range(k)]
                bases[tid].append(plog.append(batch))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def reader(rid):
        try:
            pos = 0
            start.wait()
            while True:
                finished = done.is_set()
                got = plog.read(pos, max_records=1 << 30, max_bytes=1 << 40)
                if got:
                    assert [r[0] for r in got] == list(range(pos, pos + len(got)))
                    parsed = [_parse(r) for r in got]
                    # every read starts at a batch start and ends at a batch end
                    assert parsed[0][2] == 0, parsed[0]
                    assert parsed[-1][2] == parsed[-1][3] - 1, parsed[-1]
                    for (t, s, i, k), (t2, s2, i2, k2) in zip(parsed, parsed[1:]):
                        if i + 1 < k:
                            assert (t2, s2, i2, k2) == (t, s, i + 1, k)
                        else:
                            assert i2 == 0
                    pos += len(got)
                    seen_counts[rid] = pos
                if finished:
                    assert pos == plog.high_watermark
                    return
        except BaseException as exc:
            errors.append(exc)
            done.set()

    threads = [threading.Thread(target=appender, args=(t,)) for t in range(writers)]
    threads += [threading.Thread(target=reader, args=(r,)) for r in range(readers)]
    for t in threads:
        t.start()
    for t in threads[:writers]:
        t.join(60)
    done.set()
    for t in threads[writers:]:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    assert not errors, errors

    everything = read_all(plog)
    hw = plog.high_watermark
    assert [r[0] for r in everything] == list(range(hw))
    assert seen_counts == [hw] * readers
    per_thread = {t: [] for t in range(writers)}
    for rec in everything:
        tid, seq, i, k = _parse(rec)
        assert rec[2] == str(tid).encode()
        per_thread[tid].append((seq, i, rec[0]))
    for tid, items in per_thread.items():
        seqs = [(s, i) for s, i, _ in items]
        assert seqs == sorted(seqs)  # each appender's records in its own order
        assert sorted({s for s, _ in seqs}) == list(range(per_writer))  # each exactly once
        assert len(seqs) == len(set(seqs))
        # the base offsets append returned point at the batch starts
        firsts = [off for s, i, off in items if i == 0]
        assert firsts == bases[tid]
    assert sum(len(v) for v in per_thread.values()) == hw
    assert len(segment_bases(plog.directory)) > 5


# -- wake-ups ----------------------------------------------------------------------------------


def test_listeners_are_called_on_append_and_close(make_log):
    plog = make_log(segment_bytes=4096)
    calls = []

    def listener(log):
        calls.append((log, log.high_watermark, log.closed))

    other = []
    plog.add_listener(listener)
    plog.add_listener(other.append)
    plog.append([NewRecord(None, b"a"), NewRecord(None, b"b")])
    assert calls == [(plog, 2, False)]  # called after the records became visible
    plog.append([NewRecord(None, b"c")])
    assert calls[-1] == (plog, 3, False)
    plog.remove_listener(other.append)
    plog.append([NewRecord(None, b"d")])
    assert len(other) == 2 and len(calls) == 3
    plog.close()
    assert calls[-1] == (plog, 4, True) and len(calls) == 4
    assert len(other) == 2
