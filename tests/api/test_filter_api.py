"""Server-side filters (README "Filtering records"): a consume's ``filter`` (body) and a
read's ``filter`` (JSON query parameter) return only the records that match; positions and
``next_offset`` move past the others, a commit covers them, and a request examines at most
``max_filter_scan_records`` records. The language itself is proved in
tests/test_record_filter.py; here its wiring, on both stores."""
from __future__ import annotations

import json

import pytest

from tests.api.conftest import assert_error
from tests.api.test_consumers_api import commit, committed, ok, positions, subscribe

pytestmark = pytest.mark.usefixtures("openapi_built_once")
ON_STORES = ("embedded", "kafka")

USERS = {"key": {"prefix": "user-"}}


@pytest.fixture
def topic(api):
    ok(api.create_topic("f", 1), 201)
    return "f"


def produce(api, topic, records):
    """Text records ``(key, value, headers)`` to partition 0."""
    body = [{"key": k, "value": v, "headers": h or {}, "partition": 0} for k, v, h in records]
    ok(api.produce(topic, body, encoding="text"))


def consume(client, cid, **body):
    """The whole filtered consume response."""
    body.setdefault("timeout_ms", 0)
    body.setdefault("encoding", "text")
    return ok(client.post(f"/api/consumers/{cid}/consume", json=body))


def values(records):
    return [r["value"] for r in records]


def mixed(n):
    """``n`` records, every third one keyed ``user-i``, the others ``bot-i``."""
    return [(f"user-{i}" if i % 3 == 0 else f"bot-{i}", f"v{i}", None) for i in range(n)]


def test_a_filtered_consume_returns_the_matches_and_moves_past_the_rest(client, api, topic):
    produce(api, topic, mixed(10))
    cid = subscribe(client, "g", [topic], auto_offset_reset="earliest")["consumer_id"]
    out = consume(client, cid, filter=USERS)
    assert values(out["records"]) == ["v0", "v3", "v6", "v9"]
    assert out["scanned"] == 10 and out["scan_limit_reached"] is False
    assert out["positions"] == {topic: {"0": 10}}
    assert positions(client, cid) == {topic: {"0": 10}}
    assert consume(client, cid, filter=USERS)["records"] == []


def test_a_commit_after_a_filtered_consume_covers_the_skipped_records(client, api, topic):
    produce(api, topic, mixed(5) + [("bot-x", "last", None)])
    cid = subscribe(client, "g", [topic], auto_offset_reset="earliest")["consumer_id"]
    assert values(consume(client, cid, filter=USERS)["records"]) == ["v0", "v3"]
    commit(client, cid)
    assert committed(client, cid) == {topic: {"0": 6}}  # past the trailing non-match too
    unfiltered = consume(client, cid)
    assert set(unfiltered) == {"records", "timestamp"}  # nothing added without a filter
    assert unfiltered["records"] == []


def test_max_records_counts_matches_and_the_position_stops_after_the_last(client, api, topic):
    produce(api, topic, mixed(10))
    cid = subscribe(client, "g", [topic], auto_offset_reset="earliest")["consumer_id"]
    first = consume(client, cid, filter=USERS, max_records=2)
    assert values(first["records"]) == ["v0", "v3"]
    assert first["positions"] == {topic: {"0": 4}}  # after v3: v4 and v5 not yet examined
    assert values(consume(client, cid, filter=USERS)["records"]) == ["v6", "v9"]


def test_header_and_json_value_conditions(client, api, topic):
    produce(api, topic, [
        (None, json.dumps({"order": {"total": 50}}), {"region": "eu"}),
        (None, json.dumps({"order": {"total": 150}}), {"region": "us"}),
        (None, json.dumps({"order": {"total": 250}}), {"region": "eu"}),
        (None, "not json", {"region": "eu"}),
        (None, json.dumps({"order": {"total": "300"}}), None),
    ])
    cid = subscribe(client, "g", [topic], auto_offset_reset="earliest")["consumer_id"]
    spec = {"all": [{"header": {"name": "region", "equals": "eu"}},
                    {"value": {"path": "order.total", "gt": 100}}]}
    assert [r["offset"] for r in consume(client, cid, filter=spec)["records"]] == [2]
    client.post(f"/api/consumers/{cid}/seek", json={"position": "beginning"})
    spec = {"any": [{"value": {"path": "order.total", "in": [50, "300"]}},
                    {"header": {"name": "region", "equals": "us"}}]}
    assert [r["offset"] for r in consume(client, cid, filter=spec)["records"]] == [0, 1, 4]


