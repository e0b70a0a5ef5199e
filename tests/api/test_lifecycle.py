"""The server's life in process: ``starting`` (``create_app(..., defer_open=True)``, logs
recovered by :func:`start_background` in a thread), ``ready``, ``draining``
(:func:`begin_shutdown`, SIGTERM) and closed (:func:`shutdown`, worker exit).

While not ready the health probes answer (``/api/health/ready`` with 503) and every other
``/api`` route is ``503 unavailable``. Draining answers waiting polls at once, empty, and
commits nothing on the clients' behalf. Waits are bounded polls of a condition.
"""
from __future__ import annotations

import gc
import os
import threading
import time
from pathlib import Path

import pytest

from consumer_api.api.state import state_of
from consumer_api.app import begin_shutdown, create_app, backend_of, shutdown, start_background
from consumer_api.config import Config
from consumer_api.embedded.engine import Engine
from consumer_api.records import NewRecord
from consumer_api.errors import DataDirLocked
from tests.api.conftest import assert_error, b64
from tests.waiting import wait_until

pytestmark = pytest.mark.usefixtures("openapi_built_once")

BOUND_S = 5.0
HEALTH = ("/api/health", "/api/health/live")
READY = "/api/health/ready"


def assert_unavailable(resp, state):
    details = assert_error(resp, 503, "unavailable")
    assert details.get("state") == state, details


def assert_ok(resp, status=200):
    assert resp.status_code == status, resp.get_data(as_text=True)
    return resp.get_json()


@pytest.fixture(autouse=True)
def restore_gc():
    """start_background tunes the collector of the whole process: undo it."""
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


@pytest.fixture
def apps():
    """Apps made by a test are shut down at teardown (threads stopped, lock released)."""
    made = []
    yield made
    for app in made:
        shutdown(app)


@pytest.fixture
def make_app(data_dir, apps):
    def make(defer_open=True, **overrides):
        app = create_app(Config(data_dir=data_dir, **overrides), defer_open=defer_open)
        apps.append(app)
        return app
    return make


@pytest.fixture
def blocked_open(monkeypatch):
    """``blocked_open["install"]()``: from then on Engine.open waits for ``release`` (set at
    teardown in any case)."""
    real_open = Engine.open
    state = {"entered": threading.Event(), "release": threading.Event(),
             "done": threading.Event()}

    def open_when_released(self):
        state["entered"].set()
        assert state["release"].wait(30), "never released"
        try:
            real_open(self)
        finally:
            state["done"].set()

    state["install"] = lambda: monkeypatch.setattr(Engine, "open", open_when_released)
    yield state
    state["release"].set()
    if state["entered"].is_set():
        state["done"].wait(BOUND_S)


def seed(data_dir, topic="kept", n=3):
    """A data directory with a topic of ``n`` records (written by an engine, then closed)."""
    eng = Engine(Config(data_dir=data_dir))
    try:
        eng.create_topic(topic, 1)
        eng.produce(topic, [NewRecord(key=None, value=f"v{i}".encode(), headers=None,
                                      timestamp=None) for i in range(n)], [None] * n)
    finally:
        eng.close()


def routes_needing_the_engine(client):
    return [client.get("/api/topics"),
            client.post("/api/topics", json={"name": "t", "partitions": 1}),
            client.get("/api/topics/kept"),
            client.post("/api/topics/kept/records", json={"records": [{"value": b64("x")}]}),
            client.get("/api/topics/kept/partitions/0/records"),
            client.post("/api/consumers/subscribe", json={"group_id": "g", "topics": ["kept"]}),
            client.post("/api/consumers/abc/consume", json={"timeout_ms": 0}),
            client.get("/api/consumer-groups"),
            client.get("/api/no/such/route")]


# -- starting -------------------------------------------------------------------------------

