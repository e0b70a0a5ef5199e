"""The real server (gunicorn, this project's worker) over the real Kafka broker
(``CONSUMER_API_BACKEND=kafka``), driven over HTTP as a client would: topics, produce, a
stateless read, a consumer session (subscribe, consume, commit, position, close), group
administration and metrics."""
from __future__ import annotations

import base64

import requests

from consumer_api.partitioner import partition_for_key
from tests.e2e.conftest import start_server
from tests.waiting import wait_until

TIMEOUT = (2.0, 30.0)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def call(srv, method: str, path: str, status: int = 200, **kwargs):
    resp = requests.request(method, srv.url(path), timeout=TIMEOUT, **kwargs)
    assert resp.status_code == status, (method, path, resp.status_code, resp.text[:500])
    return resp.json() if resp.content and resp.headers.get("Content-Type", "").startswith(
        "application/json") else resp.text


def test_the_http_api_over_kafka(tmp_path, kafka_broker):
    env = {"CONSUMER_API_BACKEND": "kafka",
           "CONSUMER_API_KAFKA_BOOTSTRAP_SERVERS": kafka_broker.bootstrap,
           "CONSUMER_API_NODE_ID": "node-1"}
    with start_server(tmp_path / "data", **env) as srv:
        try:
            call(srv, "POST", "/api/topics", 201, json={"name": "orders", "partitions": 2})
            assert [t["name"] for t in call(srv, "GET", "/api/topics")["topics"]] == ["orders"]
            sent = call(srv, "POST", "/api/topics/orders/records", json={"records": [
                {"value": b64(b"a"), "partition": 0}, {"value": b64(b"b"), "partition": 0},
                {"key": b64(b"k"), "value": b64(b"c")}]})
            assert [o["offset"] for o in sent["offsets"][:2]] == [0, 1]
            read = call(srv, "GET", "/api/topics/orders/partitions/0/records?offset=1")
            assert [r["value"] for r in read["records"]][:1] == [b64(b"b")]

            sub = call(srv, "POST", "/api/consumers/subscribe", json={
                "group_id": "billing", "topics": ["orders"], "auto_offset_reset": "earliest"})
            cid = sub["consumer_id"]
            assert cid.startswith("node-1.")  # the node that holds the session
            assert sub["assignment"] == {"orders": [0, 1]}
            got = []
            wait_until(lambda: got.extend(call(srv, "POST", f"/api/consumers/{cid}/consume",
                                               json={"timeout_ms": 1000})["records"])
                       or len(got) >= 3, "three records consumed", timeout=30)
            assert sorted(r["value"] for r in got) == sorted(b64(v) for v in (b"a", b"b", b"c"))
            committed = call(srv, "POST", f"/api/consumers/{cid}/commit")["offsets"]
            keyed = partition_for_key(b"k", 2)  # where the keyed record went
            assert committed == {"orders": {str(p): 2 * (p == 0) + (p == keyed)
                                            for p in (0, 1)}}
            position = call(srv, "GET", f"/api/consumers/{cid}/position")["offsets"]
            assert position == committed
            group = call(srv, "GET", "/api/consumer-groups/billing")
            assert [m["consumer_id"] for m in group["members"]] == [cid]
            assert {r["partition"]: r["lag"] for r in group["offsets"]} == {0: 0, 1: 0}
            call(srv, "DELETE", f"/api/consumers/{cid}")
            call(srv, "GET", f"/api/consumers/{cid}/position", 404)
            metrics = call(srv, "GET", "/metrics")
            assert 'consumer_api_consumer_lag{group="billing",partition="0",topic="orders"} 0.0' \
                in metrics
        finally:
            for group in ("billing",):
                requests.delete(srv.url(f"/api/consumer-groups/{group}"), timeout=TIMEOUT)
            requests.delete(srv.url("/api/topics/orders"), timeout=TIMEOUT)
