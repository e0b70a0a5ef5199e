"""Fair shares of the consumer manager: waiting-poll slots (server-wide and per client) and
consumer sessions per client.

A consume that would wait (it found nothing and its timeout_ms > 0) holds a slot for its wait
and gives it back however the wait ends; past a cap it is refused at once with
TooManyPolls. A consume that returns records, or has timeout 0, never needs a slot. The fake
clock stays frozen unless a test moves it; every wait on another thread is bounded.
"""
from __future__ import annotations

import pytest

from consumer_api.errors import (ConsumerNotFound, GroupNotFound, TooManyConsumers, TooManyPolls,
                                 TopicNotFound)
from consumer_api.sessions.quota import ClientQuota
from tests.sessions.conftest import offsets_of, produce
from tests.waiting import wait_until

ALICE = ClientQuota("address 10.0.0.1", max_sessions=100, max_polls=2)
BOB = ClientQuota("address 10.0.0.2", max_sessions=100, max_polls=2)


def waiting(manager, n):
    wait_until(lambda: manager.waiting() == n, f"{n} waiting consume(s)")


def sessions(manager, n, client=None, prefix="g"):
    """``n`` sessions on topic t, each alone in its group (starting at the end of t)."""
    return [manager.subscribe(f"{prefix}{i}", ["t"], client=client)["consumer_id"]
            for i in range(n)]


@pytest.fixture
def topic(engine):
    engine.create_topic("t", 1)
    return "t"


# -- the server's slots ---------------------------------------------------------------------

def test_without_a_limit_any_number_of_consumes_may_wait(manager, topic, bg):
    polls = [bg.consume(cid) for cid in sessions(manager, 20)]
    waiting(manager, 20)
    assert all(p.alive() for p in polls)


def test_past_the_server_limit_a_consume_that_would_wait_is_refused_at_once(manager, topic,
                                                                            bg):
    manager.limit_waiting_polls(2)
    a, b, c = sessions(manager, 3)
    first, second = bg.consume(a), bg.consume(b)
    waiting(manager, 2)
    with pytest.raises(TooManyPolls) as refused:
        manager.consume(c, timeout_ms=30_000)
    assert refused.value.code == "too_many_polls"
    assert refused.value.details == {"limit": 2, "scope": "server"}
    assert manager.waiting() == 2 and first.alive() and second.alive()
    # timeout 0 never waits: never refused
    assert manager.consume(c, timeout_ms=0)[0] == []


def test_a_consume_that_finds_records_needs_no_slot(engine, manager, topic, bg):
    manager.limit_waiting_polls(1)
    a, b = sessions(manager, 2)
    poll = bg.consume(a)
    waiting(manager, 1)
    produce(engine, "t", 0, 1)  # wakes a; b finds the record too (its own group)
    assert offsets_of(poll.result()) == [("t", 0, 0)]
    poll = bg.consume(a)
    waiting(manager, 1)
    chunks, _ = manager.consume(b, timeout_ms=30_000)
    assert offsets_of(chunks) == [("t", 0, 0)]


def test_a_refused_consume_takes_no_record_and_a_later_one_gets_it(engine, manager, topic, bg):
    manager.limit_waiting_polls(1)
    a, b = sessions(manager, 2)
    bg.consume(a)
    waiting(manager, 1)
    with pytest.raises(TooManyPolls):
        manager.consume(b, timeout_ms=30_000)
    assert manager.positions(b) == {("t", 0): 0}
    produce(engine, "t", 0, 1)
    assert offsets_of(manager.consume(b, timeout_ms=30_000)[0]) == [("t", 0, 0)]


def test_the_slot_is_back_when_records_end_the_wait(engine, manager, topic, bg):
    manager.limit_waiting_polls(1)
    (a,) = sessions(manager, 1)
    poll = bg.consume(a)
    waiting(manager, 1)
    produce(engine, "t", 0, 1)
    poll.result()
    assert manager.waiting() == 0
    (b,) = sessions(manager, 1, prefix="later")  # starts after that record
    bg.consume(b)
    waiting(manager, 1)


