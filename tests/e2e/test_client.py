"""The Python client (``consumer_api.client``) against the real server (gunicorn).

What a user of the client notices: topics can be managed, every kind of value comes back
as it went in (in the chosen ``value_format``), a ``dict`` is a JSON value and never a
record, large inputs are split into several requests, the ``Consumer`` context manager joins
and leaves its group (also on exceptions and Ctrl-C), iteration long-polls, offsets can be
committed, inspected and rewound, ``commit_each_batch`` is at-least-once, every server error
is a typed exception carrying the server's ``code``, and ``recreate_on_expiry`` survives the
loss of the session.

One server for the whole module (the open one), started lazily; a second one with API keys
only for the auth tests. Topics and groups get unique names per test. The only waits are
bounded polls of a condition.
"""
from __future__ import annotations

import json
import threading
import time
import uuid

import pytest
import requests

from consumer_api.client import Client, ClientError, ConnectionFailed, Record, TopicPartition
from consumer_api.client import errors
from tests.e2e.conftest import free_port, metric, on_store, start_server
from tests.waiting import wait_until

#: the open server refuses more records per request than the client puts in one
#: (consumer_api.client.BATCH_RECORDS = 5000): a produce that is not split fails
ON_STORES = ("embedded", "kafka")
SERVER_MAX_RECORDS = 5000
ADMIN_KEY = "client-e2e-admin-key"
READER_KEY = "client-e2e-reader-key"


# -- fixtures ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def srv(request, tmp_path_factory, store_name):
    with on_store(request, store_name) as env, \
            start_server(tmp_path_factory.mktemp("client-data"),
                         CONSUMER_API_MAX_RECORDS_PER_PRODUCE=str(SERVER_MAX_RECORDS),
                         **env) as server:
        yield server


@pytest.fixture(scope="module")
def secure_srv(tmp_path_factory):
    """A server with two keys: ``admin`` may do everything, ``reader`` may only read."""
    base = tmp_path_factory.mktemp("client-secure")
    keys = base / "keys.yml"
    keys.write_text(
        "keys:\n"
        f"  - name: admin\n    key: {ADMIN_KEY}\n"
        "    grants:\n"
        "      - {topics: '*', rights: [admin]}\n"
        "      - {groups: '*', rights: [admin]}\n"
        f"  - name: reader\n    key: {READER_KEY}\n"
        "    grants:\n"
        "      - {topics: '*', rights: [read]}\n"
        "      - {groups: '*', rights: [read]}\n", encoding="utf-8")
    with start_server(base / "data", CONSUMER_API_API_KEYS_FILE=str(keys)) as server:
        yield server


@pytest.fixture
def client(srv):
    with Client(srv.base_url, timeout=30) as c:
        yield c


@pytest.fixture
def name(request):
    """A unique prefix for this test's topics and groups."""
    return f"{request.node.name[:40].replace('[', '-').replace(']', '')}-{uuid.uuid4().hex[:8]}"


def make_topic(client: Client, name: str, partitions: int = 1) -> str:
    client.create_topic(name, partitions)
    return name


def poll_until(consumer, count: int, timeout_s: float = 10.0, **kwargs) -> list:
    """Poll until ``count`` records came (bounded), return them."""
    got: list = []
    deadline = time.monotonic() + timeout_s
    while len(got) < count:
        assert time.monotonic() < deadline, f"only {len(got)} of {count} records came: {got}"
        got.extend(consumer.poll(timeout_ms=2000, **kwargs))
    return got


def bound_polls(consumer, max_polls: int) -> list:
    """Make ``for rec in consumer`` fail instead of waiting forever: at most ``max_polls``
    polls. Returns the list that records each poll's result size."""
    real_poll = consumer.poll
    sizes: list = []

    def poll(*args, **kwargs):
        assert len(sizes) < max_polls, f"more than {max_polls} polls: {sizes}"
        got = real_poll(*args, **kwargs)
        sizes.append(len(got))
        return got

    consumer.poll = poll
    return sizes


def member_ids(client: Client, group: str) -> list:
    return [m["consumer_id"] for m in client.describe_group(group)["members"]]


def committed_of(client: Client, group: str) -> dict:
    return {(o["topic"], o["partition"]): o["committed_offset"]
            for o in client.describe_group(group)["offsets"]}


# -- topics --------------------------------------------------------------------------------

