"""Produce and read through the seam: placement, offsets, windows, timestamps."""
from __future__ import annotations

import pytest

from consumer_api.errors import OffsetOutOfRange, PartitionNotFound, TopicNotFound
from consumer_api.partitioner import partition_for_key
from consumer_api.records import NewRecord

NEEDS = "records"


def values(records) -> list:
    return [r[3] for r in records]


def test_produced_records_read_back_whole_and_in_order(store):
    store.create_topic("t", 1)
    sent = [NewRecord(b"k", b"v0", {"h": "1"}, 1_000), NewRecord(None, b"v1"),
            NewRecord(None, None)]
    out = store.produce("t", sent, [0, 0, 0])
    assert [(o["partition"], o["offset"]) for o in out] == [(0, 0), (0, 1), (0, 2)]
    assert out[0]["timestamp"] == 1_000
    got = store.read("t", 0, None, 10, 1 << 20)
    assert [(r[0], r[2], r[3]) for r in got] == [(0, b"k", b"v0"), (1, None, b"v1"),
                                                (2, None, None)]
    assert got[0][1] == 1_000 and dict(got[0][4]) == {"h": "1"}
    assert not got[1][4]
    assert store.log_offsets("t", 0) == (0, 3)


def test_keys_choose_the_partition_as_kafka_does(store):
    store.create_topic("t", 5)
    keys = [b"user-%d" % i for i in range(20)]
    out = store.produce("t", [NewRecord(k, b"v") for k in keys], [None] * len(keys))
    assert [o["partition"] for o in out] == [partition_for_key(k, 5) for k in keys]


def test_keyless_records_go_round_robin_one_by_one(store):
    store.create_topic("t", 3)
    out = store.produce("t", [NewRecord(None, b"%d" % i) for i in range(7)], [None] * 7)
    parts = [o["partition"] for o in out]
    assert sorted(parts[:3]) == [0, 1, 2]
    assert all(parts[i] != parts[i + 1] for i in range(6))
    assert {p: parts.count(p) for p in set(parts)} in ({0: 3, 1: 2, 2: 2}, {0: 2, 1: 3, 2: 2},
                                                        {0: 2, 1: 2, 2: 3})


def test_a_bad_explicit_partition_appends_nothing(store):
    store.create_topic("t", 2)
    with pytest.raises(PartitionNotFound):
        store.produce("t", [NewRecord(None, b"a"), NewRecord(None, b"b")], [0, 2])
    assert store.log_offsets("t", 0) == (0, 0)


def test_producing_to_a_missing_topic_is_topic_not_found(store):
    with pytest.raises(TopicNotFound):
        store.produce("nope", [NewRecord(None, b"a")], [None])


def test_fetch_gives_the_first_record_whatever_its_size_then_stops_at_max_bytes(store):
    store.create_topic("t", 1)
    store.produce("t", [NewRecord(None, b"x" * 1000) for _ in range(5)], [0] * 5)
    first, taken = store.fetch("t", 0, 0, 10, 10, 0)
    assert values(first) == [b"x" * 1000] and taken > 1000
    more, taken2 = store.fetch("t", 0, 1, 10, taken + 2 * taken, taken)
    assert [r[0] for r in more] == [1, 2] and taken2 == 3 * taken
    none, same = store.fetch("t", 0, 3, 10, taken, taken)
    assert none == [] and same == taken


def test_reading_from_the_high_watermark_is_empty_and_past_it_out_of_range(store):
    store.create_topic("t", 1)
    store.produce("t", [NewRecord(None, b"a")], [0])
    assert store.read("t", 0, 1, 10, 1 << 20) == []
    with pytest.raises(OffsetOutOfRange):
        store.read("t", 0, 2, 10, 1 << 20)


def test_offset_for_timestamp_is_the_first_at_or_after_else_the_high_watermark(store):
    store.create_topic("t", 1)
    store.produce("t", [NewRecord(None, b"a", None, ts) for ts in (100, 200, 300)], [0] * 3)
    assert store.offset_for_timestamp("t", 0, 0) == 0
    assert store.offset_for_timestamp("t", 0, 150) == 1
    assert store.offset_for_timestamp("t", 0, 300) == 2
    assert store.offset_for_timestamp("t", 0, 301) == 3


def test_stats_show_every_partition(store, knows_sizes):
    store.create_topic("t", 2)
    store.produce("t", [NewRecord(None, b"abc")] * 3, [1] * 3)
    stats = store.stats()
    rows = {(p.topic, p.partition): p for p in stats.partitions}
    assert set(rows) == {("t", 0), ("t", 1)}
    assert rows[("t", 1)].high_watermark == 3 and rows[("t", 0)].high_watermark == 0
    assert rows[("t", 1)].log_start_offset == 0
    if knows_sizes:
        assert rows[("t", 1)].size_bytes > 9 and rows[("t", 0)].size_bytes == 0
    else:
        assert rows[("t", 1)].size_bytes is rows[("t", 0)].size_bytes is None
    assert stats.rebalances >= 0


def test_positions_for_times_are_where_each_time_starts(store, knows_sizes):
    store.create_topic("t", 2)
    values = [b"a", b"bb", b"late", b"dddd"]
    stamps = (100, 300, 200, 400)
    store.produce("t", [NewRecord(None, v, None, ts) for v, ts in zip(values, stamps)], [0] * 4)
    got = store.positions_for_times("t", [0, 1], [0, 150, 300, 301, 401])
    assert [offset for offset, _ in got[0]] == [0, 1, 1, 3, 4]  # "late" lies after 300
    assert got[1] == [(0, got[1][0][1])] * 5
    places = [place for _, place in got[0]]
    if knows_sizes:  # the bytes of the records between two positions: one batch, of a
        # 38-byte header, 1-byte value lengths and 2-byte timestamp deltas (storage/batches.py)
        shares = [1 + 2 + len(v) for v in values]
        shares[0] += 38
        assert [b - a for a, b in zip(places, places[1:])] == [
            shares[0], 0, shares[1] + shares[2], shares[3]]
    else:
        assert set(places) == {None}
    with pytest.raises(PartitionNotFound):
        store.positions_for_times("t", [2], [0])
    with pytest.raises(TopicNotFound):
        store.positions_for_times("nope", [0], [0])