def test_a_deferred_app_answers_health_probes_and_503_elsewhere(make_app, data_dir):
    seed(data_dir)
    app = make_app()
    engine = backend_of(app)
    assert not engine.is_open
    client = app.test_client()
    for path in HEALTH:
        assert assert_ok(client.get(path)) == {"status": "ok"}, path
    assert_unavailable(client.get(READY), "starting")
    for resp in routes_needing_the_engine(client):
        assert_unavailable(resp, "starting")
    # the metrics and the spec answer (no engine state yet)
    assert client.get("/metrics").status_code == 200
    assert client.get("/swagger.json").status_code == 200
    # nothing was opened, nothing started: still starting
    assert not engine.is_open
    assert_unavailable(client.get(READY), "starting")
    # but the data directory is ours already
    assert (Path(data_dir) / ".lock").read_text().strip() == str(os.getpid())


def test_create_app_without_defer_open_opens_at_once(make_app, data_dir):
    seed(data_dir)
    app = make_app(defer_open=False)
    assert backend_of(app).is_open
    client = app.test_client()
    assert assert_ok(client.get(READY)) == {"status": "ok"}
    assert [t["name"] for t in assert_ok(client.get("/api/topics"))["topics"]] == ["kept"]
    assert len(assert_ok(client.get("/api/topics/kept/partitions/0/records"))["records"]) == 3


def test_start_background_recovers_in_the_background_then_is_ready(make_app, data_dir,
                                                                   blocked_open):
    seed(data_dir)
    blocked_open["install"]()
    app = make_app()
    client = app.test_client()
    started = time.monotonic()
    start_background(app)
    assert time.monotonic() - started < 1.0, "start_background must not wait for the open"
    assert blocked_open["entered"].wait(BOUND_S), "the logs are never opened"
    # recovering: probes answer, work does not
    for path in HEALTH:
        assert assert_ok(client.get(path)) == {"status": "ok"}
    assert_unavailable(client.get(READY), "starting")
    for resp in routes_needing_the_engine(client):
        assert_unavailable(resp, "starting")
    assert not backend_of(app).is_open

    blocked_open["release"].set()
    wait_until(lambda: client.get(READY).status_code == 200, "ready")
    assert backend_of(app).is_open
    assert client.get(READY).get_json() == {"status": "ok"}
    for path in HEALTH:
        assert assert_ok(client.get(path)) == {"status": "ok"}
    # the recovered data is served, and new work is taken
    assert len(assert_ok(client.get("/api/topics/kept/partitions/0/records"))["records"]) == 3
    assert_ok(client.post("/api/topics", json={"name": "t", "partitions": 1}), 201)
    assert_ok(client.post("/api/topics/t/records", json={"records": [{"value": b64("x")}]}))
    assert_ok(client.get("/api/consumer-groups"))


def test_start_background_on_an_open_engine_is_ready_at_once(make_app):
    app = make_app(defer_open=False)
    start_background(app)
    assert assert_ok(app.test_client().get(READY)) == {"status": "ok"}


# -- draining -------------------------------------------------------------------------------

