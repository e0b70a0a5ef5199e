"""Topic statistics over HTTP: records and bytes per time bucket (``GET
/api/topics/{topic}/stats``) and records by key (``.../stats/keys``), on both stores.

Records are produced with chosen timestamps shortly before now (a Kafka broker refuses
timestamps far in the future and its retention is by time), so the tests that need
neither the fake clock nor bytes run on both stores; bytes are checked exactly on the
embedded store, where they are the records' frames.
"""
from __future__ import annotations

import base64
import threading
import time

import pytest

from consumer_api.topic_stats import buckets
from tests.api.conftest import assert_error, b64

pytestmark = pytest.mark.usefixtures("openapi_built_once")
ON_STORES = ("embedded", "kafka")

MINUTE = 60_000
#: a whole minute two hours ago: every test's records are stamped after it
BASE = (int(time.time() * 1000) - 2 * 3_600_000) // MINUTE * MINUTE
#: a frame's size besides its key, value and headers (the embedded store's)
FRAME = 37


def ok(resp):
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return resp.get_json()


def stats(api, topic, **params):
    return ok(api.client.get(f"/api/topics/{topic}/stats", query_string=params))


def key_stats(api, topic, **params):
    return ok(api.client.get(f"/api/topics/{topic}/stats/keys", query_string=params))


def produce(api, topic, records):
    """``records``: ``(partition, ms after BASE, key or None, value)``."""
    ok(api.produce(topic, [{"partition": p, "timestamp": BASE + at, "value": value,
                            "key": key} for p, at, key, value in records], encoding="text"))


def size(key, value, headers=None) -> int:
    return FRAME + len(key or "") + len(value) + sum(6 + len(n) + len(v)
                                                     for n, v in (headers or {}).items())


@pytest.fixture
def orders(api):
    assert api.create_topic("orders", 2).status_code == 201
    return "orders"


@pytest.fixture
def bytes_told(store_name) -> bool:
    return store_name == "embedded"


# -- buckets ----------------------------------------------------------------------------------

def test_records_and_bytes_per_minute_summed_over_partitions(api, orders, bytes_told):
    ok(api.produce(orders, [
        {"partition": 0, "timestamp": BASE + 5_000, "key": "a", "value": "x" * 10},
        {"partition": 1, "timestamp": BASE + 30_000, "value": "y" * 20,
         "headers": {"trace": "abc"}},
        {"partition": 0, "timestamp": BASE + 65_000, "key": "bb", "value": "z"},
        {"partition": 1, "timestamp": BASE + 3 * MINUTE + 1, "value": ""},
        {"partition": 0, "timestamp": BASE + 4 * MINUTE, "value": "after the range"},
    ], encoding="text"))
    got = stats(api, orders, from_ms=BASE, to_ms=BASE + 4 * MINUTE, bucket_ms=MINUTE)
    assert [(b["start_ms"], b["records"]) for b in got["buckets"]] == [
        (BASE, 2), (BASE + MINUTE, 1), (BASE + 2 * MINUTE, 0), (BASE + 3 * MINUTE, 1)]
    assert (got["topic"], got["from_ms"], got["to_ms"], got["bucket_ms"], got["records"]) == (
        orders, BASE, BASE + 4 * MINUTE, MINUTE, 4)
    # on disk (storage/batches.py) the request is a batch per partition, each record taking
    # its key, value and headers, 6 bytes of columns (1-byte lengths, a 4-byte time delta)
    # and, the first of a batch, its 38-byte header
    a, y = 38 + 6 + 1 + 10, 38 + 6 + 20 + (2 + 5 + 4 + 3)
    bb, empty = 6 + 2 + 1, 6
    sizes = [a + y, bb, 0, empty]
    if bytes_told:
        assert [b["bytes"] for b in got["buckets"]] == sizes
        assert got["bytes"] == sum(sizes)
        assert got["partitions"] == [{"partition": 0, "records": 2, "bytes": a + bb},
                                     {"partition": 1, "records": 2, "bytes": y + empty}]
    else:
        assert {b["bytes"] for b in got["buckets"]} == {None} and got["bytes"] is None
        assert got["partitions"] == [{"partition": 0, "records": 2, "bytes": None},
                                     {"partition": 1, "records": 2, "bytes": None}]