@pytest.mark.parametrize("spec, where", [
    ({"key": {"starts": "x"}}, "filter.key"),
    ({"all": []}, "filter.all"),
    ({"value": {"path": "a", "gt": [1]}}, "filter.value.gt"),
    ("user-", "filter"),
])
def test_a_malformed_filter_is_400_naming_where_and_takes_nothing(client, api, topic, spec,
                                                                 where):
    produce(api, topic, mixed(3))
    cid = subscribe(client, "g", [topic], auto_offset_reset="earliest")["consumer_id"]
    resp = client.post(f"/api/consumers/{cid}/consume", json={"filter": spec, "timeout_ms": 0})
    details = assert_error(resp, 400, "invalid_request")
    assert details["filter"][0].startswith(where), details
    assert positions(client, cid) == {topic: {"0": 0}}


def test_a_consume_examines_at_most_the_bound_then_answers(make_api, topic, api):
    small = make_api(max_filter_scan_records=4)
    produce(api, topic, [(f"bot-{i}", f"v{i}", None) for i in range(10)] + [("user-1", "hit", None)])
    cid = subscribe(small.client, "g", [topic], auto_offset_reset="earliest")["consumer_id"]
    # a long timeout: the bound, not the clock, ends the consume
    out = consume(small.client, cid, filter=USERS, timeout_ms=300_000)
    assert out["records"] == [] and out["scanned"] == 4 and out["scan_limit_reached"] is True
    assert out["positions"] == {topic: {"0": 4}}
    assert consume(small.client, cid, filter=USERS, timeout_ms=300_000)["positions"] == {
        topic: {"0": 8}}
    last = consume(small.client, cid, filter=USERS, timeout_ms=300_000)
    assert values(last["records"]) == ["hit"] and last["scanned"] == 3
    assert last["scan_limit_reached"] is False


# -- the stateless read ---------------------------------------------------------------------

def read(api, topic, **params):
    resp = api.read(topic, 0, encoding="text", **params)
    return ok(resp)


def test_a_filtered_read_pages_with_next_offset(api, topic):
    produce(api, topic, mixed(10))
    page = read(api, topic, filter=json.dumps(USERS), max_records=3)
    assert values(page["records"]) == ["v0", "v3", "v6"]
    assert page["next_offset"] == 7 and page["high_watermark"] == 10
    assert page["scanned"] == 7 and page["scan_limit_reached"] is False
    rest = read(api, topic, filter=json.dumps(USERS), offset=page["next_offset"])
    assert values(rest["records"]) == ["v9"] and rest["next_offset"] == 10


def test_a_read_with_nothing_matching_reaches_the_end(api, topic):
    produce(api, topic, mixed(5))
    page = read(api, topic, filter=json.dumps({"key": {"equals": "nobody"}}))
    assert page["records"] == [] and page["next_offset"] == 5 and page["scanned"] == 5


def test_a_filtered_read_stops_at_the_bound(make_api, api, topic):
    produce(api, topic, mixed(10))
    small = make_api(max_filter_scan_records=5)
    page = ok(small.read(topic, 0, encoding="text", filter=json.dumps(USERS)))
    assert values(page["records"]) == ["v0", "v3"]
    assert page["next_offset"] == 5 and page["scan_limit_reached"] is True


@pytest.mark.parametrize("text, problem", [("{key", "not JSON"), ('{"kee": {}}', "filter:")])
def test_a_read_filter_that_is_not_a_filter_is_400(api, topic, text, problem):
    details = assert_error(api.read(topic, 0, filter=text), 400, "invalid_request")
    assert details["filter"][0].startswith(problem), details


def test_an_unfiltered_read_has_no_scan_fields(api, topic):
    produce(api, topic, mixed(2))
    assert set(read(api, topic)) == {"records", "next_offset", "high_watermark"}
