"""A data directory written by the release before record batches opens, reads and takes
appends: its format-1 segments are read as they are, new records go to format-2 segments.

``fixtures/release-format1.tar.gz`` was written by that release's own code
(``fixtures/make_release_format1.py``, run from a checkout of it): topic "mixed", 2
partitions of several 2 KiB segments, 150 records with keys, headers, nulls, explicit and
clock timestamps; group "g" has committed offsets.
"""
from __future__ import annotations

import os
import tarfile

import pytest

from consumer_api.config import Config
from consumer_api.embedded.engine import Engine
from consumer_api.embedded.storage import batches, formats, records
from consumer_api.records import NewRecord

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "release-format1.tar.gz")
CLOCK_MS = 1_700_000_000_000  # the clock of the release that wrote the fixture
RECORDS = 150


def written_records() -> dict:
    """What the fixture's writer produced, per partition, as read back."""
    out: dict = {0: [], 1: []}
    for n in range(RECORDS):
        key = None if n % 3 == 0 else b"key-%d" % (n % 5)
        value = None if n % 11 == 10 else b"value-%d-" % n + b"x" * (n % 50)
        headers = {"n": str(n), "\u00fc": "\u2713"} if n % 4 == 0 else None
        ts = CLOCK_MS if n % 2 else CLOCK_MS + 10 * n
        part = out[n % 2]
        part.append((len(part), ts, key, value, headers))
    return out


@pytest.fixture
def release_dir(tmp_path):
    with tarfile.open(FIXTURE) as tar:
        tar.extractall(tmp_path, filter="data")
    return str(tmp_path / "data")


def open_engine(data_dir: str) -> Engine:
    return Engine(Config(data_dir=data_dir, segment_bytes=2048, index_interval_bytes=256),
                  now_ms=lambda: CLOCK_MS + 60_000)


def formats_of(directory: str) -> list:
    """The format of each ``.log`` file in ``directory``, in offset order."""
    out = []
    for name in sorted(n for n in os.listdir(directory) if n.endswith(".log")):
        with open(os.path.join(directory, name), "rb") as f:
            out.append(formats.of_file_start(f.read(formats.PROBE_BYTES), blank=None))
    return out


def read_all(engine: Engine, partition: int) -> list:
    got = engine.read("mixed", partition, 0, 10_000, 1 << 30)
    return [(o, ts, k, v, dict(h) if h else None) for o, ts, k, v, h in got]


def test_the_release_directory_holds_format1_segments_only(release_dir):
    part = os.path.join(release_dir, "topics", "mixed", "0")
    found = formats_of(part)
    assert len(found) >= 3 and set(found) == {records}


def test_every_record_and_commit_reads_back_and_lookups_agree(release_dir):
    engine = open_engine(release_dir)
    try:
        expected = written_records()
        for p in (0, 1):
            assert read_all(engine, p) == expected[p]
            for offset, ts, *_ in expected[p]:
                got = engine.read("mixed", p, offset, 1, 1 << 30)
                assert [r[0] for r in got] == [offset]
                found = engine.offset_for_timestamp("mixed", p, ts)
                assert found <= offset and expected[p][found][1] >= ts
        assert engine.committed("g") == {("mixed", 0): 7, ("mixed", 1): 12}
    finally:
        engine.close()


def test_appends_go_to_format2_segments_and_the_mixed_directory_reopens(release_dir):
    expected = written_records()
    engine = open_engine(release_dir)
    try:
        new = [NewRecord(b"new-key", b"new-%d" % i, {"after": "upgrade"}, CLOCK_MS + 5_000 + i)
               for i in range(10)]
        out = engine.produce("mixed", new, [0] * 10)
        assert [o["offset"] for o in out] == list(range(len(expected[0]), len(expected[0]) + 10))
        engine.set_offsets("g2", {("mixed", 0): 3})
    finally:
        engine.close()
    part0 = os.path.join(release_dir, "topics", "mixed", "0")
    found = formats_of(part0)
    assert found[-1] is batches and records in found
    part1 = os.path.join(release_dir, "topics", "mixed", "1")
    assert formats_of(part1)[-1] is batches  # rolled at opening, though never appended to
    offsets_log = os.path.join(release_dir, "internal", "offsets", "log")
    assert formats_of(offsets_log)[-1] is batches

    engine = open_engine(release_dir)
    try:
        want0 = expected[0] + [(len(expected[0]) + i, r.timestamp, r.key, r.value, r.headers)
                               for i, r in enumerate(new)]
        assert read_all(engine, 0) == want0
        assert read_all(engine, 1) == expected[1]
        # a read across the format boundary, and a timestamp found in the new segment
        boundary = len(expected[0]) - 2
        assert [r[0] for r in engine.read("mixed", 0, boundary, 4, 1 << 30)] == \
            list(range(boundary, boundary + 4))
        assert engine.offset_for_timestamp("mixed", 0, CLOCK_MS + 5_003) == len(expected[0]) + 3
        assert engine.committed("g") == {("mixed", 0): 7, ("mixed", 1): 12}
        assert engine.committed("g2") == {("mixed", 0): 3}
    finally:
        engine.close()
