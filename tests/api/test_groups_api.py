"""Consumer group administration over HTTP (API.md, "Consumer groups"), through the Flask
test client on the fake clock.

A consume that may find nothing is sent with ``timeout_ms: 0`` (the fake clock never moves
by itself). Expectations come from the contract, not from the server's code.
"""
from __future__ import annotations

import pytest

from tests.api.conftest import assert_error

pytestmark = pytest.mark.usefixtures("openapi_built_once")
ON_STORES = ("embedded", "kafka")

OFFSET_ROW_KEYS = {"topic", "partition", "committed_offset", "high_watermark", "lag"}


def ok(resp, status=200):
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert resp.mimetype == "application/json"
    return resp.get_json()


def subscribe(client, group, topics, **extra):
    return ok(client.post("/api/consumers/subscribe",
                          json={"group_id": group, "topics": list(topics), **extra}))


def consume(client, cid, **body):
    body.setdefault("timeout_ms", 0)
    return ok(client.post(f"/api/consumers/{cid}/consume", json=body))["records"]


def consume_all(client, cid):
    got = []
    while batch := consume(client, cid):
        got.extend(batch)
    return got


def close(client, cid, commit=False):
    path = f"/api/consumers/{cid}" + ("?commit=true" if commit else "")
    assert ok(client.delete(path)) == {"message": "consumer closed"}


def produce(api, topic, count, partition):
    ok(api.produce(topic, [{"value": f"v{i}", "partition": partition} for i in range(count)],
                   encoding="text"))


def positions(client, cid):
    return ok(client.get(f"/api/consumers/{cid}/position"))["offsets"]


def describe(client, group):
    body = ok(client.get(f"/api/consumer-groups/{group}"))
    assert set(body) >= {"group_id", "state", "generation", "assignor", "members", "offsets"}
    for row in body["offsets"]:
        assert set(row) == OFFSET_ROW_KEYS, row
    for member in body["members"]:
        assert {"consumer_id", "assignment", "last_heartbeat_ms_ago"} <= set(member), member
    return body


def offsets_table(body):
    return {(r["topic"], r["partition"]): (r["committed_offset"], r["high_watermark"], r["lag"])
            for r in body["offsets"]}


def set_offsets(client, group, body):
    return client.post(f"/api/consumer-groups/{group}/offsets", json=body)


@pytest.fixture
def orders(api):
    """Topic "orders", 3 partitions holding 5, 3 and 0 records."""
    ok(api.create_topic("orders", 3), 201)
    produce(api, "orders", 5, 0)
    produce(api, "orders", 3, 1)
    return "orders"


# -- list -----------------------------------------------------------------------------------

def test_list_groups_is_empty_at_first(client):
    assert ok(client.get("/api/consumer-groups")) == {"groups": []}


@pytest.mark.embedded_only  # group generations (Kafka: 0)
def test_list_groups_shows_members_state_and_generation(client, api, orders):
    ok(api.create_topic("audit", 1), 201)
    a = subscribe(client, "billing", [orders])
    b = subscribe(client, "billing", [orders])
    c = subscribe(client, "audit-readers", ["audit"])
    groups = ok(client.get("/api/consumer-groups"))["groups"]
    assert [g["group_id"] for g in groups] == ["audit-readers", "billing"]  # sorted by id
    by_id = {g["group_id"]: g for g in groups}
    for g in groups:
        assert set(g) == {"group_id", "state", "generation", "members"}, g
    assert by_id["billing"]["state"] == "Stable"
    assert by_id["billing"]["generation"] == b["generation"]
    assert sorted(by_id["billing"]["members"]) == sorted([a["consumer_id"], b["consumer_id"]])
    assert by_id["audit-readers"]["members"] == [c["consumer_id"]]
    assert by_id["audit-readers"]["generation"] == c["generation"]

    close(client, a["consumer_id"])
    close(client, b["consumer_id"])
    billing = {g["group_id"]: g for g in ok(client.get("/api/consumer-groups"))["groups"]}[
        "billing"]
    assert billing["state"] == "Empty" and billing["members"] == []
    assert billing["generation"] > b["generation"]


