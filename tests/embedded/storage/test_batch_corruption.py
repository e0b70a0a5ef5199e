"""Damage to logs of segment format 2 (record batches): a batch is the unit of loss.

At the tail of the active segment a damaged or torn batch is dropped whole, with whatever
follows it, and nothing before it; a damaged batch inside a sealed segment (or inside the
active one, behind the tail that recovery checks) is reported as CorruptLog by every read
that reaches its records -- never skipped -- while the records around it still read;
damaged index files cost nothing. The logs are built and checked with the helpers of
``test_corruption.py`` (format 1's tests).
"""
from __future__ import annotations

import os
import random
import struct

import pytest

from consumer_api.embedded.storage import batches
from consumer_api.embedded.storage.partition_log import PartitionLog
from consumer_api.errors import CorruptLog
from consumer_api.records import NewRecord

from .test_corruption import (
    LARGE, KiB, append_and_check, assert_large_segment_reopened, assert_log_is,
    assert_reopens_intact, flip_byte, large_active_segment, norm, patch_file, read_bytes,
    truncate_expected, ts_of)
from .test_corruption import build as build_any


def build(data_dir: str, **kw):
    return build_any(data_dir, segment_format=batches, **kw)


def batches_in(path: str) -> list:
    """``(base_offset, position, size, count)`` of every batch of a format-2 ``.log``."""
    return batches_in_bytes(read_bytes(path))


def batches_in_bytes(data: bytes) -> list:
    assert data.startswith(batches.FILE_HEADER)
    out, pos = [], len(batches.FILE_HEADER)
    while pos < len(data):
        found = batches.header_at(data, pos, len(data))
        assert found is not None, f"test setup: no batch at {pos}"
        out.append((found[0], pos, found[3], found[2]))
        pos += found[3]
    return out


# -- the tail of the active segment ----------------------------------------------------------

@pytest.mark.parametrize("junk_len", [1, 9, 60, 700, 3000])
def test_junk_over_the_active_tail_drops_the_damaged_batches_only(data_dir, junk_len):
    b = build(data_dir, active_min_bytes=4 * KiB, last_batch=6)
    log_path = b.paths("active")[0]
    file_len = os.path.getsize(log_path)
    old = read_bytes(log_path)
    junk = bytearray(random.Random(junk_len).randbytes(junk_len))
    junk[0] = old[file_len - junk_len] ^ 0xFF  # the first junk byte does damage
    junk[-1] = junk[-1] or 1
    patch_file(log_path, file_len - junk_len, bytes(junk))
    first_bad = next(x for x in batches_in_bytes(old) if x[1] + x[2] > file_len - junk_len)

    plog = b.open()
    try:
        assert plog.recovery.reason == "torn"
        assert plog.high_watermark == first_bad[0]
        assert plog.recovery.dropped_bytes == file_len - first_bad[1]
        truncate_expected(b, first_bad[0])
        assert_log_is(plog, b.expected)
    finally:
        plog.close()
    assert os.path.getsize(log_path) == first_bad[1]
    append_and_check(b, first_bad[0])
    assert batches_in(log_path)[-1][0] + batches_in(log_path)[-1][3] == len(b.expected)


#: where in the last batch a byte is flipped: (name, position from the batch's start; a
#: negative one from its end)
FLIPS = [("length", 0), ("crc", 5), ("base_offset", 9), ("count", 17), ("first_ts", 21),
         ("max_ts", 30), ("attributes", 36), ("widths", 37), ("value_length", 38),
         ("data", -40), ("last_byte", -1)]