def test_one_partition_and_a_last_bucket_cut_at_to_ms(api, orders):
    produce(api, orders, [(0, 1_000, None, "a"), (1, 2_000, None, "b"), (1, 70_000, None, "c"),
                          (1, 95_000, None, "after to_ms")])
    got = stats(api, orders, from_ms=BASE, to_ms=BASE + 90_000, bucket_ms=MINUTE, partition=1)
    assert [(b["start_ms"], b["records"]) for b in got["buckets"]] == [
        (BASE, 1), (BASE + MINUTE, 1)]
    assert [p["partition"] for p in got["partitions"]] == [1]


def test_a_record_stamped_before_an_earlier_one_counts_at_that_ones_time(api, orders):
    """As a read by timestamp sees the log: the late record lies after the newer one."""
    produce(api, orders, [(0, 10_000, None, "a"), (0, 130_000, None, "b"),
                          (0, 20_000, None, "late"), (0, 140_000, None, "c")])
    got = stats(api, orders, from_ms=BASE, to_ms=BASE + 3 * MINUTE, partition=0)
    assert [b["records"] for b in got["buckets"]] == [1, 0, 3]
    read = ok(api.read(orders, 0, timestamp=BASE + MINUTE, encoding="text"))["records"]
    assert [r["value"] for r in read] == ["b", "late", "c"]


def test_a_range_with_no_records_is_zeros(api, orders):
    produce(api, orders, [(0, 10 * MINUTE, None, "a")])
    for start in (BASE, BASE + 11 * MINUTE):
        got = stats(api, orders, from_ms=start, to_ms=start + 5 * MINUTE)
        assert [b["records"] for b in got["buckets"]] == [0] * 5 and got["records"] == 0


@pytest.mark.parametrize("params, field", [
    ({"from_ms": 5, "to_ms": 5}, "to_ms"),
    ({"from_ms": 10, "to_ms": 5}, "to_ms"),
    ({"from_ms": 0, "to_ms": 10_001, "bucket_ms": 1}, "bucket_ms"),
    ({"bucket_ms": 0}, "bucket_ms"),
    ({"from_ms": -1}, "from_ms"),
    ({"to_ms": "soon"}, "to_ms"),
    ({"partition": -1}, "partition"),
    ({"to_ms": 2 ** 63}, "to_ms"),
])
def test_bad_ranges_are_400_naming_the_field(api, orders, params, field):
    details = assert_error(api.client.get(f"/api/topics/{orders}/stats", query_string=params),
                           400, "invalid_request")
    assert field in details


def test_10000_buckets_are_allowed(api, orders):
    got = stats(api, orders, from_ms=BASE, to_ms=BASE + 10_000, bucket_ms=1, partition=0)
    assert len(got["buckets"]) == 10_000


def test_too_many_lookups_for_the_partitions_is_400(api, orders, monkeypatch):
    monkeypatch.setattr(buckets, "MAX_LOOKUPS", 10)
    stats(api, orders, from_ms=BASE, to_ms=BASE + 9 * MINUTE, partition=0)  # 10 lookups
    details = assert_error(api.client.get(f"/api/topics/{orders}/stats", query_string={
        "from_ms": BASE, "to_ms": BASE + 5 * MINUTE}), 400, "invalid_request")
    assert "bucket_ms" in details  # 6 boundaries x 2 partitions


def test_a_missing_topic_or_partition_is_404(api, orders):
    assert_error(api.client.get("/api/topics/nope/stats"), 404, "topic_not_found")
    assert_error(api.client.get("/api/topics/nope/stats/keys"), 404, "topic_not_found")
    for path in ("stats", "stats/keys"):
        assert_error(api.client.get(f"/api/topics/{orders}/{path}?partition=2"), 404,
                     "partition_not_found")