def test_a_group_with_only_committed_offsets_is_listed(client, orders):
    assert ok(set_offsets(client, "offline", {"offsets": {orders: {"0": 2}}}))["success"] is True
    groups = ok(client.get("/api/consumer-groups"))["groups"]
    [g] = [g for g in groups if g["group_id"] == "offline"]
    assert g["state"] == "Empty" and g["members"] == []


# -- describe -------------------------------------------------------------------------------

@pytest.mark.embedded_only  # the fake clock
def test_describe_group_members_offsets_and_lag(client, orders):
    a = subscribe(client, "billing", [orders], auto_offset_reset="earliest")
    body = describe(client, "billing")
    assert body["group_id"] == "billing"
    assert body["state"] == "Stable"
    assert body["generation"] == a["generation"]
    assert body["assignor"] == "range"
    assert [(m["consumer_id"], m["assignment"]) for m in body["members"]] == [
        (a["consumer_id"], {orders: [0, 1, 2]})]
    assert body["members"][0]["last_heartbeat_ms_ago"] == 0
    # nothing committed: committed_offset and lag are null, the high watermark is there
    assert offsets_table(body) == {(orders, 0): (None, 5, None), (orders, 1): (None, 3, None),
                                   (orders, 2): (None, 0, None)}

    consume(client, a["consumer_id"], max_records=2)  # reads 2 records of one partition
    ok(client.post(f"/api/consumers/{a['consumer_id']}/commit",
                   json={"offsets": {orders: {"0": 2, "1": 3}}}))
    assert offsets_table(describe(client, "billing")) == {
        (orders, 0): (2, 5, 3), (orders, 1): (3, 3, 0), (orders, 2): (None, 0, None)}


def test_describe_shows_the_split_between_members(client, orders, store_name):
    a = subscribe(client, "billing", [orders])["consumer_id"]
    b = subscribe(client, "billing", [orders])
    body = describe(client, "billing")
    if store_name == "embedded":  # Kafka's group generation is not told: 0
        assert body["generation"] == b["generation"]
    members = {m["consumer_id"]: m["assignment"] for m in body["members"]}
    assert set(members) == {a, b["consumer_id"]}
    assert members[b["consumer_id"]] == b["assignment"]
    owned = sorted(p for asg in members.values() for p in asg.get(orders, []))
    assert owned == [0, 1, 2]


def test_lag_follows_new_records(client, api, orders):
    a = subscribe(client, "billing", [orders])["consumer_id"]
    ok(client.post(f"/api/consumers/{a}/commit", json={}))  # "latest": 5, 3, 0
    assert offsets_table(describe(client, "billing")) == {
        (orders, 0): (5, 5, 0), (orders, 1): (3, 3, 0), (orders, 2): (0, 0, 0)}
    produce(api, orders, 4, 2)
    assert offsets_table(describe(client, "billing"))[(orders, 2)] == (0, 4, 4)


@pytest.mark.embedded_only  # the fake clock
def test_last_heartbeat_ms_ago_grows_with_the_clock_and_resets_on_a_request(client, orders,
                                                                           clock):
    a = subscribe(client, "billing", [orders])["consumer_id"]

    def ago():
        [member] = describe(client, "billing")["members"]
        return member["last_heartbeat_ms_ago"]

    assert ago() == 0
    clock.advance(1500)
    assert ago() == 1500
    clock.advance(2500)
    assert ago() == 4000  # describing the group is not a heartbeat of its members
    ok(client.get(f"/api/consumers/{a}/position"))
    assert ago() == 0
    clock.advance(700)
    assert ago() == 700


def test_describe_an_unknown_group_is_404(client):
    details = assert_error(client.get("/api/consumer-groups/nobody"), 404, "group_not_found")
    assert details.get("group_id") == "nobody"