def test_the_slot_is_back_when_the_timeout_ends_the_wait(manager, topic, clock, bg):
    manager.limit_waiting_polls(1)
    a, b = sessions(manager, 2)
    poll = bg.consume(a, timeout_ms=200)
    waiting(manager, 1)
    clock.advance(200)  # its real 200 ms wait ends, and the deadline has passed
    assert poll.result() == []
    assert manager.waiting() == 0
    bg.consume(b)
    waiting(manager, 1)


def test_the_slot_is_back_when_a_close_ends_the_wait(manager, topic, bg):
    manager.limit_waiting_polls(1)
    a, b = sessions(manager, 2)
    poll = bg.consume(a)
    waiting(manager, 1)
    manager.close(a)
    with pytest.raises(ConsumerNotFound):
        poll.result()
    assert manager.waiting() == 0
    bg.consume(b)
    waiting(manager, 1)


def test_the_slot_is_back_when_an_error_ends_the_wait(engine, manager, topic, bg):
    manager.limit_waiting_polls(1)
    (a,) = sessions(manager, 1)

    def broken_check():
        raise RuntimeError("the client check failed")

    poll = bg.consume(a, abandoned=broken_check)
    waiting(manager, 1)
    produce(engine, "t", 0, 1)  # wakes it: its check of the client fails
    with pytest.raises(RuntimeError):
        poll.result()
    assert manager.waiting() == 0
    (b,) = sessions(manager, 1, prefix="later")  # starts after that record
    bg.consume(b)
    waiting(manager, 1)


def test_the_slots_are_back_when_shutdown_ends_the_waits(manager, topic, bg):
    manager.limit_waiting_polls(3)
    polls = [bg.consume(cid) for cid in sessions(manager, 3)]
    waiting(manager, 3)
    manager.shutdown()
    assert [p.result() for p in polls] == [[]] * 3
    assert manager.waiting() == 0


def test_a_newer_consume_on_the_session_takes_over_the_slot(engine, manager, topic, bg):
    """A client retrying a poll it gave up on is served even when every slot is taken:
    the retry ends the abandoned poll and waits in its slot."""
    manager.limit_waiting_polls(1)
    (a,) = sessions(manager, 1, client=ClientQuota("address 10.0.0.9", 10, 1))
    old = bg.consume(a, client=ClientQuota("address 10.0.0.9", 10, 1))
    waiting(manager, 1)
    retry = bg.consume(a, client=ClientQuota("address 10.0.0.9", 10, 1))
    assert old.result() == []
    waiting(manager, 1)
    produce(engine, "t", 0, 1)
    assert offsets_of(retry.result()) == [("t", 0, 0)]
    assert manager.waiting() == 0


def test_raising_the_limit_admits_more_and_lowering_it_keeps_those_waiting(manager, topic,
                                                                           bg):
    manager.limit_waiting_polls(1)
    a, b, c = sessions(manager, 3)
    first = bg.consume(a)
    waiting(manager, 1)
    manager.limit_waiting_polls(2)
    bg.consume(b)
    waiting(manager, 2)
    manager.limit_waiting_polls(1)
    assert first.alive()
    with pytest.raises(TooManyPolls):
        manager.consume(c, timeout_ms=30_000)
    with pytest.raises(ValueError):
        manager.limit_waiting_polls(0)


# -- a client's share of slots ---------------------------------------------------------------

def test_a_client_past_its_polls_is_refused_and_others_are_not(manager, topic, bg):
    mine = sessions(manager, 3, client=ALICE)
    theirs = sessions(manager, 2, client=BOB)
    for cid in mine[:2]:
        bg.consume(cid, client=ALICE)
    waiting(manager, 2)
    with pytest.raises(TooManyPolls) as refused:
        manager.consume(mine[2], timeout_ms=30_000, client=ALICE)
    assert refused.value.details == {"limit": 2, "scope": "client",
                                     "client": "address 10.0.0.1"}
    for cid in theirs:
        bg.consume(cid, client=BOB)
    waiting(manager, 4)


