"""consumer_api.topic_stats against brute force: random records in several partitions,
timestamps that often go back, many segments, and reads in small windows (so the merge
of the partitions refills them many times)."""
from __future__ import annotations

import random
from collections import Counter

import pytest

from consumer_api.config import Config
from consumer_api.offset_rules import out_of_range
from consumer_api.records import NewRecord
from consumer_api.topic_stats import top_keys as top_keys_module
from consumer_api.topic_stats.buckets import time_buckets
from consumer_api.records import record_size
from consumer_api.topic_stats.top_keys import Bound, top_keys
from consumer_api.topic_stats.window import Window

T0 = 1_000_000
PARTITIONS = 3


@pytest.fixture
def config(data_dir):
    return Config(data_dir=data_dir, segment_bytes=2048, index_interval_bytes=256)


@pytest.fixture
def stored(engine):
    """Records produced to a topic of 3 partitions: ``{partition: [(time, key, size)]}``
    where ``time`` is the largest timestamp so far in the partition."""
    engine.create_topic("t", PARTITIONS)
    rng = random.Random(5)
    model: dict[int, list] = {p: [] for p in range(PARTITIONS)}
    newest = {p: -1 for p in range(PARTITIONS)}
    for i in range(600):
        p = rng.randrange(PARTITIONS)
        ts = T0 + i * 10 + rng.choice([0, 0, 0, -400, -4000, 7])
        key = rng.choice([None, b"a", b"b", b"c", b"key-%d" % rng.randrange(40)])
        value = b"v" * rng.randrange(0, 120)
        headers = {"h": "x" * rng.randrange(3)} if rng.random() < 0.2 else None
        engine.produce("t", [NewRecord(key, value, headers, ts)], [p])
        newest[p] = max(newest[p], ts)
        model[p].append((newest[p], key, record_size((0, 0, key, value, headers)),
                         batch_size(key, value, headers)))
    assert engine.topics.get("t").partition(0).segments[5:]  # several segments each
    return model


def batch_size(key, value, headers) -> int:
    """Bytes of a one-record batch on the embedded store (storage/batches.py): a 38-byte
    header, a 1-byte length per column present (2 for a value of 128 bytes or more), the
    bytes."""
    data = record_size((0, 0, key, value, headers)) - 37
    columns = (1 if len(value) < 128 else 2) + (key is not None) + bool(headers)
    return 38 + columns + data


def in_range(model, partitions, start, end):
    return [r for p in partitions for r in model[p] if start <= r[0] < end]


@pytest.mark.parametrize("bucket_ms", [1, 7, 100, 997, 10_000])
def test_buckets_are_the_records_and_bytes_whose_time_falls_in_them(engine, stored, bucket_ms):
    window = Window(T0 - 50, T0 + 6_100, bucket_ms)
    got = time_buckets(engine, "t", [0, 1, 2], window)
    starts = window.boundaries()[:-1]
    assert len(got["buckets"]) == len(starts)
    assert [total["partition"] for total in got["partitions"]] == [0, 1, 2]
    for bucket, start in zip(got["buckets"], starts):
        inside = in_range(stored, range(PARTITIONS), start, min(start + bucket_ms, window.to_ms))
        assert (bucket["start_ms"], bucket["records"], bucket["bytes"]) == (
            start, len(inside), sum(r[3] for r in inside))
    for total in got["partitions"]:
        inside = in_range(stored, [total["partition"]], window.from_ms, window.to_ms)
        assert (total["records"], total["bytes"]) == (len(inside), sum(r[3] for r in inside))


def expected_keys(stored, start, end, bound: int):
    """What a count bounded at ``bound`` records gives: every record before the time of
    the first one past the bound (in time order, then by partition), or all of them; the
    first ``bound`` when the bound falls in the first millisecond."""
    records = sorted(in_range(stored, range(PARTITIONS), start, end), key=lambda r: r[0])
    stop = end if len(records) <= bound else records[bound][0]
    counted = [r for r in records if r[0] < stop] or records[:bound]
    return Counter(r[1] for r in counted), stop, sum(r[2] for r in counted)


@pytest.mark.parametrize("bound", [1, 50, 333, 10_000])
def test_top_keys_count_in_time_order_up_to_the_bound(engine, stored, bound, monkeypatch):
    monkeypatch.setattr(top_keys_module, "WINDOW_RECORDS", 7)
    start, end = T0 + 500, T0 + 5_500
    got = top_keys(engine, "t", [0, 1, 2], start, end, 100, Bound(bound, 1 << 30))
    counts, stop, size = expected_keys(stored, start, end, bound)
    assert {k["key"]: k["records"] for k in got["keys"]} == counts
    assert (got["scanned_to_ms"], got["scanned_records"], got["scanned_bytes"],
            got["distinct_keys"]) == (stop, sum(counts.values()), size, len(counts))
    assert got["complete"] is (stop == end)
    assert got["stopped_by"] == (None if stop == end else "records")
    ranked = [k["records"] for k in got["keys"]]
    assert ranked == sorted(ranked, reverse=True)


def test_continuing_from_where_the_bound_stopped_covers_the_range_once(engine, stored):
    start, end = T0, T0 + 6_000
    total: Counter = Counter()
    at, answers = start, 0
    while at < end:
        got = top_keys(engine, "t", [0, 1, 2], at, end, 100, Bound(97, 1 << 30))
        total.update({k["key"]: k["records"] for k in got["keys"]})
        at, answers = got["scanned_to_ms"], answers + 1
    assert total == expected_keys(stored, start, end, 1 << 30)[0]
    assert answers > 5


class Shrinking:
    """A store whose partition 0 held offsets 0..4, stamped 10..14, when the range was looked
    up; it reads two records at a time. After the first read, retention deletes the first
    ``deleted`` records, or (``remade``) the topic is deleted and made again, empty."""

    def __init__(self, deleted: int = 0, remade: bool = False):
        self.deleted, self.remade, self.reads = deleted, remade, 0

    def positions_for_times(self, topic, partitions, timestamps):
        return {0: [(0, None), (5, None)]}

    def fetch(self, topic, partition, offset, max_records, max_bytes, taken):
        start, end = 0, 5
        if self.reads:
            start, end = (0, 0) if self.remade else (self.deleted, 5)
        self.reads += 1
        if not start <= offset <= end:
            raise out_of_range(topic, partition, offset, start, end)
        return [(o, 10 + o, b"k", b"", None) for o in range(offset, min(offset + 2, end))], taken


@pytest.mark.parametrize("store, counted", [
    (Shrinking(), 5), (Shrinking(deleted=4), 3), (Shrinking(remade=True), 2)])
def test_records_deleted_during_a_count_are_not_counted(store, counted):
    got = top_keys(store, "t", [0], 0, 100, 10, Bound(100, 1 << 20))
    assert (got["scanned_records"], got["complete"]) == (counted, True)
