"""Consumer sessions over HTTP (API.md, "Consumers"), through the Flask test client.

The manager runs on the fake ``clock``: nothing here sleeps. A consume that may find no
record is always sent with ``timeout_ms: 0`` (the fake clock never moves by itself, so a
waiting consume would never time out); a consume with records available returns at once
whatever its timeout.

Expectations come from the contract (API.md), not from the server's code. What a session
does (positions, rebalances, commits, long-polls) is proved in ``tests/sessions``; here each
endpoint's wire mapping -- fields in, status, error code and shape out -- and the flows a
client drives end to end.
"""
from __future__ import annotations

import base64
import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

import pytest

from consumer_api.api.state import state_of
from consumer_api.app import create_app
from consumer_api.config import Config
from tests.api.conftest import assert_error, b64
from tests.waiting import wait_until

pytestmark = pytest.mark.usefixtures("openapi_built_once")
ON_STORES = ("embedded", "kafka")

SUBSCRIPTION_KEYS = {"consumer_id", "group_id", "topics", "assignment", "generation"}
RECORD_KEYS = {"topic", "partition", "offset", "timestamp", "key", "value", "headers"}
OFFSETS_RESULT_KEYS = {"success", "message", "offsets"}


def unb64(text):
    return None if text is None else base64.b64decode(text, validate=True)


# -- helpers --------------------------------------------------------------------------------

def ok(resp, status=200):
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert resp.mimetype == "application/json"
    return resp.get_json()


def subscribe(client, group="g", topics=("t",), **extra):
    body = ok(client.post("/api/consumers/subscribe",
                          json={"group_id": group, "topics": list(topics), **extra}))
    assert set(body) == SUBSCRIPTION_KEYS, body
    return body


def consume(client, cid, **body):
    """POST consume; the records (asserts 200 and the response shape)."""
    body.setdefault("timeout_ms", 0)
    out = ok(client.post(f"/api/consumers/{cid}/consume", json=body))
    assert set(out) == {"records", "timestamp"}, out
    for rec in out["records"]:
        assert RECORD_KEYS <= set(rec) <= RECORD_KEYS | {"encoding"}, rec
    return out["records"]


def consume_all(client, cid, **body):
    """Consume until a poll comes back empty."""
    got = []
    while True:
        batch = consume(client, cid, **body)
        if not batch:
            return got
        got.extend(batch)


def commit(client, cid, offsets=None):
    body = {} if offsets is None else {"offsets": offsets}
    out = ok(client.post(f"/api/consumers/{cid}/commit", json=body))
    assert set(out) == OFFSETS_RESULT_KEYS
    assert out["success"] is True and out["message"] == "offsets committed"
    return out["offsets"]


def seek(client, cid, **body):
    out = ok(client.post(f"/api/consumers/{cid}/seek", json=body))
    assert set(out) == OFFSETS_RESULT_KEYS
    assert out["success"] is True and out["message"] == "offset updated"
    return out["offsets"]


def positions(client, cid):
    out = ok(client.get(f"/api/consumers/{cid}/position"))
    assert set(out) == {"offsets"}
    return out["offsets"]


def committed(client, cid):
    out = ok(client.get(f"/api/consumers/{cid}/committed"))
    assert set(out) == {"offsets"}
    return out["offsets"]


def assignment(client, cid):
    out = ok(client.get(f"/api/consumers/{cid}/assignment"))
    assert set(out) == {"group_id", "assignment", "generation"}, out
    return out


def produce(api, topic, values, partition=0, **extra):
    """Produce text values to one partition; their offsets."""
    resp = api.produce(topic, [{"value": v, "partition": partition, **extra} for v in values],
                       encoding="text")
    return [o["offset"] for o in ok(resp)["offsets"]]


def keyed(records):
    """``[(partition, offset, value-bytes)]`` in response order."""
    return [(r["partition"], r["offset"], unb64(r["value"])) for r in records]


@pytest.fixture
def topic(api):
    ok(api.create_topic("t", 1), 201)
    return "t"


@pytest.fixture
def topic3(api):
    ok(api.create_topic("t3", 3), 201)
    return "t3"


# -- subscribe ------------------------------------------------------------------------------

def test_subscribe_returns_the_session_and_its_real_assignment(client, topic3, store_name):
    a = subscribe(client, "billing", [topic3])
    assert isinstance(a["consumer_id"], str) and a["consumer_id"]
    assert a["group_id"] == "billing"
    assert a["topics"] == [topic3]
    assert a["assignment"] == {topic3: [0, 1, 2]}
    assert isinstance(a["generation"], int) and a["generation"] >= 1

    b = subscribe(client, "billing", [topic3])
    assert b["consumer_id"] != a["consumer_id"]
    # the first member learns of the rebalance: together they own every partition once
    now_a = wait_until(lambda: (lambda got: got["generation"] > a["generation"] and got)(
        assignment(client, a["consumer_id"])), "the first member saw the rebalance")
    assert now_a["group_id"] == "billing"
    if store_name == "embedded":  # one generation for the group (Kafka: each member's own)
        assert now_a["generation"] == b["generation"] > a["generation"]
    mine = now_a["assignment"].get(topic3, [])
    theirs = b["assignment"].get(topic3, [])
    assert mine and theirs
    assert sorted(mine + theirs) == [0, 1, 2]


def test_the_subscribe_path_is_the_subscribe_routes_alone(client):
    options = client.open("/api/consumers/subscribe", method="OPTIONS")
    assert set(options.headers["Allow"].split(", ")) == {"POST", "OPTIONS"}
    details = assert_error(client.delete("/api/consumers/subscribe"), 405, "method_not_allowed")
    assert details["allowed"] == ["OPTIONS", "POST"]
    assert_error(client.get("/api/consumers/subscribe/position"), 404, "not_found")


def test_subscribe_to_a_missing_topic_is_404_and_creates_nothing(client, topic):
    for topics in (["nope"], [topic, "nope"]):
        resp = client.post("/api/consumers/subscribe", json={"group_id": "g", "topics": topics})
        assert_error(resp, 404, "topic_not_found")
    # no member was added, no group created
    assert_error(client.get("/api/consumer-groups/g"), 404, "group_not_found")
    assert ok(client.get("/api/consumer-groups")) == {"groups": []}


