"""Long-poll consumes: woken by an append to an owned partition, a rebalance, a close or
a shutdown -- never by unrelated appends, never by a sleep-and-retry loop. The fake clock
stays frozen throughout: a consume that is not woken would wait its full 30 s (real time),
and every wait here is bounded to 5 s, so a missed wake-up fails the test."""
from __future__ import annotations

import threading
import time
import types

import pytest

from consumer_api.errors import ConsumerNotFound, Unavailable
from consumer_api.record_filter import compile_filter
from consumer_api.sessions.scan import Scan
from consumer_api.sessions.session import Waiter
from tests.sessions.conftest import BOUND, offsets_of, owned, produce
from tests.waiting import wait_until


@pytest.fixture
def wait_spy(monkeypatch):
    """Every Waiter.wait: ``calls`` gets ``[timeout_s, result]`` (result None while it
    waits); ``entered`` is set once a wait has begun."""
    calls: list = []
    entered = threading.Event()
    real = Waiter.wait

    def wait(self, timeout_s):
        call = [timeout_s, None]
        calls.append(call)
        entered.set()
        call[1] = real(self, timeout_s)
        return call[1]

    monkeypatch.setattr(Waiter, "wait", wait)
    return types.SimpleNamespace(calls=calls, entered=entered)


def waiting(manager, n=1):
    wait_until(lambda: manager.waiting() == n, f"{n} waiting consume(s)")


def test_an_append_wakes_a_waiting_consume_with_the_clock_frozen(engine, manager, clock, bg,
                                                                  wait_spy):
    engine.create_topic("t", 2)
    cid = manager.subscribe("g", ["t"])["consumer_id"]
    frozen = clock.ms
    poll = bg.consume(cid, timeout_ms=30_000)
    assert wait_spy.entered.wait(BOUND), "the consume never started waiting"
    assert poll.alive() and manager.waiting() == 1

    produce(engine, "t", 1, 1, value=b"hello")
    chunks = poll.result()
    assert offsets_of(chunks) == [("t", 1, 0)]
    assert chunks[0][2][0][3] == b"hello"
    assert clock.ms == frozen
    # it slept once for its whole timeout and was woken by a notification, not a timer
    assert wait_spy.calls and all(timeout == 30.0 for timeout, _ in wait_spy.calls)
    assert [result for _, result in wait_spy.calls] == [True] * len(wait_spy.calls)
    assert manager.waiting() == 0
    assert manager.positions(cid) == {("t", 0): 0, ("t", 1): 1}


def test_an_append_elsewhere_does_not_wake_the_consume(engine, manager, bg, notify_spy,
                                                       wait_spy):
    engine.create_topic("t", 2)
    engine.create_topic("other", 1)
    a = manager.subscribe("g", ["t"])
    b = manager.subscribe("g", ["t"])
    (b_part,) = owned(b)
    (a_part,) = owned(manager.get_assignment(a["consumer_id"]))
    notify_spy.clear()

    poll = bg.consume(b["consumer_id"], timeout_ms=30_000)
    assert wait_spy.entered.wait(BOUND)
    produce(engine, *a_part, 3)  # the other member's partition
    produce(engine, "other", 0, 3)  # a topic B does not read
    produce(engine, *a_part, 2)
    # listeners run inside the append: had B been signalled, it would be recorded now
    assert notify_spy == [], "an append to a partition B does not own woke B's consume"
    assert poll.alive() and manager.waiting() == 1
    assert [result for _, result in wait_spy.calls] == [None]  # still in its first wait

    produce(engine, *b_part, 1)  # its own partition: now it returns that record only
    assert offsets_of(poll.result()) == [(*b_part, 0)]
    assert len(notify_spy) == 1