@pytest.mark.parametrize("where,at", FLIPS, ids=[f[0] for f in FLIPS])
def test_a_flipped_byte_anywhere_in_the_last_batch_drops_that_batch_whole(data_dir, where, at):
    b = build(data_dir, last_batch=7)
    log_path = b.paths("active")[0]
    base, pos, size, count = batches_in(log_path)[-1]
    assert count == 7
    flip_byte(log_path, pos + at if at >= 0 else pos + size + at)
    plog = b.open()
    try:
        assert plog.recovery.reason == "torn"
        assert plog.recovery.dropped_bytes == size
        assert plog.high_watermark == base
        truncate_expected(b, base)
        assert_log_is(plog, b.expected)
    finally:
        plog.close()
    append_and_check(b, base)


@pytest.mark.parametrize("cut", [1, 4, 8, 37, "half", -1])
@pytest.mark.parametrize("preallocated", [False, True])
def test_a_torn_last_batch_is_dropped_whole(data_dir, cut, preallocated):
    """The file ends inside the last batch (as a kill during its write leaves it); with
    ``preallocated`` the rest of the segment's room follows as zeros."""
    b = build(data_dir, last_batch=9)
    log_path = b.paths("active")[0]
    base, pos, size, _count = batches_in(log_path)[-1]
    keep = {"half": size // 2}.get(cut, cut if isinstance(cut, int) and cut > 0 else size - 1)
    os.truncate(log_path, pos + keep)
    # recovery counts what it drops up to the last non-zero byte (zeros are free space)
    dropped = len(read_bytes(log_path)[pos:].rstrip(b"\0"))
    if preallocated:
        os.truncate(log_path, b.config.segment_bytes)
    plog = b.open()
    try:
        assert plog.high_watermark == base
        assert plog.recovery.dropped_bytes == dropped > 0
        truncate_expected(b, base)
        assert_log_is(plog, b.expected)
    finally:
        plog.close()
    assert os.path.getsize(log_path) == pos
    append_and_check(b, base)


def test_a_dropped_batch_does_not_return_behind_a_shorter_one(data_dir):
    """After a torn batch is dropped, a shorter batch written over its start must not make
    the rest of the old one look valid at the next opening."""
    b = build(data_dir, last_batch=10)
    log_path = b.paths("active")[0]
    base, pos, size, _ = batches_in(log_path)[-1]
    flip_byte(log_path, pos + size - 1)
    plog = b.open()
    try:
        assert plog.high_watermark == base
        truncate_expected(b, base)
        b.append(plog, [NewRecord(None, b"short", None, ts_of(base))])
    finally:
        plog.close()
    assert_reopens_intact(b)


# -- a damaged batch that recovery does not look at --------------------------------------------

def _victim(log_path: str, index_path: str, where: str) -> tuple:
    found = batches_in(log_path)
    with open(index_path, "rb") as f:
        indexed = {rel for rel, _pos in struct.iter_unpack("<II", f.read())}
    first = found[0][0]
    if where == "middle":  # a batch no index entry points at
        return next(x for x in found[len(found) // 2:-1] if x[0] - first not in indexed)
    if where == "indexed":
        return next(x for x in found[1:-1] if x[0] - first in indexed)
    return found[0] if where == "first" else found[-1]


@pytest.mark.parametrize("where", ["middle", "first", "last", "indexed"])
@pytest.mark.parametrize("part", ["data", "header"])
def test_a_damaged_batch_in_a_sealed_segment_is_reported_on_every_read_of_it(data_dir, where,
                                                                             part):
    b = build(data_dir, segments=5)
    log_path, index_path, _ = b.paths("sealed")
    base, pos, size, count = _victim(log_path, index_path, where)
    seg = batches_in(log_path)
    first_off, seg_end = seg[0][0], seg[-1][0] + seg[-1][3]
    # "header": the count, so the header no longer adds up (its CRC is wrong too)
    flip_byte(log_path, pos + size - 2 if part == "data" else pos + 17, 0x40)
    plog = b.open()
    try:
        assert plog.recovery.dropped_bytes == 0
        assert plog.high_watermark == len(b.expected)
        for off in (base, base + count - 1):
            with pytest.raises(CorruptLog):
                plog.read(off, max_records=1)
        with pytest.raises(CorruptLog):  # a read across it fails: nothing is skipped
            plog.read(first_off, max_records=10_000, max_bytes=1 << 30)
        if base > first_off:
            got = plog.read(first_off, max_records=base - first_off, max_bytes=1 << 30)
            assert norm(got) == b.expected[first_off:base]
        for off in list(range(0, first_off)) + list(range(base + count, len(b.expected))):
            if part == "header" and first_off <= off < seg_end:
                continue  # a batch after a damaged header cannot be located
            assert norm(plog.read(off, max_records=1)) == [b.expected[off]], off
        got = plog.read(seg_end, max_records=10_000, max_bytes=1 << 30)
        assert norm(got) == b.expected[seg_end:]
        assert plog.append([NewRecord(b"k", b"after", None, ts_of(len(b.expected)))]) == \
            len(b.expected)
    finally:
        plog.close()


def test_a_damaged_batch_inside_the_active_segment_is_reported_not_dropped(data_dir):
    """Recovery checks the tail from the last index entry on; a batch damaged before that
    stays, and reads that reach it fail (the records after it were acknowledged)."""
    b = build(data_dir, active_min_bytes=6 * KiB)
    log_path, index_path, _ = b.paths("active")
    base, pos, size, count = _victim(log_path, index_path, "middle")
    flip_byte(log_path, pos + size - 2)
    plog = b.open()
    try:
        assert plog.recovery.dropped_bytes == 0
        assert plog.high_watermark == len(b.expected)
        with pytest.raises(CorruptLog):
            plog.read(base, max_records=count)
        after = base + count
        assert norm(plog.read(after, max_records=10_000, max_bytes=1 << 30)) == \
            b.expected[after:]
    finally:
        plog.close()


# -- reopening ------------------------------------------------------------------------------
# (damaged index files: test_corruption.py, on both formats)

@pytest.mark.parametrize("tail", ["clean", "crashed", "torn"])
def test_reopen_checks_only_the_tail_of_a_large_active_segment(data_dir, monkeypatch, tail):
    """~32 MiB of batches in one 64 MiB segment: reopening checks the CRCs of a few index
    intervals' worth of batches, not the segment's."""
    config = LARGE
    hw, last, max_batch = large_active_segment(data_dir, tail, batches)
    checked = [0]
    crc_ok = batches.crc_ok

    def counting_crc_ok(buf, pos, n):
        checked[0] += n
        return crc_ok(buf, pos, n)

    monkeypatch.setattr(batches, "crc_ok", counting_crc_ok)
    plog = PartitionLog(data_dir, config)
    try:
        monkeypatch.undo()
        assert 0 < checked[0] <= 3 * config.index_interval_bytes + 3 * max_batch, checked
        assert_large_segment_reopened(plog, tail, hw, last)
    finally:
        plog.close()


# -- reading a large batch a window at a time -------------------------------------------------

def test_reads_going_on_inside_a_batch_check_its_crc_once(data_dir, monkeypatch):
    """A consume reads a window at a time; the batch a read stopped in was checked by it,
    and the read that goes on from there does not check it again -- any other read does."""
    plog = PartitionLog(data_dir, LARGE)
    try:
        records = [NewRecord(None, b"v%03d" % i, None, None) for i in range(100)]
        plog.append(records)
        checks = []
        crc_ok = batches.crc_ok

        def counting_crc_ok(buf, pos, n):
            checks.append(pos)
            return crc_ok(buf, pos, n)

        monkeypatch.setattr(batches, "crc_ok", counting_crc_ok)
        got = []
        while len(got) < 100:
            got += plog.read(len(got), max_records=10)
        assert [r[3] for r in got] == [r.value for r in records]
        assert len(checks) == 1
        plog.read(0, max_records=10)  # not where the last read stopped: checked again
        assert len(checks) == 2
    finally:
        plog.close()