@pytest.mark.parametrize("patch, field", [
    ({"group_id": ""}, "group_id"),
    ({"group_id": "a/b"}, "group_id"),
    ({"group_id": "x" * 250}, "group_id"),
    ({"group_id": 7}, "group_id"),
    ({"topics": []}, "topics"),
    ({"topics": "t"}, "topics"),
    ({"topics": [7]}, "topics"),
    ({"auto_offset_reset": "middle"}, "auto_offset_reset"),
    ({"session_timeout_ms": 999}, "session_timeout_ms"),
    ({"session_timeout_ms": 300001}, "session_timeout_ms"),
    ({"session_timeout_ms": "30000"}, "session_timeout_ms"),
    ({"auto_commit": "maybe"}, "auto_commit"),
    ({"encoding": "hex"}, "encoding"),
    ({"bogus": 1}, "bogus"),
])
def test_subscribe_rejects_invalid_fields_naming_them(client, topic, patch, field):
    body = {"group_id": "g", "topics": [topic], **patch}
    details = assert_error(client.post("/api/consumers/subscribe", json=body), 400,
                           "invalid_request")
    assert field in details, details
    # nothing joined
    assert_error(client.get("/api/consumer-groups/g"), 404, "group_not_found")


@pytest.mark.parametrize("missing", ["group_id", "topics"])
def test_subscribe_requires_group_and_topics(client, topic, missing):
    body = {"group_id": "g", "topics": [topic]}
    del body[missing]
    details = assert_error(client.post("/api/consumers/subscribe", json=body), 400,
                           "invalid_request")
    assert missing in details


@pytest.mark.parametrize("timeout", [1000, 300000])
def test_subscribe_accepts_session_timeout_bounds(client, topic, timeout):
    subscribe(client, "g", [topic], session_timeout_ms=timeout)


def test_subscribe_starts_at_auto_offset_reset_without_commits(client, api, topic):
    produce(api, topic, ["a", "b", "c"])
    latest = subscribe(client, "g-latest", [topic])  # default: latest
    assert positions(client, latest["consumer_id"]) == {topic: {"0": 3}}
    assert consume(client, latest["consumer_id"]) == []
    earliest = subscribe(client, "g-earliest", [topic], auto_offset_reset="earliest")
    assert positions(client, earliest["consumer_id"]) == {topic: {"0": 0}}
    assert [unb64(r["value"]) for r in consume(client, earliest["consumer_id"])] == [
        b"a", b"b", b"c"]
    # a record produced after subscribe reaches the "latest" one
    produce(api, topic, ["d"])
    assert [unb64(r["value"]) for r in consume(client, latest["consumer_id"])] == [b"d"]


@pytest.mark.embedded_only  # the fake clock
def test_subscribe_defaults_session_timeout_30s_and_no_auto_commit(client, api, topic, clock,
                                                                   manager):
    produce(api, topic, ["a", "b", "c"])
    cid = subscribe(client, "g", [topic], auto_offset_reset="earliest")["consumer_id"]
    consume(client, cid, max_records=1)
    consume(client, cid, max_records=1)
    consume(client, cid)
    assert committed(client, cid) == {}  # auto_commit is off unless asked for
    clock.advance(29_999)
    assert manager.expire() == []
    clock.advance(2)
    assert manager.expire() == [cid]


def test_too_many_consumers_is_429_and_a_closed_session_frees_its_slot(data_dir, engine, topic3):
    app = create_app(Config(data_dir=data_dir, max_sessions=1), backend=engine)
    client = app.test_client()
    try:
        # a failed subscribe does not hold a slot
        assert_error(client.post("/api/consumers/subscribe",
                                 json={"group_id": "g", "topics": ["missing"]}), 404,
                     "topic_not_found")
        first = subscribe(client, "g", [topic3])
        resp = client.post("/api/consumers/subscribe", json={"group_id": "h", "topics": [topic3]})
        assert_error(resp, 429, "too_many_consumers")
        # the refused subscribe joined nothing
        assert_error(client.get("/api/consumer-groups/h"), 404, "group_not_found")
        assert assignment(client, first["consumer_id"])["assignment"] == {topic3: [0, 1, 2]}
        ok(client.delete(f"/api/consumers/{first['consumer_id']}"))
        subscribe(client, "h", [topic3])
    finally:
        state_of(app).manager.shutdown()


# -- consume --------------------------------------------------------------------------------

@pytest.mark.embedded_only  # the fake clock
def test_consume_with_an_empty_body_uses_the_defaults(client, api, topic, clock):
    produce(api, topic, [f"v{i}" for i in range(600)])
    cid = subscribe(client, "g", [topic], auto_offset_reset="earliest")["consumer_id"]
    # no body at all, and an empty JSON object: max_records 500, base64
    out = ok(client.post(f"/api/consumers/{cid}/consume"))
    assert set(out) == {"records", "timestamp"}
    assert out["timestamp"] == clock.now_ms()
    assert [r["offset"] for r in out["records"]] == list(range(500))
    assert unb64(out["records"][0]["value"]) == b"v0"
    out = ok(client.post(f"/api/consumers/{cid}/consume", json={}))
    assert [r["offset"] for r in out["records"]] == list(range(500, 600))


@pytest.mark.embedded_only  # the fake clock
def test_consumed_record_shape_in_base64_by_default(client, api, topic, clock):
    key, value = b"\x00k\xff", bytes(range(256))
    ok(api.produce(topic, [
        {"key": b64(key), "value": b64(value), "headers": {"h1": "v1", "trace": "x"}},
        {"value": None, "timestamp": 1_600_000_000_000},
    ]))
    cid = subscribe(client, "g", [topic], auto_offset_reset="earliest")["consumer_id"]
    recs = consume(client, cid)
    assert recs == [
        {"topic": topic, "partition": 0, "offset": 0, "timestamp": clock.now_ms(),
         "key": b64(key), "value": b64(value), "headers": {"h1": "v1", "trace": "x"}},
        {"topic": topic, "partition": 0, "offset": 1, "timestamp": 1_600_000_000_000,
         "key": None, "value": None, "headers": {}},
    ]