def test_a_finished_consume_no_longer_watches_its_partitions(engine, manager, bg,
                                                              notify_spy):
    engine.create_topic("t", 2)
    cid = manager.subscribe("g", ["t"])["consumer_id"]
    poll = bg.consume(cid, timeout_ms=30_000)
    waiting(manager)
    produce(engine, "t", 0, 1)
    assert offsets_of(poll.result()) == [("t", 0, 0)]
    calls = len(notify_spy)
    produce(engine, "t", 0, 1)
    produce(engine, "t", 1, 1)
    assert len(notify_spy) == calls, "a finished consume's waiter is still registered"


@pytest.mark.parametrize("how", ["close", "close_with_commit"])
def test_a_member_leaving_wakes_the_waiting_consume_onto_its_new_partition(
        engine, manager, bg, how):
    engine.create_topic("t", 2)
    x = manager.subscribe("g", ["t"], auto_offset_reset="earliest")
    y = manager.subscribe("g", ["t"], auto_offset_reset="earliest")
    (x_part,) = owned(manager.get_assignment(x["consumer_id"]))
    (y_part,) = owned(y)
    produce(engine, *x_part, 5)  # a backlog on the partition Y does not own (yet)

    poll = bg.consume(y["consumer_id"], timeout_ms=30_000)
    waiting(manager)
    assert poll.alive()
    manager.close(x["consumer_id"], commit=(how == "close_with_commit"))
    # Y now owns X's partition with a backlog: it serves it without waiting out 30 s
    assert offsets_of(poll.result()) == [(*x_part, o) for o in range(5)]
    assert manager.get_assignment(y["consumer_id"])["assignment"] == {"t": [0, 1]}
    assert manager.positions(y["consumer_id"]) == {x_part: 5, y_part: 0}


def test_a_member_joining_wakes_the_waiting_consume_onto_its_smaller_assignment(
        engine, manager, bg, notify_spy):
    engine.create_topic("t", 2)
    y = manager.subscribe("g", ["t"])["consumer_id"]
    poll = bg.consume(y, timeout_ms=30_000)
    waiting(manager)
    notify_spy.clear()

    x = manager.subscribe("g", ["t"])
    (x_part,) = owned(x)
    assert notify_spy, "the rebalance did not wake the waiting consume"
    (y_part,) = {("t", 0), ("t", 1)} - {x_part}
    # the lost partition is no longer Y's: an append there is not served to Y ...
    produce(engine, *x_part, 2)
    wait_until(lambda: manager.waiting() == 1 and poll.alive(), "Y waiting again")
    # ... while its remaining partition still is
    produce(engine, *y_part, 1)
    assert offsets_of(poll.result()) == [(*y_part, 0)]
    assert manager.get_assignment(y)["assignment"] == {y_part[0]: [y_part[1]]}
    # and X reads what was appended to its partition (its position was 0, the end)
    assert offsets_of(manager.consume(x["consumer_id"], timeout_ms=0)[0]) == [
        (*x_part, 0), (*x_part, 1)]


@pytest.mark.parametrize("manual", [False, True], ids=["member", "manually_assigned"])
def test_closing_the_session_ends_its_waiting_consume_with_consumer_not_found(engine, manager,
                                                                              bg, manual):
    engine.create_topic("t", 2)
    a = manager.subscribe("g", ["t"])["consumer_id"]
    b = manager.subscribe("g", ["t"])["consumer_id"]
    if manual:
        manager.assign(a, {"t": [0]})
    poll = bg.consume(a, timeout_ms=30_000)
    waiting(manager)
    manager.close(a)
    with pytest.raises(ConsumerNotFound):
        poll.result()
    assert manager.get_assignment(b)["assignment"] == {"t": [0, 1]}
    assert manager.waiting() == 0


def test_shutdown_answers_every_waiting_consume_empty(engine, manager, bg):
    engine.create_topic("t", 4)
    cids = [manager.subscribe("shared", ["t"])["consumer_id"] for _ in range(10)]
    cids += [manager.subscribe(f"solo-{i}", ["t"])["consumer_id"] for i in range(10)]
    polls = [bg.consume(cid, timeout_ms=30_000) for cid in cids]
    waiting(manager, 20)
    assert all(p.alive() for p in polls)

    manager.shutdown()
    assert [p.result() for p in polls] == [[]] * 20
    # nothing waits any more, later consumes return at once, new sessions are refused
    assert manager.waiting() == 0
    done = bg.consume(cids[0], timeout_ms=30_000)
    assert done.result() == []
    with pytest.raises(Unavailable):
        manager.subscribe("late", ["t"])


