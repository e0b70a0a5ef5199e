"""Consumer sessions against the real server (gunicorn), over HTTP with ``requests``.

* The lifecycle of the design's example -- subscribe, consume, commit, seek, replay,
  unsubscribe -- with a server restart (SIGTERM, then a new server on the same data
  directory) in the middle, on servers that do not keep their sessions
  (``CONSUMER_API_PERSIST_SESSIONS=false``): sessions end with the server, committed offsets
  do not. (Sessions kept across restarts: test_sessions_across_restarts.py.)
* Long-polls: an append to an owned partition wakes a waiting consume at once; an append
  to a topic it does not read does not end its wait.

Expectations come from the contract (API.md), not from the server's code. The only waits are
bounded polls of server state (readiness, "the consume has started").
"""
from __future__ import annotations

import signal
import threading
import time

import pytest
import requests

from tests.waiting import wait_until

TOPIC = "orders"
PARTITIONS = 3
PER_PARTITION = 10
GROUP = "lifecycle"
HTTP_TIMEOUT = (2.0, 60.0)
#: servers whose sessions end with them
FORGETFUL = {"CONSUMER_API_PERSIST_SESSIONS": "false"}


class Api:
    """JSON calls on one server; every call checks the status (and the error code)."""

    def __init__(self, base_url: str):
        self.base_url = base_url
        self.http = requests.Session()

    def close(self):
        """Drop the kept-alive connection (gthread lingers on it at shutdown)."""
        self.http.close()

    def call(self, method, path, status=200, code=None, **kwargs):
        kwargs.setdefault("timeout", HTTP_TIMEOUT)
        resp = self.http.request(method, self.base_url + path, **kwargs)
        assert resp.status_code == status, f"{method} {path}: {resp.status_code} {resp.text}"
        assert resp.headers["Content-Type"].startswith("application/json"), resp.headers
        body = resp.json()
        if code is not None:
            assert set(body) == {"error", "code", "details"}, body
            assert body["code"] == code, body
        return body

    def produce(self, topic, values, partition):
        body = self.call("POST", f"/api/topics/{topic}/records", json={
            "encoding": "text",
            "records": [{"value": v, "partition": partition} for v in values]})
        return [o["offset"] for o in body["offsets"]]

    def subscribe(self, group, topics, **extra):
        body = self.call("POST", "/api/consumers/subscribe",
                         json={"group_id": group, "topics": topics, **extra})
        assert set(body) == {"consumer_id", "group_id", "topics", "assignment", "generation"}
        return body

    def consume(self, cid, **body):
        body.setdefault("timeout_ms", 0)
        out = self.call("POST", f"/api/consumers/{cid}/consume", json=body)
        return out["records"]

    def consume_all(self, cid, **body):
        got = []
        while batch := self.consume(cid, **body):
            got.extend(batch)
        return got

    def positions(self, cid):
        return self.call("GET", f"/api/consumers/{cid}/position")["offsets"]

    def committed(self, cid):
        return self.call("GET", f"/api/consumers/{cid}/committed")["offsets"]

    def member_heartbeat_ago(self, group, cid):
        for member in self.call("GET", f"/api/consumer-groups/{group}")["members"]:
            if member["consumer_id"] == cid:
                return member["last_heartbeat_ms_ago"]
        raise AssertionError(f"{cid} is not a member of {group}")


def text_records(records):
    """``{(partition, offset): value}``; fails on a record delivered twice."""
    out = {}
    for r in records:
        key = (r["partition"], r["offset"])
        assert key not in out, f"record {key} delivered twice in one pass"
        out[key] = r["value"]
    return out


def expected(start: dict, end: dict):
    """``{(p, o): "p<p>-<o>"}`` for start[p] <= o < end[p]."""
    return {(p, o): f"p{p}-{o}" for p in range(PARTITIONS) for o in range(start[p], end[p])}


def wire(offsets: dict) -> dict:
    return {TOPIC: {str(p): o for p, o in sorted(offsets.items())}}


# -- lifecycle across a restart -------------------------------------------------------------

