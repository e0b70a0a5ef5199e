"""The consumer sessions (ConsumerManager, unchanged) over the Kafka store and a real broker:
a join that completes later, long-polls woken from the pump's thread, commits, seeks, a
second session splitting the group, manual assignment and close."""
from __future__ import annotations

import threading

import pytest

from consumer_api.errors import PartitionNotAssigned
from consumer_api.records import NewRecord
from consumer_api.sessions.manager import ConsumerManager
from tests.kafka.conftest import BOUND_S
from tests.waiting import wait_until



@pytest.fixture
def sessions(kafka):
    manager = ConsumerManager(kafka)
    yield manager
    manager.shutdown()


def produce(store, topic, partition, values):
    return store.produce(topic, [NewRecord(None, v) for v in values], [partition] * len(values))


def values_of(chunks) -> list:
    return [rec[3] for _t, _p, records in chunks for rec in records]


def drain(manager, cid, want: int) -> list:
    """Consume until ``want`` records came (each consume may wait for them)."""
    got: list = []
    for _ in range(20):
        chunks, _enc = manager.consume(cid, timeout_ms=2000)
        got += values_of(chunks)
        if len(got) >= want:
            return got
    raise AssertionError(f"got {len(got)} of {want} records")


def test_subscribe_consume_commit_seek_and_close(kafka, sessions):
    kafka.create_topic("orders", 2)
    produce(kafka, "orders", 0, [b"a", b"b"])
    produce(kafka, "orders", 1, [b"c"])
    body = sessions.subscribe("g", ["orders"], auto_offset_reset="earliest")
    assert body["assignment"] == {"orders": [0, 1]}  # the join completed within the wait
    cid = body["consumer_id"]
    assert sorted(drain(sessions, cid, 3)) == [b"a", b"b", b"c"]
    assert sessions.commit(cid) == {("orders", 0): 2, ("orders", 1): 1}
    assert kafka.committed("g") == {("orders", 0): 2, ("orders", 1): 1}
    sessions.seek(cid, "orders", 0, offset=1)
    assert drain(sessions, cid, 1) == [b"b"]
    sessions.close(cid)
    assert kafka.list_groups()[0]["members"] == []


def test_a_waiting_consume_is_woken_by_a_produce(kafka, sessions):
    kafka.create_topic("orders", 1)
    cid = sessions.subscribe("g", ["orders"])["consumer_id"]
    drained = sessions.consume(cid, timeout_ms=0)[0]
    assert drained == []
    result = {}
    waiting = threading.Thread(target=lambda: result.update(
        chunks=sessions.consume(cid, timeout_ms=int(BOUND_S * 1000))[0]))
    waiting.start()
    produce(kafka, "orders", 0, [b"late"])
    waiting.join(BOUND_S)
    assert not waiting.is_alive()
    assert values_of(result["chunks"]) == [b"late"]


def test_a_rebalance_wakes_a_waiting_consume_onto_the_smaller_assignment(kafka, sessions):
    kafka.create_topic("orders", 2)
    a = sessions.subscribe("g", ["orders"])["consumer_id"]
    assert sessions.get_assignment(a)["assignment"] == {"orders": [0, 1]}
    result = {}
    waiting = threading.Thread(target=lambda: result.update(
        chunks=sessions.consume(a, timeout_ms=int(BOUND_S * 1000))[0]))
    waiting.start()
    b = sessions.subscribe("g", ["orders"])  # the group rebalances: a gives up a partition
    [theirs] = b["assignment"]["orders"]
    wait_until(lambda: len(sessions.get_assignment(a)["assignment"]["orders"]) == 1,
               "a lost a partition")
    produce(kafka, "orders", theirs, [b"for b"])  # no longer watched by a's consume
    produce(kafka, "orders", 1 - theirs, [b"for a"])
    waiting.join(BOUND_S)
    assert not waiting.is_alive()
    assert values_of(result["chunks"]) == [b"for a"]


def test_a_new_member_starts_at_the_groups_commit(kafka, sessions):
    kafka.create_topic("orders", 1)
    produce(kafka, "orders", 0, [b"0", b"1", b"2"])
    first = sessions.subscribe("g", ["orders"], auto_offset_reset="earliest")["consumer_id"]
    assert drain(sessions, first, 3) == [b"0", b"1", b"2"]
    sessions.commit(first, {("orders", 0): 2})
    sessions.close(first)
    second = sessions.subscribe("g", ["orders"], auto_offset_reset="earliest")["consumer_id"]
    assert sessions.positions(second) == {("orders", 0): 2}
    assert drain(sessions, second, 1) == [b"2"]


def test_two_sessions_split_the_group_and_commits_are_fenced(kafka, sessions):
    kafka.create_topic("orders", 2)
    a = sessions.subscribe("g", ["orders"])["consumer_id"]
    b = sessions.subscribe("g", ["orders"])["consumer_id"]
    owned = {}
    for _ in range(100):
        owned = {cid: sessions.get_assignment(cid)["assignment"].get("orders", [])
                 for cid in (a, b)}
        if len(owned[a]) == len(owned[b]) == 1:
            break
        sessions.consume(a, timeout_ms=200)  # heartbeats; wakes come with the rebalance
    assert sorted(owned[a] + owned[b]) == [0, 1]
    theirs = owned[b][0]
    with pytest.raises(PartitionNotAssigned):
        sessions.commit(a, {("orders", theirs): 0})


def test_a_sticky_group_rebalances_without_taking_what_stays(kafka, sessions):
    """cooperative-sticky: a member keeps reading the partitions it keeps through a join
    and a leave; only what moves is revoked."""
    kafka.create_topic("orders", 4)
    a = sessions.subscribe("g", ["orders"], assignor="sticky",
                           auto_offset_reset="earliest")["consumer_id"]
    assert sessions.get_assignment(a)["assignment"] == {"orders": [0, 1, 2, 3]}
    for p in range(4):
        produce(kafka, "orders", p, [b"before-%d" % p])
    assert sorted(drain(sessions, a, 4)) == [b"before-%d" % p for p in range(4)]

    b = sessions.subscribe("g", ["orders"], assignor="sticky",
                           auto_offset_reset="earliest")["consumer_id"]
    mine = wait_until(lambda: (lambda got: len(got) == 2 and got)(
        sessions.get_assignment(a)["assignment"].get("orders", [])), "a kept two")
    theirs = wait_until(lambda: (lambda got: len(got) == 2 and got)(
        sessions.get_assignment(b)["assignment"].get("orders", [])), "b got two")
    assert sorted(mine + theirs) == [0, 1, 2, 3]
    sessions.commit(a)
    for p in range(4):
        produce(kafka, "orders", p, [b"after-%d" % p])
    assert sorted(drain(sessions, a, 2)) == sorted(b"after-%d" % p for p in mine)

    sessions.close(b)
    wait_until(lambda: sessions.get_assignment(a)["assignment"] == {"orders": [0, 1, 2, 3]},
               "a got everything back")
    got = drain(sessions, a, 4)  # b's two: from the group's commit (none), so from the start
    assert sorted(got) == sorted([b"before-%d" % p for p in theirs]
                                 + [b"after-%d" % p for p in theirs])
