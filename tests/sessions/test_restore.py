"""Consumer sessions across a restart (ConsumerManager with a sessions file): after a
graceful stop the same consumer id goes on exactly where it was; after a crash it resumes
from the last save, or from a commit made since; what cannot come back is dropped and its
id is 404; a session's timeout counts from the restart.

A :class:`Node` stands for one server: its store and a manager saving to one file. Its
``restart`` is SIGTERM and start (``shutdown`` + ``stop_saving``, the store closed, a new
manager restoring); ``restart(crash=True)`` is ``kill -9`` (nothing saved on the way out).
Lazy saves never happen by themselves here (an interval of an hour): what a crash loses
is exactly what was changed since the session's last urgent save.
"""
from __future__ import annotations

import logging
import time

import pytest

from consumer_api.clock import wall_clock_ms
from consumer_api.errors import ConsumerNotFound
from consumer_api.sessions.manager import ConsumerManager
from consumer_api.sessions.restore import claims, resume_at
from consumer_api.sessions.saved import SavedSession, SessionLog
from tests.sessions.conftest import offsets_of, produce

ON_STORES = ("embedded", "kafka")


class Node:
    def __init__(self, store_name, store, config, clock, path):
        self.kafka = store_name == "kafka"
        self.store, self.config, self.clock = store, config, clock
        self.log = SessionLog(path)
        self.manager = self.new_manager()

    def new_manager(self, **options) -> ConsumerManager:
        clocks = ((time.monotonic, wall_clock_ms) if self.kafka
                  else (self.clock.monotonic, self.clock.now_ms))
        return ConsumerManager(self.store, clock=clocks[0], now_ms=clocks[1],
                               sessions_log=self.log, save_interval_s=3600, **options)

    def restart(self, crash: bool = False, owner_known=lambda owner: True,
                **options) -> int:
        """Stop (gracefully, or as a crash) and start again; how many sessions came back."""
        if not crash:
            self.manager.shutdown()
            self.manager.stop_saving()
        self._close_store()
        self.manager = self.new_manager(**options)
        return self.manager.restore(owner_known)

    def _close_store(self) -> None:
        """What the store's close does to the old sessions: they leave their groups (on
        the embedded store the groups live in memory and start empty)."""
        if self.kafka:
            for member in list(self.store._members):
                member.leave()
            return
        from consumer_api.embedded.engine import Engine
        self.store.close()
        self.store = Engine(self.config, now_ms=self.clock.now_ms)

    def take(self, cid, n: int, **kwargs) -> list:
        """Consume until ``n`` records came: ``[(topic, partition, offset)]``."""
        got: list = []
        for _ in range(50):
            chunks, _ = self.manager.consume(cid, max_records=n - len(got),
                                             timeout_ms=2000 if self.kafka else 0, **kwargs)
            got += offsets_of(chunks)
            if len(got) >= n:
                return got
        raise AssertionError(f"{len(got)} of {n} records came: {got}")

    def nothing_left(self, cid) -> bool:
        chunks, _ = self.manager.consume(cid, timeout_ms=500 if self.kafka else 0)
        return chunks == []


@pytest.fixture
def node(store_name, engine, config, clock, tmp_path):
    made = Node(store_name, engine, config, clock, str(tmp_path / "sessions.jsonl"))
    yield made
    made.manager.shutdown()
    if made.store is not engine:
        made.store.close()


def test_a_graceful_restart_keeps_the_session_where_it_was(node):
    node.store.create_topic("t", 2)
    for p in (0, 1):
        produce(node.store, "t", p, 5)
    body = node.manager.subscribe("g", ["t"], auto_offset_reset="earliest", encoding="json",
                                  session_timeout_ms=45_000)
    cid = body["consumer_id"]
    first = node.take(cid, 4)
    node.manager.commit(cid)
    second = node.take(cid, 2)  # delivered, not committed
    before = node.manager.positions(cid)

    assert node.restart() == 1
    assert node.manager.positions(cid) == before
    assert node.manager.get_assignment(cid)["assignment"] == {"t": [0, 1]}
    rest = node.take(cid, 4)
    assert node.nothing_left(cid)
    assert sorted(first + second + rest) == [("t", p, o) for p in (0, 1) for o in range(5)]
    listed, = node.manager.describe_sessions()
    assert (listed["consumer_id"], listed["group_id"], listed["topics"]) == (cid, "g", ["t"])
    session = node.manager._sessions[cid]
    assert (session.encoding, session.session_timeout_ms, session.auto_offset_reset) == (
        "json", 45_000, "earliest")