def test_begin_shutdown_drains_waiting_polls_and_commits_nothing(make_app, data_dir):
    app = make_app()
    client = app.test_client()
    start_background(app)
    wait_until(lambda: client.get(READY).status_code == 200, "ready")
    manager = state_of(app).manager
    assert_ok(client.post("/api/topics", json={"name": "t", "partitions": 1}), 201)
    assert_ok(client.post("/api/topics/t/records",
                          json={"records": [{"value": b64(f"v{i}")} for i in range(3)]}))

    def subscribe(group, auto_commit):
        return assert_ok(client.post("/api/consumers/subscribe", json={
            "group_id": group, "topics": ["t"], "auto_offset_reset": "earliest",
            "auto_commit": auto_commit}))["consumer_id"]

    def consume(cid, **body):
        body.setdefault("timeout_ms", 0)
        return client.post(f"/api/consumers/{cid}/consume", json=body)

    # A: auto-commit, has read everything (its positions are pending, not committed)
    a = subscribe("ga", True)
    assert len(assert_ok(consume(a))["records"]) == 3
    # B: manual commits, committed 1 of the 3 it read; it will be waiting
    b = subscribe("gb", False)
    assert len(assert_ok(consume(b))["records"]) == 3
    assert_ok(client.post(f"/api/consumers/{b}/commit", json={"offsets": {"t": {"0": 1}}}))
    # C: auto-commit, committed 2 (by its second consume), read 3; it will be waiting
    c = subscribe("gc", True)
    assert len(assert_ok(consume(c, max_records=2))["records"]) == 2
    assert len(assert_ok(consume(c))["records"]) == 1  # commits 2 first
    committed_before = {g: manager.backend.committed(g) for g in ("ga", "gb", "gc")}
    assert committed_before == {"ga": {}, "gb": {("t", 0): 1}, "gc": {("t", 0): 2}}

    results: dict = {}

    def waiting(cid):
        sent = time.monotonic()
        resp = app.test_client().post(f"/api/consumers/{cid}/consume",
                                      json={"timeout_ms": 60_000})
        results[cid] = (resp.status_code, resp.get_json(), time.monotonic() - sent)

    # C's waiting consume commits what the previous one returned (the documented
    # auto-commit), before it waits: that is the client's own commit
    threads = [threading.Thread(target=waiting, args=(cid,), daemon=True) for cid in (b, c)]
    for t in threads:
        t.start()
    wait_until(lambda: manager.waiting() == 2, "both consumes wait")
    committed_waiting = {g: manager.backend.committed(g) for g in ("ga", "gb", "gc")}
    assert committed_waiting == {"ga": {}, "gb": {("t", 0): 1}, "gc": {("t", 0): 3}}

    drained_at = time.monotonic()
    begin_shutdown(app)
    for t in threads:
        t.join(BOUND_S)
        assert not t.is_alive(), "a waiting poll was not answered"
    for cid in (b, c):
        status, body, took = results[cid]
        assert status == 200, (cid, body)
        assert body["records"] == [], body
        assert took < 60, took
    assert time.monotonic() - drained_at < 2.0, "the polls were not answered promptly"
    assert manager.waiting() == 0

    # draining: not ready, no new work; the probes of life still answer
    assert_unavailable(client.get(READY), "draining")
    for path in HEALTH:
        assert assert_ok(client.get(path)) == {"status": "ok"}
    assert_unavailable(consume(a), "draining")
    assert_unavailable(consume(b, timeout_ms=60_000), "draining")
    assert_unavailable(client.post(f"/api/consumers/{a}/commit", json={}), "draining")
    assert_unavailable(client.delete(f"/api/consumers/{a}", query_string={"commit": "true"}),
                       "draining")
    assert_unavailable(client.post("/api/consumers/subscribe", json={
        "group_id": "gd", "topics": ["t"]}), "draining")
    assert_unavailable(client.post("/api/topics/t/records",
                                   json={"records": [{"value": b64("late")}]}), "draining")
    assert {g: manager.backend.committed(g) for g in ("ga", "gb", "gc")} == committed_waiting

    # closed: the engine is shut and the directory released; nothing was committed for them
    shutdown(app)
    engine = backend_of(app)
    assert not engine.is_open
    again = Engine(Config(data_dir=data_dir))
    try:
        assert {g: again.groups.committed(g) for g in ("ga", "gb", "gc", "gd")} == {
            **committed_waiting, "gd": {}}
        assert again.log_offsets("t", 0)[1] == 3
    finally:
        again.close()


def test_draining_while_starting_stays_draining(make_app, data_dir, blocked_open):
    seed(data_dir)
    blocked_open["install"]()
    app = make_app()
    client = app.test_client()
    start_background(app)
    assert blocked_open["entered"].wait(BOUND_S)
    begin_shutdown(app)
    assert_unavailable(client.get(READY), "draining")
    blocked_open["release"].set()
    assert blocked_open["done"].wait(BOUND_S)
    wait_until(lambda: backend_of(app).is_open, "the open finished")
    threads = [t for t in threading.enumerate() if t.name == "open-logs"]
    for t in threads:
        t.join(BOUND_S)
    assert_unavailable(client.get(READY), "draining")
    assert_unavailable(client.get("/api/topics"), "draining")


