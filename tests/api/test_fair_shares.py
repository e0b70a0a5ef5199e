"""Fair shares over HTTP: waiting polls capped server-wide (the threads left after the
reserve) and per client, sessions per client; who the client is on an open server (the
peer address, X-Forwarded-For only from trusted proxies); what a refused client sees (429 in
the error envelope, naming the cap, with Retry-After for polls); refusals in /metrics; and a
newer consume on a session ending the one waiting there.

Apps come from ``make_api`` over the test's engine and the consumer manager on the fake
clock: a consume on an empty topic waits until something ends it (a record, a close, the
teardown's shutdown). Waiting consumes run on their own threads, each with its own test
client; every wait for them is bounded.
"""
from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from consumer_api.api.security import client_address, parse_trusted_proxies
from consumer_api.api.state import state_of
from consumer_api.app import configure_threads, create_app
from consumer_api.config import Config
from tests.api.conftest import assert_error
from tests.waiting import wait_until

pytestmark = pytest.mark.usefixtures("openapi_built_once")

BOUND_S = 5.0


def ok(resp, status=200):
    assert resp.status_code == status, resp.get_data(as_text=True)
    return resp.get_json()


class Peer:
    """Requests from one address (and optionally one X-Forwarded-For) to one app."""

    def __init__(self, app, address: str, forwarded_for: str | None = None):
        self.app = app
        self.environ = {"REMOTE_ADDR": address}
        if forwarded_for is not None:
            self.environ["HTTP_X_FORWARDED_FOR"] = forwarded_for
        self.client = self._client()

    def _client(self):
        client = self.app.test_client()
        client.environ_base.update(self.environ)
        return client

    def subscribe(self, group: str):
        return self.client.post("/api/consumers/subscribe",
                                json={"group_id": group, "topics": ["t"]})

    def session(self, group: str) -> str:
        return ok(self.subscribe(group))["consumer_id"]

    def consume(self, cid: str, timeout_ms: int = 60_000):
        return self.client.post(f"/api/consumers/{cid}/consume", json={"timeout_ms": timeout_ms})

    def start_consume(self, cid: str):
        """A consume on its own thread and client; a Future of the response."""
        pool = ThreadPoolExecutor(max_workers=1)
        client = self._client()
        future = pool.submit(lambda: client.post(f"/api/consumers/{cid}/consume",
                                                 json={"timeout_ms": 60_000}))
        pool.shutdown(wait=False)
        return future


@pytest.fixture
def make_app(data_dir, engine, manager):
    """An app with these settings over the test's engine and manager, topic ``t`` made;
    at teardown every waiting consume is answered (shutdown)."""
    def make(**settings):
        app = create_app(Config(data_dir=data_dir, **settings), backend=engine, manager=manager)
        if "t" not in [t.name for t in engine.topics.list()]:
            ok(app.test_client().post("/api/topics", json={"name": "t", "partitions": 1}), 201)
        return app

    yield make
    manager.shutdown()


def waiting(manager, n):
    wait_until(lambda: manager.waiting() == n, f"{n} waiting consume(s)")


def refusals(app) -> dict:
    text = app.test_client().get("/metrics").get_data(as_text=True)
    return {m.group(1): float(m.group(2)) for m in
            re.finditer(r'^consumer_api_refusals_total\{reason="(\w+)"\} (\S+)$', text, re.M)}


def gauge(app, name: str) -> float | None:
    text = app.test_client().get("/metrics").get_data(as_text=True)
    found = re.search(rf"^{name} (\S+)$", text, re.M)
    return None if found is None else float(found.group(1))


# -- the server's slots: the threads left after the reserve ---------------------------------

def test_past_the_threads_left_after_the_reserve_a_consume_gets_429_at_once(make_app, manager):
    app = make_app(reserved_threads=16, max_polls_per_client=100)
    configure_threads(app, 18)  # 2 threads for waiting polls
    assert gauge(app, "consumer_api_waiting_polls_limit") == 2
    peers = [Peer(app, f"10.0.0.{i}") for i in range(3)]
    cids = [p.session(f"g{i}") for i, p in enumerate(peers)]
    polls = [peers[i].start_consume(cids[i]) for i in range(2)]
    waiting(manager, 2)

    started = time.monotonic()
    resp = peers[2].consume(cids[2])
    assert time.monotonic() - started < BOUND_S
    details = assert_error(resp, 429, "too_many_polls")
    assert details == {"limit": 2, "scope": "server"}
    assert resp.headers["Retry-After"] == "1"
    assert "retry" in resp.get_json()["error"]
    assert refusals(app).get("server_polls") == 1
    # everything else still works: produce (which ends one wait), commit, health
    ok(app.test_client().post("/api/topics/t/records",
                              json={"encoding": "text", "records": [{"value": "x"}]}))
    assert [r["offset"] for r in ok(polls[0].result(BOUND_S))["records"]] == [0]
    ok(peers[2].client.post(f"/api/consumers/{cids[2]}/commit"))
    ok(app.test_client().get("/api/health"))