def test_topic_create_list_describe_delete(client, name):
    created = client.create_topic(name, partitions=3, config={"retention_ms": 3_600_000})
    assert created["name"] == name and created["partitions"] == 3
    assert created["config"]["retention_ms"] == 3_600_000

    listed = {t["name"]: t for t in client.list_topics()}
    assert [p["partition"] for p in listed[name]["partitions"]] == [0, 1, 2]
    assert all(p["high_watermark"] == 0 for p in listed[name]["partitions"])

    described = client.describe_topic(name)
    assert described["name"] == name
    assert described["config"]["retention_ms"] == 3_600_000
    assert [p["partition"] for p in described["partitions"]] == [0, 1, 2]

    with pytest.raises(errors.TopicExists) as exc:
        client.create_topic(name, partitions=1)
    assert exc.value.code == "topic_exists" and exc.value.status == 409

    client.delete_topic(name)
    assert name not in {t["name"] for t in client.list_topics()}
    with pytest.raises(errors.TopicNotFound):
        client.describe_topic(name)
    with pytest.raises(errors.TopicNotFound):
        client.delete_topic(name)


# -- values and records --------------------------------------------------------------------

RAW = b"\xff\xfe\x00\x80 not utf-8 \xc3"
TEXT = "h\u00e9llo w\u00f6rld \u2713 \u65e5\u672c \U0001f600"
DOC = {"a": 1, "nested": {"list": [1, 2.5, None, True]}, "s": "\u00e9"}
LIST = [1, "two", None, {"three": 3}]
NUMBER = 42


def test_plain_values_of_each_kind_round_trip(client, name):
    topic = make_topic(client, name)
    offsets = client.produce(topic, [RAW, TEXT, DOC, LIST, NUMBER, None])
    assert [(o["partition"], o["offset"]) for o in offsets] == [(0, i) for i in range(6)]
    assert all(isinstance(o["timestamp"], int) and o["timestamp"] > 0 for o in offsets)

    # bytes: exactly what the value stands for
    with client.consumer(f"{name}-bytes", topic, auto_offset_reset="earliest",
                         value_format="bytes") as consumer:
        got = poll_until(consumer, 6)
    expected_bytes = [
        RAW, TEXT.encode("utf-8"),
        json.dumps(DOC, separators=(",", ":"), ensure_ascii=False).encode("utf-8"),
        b'[1,"two",null,{"three":3}]', b"42", None]
    assert [r.value for r in got] == expected_bytes
    assert all(r.key is None and r.headers == {} and r.topic == topic for r in got)
    assert [r.offset for r in got] == list(range(6))

    # text: the str comes back as the same str (seek to it, read just it)
    with client.consumer(f"{name}-text", topic, auto_offset_reset="earliest",
                         value_format="text") as consumer:
        consumer.seek(topic, 0, offset=1)
        [rec] = consumer.poll(timeout_ms=5000, max_records=1)
    assert rec.offset == 1 and rec.value == TEXT

    # json: dict, list, int, None come back equal
    with client.consumer(f"{name}-json", topic, auto_offset_reset="earliest",
                         value_format="json") as consumer:
        consumer.seek(topic, 0, offset=2)
        got = poll_until(consumer, 4, max_records=4)
    assert [r.value for r in got] == [DOC, LIST, NUMBER, None]

    # the stateless read gives the same
    assert [r.value for r in client.read(topic, 0)] == expected_bytes
    assert [r.value for r in client.read(topic, 0, offset=1, max_records=1,
                                         value_format="text")] == [TEXT]
    assert [r.value for r in client.read(topic, 0, offset=2, value_format="json")] == \
        [DOC, LIST, NUMBER, None]


def test_other_binary_types_go_as_bytes(client, name):
    topic = make_topic(client, name)
    client.produce(topic, [bytearray(b"\x00\x01ba"), memoryview(b"\xffmv")])
    assert [r.value for r in client.read(topic, 0)] == [b"\x00\x01ba", b"\xffmv"]


def test_a_dict_is_a_json_value_never_a_record(client, name):
    topic = make_topic(client, name, partitions=1)
    lookalike = {"value": "x", "key": "k", "partition": 7, "headers": {"h": "v"},
                 "timestamp": 1}
    [offset] = client.produce(topic, [lookalike])
    # partition 7 does not exist: had it been taken as a record, the produce would fail
    assert offset["partition"] == 0 and offset["timestamp"] != 1
    [rec] = client.read(topic, 0, value_format="json")
    assert rec.value == lookalike
    assert rec.key is None and rec.headers == {} and rec.timestamp != 1
    [raw] = client.read(topic, 0)
    assert json.loads(raw.value) == lookalike


