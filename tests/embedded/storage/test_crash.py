"""Crash safety: SIGKILL a writer process at random points, reopen, check every promise.

``crash_writer.py`` appends batches in a loop and prints one line per acknowledged batch.
After each kill the log is reopened in this process and checked: every acknowledged batch
reads back intact at its acknowledged offsets, offsets are dense, batches are atomic (an
unacknowledged batch is either wholly there or not at all), point reads and timestamp
lookups agree, and reopening again changes nothing. Rounds continue the same log.

Two tests: in the first the writer is SIGKILLed from here after a random number of
acknowledgements. Such a kill nearly always lands in the writer's Python code between two
writes (measured: none of 100 kills left a torn batch), so the second test has the writer
SIGKILL itself at exact points -- inside a log write, between the log write and its index
entries, at every step of a segment roll -- to cover the states a kill can leave.
"""
from __future__ import annotations

import bisect
import os
import random
import signal
import subprocess
import sys
import threading

import pytest

from consumer_api.embedded.storage.partition_log import PartitionLog
from consumer_api.errors import OffsetOutOfRange

from . import crash_writer
from .crash_writer import expected_records

WRITER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "crash_writer.py")
PROJECT_ROOT = os.path.abspath(os.path.join(os.path.dirname(WRITER), "..", "..", ".."))

SEED = 0xC0FFEE
ROUNDS = 8
#: the writer is killed after this many acknowledgements (drawn per round)
MIN_ACKS, MAX_ACKS = 3, 1500
#: a stuck writer is killed after this long, failing the test (never reached normally)
WATCHDOG_S = 60


