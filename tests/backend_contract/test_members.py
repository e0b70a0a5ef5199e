"""A session's member through the seam: join, rebalance wake-ups, reads, watches, commits,
manual assignment, leave."""
from __future__ import annotations

import pytest

from consumer_api.errors import OffsetOutOfRange, PartitionNotAssigned, TopicNotFound
from consumer_api.records import NewRecord
from tests.backend_contract.conftest import Wakes, await_assignment, joined
from tests.waiting import wait_until


def member(store, name: str, group: str = "g"):
    wakes = Wakes()
    return store.member(group, name, wakes), wakes


def two_members(store, partitions: int):
    """Topic ``t`` of ``partitions``; member ``a`` joins group ``g``, then ``b``. Returns
    ``(a, a's wakes, a's first assignment, b, b's wakes)``."""
    store.create_topic("t", partitions)
    a, a_wakes = member(store, "a")
    first = joined(a, ["t"], a_wakes)
    b, b_wakes = member(store, "b")
    joined(b, ["t"], b_wakes)
    return a, a_wakes, first, b, b_wakes


def test_a_lone_member_owns_every_partition(store):
    store.create_topic("t", 3)
    m, wakes = member(store, "a")
    got = joined(m, ["t"], wakes)
    assert got.pairs() == [("t", 0), ("t", 1), ("t", 2)]
    assert got.generation >= 0
    assert set(got.since) == set(got.pairs())
    assert m.assignment() == got


def test_joining_an_unknown_topic_is_topic_not_found(store):
    m, _ = member(store, "a")
    with pytest.raises(TopicNotFound):
        m.join(["nope"])


def test_a_second_member_wakes_the_first_and_they_split_the_partitions(store):
    store.create_topic("t", 4)
    a, a_wakes = member(store, "a")
    first = joined(a, ["t"], a_wakes)
    a_wakes.clear()
    b, b_wakes = member(store, "b")
    joined(b, ["t"], b_wakes)
    assert a_wakes.wait(), "the rebalance did not wake the first member"
    a_now = await_assignment(a, a_wakes, lambda x: x.generation > first.generation
                             and len(x.pairs()) == 2, "a's half")
    b_now = await_assignment(b, b_wakes, lambda x: len(x.pairs()) == 2, "b's half")
    assert sorted(a_now.pairs() + b_now.pairs()) == [("t", p) for p in range(4)]


def test_held_since_keeps_the_generation_of_partitions_kept_through_a_rebalance(store):
    a, a_wakes, first, b, b_wakes = two_members(store, 4)
    a_now = await_assignment(a, a_wakes, lambda x: x.generation > first.generation, "a")
    for tp in a_now.pairs():
        assert a_now.since[tp] == first.since[tp]


def test_when_a_member_leaves_the_rest_take_its_partitions(store):
    a, a_wakes, first, b, b_wakes = two_members(store, 2)
    await_assignment(a, a_wakes, lambda x: len(x.pairs()) == 1, "a's half")
    b.leave()
    b.leave()  # idempotent
    assert b.assignment() is None
    assert await_assignment(a, a_wakes, lambda x: len(x.pairs()) == 2, "a owns both").pairs() \
        == [("t", 0), ("t", 1)]


def test_a_watched_partition_wakes_its_member_on_new_records_until_unwatched(store):
    store.create_topic("t", 2)
    m, wakes = member(store, "a")
    joined(m, ["t"], wakes)
    m.reposition("t", 1, 0)  # a new partition is read from where the session says
    m.watch("t", 1)
    store.produce("t", [NewRecord(None, b"x")], [1])
    for _ in range(100):  # woken until the record is there to read
        wakes.clear()
        if m.high_watermark("t", 1) == 1:
            break
        assert wakes.wait(), "no wake-up for the new record"
    records, _taken = m.fetch("t", 1, 0, 10, 1 << 20, 0)
    assert [r[3] for r in records] == [b"x"]
    m.unwatch("t", 1)
    m.unwatch("t", 1)  # harmless
    before = wakes.count
    store.produce("t", [NewRecord(None, b"y")], [1])
    got = wait_until(lambda: m.fetch("t", 1, 1, 10, 1 << 20, 0)[0], "y to be readable")
    assert got[0][3] == b"y"
    assert wakes.count == before


def test_fetch_outside_the_log_is_offset_out_of_range(store):
    store.create_topic("t", 1)
    m, wakes = member(store, "a")
    joined(m, ["t"], wakes)
    m.reposition("t", 0, 5)
    with pytest.raises(OffsetOutOfRange):
        m.fetch("t", 0, 5, 10, 1 << 20, 0)


def test_a_member_commits_what_it_owns_and_reads_it_back(store):
    store.create_topic("t", 2)
    store.produce("t", [NewRecord(None, b"x")] * 4, [0] * 4)
    m, wakes = member(store, "a")
    joined(m, ["t"], wakes)
    m.reposition("t", 0, 2)  # a seek: harmless to a store that does not read ahead
    m.commit({("t", 0): 3})
    assert m.committed([("t", 0), ("t", 1)]) == {("t", 0): 3}
    assert store.committed("g") == {("t", 0): 3}


def test_committing_a_partition_another_member_owns_is_refused_and_commits_nothing(store):
    a, a_wakes, first, b, b_wakes = two_members(store, 2)
    mine = await_assignment(a, a_wakes, lambda x: len(x.pairs()) == 1, "a's half").pairs()[0]
    theirs = ("t", 1 - mine[1])
    with pytest.raises(PartitionNotAssigned):
        a.commit({mine: 0, theirs: 0})
    assert store.committed("g") == {}


def test_a_commit_past_the_high_watermark_is_offset_out_of_range(store):
    store.create_topic("t", 1)
    m, wakes = member(store, "a")
    joined(m, ["t"], wakes)
    with pytest.raises(OffsetOutOfRange):
        m.commit({("t", 0): 1})


def test_a_manually_assigned_member_leaves_the_group_and_owns_what_it_named(store):
    a, a_wakes, first, b, b_wakes = two_members(store, 3)
    manual = b.assign({"t": [2, 0, 2]})
    assert manual.generation == -1 and manual.pairs() == [("t", 0), ("t", 2)]
    assert b.assignment() == manual
    assert await_assignment(a, a_wakes, lambda x: len(x.pairs()) == 3, "a owns all").pairs() \
        == [("t", 0), ("t", 1), ("t", 2)]
    with pytest.raises(PartitionNotAssigned):  # a group member owns it
        b.commit({("t", 0): 0})
    b.leave()
    assert b.assignment() is None


def test_a_manual_member_commits_partitions_no_member_owns(store):
    store.create_topic("t", 1)
    store.produce("t", [NewRecord(None, b"x")] * 2, [0] * 2)
    m, _ = member(store, "solo", group="manual")
    m.assign({"t": [0]})
    m.commit({("t", 0): 2})
    assert store.committed("manual") == {("t", 0): 2}


def test_deleting_a_topic_wakes_its_readers_and_takes_its_partitions(store):
    store.create_topic("t", 1)
    store.create_topic("u", 1)
    m, wakes = member(store, "a")
    joined(m, ["t", "u"], wakes)
    wakes.clear()
    store.delete_topic("t")
    assert wakes.wait()
    assert await_assignment(m, wakes, lambda x: "t" not in x.partitions, "t gone").pairs() \
        == [("u", 0)]