@pytest.mark.embedded_only  # the fake clock: "now" is the test's
def test_the_default_is_the_last_hour_in_minutes_up_to_the_end_of_this_one(api, orders, clock):
    now = clock.now_ms()
    end = (now // MINUTE + 1) * MINUTE
    got = stats(api, orders)
    assert (got["from_ms"], got["to_ms"], got["bucket_ms"]) == (end - 60 * MINUTE, end, MINUTE)
    assert len(got["buckets"]) == 60
    got = stats(api, orders, bucket_ms=7 * MINUTE)  # whole buckets covering an hour
    end = (now // (7 * MINUTE) + 1) * 7 * MINUTE
    assert (got["from_ms"], got["to_ms"], len(got["buckets"])) == (end - 63 * MINUTE, end, 9)
    got = stats(api, orders, from_ms=now - 150_000)  # buckets laid from from_ms
    assert (got["to_ms"], len(got["buckets"])) == (now + 30_000, 3)
    assert_error(api.client.get(f"/api/topics/{orders}/stats?from_ms={now + MINUTE}"), 400,
                 "invalid_request")


# -- top keys ---------------------------------------------------------------------------------

def keys_of(answer):
    return [(None if k["key"] is None else base64.b64decode(k["key"]).decode(), k["records"])
            for k in answer["keys"]]


def test_keys_with_the_most_records_first_null_counted(api, orders, bytes_told):
    produce(api, orders, [(0, 1_000, "a", "1"), (1, 2_000, "a", "2"), (0, 3_000, None, "3"),
                          (1, 4_000, "b", "4"), (0, 5_000, "b", "5"), (1, 6_000, None, "6"),
                          (0, 7_000, "a", "7"), (1, 8_000, "c", "8"),
                          (0, MINUTE, "a", "not in the range")])
    got = key_stats(api, orders, from_ms=BASE, to_ms=BASE + MINUTE)
    assert keys_of(got) == [("a", 3), (None, 2), ("b", 2), ("c", 1)]  # ties: null, then by key
    assert (got["distinct_keys"], got["scanned_records"], got["complete"], got["stopped_by"],
            got["scanned_to_ms"], got["partitions"]) == (4, 8, True, None, BASE + MINUTE, [0, 1])
    assert got["scanned_bytes"] == 8 * FRAME + 6 + 8  # keys and values, as max_bytes counts
    if bytes_told:  # the buckets count the same records' bytes on disk: a batch per
        # partition (headers), 1-byte key and value lengths, time deltas of 4 bytes in
        # partition 0 (its last record is a minute later) and 2 in partition 1, the data
        assert stats(api, orders, from_ms=BASE, to_ms=BASE + MINUTE)["bytes"] == \
            2 * 38 + 4 * (1 + 1 + 4) + 4 * (1 + 1 + 2) + 6 + 8
    assert keys_of(key_stats(api, orders, from_ms=BASE, to_ms=BASE + MINUTE, top=2)) == [
        ("a", 3), (None, 2)]
    assert keys_of(key_stats(api, orders, from_ms=BASE, to_ms=BASE + MINUTE, partition=1)) == [
        (None, 1), ("a", 1), ("b", 1), ("c", 1)]


def test_keys_are_counted_at_the_time_the_buckets_use(api, orders):
    produce(api, orders, [(0, 10_000, "early", "a"), (0, 70_000, "new", "b"),
                          (0, 20_000, "late", "c")])
    got = key_stats(api, orders, from_ms=BASE + MINUTE, to_ms=BASE + 2 * MINUTE)
    assert keys_of(got) == [("late", 1), ("new", 1)]


@pytest.fixture
def busy(api, orders):
    """Eight records in two partitions, two of them in the same millisecond (at +4)."""
    produce(api, orders, [(0, 0, "k0", "v"), (1, 1, "k1", "v"), (0, 2, "k2", "v"),
                          (1, 3, "k3", "v"), (0, 4, "k4", "v"), (1, 4, "k4", "v"),
                          (0, 5, "k5", "v"), (1, 6, "k6", "v")])
    return orders


def test_the_bound_stops_between_milliseconds_and_says_where_to_go_on(make_api, busy):
    bounded = make_api(max_stats_scan_records=5)
    first = key_stats(bounded, busy, from_ms=BASE, to_ms=BASE + MINUTE)
    # the 5th record is in millisecond +4 and the 6th too: +4 is left out whole
    assert (first["complete"], first["stopped_by"], first["scanned_to_ms"],
            first["scanned_records"]) == (False, "records", BASE + 4, 4)
    assert sorted(keys_of(first)) == [("k0", 1), ("k1", 1), ("k2", 1), ("k3", 1)]
    rest = key_stats(bounded, busy, from_ms=first["scanned_to_ms"], to_ms=BASE + MINUTE)
    assert (rest["complete"], rest["scanned_records"], rest["scanned_to_ms"]) == (
        True, 4, BASE + MINUTE)
    assert keys_of(rest) == [("k4", 2), ("k5", 1), ("k6", 1)]


def test_the_byte_bound_stops_it_too(make_api, busy):
    record = FRAME + 2 + 1
    got = key_stats(make_api(max_stats_scan_bytes=3 * record), busy, from_ms=BASE,
                    to_ms=BASE + MINUTE)
    assert (got["complete"], got["stopped_by"], got["scanned_to_ms"], got["scanned_records"],
            got["scanned_bytes"]) == (False, "bytes", BASE + 3, 3, 3 * record)


def test_a_millisecond_larger_than_the_bound_is_counted_in_part(make_api, api, orders):
    produce(api, orders, [(p, 500, "same", "v") for p in (0, 1, 0, 1, 0, 1)])
    got = key_stats(make_api(max_stats_scan_records=4), orders, from_ms=BASE,
                    to_ms=BASE + MINUTE)
    assert (got["complete"], got["scanned_to_ms"], got["scanned_records"]) == (
        False, BASE + 500, 4)
    assert keys_of(got) == [("same", 4)]


@pytest.mark.parametrize("params, field", [
    ({"top": 0}, "top"), ({"top": 1001}, "top"), ({"from_ms": 9, "to_ms": 9}, "to_ms"),
    ({"partition": "one"}, "partition"),
])
def test_bad_key_queries_are_400_naming_the_field(api, orders, params, field):
    details = assert_error(api.client.get(f"/api/topics/{orders}/stats/keys",
                                          query_string=params), 400, "invalid_request")
    assert field in details


@pytest.mark.embedded_only  # the fake clock
def test_keys_default_to_the_last_hour(api, orders, clock):
    now = clock.now_ms()
    ok(api.produce(orders, [{"key": b64("old"), "value": "", "timestamp": now - 3_700_000,
                             "partition": 0},
                            {"key": b64("new"), "value": "", "timestamp": now - 1,
                             "partition": 1}]))
    got = key_stats(api, orders)
    assert (got["from_ms"], got["to_ms"]) == (now - 3_600_000, now)
    assert keys_of(got) == [("new", 1)]


# -- rights -----------------------------------------------------------------------------------

@pytest.mark.embedded_only  # rights are checked before the store is asked
def test_statistics_are_a_topic_read(make_api, orders, tmp_path):
    keys = tmp_path / "keys.yml"
    keys.write_text("keys:\n"
                    "  - {name: reader, key: reader-key-0123456789, grants: "
                    "[{topics: orders, rights: [read]}]}\n"
                    "  - {name: writer, key: writer-key-0123456789, grants: "
                    "[{topics: orders, rights: [write]}]}\n", encoding="utf-8")
    app = make_api(api_keys_file=str(keys)).client.application
    for who, status in (("reader", 200), ("writer", 403)):
        client = app.test_client()
        client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {who}-key-0123456789"
        for path in ("stats", "stats/keys"):
            assert client.get(f"/api/topics/orders/{path}").status_code == status, (who, path)


@pytest.mark.embedded_only  # the slots are the route's, whatever the store
def test_counts_by_key_past_the_running_ones_are_503_with_retry_after(api, orders,
                                                                     monkeypatch):
    from consumer_api.api import topic_stats as route
    slots = threading.BoundedSemaphore(1)
    monkeypatch.setattr(route, "_scans", slots)
    slots.acquire()  # one count runs
    resp = api.client.get(f"/api/topics/{orders}/stats/keys")
    assert assert_error(resp, 503, "unavailable") == {"reason": "stats_scans"}
    assert resp.headers["Retry-After"] == "1"
    assert stats(api, orders)["records"] == 0  # buckets read no records: never refused
    slots.release()
    assert key_stats(api, orders)["complete"] is True