def _run_writer(data_dir: str, rnd: int, stderr_path: str, kill_after: int | None = None,
                fault: str | None = None):
    """Start the writer and collect its acknowledgements until it dies: with
    ``kill_after``, SIGKILL it once that many have arrived (then drain what it printed
    before dying -- those were acknowledged too); with ``fault``, it kills itself.
    Returns ``(open_line, acks, fault_line)``: ``open_line`` is ``(hw, dropped)``, ``acks``
    a list of ``(base_offset, count, batch_no)``, ``fault_line`` the split ``fault`` line
    (None without a fault)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = PROJECT_ROOT + os.pathsep + env.get("PYTHONPATH", "")
    argv = [sys.executable, WRITER, data_dir, str(SEED), str(rnd)] + ([fault] if fault else [])
    with open(stderr_path, "wb") as err:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, env=env)
    watchdog = threading.Timer(WATCHDOG_S, proc.kill)
    watchdog.start()
    acks, fault_line, tail = [], None, []
    try:
        open_line = proc.stdout.readline().split()
        assert open_line and open_line[0] == b"open", _writer_died(proc, stderr_path)
        if kill_after is not None:
            while len(acks) < kill_after:
                line = proc.stdout.readline()
                if not line:
                    pytest.fail(_writer_died(proc, stderr_path))
                acks.append(tuple(int(x) for x in line.split()))
            os.kill(proc.pid, signal.SIGKILL)
        for line in proc.stdout.read().splitlines():  # until the writer is dead
            words = line.split()
            if words[0] in (b"fault", b"killed", b"nofault"):
                tail.append(words)
            else:
                assert not tail, f"acknowledgement {line!r} after {tail}"
                acks.append(tuple(int(x) for x in words))
        rc = proc.wait()
        assert rc == -signal.SIGKILL, _writer_died(proc, stderr_path)
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    if fault:
        assert tail and tail[0][:2] == [b"fault", fault.encode()], f"fault {fault} did not fire: {tail}"
        fault_line = tail[0]
    return (int(open_line[1]), int(open_line[2])), acks, fault_line


def _writer_died(proc, stderr_path) -> str:
    proc.wait()
    with open(stderr_path, "rb") as f:
        return f"writer exited with {proc.returncode}: {f.read().decode(errors='replace')[-3000:]}"


def _norm(got: list) -> list:
    """Records as read, with "no headers" (None or an empty dict, whichever the codec
    returns) as ``{}``: the headers representation is not what this test is about."""
    return [(o, ts, k, v, dict(h or {})) for o, ts, k, v, h in got]


def _read_all(plog: PartitionLog, hw: int) -> list:
    out = []
    while len(out) < hw:
        got = plog.read(len(out), max_records=4000, max_bytes=1 << 30)
        assert got, f"read({len(out)}) returned nothing below the high watermark {hw}"
        out.extend(_norm(got))
    return out


def _check_round(data_dir: str, rnd: int, batches: list, acks: list, rng: random.Random) -> dict:
    """Reopen and verify. ``batches`` lists ``(rnd, batch_no, base, count)`` of everything
    verified in earlier rounds; on success the batches of this round are appended to it."""
    plog = PartitionLog(data_dir, crash_writer.log_config())
    try:
        hw = plog.high_watermark
        assert plog.log_start_offset == 0
        assert plog.recovery.dropped_bytes >= 0
        got = _read_all(plog, hw)
        # offsets are dense from 0 to the high watermark
        assert [r[0] for r in got] == list(range(hw))
        with pytest.raises(OffsetOutOfRange):
            plog.read(hw + 1)
        assert plog.read(hw) == []

        # acknowledgements of this round: consecutive batches, dense offsets
        start = batches[-1][2] + batches[-1][3] if batches else 0
        expected_base = start
        for n, (base, count, batch_no) in enumerate(acks):
            assert (batch_no, base) == (n, expected_base), f"bad acknowledgement {acks[n]}"
            expected_base += count
        acked_end = expected_base
        assert hw >= acked_end, f"acknowledged up to {acked_end}, high watermark is {hw}"

        # everything earlier rounds verified is unchanged; this round's acks are intact
        this_round = [(rnd, b, base, count) for base, count, b in acks]
        for r, b, base, count in batches + this_round:
            want = expected_records(SEED, r, b, base)
            assert len(want) == count
            assert got[base:base + count] == want, f"batch {r}:{b} at {base} differs"

        # the unacknowledged tail: only whole batches, in the writer's order (a kill after
        # an append returned but before its line was printed leaves exactly one)
        pos, batch_no, trailing = acked_end, len(acks), 0
        while pos < hw:
            want = expected_records(SEED, rnd, batch_no, pos)
            assert got[pos:pos + len(want)] == want, (
                f"records {pos}..{hw - 1} past the acknowledged end are not the whole "
                f"batch {rnd}:{batch_no} (a half-visible or foreign batch)")
            this_round.append((rnd, batch_no, pos, len(want)))
            pos += len(want)
            batch_no += 1
            trailing += 1
        assert trailing <= 1

        # random point reads (exercise the indexes) and timestamp lookups
        stamps = [r[1] for r in got]
        for off in rng.sample(range(hw), min(hw, 300)):
            assert _norm(plog.read(off, max_records=1)) == [got[off]]
            assert _norm(plog.read(off, max_records=3, max_bytes=1))[:1] == [got[off]]
            ts = stamps[off]
            assert plog.offset_for_timestamp(ts) == bisect.bisect_left(stamps, ts)
            assert plog.offset_for_timestamp(ts - 1) == bisect.bisect_left(stamps, ts - 1)
        if hw:
            assert plog.offset_for_timestamp(stamps[-1] + 1) is None
        stats = {"dropped": plog.recovery.dropped_bytes, "reason": plog.recovery.reason,
                 "trailing": trailing, "segments": len(plog.segments), "hw": hw}
    finally:
        plog.close()

    # a second reopen finds a clean log with the same contents
    again = PartitionLog(data_dir, crash_writer.log_config())
    try:
        assert again.recovery.dropped_bytes == 0
        assert again.high_watermark == hw
        if hw:
            assert _norm(again.read(hw - 1)) == [got[hw - 1]]
            assert _norm(again.read(0, max_records=1)) == [got[0]]
    finally:
        again.close()
    batches.extend(this_round)
    return stats


def _expected_hw(batches) -> int:
    return batches[-1][2] + batches[-1][3] if batches else 0


def test_sigkilled_writer_loses_no_acknowledged_batch_and_shows_no_partial_batch(tmp_path):
    """The writer is SIGKILLed from here after a random number of acknowledgements."""
    data_dir = str(tmp_path / "p0")
    rng = random.Random(SEED)
    batches: list = []
    history = []
    for rnd in range(ROUNDS):
        kill_after = rng.choice([rng.randint(MIN_ACKS, 20), rng.randint(MIN_ACKS, MAX_ACKS)])
        (open_hw, open_dropped), acks, _ = _run_writer(
            data_dir, rnd, str(tmp_path / f"writer{rnd}.err"), kill_after=kill_after)
        # the previous round's check closed the log cleanly: the writer found it intact
        assert (open_hw, open_dropped) == (_expected_hw(batches), 0)
        assert len(acks) >= kill_after
        history.append(_check_round(data_dir, rnd, batches, acks, rng))
    # the rounds did roll segments (so a kill could land mid-roll)
    assert history[-1]["segments"] > ROUNDS
    print("\ncrash rounds:", history)


def _fault_plan(rng: random.Random) -> list:
    """``(fault, expectation)`` pairs. Expectations: ``"torn"`` (the torn batch is gone,
    recovery dropped at most the bytes stored), ``"whole"`` (the unacknowledged batch was
    fully written: it is there, whole), ``"none"`` (killed before the batch was written)."""
    plan = []
    # a batch's log write cut at a random point (map writes and, for big batches, pwrite)
    for frac in (0.0, 0.999, *(round(rng.random(), 3) for _ in range(4))):
        plan.append((f"write:log:{rng.randint(1, 80)}:{frac}", "torn"))
    # the log write done, the index entries not (or half) written
    plan.append((f"call:add_marks:{rng.randint(1, 80)}:before", "whole"))
    plan.append((f"call:add_marks:{rng.randint(1, 80)}:after", "whole"))
    plan.append((f"write:index:{rng.randint(1, 40)}:0.5", "whole"))
    plan.append((f"write:timeindex:{rng.randint(1, 40)}:0.75", "whole"))
    # every step of a roll: after the final time index entry (before trimming the log),
    # after trimming the log / the index / the time index, after creating the new log /
    # index / time index, around the directory fsync
    for roll in (0, 2):
        for step in (1, 2, 3):
            plan.append((f"call:trim:{3 * roll + step}:before", "none"))
        plan.append((f"call:trim:{3 * roll + 3}:after", "none"))
        for step in (1, 2, 3):
            plan.append((f"call:create:{3 * roll + step}:after", "none"))
        plan.append((f"call:fsync_dir:{roll + 1}:before", "none"))
    plan.append(("call:fsync_dir:2:after", "none"))
    return plan


def test_writer_killed_at_exact_points_mid_write_and_mid_roll(tmp_path):
    """The writer SIGKILLs itself at chosen points (a torn log write, missing index
    entries, each step of a segment roll); every kill leaves a log that recovers to exactly
    the acknowledged batches (plus the one unacknowledged batch when it was fully written)."""
    data_dir = str(tmp_path / "p0")
    rng = random.Random(SEED + 1)
    batches: list = []
    for rnd, (fault, expect) in enumerate(_fault_plan(rng)):
        (open_hw, open_dropped), acks, fault_line = _run_writer(
            data_dir, rnd, str(tmp_path / f"writer{rnd}.err"), fault=fault)
        assert (open_hw, open_dropped) == (_expected_hw(batches), 0)
        stats = _check_round(data_dir, rnd, batches, acks, rng)
        where = f"round {rnd}, fault {fault}: {stats}"
        if expect == "torn":
            stored = int(fault_line[2])
            assert stats["trailing"] == 0, where
            assert stats["dropped"] <= stored, where
            if stored:
                assert stats["dropped"] > 0 and stats["reason"] != "end", where
        elif expect == "whole":
            assert stats["trailing"] == 1 and stats["dropped"] == 0, where
        else:
            assert stats["trailing"] == 0 and stats["dropped"] == 0, where