@pytest.mark.embedded_only  # the fake clock
def test_an_expired_member_disappears_from_its_group(client, orders, clock, manager):
    a = subscribe(client, "billing", [orders], session_timeout_ms=1000)["consumer_id"]
    b = subscribe(client, "billing", [orders], session_timeout_ms=60_000)["consumer_id"]
    gen = describe(client, "billing")["generation"]
    clock.advance(1001)
    assert manager.expire() == [a]
    body = describe(client, "billing")
    assert [m["consumer_id"] for m in body["members"]] == [b]
    assert body["members"][0]["assignment"] == {orders: [0, 1, 2]}
    assert body["generation"] > gen


# -- set / reset offsets --------------------------------------------------------------------

def test_set_explicit_offsets_then_a_new_member_starts_there(client, orders):
    resp = set_offsets(client, "billing", {"offsets": {orders: {"0": 3, "1": 1}}})
    assert ok(resp) == {"success": True, "message": "offsets committed",
                        "offsets": {orders: {"0": 3, "1": 1}}}
    assert offsets_table(describe(client, "billing"))[(orders, 0)] == (3, 5, 2)
    cid = subscribe(client, "billing", [orders])["consumer_id"]  # latest, but commits win
    assert positions(client, cid) == {orders: {"0": 3, "1": 1, "2": 0}}
    got = consume_all(client, cid)
    assert sorted((r["partition"], r["offset"]) for r in got) == [
        (0, 3), (0, 4), (1, 1), (1, 2)]


def test_reset_to_earliest(client, orders):
    cid = subscribe(client, "billing", [orders])["consumer_id"]
    close(client, cid, commit=True)  # commits the ends: 5, 3, 0
    body = ok(set_offsets(client, "billing", {"reset": "earliest"}))
    assert body["offsets"] == {orders: {"0": 0, "1": 0, "2": 0}}
    assert {k: v[0] for k, v in offsets_table(describe(client, "billing")).items()} == {
        (orders, 0): 0, (orders, 1): 0, (orders, 2): 0}
    cid = subscribe(client, "billing", [orders])["consumer_id"]  # auto_offset_reset latest
    assert len(consume_all(client, cid)) == 8


def test_reset_to_latest_for_named_topics(client, api, orders):
    ok(api.create_topic("audit", 1), 201)
    produce(api, "audit", 2, 0)
    body = ok(set_offsets(client, "billing", {"reset": "latest", "topics": [orders]}))
    assert body["offsets"] == {orders: {"0": 5, "1": 3, "2": 0}}
    cid = subscribe(client, "billing", [orders, "audit"],
                    auto_offset_reset="earliest")["consumer_id"]
    # orders starts at its end (reset), audit (not reset, no commit) at earliest
    assert positions(client, cid) == {"audit": {"0": 0}, orders: {"0": 5, "1": 3, "2": 0}}
    got = consume_all(client, cid)
    assert {(r["topic"], r["offset"]) for r in got} == {("audit", 0), ("audit", 1)}


def test_reset_without_topics_needs_commits(client, orders):
    details = assert_error(set_offsets(client, "fresh", {"reset": "earliest"}), 400,
                           "invalid_request")
    assert "topics" in details


def test_set_offsets_while_the_group_has_members_is_409(client, orders):
    cid = subscribe(client, "billing", [orders])["consumer_id"]
    ok(client.post(f"/api/consumers/{cid}/commit", json={"offsets": {orders: {"0": 1}}}))
    for body in ({"offsets": {orders: {"0": 4}}}, {"reset": "earliest"},
                 {"reset": "latest", "topics": [orders]}):
        details = assert_error(set_offsets(client, "billing", body), 409, "group_not_empty")
        assert details.get("group_id") == "billing"
    assert offsets_table(describe(client, "billing"))[(orders, 0)][0] == 1  # unchanged
    close(client, cid)
    ok(set_offsets(client, "billing", {"offsets": {orders: {"0": 4}}}))
    assert offsets_table(describe(client, "billing"))[(orders, 0)][0] == 4


