"""A full disk: appends fail with StorageFull before anything is written, the process keeps
running, and every acknowledged record survives.

(a) simulates ENOSPC by patching ``os.posix_fallocate`` as the mapped files call it;
(b) fills a real 2 MiB tmpfs (needs root; skipped otherwise) in a subprocess, so that a SIGBUS
from writing into an unreserved mapped page would show up as a killed child.
"""
from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import consumer_api
from consumer_api.embedded.storage import mapped_file
from consumer_api.embedded.storage.partition_log import LogConfig, PartitionLog
from consumer_api.records import NewRecord, Record
from consumer_api.errors import StorageFull

EVERYTHING = dict(max_records=1 << 30, max_bytes=1 << 40)
MiB = 1 << 20


# -- helpers ------------------------------------------------------------------------------------


class DiskFault:
    """Makes ``posix_fallocate`` (as mapped_file calls it) fail with ``err`` while ``full``
    (only for files whose path contains ``only``, when given)."""

    def __init__(self, monkeypatch, err=errno.ENOSPC, only=None):
        self.full = False
        self.err = err
        self.failures = 0
        real = mapped_file.os.posix_fallocate

        def fallocate(fd, offset, length):
            if self.full and (only is None or only in os.readlink(f"/proc/self/fd/{fd}")):
                self.failures += 1
                raise OSError(self.err, os.strerror(self.err))
            return real(fd, offset, length)

        monkeypatch.setattr(mapped_file.os, "posix_fallocate", fallocate)


def segment_bases(directory):
    return sorted(int(n[:-4]) for n in os.listdir(directory) if n.endswith(".log"))


def read_all(plog):
    out, pos = [], plog.log_start_offset
    while pos < plog.high_watermark:
        got = plog.read(pos, **EVERYTHING)
        assert got
        out.extend(got)
        pos = got[-1][0] + 1
    return out


class Acked:
    def __init__(self):
        self.records = []

    def add(self, base, batch, now):
        assert base == len(self.records)
        self.records += [Record(base + i, now, r.key, r.value,
                                dict(r.headers) if r.headers else None)
                         for i, r in enumerate(batch)]


def value_batch(n, size, tag):
    return [NewRecord(f"{tag}-{i}".encode(), bytes([i % 251]) * size, {"tag": tag})
            for i in range(n)]


# Where the disk fills up:
#   growth   -- while the active segment extends its block reservation (segments > 1 MiB);
#   roll     -- when a full segment is rolled and the new one cannot be created;
#   oversize -- when a batch larger than segment_bytes needs a segment of its own;
#   empty    -- the same, on a log whose active segment is still empty.
CASES = {
    "growth": dict(segment_bytes=4 * MiB, prefill=3,
                   batch=lambda i: value_batch(2, 32 * 1024, f"g{i}")),
    "roll": dict(segment_bytes=64 * 1024, prefill=5, batch=lambda i: value_batch(1, 1000, f"r{i}")),
    "oversize": dict(segment_bytes=64 * 1024, prefill=5,
                     batch=lambda i: value_batch(3, 30 * 1024, f"o{i}")),
    "empty": dict(segment_bytes=64 * 1024, prefill=0,
                  batch=lambda i: value_batch(3, 30 * 1024, f"e{i}")),
}

def _fill_until_full(plog, clock, case, fault):
    """Prefill, turn the fault on, then append until StorageFull. Returns the acked model."""
    acked = Acked()
    for i in range(case["prefill"]):
        batch = value_batch(2, 700, f"pre{i}")
        acked.add(plog.append(batch), batch, clock.now_ms())
    fault.full = True
    for i in range(1000):
        batch = case["batch"](i)
        try:
            base = plog.append(batch)
        except StorageFull as exc:
            assert exc.code == "insufficient_storage"
            assert fault.failures > 0
            return acked
        acked.add(base, batch, clock.now_ms())
    pytest.fail("StorageFull was never raised")


def _reopen(directory, clock, case):
    return PartitionLog(directory, LogConfig(segment_bytes=case["segment_bytes"],
                                             index_interval_bytes=256),
                        now_ms=clock.now_ms)