def test_after_a_crash_it_resumes_from_the_last_save_or_a_later_commit(node):
    node.store.create_topic("t", 1)
    produce(node.store, "t", 0, 10)
    cid = node.manager.subscribe("g", ["t"], auto_offset_reset="earliest")["consumer_id"]
    node.take(cid, 3)
    node.manager.commit(cid)  # 3: committed after the last save (the subscribe)
    node.take(cid, 3)  # 3..5: delivered, neither committed nor saved

    assert node.restart(crash=True) == 1
    assert node.take(cid, 7) == [("t", 0, o) for o in range(3, 10)]  # 3..5 again, no loss


def test_a_seek_is_saved_at_once(node):
    node.store.create_topic("t", 1)
    produce(node.store, "t", 0, 10)
    cid = node.manager.subscribe("g", ["t"], auto_offset_reset="earliest")["consumer_id"]
    node.take(cid, 10)
    node.manager.commit(cid)
    node.manager.seek(cid, "t", 0, offset=2)  # a replay, asked after its own commit

    node.restart(crash=True)
    assert node.take(cid, 8) == [("t", 0, o) for o in range(2, 10)]


def test_a_closed_session_stays_closed(node):
    node.store.create_topic("t", 2)
    gone = node.manager.subscribe("g", ["t"])["consumer_id"]
    kept = node.manager.subscribe("g", ["t"])["consumer_id"]
    node.manager.close(gone)

    assert node.restart(crash=True) == 1
    with pytest.raises(ConsumerNotFound):
        node.manager.positions(gone)
    node.manager.positions(kept)


@pytest.mark.embedded_only  # the fake clock
def test_an_expired_session_stays_expired(node, clock):
    node.store.create_topic("t", 1)
    cid = node.manager.subscribe("g", ["t"], session_timeout_ms=10_000)["consumer_id"]
    clock.advance(10_000)
    assert node.manager.expire() == [cid]

    assert node.restart(crash=True) == 0
    with pytest.raises(ConsumerNotFound):
        node.manager.positions(cid)


@pytest.mark.embedded_only  # the fake clock
def test_the_session_timeout_counts_from_the_restart(node, clock):
    node.store.create_topic("t", 1)
    cid = node.manager.subscribe("g", ["t"], session_timeout_ms=10_000)["consumer_id"]
    clock.advance(9_000)
    node.restart()
    clock.advance(9_999)  # 18.999 s since its last request, 9.999 s since the restart
    assert node.manager.expire() == []
    clock.advance(1)
    assert node.manager.expire() == [cid]


def test_a_manual_assignment_comes_back(node):
    node.store.create_topic("t", 3)
    for p in range(3):
        produce(node.store, "t", p, 4)
    cid = node.manager.subscribe("g", ["t"], auto_offset_reset="earliest")["consumer_id"]
    node.manager.assign(cid, {"t": [2]})
    node.manager.seek(cid, "t", 2, offset=1)
    assert node.take(cid, 2) == [("t", 2, 1), ("t", 2, 2)]

    node.restart()
    assert node.manager.get_assignment(cid)["assignment"] == {"t": [2]}
    assert node.manager.positions(cid) == {("t", 2): 3}
    assert node.take(cid, 1) == [("t", 2, 3)]
    assert node.manager.describe_sessions()[0]["manual"] is True


def test_two_members_come_back_each_with_its_partition_and_position(node):
    node.store.create_topic("t", 2)
    for p in (0, 1):
        produce(node.store, "t", p, 6)
    a = node.manager.subscribe("g", ["t"], auto_offset_reset="earliest")["consumer_id"]
    b = node.manager.subscribe("g", ["t"], auto_offset_reset="earliest")["consumer_id"]
    got = {a: node.take(a, 2), b: node.take(b, 4)}
    owners = {cid: {tp for tp in node.manager.positions(cid)} for cid in (a, b)}
    assert len(owners[a]) == len(owners[b]) == 1 and owners[a] != owners[b]

    assert node.restart() == 2
    for cid, n in ((a, 4), (b, 2)):
        got[cid] += node.take(cid, n)
    for cid in (a, b):
        (topic, p), = owners[cid]
        assert got[cid] == [(topic, p, o) for o in range(6)]  # on from where each was


