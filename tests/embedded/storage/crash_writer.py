"""Subprocess for ``test_crash.py`` (not a test module: pytest does not collect it).

Usage: ``python crash_writer.py DATA_DIR SEED ROUND [FAULT]``

Opens a :class:`PartitionLog` on ``DATA_DIR`` and appends batches forever (the test
SIGKILLs it). Batch ``n`` of round ``ROUND`` is :func:`make_batch` ``(SEED, ROUND, n)``, a
pure function, so the test can rebuild the exact records of any batch. Output on stdout,
flushed line by line:

* first ``open HIGH_WATERMARK DROPPED_BYTES`` (what recovery found),
* then ``BASE_OFFSET COUNT BATCH_NO`` once per acknowledged (returned) append,
* with ``FAULT``: ``fault FAULT [DETAIL]`` just before the writer SIGKILLs itself.

A SIGKILL sent from outside nearly always lands in the writer's Python code between two
writes (a write is a memcpy or one pwrite), so ``FAULT`` makes the writer kill itself at
an exact point instead (the classes are patched in this process only):

* ``write:SUFFIX:N:FRAC`` -- the Nth write to a ``.SUFFIX`` file (``log``, ``index``,
  ``timeindex``) stores only its first ``int(len * FRAC)`` bytes, then SIGKILL
  (DETAIL: the number of bytes stored);
* ``call:NAME:N:WHEN`` -- SIGKILL ``before`` or ``after`` the Nth call of ``NAME``:
  ``trim`` (MappedFile.trim: three per roll, log then index then time index),
  ``create`` (a MappedFile made with create=True: three per roll), ``add_marks``
  (Segment.add_marks: once per append, after the log write), ``fsync_dir`` (once per
  roll, after the new segment's files exist).

The writer kills itself anyway (after ``nofault``) if the fault has not fired after
``MAX_BATCHES_WITH_FAULT`` appends.
"""
from __future__ import annotations

import os
import random
import signal
import sys

SEGMENT_BYTES = 64 * 1024
INDEX_INTERVAL_BYTES = 512
#: timestamps are strictly increasing along the log: round, then batch, then record
TS0 = 1_700_000_000_000
ROUND_TS_STRIDE = 10**9
BATCH_TS_STRIDE = 64  # > the largest batch (50 records)
MAX_BATCHES_WITH_FAULT = 5000


def log_config():
    from consumer_api.embedded.storage.partition_log import LogConfig
    return LogConfig(segment_bytes=SEGMENT_BYTES, index_interval_bytes=INDEX_INTERVAL_BYTES)


def make_batch(seed: int, rnd: int, batch_no: int):
    """``(records, clock_ms)`` of batch ``batch_no`` of round ``rnd``: a list of
    ``NewRecord`` and the log clock value to use while appending it (for the records
    that carry no timestamp). Every value starts with ``b"rnd:batch_no:i:k:"``."""
    from consumer_api.records import NewRecord
    rng = random.Random(f"{seed}/{rnd}/{batch_no}")
    k = rng.randint(1, 50)
    base_ts = TS0 + rnd * ROUND_TS_STRIDE + batch_no * BATCH_TS_STRIDE
    explicit_ts = rng.random() < 0.7
    big = rng.random() < 0.15  # some batches of >= 4 KiB (written with pwrite, not the map)
    out = []
    for i in range(k):
        pad = rng.randint(0, 400 if big else 48)
        value = f"{rnd}:{batch_no}:{i}:{k}:".encode() + rng.randbytes(pad) + b"."
        r = rng.random()
        key = None if r < 0.3 else b"" if r < 0.4 else f"key-{batch_no % 13}".encode()
        r = rng.random()
        if r < 0.5:
            headers = None
        elif r < 0.6:
            headers = {}
        else:
            headers = {"id": f"{rnd}:{batch_no}:{i}", "\u00e9t\u00e9": "\u2603" * rng.randint(0, 3)}
        out.append(NewRecord(key, value, headers, base_ts + i if explicit_ts else None))
    return out, base_ts


def expected_records(seed: int, rnd: int, batch_no: int, base_offset: int):
    """What reading batch ``batch_no`` back at ``base_offset`` must give:
    ``(offset, timestamp, key, value, headers)`` tuples, "no headers" as ``{}``."""
    recs, clock_ms = make_batch(seed, rnd, batch_no)
    return [(base_offset + i, clock_ms if r.timestamp is None else r.timestamp, r.key, r.value,
             dict(r.headers or {})) for i, r in enumerate(recs)]


def _die(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def arm(fault: str) -> None:
    """Patch the storage classes so that this process SIGKILLs itself at ``fault``."""
    from consumer_api.embedded.storage import mapped_file, partition_log, segment

    kind, *args = fault.split(":")
    seen = [0]
    if kind == "write":
        suffix, nth, frac = "." + args[0], int(args[1]), float(args[2])
        write = mapped_file.MappedFile.write

        def torn_write(self, pos, data):
            if self.path.endswith(suffix):
                seen[0] += 1
                if seen[0] == nth:
                    cut = int(len(data) * frac)
                    sys.stdout.write(f"fault {fault} {cut}\n")
                    sys.stdout.flush()
                    if cut:
                        write(self, pos, bytes(data[:cut]))
                    _die("killed")
            return write(self, pos, data)

        mapped_file.MappedFile.write = torn_write
        return
    assert kind == "call", fault
    name, nth, when = args[0], int(args[1]), args[2]
    owner, attr, counts = {
        "trim": (mapped_file.MappedFile, "trim", lambda a, kw: True),
        "create": (mapped_file.MappedFile, "__init__",
                   lambda a, kw: (a[4] if len(a) > 4 else kw.get("create", False))),
        "add_marks": (segment.Segment, "add_marks", lambda a, kw: True),
        "fsync_dir": (partition_log.PartitionLog, "_fsync_directory", lambda a, kw: True),
    }[name]
    original = getattr(owner, attr)

    def hooked(*a, **kw):
        hit = False
        if counts(a, kw):
            seen[0] += 1
            hit = seen[0] == nth
        if hit and when == "before":
            _die(f"fault {fault}")
        result = original(*a, **kw)
        if hit:
            _die(f"fault {fault}")
        return result

    setattr(owner, attr, hooked)


def main(argv) -> None:
    directory, seed, rnd = argv[1], int(argv[2]), int(argv[3])
    fault = argv[4] if len(argv) > 4 else None
    from consumer_api.embedded.storage.partition_log import PartitionLog

    clock = [TS0]
    plog = PartitionLog(directory, log_config(), now_ms=lambda: clock[0])
    out = sys.stdout
    out.write(f"open {plog.high_watermark} {plog.recovery.dropped_bytes}\n")
    out.flush()
    if fault:
        arm(fault)
    batch_no = 0
    while True:
        if fault and batch_no >= MAX_BATCHES_WITH_FAULT:
            _die("nofault")
        recs, clock[0] = make_batch(seed, rnd, batch_no)
        base = plog.append(recs)
        out.write(f"{base} {len(recs)} {batch_no}\n")
        out.flush()
        batch_no += 1


if __name__ == "__main__":
    sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..")))
    main(sys.argv)