def test_records_with_key_partition_headers_timestamp(client, name):
    topic = make_topic(client, name, partitions=3)
    ts = 1_600_000_000_123
    records = [
        Record({"a": 2}, key="user-1", partition=2, headers={"src": "app", "n": "1"},
               timestamp=ts),
        Record(b"\x00raw\xff", key=b"\x01\xfe", partition=0),
        Record(None, key="gone", partition=1),  # a tombstone with a key
        Record("text", partition=0, timestamp=0),
    ]
    offsets = client.produce(topic, records)
    assert [(o["partition"], o["offset"]) for o in offsets] == [(2, 0), (0, 0), (1, 0), (0, 1)]
    assert offsets[0]["timestamp"] == ts

    with client.consumer(name, topic, auto_offset_reset="earliest") as consumer:
        got = {(r.partition, r.offset): r for r in poll_until(consumer, 4)}
    assert got[(2, 0)].value == b'{"a":2}' and got[(2, 0)].key == b"user-1"
    assert got[(2, 0)].headers == {"src": "app", "n": "1"} and got[(2, 0)].timestamp == ts
    assert got[(0, 0)].value == b"\x00raw\xff" and got[(0, 0)].key == b"\x01\xfe"
    assert got[(1, 0)].value is None and got[(1, 0)].key == b"gone"
    assert got[(0, 1)].value == b"text" and got[(0, 1)].key is None

    # with value_format json the key defaults to text; key_format may say otherwise
    json_topic = make_topic(client, f"{name}-j")
    client.produce(json_topic, [Record({"a": 2}, key="user-1", headers={"src": "app"})])
    with client.consumer(f"{name}-json", json_topic, auto_offset_reset="earliest",
                         value_format="json") as consumer:
        [rec] = poll_until(consumer, 1)
    assert (rec.key, rec.value, rec.headers) == ("user-1", {"a": 2}, {"src": "app"})
    with client.consumer(f"{name}-json2", json_topic, auto_offset_reset="earliest",
                         value_format="json", key_format="bytes") as consumer:
        [rec] = poll_until(consumer, 1)
    assert (rec.key, rec.value) == (b"user-1", {"a": 2})

    # a key without a partition always lands on the same partition
    keyed = client.produce(topic, [Record(i, key="same-key") for i in range(6)])
    assert len({o["partition"] for o in keyed}) == 1


def test_large_produce_is_split_into_several_requests(client, name):
    topic = make_topic(client, name)
    # the server takes at most SERVER_MAX_RECORDS per request: one request would fail
    with pytest.raises(errors.InvalidRequest):
        client.request("POST", f"/api/topics/{topic}/records",
                       {"records": [{"value": None}] * (SERVER_MAX_RECORDS + 1)})

    calls = []
    real_request = client.request

    def counting(method, path, *args, **kwargs):
        calls.append((method, path))
        return real_request(method, path, *args, **kwargs)

    client.request = counting
    n = 12_000
    offsets = client.produce(topic, (f"v{i}" for i in range(n)))  # any iterable
    client.request = real_request
    assert len(calls) >= 3 and all(c == ("POST", f"/api/topics/{topic}/records") for c in calls)
    assert [o["offset"] for o in offsets] == list(range(n))
    assert {o["partition"] for o in offsets} == {0}
    [part] = client.describe_topic(topic)["partitions"]
    assert part["high_watermark"] == n
    for offset in (0, 4999, 5000, 9999, 10000, n - 1):
        [rec] = client.read(topic, 0, offset=offset, max_records=1, value_format="text")
        assert (rec.offset, rec.value) == (offset, f"v{offset}")


@pytest.mark.embedded_only  # Kafka takes records up to max.message.bytes (1 MiB)
def test_large_values_are_split_by_size(client, name):
    """Three 5 MiB values exceed the server's 16 MiB request limit together, not alone."""
    topic = make_topic(client, name)
    values = [bytes([i]) * (5 << 20) for i in range(3)]
    offsets = client.produce(topic, values)
    assert [o["offset"] for o in offsets] == [0, 1, 2]
    for i in range(3):
        [rec] = client.read(topic, 0, offset=i, max_records=1)
        assert rec.value == values[i]


# -- compression ---------------------------------------------------------------------------

ORDERS = [{"order_id": i, "customer": f"customer-{i % 17}", "status": "shipped",
           "items": [{"sku": f"SKU-{i % 97:05d}", "qty": 1 + i % 3}]} for i in range(300)]


def exchanges(wire: list, method: str, suffix: str) -> list:
    return [w for w in wire if w["method"] == method and w["path"].endswith(suffix)]