def test_session_encoding_and_per_request_override(client, api, topic):
    ok(api.produce(topic, [{"key": "clé", "value": {"n": 1, "s": "ü"}}], encoding="json"))
    ok(api.produce(topic, [{"key": "k2", "value": "plain ✓"}], encoding="text"))
    text = subscribe(client, "g-text", [topic], auto_offset_reset="earliest", encoding="text")
    [r0, r1] = consume(client, text["consumer_id"])
    assert (r0["key"], r0["value"]) == ('"clé"', '{"n":1,"s":"ü"}')
    assert (r1["key"], r1["value"]) == ("k2", "plain ✓")

    # a per-request encoding overrides the session's, for that request only
    seek(client, text["consumer_id"], position="beginning")
    [r0] = consume(client, text["consumer_id"], encoding="json", max_records=1)
    assert (r0["key"], r0["value"]) == ("clé", {"n": 1, "s": "ü"})
    [r1] = consume(client, text["consumer_id"], encoding="base64")
    assert unb64(r1["value"]) == "plain ✓".encode()
    seek(client, text["consumer_id"], position="beginning")
    assert consume(client, text["consumer_id"], max_records=1)[0]["value"] == '{"n":1,"s":"ü"}'

    # a record that cannot be shown as JSON comes back whole in base64, marked so
    js = subscribe(client, "g-json", [topic], auto_offset_reset="earliest", encoding="json")
    [r0, r1] = consume(client, js["consumer_id"])
    assert r0["value"] == {"n": 1, "s": "ü"} and "encoding" not in r0
    assert r1["encoding"] == "base64" and unb64(r1["value"]) == "plain ✓".encode()


@pytest.mark.parametrize("patch, field", [
    ({"max_records": 0}, "max_records"),
    ({"max_records": 10001}, "max_records"),
    ({"max_records": "5"}, "max_records"),
    ({"timeout_ms": -1}, "timeout_ms"),
    ({"timeout_ms": 300001}, "timeout_ms"),
    ({"max_bytes_total": 1023}, "max_bytes_total"),
    ({"max_bytes_total": 104857601}, "max_bytes_total"),
    ({"encoding": "hex"}, "encoding"),
    ({"bogus": True}, "bogus"),
])
def test_consume_rejects_out_of_range_values_naming_the_field(client, api, topic, patch, field):
    produce(api, topic, ["a"])
    cid = subscribe(client, "g", [topic], auto_offset_reset="earliest")["consumer_id"]
    details = assert_error(client.post(f"/api/consumers/{cid}/consume", json=patch), 400,
                           "invalid_request")
    assert field in details, details
    # a refused consume read nothing: the record is still there
    assert positions(client, cid) == {topic: {"0": 0}}


@pytest.mark.parametrize("body", [
    {"max_records": 1}, {"max_records": 10000}, {"timeout_ms": 0},
    {"timeout_ms": 300000}, {"max_bytes_total": 1024}, {"max_bytes_total": 104857600},
])
def test_consume_accepts_the_limits(client, api, topic, body):
    produce(api, topic, ["a"])
    cid = subscribe(client, "g", [topic], auto_offset_reset="earliest")["consumer_id"]
    out = ok(client.post(f"/api/consumers/{cid}/consume", json=body))
    assert [unb64(r["value"]) for r in out["records"]] == [b"a"]


def test_consume_malformed_json_is_400(client, topic):
    cid = subscribe(client, "g", [topic])["consumer_id"]
    resp = client.post(f"/api/consumers/{cid}/consume", data="{nope",
                       content_type="application/json")
    assert_error(resp, 400, "invalid_request")


def test_consume_of_an_unknown_session_is_404(client, topic):
    details = assert_error(client.post("/api/consumers/nope/consume", json={"timeout_ms": 0}),
                           404, "consumer_not_found")
    assert details.get("consumer_id") == "nope"


def test_consume_returns_empty_at_once_with_timeout_zero(client, topic):
    cid = subscribe(client, "g", [topic])["consumer_id"]
    assert consume(client, cid, timeout_ms=0) == []


def test_max_bytes_total_truncates_and_a_big_record_comes_alone(client, api, topic):
    ok(api.produce(topic, [{"value": b64(b"a" * 600)}, {"value": b64(b"b" * 600)},
                           {"value": b64(b"c" * 3000)}, {"value": b64(b"d" * 10)}]))
    cid = subscribe(client, "g", [topic], auto_offset_reset="earliest")["consumer_id"]
    limit = {"max_bytes_total": 1024}
    assert [r["offset"] for r in consume(client, cid, **limit)] == [0]  # two would exceed
    assert [r["offset"] for r in consume(client, cid, **limit)] == [1]
    big = consume(client, cid, **limit)
    assert [r["offset"] for r in big] == [2] and unb64(big[0]["value"]) == b"c" * 3000
    assert [r["offset"] for r in consume(client, cid, **limit)] == [3]


def test_auto_commit_commits_what_the_previous_consume_returned(client, api, topic):
    produce(api, topic, [f"v{i}" for i in range(5)])
    cid = subscribe(client, "g", [topic], auto_offset_reset="earliest",
                    auto_commit=True)["consumer_id"]
    consume(client, cid, max_records=2)
    assert committed(client, cid) == {}  # not yet: the next consume commits it
    consume(client, cid, max_records=2)
    assert committed(client, cid) == {topic: {"0": 2}}
    consume(client, cid)
    assert committed(client, cid) == {topic: {"0": 4}}


# -- commit ---------------------------------------------------------------------------------

def test_commit_without_offsets_commits_the_current_positions(client, api, topic):
    produce(api, topic, [f"v{i}" for i in range(5)])
    cid = subscribe(client, "g", [topic], auto_offset_reset="earliest")["consumer_id"]
    consume(client, cid, max_records=3)
    assert commit(client, cid) == {topic: {"0": 3}}
    assert committed(client, cid) == {topic: {"0": 3}}
    # an explicit empty body behaves the same
    consume(client, cid, max_records=1)
    assert ok(client.post(f"/api/consumers/{cid}/commit"))["offsets"] == {topic: {"0": 4}}
    assert committed(client, cid) == {topic: {"0": 4}}
    # a new member of the group resumes exactly there
    ok(client.delete(f"/api/consumers/{cid}"))
    nxt = subscribe(client, "g", [topic])["consumer_id"]  # auto_offset_reset latest
    assert positions(client, nxt) == {topic: {"0": 4}}
    assert [r["offset"] for r in consume(client, nxt)] == [4]