def test_a_newer_consume_on_a_session_ends_the_waiting_one_empty(engine, manager, bg):
    """A client whose HTTP timeout was shorter than its timeout_ms retries: the retry is
    served at once, not queued behind the abandoned poll, which answers empty."""
    engine.create_topic("t", 1)
    cid = manager.subscribe("g", ["t"])["consumer_id"]
    first = bg.consume(cid, timeout_ms=30_000)
    waiting(manager)
    second = bg.consume(cid, timeout_ms=30_000)
    assert first.result() == []  # promptly: the clock is frozen, its timeout never ends
    waiting(manager)  # the newer one waits in its place: one thread, one slot per session
    assert second.alive()

    produce(engine, "t", 0, 2)
    assert offsets_of(second.result()) == [("t", 0, 0), ("t", 0, 1)]
    assert manager.waiting() == 0
    assert manager.positions(cid) == {("t", 0): 2}


def test_a_consume_queued_for_its_turn_gives_up_when_a_newer_one_comes(engine, manager, bg):
    """While the first consume is slow to end (here: its client check hangs), the second
    queues for the turn; a third one makes the second answer empty at once, and only the
    third then waits for records."""
    engine.create_topic("t", 1)
    cid = manager.subscribe("g", ["t"])["consumer_id"]
    checking, release = threading.Event(), threading.Event()

    def slow_check():
        checking.set()
        release.wait(BOUND)
        return False

    first = bg.consume(cid, timeout_ms=30_000, abandoned=slow_check)
    waiting(manager)
    second = bg.consume(cid, timeout_ms=30_000)
    assert checking.wait(BOUND)  # the first woke up and is stuck ending
    wait_until(lambda: manager._sessions[cid].consume_ticket == 2, "the second's ticket")
    third = bg.consume(cid, timeout_ms=30_000)
    assert second.result() == []  # while the first still holds the turn
    assert first.alive()
    release.set()
    assert first.result() == []
    waiting(manager)
    produce(engine, "t", 0, 1)
    assert offsets_of(third.result()) == [("t", 0, 0)]


