"""Produce and stateless read over HTTP (API.md, "Bytes on the wire", "Topics and records")."""
from __future__ import annotations

import base64
import json

import pytest

from consumer_api.partitioner import partition_for_key
from tests.api.conftest import assert_error, b64

pytestmark = pytest.mark.usefixtures("openapi_built_once")
ON_STORES = ("embedded", "kafka")

BIG = 123456789012345678901234567890


def unb64(text):
    return None if text is None else base64.b64decode(text, validate=True)


@pytest.fixture
def topic(api):
    assert api.create_topic("t", 3).status_code == 201
    return "t"


def offsets_of(resp):
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.mimetype == "application/json"
    return resp.get_json()["offsets"]


# -- produce: encodings ------------------------------------------------------------------

def test_base64_is_the_default_encoding_and_round_trips_binary(api, topic):
    data = bytes(range(256))
    offsets = offsets_of(api.produce(topic, [{"key": b64(b"\x00k\xff"), "value": b64(data),
                                              "partition": 1}]))
    assert offsets == [{"partition": 1, "offset": 0, "timestamp": offsets[0]["timestamp"]}]
    [rec] = api.records(topic, 1)
    assert set(rec) == {"topic", "partition", "offset", "timestamp", "key", "value", "headers"}
    assert (rec["topic"], rec["partition"], rec["offset"]) == (topic, 1, 0)
    assert unb64(rec["key"]) == b"\x00k\xff"
    assert unb64(rec["value"]) == data
    # explicit "base64" is the same thing
    offsets_of(api.produce(topic, [{"value": b64(data), "partition": 1}], encoding="base64"))
    assert unb64(api.records(topic, 1, offset=1)[0]["value"]) == data


def test_empty_base64_string_is_an_empty_value_not_null(api, topic):
    offsets_of(api.produce(topic, [{"key": "", "value": "", "partition": 0}]))
    [rec] = api.records(topic, 0)
    assert rec["key"] == "" and rec["value"] == ""


def test_text_encoding_stores_utf8_bytes(api, topic):
    text = "héllo wörld ✓ 🙂"
    offsets_of(api.produce(topic, [{"key": "ключ", "value": text, "partition": 0}], encoding="text"))
    [rec] = api.records(topic, 0)
    assert unb64(rec["value"]) == text.encode("utf-8")
    assert unb64(rec["key"]) == "ключ".encode("utf-8")
    [rec] = api.records(topic, 0, encoding="text")
    assert (rec["key"], rec["value"]) == ("ключ", text)
    assert "encoding" not in rec


JSON_VALUES = [
    {"a": {"b": [1, 2, {"c": None}]}, "d": "e"},
    [1, -2, 3.5, True, False, None, "s"],
    42, -7, 0, 1.25, -1e-7, True, False, "a string", "", {}, [],
]


def test_json_encoding_stores_compact_utf8_and_reads_back_the_same_values(api, topic):
    records = [{"key": {"id": i}, "value": v, "partition": 2} for i, v in enumerate(JSON_VALUES)]
    records.append({"key": "ü", "value": {"ü": "ß"}, "partition": 2})
    offsets_of(api.produce(topic, records, encoding="json"))
    got = api.records(topic, 2, encoding="json")
    assert [r["value"] for r in got] == [r["value"] for r in records]
    assert [r["key"] for r in got] == [r["key"] for r in records]
    # exact types survive (True is not 1, 1.25 is not "1.25")
    assert [type(r["value"]) for r in got] == [type(r["value"]) for r in records]
    assert all("encoding" not in r for r in got)
    raw = api.records(topic, 2)
    assert unb64(raw[0]["value"]) == b'{"a":{"b":[1,2,{"c":null}]},"d":"e"}'
    assert unb64(raw[0]["key"]) == b'{"id":0}'
    assert unb64(raw[JSON_VALUES.index("a string")]["value"]) == b'"a string"'
    assert unb64(raw[-1]["value"]) == '{"ü":"ß"}'.encode("utf-8")