@pytest.mark.parametrize("body", [
    {},
    {"offsets": {"orders": {"0": 1}}, "reset": "earliest"},
    {"reset": "middle"},
    {"offsets": {"orders": {"0": 1}}, "topics": ["orders"]},
    {"offsets": {"orders": {"x": 1}}},
    {"offsets": {"orders": {"0": -1}}},
    {"reset": "earliest", "bogus": 1},
])
def test_set_offsets_needs_exactly_one_of_offsets_and_reset(client, orders, body):
    assert_error(set_offsets(client, "billing", body), 400, "invalid_request")
    assert_error(client.get("/api/consumer-groups/billing"), 404, "group_not_found")


def test_set_offsets_beyond_the_high_watermark_is_400(client, orders):
    details = assert_error(set_offsets(client, "billing", {"offsets": {orders: {"0": 6}}}), 400,
                           "offset_out_of_range")
    assert details["high_watermark"] == 5 and details["log_start_offset"] == 0
    assert_error(client.get("/api/consumer-groups/billing"), 404, "group_not_found")


def test_set_offsets_of_a_missing_topic_or_partition_is_404(client, orders):
    assert_error(set_offsets(client, "billing", {"offsets": {"nope": {"0": 0}}}), 404,
                 "topic_not_found")
    assert_error(set_offsets(client, "billing", {"offsets": {orders: {"7": 0}}}), 404,
                 "partition_not_found")
    assert_error(set_offsets(client, "billing", {"reset": "earliest", "topics": ["nope"]}), 404,
                 "topic_not_found")


# -- delete ---------------------------------------------------------------------------------

def test_delete_a_group_with_members_is_409(client, orders):
    cid = subscribe(client, "billing", [orders])["consumer_id"]
    ok(client.post(f"/api/consumers/{cid}/commit", json={}))
    details = assert_error(client.delete("/api/consumer-groups/billing"), 409, "group_not_empty")
    assert details.get("group_id") == "billing"
    # nothing was lost: member and offsets are still there
    body = describe(client, "billing")
    assert [m["consumer_id"] for m in body["members"]] == [cid]
    assert offsets_table(body)[(orders, 0)][0] == 5
    ok(client.get(f"/api/consumers/{cid}/position"))


def test_delete_an_empty_group_removes_it_and_its_offsets(client, api, orders):
    cid = subscribe(client, "billing", [orders], auto_offset_reset="earliest")["consumer_id"]
    consume(client, cid, max_records=1)
    close(client, cid, commit=True)
    assert any(r["committed_offset"] is not None for r in describe(client, "billing")["offsets"])
    assert ok(client.delete("/api/consumer-groups/billing")) == {"message": "group deleted"}
    assert_error(client.get("/api/consumer-groups/billing"), 404, "group_not_found")
    assert "billing" not in [g["group_id"] for g in ok(client.get("/api/consumer-groups"))["groups"]]
    assert_error(client.delete("/api/consumer-groups/billing"), 404, "group_not_found")
    # the offsets went with it: a new member with "latest" starts at the ends
    produce(api, orders, 1, 2)
    cid = subscribe(client, "billing", [orders])["consumer_id"]
    assert positions(client, cid) == {orders: {"0": 5, "1": 3, "2": 1}}
    assert ok(client.get(f"/api/consumers/{cid}/committed"))["offsets"] == {}
    assert consume(client, cid) == []


def test_delete_a_group_known_only_by_its_offsets(client, orders):
    ok(set_offsets(client, "offline", {"offsets": {orders: {"0": 1}}}))
    assert ok(client.delete("/api/consumer-groups/offline")) == {"message": "group deleted"}
    assert_error(client.get("/api/consumer-groups/offline"), 404, "group_not_found")


def test_delete_an_unknown_group_is_404(client):
    details = assert_error(client.delete("/api/consumer-groups/nobody"), 404, "group_not_found")
    assert details.get("group_id") == "nobody"


def test_wrong_method_on_groups_is_405(client):
    assert_error(client.put("/api/consumer-groups/billing", json={}), 405, "method_not_allowed")
