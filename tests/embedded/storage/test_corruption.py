"""Corruption recovery: build a log of a few segments, close it, damage its files, reopen.

These logs are of segment format 1 (a frame per record, :mod:`records`), as data
directories written before record batches hold them; format 2's own damage tests are in
``test_batch_corruption.py`` (which reuses the helpers here).

Damage at the tail of the active segment (junk, a flipped byte, a torn batch) must cost
exactly the damaged batch(es) and nothing else; damaged index files must cost nothing at
all (they are rebuilt from the log); a damaged record in a sealed segment must surface as
CorruptLog when read. Every test checks the surviving records one offset at a time, via
both indexes (``read`` and ``offset_for_timestamp``).
"""
from __future__ import annotations

import logging
import os
import random
import struct

import pytest

from consumer_api.embedded.storage import batches, records
from consumer_api.embedded.storage.index import index_paths
from consumer_api.embedded.storage.partition_log import LogConfig, PartitionLog
from consumer_api.embedded.storage.records import HEADER
from consumer_api.records import NewRecord
from consumer_api.errors import CorruptLog, OffsetOutOfRange

KiB, MiB = 1 << 10, 1 << 20
T0 = 1_700_000_000_000
#: small segments and a dense index: a few segments of ~15 index entries each
CONFIG = LogConfig(segment_bytes=16 * KiB, index_interval_bytes=256)


# -- building and inspecting logs ------------------------------------------------------------

def ts_of(offset: int) -> int:
    return T0 + 10 * offset  # strictly increasing, with room between records


def make_records(base: int, count: int, rng: random.Random, value_len: int | None = None) -> list:
    out = []
    for i in range(count):
        offset = base + i
        n = rng.randint(10, 120) if value_len is None else value_len
        value = f"{offset}:".encode() + bytes(rng.choice(b"abcdefghij") for _ in range(n)) + b"."
        if value_len is not None:
            value = value[-value_len:]  # fixed length, whatever the offset's digits
        key = None if offset % 3 == 0 else f"k{offset % 5}".encode()
        headers = {"n": str(offset)} if offset % 4 == 0 else None
        out.append(NewRecord(key, value, headers, ts_of(offset)))
    return out


def as_read(new_records, base: int) -> list:
    """What ``read`` returns for ``new_records`` appended at ``base`` (normalised: see
    :func:`norm`)."""
    return [(base + i, r.timestamp, r.key, r.value, dict(r.headers or {}))
            for i, r in enumerate(new_records)]


def norm(got: list) -> list:
    """Records as read, with "no headers" (None or an empty dict, whichever the codec
    returns) as ``{}``: the headers representation is not what these tests are about."""
    return [(o, ts, k, v, dict(h or {})) for o, ts, k, v, h in got]


class Built:
    """A closed log on disk: ``expected`` records, ``batches`` as ``(base, count)``;
    segments written in ``segment_format``."""

    def __init__(self, data_dir: str, config: LogConfig, segment_format=records):
        self.dir = data_dir
        self.config = config
        self.segment_format = segment_format
        self.expected: list = []
        self.batches: list = []

    def open(self) -> PartitionLog:
        return PartitionLog(self.dir, self.config, segment_format=self.segment_format)

    def append(self, plog: PartitionLog, new_records) -> int:
        base = plog.append(new_records)
        assert base == len(self.expected)
        self.expected.extend(as_read(new_records, base))
        self.batches.append((base, len(new_records)))
        return base

    # files
    def bases(self) -> list:
        return sorted(int(n[:-4]) for n in os.listdir(self.dir)
                      if n.endswith(".log") and len(n) == 24 and n[:20].isdigit())

    def paths(self, which: str) -> tuple:
        """``(log, index, timeindex)`` of the ``"active"`` (last) or a ``"sealed"`` (the
        second) segment."""
        bases = self.bases()
        return index_paths(self.dir, bases[-1] if which == "active" else bases[1])

    def batch_of(self, offset: int) -> tuple:
        for base, count in self.batches:
            if base <= offset < base + count:
                return base, count
        raise AssertionError(offset)