def test_compression_is_on_by_default_both_ways(srv, name, wire):
    with Client(srv.base_url) as client:
        topic = make_topic(client, name)
        client.produce(topic, ORDERS)
        client.produce(topic, [{"small": True}])
        got = client.read(topic, 0, max_records=1000, value_format="json")
        with client.consumer(name, topic, auto_offset_reset="earliest",
                             value_format="json") as consumer:
            consumed = poll_until(consumer, len(ORDERS) + 1)
    assert [r.value for r in got] == [r.value for r in consumed] == ORDERS + [{"small": True}]
    big, small = exchanges(wire, "POST", "/records")
    assert big["sent_coding"] == "zstd" and small["sent_coding"] is None  # small: as it is
    answers = exchanges(wire, "GET", "/records") + exchanges(wire, "POST", "/consume")
    assert all(exchange["accept"] == "zstd, gzip" for exchange in answers)
    big = [exchange for exchange in answers if exchange["body_bytes"] >= 1024]
    assert big  # the read and the consume of ORDERS
    for exchange in big:
        assert exchange["got_coding"] == "zstd"
        assert exchange["wire_bytes"] * 3 < exchange["body_bytes"]


def test_compression_gzip_and_none(srv, name, wire):
    with Client(srv.base_url, compression="gzip") as client:
        topic = make_topic(client, name)
        client.produce(topic, ORDERS)
    with Client(srv.base_url, compression=None) as client:
        client.produce(topic, ORDERS)
        got = client.read(topic, 0, max_records=1000, value_format="json")
    assert [r.value for r in got] == ORDERS * 2
    gzipped, plain = exchanges(wire, "POST", "/records")
    assert gzipped["sent_coding"] == "gzip" and plain["sent_coding"] is None
    (read,) = exchanges(wire, "GET", "/records")
    assert read["accept"] == "identity" and read["got_coding"] is None
    assert read["wire_bytes"] == read["body_bytes"]
    with pytest.raises(ValueError, match="compression must be one of zstd, gzip"):
        Client(srv.base_url, compression="br")


# -- the consumer context manager ----------------------------------------------------------

def test_consumer_context_manager_joins_and_leaves(client, name):
    topic = make_topic(client, name)
    with client.consumer(name, topic) as consumer:
        assert consumer.consumer_id is not None
        assert member_ids(client, name) == [consumer.consumer_id]
        assert consumer.assignment() == [(topic, 0)]
    assert member_ids(client, name) == []
    assert consumer.consumer_id is None


def test_consumer_chooses_its_groups_assignor(client, name):
    topic = make_topic(client, name, partitions=2)
    with client.consumer(name, topic, assignor="roundrobin"):
        assert client.describe_group(name)["assignor"] == "roundrobin"


def test_consumer_filter_hands_out_the_matches_and_commits_past_the_rest(client, name):
    topic = make_topic(client, name)
    client.produce(topic, [Record({"n": i}, key=f"k{i}") for i in range(6)])
    spec = {"value": {"path": "n", "in": [1, 4]}}
    with client.consumer(name, topic, auto_offset_reset="earliest", value_format="json",
                         filter=spec, timeout_ms=0) as consumer:
        assert [r.value for r in consumer.poll()] == [{"n": 1}, {"n": 4}]
        consumer.commit_handed_out()
        assert consumer.committed() == {(topic, 0): 6}
    assert [r.offset for r in client.read(topic, 0, filter={"key": {"equals": "k3"}})] == [3]


def test_consumer_min_records_gathers_produces_into_one_poll(client, srv, name):
    topic = make_topic(client, name)
    with client.consumer(name, topic, value_format="text", min_records=3,
                         timeout_ms=60_000) as consumer:
        consumer.assignment()  # joined: the records below come after its start

        def producer():
            # the poll waits first: had it come after the records, it would get all three
            # whatever min_records does
            wait_until(lambda: metric(srv, "consumer_api_waiting_polls") == 1, "the poll waits")
            with Client(srv.base_url) as other:  # a client per thread
                for i in range(3):
                    other.produce(topic, [f"m{i}"])

        thread = threading.Thread(target=producer, daemon=True)
        thread.start()
        got = [r.value for r in consumer.poll()]
        thread.join(10)
    assert got == ["m0", "m1", "m2"]  # one poll: it waited for the third


def test_consumer_leaves_on_exception(client, name):
    topic = make_topic(client, name)
    with pytest.raises(ValueError, match="boom"):
        with client.consumer(name, topic) as consumer:
            assert member_ids(client, name) == [consumer.consumer_id]
            raise ValueError("boom")
    assert member_ids(client, name) == []