def test_racing_consumes_on_one_session_never_return_a_record_twice(engine, manager, bg):
    engine.create_topic("t", 3)
    cid = manager.subscribe("g", ["t"], auto_offset_reset="earliest")["consumer_id"]
    total = 600
    got: list = []
    lock = threading.Lock()
    stop = threading.Event()

    def worker():
        while not stop.is_set():
            chunks, _ = manager.consume(cid, max_records=7, timeout_ms=30_000)
            with lock:
                got.extend(offsets_of(chunks))
                if len(got) >= total:
                    stop.set()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(4)]
    for t in threads:
        t.start()
    produced = []
    for i in range(total // 3):
        for p in range(3):
            produced += [("t", p, o) for o in produce(engine, "t", p, 1)]
    assert stop.wait(BOUND), f"only {len(got)} of {total} records consumed"
    manager.shutdown()  # releases the workers still waiting
    for t in threads:
        t.join(BOUND)
    assert not any(t.is_alive() for t in threads)
    assert len(got) == len(set(got)), "a record was returned twice"
    assert sorted(got) == sorted(produced)


# -- the waiter itself ---------------------------------------------------------------------

def test_waiter_keeps_a_notification_that_came_before_the_wait():
    waiter = Waiter()
    waiter.notify()
    assert waiter.wait(30.0) is True  # at once: the bit was set
    assert waiter.wait(0) is False  # and it was cleared


def test_waiter_wakes_on_notify_from_another_thread_and_otherwise_sleeps_its_timeout():
    waiter = Waiter()
    started = time.monotonic()
    assert waiter.wait(0.2) is False
    assert time.monotonic() - started >= 0.2  # no early return without a notification

    result = []
    sleeper = threading.Thread(target=lambda: result.append(waiter.wait(30.0)), daemon=True)
    sleeper.start()
    waiter.notify()  # before or during the wait: either way it is not lost
    sleeper.join(BOUND)
    assert result == [True]


def test_a_filtered_consume_waits_on_past_records_it_skips(engine, manager, bg, wait_spy):
    engine.create_topic("t", 1)
    cid = manager.subscribe("g", ["t"])["consumer_id"]
    poll = bg.consume(cid, scan=Scan(compile_filter({"key": {"equals": "hit"}})))
    assert wait_spy.entered.wait(BOUND), "the consume never started waiting"
    produce(engine, "t", 0, 3, key=b"miss")
    wait_until(lambda: manager.positions(cid) == {("t", 0): 3}, "the misses skipped")
    assert poll.alive()  # skipping is not an answer: it waits on
    produce(engine, "t", 0, 1, key=b"hit")
    assert offsets_of(poll.result()) == [("t", 0, 3)]


# -- min_records: waiting for enough records ----------------------------------------------

def test_a_consume_waits_until_min_records_are_ready_then_takes_them_all(engine, manager, bg,
                                                                         wait_spy):
    engine.create_topic("t", 2)
    cid = manager.subscribe("g", ["t"])["consumer_id"]
    poll = bg.consume(cid, min_records=5, max_records=100)
    assert wait_spy.entered.wait(BOUND), "the consume never started waiting"
    produce(engine, "t", 0, 4)  # one append: the wake-up sees all four
    wait_until(lambda: len(wait_spy.calls) >= 2 and wait_spy.calls[-1][1] is None,
               "woken by the append and waiting again")
    assert poll.alive() and manager.positions(cid) == {("t", 0): 0, ("t", 1): 0}
    produce(engine, "t", 1, 1)
    assert sorted(offsets_of(poll.result())) == [
        ("t", 0, 0), ("t", 0, 1), ("t", 0, 2), ("t", 0, 3), ("t", 1, 0)]


def test_records_already_ready_come_at_once(engine, manager, wait_spy):
    engine.create_topic("t", 1)
    cid = manager.subscribe("g", ["t"], auto_offset_reset="earliest")["consumer_id"]
    produce(engine, "t", 0, 7)
    chunks, _ = manager.consume(cid, min_records=5, timeout_ms=30_000)
    assert len(offsets_of(chunks)) == 7  # enough were there: all of them
    assert wait_spy.calls == []  # without waiting


def test_at_the_timeout_a_consume_returns_the_fewer_records_there_are(engine, manager, clock,
                                                                       bg, wait_spy):
    engine.create_topic("t", 1)
    cid = manager.subscribe("g", ["t"])["consumer_id"]
    poll = bg.consume(cid, min_records=10, timeout_ms=30_000)
    assert wait_spy.entered.wait(BOUND), "the consume never started waiting"
    produce(engine, "t", 0, 3)
    wait_until(lambda: len(wait_spy.calls) >= 2 and wait_spy.calls[-1][1] is None,
               "woken by the append and waiting again")
    assert poll.alive()
    clock.advance(30_000)
    produce(engine, "t", 0, 1)  # wakes it: past its deadline it reads what is there
    assert offsets_of(poll.result()) == [("t", 0, o) for o in range(4)]


def test_min_records_above_max_records_waits_for_max_records(engine, manager, bg, wait_spy):
    engine.create_topic("t", 1)
    cid = manager.subscribe("g", ["t"])["consumer_id"]
    poll = bg.consume(cid, min_records=50, max_records=3)
    assert wait_spy.entered.wait(BOUND), "the consume never started waiting"
    produce(engine, "t", 0, 3)
    assert offsets_of(poll.result()) == [("t", 0, o) for o in range(3)]