def test_a_consume_that_returns_records_or_does_not_wait_is_never_refused(make_app, manager):
    app = make_app()
    configure_threads(app, 1)  # fewer threads than the reserve: still one waiting slot
    assert manager.max_waiting_polls == 1
    a, b = Peer(app, "10.0.0.1"), Peer(app, "10.0.0.2")
    cid_a, cid_b = a.session("ga"), b.session("gb")
    a.start_consume(cid_a)
    waiting(manager, 1)
    assert ok(b.consume(cid_b, timeout_ms=0))["records"] == []
    ok(app.test_client().post("/api/topics/t/records",
                              json={"encoding": "text", "records": [{"value": "x"}]}))
    waiting(manager, 0)
    a.start_consume(cid_a)
    waiting(manager, 1)
    assert len(ok(b.consume(cid_b))["records"]) == 1


def test_without_configure_threads_there_is_no_server_wide_cap(make_app, manager):
    app = make_app()
    assert gauge(app, "consumer_api_waiting_polls_limit") is None
    peers = [Peer(app, f"10.0.1.{i}") for i in range(20)]
    for i, peer in enumerate(peers):
        peer.start_consume(peer.session(f"g{i}"))
    waiting(manager, 20)


# -- a client's share -------------------------------------------------------------------------

def test_an_address_past_its_polls_gets_429_and_another_address_does_not(make_app, manager):
    app = make_app(max_polls_per_client=1)
    mine, theirs = Peer(app, "10.0.0.1"), Peer(app, "10.0.0.2")
    first, second = mine.session("g1"), mine.session("g2")
    mine.start_consume(first)
    waiting(manager, 1)
    resp = mine.consume(second)
    assert assert_error(resp, 429, "too_many_polls") == {
        "limit": 1, "scope": "client", "client": "address 10.0.0.1"}
    assert resp.headers["Retry-After"] == "1"
    theirs.start_consume(theirs.session("g3"))
    waiting(manager, 2)
    assert refusals(app).get("client_polls") == 1


def test_an_address_past_its_sessions_gets_429_naming_its_cap(make_app):
    app = make_app(max_sessions_per_client=2)
    mine, theirs = Peer(app, "10.0.0.1"), Peer(app, "10.0.0.2")
    held = [mine.session("g") for _ in range(2)]
    details = assert_error(mine.subscribe("g"), 429, "too_many_consumers")
    assert details == {"limit": 2, "scope": "client", "client": "address 10.0.0.1",
                       "max_sessions": 2}
    theirs.session("g")
    ok(mine.client.delete(f"/api/consumers/{held[0]}"))
    mine.session("g")
    assert refusals(app).get("client_sessions") == 1


def test_the_servers_session_cap_names_the_server(make_app, data_dir, engine):
    make_app()  # topic t
    app = create_app(Config(data_dir=data_dir, max_sessions=1), backend=engine)  # own manager
    try:
        Peer(app, "10.0.0.1").session("g")
        details = assert_error(Peer(app, "10.0.0.2").subscribe("g"), 429, "too_many_consumers")
        assert details == {"limit": 1, "scope": "server", "max_sessions": 1}
        assert refusals(app).get("server_sessions") == 1
    finally:
        state_of(app).manager.shutdown()


# -- who the client is: X-Forwarded-For ---------------------------------------------------

def test_x_forwarded_for_from_an_untrusted_peer_is_ignored(make_app, manager):
    app = make_app(max_polls_per_client=1)
    first = Peer(app, "10.0.0.1", forwarded_for="203.0.113.5")
    first.start_consume(first.session("g1"))
    waiting(manager, 1)
    spoofing = Peer(app, "10.0.0.1", forwarded_for="203.0.113.6")
    details = assert_error(spoofing.consume(spoofing.session("g2")), 429, "too_many_polls")
    assert details["client"] == "address 10.0.0.1"