def test_json_null_is_a_null_value_not_the_bytes_null(api, topic):
    offsets_of(api.produce(topic, [{"key": "k", "value": None, "partition": 0},
                                   {"value": "null", "partition": 0}], encoding="json"))
    raw = api.records(topic, 0)
    assert raw[0]["value"] is None
    assert unb64(raw[0]["key"]) == b'"k"'
    assert raw[1]["key"] is None
    assert unb64(raw[1]["value"]) == b'"null"'
    assert [r["value"] for r in api.records(topic, 0, encoding="json")] == [None, "null"]


@pytest.mark.parametrize("encoding", ["base64", "text", "json"])
def test_null_key_and_null_value_in_every_encoding(api, topic, encoding):
    offsets_of(api.produce(topic, [{"key": None, "value": None, "partition": 0},
                                   {"value": None, "partition": 0}], encoding=encoding))
    for read_encoding in ("base64", "text", "json"):
        got = api.records(topic, 0, encoding=read_encoding)
        assert [(r["key"], r["value"]) for r in got] == [(None, None), (None, None)]
        assert all("encoding" not in r for r in got)


def test_big_json_integers_are_stored_exactly(api, topic):
    value = [BIG, -BIG, 2**64, {"n": BIG}]
    offsets_of(api.produce(topic, [{"value": value, "key": BIG, "partition": 0}], encoding="json"))
    [rec] = api.records(topic, 0)
    assert unb64(rec["value"]) == f'[{BIG},{-BIG},{2**64},{{"n":{BIG}}}]'.encode()
    assert unb64(rec["key"]) == str(BIG).encode()
    [rec] = api.records(topic, 0, encoding="text")
    assert json.loads(rec["value"]) == value


def test_big_json_integers_survive_a_json_round_trip_exactly(api, topic):
    value = {"n": BIG, "m": [-BIG, 2**64]}
    offsets_of(api.produce(topic, [{"key": BIG, "value": value, "partition": 0}], encoding="json"))
    resp = api.read(topic, 0, encoding="json")
    assert resp.status_code == 200
    [rec] = json.loads(resp.get_data(as_text=True))["records"]  # stdlib: exact ints
    assert rec["key"] == BIG and type(rec["key"]) is int
    assert rec["value"] == value
    assert "encoding" not in rec


# -- produce: headers, partitions, timestamps, order -------------------------------------

def test_headers_round_trip_including_unicode(api, topic):
    headers = {"source": "web", "ключ": "значение", "emoji 🙂": "✓ ü", "empty": ""}
    offsets_of(api.produce(topic, [{"value": b64("v"), "headers": headers, "partition": 0},
                                   {"value": b64("w"), "partition": 0}]))
    got = api.records(topic, 0)
    assert got[0]["headers"] == headers
    assert got[1]["headers"] == {}
    assert api.records(topic, 0, encoding="text")[0]["headers"] == headers


def test_offsets_are_in_request_order_across_mixed_partitions(api, topic):
    parts = [0, 1, 0, 2, 1, 0, 2]
    records = [{"value": b64(f"v{i}"), "partition": p} for i, p in enumerate(parts)]
    offsets = offsets_of(api.produce(topic, records))
    assert [(o["partition"], o["offset"]) for o in offsets] == [
        (0, 0), (1, 0), (0, 1), (2, 0), (1, 1), (0, 2), (2, 1)]
    # the records landed where the response says, in order within each partition
    for p in range(3):
        got = api.records(topic, p)
        expected = [f"v{i}".encode() for i, q in enumerate(parts) if q == p]
        assert [unb64(r["value"]) for r in got] == expected
        assert [r["offset"] for r in got] == list(range(len(expected)))
    # a second request continues the offsets
    offsets = offsets_of(api.produce(topic, [{"value": b64("x"), "partition": 1},
                                             {"value": b64("y"), "partition": 0}]))
    assert [(o["partition"], o["offset"]) for o in offsets] == [(1, 2), (0, 3)]
    assert api.watermarks(topic) == [4, 3, 2]