def test_lifecycle_survives_a_restart_with_no_committed_offset_lost(server_factory):
    first = server_factory(**FORGETFUL)
    api = Api(first.base_url)
    api.call("POST", "/api/topics", 201, json={"name": TOPIC, "partitions": PARTITIONS})
    for p in range(PARTITIONS):
        assert api.produce(TOPIC, [f"p{p}-{o}" for o in range(PER_PARTITION)], p) == list(
            range(PER_PARTITION))

    sub = api.subscribe(GROUP, [TOPIC], auto_offset_reset="earliest", encoding="text")
    old_id = sub["consumer_id"]
    assert sub["assignment"] == {TOPIC: list(range(PARTITIONS))}

    # consume part of the data and commit exactly what was returned
    delivered = {}
    for _ in range(3):
        batch = text_records(api.consume(old_id, max_records=4))
        assert batch and not set(batch) & set(delivered)
        delivered.update(batch)
    done = {p: 1 + max((o for q, o in delivered if q == p), default=-1)
            for p in range(PARTITIONS)}
    assert delivered == expected({p: 0 for p in range(PARTITIONS)}, done)  # in order, no gap
    assert sum(done.values()) == 12 < PARTITIONS * PER_PARTITION
    assert api.positions(old_id) == wire(done)
    commit = api.call("POST", f"/api/consumers/{old_id}/commit", json={})
    assert commit == {"success": True, "message": "offsets committed", "offsets": wire(done)}
    assert api.committed(old_id) == wire(done)
    # delivered after the commit: must come again after the restart
    uncommitted = text_records(api.consume(old_id, max_records=4))
    assert uncommitted and not set(uncommitted) & set(delivered)

    # -- restart ---------------------------------------------------------------------------
    api.close()
    rc = first.stop(signal.SIGTERM)
    assert rc == 0, first.describe()
    second = server_factory(first.data_dir, **FORGETFUL)
    api = Api(second.base_url)

    # the session ended with the old server
    api.call("GET", f"/api/consumers/{old_id}/position", 404, code="consumer_not_found")
    api.call("POST", f"/api/consumers/{old_id}/consume", 404, code="consumer_not_found",
             json={"timeout_ms": 0})
    api.call("POST", f"/api/consumers/{old_id}/commit", 404, code="consumer_not_found", json={})
    api.call("DELETE", f"/api/consumers/{old_id}", 404, code="consumer_not_found")
    # the group kept its commits (and lost its member)
    group = api.call("GET", f"/api/consumer-groups/{GROUP}")
    assert group["state"] == "Empty" and group["members"] == []
    assert {r["partition"]: (r["committed_offset"], r["high_watermark"], r["lag"])
            for r in group["offsets"] if r["topic"] == TOPIC} == {
        p: (done[p], PER_PARTITION, PER_PARTITION - done[p]) for p in range(PARTITIONS)}

    # a new member (auto_offset_reset "latest") resumes exactly at the committed offsets
    new_id = api.subscribe(GROUP, [TOPIC], encoding="text")["consumer_id"]
    assert new_id != old_id
    assert api.committed(new_id) == wire(done)
    assert api.positions(new_id) == wire(done)
    rest = text_records(api.consume_all(new_id, max_records=7))
    everything = {p: PER_PARTITION for p in range(PARTITIONS)}
    assert rest == expected(done, everything)  # nothing skipped, nothing already committed
    assert set(uncommitted) <= set(rest)
    # producing goes on; the member gets the new records
    for p in range(PARTITIONS):
        assert api.produce(TOPIC, [f"p{p}-{PER_PARTITION}"], p) == [PER_PARTITION]
    assert text_records(api.consume_all(new_id)) == expected(
        everything, {p: PER_PARTITION + 1 for p in range(PARTITIONS)})

    # seek to 0 replays everything
    for p in range(PARTITIONS):
        moved = api.call("POST", f"/api/consumers/{new_id}/seek",
                         json={"topic": TOPIC, "partition": p, "offset": 0})
        assert moved == {"success": True, "message": "offset updated",
                         "offsets": {TOPIC: {str(p): 0}}}
    replay = text_records(api.consume_all(new_id))
    assert replay == expected({p: 0 for p in range(PARTITIONS)},
                              {p: PER_PARTITION + 1 for p in range(PARTITIONS)})

    # unsubscribe (committing first): the group keeps the final offsets
    closed = api.call("DELETE", f"/api/consumers/{new_id}", params={"commit": "true"})
    assert closed == {"message": "consumer closed"}
    api.call("GET", f"/api/consumers/{new_id}/position", 404, code="consumer_not_found")
    group = api.call("GET", f"/api/consumer-groups/{GROUP}")
    assert group["members"] == []
    assert {r["partition"]: r["lag"] for r in group["offsets"]} == {
        p: 0 for p in range(PARTITIONS)}
    api.close()