def test_behind_a_trusted_proxy_each_forwarded_address_is_a_client(make_app, manager):
    app = make_app(max_polls_per_client=1, trusted_proxies="10.0.0.0/24, 192.0.2.1")
    alice = Peer(app, "10.0.0.1", forwarded_for="203.0.113.5")
    alice.start_consume(alice.session("g1"))
    waiting(manager, 1)
    bob = Peer(app, "10.0.0.1", forwarded_for="203.0.113.6")
    bob.start_consume(bob.session("g2"))
    waiting(manager, 2)
    # alice again: what she puts left of the proxy's entry, or a second proxy, changes nothing
    for forwarded in ("198.51.100.1, 203.0.113.5", "203.0.113.5, 192.0.2.1",
                      "203.0.113.5 ,, 10.0.0.9"):
        again = Peer(app, "10.0.0.2", forwarded_for=forwarded)
        details = assert_error(again.consume(again.session("g3")), 429, "too_many_polls")
        assert details["client"] == "address 203.0.113.5", forwarded


def test_without_a_forwarded_address_the_trusted_proxy_is_the_client(make_app):
    app = make_app(max_sessions_per_client=1, trusted_proxies="10.0.0.1")
    Peer(app, "10.0.0.1").session("g")
    details = assert_error(Peer(app, "10.0.0.1").subscribe("g"), 429, "too_many_consumers")
    assert details["client"] == "address 10.0.0.1"


TRUSTED = parse_trusted_proxies("10.0.0.0/8,2001:db8::/32,127.0.0.1")


@pytest.mark.parametrize("peer,forwarded,client", [
    ("198.51.100.7", "203.0.113.5", "198.51.100.7"),  # untrusted peer: its header ignored
    ("10.1.2.3", None, "10.1.2.3"),
    ("10.1.2.3", "", "10.1.2.3"),
    ("10.1.2.3", "203.0.113.5", "203.0.113.5"),
    ("10.1.2.3", "6.6.6.6, 203.0.113.5", "203.0.113.5"),  # the left part is the client's
    ("10.1.2.3", "203.0.113.5, 10.9.9.9, 127.0.0.1", "203.0.113.5"),  # through 3 proxies
    ("10.1.2.3", "203.0.113.5:4711", "203.0.113.5"),
    ("10.1.2.3", "[2001:db9::1]:443", "2001:db9::1"),
    ("10.1.2.3", "::ffff:203.0.113.5", "203.0.113.5"),
    ("10.1.2.3", "203.0.113.5, ", "203.0.113.5"),
    ("10.1.2.3", "6.6.6.6, unknown", "10.1.2.3"),  # malformed: nothing left of it believed
    ("10.1.2.3", "6.6.6.6, not an address, 10.0.0.2", "10.0.0.2"),
    ("10.1.2.3", "10.0.0.5", "10.0.0.5"),  # only proxies: the furthest one
    ("2001:db8::1", "2001:db9::7", "2001:db9::7"),
    ("::ffff:10.1.2.3", "203.0.113.5", "203.0.113.5"),
    ("", "203.0.113.5", "unknown"),
])
def test_client_address(peer, forwarded, client):
    assert client_address(peer, forwarded, TRUSTED) == client


@pytest.mark.parametrize("bad", ["10.0.0.300", "proxy.local", "10.0.0.1/8", "10.0.0.0/33"])
def test_a_bad_trusted_proxy_stops_the_app_naming_it(data_dir, engine, bad):
    with pytest.raises(ValueError) as refused:
        create_app(Config(data_dir=data_dir, trusted_proxies=f"127.0.0.1, {bad}"),
                   backend=engine)
    assert "CONSUMER_API_TRUSTED_PROXIES" in str(refused.value)
    assert repr(bad) in str(refused.value)


# -- one session, one waiting consume ---------------------------------------------------------

def test_a_retried_consume_ends_the_waiting_one_empty_and_gets_the_records(make_app, manager):
    app = make_app(max_polls_per_client=1)
    peer = Peer(app, "10.0.0.1")
    cid = peer.session("g")
    abandoned = peer.start_consume(cid)
    waiting(manager, 1)
    retry = peer.start_consume(cid)  # the client's own cap (1) does not stand in the way
    resp = abandoned.result(BOUND_S)
    assert ok(resp)["records"] == []
    waiting(manager, 1)
    ok(app.test_client().post("/api/topics/t/records",
                              json={"encoding": "text", "records": [{"value": "late"}]}))
    assert [r["offset"] for r in ok(retry.result(BOUND_S))["records"]] == [0]


def test_the_openapi_document_declares_429_with_retry_after_for_consume(make_app):
    doc = ok(make_app().test_client().get("/swagger.json"))
    consume = doc["paths"]["/api/consumers/{consumer_id}/consume"]["post"]
    assert consume["responses"]["429"] == {"$ref": "#/components/responses/TooManyPolls"}
    assert "Retry-After" in doc["components"]["responses"]["TooManyPolls"]["headers"]
    assert "Retry-After" in consume["description"]