def test_explicit_partition_wins_over_the_key(api, topic):
    key = b"user-1"
    natural = partition_for_key(key, 3)
    other = (natural + 1) % 3
    offsets = offsets_of(api.produce(topic, [{"key": b64(key), "value": b64("v"),
                                              "partition": other}]))
    assert offsets[0]["partition"] == other
    assert unb64(api.records(topic, other)[0]["key"]) == key


@pytest.mark.embedded_only  # the fake clock
def test_default_timestamps_are_the_server_clock(api, topic, clock):
    offsets = offsets_of(api.produce(topic, [{"value": b64("a"), "partition": 0}]))
    assert offsets[0]["timestamp"] == clock.now_ms()
    clock.advance(12_345)
    offsets = offsets_of(api.produce(topic, [{"value": b64("b"), "partition": 0},
                                             {"value": b64("c"), "partition": 1}]))
    assert [o["timestamp"] for o in offsets] == [clock.now_ms()] * 2
    got = api.records(topic, 0)
    assert [r["timestamp"] for r in got] == [clock.now_ms() - 12_345, clock.now_ms()]


@pytest.mark.embedded_only  # the fake clock; Kafka refuses far-future timestamps (kafka/)
def test_producer_timestamps_are_kept(api, topic, clock):
    offsets = offsets_of(api.produce(topic, [
        {"value": b64("a"), "partition": 0, "timestamp": 1234},
        {"value": b64("b"), "partition": 0},
        {"value": b64("c"), "partition": 0, "timestamp": 0},
        {"value": b64("d"), "partition": 0, "timestamp": 2**63 - 1}]))
    assert [o["timestamp"] for o in offsets] == [1234, clock.now_ms(), 0, 2**63 - 1]
    assert [r["timestamp"] for r in api.records(topic, 0)] == [1234, clock.now_ms(), 0, 2**63 - 1]


def test_keyed_records_go_to_murmur2_of_the_key(api):
    api.create_topic("k", 7)
    keys = [f"user-{i}".encode() for i in range(40)] + [b"", b"\xff\x00", "ü".encode()]
    offsets = offsets_of(api.produce("k", [{"key": b64(k), "value": b64("v")} for k in keys]))
    assert [o["partition"] for o in offsets] == [partition_for_key(k, 7) for k in keys]
    assert len({o["partition"] for o in offsets}) > 1
    # the key bytes decide, whatever the encoding they travelled in
    offsets = offsets_of(api.produce("k", [{"key": "user-3", "value": "v"}], encoding="text"))
    assert offsets[0]["partition"] == partition_for_key(b"user-3", 7)
    offsets = offsets_of(api.produce("k", [{"key": {"id": 3}, "value": 1}], encoding="json"))
    assert offsets[0]["partition"] == partition_for_key(b'{"id":3}', 7)


def test_keyless_records_round_robin(api):
    api.create_topic("rr", 4)
    first = [o["partition"] for o in offsets_of(api.produce("rr", [{"value": b64("v")}] * 8))]
    second = [o["partition"] for o in offsets_of(api.produce("rr", [{"value": None}] * 3))]
    seq = first + second
    assert all(b == (a + 1) % 4 for a, b in zip(seq, seq[1:])), seq
    assert sorted(first) == [0, 0, 1, 1, 2, 2, 3, 3]
    assert sum(api.watermarks("rr")) == 11


# -- read --------------------------------------------------------------------------------

@pytest.fixture
def ten(api, topic):
    offsets_of(api.produce(topic, [{"key": b64(f"k{i}"), "value": b64(f"value-{i}"),
                                    "partition": 0} for i in range(10)]))
    return topic