def test_consumer_leaves_on_keyboard_interrupt_in_loop(client, name):
    topic = make_topic(client, name)
    client.produce(topic, ["one", "two"])
    seen = []
    with pytest.raises(KeyboardInterrupt):
        with client.consumer(name, topic, auto_offset_reset="earliest",
                             value_format="text", timeout_ms=5000) as consumer:
            bound_polls(consumer, 3)
            for rec in consumer:
                seen.append(rec.value)
                assert member_ids(client, name) == [consumer.consumer_id]
                raise KeyboardInterrupt  # as Ctrl-C would
    assert seen == ["one"]
    assert member_ids(client, name) == []
    # nothing was committed: the next member starts over
    assert committed_of(client, name).get((topic, 0)) is None
    with client.consumer(name, topic, auto_offset_reset="earliest",
                         value_format="text") as consumer:
        assert [r.value for r in poll_until(consumer, 2)] == ["one", "two"]


def test_iteration_long_polls_and_yields_records_as_they_come(client, srv, name):
    topic = make_topic(client, name)
    n = 4
    want = [threading.Event() for _ in range(n)]
    produced_at: dict = {}
    failures: list = []

    def producer():
        try:
            with Client(srv.base_url) as other:  # a client per thread
                for i in range(n):
                    if not want[i].wait(15):
                        return
                    produced_at[i] = time.monotonic()
                    other.produce(topic, [f"m{i}"])
        except Exception as exc:  # reported by the main thread
            failures.append(exc)

    thread = threading.Thread(target=producer, daemon=True)
    with client.consumer(name, topic, value_format="text", timeout_ms=15_000) as consumer:
        polls = bound_polls(consumer, n + 1)
        thread.start()
        got, delays = [], []
        started = time.monotonic()
        want[0].set()
        for rec in consumer:
            got.append(rec.value)
            delays.append(time.monotonic() - produced_at[len(got) - 1])
            if len(got) == n:
                break
            want[len(got)].set()
        elapsed = time.monotonic() - started
    thread.join(5)
    assert not failures, failures
    assert got == [f"m{i}" for i in range(n)]
    # each record came long before the 15 s poll timeout: the wait ended on its arrival
    assert elapsed < 10 and max(delays) < 5, (elapsed, delays)
    assert 0 not in polls  # no poll waited out its timeout


def test_commit_position_committed_assignment_seek_replay(client, name):
    topic = make_topic(client, name, partitions=2)
    client.produce(topic, [Record(f"p{p}-{i}", partition=p) for p in (0, 1) for i in range(3)])
    with client.consumer(name, topic, auto_offset_reset="earliest",
                         value_format="text") as consumer:
        assert consumer.assignment() == [(topic, 0), (topic, 1)]
        assert consumer.committed() == {}
        first = poll_until(consumer, 6)
        assert sorted(r.value for r in first) == sorted(f"p{p}-{i}" for p in (0, 1)
                                                       for i in range(3))
        assert consumer.position() == {(topic, 0): 3, (topic, 1): 3}
        assert consumer.committed() == {}
        assert consumer.commit() == {(topic, 0): 3, (topic, 1): 3}
        assert consumer.committed() == {(topic, 0): 3, (topic, 1): 3}
        assert committed_of(client, name) == {(topic, 0): 3, (topic, 1): 3}

        # rewind everything and read it all again
        assert consumer.seek(position="beginning") == {(topic, 0): 0, (topic, 1): 0}
        assert consumer.position() == {(topic, 0): 0, (topic, 1): 0}
        again = poll_until(consumer, 6)
        assert sorted((r.partition, r.offset, r.value) for r in again) == \
            sorted((r.partition, r.offset, r.value) for r in first)
        assert consumer.committed() == {(topic, 0): 3, (topic, 1): 3}  # seek commits nothing

        # explicit offsets, both spellings
        assert consumer.commit({(topic, 0): 1}) == {(topic, 0): 1}
        assert consumer.commit({topic: {1: 2}}) == {(topic, 1): 2}
        assert consumer.committed() == {(topic, 0): 1, (topic, 1): 2}
        # seek to the end of one partition
        consumer.seek(topic, 0, position="end")
        assert consumer.position()[(topic, 0)] == 3

    # a new member resumes at the committed offsets
    with client.consumer(name, topic, auto_offset_reset="latest",
                         value_format="text") as consumer:
        resumed = poll_until(consumer, 3)
    assert sorted((r.partition, r.offset) for r in resumed) == [(0, 1), (0, 2), (1, 2)]


