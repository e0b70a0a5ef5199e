"""GET /metrics (API.md "Operations"): Prometheus text, parsed with prometheus-client's own
parser; every counter and gauge checked against what the test did through the API.

The app runs on the shared fixtures (engine and consumer sessions on the fake clock): a
consume that may find nothing is sent with ``timeout_ms: 0``, except the one that must be
seen waiting (it runs on its own thread and is ended by closing its session).
"""
from __future__ import annotations

import threading

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.api.conftest import b64
from tests.waiting import wait_until

pytestmark = pytest.mark.usefixtures("openapi_built_once")

BOUND_S = 5.0
CONSUME_ROUTE = "/api/consumers/<consumer_id>/consume"
#: storage/batches.py: the fixed header of a batch; each of its records adds a 1-byte
#: length (values under 128 bytes, keyless, one timestamp) and its value
BATCH_OVERHEAD = 38


# -- helpers --------------------------------------------------------------------------------

class Scrape:
    """One parsed GET /metrics."""

    def __init__(self, text: str):
        self.text = text
        self.families = {f.name: f for f in text_string_to_metric_families(text)}
        self.samples = [s for f in self.families.values() for s in f.samples]

    def value(self, name: str, **labels):
        """The value of the sample ``name`` with exactly these labels (None if absent)."""
        found = [s.value for s in self.samples if s.name == name and s.labels == labels]
        assert len(found) <= 1, (name, labels, found)
        return found[0] if found else None

    def labelled(self, name: str) -> dict:
        """``{frozenset(labels.items()): value}`` of every sample called ``name``."""
        return {frozenset(s.labels.items()): s.value for s in self.samples if s.name == name}

    def label_values(self, prefix: str) -> set:
        return {v for s in self.samples if s.name.startswith(prefix)
                for v in s.labels.values()}


def scrape(client) -> Scrape:
    resp = client.get("/metrics")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.headers["Content-Type"].startswith("text/plain"), resp.headers
    return Scrape(resp.get_data(as_text=True))


def ok(resp, status=200):
    assert resp.status_code == status, resp.get_data(as_text=True)
    return resp.get_json()


def subscribe(client, group, topics, **extra):
    return ok(client.post("/api/consumers/subscribe",
                          json={"group_id": group, "topics": topics, **extra}))


def consume(client, cid, **body):
    body.setdefault("timeout_ms", 0)
    return ok(client.post(f"/api/consumers/{cid}/consume", json=body))["records"]


def produce(api, topic, n, partition=None, value=b"x" * 10):
    rec = {"value": b64(value)}
    if partition is not None:
        rec["partition"] = partition
    resp = api.produce(topic, [dict(rec) for _ in range(n)])
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return resp.get_json()["offsets"]


# -- the format -----------------------------------------------------------------------------

def test_metrics_is_prometheus_text_with_every_documented_family(client):
    got = scrape(client)
    for name, kind in [("consumer_api_http_requests", "counter"),
                       ("consumer_api_http_request_duration_seconds", "histogram"),
                       ("consumer_api_records_produced", "counter"),
                       ("consumer_api_records_consumed", "counter"),
                       ("consumer_api_sessions", "gauge"),
                       ("consumer_api_waiting_polls", "gauge"),
                       ("consumer_api_sessions_expired", "counter"),
                       ("consumer_api_group_rebalances", "counter"),
                       ("consumer_api_log_size_bytes", "gauge"),
                       ("consumer_api_consumer_lag", "gauge")]:
        assert name in got.families, (name, sorted(got.families))
        assert got.families[name].type == kind, (name, got.families[name].type)
    assert "# HELP consumer_api_sessions " in got.text
    assert "# TYPE consumer_api_http_requests_total counter" in got.text \
        or "# TYPE consumer_api_http_requests counter" in got.text
    assert got.value("consumer_api_sessions") == 0
    assert got.value("consumer_api_waiting_polls") == 0
    assert got.value("consumer_api_sessions_expired_total") == 0


def test_metrics_is_not_behind_api_keys(make_api):
    api = make_api(api_keys="metrics-test-key")
    assert api.client.get("/api/topics").status_code == 401
    got = scrape(api.client)
    # the 401 was counted (under its route template)
    assert got.value("consumer_api_http_requests_total", method="GET", route="/api/topics",
                     status="401") == 1