def test_a_read_says_where_to_go_on_and_where_the_partition_ends(api, ten):
    def page(**params):
        resp = api.read(ten, 0, **params)
        assert resp.status_code == 200, resp.get_data(as_text=True)
        body = resp.get_json()
        assert set(body) == {"records", "next_offset", "high_watermark"}
        return [r["offset"] for r in body["records"]], body["next_offset"], body["high_watermark"]

    assert page(max_records=4) == ([0, 1, 2, 3], 4, 10)
    assert page(offset=4, max_records=4) == ([4, 5, 6, 7], 8, 10)
    assert page(offset=8, max_records=4) == ([8, 9], 10, 10)
    assert page(offset=10) == ([], 10, 10)  # at the end: next_offset reaches the watermark


def test_a_read_from_a_timestamp_starts_at_the_first_record_at_or_after_it(api, topic):
    offsets_of(api.produce(topic, [{"value": b64(f"v{ts}"), "partition": 1, "timestamp": ts}
                                   for ts in (1000, 2000, 3000)]))
    assert [r["offset"] for r in api.records(topic, 1, timestamp=1500)] == [1, 2]
    assert [r["offset"] for r in api.records(topic, 1, timestamp=0)] == [0, 1, 2]
    resp = api.read(topic, 1, timestamp=3001)
    assert resp.get_json()["records"] == [] and resp.get_json()["next_offset"] == 3
    details = assert_error(api.read(topic, 1, timestamp=1500, offset=0), 400,
                           "invalid_request")
    assert list(details) == ["timestamp"]
    assert list(assert_error(api.read(topic, 1, timestamp=-1), 400, "invalid_request")) == [
        "timestamp"]


def test_read_defaults_to_the_log_start_and_honours_offset_and_max_records(api, ten):
    got = api.records(ten, 0)
    assert [r["offset"] for r in got] == list(range(10))
    assert [unb64(r["value"]) for r in got] == [f"value-{i}".encode() for i in range(10)]
    got = api.records(ten, 0, offset=4, max_records=3)
    assert [r["offset"] for r in got] == [4, 5, 6]
    assert [unb64(r["key"]) for r in got] == [b"k4", b"k5", b"k6"]
    assert api.records(ten, 0, offset=9)[0]["offset"] == 9


def test_read_at_the_high_watermark_is_empty(api, ten):
    assert api.records(ten, 0, offset=10) == []
    assert api.records(ten, 1) == []
    assert api.records(ten, 1, offset=0) == []


def test_read_beyond_the_high_watermark_is_400_offset_out_of_range(api, ten):
    details = assert_error(api.read(ten, 0, offset=11), 400, "offset_out_of_range")
    assert details == {"topic": ten, "partition": 0, "log_start_offset": 0,
                       "high_watermark": 10}
    details = assert_error(api.read(ten, 1, offset=1), 400, "offset_out_of_range")
    assert details == {"topic": ten, "partition": 1, "log_start_offset": 0,
                       "high_watermark": 0}


def test_max_bytes_total_truncates_but_always_returns_one_record(api, topic):
    offsets_of(api.produce(topic, [{"value": "x" * 300, "partition": 0}] * 10
                           + [{"value": "y" * 5000, "partition": 0}] * 2, encoding="text"))
    got = api.records(topic, 0, max_bytes_total=1024)
    assert 1 <= len(got) < 10
    assert [r["offset"] for r in got] == list(range(len(got)))
    assert len(api.records(topic, 0, max_bytes_total=1024 * 1024)) == 12
    got = api.records(topic, 0, offset=10, max_bytes_total=1024)
    assert [r["offset"] for r in got] == [10]
    assert unb64(got[0]["value"]) == b"y" * 5000


def test_bad_read_parameters_are_400_naming_them(api, ten):
    for params, field in (({"offset": -1}, "offset"), ({"offset": "abc"}, "offset"),
                          ({"max_records": 0}, "max_records"),
                          ({"max_records": 10001}, "max_records"),
                          ({"max_bytes_total": 1023}, "max_bytes_total"),
                          ({"encoding": "xml"}, "encoding"), ({"colour": "red"}, "colour")):
        details = assert_error(api.read(ten, 0, **params), 400, "invalid_request")
        assert list(details) == [field], params


