"""The saved session log (consumer_api/sessions/saved.py) and its writer (saver.py): a
change is one line, synced at once or at the saver's next turn (the flush policy); the log is rewritten whole, atomically, once the appends outgrow
it; it is readable by its owner only; a torn last line is not read; what cannot be read is
dropped or set aside with a log line that carries no secret; marked sessions are saved by
the thread within the interval, and nothing is written after the last save."""
from __future__ import annotations

import json
import logging
import os
import stat
import threading
from types import SimpleNamespace

import pytest

from consumer_api.sessions import saved as saved_module
from consumer_api.sessions.saved import SessionLog
from consumer_api.sessions.saver import SessionSaver
from tests.waiting import wait_until

ID = "0123456789abcdef0123456789abcdef"
OTHER = "f" * 32


def record(**changes) -> dict:
    base = {"id": ID, "owner": "billing", "client": "key billing", "group": "g",
            "topics": ["orders"], "manual": False, "assignment": {},
            "positions": [["orders", 0, 42]], "acked": [["orders", 0, 40]],
            "auto_offset_reset": "earliest", "session_timeout_ms": 30_000,
            "auto_commit": False, "encoding": "json", "assignor": "sticky"}
    return {**base, **changes}


@pytest.fixture
def saved_log(tmp_path):
    return SessionLog(str(tmp_path / "state" / "sessions.jsonl"))


def lines_of(saved_log) -> list:
    with open(saved_log.path, "rb") as f:
        return [json.loads(line) for line in f.read().splitlines()]


def test_puts_and_drops_replay_to_the_live_sessions(saved_log):
    saved_log.append([{"put": record()}, {"put": record(id=OTHER, group="h")}])
    saved_log.append([{"put": record(positions=[["orders", 0, 50]])}])
    saved_log.append([{"drop": OTHER}])
    only, = saved_log.read()
    assert (only.consumer_id, only.owner, only.client, only.group_id, only.topics,
            only.manual, only.positions, only.acked, only.auto_offset_reset,
            only.session_timeout_ms, only.auto_commit, only.encoding, only.assignor) == (
        ID, "billing", "key billing", "g", ["orders"], False, {("orders", 0): 50},
        {("orders", 0): 40}, "earliest", 30_000, False, "json", "sticky")


def test_a_manual_assignment_reads_back(saved_log):
    saved_log.append([{"put": record(manual=True, assignment={"orders": [1, 2]})}])
    only, = saved_log.read()
    assert only.manual and only.assignment == {"orders": [1, 2]}


def test_the_log_is_private_and_a_rewrite_leaves_no_temporary_file(saved_log):
    saved_log.append([{"put": record()}])
    assert stat.S_IMODE(os.stat(saved_log.path).st_mode) == 0o600
    saved_log.rewrite([record(positions=[])])
    assert stat.S_IMODE(os.stat(saved_log.path).st_mode) == 0o600
    assert os.listdir(os.path.dirname(saved_log.path)) == ["sessions.jsonl"]
    assert lines_of(saved_log) == [{"format": 1}, {"put": record(positions=[])}]


def test_no_log_is_no_sessions(saved_log):
    assert saved_log.read() == []


def test_a_rewrite_comes_due_once_the_appends_outgrow_the_last_one(saved_log, monkeypatch):
    monkeypatch.setattr(saved_module, "COMPACT_MIN_BYTES", 1000)
    saved_log.rewrite([record(id=f"{i:032x}") for i in range(10)])  # ~3 kB
    while not saved_log.due_for_rewrite:
        saved_log.append([{"put": record()}])
    assert 3000 < os.path.getsize(saved_log.path) < 7000  # about twice the rewrite
    saved_log.rewrite([record()])
    assert not saved_log.due_for_rewrite


def test_a_torn_last_line_is_not_read(saved_log):
    saved_log.append([{"put": record()}])
    with open(saved_log.path, "ab") as f:
        f.write(b'{"drop": "0123456789abcdef0123')  # the crash came mid-append
    assert [s.consumer_id for s in saved_log.read()] == [ID]