def build(data_dir: str, config: LogConfig = CONFIG, segments: int = 4, seed: int = 7,
          active_min_bytes: int = 4 * KiB, last_batch: int | None = None,
          segment_format=records) -> Built:
    """Append batches of 1..8 records until there are ``segments`` segments and the active
    one holds at least ``active_min_bytes``; with ``last_batch``, end with a batch of that
    many records. Closes the log."""
    rng = random.Random(seed)
    b = Built(data_dir, config, segment_format)
    plog = b.open()
    try:
        while len(plog.segments) < segments or plog.active.size < active_min_bytes:
            b.append(plog, make_records(plog.high_watermark, rng.randint(1, 8), rng))
        if last_batch:
            b.append(plog, make_records(plog.high_watermark, last_batch, rng))
    finally:
        plog.close()
    return b


def frames_from_bytes(data: bytes) -> list:
    """``(offset, position, size, attributes)`` of every frame in ``data`` (intact)."""
    out, pos = [], 0
    while pos + HEADER.size <= len(data):
        length, _crc, offset, _ts, attrs = HEADER.unpack_from(data, pos)[:5]
        if length == 0:
            break
        out.append((offset, pos, length + 4, attrs))
        pos += length + 4
    assert pos == len(data), "test setup: the log does not end on a frame boundary"
    return out


def frames(path: str) -> list:
    """:func:`frames_from_bytes` of a ``.log`` file."""
    return frames_from_bytes(read_bytes(path))


def frame_of(path: str, offset: int) -> tuple:
    return next(f for f in frames(path) if f[0] == offset)