def test_shutdown_closes_the_engine_and_releases_the_directory(make_app, data_dir):
    app = make_app(defer_open=False)
    start_background(app)
    client = app.test_client()
    assert_ok(client.post("/api/topics", json={"name": "t", "partitions": 1}), 201)
    shutdown(app)
    assert not backend_of(app).is_open
    assert_unavailable(client.get(READY), "draining")
    # the directory is free again (DataDirLocked here if it was not released), the topic kept
    again = Engine(Config(data_dir=data_dir))
    try:
        assert [t["name"] for t in again.list_topics()] == ["t"]
    finally:
        again.close()


def test_shutdown_of_an_app_that_never_started(make_app, data_dir):
    app = make_app()
    shutdown(app)
    assert not backend_of(app).is_open
    other = create_app(Config(data_dir=data_dir), defer_open=True)  # the lock was released
    shutdown(other)


# -- sessions across a restart ---------------------------------------------------------------

def start(app):
    start_background(app)
    client = app.test_client()
    wait_until(lambda: client.get(READY).status_code == 200, "ready")
    return client


def test_sessions_come_back_at_start_and_a_bad_table_never_stops_it(make_app, data_dir):
    seed(data_dir, n=4)
    first = make_app()
    client = start(first)
    cid = assert_ok(client.post("/api/consumers/subscribe", json={
        "group_id": "g", "topics": ["kept"], "auto_offset_reset": "earliest"}))["consumer_id"]
    assert len(assert_ok(client.post(f"/api/consumers/{cid}/consume",
                                     json={"max_records": 2, "timeout_ms": 0}))["records"]) == 2
    shutdown(first)  # saves the sessions as they are

    client = start(make_app())
    offsets = assert_ok(client.get(f"/api/consumers/{cid}/position"))["offsets"]
    assert offsets == {"kept": {"0": 2}}
    shutdown(client.application)

    saved = Path(data_dir) / "internal" / "sessions.jsonl"
    saved.write_bytes(b"\x00" + saved.read_bytes())  # not the log any more
    client = start(make_app())
    assert_error(client.get(f"/api/consumers/{cid}/position"), 404, "consumer_not_found")
    assert (Path(data_dir) / "internal" / "sessions.jsonl.corrupt").exists()


def test_with_persist_sessions_off_nothing_is_saved(make_app, data_dir):
    seed(data_dir)
    app = make_app(persist_sessions=False)
    client = start(app)
    assert_ok(client.post("/api/consumers/subscribe", json={"group_id": "g",
                                                            "topics": ["kept"]}))
    shutdown(app)
    assert not (Path(data_dir) / "internal" / "sessions.jsonl").exists()


# -- one process per data directory ---------------------------------------------------------

@pytest.mark.parametrize("first_deferred", [True, False])
def test_a_second_app_on_the_same_data_dir_fails_fast(make_app, data_dir, first_deferred):
    first = make_app(defer_open=first_deferred)
    started = time.monotonic()
    with pytest.raises(DataDirLocked) as info:
        create_app(Config(data_dir=data_dir), defer_open=True)
    assert time.monotonic() - started < 1.0
    assert "in use by another process" in str(info.value)
    with pytest.raises(DataDirLocked):
        create_app(Config(data_dir=data_dir))
    # the first one is untouched
    start_background(first)
    client = first.test_client()
    wait_until(lambda: client.get(READY).status_code == 200, "the first app is ready")
    assert_ok(client.post("/api/topics", json={"name": "t", "partitions": 1}), 201)
    shutdown(first)
    second = create_app(Config(data_dir=data_dir), defer_open=True)
    shutdown(second)