def test_commit_explicit_offsets(client, api, topic3):
    for p in range(3):
        produce(api, topic3, ["a", "b", "c"], partition=p)
    cid = subscribe(client, "g", [topic3])["consumer_id"]
    assert commit(client, cid, {topic3: {"0": 1, "2": 3}}) == {topic3: {"0": 1, "2": 3}}
    assert committed(client, cid) == {topic3: {"0": 1, "2": 3}}
    # committing does not move the positions (the session started at "latest")
    assert positions(client, cid) == {topic3: {"0": 3, "1": 3, "2": 3}}
    # 0 and exactly the high watermark are in range
    assert commit(client, cid, {topic3: {"0": 0, "1": 3}}) == {topic3: {"0": 0, "1": 3}}
    assert committed(client, cid) == {topic3: {"0": 0, "1": 3, "2": 3}}


def test_commit_of_another_members_partition_is_409(client, api):
    ok(api.create_topic("two", 2), 201)
    a = subscribe(client, "g", ["two"])["consumer_id"]
    b = subscribe(client, "g", ["two"])
    theirs = b["assignment"]["two"]
    mine = assignment(client, a)["assignment"]["two"]
    assert len(mine) == len(theirs) == 1
    details = assert_error(client.post(f"/api/consumers/{a}/commit",
                                       json={"offsets": {"two": {str(theirs[0]): 0}}}),
                           409, "partition_not_assigned")
    assert details.get("partition") == theirs[0]
    # nothing was committed, not even the partition it does own (all or nothing)
    resp = client.post(f"/api/consumers/{a}/commit",
                       json={"offsets": {"two": {str(mine[0]): 0, str(theirs[0]): 0}}})
    assert_error(resp, 409, "partition_not_assigned")
    assert committed(client, a) == {}
    assert committed(client, b["consumer_id"]) == {}


def test_commit_of_a_topic_not_subscribed_is_409(client, api, topic):
    ok(api.create_topic("other", 1), 201)
    cid = subscribe(client, "g", [topic])["consumer_id"]
    assert_error(client.post(f"/api/consumers/{cid}/commit", json={"offsets": {"other": {"0": 0}}}),
                 409, "partition_not_assigned")


def test_commit_beyond_the_high_watermark_is_400_offset_out_of_range(client, api, topic):
    produce(api, topic, ["a", "b"])
    cid = subscribe(client, "g", [topic])["consumer_id"]
    commit(client, cid, {topic: {"0": 1}})
    details = assert_error(client.post(f"/api/consumers/{cid}/commit",
                                       json={"offsets": {topic: {"0": 3}}}),
                           400, "offset_out_of_range")
    assert details["log_start_offset"] == 0 and details["high_watermark"] == 2
    assert committed(client, cid) == {topic: {"0": 1}}  # unchanged


@pytest.mark.parametrize("offsets", [
    {"t": {"x": 1}}, {"t": {"-1": 1}}, {"t": {"1.0": 1}}, {"t": {"": 1}},
    {"t": {"0": -1}}, {"t": {"0": "1"}}, {"t": {"0": 1.5}}, {"t": [0]}, ["t"],
])
def test_commit_rejects_malformed_offsets(client, api, topic, offsets):
    produce(api, topic, ["a", "b"])
    cid = subscribe(client, "g", [topic])["consumer_id"]
    details = assert_error(client.post(f"/api/consumers/{cid}/commit", json={"offsets": offsets}),
                           400, "invalid_request")
    assert "offsets" in details, details
    assert committed(client, cid) == {}


def test_commit_of_an_unknown_session_is_404(client, topic):
    assert_error(client.post("/api/consumers/nope/commit", json={}), 404, "consumer_not_found")


# -- seek -----------------------------------------------------------------------------------

def test_seek_to_an_offset_replays_from_there(client, api, topic):
    produce(api, topic, [f"v{i}" for i in range(5)])
    cid = subscribe(client, "g", [topic], auto_offset_reset="earliest")["consumer_id"]
    first = consume(client, cid)
    assert seek(client, cid, topic=topic, partition=0, offset=2) == {topic: {"0": 2}}
    assert positions(client, cid) == {topic: {"0": 2}}
    assert consume(client, cid) == first[2:]
    # seeking to the high watermark is allowed (nothing to read)
    assert seek(client, cid, topic=topic, partition=0, offset=5) == {topic: {"0": 5}}
    assert consume(client, cid) == []


def test_seek_beginning_and_end_move_every_assigned_partition(client, api, topic3):
    for p in range(3):
        produce(api, topic3, ["x"] * (p + 1), partition=p)
    cid = subscribe(client, "g", [topic3])["consumer_id"]
    assert seek(client, cid, position="beginning") == {topic3: {"0": 0, "1": 0, "2": 0}}
    assert len(consume_all(client, cid)) == 6
    assert seek(client, cid, position="beginning") == {topic3: {"0": 0, "1": 0, "2": 0}}
    assert seek(client, cid, position="end") == {topic3: {"0": 1, "1": 2, "2": 3}}
    assert consume(client, cid) == []
    # one topic, every partition; one partition only
    assert seek(client, cid, topic=topic3, position="beginning") == {
        topic3: {"0": 0, "1": 0, "2": 0}}
    assert seek(client, cid, topic=topic3, partition=1, position="end") == {topic3: {"1": 2}}
    assert positions(client, cid) == {topic3: {"0": 0, "1": 2, "2": 0}}
    got = consume_all(client, cid)
    assert sorted((r["partition"], r["offset"]) for r in got) == [(0, 0), (2, 0), (2, 1), (2, 2)]


@pytest.mark.embedded_only  # the fake clock
def test_seek_to_a_timestamp(client, api, topic, clock):
    t0 = clock.now_ms()
    for i in range(4):
        produce(api, topic, [f"v{i}"])
        clock.advance(1000)
    cid = subscribe(client, "g", [topic])["consumer_id"]
    assert seek(client, cid, timestamp=t0 + 1500) == {topic: {"0": 2}}
    assert [unb64(r["value"]) for r in consume(client, cid)] == [b"v2", b"v3"]
    assert seek(client, cid, topic=topic, partition=0, timestamp=t0 + 1000) == {topic: {"0": 1}}
    assert seek(client, cid, timestamp=0) == {topic: {"0": 0}}
    # after every record: the end
    assert seek(client, cid, timestamp=t0 + 10_000) == {topic: {"0": 4}}