def test_commit_each_batch_commits_a_batch_handed_out_in_full(client, name):
    topic = make_topic(client, name)
    client.produce(topic, [f"r{i}" for i in range(6)])
    with client.consumer(name, topic, auto_offset_reset="earliest", value_format="text",
                         commit_each_batch=True, max_records=3, timeout_ms=5000) as consumer:
        bound_polls(consumer, 4)
        seen = []
        for rec in consumer:
            seen.append(rec.value)
            if rec.offset < 3:
                # batch 0..2 is being handed out: nothing committed yet
                assert consumer.committed() == {}
            if rec.offset == 3:
                # the poll that brought batch 3..5 committed the whole first batch
                assert consumer.committed() == {(topic, 0): 3}
            if rec.offset == 4:
                break  # in the middle of batch 3..5
    assert seen == ["r0", "r1", "r2", "r3", "r4"]
    assert committed_of(client, name) == {(topic, 0): 3}
    # at least once: the interrupted batch comes again, in full, to the next member
    with client.consumer(name, topic, value_format="text", max_records=10) as consumer:
        again = poll_until(consumer, 3)
    assert [(r.offset, r.value) for r in again] == [(3, "r3"), (4, "r4"), (5, "r5")]


def test_commit_each_batch_never_commits_records_not_handed_out(client, name):
    topic = make_topic(client, name)
    client.produce(topic, [f"r{i}" for i in range(5)])
    with client.consumer(name, topic, auto_offset_reset="earliest", value_format="text",
                         commit_each_batch=True, max_records=5, timeout_ms=2000) as consumer:
        bound_polls(consumer, 3)
        for rec in consumer:
            assert rec.offset == 0
            break  # r1..r4 were fetched but never handed out
        assert consumer.poll(timeout_ms=0) == []  # go on polling with the same consumer
        # r1..r4 must not be committed: they were never seen by the application
        assert consumer.committed().get((topic, 0), 0) <= 1
    with client.consumer(name, topic, value_format="text") as consumer:
        assert [r.value for r in poll_until(consumer, 4)][:4] == ["r1", "r2", "r3", "r4"]


# -- typed errors --------------------------------------------------------------------------

def test_errors_are_typed_and_carry_the_server_code(client, name):
    missing = f"{name}-missing"
    with pytest.raises(errors.TopicNotFound) as exc:
        client.describe_topic(missing)
    assert (exc.value.code, exc.value.status) == ("topic_not_found", 404)
    assert isinstance(exc.value, errors.ApiError) and isinstance(exc.value, ClientError)
    assert missing in exc.value.message and "topic_not_found" in str(exc.value)
    with pytest.raises(errors.TopicNotFound):
        client.produce(missing, ["x"])
    with pytest.raises(errors.TopicNotFound):
        with client.consumer(name, missing):
            pass  # pragma: no cover

    topic = make_topic(client, name, partitions=2)
    with pytest.raises(errors.TopicExists) as exc:
        client.create_topic(topic)
    assert exc.value.code == "topic_exists"

    with pytest.raises(errors.InvalidRequest) as exc:
        client.create_topic(f"{name}-bad", partitions=0)
    assert exc.value.code == "invalid_request" and exc.value.status == 400
    assert "partitions" in exc.value.details
    with pytest.raises(errors.InvalidRequest) as exc:
        with client.consumer(name, topic, session_timeout_ms=10):
            pass  # pragma: no cover
    assert "session_timeout_ms" in exc.value.details

    client.produce(topic, [Record("a", partition=0), Record("b", partition=0)])
    with pytest.raises(errors.OffsetOutOfRange) as exc:
        client.read(topic, 0, offset=50)
    assert exc.value.code == "offset_out_of_range"
    assert exc.value.details == {"topic": topic, "partition": 0, "log_start_offset": 0,
                                 "high_watermark": 2}

    with pytest.raises(errors.PartitionNotFound):
        client.read(topic, 9)
    with pytest.raises(errors.GroupNotFound):
        client.describe_group(f"{name}-no-such-group")

    with client.consumer(name, topic) as consumer:
        with pytest.raises(errors.GroupNotEmpty):
            client.reset_group(name, "earliest")
        # the session disappears server-side
        client.request("DELETE", f"/api/consumers/{consumer.consumer_id}")
        with pytest.raises(errors.ConsumerNotFound) as exc:
            consumer.poll(timeout_ms=0)
        assert (exc.value.code, exc.value.status) == ("consumer_not_found", 404)
        with pytest.raises(errors.ConsumerNotFound):
            consumer.commit()
    # leaving the with-block after that is quiet


def test_connection_failed_for_a_closed_port():
    url = f"http://127.0.0.1:{free_port()}"
    with Client(url, connect_timeout=2) as dead:
        with pytest.raises(ConnectionFailed) as exc:
            dead.list_topics()
    assert isinstance(exc.value, ClientError) and not isinstance(exc.value, errors.ApiError)
    assert str(exc.value) == f"cannot reach {url}: connection refused"