def test_records_not_showable_in_the_requested_encoding_come_back_base64(api, topic):
    offsets_of(api.produce(topic, [
        {"key": b64("good"), "value": b64('{"ok": 1}'), "partition": 0},
        {"key": b64("k"), "value": b64(b"\xff\xfe not utf-8"), "partition": 0},
        {"key": b64(b"\xc3"), "value": b64("plain text"), "partition": 0},
        {"key": None, "value": b64("[1,2]"), "partition": 0},
    ]))
    text = api.records(topic, 0, encoding="text")
    assert (text[0]["key"], text[0]["value"]) == ("good", '{"ok": 1}')
    assert "encoding" not in text[0]
    assert text[1]["encoding"] == "base64"
    assert (unb64(text[1]["key"]), unb64(text[1]["value"])) == (b"k", b"\xff\xfe not utf-8")
    assert text[2]["encoding"] == "base64"
    assert (unb64(text[2]["key"]), unb64(text[2]["value"])) == (b"\xc3", b"plain text")
    assert (text[3]["key"], text[3]["value"]) == (None, "[1,2]") and "encoding" not in text[3]

    js = api.records(topic, 0, encoding="json")
    # "good" is not JSON: the whole record falls back to base64
    assert js[0]["encoding"] == "base64"
    assert (unb64(js[0]["key"]), unb64(js[0]["value"])) == (b"good", b'{"ok": 1}')
    assert js[1]["encoding"] == "base64" and unb64(js[1]["value"]) == b"\xff\xfe not utf-8"
    assert js[2]["encoding"] == "base64"
    assert (js[3]["key"], js[3]["value"]) == (None, [1, 2]) and "encoding" not in js[3]
    assert all("encoding" not in r for r in api.records(topic, 0, encoding="base64"))


def test_unknown_partition_is_404_partition_not_found(api, ten):
    for partition in ("7", "3", "-1", "abc", "1.0", "99999999999", " 1", "0x1"):
        assert_error(api.read(ten, partition), 404, "partition_not_found")


def test_unicode_digit_partition_is_404_not_500(api, ten):
    assert_error(api.read(ten, "²"), 404, "partition_not_found")
    assert_error(api.read(ten, "١"), 404, "partition_not_found")


def test_read_unknown_topic_is_404_topic_not_found(api):
    details = assert_error(api.read("nope", 0), 404, "topic_not_found")
    assert details == {"topic": "nope"}


def test_produce_unknown_topic_is_404_topic_not_found(api):
    assert_error(api.produce("nope", [{"value": b64("v")}]), 404, "topic_not_found")
    assert api.client.get("/api/topics").get_json() == {"topics": []}


# -- all or nothing ----------------------------------------------------------------------

GOOD = [{"value": b64("g0"), "partition": 0}, {"key": b64("k"), "value": b64("g1")},
        {"value": b64("g2"), "partition": 2}, {"value": None, "partition": 1},
        {"value": b64("g4")}]

BAD_RECORDS = [
    ("bad base64", {"value": "not base64!"}, "value"),
    ("base64 missing padding", {"value": "aGk"}, "value"),
    ("bad base64 key", {"key": "%%%", "value": b64("v")}, "key"),
    ("non-string value", {"value": 12}, "value"),
    ("string partition", {"value": b64("v"), "partition": "1"}, "partition"),
    ("bool partition", {"value": b64("v"), "partition": True}, "partition"),
    ("float partition", {"value": b64("v"), "partition": 1.0}, "partition"),
    ("negative partition", {"value": b64("v"), "partition": -1}, "partition"),
    ("negative timestamp", {"value": b64("v"), "timestamp": -1}, "timestamp"),
    ("string timestamp", {"value": b64("v"), "timestamp": "1700000000000"}, "timestamp"),
    ("bool timestamp", {"value": b64("v"), "timestamp": False}, "timestamp"),
    ("huge timestamp", {"value": b64("v"), "timestamp": 2**63}, "timestamp"),
    ("non-string header value", {"value": b64("v"), "headers": {"a": 1}}, "headers"),
    ("null header value", {"value": b64("v"), "headers": {"a": None}}, "headers"),
    ("headers not an object", {"value": b64("v"), "headers": ["a", "b"]}, "headers"),
    ("unknown record field", {"value": b64("v"), "colour": "red"}, "colour"),
    ("missing value", {"key": b64("k")}, "value"),
]