def test_committed_offsets_survive_a_crash(server_factory):
    first = server_factory(**FORGETFUL)
    api = Api(first.base_url)
    api.call("POST", "/api/topics", 201, json={"name": TOPIC, "partitions": 1})
    api.produce(TOPIC, [f"p0-{o}" for o in range(5)], 0)
    cid = api.subscribe(GROUP, [TOPIC], auto_offset_reset="earliest",
                        encoding="text")["consumer_id"]
    assert [r["offset"] for r in api.consume(cid, max_records=3)] == [0, 1, 2]
    assert api.call("POST", f"/api/consumers/{cid}/commit", json={})["offsets"] == {
        TOPIC: {"0": 3}}
    api.close()
    first.kill()  # SIGKILL: no shutdown hook runs
    second = server_factory(first.data_dir, **FORGETFUL)
    api = Api(second.base_url)
    new_id = api.subscribe(GROUP, [TOPIC], encoding="text")["consumer_id"]
    assert api.positions(new_id) == {TOPIC: {"0": 3}}
    assert [(r["offset"], r["value"]) for r in api.consume_all(new_id)] == [
        (3, "p0-3"), (4, "p0-4")]
    api.close()


# -- long-polls -----------------------------------------------------------------------------

class BackgroundConsume(threading.Thread):
    """One consume request in its own thread (and connection); times when it returned."""

    def __init__(self, base_url, cid, **body):
        super().__init__(daemon=True)
        self.url = f"{base_url}/api/consumers/{cid}/consume"
        self.body = body
        self.sent_at = self.returned_at = None
        self.response = self.error = None

    def run(self):
        self.sent_at = time.monotonic()
        try:
            self.response = requests.post(self.url, json=self.body, timeout=HTTP_TIMEOUT,
                                          headers={"Connection": "close"})
        except Exception as exc:  # reported by result()
            self.error = exc
        finally:
            self.returned_at = time.monotonic()

    def result(self, limit_s):
        self.join(limit_s)
        assert not self.is_alive(), f"the consume did not return within {limit_s} s"
        if self.error is not None:
            raise self.error
        assert self.response.status_code == 200, self.response.text
        return self.response.json()["records"]


def start_waiting_consume(api, base_url, group, cid, timeout_ms):
    """Start a consume in the background once the session has been idle a while, and return
    when the server has taken it (its heartbeat, ``last_heartbeat_ms_ago``, resets)."""
    wait_until(lambda: api.member_heartbeat_ago(group, cid) >= 300, "the session is idle")
    consume = BackgroundConsume(base_url, cid, timeout_ms=timeout_ms)
    consume.start()
    wait_until(lambda: api.member_heartbeat_ago(group, cid) < 250,
               "the server has taken the consume")
    assert consume.is_alive(), "the consume returned without records available"
    return consume


@pytest.fixture
def lp(server):
    api = Api(server.base_url)
    api.call("POST", "/api/topics", 201, json={"name": "mine", "partitions": 2})
    api.call("POST", "/api/topics", 201, json={"name": "other", "partitions": 1})
    cid = api.subscribe("lp", ["mine"])["consumer_id"]
    yield api, server, cid
    api.close()


def test_a_long_poll_returns_as_soon_as_an_owned_partition_gets_a_record(lp):
    api, server, cid = lp
    consume = start_waiting_consume(api, server.base_url, "lp", cid, timeout_ms=30_000)
    before = time.monotonic()
    assert api.produce("mine", ["wake up"], 1) == [0]
    produced = time.monotonic()
    records = consume.result(limit_s=10)
    latency = consume.returned_at - produced
    waited = produced - consume.sent_at
    print(f"\nlong-poll: waited {waited * 1000:.0f} ms; returned {latency * 1000:.1f} ms after "
          f"the produce response ({(consume.returned_at - before) * 1000:.1f} ms after the "
          "produce request)")
    assert [(r["topic"], r["partition"], r["offset"], r["value"]) for r in records] == [
        ("mine", 1, 0, "d2FrZSB1cA==")]  # base64 of "wake up"
    assert latency < 2.0, f"the consume returned {latency:.2f} s after the produce"


def test_a_record_on_a_topic_not_read_does_not_end_the_wait(lp):
    api, server, cid = lp
    consume = start_waiting_consume(api, server.base_url, "lp", cid, timeout_ms=1500)
    api.produce("other", ["not for you"], 0)
    produced = time.monotonic()
    records = consume.result(limit_s=10)
    took = consume.returned_at - consume.sent_at
    print(f"\nlong-poll on an unrelated topic: returned empty after {took * 1000:.0f} ms "
          f"({(consume.returned_at - produced) * 1000:.0f} ms after the produce)")
    assert records == []
    assert took >= 1.45, f"returned after {took:.2f} s, before its 1.5 s timeout"
    assert took < 5, f"returned only after {took:.2f} s"
    # the session read nothing, and still reads its own topic
    assert api.positions(cid) == {"mine": {"0": 0, "1": 0}}
    api.produce("mine", ["now"], 0)
    assert [r["offset"] for r in api.consume(cid, timeout_ms=5000)] == [0]