def read_bytes(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def patch_file(path: str, pos: int, data: bytes) -> None:
    with open(path, "r+b") as f:
        f.seek(pos)
        f.write(data)


def flip_byte(path: str, pos: int, mask: int = 0x5A) -> None:
    with open(path, "r+b") as f:
        f.seek(pos)
        old = f.read(1)[0]
        f.seek(pos)
        f.write(bytes([old ^ mask]))


def cut_file(path: str, size: int) -> None:
    os.truncate(path, size)


def assert_log_is(plog: PartitionLog, expected: list) -> None:
    """The log holds exactly ``expected``: bulk reads, a read at every offset, and
    ``offset_for_timestamp`` for every record (exercising both indexes)."""
    hw = len(expected)
    assert plog.high_watermark == hw
    got, off = [], 0
    while off < hw:
        chunk = plog.read(off, max_records=10_000, max_bytes=1 << 30)
        assert chunk, f"nothing read at {off} < high watermark {hw}"
        got.extend(norm(chunk))
        off += len(chunk)
    assert got == expected
    for rec in expected:
        off, ts = rec[0], rec[1]
        assert norm(plog.read(off, max_records=1)) == [rec], f"read at offset {off}"
        assert plog.offset_for_timestamp(ts) == off, f"offset_for_timestamp({ts}) (offset {off})"
        assert plog.offset_for_timestamp(ts - 5) == off
    assert plog.read(hw) == []
    with pytest.raises(OffsetOutOfRange):
        plog.read(hw + 1)
    if expected:
        assert plog.offset_for_timestamp(expected[-1][1] + 1) is None


def append_and_check(b: Built, expected_base: int) -> None:
    """Appending works where recovery left the log, and survives two more reopens."""
    plog = b.open()
    try:
        assert plog.recovery.dropped_bytes == 0
        assert plog.high_watermark == expected_base
        new = make_records(expected_base, 5, random.Random(expected_base))
        assert b.append(plog, new) == expected_base
        assert norm(plog.read(expected_base, max_records=5)) == as_read(new, expected_base)
    finally:
        plog.close()
    for _ in range(2):
        assert_reopens_intact(b)


def assert_reopens_intact(b: Built) -> None:
    """Opening the log again drops nothing and finds exactly ``b.expected``."""
    plog = b.open()
    try:
        assert plog.recovery.dropped_bytes == 0
        assert_log_is(plog, b.expected)
    finally:
        plog.close()


def abandon(plog: PartitionLog) -> None:
    """Let go of an open log the way a killed process does: the active segment's files are
    closed untrimmed (they keep their preallocated size) and nothing else is tidied."""
    for seg in plog.segments:
        if seg._log is None:
            seg.close()
            continue
        _drop(seg._log)
        seg._log, seg.data = None, b""
        for idx in (seg.index, seg.timeindex):
            _drop(idx._file)
            idx._file, idx.map = None, b""
    plog.closed = True


def _drop(mapped) -> None:
    """Close a MappedFile's map and descriptor without trimming the file."""
    mapped.map.close()
    os.close(mapped._fd)


def truncate_expected(b: Built, hw: int) -> None:
    b.expected = b.expected[:hw]
    b.batches = [(base, n) for base, n in b.batches if base + n <= hw]


# -- damage at the tail of the active segment ------------------------------------------------

@pytest.mark.parametrize("junk_len", [1, 9, 60, 700, 3000])
def test_junk_over_the_active_tail_drops_the_damaged_batches_only(data_dir, junk_len):
    b = build(data_dir, active_min_bytes=4 * KiB, last_batch=6)
    log_path = b.paths("active")[0]
    file_len = os.path.getsize(log_path)
    assert junk_len < file_len
    old = read_bytes(log_path)
    old_frames = frames_from_bytes(old)
    rng = random.Random(junk_len)
    junk = bytearray(rng.randbytes(junk_len))
    junk[0] = old[file_len - junk_len] ^ 0xFF  # the first junk byte does damage
    junk[-1] = junk[-1] or 1  # recovery cannot tell trailing zero bytes from free space
    patch_file(log_path, file_len - junk_len, bytes(junk))

    damaged_pos = file_len - junk_len
    first_bad = next(f for f in old_frames if f[1] + f[2] > damaged_pos)
    batch_base, _ = b.batch_of(first_bad[0])
    batch_start = next(f for f in old_frames if f[0] == batch_base)[1]

    plog = b.open()
    try:
        rec = plog.recovery
        assert rec.reason == "torn"
        assert rec.high_watermark == plog.high_watermark == batch_base
        # the dropped bytes: at least the damaged frames, at most those frames' whole
        # batch (a batch is atomic: its intact first frames go too) -- in fact exactly that
        assert file_len - first_bad[1] <= rec.dropped_bytes <= file_len - batch_start
        assert rec.dropped_bytes == file_len - batch_start
        truncate_expected(b, batch_base)
        assert_log_is(plog, b.expected)
    finally:
        plog.close()
    assert os.path.getsize(log_path) == batch_start
    append_and_check(b, batch_base)
    # the junk is gone for good: the log file ends with the appended batch
    assert frames(log_path)[-1][0] == len(b.expected) - 1


def test_junk_after_the_last_batch_is_dropped_and_nothing_else(data_dir):
    """Garbage past the clean end (as in the preallocated part of a segment)."""
    b = build(data_dir)
    log_path = b.paths("active")[0]
    file_len = os.path.getsize(log_path)
    junk = random.Random(1).randbytes(777) + b"\xff"
    patch_file(log_path, file_len, junk)
    plog = b.open()
    try:
        assert plog.recovery.dropped_bytes == len(junk)
        assert plog.recovery.reason == "torn"
        assert_log_is(plog, b.expected)
    finally:
        plog.close()
    assert os.path.getsize(log_path) == file_len
    append_and_check(b, len(b.expected))


@pytest.mark.parametrize("where", ["first_frame_crc", "first_frame_value", "middle",
                                   "middle_length_field", "middle_offset_field",
                                   "last_frame_attributes", "last_byte"])
def test_a_flipped_byte_in_the_last_batch_drops_that_whole_batch(data_dir, where):
    b = build(data_dir, last_batch=9)
    log_path = b.paths("active")[0]
    file_len = os.path.getsize(log_path)
    base, count = b.batches[-1]
    batch_frames = [f for f in frames(log_path) if base <= f[0] < base + count]
    start = batch_frames[0][1]
    mid = batch_frames[len(batch_frames) // 2]
    last = batch_frames[-1]
    pos = {"first_frame_crc": start + 5,
           "first_frame_value": start + batch_frames[0][2] - 3,
           "middle": start + (file_len - start) // 2,
           "middle_length_field": mid[1],
           "middle_offset_field": mid[1] + 8,
           "last_frame_attributes": last[1] + 24,
           "last_byte": file_len - 1}[where]
    flip_byte(log_path, pos)
    plog = b.open()
    try:
        assert plog.high_watermark == base
        assert plog.recovery.dropped_bytes == file_len - start
        truncate_expected(b, base)
        assert_log_is(plog, b.expected)
    finally:
        plog.close()
    append_and_check(b, base)


def test_a_flipped_byte_in_a_single_record_last_batch_drops_only_it(data_dir):
    b = build(data_dir, last_batch=1)
    log_path = b.paths("active")[0]
    base, _ = b.batches[-1]
    _, pos, size, _ = frame_of(log_path, base)
    flip_byte(log_path, pos + size // 2)
    plog = b.open()
    try:
        assert plog.high_watermark == base
        assert plog.recovery.dropped_bytes == size
        truncate_expected(b, base)
        assert_log_is(plog, b.expected)
    finally:
        plog.close()
    append_and_check(b, base)


@pytest.mark.parametrize("cut", ["frame_boundary", "mid_frame_header", "mid_frame_payload",
                                 "last_byte_missing"])
def test_a_torn_last_batch_is_dropped_whole(data_dir, cut):
    b = build(data_dir, last_batch=7)
    log_path = b.paths("active")[0]
    file_len = os.path.getsize(log_path)
    base, count = b.batches[-1]
    batch_frames = [f for f in frames(log_path) if base <= f[0] < base + count]
    start = batch_frames[0][1]
    f3 = batch_frames[3]
    size = {"frame_boundary": f3[1],  # frames 0..2 whole, 3..6 gone
            "mid_frame_header": f3[1] + 20,
            "mid_frame_payload": f3[1] + f3[2] - 2,
            "last_byte_missing": file_len - 1}[cut]
    cut_file(log_path, size)
    intact_end = max(f[1] + f[2] for f in batch_frames if f[1] + f[2] <= size)
    plog = b.open()
    try:
        assert plog.high_watermark == base
        # recovery cannot tell zero bytes of a torn header from unwritten space
        assert intact_end - start <= plog.recovery.dropped_bytes <= size - start
        if cut != "mid_frame_header":
            assert plog.recovery.dropped_bytes == size - start
        truncate_expected(b, base)
        assert_log_is(plog, b.expected)
    finally:
        plog.close()
    append_and_check(b, base)


def test_a_torn_batch_that_starts_at_an_index_entry_then_a_roll(data_dir):
    """With an index entry for every record, the torn batch starts exactly at an entry;
    the log must stay consistent through the recovery, a roll and more reopens."""
    config = LogConfig(segment_bytes=8 * KiB, index_interval_bytes=1)
    b = build(data_dir, config=config, segments=2, active_min_bytes=2 * KiB, last_batch=4)
    log_path = b.paths("active")[0]
    base, _ = b.batches[-1]
    _, pos, size, _ = frame_of(log_path, base + 3)
    cut_file(log_path, pos + size // 2)
    plog = b.open()
    try:
        assert plog.high_watermark == base
        truncate_expected(b, base)
        assert_log_is(plog, b.expected)
    finally:
        plog.close()
    plog = b.open()  # reopen with nothing appended after the recovery
    try:
        assert plog.recovery.dropped_bytes == 0
        assert_log_is(plog, b.expected)
        rng = random.Random(5)
        segments = len(plog.segments)
        while len(plog.segments) < segments + 2:
            b.append(plog, make_records(plog.high_watermark, rng.randint(1, 6), rng))
        assert_log_is(plog, b.expected)
    finally:
        plog.close()
    assert_reopens_intact(b)


# -- stale bytes after a recovery must not come back ----------------------------------------

@pytest.mark.parametrize("stop", ["close", "crash"])
def test_a_shorter_batch_over_a_dropped_longer_one_does_not_resurrect_its_frames(data_dir, stop):
    rng = random.Random(3)
    b = build(data_dir)
    plog = b.open()
    try:  # a last batch of 10 equal-sized frames
        base = b.append(plog, make_records(plog.high_watermark, 10, rng, value_len=50))
    finally:
        plog.close()
    log_path = b.paths("active")[0]
    last = frame_of(log_path, base + 9)
    flip_byte(log_path, last[1] + last[2] - 2)  # tear the last frame; 0..8 stay intact
    plog = b.open()
    try:
        assert plog.high_watermark == base
        truncate_expected(b, base)
        # a shorter batch with frames of the same sizes: frames 3..8 of the old batch
        # would follow it with the very offsets the log expects next
        b.append(plog, make_records(base, 3, rng, value_len=50))
    finally:
        abandon(plog) if stop == "crash" else plog.close()
    for _ in range(2):
        plog = b.open()
        try:
            assert plog.recovery.dropped_bytes == 0
            assert plog.high_watermark == base + 3
            assert_log_is(plog, b.expected)
        finally:
            plog.close()


@pytest.mark.parametrize("stop", ["close", "crash"])
def test_a_dropped_complete_batch_behind_a_torn_one_does_not_resurrect(data_dir, stop):
    """B1 (3 records) is torn, B2 behind it is complete and intact but dropped with it.
    A new batch of B1's exact frame sizes re-fills B1's bytes with B1's offsets: if B2's
    bytes were still on disk they would be a valid next batch. ``crash``: the process dies
    after that append, so nothing trims the file to its real length."""
    rng = random.Random(4)
    b = build(data_dir)
    plog = b.open()
    try:
        b1 = b.append(plog, make_records(plog.high_watermark, 3, rng, value_len=40))
        b2 = b.append(plog, make_records(plog.high_watermark, 4, rng, value_len=40))
    finally:
        plog.close()
    log_path = b.paths("active")[0]
    file_len = os.path.getsize(log_path)
    _, b1_pos, _, _ = frame_of(log_path, b1)
    flip_byte(log_path, frame_of(log_path, b1 + 1)[1] + 30)
    plog = b.open()
    try:
        assert plog.high_watermark == b1
        assert plog.recovery.dropped_bytes == file_len - b1_pos
        truncate_expected(b, b1)
        b.append(plog, make_records(b1, 3, rng, value_len=40))
    finally:
        abandon(plog) if stop == "crash" else plog.close()
    if stop == "crash":
        assert os.path.getsize(log_path) == CONFIG.segment_bytes
    plog = b.open()
    try:
        assert plog.recovery.dropped_bytes == 0
        assert plog.high_watermark == b2 == b1 + 3
        assert_log_is(plog, b.expected)
    finally:
        plog.close()


def test_junk_dropped_by_a_recovery_does_not_return_after_a_crash(data_dir):
    """After a recovery the process dies without closing (the active files stay at their
    preallocated size): the dropped tail must not come back on the next open."""
    b = build(data_dir, last_batch=6)
    log_path = b.paths("active")[0]
    base, _ = b.batches[-1]
    last = frame_of(log_path, base + 5)
    flip_byte(log_path, last[1] + last[2] - 1)
    plog = b.open()
    assert plog.high_watermark == base
    truncate_expected(b, base)
    abandon(plog)
    assert os.path.getsize(log_path) == CONFIG.segment_bytes
    plog2 = b.open()
    try:
        assert plog2.high_watermark == base
        assert plog2.recovery.dropped_bytes == 0
        assert_log_is(plog2, b.expected)
    finally:
        plog2.close()


@pytest.mark.parametrize("segment_format", [records, batches], ids=["format1", "format2"])
@pytest.mark.parametrize("zeros", [0, 4096])
def test_an_empty_segment_file_left_by_a_crash_mid_roll_is_reused(data_dir, segment_format,
                                                                  zeros):
    """A crash right after a roll created the next segment's .log (empty, or preallocated
    zeros: no file header yet, no indexes): it becomes the log's active segment."""
    b = build(data_dir, segment_format=segment_format)
    hw = len(b.expected)
    path = index_paths(data_dir, hw)[0]
    with open(path, "wb") as f:
        f.write(bytes(zeros))
    plog = b.open()
    try:
        assert plog.recovery.dropped_bytes == 0
        assert plog.active.base_offset == hw and plog.active.codec is segment_format
        assert_log_is(plog, b.expected)
    finally:
        plog.close()
    append_and_check(b, hw)
    assert read_bytes(path).startswith(segment_format.FILE_HEADER)


def test_a_sealed_segment_left_last_by_a_crash_mid_roll_takes_appends(data_dir):
    """A crash after sealing the active segment but before creating the next one: the
    sealed segment (with its final time index entry) is last and must accept appends."""
    b = build(data_dir)
    plog = b.open()
    try:
        plog.active.seal()  # the first step of a roll
    finally:
        plog.close()
    _log, index_path, timeindex_path = b.paths("active")
    assert os.path.getsize(timeindex_path) // 16 == os.path.getsize(index_path) // 8 + 1
    append_and_check(b, len(b.expected))


# -- damaged index files: nothing is lost ----------------------------------------------------

def _damage_index(which: str, damage: str, b: Built) -> None:
    _log_path, index_path, timeindex_path = b.paths(which)
    rng = random.Random(damage)
    path = timeindex_path if damage.startswith("timeindex") else index_path
    entry = 16 if path == timeindex_path else 8
    size = os.path.getsize(path) if os.path.exists(path) else 0
    n = size // entry
    assert n >= 6, "test setup: too few index entries"
    if damage.endswith("cut_mid_entry"):
        cut_file(path, (n // 2) * entry + entry // 2)
    elif damage.endswith("cut_to_nothing"):
        cut_file(path, 0)
    elif damage.endswith("zeroed"):
        patch_file(path, 0, bytes(size))
    elif damage.endswith("deleted"):
        os.unlink(path)
    elif damage == "both_deleted":
        os.unlink(index_path)
        os.unlink(timeindex_path)
    elif damage.endswith("random_garbage"):
        patch_file(path, (n // 3) * entry, rng.randbytes(3 * entry))
    elif damage.endswith("garbage_tail"):
        patch_file(path, (n - 2) * entry, rng.randbytes(2 * entry))
    elif damage.endswith("extra_entries"):  # random entries appended past the last
        patch_file(path, size, rng.randbytes(4 * entry))
    elif damage == "index_plausible_garbage":
        # an interior entry moved a few bytes: still strictly increasing, inside the log
        i = n // 2
        rel, pos = struct.unpack_from("<II", read_bytes(path), i * 8)
        patch_file(path, i * 8, struct.pack("<II", rel, pos + 3))
    elif damage == "timeindex_plausible_garbage":
        # an interior entry's timestamp lowered to its predecessor's: still non-decreasing
        data = read_bytes(path)
        i = n // 2
        prev_ts, _ = struct.unpack_from("<qI", data, (i - 1) * 16)
        _, rel = struct.unpack_from("<qI", data, i * 16)
        patch_file(path, i * 16, struct.pack("<qI", prev_ts, rel))  # the CRC stays
    else:
        raise AssertionError(damage)


INDEX_DAMAGE = [
    "index_cut_mid_entry", "timeindex_cut_mid_entry", "index_cut_to_nothing",
    "index_zeroed", "timeindex_zeroed", "index_deleted", "timeindex_deleted", "both_deleted",
    "index_random_garbage", "timeindex_random_garbage", "index_garbage_tail",
    "timeindex_garbage_tail", "index_extra_entries", "timeindex_extra_entries",
    "index_plausible_garbage", "timeindex_plausible_garbage",
]


@pytest.mark.parametrize("damage", INDEX_DAMAGE)
@pytest.mark.parametrize("which", ["active", "sealed"])
@pytest.mark.parametrize("segment_format", [records, batches], ids=["format1", "format2"])
def test_damaged_index_files_are_rebuilt_without_losing_a_record(data_dir, which, damage,
                                                                 segment_format):
    b = build(data_dir, segment_format=segment_format)
    _damage_index(which, damage, b)
    plog = b.open()
    try:
        assert plog.recovery.dropped_bytes == 0
        assert plog.high_watermark == len(b.expected)
        assert_log_is(plog, b.expected)
    finally:
        plog.close()
    append_and_check(b, len(b.expected))


def test_a_rebuilt_sealed_index_is_not_rebuilt_again(data_dir, caplog):
    b = build(data_dir)
    _damage_index("sealed", "index_zeroed", b)
    with caplog.at_level(logging.WARNING):
        b.open().close()
        assert any("rebuilding" in r.getMessage() for r in caplog.records)
        caplog.clear()
        plog = b.open()
        try:
            assert not [r for r in caplog.records if "rebuilding" in r.getMessage()]
            assert_log_is(plog, b.expected)
        finally:
            plog.close()


# -- damage inside a sealed segment ----------------------------------------------------------

@pytest.mark.parametrize("where", [
    "middle", "first", "last",
    "indexed", "middle_and_index_zeroed",
])
def test_a_crc_error_in_a_sealed_segment_raises_corrupt_log_on_read(data_dir, where):
    b = build(data_dir, segments=5)
    log_path, index_path, _ = b.paths("sealed")
    seg_frames = frames(log_path)
    first_off = seg_frames[0][0]
    with open(index_path, "rb") as f:
        entries = list(struct.iter_unpack("<II", f.read()))
    indexed_rels = {rel for rel, _pos in entries}
    if where.startswith("middle"):  # a record no index entry points at
        victim = next(f for f in seg_frames[len(seg_frames) // 2:]
                      if f[0] - first_off not in indexed_rels)
    elif where == "first":
        victim = seg_frames[0]
    elif where == "last":
        victim = seg_frames[-1]
    else:  # the record the first stored index entry points at (checked on open)
        victim = frame_of(log_path, first_off + entries[0][0])
    assert where == "last" or victim != seg_frames[-1], "test setup: victim at the end"
    if where.endswith("index_zeroed"):
        patch_file(index_path, 0, bytes(os.path.getsize(index_path)))
    bad_offset, pos, size, _ = victim
    flip_byte(log_path, pos + size - 2)  # a value byte: framing intact, CRC wrong
    seg_end = seg_frames[-1][0] + 1

    plog = b.open()
    try:
        assert plog.recovery.dropped_bytes == 0
        assert plog.high_watermark == len(b.expected)
        with pytest.raises(CorruptLog):
            plog.read(bad_offset, max_records=1)
        with pytest.raises(CorruptLog):
            plog.read(bad_offset, max_records=100)
        # records of the same segment before it
        if bad_offset > first_off:
            got = plog.read(first_off, max_records=bad_offset - first_off)
            assert norm(got) == b.expected[first_off:bad_offset]
        # every record of the other segments, and the rest of this one
        for off in list(range(0, first_off)) + list(range(bad_offset + 1, len(b.expected))):
            assert norm(plog.read(off, max_records=1)) == [b.expected[off]], off
        got = plog.read(seg_end, max_records=10_000, max_bytes=1 << 30)
        assert norm(got) == b.expected[seg_end:]
        # appending still works
        base = plog.append([NewRecord(b"k", b"after", None, ts_of(len(b.expected)))])
        assert base == len(b.expected)
    finally:
        plog.close()


# -- the cost of reopening -------------------------------------------------------------------

#: one 64 MiB segment, indexed every 4 KiB, for the reopen-cost tests
LARGE = LogConfig(segment_bytes=64 * MiB, index_interval_bytes=4096)


def large_active_segment(data_dir: str, tail: str, segment_format) -> tuple:
    """~32 MiB of batches of 1-4 records of 500-3000 B in one segment of ``LARGE``, closed;
    ``tail`` ``crashed``: the files get back their preallocated size (as after a kill);
    ``torn``: and the last byte is flipped. Returns ``(high watermark, last record, the
    largest batch's bytes)``."""
    rng = random.Random(11)
    plog = PartitionLog(data_dir, LARGE, segment_format=segment_format)
    max_batch = 0
    value = bytes(rng.choice(b"0123456789") for _ in range(3000))
    try:
        while plog.active.size < 32 * MiB:
            n = rng.randint(1, 4)
            off = plog.high_watermark
            batch = [NewRecord(None, value[:rng.randint(500, 3000)], None, ts_of(off + i))
                     for i in range(n)]
            before = plog.active.size
            plog.append(batch)
            max_batch = max(max_batch, plog.active.size - before)
        hw = plog.high_watermark
        last = plog.read(hw - 1)
    finally:
        plog.close()
    assert len(plog.segments) == 1
    log_path, index_path, timeindex_path = index_paths(data_dir, 0)
    size = os.path.getsize(log_path)
    if tail in ("crashed", "torn"):
        os.truncate(log_path, LARGE.segment_bytes)
        for path in (index_path, timeindex_path):
            os.truncate(path, os.path.getsize(path) + 64 * KiB)
    if tail == "torn":
        flip_byte(log_path, size - 1)
    return hw, last, max_batch


@pytest.mark.parametrize("tail", ["clean", "crashed", "torn"])
def test_reopen_scans_only_the_tail_of_a_large_active_segment(data_dir, monkeypatch, tail):
    """~32 MiB of records in one 64 MiB segment; reopening validates a few index intervals'
    worth of frames, not the segment."""
    config = LARGE
    hw, last, max_batch = large_active_segment(data_dir, tail, records)

    counted = {"frame_at": 0, "scan": 0}
    frame_at, scan = records.frame_at, records.scan

    def counting_frame_at(buf, pos, limit):
        found = frame_at(buf, pos, limit)
        counted["frame_at"] += found[3] if found else records.HEADER_SIZE
        return found

    def counting_scan(buf, pos, limit, *args):
        result = scan(buf, pos, limit, *args)
        counted["scan"] += result.scanned_end - pos
        return result

    monkeypatch.setattr(records, "frame_at", counting_frame_at)
    monkeypatch.setattr(records, "scan", counting_scan)
    plog = PartitionLog(data_dir, config, segment_format=records)
    try:
        monkeypatch.undo()
        bound = 3 * config.index_interval_bytes + 2 * max_batch
        assert counted["scan"] > 0 and counted["frame_at"] > 0  # the patches did count
        assert counted["scan"] <= bound, counted
        assert counted["frame_at"] <= bound + max_batch, counted
        assert_large_segment_reopened(plog, tail, hw, last)
    finally:
        plog.close()


def assert_large_segment_reopened(plog: PartitionLog, tail: str, hw: int, last: list) -> None:
    """A reopened :func:`large_active_segment` lost its torn last batch, and only then."""
    if tail == "torn":
        assert 0 < plog.high_watermark < hw
    else:
        assert plog.high_watermark == hw
        assert plog.read(hw - 1) == last


# -- stray files -----------------------------------------------------------------------------

def test_orphan_index_files_are_removed_and_unrelated_files_ignored(data_dir):
    b = build(data_dir)
    orphan = index_paths(data_dir, 999_999)
    for path in orphan[1:]:
        with open(path, "wb") as f:
            f.write(b"\x01" * 24)
    unrelated = ["README", "leader-epoch-checkpoint", "partition.metadata", "server.log",
                 "1.log", "00000000000000000000.log.bak", "00000000000000000000.log.swp",
                 "0000000000000000000x.log", "00000000000000000000.index.tmp", ".hidden"]
    for name in unrelated:
        with open(os.path.join(data_dir, name), "wb") as f:
            f.write(b"not a segment " + name.encode())
    os.mkdir(os.path.join(data_dir, "subdir"))
    plog = b.open()
    try:
        assert plog.recovery.dropped_bytes == 0
        assert [s.base_offset for s in plog.segments] == b.bases()
        assert_log_is(plog, b.expected)
    finally:
        plog.close()
    for path in orphan[1:]:
        assert not os.path.exists(path)
    for name in unrelated:
        with open(os.path.join(data_dir, name), "rb") as f:
            assert f.read() == b"not a segment " + name.encode()
    assert os.path.isdir(os.path.join(data_dir, "subdir"))
    append_and_check(b, len(b.expected))


def test_index_named_files_that_are_not_segment_files_are_left_alone(data_dir):
    b = build(data_dir, segments=2)
    names = ["notes.index", "backup.timeindex", "x.index"]
    for name in names:
        with open(os.path.join(data_dir, name), "wb") as f:
            f.write(b"keep me")
    b.open().close()
    assert sorted(n for n in os.listdir(data_dir) if n in names) == sorted(names)