@pytest.mark.parametrize("what, bad, field", BAD_RECORDS, ids=[b[0] for b in BAD_RECORDS])
def test_one_bad_record_anywhere_stores_nothing_and_names_index_and_field(
        api, topic, what, bad, field):
    offsets_of(api.produce(topic, [{"value": b64("seed"), "partition": p} for p in (0, 1, 2, 2)]))
    before = api.watermarks(topic)
    for index in (0, 3, len(GOOD)):
        records = GOOD[:index] + [bad] + GOOD[index:]
        details = assert_error(api.produce(topic, records), 400, "invalid_request")
        assert list(details) == ["records"], (index, details)
        assert list(details["records"]) == [str(index)], (index, details)
        assert field in details["records"][str(index)], (index, details)
        assert api.watermarks(topic) == before, index
    # and the same batch without the bad record goes through
    assert len(offsets_of(api.produce(topic, GOOD))) == len(GOOD)
    assert sum(api.watermarks(topic)) == sum(before) + len(GOOD)


@pytest.mark.parametrize("index", [0, 4])
def test_explicit_partition_out_of_range_is_404_and_stores_nothing(api, topic, index):
    before = api.watermarks(topic)
    records = GOOD[:index] + [{"value": b64("v"), "partition": 3}] + GOOD[index:]
    details = assert_error(api.produce(topic, records), 404, "partition_not_found")
    assert details["partition"] == 3
    assert api.watermarks(topic) == before
    # the round-robin and keyed records before it did not leak into any partition
    assert all(api.records(topic, p) == [] for p in range(3))


def test_several_bad_records_are_all_named(api, topic):
    records = [{"value": b64("v"), "timestamp": -5}, GOOD[0],
               {"value": b64("v"), "partition": "x"}, {"value": b64("v"), "headers": {"h": 5}},
               {"value": b64("v"), "extra": 1}]
    details = assert_error(api.produce(topic, records), 400, "invalid_request")
    assert set(details["records"]) == {"0", "2", "3", "4"}
    assert list(details["records"]["0"]) == ["timestamp"]
    assert list(details["records"]["2"]) == ["partition"]
    assert list(details["records"]["3"]) == ["headers"]
    assert list(details["records"]["4"]) == ["extra"]
    assert api.watermarks(topic) == [0, 0, 0]


def test_several_undecodable_records_are_all_named(api, topic):
    records = [{"value": "!!"}, GOOD[0], {"key": "a=b=", "value": b64("v")},
               {"key": "#", "value": "@"}]
    details = assert_error(api.produce(topic, records), 400, "invalid_request")
    assert details["records"] == {"0": {"value": details["records"]["0"]["value"]},
                                  "2": {"key": details["records"]["2"]["key"]},
                                  "3": {"key": details["records"]["3"]["key"],
                                        "value": details["records"]["3"]["value"]}}
    assert api.watermarks(topic) == [0, 0, 0]


@pytest.mark.parametrize("encoding, value", [("text", 5), ("text", None), ("text", ["a"]),
                                             ("json", "ok")])
def test_values_checked_against_the_chosen_encoding(api, topic, encoding, value):
    resp = api.produce(topic, [GOOD[0] | {"value": "fine"}, {"value": value}], encoding=encoding)
    if value in (None, "ok"):
        assert len(offsets_of(resp)) == 2
    else:
        details = assert_error(resp, 400, "invalid_request")
        assert list(details["records"]) == ["1"]
        assert "value" in details["records"]["1"]
        assert api.watermarks(topic) == [0, 0, 0]