# -- requests and latencies -----------------------------------------------------------------

def test_requests_are_counted_by_method_route_template_and_status(client, api):
    assert api.create_topic("orders", 2).status_code == 201
    assert api.create_topic("orders", 2).status_code == 409
    for _ in range(2):
        assert client.get("/api/topics/missing").status_code == 404
    assert client.get("/api/topics/orders").status_code == 200
    cid = subscribe(client, "g", ["orders"])["consumer_id"]
    consume(client, cid)
    consume(client, cid)
    assert client.get(f"/api/consumers/{cid}/position").status_code == 200
    gone = "0123456789abcdef0123456789abcdef"
    assert client.post(f"/api/consumers/{gone}/consume", json={"timeout_ms": 0}).status_code == 404
    assert client.get("/api/no/such/route").status_code == 404

    got = scrape(client)
    total = "consumer_api_http_requests_total"
    expected = {
        ("POST", "/api/topics", "201"): 1,
        ("POST", "/api/topics", "409"): 1,
        ("GET", "/api/topics/<topic>", "404"): 2,
        ("GET", "/api/topics/<topic>", "200"): 1,
        ("POST", "/api/consumers/subscribe", "200"): 1,
        ("POST", CONSUME_ROUTE, "200"): 2,
        ("POST", CONSUME_ROUTE, "404"): 1,
        ("GET", "/api/consumers/<consumer_id>/position", "200"): 1,
    }
    for (method, route, status), n in expected.items():
        assert got.value(total, method=method, route=route, status=status) == n, \
            (method, route, status, got.labelled(total))
    # ids and raw paths never become label values of the request metrics
    values = got.label_values("consumer_api_http_")
    for raw in (cid, gone, "missing", "orders", "/api/topics/missing",
                f"/api/consumers/{cid}/consume", "/api/no/such/route"):
        assert raw not in values, raw
    assert not any(cid in v or gone in v for v in got.label_values("consumer_api_"))
    routes = {s.labels["route"] for s in got.samples if s.name == total}
    assert routes <= {"/api/topics", "/api/topics/<topic>", "/api/consumers/subscribe",
                      CONSUME_ROUTE, "/api/consumers/<consumer_id>/position", "<unmatched>"}, routes


def test_request_durations_are_a_histogram_per_method_and_route(client, api):
    assert api.create_topic("t", 1).status_code == 201
    for _ in range(3):
        produce(api, "t", 2)
    for _ in range(2):
        assert client.get("/api/topics/t").status_code == 200
    got = scrape(client)
    hist = "consumer_api_http_request_duration_seconds"
    for labels, n in [({"method": "POST", "route": "/api/topics/<topic>/records"}, 3),
                      ({"method": "GET", "route": "/api/topics/<topic>"}, 2),
                      ({"method": "POST", "route": "/api/topics"}, 1)]:
        assert got.value(hist + "_count", **labels) == n, (labels, got.labelled(hist + "_count"))
        total = got.value(hist + "_sum", **labels)
        assert total is not None and 0 <= total < 10 * n
        buckets = sorted(((float(s.labels["le"]), s.value) for s in got.samples
                          if s.name == hist + "_bucket"
                          and {k: v for k, v in s.labels.items() if k != "le"} == labels))
        assert buckets and buckets[-1] == (float("inf"), n), buckets
        counts = [c for _, c in buckets]
        assert counts == sorted(counts), "cumulative buckets"
        assert any(le >= 300 for le, _ in buckets[:-1]), "buckets up to the longest poll"
    # every request counted once in the counter is one observation of the histogram
    counter = got.labelled("consumer_api_http_requests_total")
    by_route: dict = {}
    for labels, v in counter.items():
        d = dict(labels)
        key = (d["method"], d["route"])
        by_route[key] = by_route.get(key, 0) + v
    for (method, route), n in by_route.items():
        assert got.value(hist + "_count", method=method, route=route) == n, (method, route)


# -- records --------------------------------------------------------------------------------