def test_a_rewrite_that_fails_leaves_the_old_log(saved_log, monkeypatch):
    saved_log.append([{"put": record()}])

    def crash(*_args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(saved_module.os, "replace", crash)
    with pytest.raises(OSError):
        saved_log.rewrite([])
    monkeypatch.undo()
    assert [s.consumer_id for s in saved_log.read()] == [ID]


@pytest.mark.parametrize("content", [b"\x00\x00\x00\n", b'{"format": 2}\n', b"[1]\n",
                                     b'"text"\n{"put": {}}\n'])
def test_a_log_of_another_format_is_set_aside_and_restores_nothing(saved_log, content,
                                                                   caplog):
    os.makedirs(os.path.dirname(saved_log.path))
    with open(saved_log.path, "wb") as f:
        f.write(content)
    with caplog.at_level(logging.WARNING, logger="consumer_api.sessions.saved"):
        assert saved_log.read() == []
    assert not os.path.exists(saved_log.path)
    with open(saved_log.path + ".corrupt", "rb") as f:
        assert f.read() == content
    assert "cannot be read" in caplog.text
    saved_log.rewrite([record()])  # and the next save starts a good one
    assert len(saved_log.read()) == 1


def test_a_line_that_is_not_a_record_is_skipped(saved_log, caplog):
    saved_log.rewrite([record()])
    with open(saved_log.path, "ab") as f:
        f.write(b'garbage\n{"put": {"no": "id"}}\n')
    saved_log.append([{"put": record(id=OTHER)}])
    with caplog.at_level(logging.WARNING, logger="consumer_api.sessions.saved"):
        assert [s.consumer_id for s in saved_log.read()] == [ID, OTHER]
    assert "line 3 of the saved consumer sessions is not a record" in caplog.text
    assert "line 4 of" in caplog.text


@pytest.mark.parametrize("bad", [
    {"id": "not-an-id"}, {"id": "../../etc/passwd"}, {"group": ""}, {"manual": "yes"},
    {"positions": [["orders", 0, -1]]}, {"positions": [["orders", "0", 4]]},
    {"encoding": "rot13"}, {"auto_offset_reset": "middle"}, {"session_timeout_ms": 0},
    {"topics": None}])
def test_a_record_that_does_not_check_out_is_dropped_and_the_others_kept(saved_log, bad,
                                                                         caplog):
    saved_log.append([{"put": record(**bad, owner="secret-owner-name")},
                      {"put": record(id=OTHER)}])
    with caplog.at_level(logging.WARNING, logger="consumer_api.sessions.saved"):
        assert [s.consumer_id for s in saved_log.read()] == [OTHER]
    field = next(iter(bad))
    assert f"is not restored: invalid {field}" in caplog.text
    assert "secret-owner-name" not in caplog.text  # the log names fields, never values
    for value in bad.values():
        if isinstance(value, str) and value:
            assert value not in caplog.text


def test_a_field_of_a_later_version_is_ignored(saved_log):
    saved_log.append([{"put": record(priority=3)}])
    assert [s.consumer_id for s in saved_log.read()] == [ID]


# -- the saver --------------------------------------------------------------------------------

def session(cid=ID, closed=False):
    """What the saver reads of a session (record_of's attributes)."""
    return SimpleNamespace(consumer_id=cid, owner=None, client=None, group_id="g",
                           topics=["orders"], manual=False, assignment={},
                           positions={("orders", 0): 1}, acked={}, auto_offset_reset="latest",
                           session_timeout_ms=30_000, auto_commit=False, encoding="base64",
                           assignor=None, closed=closed, unsaved=False, unsent={})


class Live:
    """The saver's ``live()``: a list a test changes, with a count of calls."""

    def __init__(self, *sessions):
        self.sessions = list(sessions)
        self.calls = 0

    def __call__(self) -> list:
        self.calls += 1
        return list(self.sessions)


def saved_positions(saved_log) -> dict:
    return {s.consumer_id: s.positions for s in saved_log.read()}


def test_put_and_drop_are_on_disk_when_they_return(saved_log):
    a = session()
    saver = SessionSaver(saved_log, Live(a), interval_s=3600)
    saver.put(a)
    assert saved_positions(saved_log) == {ID: {("orders", 0): 1}}
    a.closed = True
    saver.drop([a])
    assert saved_log.read() == []
    saver.put(a)  # a closed session is never put back
    assert saved_log.read() == []


@pytest.fixture
def syncs(monkeypatch):
    """The paths of the files fdatasync'd, in order."""
    synced = []
    real = os.fdatasync

    def counting(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fdatasync", counting)
    return synced


def test_with_sync_each_append_a_put_is_synced_before_it_returns(saved_log, syncs):
    SessionSaver(saved_log, Live(), interval_s=3600).put(session())
    assert syncs == [saved_log.path]


def test_without_it_lines_are_written_at_once_and_synced_at_the_next_turn(tmp_path, syncs):
    # the flush policy "interval": a line is in the file (safe from kill -9) when put
    # returns, and on disk after the saver's next turn
    log_file = SessionLog(str(tmp_path / "sessions.jsonl"), sync_each_append=False)
    saver = SessionSaver(log_file, Live(), interval_s=3600)
    saver.put(session())
    saver.drop([session(OTHER)])
    assert lines_of(log_file) == [
        {"put": saved_module.record_of(session())}, {"drop": OTHER}]
    assert syncs == []
    saver.flush()
    assert syncs == [log_file.path]
    saver.flush()  # nothing appended since: nothing to sync
    assert syncs == [log_file.path]


def test_marked_sessions_are_saved_by_the_thread_within_the_interval(saved_log):
    a, b = session(), session(OTHER)
    live = Live(a, b)
    saver = SessionSaver(saved_log, live, interval_s=0.01)
    saver.put(a)
    saver.put(b)
    saver.start()
    try:
        a.positions = {("orders", 0): 9}
        saver.changed(a)
        wait_until(lambda: saved_positions(saved_log)[ID] == {("orders", 0): 9},
                   "the change is on disk")
        assert len(lines_of(saved_log)) == 3  # b was not written again
        size = os.path.getsize(saved_log.path)
        calls = live.calls
        wait_until(lambda: live.calls > calls + 2, "the thread goes round")
        assert os.path.getsize(saved_log.path) == size  # nothing marked: nothing written
    finally:
        saver.stop()


def test_stop_rewrites_once_more_then_never_again(saved_log):
    a = session()
    live = Live(a)
    saver = SessionSaver(saved_log, live, interval_s=3600)
    saver.start()
    a.positions = {("orders", 0): 5}
    saver.changed(a)
    saver.stop()
    assert lines_of(saved_log)[0] == {"format": 1}
    assert saved_positions(saved_log) == {ID: {("orders", 0): 5}}
    live.sessions.clear()
    saver.put(session(OTHER))
    saver.drop([a])
    saver.flush()
    saver.stop()
    assert saved_positions(saved_log) == {ID: {("orders", 0): 5}}


def test_a_session_closed_while_the_thread_saves_is_not_put_after_its_drop(saved_log,
                                                                          monkeypatch):
    a = session()
    saver = SessionSaver(saved_log, Live(a), interval_s=3600)
    saver.changed(a)
    in_flush, release = threading.Event(), threading.Event()
    real_append = saved_log.append
    appends: list = []

    def slow_append(lines):
        appends.append(lines)
        if len(appends) == 1:  # the flush's put waits until the drop has come
            in_flush.set()
            release.wait(5)
        real_append(lines)

    closing = threading.Thread(target=saver.drop, args=([a],))

    class Watched:
        """The saver's write lock, noting when the drop's thread asks for it."""

        def __init__(self, lock):
            self.lock, self.asked = lock, threading.Event()

        def __enter__(self):
            if threading.current_thread() is closing:
                self.asked.set()
            return self.lock.__enter__()

        def __exit__(self, *exc):
            return self.lock.__exit__(*exc)

    monkeypatch.setattr(saved_log, "append", slow_append)
    monkeypatch.setattr(saver, "_write_lock", Watched(saver._write_lock))
    flushing = threading.Thread(target=saver.flush)
    flushing.start()
    assert in_flush.wait(5)
    a.closed = True  # what ConsumerManager._end does before it asks for the drop
    closing.start()
    # the drop is at the lock (or, were there none, has written its line already)
    wait_until(lambda: saver._write_lock.asked.is_set() or len(appends) == 2,
               "the drop came while the flush writes")
    release.set()
    for t in (flushing, closing):
        t.join(5)
        assert not t.is_alive()
    assert [list(line) for line in lines_of(saved_log)] == [["put"], ["drop"]]
    assert saved_log.read() == []


def test_after_a_failed_write_the_log_is_rewritten_whole(saved_log, monkeypatch, caplog):
    a, b = session(), session(OTHER)
    saver = SessionSaver(saved_log, Live(a, b), interval_s=3600)
    saver.put(a)

    def full(_lines):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(saved_log, "append", full)
    with caplog.at_level(logging.INFO, logger="consumer_api.sessions.saver"):
        saver.put(b)
        saver.drop([a])
        assert caplog.text.count("cannot save the consumer sessions") == 1
        monkeypatch.undo()
        saver.put(b)  # the append may have been cut short: rewritten instead
    assert lines_of(saved_log)[0] == {"format": 1}
    assert set(saved_positions(saved_log)) == {ID, OTHER}
    assert "saved to" in caplog.text


# -- records in a response not yet delivered ---------------------------------------------------

def test_a_response_not_known_delivered_is_saved_as_not_consumed(engine, manager):
    """What a crash (kill -9) finds saved: the records of a response still on its way are
    consumed again after the restart, never skipped; once delivered, they are passed."""
    from consumer_api.sessions.collect import RecordLists
    from tests.sessions.conftest import produce

    engine.create_topic("t", 1)
    cid = manager.subscribe("g", ["t"], auto_offset_reset="earliest")["consumer_id"]
    session = manager._sessions[cid]
    produce(engine, "t", 0, 5)
    spans, _ = manager.consume(cid, timeout_ms=0, collector=RecordLists())
    assert manager.positions(cid) == {("t", 0): 5}
    assert saved_module.record_of(session)["positions"] == [["t", 0, 0]]
    manager.delivered(cid, spans)
    assert saved_module.record_of(session)["positions"] == [["t", 0, 5]]
    produce(engine, "t", 0, 2)
    spans, _ = manager.consume(cid, timeout_ms=0, collector=RecordLists())
    manager.give_back(cid, spans)  # never reached the client: consumed again anyway
    assert saved_module.record_of(session)["positions"] == [["t", 0, 5]]
    produce(engine, "t", 0, 1)
    chunks, _ = manager.consume(cid, timeout_ms=0)  # returned in process: delivered
    assert len(chunks[0][2]) == 3
    assert saved_module.record_of(session)["positions"] == [["t", 0, 8]]


def test_a_consume_that_moves_nothing_leaves_nothing_to_save(engine, manager):
    from tests.sessions.conftest import produce

    engine.create_topic("t", 1)
    cid = manager.subscribe("g", ["t"], auto_offset_reset="earliest")["consumer_id"]
    session = manager._sessions[cid]
    session.unsaved = False  # as the saver leaves it after writing the session
    assert manager.consume(cid, timeout_ms=0)[0] == []
    assert not session.unsaved  # an empty poll is not a line in the log
    produce(engine, "t", 0, 2)
    manager.consume(cid, timeout_ms=0)
    assert session.unsaved  # its position moved
