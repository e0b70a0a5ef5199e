"""Session expiry: a session with no heartbeat for ``session_timeout_ms`` is closed and
leaves its group. Driven by the fake clock and ``manager.expire()``, except the reaper
tests, which use a real clock and a short timeout with bounded waits."""
from __future__ import annotations

import sys
import threading
import time

import pytest

from consumer_api.errors import ConsumerNotFound
from consumer_api.sessions.manager import ConsumerManager
from tests.sessions.conftest import BOUND, offsets_of, owned, produce
from tests.waiting import wait_until

REQUESTS = {
    "consume": lambda m, cid: m.consume(cid, timeout_ms=0),
    "commit": lambda m, cid: m.commit(cid),
    "seek": lambda m, cid: m.seek(cid, position="beginning"),
    "get_assignment": lambda m, cid: m.get_assignment(cid),
    "assign": lambda m, cid: m.assign(cid, {"t": [0, 1]}),
    "positions": lambda m, cid: m.positions(cid),
    "committed": lambda m, cid: m.committed(cid),
}


def members(manager, group):
    return [m["consumer_id"] for m in manager.backend.describe_group(group)["members"]]


@pytest.mark.parametrize("request_name", sorted(REQUESTS) + ["close"])
def test_an_idle_session_expires_and_leaves_its_group(engine, manager, clock, request_name):
    engine.create_topic("t", 2)
    a = manager.subscribe("g", ["t"], session_timeout_ms=10_000)["consumer_id"]
    b = manager.subscribe("g", ["t"], session_timeout_ms=60_000)
    assert owned(b) != {("t", 0), ("t", 1)}  # the partitions are split

    clock.advance(9_999)
    assert manager.expire() == []
    clock.advance(1)
    assert manager.expire() == [a]
    assert manager.expired_total == 1
    assert manager.count() == 1
    assert members(manager, "g") == [b["consumer_id"]]
    b_now = manager.get_assignment(b["consumer_id"])
    assert b_now["assignment"] == {"t": [0, 1]}  # B took over A's partitions
    assert b_now["generation"] > b["generation"]

    request = REQUESTS.get(request_name, lambda m, cid: m.close(cid))
    with pytest.raises(ConsumerNotFound):
        request(manager, a)
    assert manager.expire() == []  # expired once


@pytest.mark.parametrize("request_name", sorted(REQUESTS))
def test_every_request_is_a_heartbeat(engine, manager, clock, request_name):
    engine.create_topic("t", 2)
    produce(engine, "t", 0, 3)
    a = manager.subscribe("g", ["t"], session_timeout_ms=10_000)["consumer_id"]
    idle = manager.subscribe("idle", ["t"], session_timeout_ms=10_000)["consumer_id"]

    clock.advance(6_000)
    REQUESTS[request_name](manager, a)
    clock.advance(6_000)  # 12 s since subscribe, 6 s since the request
    assert manager.expire() == [idle]
    clock.advance(3_999)
    assert manager.expire() == []
    clock.advance(1)  # 10 s since the request
    assert manager.expire() == [a]
    assert manager.count() == 0


def test_the_time_since_each_sessions_heartbeat_is_known(engine, manager, clock):
    engine.create_topic("t", 2)
    a = manager.subscribe("g", ["t"])["consumer_id"]
    clock.advance(2_000)
    b = manager.subscribe("g", ["t"])["consumer_id"]
    clock.advance(1_500)
    manager.positions(b)
    clock.advance(500)
    assert manager.heartbeat_ages_ms([a, b, "unknown"]) == {a: 4_000, b: 500, "unknown": 0}


def test_repeated_heartbeats_keep_a_session_alive_indefinitely(engine, manager, clock):
    engine.create_topic("t", 1)
    a = manager.subscribe("g", ["t"], session_timeout_ms=10_000)["consumer_id"]
    for _ in range(50):
        clock.advance(9_000)
        assert manager.expire() == []
        manager.consume(a, timeout_ms=0)
    assert manager.count() == 1
    clock.advance(10_000)
    assert manager.expire() == [a]


