"""What the HTTP API does differently on the Kafka store, one test per line of README's
"What differs from the embedded store" (the behaviour both stores share runs on both in
the other modules of this folder)."""
from __future__ import annotations

import base64

import pytest
from confluent_kafka import Producer

from tests.api.conftest import assert_error, b64
from tests.api.test_metrics import ok, subscribe
from tests.waiting import wait_until

ON_STORES = ("kafka",)
pytestmark = pytest.mark.usefixtures("openapi_built_once")


def produce_elsewhere(broker, topic, partition, value, headers=None):
    """A record stored by another Kafka client, not through this node."""
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    producer.produce(topic, value, partition=partition, headers=headers)
    assert producer.flush(10) == 0


@pytest.fixture
def orders(api):
    ok(api.create_topic("orders", 2), 201)
    return "orders"


def test_a_subscribe_past_the_join_wait_answers_joining_and_gets_its_partitions_later(
        client, manager, orders):
    manager.join_wait_s = 0.0
    body = subscribe(client, "g", [orders])
    assert body["assignment"] == {} and body["state"] == "joining"
    cid = body["consumer_id"]
    done = wait_until(lambda: (lambda got: "state" not in got and got)(
        ok(client.get(f"/api/consumers/{cid}/assignment"))), "the join completed")
    assert done["assignment"] == {orders: [0, 1]}


def test_generation_is_each_members_own_and_group_listings_show_0(client, orders):
    a = subscribe(client, "g", [orders])
    b = subscribe(client, "g", [orders])
    assert a["generation"] == b["generation"] == 1  # each member's first assignment
    now_a = wait_until(lambda: (lambda got: got["generation"] == 2 and got)(
        ok(client.get(f"/api/consumers/{a['consumer_id']}/assignment"))),
        "the first member's second assignment")
    assert now_a["assignment"] != a["assignment"]
    [group] = ok(client.get("/api/consumer-groups"))["groups"]
    assert group["generation"] == 0
    assert ok(client.get("/api/consumer-groups/g"))["generation"] == 0


def test_a_record_larger_than_the_topic_takes_is_413_and_says_what_was_stored(api, orders):
    resp = api.produce(orders, [{"value": b64("small"), "partition": 0},
                                {"value": b64("x" * (2 << 20)), "partition": 1}])
    details = assert_error(resp, 413, "payload_too_large")
    assert details == {"stored": [{"partition": 0, "offset": 0}, None]}
    assert api.watermarks(orders) == [1, 0]


def test_a_timestamp_the_cluster_refuses_is_400(api, orders):
    far_future = 2**63 - 1  # message.timestamp.after.max.ms: an hour by default
    resp = api.produce(orders, [{"value": b64("v"), "partition": 0, "timestamp": far_future}])
    details = assert_error(resp, 400, "invalid_request")
    assert "timestamp" in details
    assert api.watermarks(orders) == [0, 0]


def test_size_bytes_is_null(api, orders):
    assert [p["size_bytes"] for p in api.describe(orders)["partitions"]] == [None, None]


def test_headers_that_are_not_utf8_or_repeat_come_back_replaced_and_last(api, kafka_broker,
                                                                        orders):
    produce_elsewhere(kafka_broker, orders, 0, b"v",
                      headers=[("raw", b"\xff\xfe"), ("twice", b"first"), ("twice", b"last")])
    [rec] = api.records(orders, 0)
    assert rec["headers"] == {"raw": "\ufffd\ufffd", "twice": "last"}
    assert base64.b64decode(rec["value"]) == b"v"


def test_records_another_client_stored_reach_a_waiting_consume(client, kafka_broker,
                                                              orders):
    cid = subscribe(client, "g", [orders], auto_offset_reset="earliest")["consumer_id"]
    produce_elsewhere(kafka_broker, orders, 1, b"from elsewhere")
    got = ok(client.post(f"/api/consumers/{cid}/consume", json={"timeout_ms": 10_000}))
    assert [base64.b64decode(r["value"]) for r in got["records"]] == [b"from elsewhere"]



def test_topic_stats_count_records_but_bytes_are_null(api, orders):
    ok(api.produce(orders, [{"value": b64("v"), "partition": 0}]))
    got = ok(api.client.get(f"/api/topics/{orders}/stats"))  # the last hour
    assert got["records"] == 1 and got["bytes"] is None
    assert {b["bytes"] for b in got["buckets"]} == {None}
    assert [p["bytes"] for p in got["partitions"]] == [None, None]