@pytest.mark.parametrize("name", list(CASES))
def test_storage_full_rejects_the_batch_and_keeps_acknowledged_records(
        name, data_dir, clock, monkeypatch):
    case = CASES[name]
    fault = DiskFault(monkeypatch)
    plog = _reopen(data_dir, clock, case)
    try:
        acked = _fill_until_full(plog, clock, case, fault)
        hw = len(acked.records)
        bases = segment_bases(data_dir)
        # nothing of the failed batch is visible
        assert plog.high_watermark == hw
        assert plog.offsets() == (0, hw)
        assert read_all(plog) == acked.records
        assert plog.read(hw) == []
        if hw:
            assert plog.offset_for_timestamp(0) == 0
    finally:
        plog.close()
    # no half-created segment is left behind
    assert segment_bases(data_dir) == bases
    fault.full = False
    plog = _reopen(data_dir, clock, case)
    try:
        assert plog.recovery.dropped_bytes == 0
        assert plog.offsets() == (0, hw)
        assert read_all(plog) == acked.records
    finally:
        plog.close()


@pytest.mark.parametrize("name", list(CASES))
def test_appends_resume_once_the_disk_has_room(name, data_dir, clock, monkeypatch):
    """Regressions: a failed roll used to leave the sealed segment last (every later append
    raised AttributeError), and a failed replacement of an empty active segment left the
    log without segments (IndexError everywhere)."""
    case = CASES[name]
    fault = DiskFault(monkeypatch)
    plog = _reopen(data_dir, clock, case)
    try:
        acked = _fill_until_full(plog, clock, case, fault)
        hw = len(acked.records)
        # still full: the next attempt fails the same way, and changes nothing
        with pytest.raises(StorageFull):
            plog.append(case["batch"](10_000))
        assert plog.high_watermark == hw
        # room again
        fault.full = False
        for i in range(3):
            batch = case["batch"](20_000 + i)
            base = plog.append(batch)
            assert base == len(acked.records)
            acked.add(base, batch, clock.now_ms())
        assert read_all(plog) == acked.records
    finally:
        plog.close()
    plog = _reopen(data_dir, clock, case)
    try:
        assert plog.recovery.dropped_bytes == 0
        assert read_all(plog) == acked.records
        batch = value_batch(1, 10, "after-reopen")
        assert plog.append(batch) == len(acked.records)
    finally:
        plog.close()


@pytest.mark.parametrize("err", [errno.ENOSPC, errno.EDQUOT, errno.EFBIG])
def test_quota_and_size_limits_are_storage_full(err, data_dir, clock, monkeypatch):
    case = CASES["growth"]
    fault = DiskFault(monkeypatch, err)
    plog = _reopen(data_dir, clock, case)
    try:
        acked = _fill_until_full(plog, clock, case, fault)
        assert read_all(plog) == acked.records
    finally:
        plog.close()


def test_other_io_errors_are_not_reported_as_storage_full(data_dir, clock, monkeypatch):
    case = CASES["growth"]
    fault = DiskFault(monkeypatch, errno.EIO)
    plog = _reopen(data_dir, clock, case)
    try:
        batch = value_batch(2, 700, "x")
        plog.append(batch)
        fault.full = True
        with pytest.raises(OSError) as exc:
            for i in range(100):
                plog.append(case["batch"](i))
        assert not isinstance(exc.value, StorageFull)
        assert exc.value.errno == errno.EIO
    finally:
        plog.close()


def test_new_log_on_a_full_disk_raises_storage_full(data_dir, clock, monkeypatch):
    fault = DiskFault(monkeypatch)
    fault.full = True
    directory = os.path.join(data_dir, "p0")
    with pytest.raises(StorageFull):
        PartitionLog(directory, LogConfig(segment_bytes=64 * 1024), now_ms=clock.now_ms)
    assert segment_bases(directory) == []
    fault.full = False
    plog = PartitionLog(directory, LogConfig(segment_bytes=64 * 1024), now_ms=clock.now_ms)
    try:
        assert plog.append([NewRecord(None, b"ok")]) == 0
    finally:
        plog.close()


# -- (b) a real, small filesystem ----------------------------------------------------------------

PROJECT_ROOT = str(Path(consumer_api.__file__).resolve().parents[1])

FILLER = textwrap.dedent("""
    import json, sys
    from consumer_api.embedded.storage.partition_log import LogConfig, PartitionLog
    from consumer_api.records import NewRecord
    from consumer_api.errors import StorageFull

    directory, now, segment_bytes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    plog = PartitionLog(directory, LogConfig(segment_bytes=segment_bytes), now_ms=lambda: now)
    acked, full = 0, False
    for _ in range(100_000):
        batch = [NewRecord(b"%d" % (acked + j), b"%08d" % (acked + j) * 125) for j in range(3)]
        try:
            base = plog.append(batch)
        except StorageFull:
            full = True
            break
        assert base == acked, (base, acked)
        acked += len(batch)
    hw = plog.high_watermark
    last = plog.read(acked - 1) if acked else []
    plog.close()
    print(json.dumps({"storage_full": full, "acked": acked, "hw": hw,
                      "last_ok": bool(last) and last[0][2] == b"%d" % (acked - 1)}))
""")