def test_a_consume_in_progress_keeps_the_session_alive(engine, manager, clock, bg):
    engine.create_topic("t", 1)
    a = manager.subscribe("g", ["t"], session_timeout_ms=10_000)["consumer_id"]
    poll = bg.consume(a, timeout_ms=120_000)
    wait_until(lambda: manager.waiting() == 1, "the consume to wait")

    clock.advance(40_000)  # four timeouts without any other request
    assert manager.expire() == []
    assert poll.alive() and manager.count() == 1

    produce(engine, "t", 0, 1)
    assert offsets_of(poll.result()) == [("t", 0, 0)]
    # the end of the consume is the last heartbeat
    clock.advance(9_999)
    assert manager.expire() == []
    clock.advance(1)
    assert manager.expire() == [a]


def test_expiry_of_a_member_wakes_the_other_members_waiting_consume(engine, manager, clock,
                                                                   bg):
    engine.create_topic("t", 2)
    x = manager.subscribe("g", ["t"], auto_offset_reset="earliest",
                          session_timeout_ms=10_000)
    y = manager.subscribe("g", ["t"], auto_offset_reset="earliest",
                          session_timeout_ms=10_000)
    (x_part,) = owned(manager.get_assignment(x["consumer_id"]))
    produce(engine, *x_part, 4)
    poll = bg.consume(y["consumer_id"], timeout_ms=120_000)
    wait_until(lambda: manager.waiting() == 1, "Y's consume to wait")

    clock.advance(10_000)
    assert manager.expire() == [x["consumer_id"]]  # Y is consuming: alive
    assert offsets_of(poll.result()) == [(*x_part, o) for o in range(4)]


def test_takeover_after_expiry_loses_no_record(engine, manager, clock):
    engine.create_topic("t", 4)
    for p in range(4):
        produce(engine, "t", p, 10)
    a = manager.subscribe("g", ["t"], auto_offset_reset="earliest",
                          session_timeout_ms=10_000)["consumer_id"]
    b = manager.subscribe("g", ["t"], auto_offset_reset="earliest",
                          session_timeout_ms=10_000)["consumer_id"]
    a_parts = owned(manager.get_assignment(a))
    b_parts = owned(manager.get_assignment(b))
    assert len(a_parts) == len(b_parts) == 2 and not a_parts & b_parts

    # A processes and commits some records, then reads a few more it never commits
    a_seen = []
    for _ in range(3):
        a_seen += offsets_of(manager.consume(a, max_records=4, timeout_ms=0)[0])
    a_committed = manager.commit(a)
    a_seen_uncommitted = offsets_of(manager.consume(a, max_records=3, timeout_ms=0)[0])
    assert a_seen_uncommitted
    assert manager.committed(a) == a_committed
    # B works on its own partitions meanwhile
    b_seen = offsets_of(manager.consume(b, max_records=5, timeout_ms=0)[0])
    manager.commit(b)

    # A goes silent; more records arrive everywhere; B keeps heart-beating
    for p in range(4):
        produce(engine, "t", p, 5)
    clock.advance(6_000)
    manager.positions(b)
    clock.advance(4_000)
    assert manager.expire() == [a]

    assert manager.get_assignment(b)["assignment"] == {"t": [0, 1, 2, 3]}
    positions = manager.positions(b)
    for tp in a_parts:
        assert positions[tp] == a_committed[tp], "B must resume at A's committed offset"
    while True:
        chunks, _ = manager.consume(b, timeout_ms=0)
        if not chunks:
            break
        b_seen += offsets_of(chunks)
    manager.commit(b)

    assert len(b_seen) == len(set(b_seen)), "B got a record twice"
    for t, p, o in a_seen:
        assert (t, p) in a_parts
    # every produced record was either committed by A before it went silent, or read by B
    committed_by_a = {(t, p, o) for t, p, o in a_seen if o < a_committed[(t, p)]}
    for p in range(4):
        for o in range(15):
            rec = ("t", p, o)
            assert rec in committed_by_a or rec in b_seen, f"record {rec} was lost"
    # what A read but did not commit is delivered again (at least once)
    assert set(a_seen_uncommitted) <= set(b_seen)
    assert manager.committed(b) == {("t", p): 15 for p in range(4)}