def test_offsets_have_one_shape_everywhere(client, name):
    topic = make_topic(client, name, partitions=2)
    client.produce(topic, [Record("a", partition=0), Record("b", partition=1)])
    with client.consumer(name, topic, auto_offset_reset="earliest") as consumer:
        poll_until(consumer, 2)
        position = consumer.position()
        assert position == {TopicPartition(topic, 0): 1, TopicPartition(topic, 1): 1}
        assert all(type(tp) is TopicPartition for tp in position)
        assert consumer.commit() == position == consumer.committed()
        assert consumer.seek(topic, 0, offset=0) == {TopicPartition(topic, 0): 0}
        assert consumer.assignment() == [TopicPartition(topic, 0), TopicPartition(topic, 1)]
    assert client.set_group_offsets(name, {(topic, 1): 0}) == {TopicPartition(topic, 1): 0}
    assert client.reset_group(name, "latest") == position


def test_unauthorized_and_forbidden(secure_srv, name):
    with Client(secure_srv.base_url) as anonymous:
        with pytest.raises(errors.Unauthorized) as exc:
            anonymous.list_topics()
        assert (exc.value.code, exc.value.status) == ("unauthorized", 401)
    with Client(secure_srv.base_url, api_key="wrong-key") as wrong:
        with pytest.raises(errors.Unauthorized):
            wrong.create_topic(name)
        with pytest.raises(errors.Unauthorized):
            with wrong.consumer(name, name):
                pass  # pragma: no cover

    with Client(secure_srv.base_url, api_key=ADMIN_KEY) as admin:
        admin.create_topic(name)
        admin.produce(name, ["secret"])
    with Client(secure_srv.base_url, api_key=READER_KEY) as reader:
        assert [r.value for r in reader.read(name, 0)] == [b"secret"]
        with pytest.raises(errors.Forbidden) as exc:
            reader.produce(name, ["nope"])
        assert (exc.value.code, exc.value.status) == ("forbidden", 403)
        with pytest.raises(errors.Forbidden):
            reader.delete_topic(name)
        with reader.consumer(name, name, auto_offset_reset="earliest") as consumer:
            assert [r.value for r in poll_until(consumer, 1)] == [b"secret"]


# -- recreate_on_expiry --------------------------------------------------------------------

def _delete_session_from_elsewhere(srv, consumer_id: str) -> None:
    with Client(srv.base_url) as other:
        other.request("DELETE", f"/api/consumers/{consumer_id}")


def test_recreate_on_expiry_resubscribes_after_server_side_delete(client, srv, name):
    topic = make_topic(client, name)
    client.produce(topic, [f"r{i}" for i in range(4)])
    with client.consumer(name, topic, auto_offset_reset="earliest", value_format="text",
                         recreate_on_expiry=True) as consumer:
        first = consumer.poll(timeout_ms=5000, max_records=2)
        assert [r.value for r in first] == ["r0", "r1"]
        consumer.commit()
        old_id = consumer.consumer_id
        _delete_session_from_elsewhere(srv, old_id)
        assert member_ids(client, name) == []
        # the next poll subscribes again and resumes at the committed offset
        assert [r.value for r in poll_until(consumer, 2)] == ["r2", "r3"]
        assert consumer.consumer_id not in (None, old_id)
        assert member_ids(client, name) == [consumer.consumer_id]
    assert member_ids(client, name) == []


def test_without_recreate_on_expiry_a_lost_session_raises(client, srv, name):
    topic = make_topic(client, name)
    client.produce(topic, ["r0"])
    with client.consumer(name, topic, auto_offset_reset="earliest") as consumer:
        assert len(poll_until(consumer, 1)) == 1
        _delete_session_from_elsewhere(srv, consumer.consumer_id)
        with pytest.raises(errors.ConsumerNotFound):
            consumer.poll(timeout_ms=0)
    assert member_ids(client, name) == []


def test_recreate_on_expiry_after_the_session_times_out(client, name):
    topic = make_topic(client, name)
    client.produce(topic, [f"r{i}" for i in range(3)])
    with client.consumer(name, topic, auto_offset_reset="earliest", value_format="text",
                         session_timeout_ms=1000, recreate_on_expiry=True,
                         commit_each_batch=True) as consumer:
        assert [r.value for r in consumer.poll(timeout_ms=5000, max_records=1)] == ["r0"]
        consumer.commit()
        old_id = consumer.consumer_id
        # no heartbeat: the server expires the session (describe_group is no heartbeat)
        wait_until(lambda: member_ids(client, name) == [], timeout=10,
                   what="the session to expire")
        got = poll_until(consumer, 2)
        assert [r.value for r in got] == ["r1", "r2"]
        assert consumer.consumer_id != old_id