def test_records_produced_per_topic(client, api):
    api.create_topic("a", 3)
    api.create_topic("b", 1)
    assert scrape(client).value("consumer_api_records_produced_total", topic="a") in (None, 0)
    produce(api, "a", 3)
    produce(api, "a", 4, partition=1)
    produce(api, "b", 1)
    # a rejected request appends nothing and counts nothing
    bad = api.produce("a", [{"value": b64("ok")}, {"value": "not base64!"}])
    assert bad.status_code == 400
    assert api.produce("nope", [{"value": b64("v")}]).status_code == 404
    got = scrape(client)
    assert got.value("consumer_api_records_produced_total", topic="a") == 7
    assert got.value("consumer_api_records_produced_total", topic="b") == 1
    assert got.value("consumer_api_records_produced_total", topic="nope") is None
    assert sum(api.watermarks("a")) == 7


def test_records_consumed_are_the_records_returned_by_consumes(client, api):
    api.create_topic("a", 2)
    api.create_topic("b", 1)
    produce(api, "a", 5, partition=0)
    produce(api, "a", 4, partition=1)
    produce(api, "b", 3)
    cid = subscribe(client, "g", ["a", "b"], auto_offset_reset="earliest")["consumer_id"]
    returned: dict = {}
    while batch := consume(client, cid, max_records=2):
        for r in batch:
            returned[r["topic"]] = returned.get(r["topic"], 0) + 1
    assert returned == {"a": 9, "b": 3}
    # a stateless read returns records but is not a consumer session's consume
    assert len(api.records("a", 0)) == 5
    # records returned again after a seek count again: they were returned again
    ok(client.post(f"/api/consumers/{cid}/seek",
                   json={"topic": "b", "partition": 0, "offset": 1}))
    assert len(consume(client, cid)) == 2
    got = scrape(client)
    assert got.value("consumer_api_records_consumed_total", topic="a") == 9
    assert got.value("consumer_api_records_consumed_total", topic="b") == 5


# -- sessions, waiting polls, expiry, rebalances --------------------------------------------

def test_sessions_and_waiting_polls(client, api, app, manager):
    api.create_topic("t", 1)
    cids = [subscribe(client, f"g{i}", ["t"])["consumer_id"] for i in range(3)]
    got = scrape(client)
    assert got.value("consumer_api_sessions") == 3
    assert got.value("consumer_api_waiting_polls") == 0

    result = {}

    def waiting_consume():
        # its own client: the fake clock never moves, so it waits until its session closes
        resp = app.test_client().post(f"/api/consumers/{cids[0]}/consume",
                                      json={"timeout_ms": 60_000})
        result["status"] = resp.status_code
        result["body"] = resp.get_json()

    thread = threading.Thread(target=waiting_consume, daemon=True)
    thread.start()
    try:
        wait_until(lambda: manager.waiting() == 1, "the consume waits")
        got = scrape(client)
        assert got.value("consumer_api_waiting_polls") == 1
        assert got.value("consumer_api_sessions") == 3
    finally:
        closed = client.delete(f"/api/consumers/{cids[0]}")
        thread.join(BOUND_S)
    assert closed.status_code == 200, closed.get_data(as_text=True)
    assert not thread.is_alive(), "closing the session did not end its consume"
    assert result["status"] == 404 and result["body"]["code"] == "consumer_not_found", result
    got = scrape(client)
    assert got.value("consumer_api_waiting_polls") == 0
    assert got.value("consumer_api_sessions") == 2
    client.delete(f"/api/consumers/{cids[1]}")
    assert scrape(client).value("consumer_api_sessions") == 1


def test_expired_sessions_are_counted(client, api, manager, clock):
    api.create_topic("t", 1)
    short = [subscribe(client, "g", ["t"], session_timeout_ms=1000)["consumer_id"]
             for _ in range(2)]
    keep = subscribe(client, "other", ["t"], session_timeout_ms=60_000)["consumer_id"]
    assert scrape(client).value("consumer_api_sessions_expired_total") == 0
    clock.advance(1001)
    assert sorted(manager.expire()) == sorted(short)
    got = scrape(client)
    assert got.value("consumer_api_sessions_expired_total") == 2
    assert got.value("consumer_api_sessions") == 1
    # a closed session is not an expired one
    assert client.delete(f"/api/consumers/{keep}").status_code == 200
    clock.advance(120_000)
    assert manager.expire() == []
    got = scrape(client)
    assert got.value("consumer_api_sessions_expired_total") == 2
    assert got.value("consumer_api_sessions") == 0