def test_seek_out_of_range_is_400_with_the_valid_range(client, api, topic):
    produce(api, topic, ["a", "b", "c"])
    cid = subscribe(client, "g", [topic], auto_offset_reset="earliest")["consumer_id"]
    details = assert_error(client.post(f"/api/consumers/{cid}/seek",
                                       json={"topic": topic, "partition": 0, "offset": 4}),
                           400, "offset_out_of_range")
    assert details["log_start_offset"] == 0
    assert details["high_watermark"] == 3
    assert positions(client, cid) == {topic: {"0": 0}}  # unchanged


def test_seek_on_a_partition_of_another_member_is_409(client, api):
    ok(api.create_topic("two", 2), 201)
    produce(api, "two", ["a"], partition=0)
    produce(api, "two", ["a"], partition=1)
    a = subscribe(client, "g", ["two"])["consumer_id"]
    theirs = subscribe(client, "g", ["two"])["assignment"]["two"][0]
    assert_error(client.post(f"/api/consumers/{a}/seek",
                             json={"topic": "two", "partition": theirs, "offset": 0}),
                 409, "partition_not_assigned")
    # a topic it does not read at all
    ok(api.create_topic("other", 1), 201)
    assert_error(client.post(f"/api/consumers/{a}/seek",
                             json={"topic": "other", "position": "beginning"}),
                 409, "partition_not_assigned")


def test_seek_on_a_missing_partition_is_404(client, topic):
    cid = subscribe(client, "g", [topic])["consumer_id"]
    assert_error(client.post(f"/api/consumers/{cid}/seek",
                             json={"topic": topic, "partition": 5, "offset": 0}),
                 404, "partition_not_found")


@pytest.mark.parametrize("body", [
    {},
    {"topic": "t", "partition": 0},
    {"topic": "t", "partition": 0, "offset": 0, "position": "end"},
    {"position": "end", "timestamp": 5},
    {"topic": "t", "partition": 0, "offset": 0, "timestamp": 5},
    {"offset": 0},                      # an offset needs its topic and partition
    {"topic": "t", "offset": 0},
    {"partition": 0, "position": "end"},  # a partition needs its topic
    {"position": "middle"},
    {"topic": "t", "partition": 0, "offset": -1},
    {"timestamp": "yesterday"},
    {"position": "end", "bogus": 1},
])
def test_seek_needs_exactly_one_valid_target(client, api, topic, body):
    produce(api, topic, ["a"])
    cid = subscribe(client, "g", [topic])["consumer_id"]
    assert_error(client.post(f"/api/consumers/{cid}/seek", json=body), 400, "invalid_request")
    assert positions(client, cid) == {topic: {"0": 1}}


# -- assignment -----------------------------------------------------------------------------

def test_get_assignment(client, topic3):
    sub = subscribe(client, "g", [topic3])
    assert assignment(client, sub["consumer_id"]) == {
        "group_id": "g", "assignment": {topic3: [0, 1, 2]}, "generation": sub["generation"]}


def test_put_assignment_switches_to_manual_and_the_group_rebalances(client, api, topic3):
    for p in range(3):
        produce(api, topic3, [f"p{p}"], partition=p)
    # a group of its own: on Kafka a group "g" of an earlier test may still hold commits
    # for the earlier topic of this name (a re-created topic keeps a group's old offsets)
    group = f"manual-{uuid.uuid4().hex[:8]}"
    a = subscribe(client, group, [topic3], auto_offset_reset="earliest")
    b = subscribe(client, group, [topic3], auto_offset_reset="earliest")
    resp = client.put(f"/api/consumers/{a['consumer_id']}/assignment",
                      json={"topics": {topic3: [2, 0]}})
    body = ok(resp)
    assert body == {"consumer_id": a["consumer_id"], "group_id": group, "topics": [topic3],
                    "assignment": {topic3: [0, 2]}, "generation": -1}
    assert assignment(client, a["consumer_id"]) == {
        "group_id": group, "assignment": {topic3: [0, 2]}, "generation": -1}
    # the remaining member of the group now owns every partition (once the group has
    # rebalanced: on Kafka a round trip later)
    now_b = wait_until(lambda: (lambda got: got["assignment"] == {topic3: [0, 1, 2]} and got)(
        assignment(client, b["consumer_id"])), "the group gave b every partition")
    assert now_b["generation"] > b["generation"]
    described = ok(client.get(f"/api/consumer-groups/{group}"))
    assert [m["consumer_id"] for m in described["members"]] == [b["consumer_id"]]
    # the manual session reads exactly its partitions (on Kafka each once its first fetch
    # arrived, which a loaded machine can take past the read-your-writes wait)
    got = []
    wait_until(lambda: got.extend(consume(client, a["consumer_id"])) or len(got) >= 2,
               "the manual session read its two partitions")
    got += consume_all(client, a["consumer_id"])
    assert sorted(r["partition"] for r in got) == [0, 2]


def test_put_assignment_errors(client, topic3):
    cid = subscribe(client, "g", [topic3])["consumer_id"]
    path = f"/api/consumers/{cid}/assignment"
    assert_error(client.put(path, json={"topics": {"nope": [0]}}), 404, "topic_not_found")
    assert_error(client.put(path, json={"topics": {topic3: [3]}}), 404, "partition_not_found")
    for body in ({}, {"topics": [topic3]}, {"topics": {topic3: [-1]}}, {"topics": {topic3: ["0"]}}):
        details = assert_error(client.put(path, json=body), 400, "invalid_request")
        assert "topics" in details, (body, details)
    # still a group member with everything
    assert assignment(client, cid)["assignment"] == {topic3: [0, 1, 2]}
    assert assignment(client, cid)["generation"] >= 1


# -- the assignor a group's first member chooses -------------------------------------------

def test_the_first_member_chooses_the_groups_assignor(client, topic3, store_name):
    def assignor(group):
        return ok(client.get(f"/api/consumer-groups/{group}"))["assignor"]

    first = subscribe(client, "g", [topic3], assignor="roundrobin")
    assert assignor("g") == "roundrobin"
    sticky = subscribe(client, "s", [topic3], assignor="sticky")
    assert assignor("s") == "sticky"  # Kafka: cooperative-sticky
    ok(client.delete(f"/api/consumers/{sticky['consumer_id']}"))
    if store_name == "embedded":  # Kafka: the members must agree on one (a later join waits)
        second = subscribe(client, "g", [topic3], assignor="sticky")
        assert assignor("g") == "roundrobin"  # a later member's choice is ignored
        ok(client.delete(f"/api/consumers/{second['consumer_id']}"))
    ok(client.delete(f"/api/consumers/{first['consumer_id']}"))
    subscribe(client, "h", [topic3])
    assert assignor("h") == "range"  # the server's default