def test_the_client_cap_is_named_before_the_server_cap(manager, topic, bg):
    manager.limit_waiting_polls(2)
    mine = sessions(manager, 3, client=ALICE)
    for cid in mine[:2]:
        bg.consume(cid, client=ALICE)
    waiting(manager, 2)
    with pytest.raises(TooManyPolls) as refused:
        manager.consume(mine[2], timeout_ms=30_000, client=ALICE)
    assert refused.value.details["scope"] == "client"
    (other,) = sessions(manager, 1, client=BOB)
    with pytest.raises(TooManyPolls) as refused:
        manager.consume(other, timeout_ms=30_000, client=BOB)
    assert refused.value.details == {"limit": 2, "scope": "server"}


def test_a_client_gets_its_slot_back_when_its_wait_ends(engine, manager, topic, bg):
    mine = sessions(manager, 3, client=ALICE)
    first = bg.consume(mine[0], client=ALICE)
    bg.consume(mine[1], client=ALICE)
    waiting(manager, 2)
    manager.close(mine[0])
    with pytest.raises(ConsumerNotFound):
        first.result()
    bg.consume(mine[2], client=ALICE)
    waiting(manager, 2)


# -- a client's share of sessions ------------------------------------------------------------

def test_a_client_past_its_sessions_is_refused_and_others_are_not(manager, topic):
    capped = ClientQuota("key billing", max_sessions=2, max_polls=16)
    sessions(manager, 2, client=capped)
    with pytest.raises(TooManyConsumers) as refused:
        manager.subscribe("g", ["t"], owner="billing", client=capped)
    assert refused.value.details == {"limit": 2, "scope": "client", "client": "key billing",
                                     "max_sessions": 2, "key": "billing"}
    assert manager.count() == 2
    with pytest.raises(GroupNotFound):  # the refused one joined nothing
        manager.backend.describe_group("g")
    sessions(manager, 3, client=BOB)  # another client is not held back
    sessions(manager, 3)  # nor is a caller with no client


def test_a_closed_or_expired_session_frees_the_clients_place(manager, topic, clock):
    capped = ClientQuota("key billing", max_sessions=2, max_polls=16)
    a, b = sessions(manager, 2, client=capped)
    manager.close(a)
    sessions(manager, 1, client=capped)
    with pytest.raises(TooManyConsumers):
        manager.subscribe("g", ["t"], client=capped)
    clock.advance(30_001)
    assert len(manager.expire()) == 2
    sessions(manager, 2, client=capped)


def test_a_failed_subscribe_holds_no_place(manager, topic):
    capped = ClientQuota("key billing", max_sessions=1, max_polls=16)
    with pytest.raises(TopicNotFound):
        manager.subscribe("g", ["missing"], client=capped)
    sessions(manager, 1, client=capped)


def test_the_server_session_cap_is_named_as_such(engine, clock, topic):
    from consumer_api.sessions.manager import ConsumerManager
    mgr = ConsumerManager(engine, max_sessions=1, clock=clock.monotonic, now_ms=clock.now_ms)
    try:
        sessions(mgr, 1, client=ALICE)
        with pytest.raises(TooManyConsumers) as refused:
            mgr.subscribe("g", ["t"], client=BOB)
        assert refused.value.details == {"limit": 1, "scope": "server", "max_sessions": 1}
    finally:
        mgr.shutdown()


def test_waiting_counts_only_consumes_that_wait(engine, manager, topic, bg):
    a, b = sessions(manager, 2)
    produce(engine, "t", 0, 1)
    assert offsets_of(manager.consume(a, timeout_ms=30_000)[0]) == [("t", 0, 0)]
    assert manager.consume(a, timeout_ms=0)[0] == []
    assert manager.waiting() == 0
    bg.consume(a)
    waiting(manager, 1)