def test_group_rebalances_grow_with_joins_and_leaves(client, api):
    api.create_topic("t", 4)
    start = scrape(client).value("consumer_api_group_rebalances_total")
    assert start == 0
    a = subscribe(client, "g", ["t"])["consumer_id"]
    assert scrape(client).value("consumer_api_group_rebalances_total") == start + 1
    subscribe(client, "g", ["t"])
    subscribe(client, "h", ["t"])
    assert scrape(client).value("consumer_api_group_rebalances_total") == start + 3
    client.delete(f"/api/consumers/{a}")
    assert scrape(client).value("consumer_api_group_rebalances_total") == start + 4


# -- state read at scrape time --------------------------------------------------------------

def test_log_size_bytes_per_topic_grows_with_produce(client, api):
    api.create_topic("a", 2)
    api.create_topic("b", 1)
    got = scrape(client)
    assert got.value("consumer_api_log_size_bytes", topic="a") == 0
    assert got.value("consumer_api_log_size_bytes", topic="b") == 0
    produce(api, "a", 3, value=b"v" * 10)                  # a batch in each partition
    produce(api, "a", 2, partition=1, value=b"w" * 100)    # one batch
    got = scrape(client)
    size_a = got.value("consumer_api_log_size_bytes", topic="a")
    assert size_a == 3 * BATCH_OVERHEAD + 3 * (1 + 10) + 2 * (1 + 100)
    assert size_a == sum(p["size_bytes"] for p in api.describe("a")["partitions"])
    assert got.value("consumer_api_log_size_bytes", topic="b") == 0
    produce(api, "b", 1, value=b"z")
    got = scrape(client)
    assert got.value("consumer_api_log_size_bytes", topic="b") == BATCH_OVERHEAD + 1 + 1
    assert got.value("consumer_api_log_size_bytes", topic="a") == size_a
    # a deleted topic leaves the gauge
    assert client.delete("/api/topics/b").status_code == 200
    assert scrape(client).value("consumer_api_log_size_bytes", topic="b") is None


def test_consumer_lag_is_high_watermark_minus_committed(client, api):
    api.create_topic("t", 3)
    produce(api, "t", 5, partition=0)
    produce(api, "t", 3, partition=1)
    produce(api, "t", 2, partition=2)
    cid = subscribe(client, "g", ["t"], auto_offset_reset="earliest")["consumer_id"]
    lag = "consumer_api_consumer_lag"
    assert scrape(client).labelled(lag) == {}, "nothing committed yet"
    ok(client.post(f"/api/consumers/{cid}/commit", json={"offsets": {"t": {"0": 2, "1": 3}}}))
    got = scrape(client)
    assert got.value(lag, group="g", topic="t", partition="0") == 3
    assert got.value(lag, group="g", topic="t", partition="1") == 0
    assert got.value(lag, group="g", topic="t", partition="2") is None  # never committed
    produce(api, "t", 4, partition=1)
    got = scrape(client)
    assert got.value(lag, group="g", topic="t", partition="1") == 4
    assert got.value(lag, group="g", topic="t", partition="0") == 3
    # commit the positions (everything consumed): no lag left where committed
    while consume(client, cid, max_records=100):
        pass
    ok(client.post(f"/api/consumers/{cid}/commit", json={}))
    got = scrape(client)
    assert {dict(k)["partition"]: v for k, v in got.labelled(lag).items()} == {
        "0": 0, "1": 0, "2": 0}
    # another group's commit is its own series
    other = subscribe(client, "h", ["t"], auto_offset_reset="earliest")["consumer_id"]
    ok(client.post(f"/api/consumers/{other}/commit", json={"offsets": {"t": {"0": 1}}}))
    got = scrape(client)
    assert got.value(lag, group="h", topic="t", partition="0") == 4
    assert got.value(lag, group="g", topic="t", partition="0") == 0