def test_exit_keeps_the_original_exception_when_the_server_is_gone(server_factory, name):
    srv = server_factory()
    with Client(srv.base_url, connect_timeout=2) as c:
        c.create_topic(name)
        with pytest.raises(ValueError, match="the application failed"):
            with c.consumer(name, name):
                srv.kill()
                raise ValueError("the application failed")


# -- waiting slots ----------------------------------------------------------------------------


def test_polls_past_the_servers_slots_are_refused_and_the_consumer_rides_them_out(
        server_factory, name):
    """18 threads, 16 of them reserved: 2 consumes may wait. A third gets 429 with
    Retry-After at once -- produces and probes are still served -- and the client's poll
    pauses and asks again until a slot is free."""
    srv = server_factory(CONSUMER_API_THREADS="18", CONSUMER_API_RESERVED_THREADS="16")
    assert metric(srv, "consumer_api_waiting_polls_limit") == 2
    with Client(srv.base_url) as c:
        c.create_topic(name)
        holders = [c.consumer(f"{name}-{i}", name) for i in range(2)]
        late = Client(srv.base_url).consumer(f"{name}-late", name, auto_offset_reset="earliest")
        for consumer in (*holders, late):
            consumer.subscribe()
        got: dict = {}

        def poll(i, consumer):
            got[i] = consumer.poll(timeout_ms=20_000)

        threads = [threading.Thread(target=poll, args=(i, h), daemon=True)
                   for i, h in enumerate(holders)]
        for t in threads:
            t.start()
        wait_until(lambda: metric(srv, "consumer_api_waiting_polls") == 2, timeout=10,
                   what="both slots taken")
        raw = requests.post(srv.url(f"/api/consumers/{late.consumer_id}/consume"),
                            json={"timeout_ms": 20_000}, timeout=5)
        assert raw.status_code == 429 and raw.json()["code"] == "too_many_polls"
        assert raw.json()["details"] == {"limit": 2, "scope": "server"}
        assert raw.headers["Retry-After"] == "1"
        assert requests.get(srv.url("/api/health/ready"), timeout=5).status_code == 200

        threads.append(threading.Thread(target=poll, args=("late", late), daemon=True))
        threads[-1].start()
        wait_until(lambda: metric(srv, 'consumer_api_refusals_total{reason="server_polls"}')
                   >= 2, timeout=10, what="the late poll refused")
        c.produce(name, ["wake"])  # ends both waits: the late poll's retry finds the record
        for t in threads:
            t.join(15)
        assert [r.value for r in got["late"]] == [b"wake"]
        assert [[r.value for r in got[i]] for i in range(2)] == [[b"wake"], [b"wake"]]
        late.close()
        late.client.close()
        for consumer in holders:
            consumer.close()


# -- topic statistics ----------------------------------------------------------------------

def test_records_per_minute_and_the_busiest_keys(client, name, store_name):
    topic = make_topic(client, name, 2)
    base = (int(time.time() * 1000) - 3_600_000) // 60_000 * 60_000  # an hour ago
    client.produce(topic, [Record("v1", key="hot", partition=0, timestamp=base + 1_000),
                           Record("v2", key="hot", partition=1, timestamp=base + 2_000),
                           Record("v3", partition=1, timestamp=base + 125_000),
                           Record("v4", key="cold", partition=0, timestamp=base + 181_000)])
    got = client.topic_stats(topic, from_ms=base, to_ms=base + 180_000)
    assert [(b["start_ms"], b["records"]) for b in got["buckets"]] == [
        (base, 2), (base + 60_000, 0), (base + 120_000, 1)]
    if store_name == "embedded":  # a batch per partition: v1 and v2 each carry a 38-byte
        # header; every record 6 bytes of columns (value and key lengths, a 4-byte time delta)
        assert [b["bytes"] for b in got["buckets"]] == [2 * (38 + 6 + 5), 0, 6 + 2]
    else:
        assert got["bytes"] is None
    one = client.topic_stats(topic, from_ms=base, to_ms=base + 180_000, bucket_ms=90_000,
                             partition=1)
    assert [b["records"] for b in one["buckets"]] == [1, 1]
    keys = client.top_keys(topic, from_ms=base, to_ms=base + 240_000, top=2)
    assert [(k["key"], k["records"]) for k in keys["keys"]] == [(b"hot", 2), (None, 1)]
    assert (keys["distinct_keys"], keys["complete"], keys["scanned_to_ms"]) == (
        3, True, base + 240_000)
    assert len(client.topic_stats(topic)["buckets"]) == 60  # the last hour by default
    with pytest.raises(errors.InvalidRequest) as exc:
        client.topic_stats(topic, from_ms=base, to_ms=base)
    assert "to_ms" in exc.value.details
    with pytest.raises(errors.PartitionNotFound):
        client.top_keys(topic, partition=2)