def test_an_unknown_assignor_is_400_naming_it(client, topic):
    resp = client.post("/api/consumers/subscribe",
                       json={"group_id": "g", "topics": [topic], "assignor": "cooperative"})
    assert list(assert_error(resp, 400, "invalid_request")) == ["assignor"]


@pytest.mark.embedded_only
def test_a_sticky_group_keeps_the_partitions_of_the_members_that_stay(client, api):
    api.create_topic("s", 6)
    a = subscribe(client, "g", ["s"], assignor="sticky")
    b = subscribe(client, "g", ["s"])
    c = subscribe(client, "g", ["s"])
    ids = [m["consumer_id"] for m in (a, b, c)]
    before = {cid: assignment(client, cid)["assignment"]["s"] for cid in ids}
    assert sorted(len(ps) for ps in before.values()) == [2, 2, 2]
    ok(client.delete(f"/api/consumers/{ids[1]}"))
    for cid in (ids[0], ids[2]):
        after = assignment(client, cid)["assignment"]["s"]
        assert set(before[cid]) <= set(after) and len(after) == 3


# -- listing the sessions --------------------------------------------------------------------

SESSION_KEYS = SUBSCRIPTION_KEYS | {"manual", "owner", "last_heartbeat_ms_ago", "waiting"}


def test_live_sessions_are_listed_with_group_assignment_and_owner(client, topic3):
    a = subscribe(client, "g", [topic3])
    b = subscribe(client, "h", [topic3])
    listed = ok(client.get("/api/consumers"))["sessions"]
    assert [s["consumer_id"] for s in listed] == sorted([a["consumer_id"], b["consumer_id"]])
    by_id = {s["consumer_id"]: s for s in listed}
    for sub in (a, b):
        row = by_id[sub["consumer_id"]]
        assert set(row) == SESSION_KEYS, row
        assert row["group_id"] == sub["group_id"] and row["topics"] == [topic3]
        assert row["assignment"] == {topic3: [0, 1, 2]}
        assert row["owner"] is None and row["manual"] is False and row["waiting"] is False
        assert row["last_heartbeat_ms_ago"] >= 0
    ok(client.delete(f"/api/consumers/{a['consumer_id']}"))
    assert [s["consumer_id"] for s in ok(client.get("/api/consumers"))["sessions"]] == [
        b["consumer_id"]]


# -- position and committed -----------------------------------------------------------------

def test_position_and_committed(client, api, topic3):
    produce(api, topic3, ["a", "b", "c"], partition=0)
    produce(api, topic3, ["a"], partition=1)
    cid = subscribe(client, "g", [topic3], auto_offset_reset="earliest")["consumer_id"]
    assert positions(client, cid) == {topic3: {"0": 0, "1": 0, "2": 0}}
    assert committed(client, cid) == {}
    consume_all(client, cid)
    assert positions(client, cid) == {topic3: {"0": 3, "1": 1, "2": 0}}
    commit(client, cid, {topic3: {"0": 2}})
    # partitions with no commit are absent
    assert committed(client, cid) == {topic3: {"0": 2}}


# -- close ----------------------------------------------------------------------------------

def test_delete_with_commit_true_commits_the_positions_first(client, api, topic):
    produce(api, topic, [f"v{i}" for i in range(4)])
    cid = subscribe(client, "g", [topic], auto_offset_reset="earliest")["consumer_id"]
    consume(client, cid, max_records=3)
    assert ok(client.delete(f"/api/consumers/{cid}?commit=true")) == {"message": "consumer closed"}
    nxt = subscribe(client, "g", [topic])["consumer_id"]
    assert committed(client, nxt) == {topic: {"0": 3}}
    assert [r["offset"] for r in consume(client, nxt)] == [3]


def test_delete_without_commit_commits_nothing(client, api, topic):
    produce(api, topic, [f"v{i}" for i in range(4)])
    cid = subscribe(client, "g", [topic], auto_offset_reset="earliest")["consumer_id"]
    consume(client, cid, max_records=3)
    assert ok(client.delete(f"/api/consumers/{cid}")) == {"message": "consumer closed"}
    nxt = subscribe(client, "g", [topic], auto_offset_reset="earliest")["consumer_id"]
    assert committed(client, nxt) == {}
    assert [r["offset"] for r in consume(client, nxt)] == [0, 1, 2, 3]


def test_delete_rejects_a_bad_commit_flag(client, topic):
    cid = subscribe(client, "g", [topic])["consumer_id"]
    details = assert_error(client.delete(f"/api/consumers/{cid}?commit=perhaps"), 400,
                           "invalid_request")
    assert "commit" in details
    assignment(client, cid)  # still open


def every_endpoint(client, cid, topic):
    """One request on each consumer endpoint of ``cid``."""
    base = f"/api/consumers/{cid}"
    return {
        "consume": client.post(f"{base}/consume", json={"timeout_ms": 0}),
        "consume (empty body)": client.post(f"{base}/consume"),
        "commit": client.post(f"{base}/commit", json={}),
        "commit offsets": client.post(f"{base}/commit", json={"offsets": {topic: {"0": 0}}}),
        "seek": client.post(f"{base}/seek", json={"position": "beginning"}),
        "get assignment": client.get(f"{base}/assignment"),
        "put assignment": client.put(f"{base}/assignment", json={"topics": {topic: [0]}}),
        "position": client.get(f"{base}/position"),
        "committed": client.get(f"{base}/committed"),
        "delete": client.delete(base),
        "delete commit": client.delete(f"{base}?commit=true"),
    }


def assert_gone(client, cid, topic):
    for name, resp in every_endpoint(client, cid, topic).items():
        try:
            assert_error(resp, 404, "consumer_not_found")
        except AssertionError as exc:
            raise AssertionError(f"{name}: {exc}") from None