def test_bad_produce_bodies_are_400_naming_the_field(api, topic):
    for body, field in (
            ({"records": []}, "records"),
            ({"records": None}, "records"),
            ({"records": {"value": "aGk="}}, "records"),
            ({"records": "aGk="}, "records"),
            ({}, "records"),
            ({"records": [{"value": "aGk="}], "encoding": "hex"}, "encoding"),
            ({"records": [{"value": "aGk="}], "encoding": None}, "encoding"),
            ({"records": [{"value": "aGk="}], "topic": "t"}, "topic"),
            ({"records": ["aGk="]}, "records")):
        details = assert_error(api.post_text(f"/api/topics/{topic}/records", json.dumps(body)),
                               400, "invalid_request")
        assert field in details, (body, details)
    assert api.watermarks(topic) == [0, 0, 0]


def test_body_that_is_not_an_object_is_400(api, topic):
    for text in ("[]", '"records"', "3", "null"):
        assert_error(api.post_text(f"/api/topics/{topic}/records", text), 400, "invalid_request")
    assert api.watermarks(topic) == [0, 0, 0]


# -- limits ------------------------------------------------------------------------------

def test_more_records_than_max_records_per_produce_is_400_naming_records(make_api):
    small = make_api(max_records_per_produce=5)
    assert small.create_topic("t", 2).status_code == 201
    assert len(offsets_of(small.produce("t", [{"value": b64("v")}] * 5))) == 5
    details = assert_error(small.produce("t", [{"value": b64("v")}] * 6), 400, "invalid_request")
    assert list(details) == ["records"]
    assert sum(small.watermarks("t")) == 5


def test_body_over_max_body_bytes_is_413_and_stores_nothing(make_api):
    small = make_api(max_body_bytes=2048)
    assert small.create_topic("t", 1).status_code == 201
    assert len(offsets_of(small.produce("t", [{"value": b64(b"x" * 1000)}]))) == 1
    resp = small.produce("t", [{"value": b64(b"x" * 3000)}])
    details = assert_error(resp, 413, "payload_too_large")
    assert details == {"max_body_bytes": 2048}
    assert small.watermarks("t") == [1]


# -- bodies that once crashed the server ------------------------------------------------------

def test_lone_surrogate_in_a_json_value_is_400_not_500(api, topic):
    body = '{"encoding": "json", "records": [{"key": %d, "value": "\\ud800"}]}' % BIG
    details = assert_error(api.post_text(f"/api/topics/{topic}/records", body),
                           400, "invalid_request")
    assert "value" in details["records"]["0"]


def test_deeply_nested_json_value_is_not_a_500(api, topic):
    depth = 1000  # orjson parses up to 1024 levels; its dumps stops at 255
    body = '{"encoding":"json","records":[{"value":%s%s}]}' % ("[" * depth, "]" * depth)
    resp = api.post_text(f"/api/topics/{topic}/records", body)
    assert resp.status_code in (200, 400), resp.get_json()


def test_reading_a_deeply_nested_json_value_returns_it(api, topic):
    depth = 300  # deeper than orjson serialises (255), within what it parses (1024)
    nested = "[" * depth + "]" * depth
    body = '{"encoding":"json","records":[{"value":%s,"partition":0}]}' % nested
    offsets_of(api.post_text(f"/api/topics/{topic}/records", body))
    resp = api.read(topic, 0, encoding="json")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    [rec] = json.loads(resp.get_data(as_text=True))["records"]
    assert json.dumps(rec["value"], separators=(",", ":")) == nested


def test_nan_is_malformed_json_even_next_to_a_big_integer(api, topic):
    body = '{"encoding":"json","records":[{"key":%d,"value":NaN,"partition":0}]}' % BIG
    assert_error(api.post_text(f"/api/topics/{topic}/records", body), 400, "invalid_request")
    assert api.watermarks(topic) == [0, 0, 0]