def test_a_session_is_not_expired_as_its_long_consume_returns(engine, clock, config):
    """Runs the reaper's expire() at the one moment consume()'s finally-block reads the
    clock -- the interleaving of the reaper thread that the ordering allows."""
    state = {"armed": False, "expired": None}

    def hooked_clock():
        caller = sys._getframe(1)
        if state["armed"] and caller.f_code.co_name == "consume":
            state["armed"] = False
            state["expired"] = mgr.expire(clock.monotonic())
        return clock.monotonic()

    mgr = ConsumerManager(engine, config.max_sessions, clock=hooked_clock,
                          now_ms=clock.now_ms)
    engine.create_topic("t", 1)
    a = mgr.subscribe("g", ["t"], session_timeout_ms=10_000)["consumer_id"]
    result = {}
    thread = threading.Thread(
        target=lambda: result.setdefault("chunks", mgr.consume(a, timeout_ms=120_000)[0]),
        daemon=True)
    try:
        thread.start()
        wait_until(lambda: mgr.waiting() == 1, "the consume to wait")
        clock.advance(20_000)  # a long poll: longer than the session timeout
        state["armed"] = True
        produce(engine, "t", 0, 1)
        thread.join(BOUND)
        assert offsets_of(result["chunks"]) == [("t", 0, 0)]
        assert state["expired"] == []
        assert mgr.positions(a) == {("t", 0): 1}
    finally:
        mgr.shutdown()
        thread.join(BOUND)


# -- the reaper thread (real clock) --------------------------------------------------------

def test_the_reaper_expires_an_idle_session_by_itself_and_stops_on_shutdown(engine):
    engine.create_topic("t", 2)
    mgr = ConsumerManager(engine, clock=time.monotonic)
    before = set(threading.enumerate())
    try:
        mgr.start()  # with no session yet: it must notice the ones subscribed later
        reapers = [t for t in set(threading.enumerate()) - before if t.name == "session-reaper"]
        assert len(reapers) == 1
        mgr.start()  # idempotent
        assert len([t for t in threading.enumerate() if t.name == "session-reaper"
                    and t not in before]) == 1

        keeper = mgr.subscribe("g", ["t"], session_timeout_ms=60_000)["consumer_id"]
        idle = mgr.subscribe("g", ["t"], session_timeout_ms=150)["consumer_id"]
        assert mgr.count() == 2
        wait_until(lambda: mgr.count() == 1, "the reaper to expire the idle session")
        assert mgr.expired_total == 1
        with pytest.raises(ConsumerNotFound):
            mgr.positions(idle)
        assert mgr.get_assignment(keeper)["assignment"] == {"t": [0, 1]}
    finally:
        mgr.shutdown()
    reapers[0].join(BOUND)
    assert not reapers[0].is_alive(), "shutdown did not stop the reaper"


def test_shutdown_stops_a_reaper_waiting_for_a_far_deadline(engine):
    engine.create_topic("t", 1)
    mgr = ConsumerManager(engine, clock=time.monotonic)
    before = set(threading.enumerate())
    mgr.start()
    (reaper,) = [t for t in set(threading.enumerate()) - before if t.name == "session-reaper"]
    mgr.subscribe("g", ["t"], session_timeout_ms=300_000)
    started = time.monotonic()
    mgr.shutdown()
    reaper.join(BOUND)
    assert not reaper.is_alive()
    assert time.monotonic() - started < BOUND