def test_a_closed_consumer_is_404_on_every_endpoint(client, topic):
    cid = subscribe(client, "g", [topic])["consumer_id"]
    ok(client.delete(f"/api/consumers/{cid}"))
    assert_gone(client, cid, topic)
    # and it left its group
    group = ok(client.get("/api/consumer-groups/g"))
    assert group["members"] == [] and group["state"] == "Empty"


def test_an_unknown_consumer_is_404_on_every_endpoint(client, topic):
    assert_gone(client, "0123456789abcdef0123456789abcdef", topic)


@pytest.mark.embedded_only  # the fake clock
def test_an_expired_session_is_404_on_every_endpoint_and_leaves_its_group(
        client, api, topic3, clock, manager):
    produce(api, topic3, ["a"], partition=0)
    old = subscribe(client, "g", [topic3], session_timeout_ms=1000)
    keep = subscribe(client, "g", [topic3], session_timeout_ms=60_000)
    assert assignment(client, old["consumer_id"])["assignment"]  # owns something
    clock.advance(999)
    assert manager.expire() == []  # not yet
    ok(client.get(f"/api/consumers/{keep['consumer_id']}/position"))
    clock.advance(2)
    assert manager.expire() == [old["consumer_id"]]
    assert_gone(client, old["consumer_id"], topic3)
    # its partitions went to the other member
    assert assignment(client, keep["consumer_id"])["assignment"] == {topic3: [0, 1, 2]}
    group = ok(client.get("/api/consumer-groups/g"))
    assert [m["consumer_id"] for m in group["members"]] == [keep["consumer_id"]]


@pytest.mark.embedded_only  # the fake clock
def test_every_consumer_request_is_a_heartbeat(client, topic, clock, manager):
    cid = subscribe(client, "g", [topic], session_timeout_ms=1000)["consumer_id"]
    for request in (lambda: client.get(f"/api/consumers/{cid}/position"),
                    lambda: client.get(f"/api/consumers/{cid}/committed"),
                    lambda: client.get(f"/api/consumers/{cid}/assignment"),
                    lambda: client.post(f"/api/consumers/{cid}/commit", json={}),
                    lambda: client.post(f"/api/consumers/{cid}/seek", json={"position": "end"}),
                    lambda: client.post(f"/api/consumers/{cid}/consume", json={"timeout_ms": 0})):
        clock.advance(800)
        ok(request())
        clock.advance(800)  # 1600 ms since the previous request but 800 since this one
        assert manager.expire() == []
    assignment(client, cid)
    clock.advance(1001)
    assert manager.expire() == [cid]


# -- the seed's lifecycle -------------------------------------------------------------------

def test_lifecycle_subscribe_consume_commit_seek_replay_unsubscribe(client, api, topic3):
    for p in range(3):
        produce(api, topic3, [f"p{p}-{i}" for i in range(3)], partition=p)
    sub = subscribe(client, "lifecycle", [topic3], auto_offset_reset="earliest")
    cid = sub["consumer_id"]
    assert sub["assignment"] == {topic3: [0, 1, 2]}

    first = consume_all(client, cid)
    assert sorted(keyed(first)) == sorted(
        (p, i, f"p{p}-{i}".encode()) for p in range(3) for i in range(3))
    assert commit(client, cid) == {topic3: {"0": 3, "1": 3, "2": 3}}
    assert committed(client, cid) == {topic3: {"0": 3, "1": 3, "2": 3}}
    assert consume(client, cid) == []

    for p in range(3):
        assert seek(client, cid, topic=topic3, partition=p, offset=0) == {topic3: {str(p): 0}}
    replay = consume_all(client, cid)
    assert sorted(keyed(replay)) == sorted(keyed(first))  # the same records again
    # a seek does not change what is committed
    assert committed(client, cid) == {topic3: {"0": 3, "1": 3, "2": 3}}

    assert ok(client.delete(f"/api/consumers/{cid}")) == {"message": "consumer closed"}
    assert_error(client.get(f"/api/consumers/{cid}/position"), 404, "consumer_not_found")
    group = ok(client.get("/api/consumer-groups/lifecycle"))
    assert group["state"] == "Empty" and group["members"] == []
    assert {(o["partition"], o["committed_offset"], o["lag"]) for o in group["offsets"]} == {
        (0, 3, 0), (1, 3, 0), (2, 3, 0)}


# -- long-poll (in process) -----------------------------------------------------------------

def wait_until_waiting(manager, count=1, limit_s=5.0):
    """Spin (no sleep) until ``count`` consumes are waiting for records; bounded."""
    deadline = time.monotonic() + limit_s
    while manager.waiting() < count:
        assert time.monotonic() < deadline, "the consume never started waiting"


def start_consume(app, cid, **body):
    """POST consume from another thread (its own test client); a Future of the response."""
    pool = ThreadPoolExecutor(max_workers=1)
    future = pool.submit(lambda: app.test_client().post(f"/api/consumers/{cid}/consume",
                                                        json=body))
    pool.shutdown(wait=False)
    return future


def test_a_waiting_consume_wakes_on_an_append_to_an_owned_partition(app, client, api, topic,
                                                                    manager):
    cid = subscribe(client, "g", [topic])["consumer_id"]
    future = start_consume(app, cid, timeout_ms=300_000)
    wait_until_waiting(manager)
    assert not future.done()
    produce(api, topic, ["hello"])
    out = ok(future.result(timeout=10))
    assert [unb64(r["value"]) for r in out["records"]] == [b"hello"]
    assert manager.waiting() == 0


@pytest.mark.embedded_only  # the fake clock
def test_a_consume_in_progress_keeps_its_session_alive(app, client, api, topic, clock, manager):
    cid = subscribe(client, "g", [topic], session_timeout_ms=1000)["consumer_id"]
    future = start_consume(app, cid, timeout_ms=300_000)
    wait_until_waiting(manager)
    clock.advance(5000)
    assert manager.expire() == []
    produce(api, topic, ["x"])
    assert len(ok(future.result(timeout=10))["records"]) == 1
    # the session's timeout counts from the end of that consume
    clock.advance(999)
    assert manager.expire() == []
    clock.advance(2)
    assert manager.expire() == [cid]


def test_closing_a_session_while_it_waits_answers_its_consume_404(app, client, topic, manager):
    cid = subscribe(client, "g", [topic])["consumer_id"]
    future = start_consume(app, cid, timeout_ms=300_000)
    wait_until_waiting(manager)
    ok(client.delete(f"/api/consumers/{cid}"))
    assert_error(future.result(timeout=10), 404, "consumer_not_found")