def test_what_cannot_come_back_is_dropped_and_answers_404(node, caplog):
    node.store.create_topic("t", 1)
    kept = node.manager.subscribe("g", ["t"], owner="billing")["consumer_id"]
    old_key = node.manager.subscribe("g", ["t"], owner="retired")["consumer_id"]
    anonymous = node.manager.subscribe("g", ["t"])["consumer_id"]
    node.manager.shutdown()
    node.manager.stop_saving()

    with caplog.at_level(logging.WARNING):
        assert node.restart(crash=True, owner_known=lambda owner: owner == "billing") == 1
    node.manager.positions(kept, owner="billing")
    for cid, owner in ((old_key, "retired"), (anonymous, None)):
        with pytest.raises(ConsumerNotFound):
            node.manager.positions(cid, owner=owner)
    assert "owner's API key is not configured any more" in caplog.text
    assert "it has no owner and the server now needs API keys" in caplog.text
    node.restart()  # and they are gone from the file too
    assert [s.consumer_id for s in node.log.read()] == [kept]


@pytest.mark.embedded_only  # nothing of the store's
def test_sessions_of_another_node_are_not_restored(node):
    node.store.create_topic("t", 1)
    node.manager = node.new_manager(node_id="n1")
    cid = node.manager.subscribe("g", ["t"])["consumer_id"]
    assert node.restart(node_id="n2") == 0
    with pytest.raises(ConsumerNotFound):
        node.manager.positions(cid)


@pytest.mark.embedded_only  # Kafka deletes topics asynchronously
def test_a_session_on_a_deleted_topic_is_dropped(node):
    node.store.create_topic("t", 1)
    node.store.create_topic("gone", 1)
    kept = node.manager.subscribe("g", ["t"])["consumer_id"]
    subscribed = node.manager.subscribe("h", ["t", "gone"])["consumer_id"]
    manual = node.manager.subscribe("i", ["t"])["consumer_id"]
    node.manager.assign(manual, {"gone": [0]})
    node.manager.shutdown()
    node.manager.stop_saving()
    node.store.delete_topic("gone")

    assert node.restart(crash=True) == 1
    node.manager.positions(kept)
    for cid in (subscribed, manual):
        with pytest.raises(ConsumerNotFound):
            node.manager.positions(cid)
    members = {g["group_id"]: g["members"] for g in node.store.list_groups()}
    assert members.get("h", []) == [] and members.get("i", []) == []  # no member left behind


@pytest.mark.embedded_only
def test_the_server_cap_holds_after_a_restart(node):
    node.store.create_topic("t", 1)
    for _ in range(3):
        node.manager.subscribe("g", ["t"])
    assert node.restart(max_sessions=2) == 2
    assert node.manager.count() == 2


@pytest.mark.embedded_only
def test_a_corrupt_log_restores_nothing_and_the_server_goes_on(node):
    node.store.create_topic("t", 1)
    node.manager.subscribe("g", ["t"])
    node.manager.shutdown()
    node.manager.stop_saving()
    with open(node.log.path, "r+b") as f:
        f.write(b"\x00")  # not the log any more
    assert node.restart(crash=True) == 0
    cid = node.manager.subscribe("g", ["t"])["consumer_id"]
    assert [s.consumer_id for s in node.log.read()] == [cid]


# -- where a restored session resumes (no store) ----------------------------------------------

def saved(cid, group="g", manual=False, **positions) -> SavedSession:
    return SavedSession(cid, None, None, group, ["t"], manual, {},
                        {("t", int(p[1:])): o for p, o in positions.items()}, {}, "earliest",
                        30_000, False, "base64", None)


def test_a_partition_two_members_of_a_group_claim_is_nobodys():
    table = claims([saved("a", p0=5, p1=7), saved("b", p1=9), saved("c", group="h", p1=3),
                    saved("d", manual=True, p0=1)])
    assert table == {"a": {("t", 0): 5}, "b": {}, "c": {("t", 1): 3}, "d": {("t", 0): 1}}


@pytest.mark.parametrize("claim,committed,acked,expected", [
    (10, None, None, 10),  # nothing committed
    (10, 4, None, 10),  # delivered since the commit: kept
    (10, 15, None, 15),  # committed after the save (by it or another member): not again
    (10, 15, 15, 10),  # its own commit, then a seek back: the seek holds
    (10, 15, 12, 15),  # a commit later than its own last one
])
def test_the_later_of_claim_and_commit_unless_the_commit_is_its_own(claim, committed, acked,
                                                                     expected):
    assert resume_at(claim, committed, acked) == expected
