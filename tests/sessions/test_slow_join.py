"""A store whose group joins complete later, and whose wake-ups come from its own thread,
fits the sessions layer as it is (consumer_api.backend.Member: ``join`` may return None).

``SlowJoins`` wraps the embedded engine: a member's join is only recorded; the test
completes it with :meth:`SlowJoins.complete`, which joins for real and wakes the session
from another thread, as a store with a background coordinator would.
"""
from __future__ import annotations

import threading

import pytest

from consumer_api.sessions.manager import ConsumerManager
from tests.sessions.conftest import BOUND, BackgroundConsume, offsets_of, produce


class SlowMember:
    def __init__(self, inner, wake):
        self._inner = inner
        self._wake = wake
        self.topics = None
        self.done = False
        self.asked = threading.Event()

    def join(self, topics, assignor=None):
        self.topics = list(topics)
        self.asked.set()
        return None

    def assignment(self):
        return self._inner.assignment() if self.done else None

    def complete(self):
        self._inner.join(self.topics)
        self.done = True
        self._wake()

    def __getattr__(self, name):
        return getattr(self._inner, name)


class SlowJoins:
    def __init__(self, engine):
        self._engine = engine
        self.members: dict[str, SlowMember] = {}
        self.made = threading.Event()

    def member(self, group_id, member_id, wake):
        made = self.members[member_id] = SlowMember(
            self._engine.member(group_id, member_id, wake), wake)
        self.made.set()
        return made

    def complete(self, member_id: str) -> None:
        member = self.members[member_id]
        assert member.asked.wait(BOUND)
        thread = threading.Thread(target=member.complete, name="store-coordinator")
        thread.start()
        thread.join(BOUND)

    def __getattr__(self, name):
        return getattr(self._engine, name)


@pytest.fixture
def slow(engine):
    return SlowJoins(engine)


@pytest.fixture
def slow_manager(slow, clock):
    mgr = ConsumerManager(slow, clock=clock.monotonic, now_ms=clock.now_ms)
    yield mgr
    mgr.shutdown()


def test_a_subscribe_waits_for_a_join_that_completes_later(engine, slow, slow_manager):
    engine.create_topic("t", 2)
    result = {}
    thread = threading.Thread(target=lambda: result.update(
        slow_manager.subscribe("g", ["t"], auto_offset_reset="earliest")))
    thread.start()
    assert slow.made.wait(BOUND)  # the id is made inside subscribe: find the one member
    slow.complete(next(iter(slow.members)))
    thread.join(BOUND)
    assert result["assignment"] == {"t": [0, 1]}
    assert result["generation"] >= 0


def test_a_session_whose_join_outlasts_the_wait_gets_its_partitions_later(
        engine, slow, slow_manager):
    slow_manager.join_wait_s = 0.0
    engine.create_topic("t", 1)
    body = slow_manager.subscribe("g", ["t"], auto_offset_reset="earliest")
    assert body["assignment"] == {} and body["generation"] == -1
    assert body["state"] == "joining"
    assert slow_manager.get_assignment(body["consumer_id"])["state"] == "joining"
    cid = body["consumer_id"]
    assert slow_manager.consume(cid, timeout_ms=0)[0] == []
    produce(engine, "t", 0, 3)
    waiting = BackgroundConsume(slow_manager, cid, timeout_ms=30_000).start()
    slow.complete(cid)  # the wake-up comes from the store's thread
    assert offsets_of(waiting.result()) == [("t", 0, 0), ("t", 0, 1), ("t", 0, 2)]
    done = slow_manager.get_assignment(cid)
    assert done["assignment"] == {"t": [0]} and "state" not in done