def test_min_records_gathers_several_produces_into_one_answer(app, client, api, topic,
                                                              manager):
    cid = subscribe(client, "g", [topic])["consumer_id"]
    future = start_consume(app, cid, timeout_ms=300_000, min_records=3)
    wait_until_waiting(manager)
    for value in ("a", "b", "c"):
        produce(api, topic, [value])
    out = ok(future.result(timeout=30))
    assert [unb64(r["value"]) for r in out["records"]] == [b"a", b"b", b"c"]


def test_min_records_with_no_time_to_wait_gives_what_there_is(client, api, topic):
    # (the wait until timeout_ms: tests/sessions/test_long_poll.py, with a fake clock)
    produce(api, topic, ["a", "b"])
    cid = subscribe(client, "g", [topic], auto_offset_reset="earliest")["consumer_id"]
    got = consume(client, cid, min_records=5, timeout_ms=0)
    assert [unb64(r["value"]) for r in got] == [b"a", b"b"]


@pytest.mark.parametrize("value", [0, 10001, "3", 2.5, True])
def test_min_records_out_of_range_is_invalid(client, topic, value):
    cid = subscribe(client, "g", [topic])["consumer_id"]
    details = assert_error(client.post(f"/api/consumers/{cid}/consume",
                                       json={"min_records": value}), 400, "invalid_request")
    assert "min_records" in details


def test_group_ids_with_url_special_characters(client, api, topic):
    group = "billing team?x=1#frag %41 é"
    sub = subscribe(client, group, [topic])
    assert sub["group_id"] == group
    quoted = quote(group, safe="")
    body = ok(client.get(f"/api/consumer-groups/{quoted}"))
    assert body["group_id"] == group
    assert [m["consumer_id"] for m in body["members"]] == [sub["consumer_id"]]
    assert group in [g["group_id"] for g in ok(client.get("/api/consumer-groups"))["groups"]]


@pytest.mark.embedded_only  # Kafka: README, re-created topics
def test_a_recreated_topic_is_read_from_its_first_record(client, api, topic):
    produce(api, topic, [f"old{i}" for i in range(5)])
    cid = subscribe(client, "g", [topic], auto_offset_reset="earliest")["consumer_id"]
    assert len(consume_all(client, cid)) == 5  # position 5
    ok(client.delete(f"/api/topics/{topic}"))
    ok(api.create_topic(topic, 1), 201)
    produce(api, topic, [f"new{i}" for i in range(8)])
    # the idle session never saw the generation without the topic; nothing is committed for
    # the new topic, so it starts at auto_offset_reset (earliest): all 8 new records
    got = consume_all(client, cid)
    assert [unb64(r["value"]) for r in got] == [f"new{i}".encode() for i in range(8)]


@pytest.mark.embedded_only  # the fake clock
def test_the_default_session_timeout_comes_from_the_server_settings(make_api, manager, clock):
    api = make_api(session_timeout_ms=5000)
    assert api.client.post("/api/topics", json={"name": "st", "partitions": 1}).status_code == 201
    cid = api.client.post("/api/consumers/subscribe",
                          json={"group_id": "g", "topics": ["st"]}).get_json()["consumer_id"]
    clock.advance(4000)
    assert manager.expire() == []
    clock.advance(1001)
    assert manager.expire() == [cid]


# -- a response that never reaches the client -----------------------------------------------

def consume_awaiting_write(client, cid, **body):
    """A consume run as a WSGI server runs it, up to the response's body iterable (not read
    yet: the server is about to write it). Returns ``(body iterable, statuses started)``."""
    from werkzeug.test import EnvironBuilder
    body.setdefault("timeout_ms", 0)
    environ = EnvironBuilder(path=f"/api/consumers/{cid}/consume", method="POST",
                             json=body).get_environ()
    started = []
    return client.application(environ, lambda status, headers: started.append(status)), started


def consume_unwritten(client, cid, write: bool, **body):
    """A consume whose response the server fails to write (``write=False``: it takes the
    body, then closes the iterable without asking for more) or writes; the parsed body when
    written."""
    app_iter, started = consume_awaiting_write(client, cid, **body)
    try:
        if write:
            data = b"".join(app_iter)
        else:
            next(iter(app_iter))  # the server takes the body; writing it then fails
            data = None
    finally:
        app_iter.close()
    assert started == ["200 OK"]
    return None if data is None else json.loads(data)


@pytest.mark.parametrize("auto_commit", [False, True], ids=["manual-commit", "auto-commit"])
def test_records_of_a_response_that_could_not_be_written_are_consumed_again(
        client, api, topic, auto_commit, caplog):
    produce(api, topic, ["a", "b", "c"])
    cid = subscribe(client, auto_offset_reset="earliest", auto_commit=auto_commit,
                    encoding="text")["consumer_id"]
    assert [r["value"] for r in consume(client, cid, max_records=1)] == ["a"]
    with caplog.at_level("WARNING", logger="consumer_api.sessions.manager"):
        consume_unwritten(client, cid, write=False, max_records=2)  # b, c: lost on the wire
    assert positions(client, cid) == {"t": {"0": 1}}
    assert "2 of them will be consumed again" in caplog.text
    got = consume(client, cid)
    assert [(r["offset"], r["value"]) for r in got] == [(1, "b"), (2, "c")]
    if auto_commit:  # the consume above committed what the client really had: "a"
        assert committed(client, cid) == {"t": {"0": 1}}
    # a written response moves on for good
    produce(api, topic, ["d"])
    assert consume_unwritten(client, cid, write=True)["records"][0]["value"] == "d"
    assert consume(client, cid) == []
    assert positions(client, cid) == {"t": {"0": 4}}


def test_a_failed_write_does_not_undo_a_seek_made_meanwhile(client, api, topic):
    produce(api, topic, ["a", "b", "c"])
    cid = subscribe(client, auto_offset_reset="earliest", encoding="text")["consumer_id"]
    app_iter, _ = consume_awaiting_write(client, cid)
    seek(client, cid, topic="t", partition=0, offset=2)  # while the response is "on the wire"
    app_iter.close()  # ... and then its write fails
    assert positions(client, cid) == {"t": {"0": 2}}
    assert [r["value"] for r in consume(client, cid)] == ["c"]