CHECKER = textwrap.dedent("""
    import json, sys
    from consumer_api.embedded.storage.partition_log import LogConfig, PartitionLog

    directory, now, segment_bytes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    plog = PartitionLog(directory, LogConfig(segment_bytes=segment_bytes), now_ms=lambda: now)
    pos, bad, count = 0, [], 0
    while pos < plog.high_watermark:
        for off, ts, key, value, headers in plog.read(pos, 100_000, 1 << 40):
            if off != count or key != b"%d" % off or value != b"%08d" % off * 125 or ts != now:
                bad.append(off)
            count += 1
            pos = off + 1
    print(json.dumps({"hw": plog.high_watermark, "start": plog.log_start_offset,
                      "count": count, "bad": bad[:10],
                      "dropped": plog.recovery.dropped_bytes}))
    plog.close()
""")


def _run(script, directory, clock, segment_bytes):
    env = dict(os.environ, PYTHONPATH=PROJECT_ROOT)
    proc = subprocess.run([sys.executable, "-c", script, directory, str(clock.now_ms()),
                           str(segment_bytes)],
                          capture_output=True, text=True, timeout=120, env=env, cwd=PROJECT_ROOT)
    assert proc.returncode == 0, (
        f"child exited with {proc.returncode} (negative = killed by signal)\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture
def small_fs(tmp_path):
    mnt = tmp_path / "small_fs"
    mnt.mkdir()
    try:
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)],
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"cannot mount a tmpfs: {exc}")
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {proc.stderr.strip()}")
    try:
        yield str(mnt)
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True, timeout=30)


@pytest.mark.parametrize("segment_bytes, min_segments", [
    (256 * 1024, 4),  # many segments: the disk fills up when a roll needs a new one
    (4 * MiB, 1),  # one segment bigger than the disk: it fills up while the segment grows
], ids=["roll", "growth"])
def test_filling_a_real_filesystem_raises_storage_full(small_fs, clock, segment_bytes,
                                                       min_segments):
    directory = os.path.join(small_fs, "topic-0")
    filled = _run(FILLER, directory, clock, segment_bytes)
    assert filled["storage_full"] is True, filled
    assert filled["hw"] == filled["acked"]
    assert filled["last_ok"]
    assert filled["acked"] * 1000 > MiB, filled  # the disk, not something else, was the limit
    assert len(segment_bases(directory)) >= min_segments

    checked = _run(CHECKER, directory, clock, segment_bytes)
    assert checked == {"hw": filled["acked"], "start": 0, "count": filled["acked"], "bad": [],
                       "dropped": 0}


# -- a produce over several partitions ------------------------------------------------------

@pytest.mark.parametrize("full", [0, 1, 2], ids=lambda p: f"full-at-partition-{p}")
@pytest.mark.parametrize("keyed", [False, True], ids=["round-robin", "keyed"])
def test_a_full_disk_stores_no_partitions_share_of_a_produce(keyed, full, engine, monkeypatch):
    """The disk fills while one partition's share is being placed: no share of the request
    is stored (a retry must not duplicate the others), and the retry stores each once."""
    engine.create_topic("t", 3)
    fault = DiskFault(monkeypatch, only=os.sep.join(("", "topics", "t", str(full), "")))
    # ~100 KiB per partition: more than a new segment has reserved, so every share grows
    records = [(f"k{i}".encode() if keyed else None, bytes([i % 251]) * 1000, None, None)
               for i in range(300)]
    produce = lambda: engine.produce("t", records, [None] * len(records))  # noqa: E731
    fault.full = True
    with pytest.raises(StorageFull):
        produce()
    assert fault.failures > 0
    assert [engine.log_offsets("t", p) for p in range(3)] == [(0, 0)] * 3
    fault.full = False
    out = produce()
    assert sorted({o["partition"] for o in out}) == [0, 1, 2]
    stored = sorted(r[3] for p in range(3) for r in engine.read("t", p, 0, 1000, 1 << 30))
    assert stored == sorted(r[1] for r in records)
