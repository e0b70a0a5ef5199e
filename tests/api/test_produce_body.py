"""The one-pass produce parser (``produce_body.parse_produce``) against the validator of record
(``schemas.records.ProduceRequestSchema``), and ``render_records`` round trips."""
from __future__ import annotations

import base64
import binascii
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError

from consumer_api.api import encodings, produce_body, records_wire
from consumer_api.api.schemas.common import ENCODINGS
from consumer_api.records import NewRecord
from consumer_api.api.json_io import dumps as response_dumps
from consumer_api.api.schemas.records import ProduceRequestSchema

MANY = 10**9
SCHEMA = ProduceRequestSchema()
INT64_MAX = 2**63 - 1
FAST = settings(max_examples=400, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])


# -- running both --------------------------------------------------------------------------

def parser_outcome(body):
    try:
        return True, parse(body, MANY)
    except encodings.Invalid:
        return False, None


def schema_outcome(body):
    try:
        return True, SCHEMA.load(body)
    except ValidationError:
        return False, None


def has_lone_surrogate(obj) -> bool:
    if isinstance(obj, str):
        try:
            obj.encode("utf-8")
            return False
        except UnicodeEncodeError:
            return True
    if isinstance(obj, list):
        return any(has_lone_surrogate(x) for x in obj)
    if isinstance(obj, dict):
        return any(has_lone_surrogate(k) or has_lone_surrogate(v) for k, v in obj.items())
    return False


def same_json(a, b) -> bool:
    """Equal as JSON values, types included (True is not 1, 1 is not 1.0)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    return a == b


def parse(body, max_records):
    """produce_body.parse_produce with the record tuples as NewRecords (named fields)."""
    records, partitions = produce_body.parse_produce(body, max_records)
    return [NewRecord(*r) for r in records], partitions


def expected_bytes(value, encoding):
    """The bytes a base64 or text wire value stands for (json is checked semantically)."""
    if encoding == "base64":
        return base64.b64decode(value, validate=True)
    return value.encode("utf-8")


def check_agreement(body):
    """The parser raises Invalid iff the schema raises ValidationError; when both accept,
    the parsed records are what the body says."""
    parsed_ok, parsed = parser_outcome(body)
    schema_ok, loaded = schema_outcome(body)
    assert parsed_ok == schema_ok, (body, parsed_ok, schema_ok)
    if not parsed_ok:
        return False
    records, partitions = parsed
    encoding = body.get("encoding", "base64")
    assert len(records) == len(partitions) == len(body["records"]) == len(loaded["records"])
    for rec, partition, item, schema_item in zip(records, partitions, body["records"],
                                                 loaded["records"]):
        assert partition == item.get("partition") == schema_item.get("partition")
        assert rec.timestamp == item.get("timestamp") == schema_item.get("timestamp")
        assert (rec.headers or None) == (item.get("headers") or None)
        for got, sent in ((rec.key, item.get("key")), (rec.value, item["value"])):
            if sent is None:
                assert got is None
            elif encoding == "json":
                assert isinstance(got, bytes)
                got.decode("utf-8")
                assert same_json(json.loads(got), sent), (got, sent)
                assert got == encodings.decode_json(sent)
            else:
                assert got == expected_bytes(sent, encoding)
    return True


# -- strategies ----------------------------------------------------------------------------

LONE_SURROGATES = ["\ud800", "a\udfff", "\udc00x", "\udbff"]
BAD_BASE64 = ["!!", "aGk", "aGk=\n", " aGk=", "a===", "====", "=", "aGVsbG8", "Zm9v YmFy",
              "é", "aGk=aGk=", "YQ", "YQ=", "Y", "-_-_", "aGVsbG8+/w=="[:-1]]
BIG_INTS = [INT64_MAX, INT64_MAX + 1, 2**64, -1, -(2**63) - 1, 123456789012345678901234567890,
            -123456789012345678901234567890, 0]

valid_b64 = st.binary(max_size=24).map(lambda b: base64.b64encode(b).decode("ascii"))
any_text = st.text(max_size=8)
strings = st.one_of(valid_b64, st.sampled_from(BAD_BASE64), any_text,
                    st.sampled_from(LONE_SURROGATES))
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                         st.sampled_from(BIG_INTS),
                         st.floats(allow_nan=False, allow_infinity=False), strings)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.one_of(any_text, st.sampled_from(LONE_SURROGATES)), inner, max_size=3),
    max_leaves=6)
ints_field = st.one_of(
    st.sampled_from([True, False, -1, -(2**63), INT64_MAX + 1, 2**64, 1.0, 0.5, -0.0, 1e20,
                     "3", "", None, [1], {"p": 1}]),
    st.integers(-3, 10), st.floats(allow_nan=False, allow_infinity=False))
header_names = st.one_of(any_text, st.sampled_from(LONE_SURROGATES + ["", "x" * 65535,
                                                                      "x" * 65536, "é" * 32768]))
header_values = st.one_of(any_text, st.sampled_from(LONE_SURROGATES), json_scalars)
headers_field = st.one_of(
    st.builds(lambda good, name, value: {**good, name: value},
              st.dictionaries(any_text, any_text, max_size=2), header_names, any_text),
    st.builds(lambda good, name, value: {**good, name: value},
              st.dictionaries(any_text, any_text, max_size=2), any_text, header_values),
    st.dictionaries(header_names, header_values, max_size=3),
    st.sampled_from([[], "h", 1, True, [["a", "b"]]]))
any_encoding = st.sampled_from(["base64", "text", "json", "BASE64", "", "utf-8", None, 5, True,
                             ["json"]])


def valid_wire_value(encoding):
    if encoding == "text":
        return st.one_of(st.none(), any_text)
    if encoding == "json":
        return json_values.filter(lambda v: not has_lone_surrogate(v))
    return st.one_of(st.none(), valid_b64)


def sometimes(draw, usual, unusual, one_in=8):
    return draw(unusual if draw(st.integers(1, one_in)) == one_in else usual)


GOOD_FIELDS = {
    "partition": st.one_of(st.none(), st.integers(0, 5)),
    "timestamp": st.one_of(st.none(), st.integers(0, INT64_MAX)),
    "headers": st.one_of(st.none(), st.dictionaries(any_text, any_text, max_size=2)),
}
WILD_FIELDS = {"partition": ints_field, "timestamp": ints_field, "headers": headers_field}


@st.composite
def records(draw, encoding):
    """A record dict where each field is usually well-formed for ``encoding`` and now and
    then anything (so a body is often rejected for exactly one reason)."""
    good = valid_wire_value(encoding)
    wild = st.one_of(json_values, strings)
    out = {}
    if draw(st.integers(0, 15)):
        out["value"] = sometimes(draw, good, wild)
    if draw(st.booleans()):
        out["key"] = sometimes(draw, good, wild)
    for name in ("partition", "timestamp", "headers"):
        if draw(st.integers(0, 2)) == 0:
            out[name] = sometimes(draw, GOOD_FIELDS[name], WILD_FIELDS[name], one_in=3)
    if draw(st.integers(0, 15)) == 0:
        out[draw(st.sampled_from(["colour", "Key", "offset", "", "values"]))] = draw(json_scalars)
    return out


@st.composite
def record_or_not(draw, encoding):
    """Mostly a record; sometimes not even an object."""
    return draw(json_scalars if draw(st.integers(0, 9)) == 9 else records(encoding))


@st.composite
def produce_bodies(draw):
    shape = draw(st.integers(0, 19))
    if shape == 0:  # not even an object
        return draw(st.one_of(json_scalars, st.lists(json_scalars, max_size=2)))
    body = {}
    encoding = "base64"
    if draw(st.booleans()):
        encoding = draw(any_encoding) if shape == 1 else draw(st.sampled_from(ENCODINGS))
        body["encoding"] = encoding
    effective = encoding if encoding in ENCODINGS else "base64"
    if shape == 2:
        if draw(st.booleans()):
            body["records"] = draw(st.one_of(json_scalars, st.dictionaries(any_text, json_scalars,
                                                                           max_size=2)))
    else:
        items = record_or_not(effective)
        body["records"] = draw(st.lists(items, min_size=0 if shape == 3 else 1, max_size=4))
    if shape == 4:
        body[draw(st.sampled_from(["topic", "Records", "timeout_ms"]))] = draw(json_scalars)
    return body


# one fault in an otherwise valid body: (what, where, strategy of the replacement)
FAULTS = [
    ("record", "partition", ints_field),
    ("record", "timestamp", ints_field),
    ("record", "headers", headers_field),
    ("record", "value", st.one_of(json_values, strings)),
    ("record", "key", st.one_of(json_values, strings)),
    ("record", "unknown", st.sampled_from(["colour", "Key", "offset", "", "values", "VALUE"])),
    ("record", "drop value", st.none()),
    ("record", "replace", json_scalars),
    ("body", "encoding", any_encoding),
    ("body", "records", st.one_of(json_scalars, st.just([]),
                                  st.dictionaries(any_text, json_scalars, max_size=2))),
    ("body", "unknown", st.sampled_from(["topic", "Records", "timeout_ms", ""])),
]


@st.composite
def single_fault_bodies(draw):
    """A valid body with (usually) one thing changed: each rule gets its own chance."""
    encoding = draw(st.sampled_from(ENCODINGS))
    body = {"records": draw(st.lists(st.fixed_dictionaries(
        {"value": valid_wire_value(encoding)},
        optional={"key": valid_wire_value(encoding), **GOOD_FIELDS}), min_size=1, max_size=3))}
    if encoding != "base64" or draw(st.booleans()):
        body["encoding"] = encoding
    what, where, strategy = draw(st.sampled_from(FAULTS))
    replacement = draw(strategy)
    if what == "body":
        if where == "unknown":
            body[replacement] = draw(json_scalars)
        else:
            body[where] = replacement
        return body
    i = draw(st.integers(0, len(body["records"]) - 1))
    if where == "unknown":
        body["records"][i][replacement] = draw(json_scalars)
    elif where == "drop value":
        del body["records"][i]["value"]
    elif where == "replace":
        body["records"][i] = replacement
    else:
        body["records"][i][where] = replacement
    return body


# -- agreement ------------------------------------------------------------------------------

@settings(FAST, max_examples=400)
@given(st.one_of(produce_bodies(), single_fault_bodies()))
def test_parser_and_schema_agree_on_any_body(body):
    check_agreement(body)


EXAMPLES_ACCEPTED = [
    {"records": [{"value": None}]},
    {"records": [{"value": ""}]},
    {"records": [{"value": "aGk=", "key": "a2V5", "partition": 0, "timestamp": 0,
                  "headers": {"h": "v", "ü": "🙂"}}]},
    {"records": [{"value": "aGk=", "headers": {}}], "encoding": "base64"},
    {"records": [{"value": "héllo", "key": "k"}], "encoding": "text"},
    {"records": [{"value": "aGk", "key": "!!"}], "encoding": "text"},
    {"records": [{"value": {"a": [1, 2.5, True, None]}, "key": 7}], "encoding": "json"},
    {"records": [{"value": 123456789012345678901234567890}], "encoding": "json"},
    {"records": [{"value": "x", "partition": INT64_MAX, "timestamp": INT64_MAX}],
     "encoding": "text"},
    {"records": [{"value": None, "partition": None, "timestamp": None, "headers": None,
                  "key": None}]},
    {"records": [{"value": None, "headers": {"x" * 65535: "v", "é" * 32767: ""}}]},
]
EXAMPLES_REJECTED = [
    [], "x", None, {}, {"records": []}, {"records": None}, {"records": "aGk="},
    {"records": [{"value": "aGk="}], "extra": 1},
    {"records": [{"value": "aGk="}], "encoding": "hex"},
    {"records": [{"value": "aGk="}], "encoding": None},
    {"records": [{}]}, {"records": [None]}, {"records": ["aGk="]},
    {"records": [{"value": "aGk"}]}, {"records": [{"value": "aGk=\n"}]},
    {"records": [{"value": 5}]}, {"records": [{"value": "aGk=", "key": 5}]},
    {"records": [{"value": 5}], "encoding": "text"},
    {"records": [{"value": "\ud800"}], "encoding": "text"},
    {"records": [{"value": "aGk=", "partition": True}]},
    {"records": [{"value": "aGk=", "partition": -1}]},
    {"records": [{"value": "aGk=", "partition": 1.0}]},
    {"records": [{"value": "aGk=", "partition": "1"}]},
    {"records": [{"value": "aGk=", "timestamp": INT64_MAX + 1}]},
    {"records": [{"value": "aGk=", "timestamp": False}]},
    {"records": [{"value": "aGk=", "headers": {"a": 1}}]},
    {"records": [{"value": "aGk=", "headers": {"a": None}}]},
    {"records": [{"value": "aGk=", "headers": {"\ud800": "v"}}]},
    {"records": [{"value": "aGk=", "headers": {"k": "\udfff"}}]},
    {"records": [{"value": "aGk=", "headers": {"x" * 65536: "v"}}]},
    {"records": [{"value": "aGk=", "headers": {"é" * 32767 + "xx": "v"}}]},
    {"records": [{"value": "aGk=", "headers": ["a"]}]},
    {"records": [{"value": "aGk=", "colour": "red"}]},
    {"records": [{"value": "aGk="}, {"value": "aGk=", "partition": "0"}]},
]


@pytest.mark.parametrize("body", EXAMPLES_ACCEPTED, ids=range(len(EXAMPLES_ACCEPTED)))
def test_both_accept(body):
    assert check_agreement(body) is True


@pytest.mark.parametrize("body", EXAMPLES_REJECTED, ids=range(len(EXAMPLES_REJECTED)))
def test_both_reject(body):
    assert check_agreement(body) is False


def test_json_encoding_is_compact_utf8():
    [rec], _ = parse({"encoding": "json", "records": [
        {"key": "ü", "value": {"a": [1, None, True], "b": "x y"}}]}, MANY)
    assert rec.key == '"ü"'.encode("utf-8")
    assert rec.value == b'{"a":[1,null,true],"b":"x y"}'
    [rec], _ = parse({"encoding": "json", "records": [
        {"value": [123456789012345678901234567890, -2**64]}]}, MANY)
    assert rec.value == b"[123456789012345678901234567890,-18446744073709551616]"


def test_json_null_value_is_none_not_the_bytes_null():
    recs, _ = parse({"encoding": "json", "records": [
        {"value": None}, {"value": "null"}]}, MANY)
    assert recs[0].value is None
    assert recs[1].value == b'"null"'


def test_parser_enforces_max_records():
    body = {"records": [{"value": None}] * 3}
    assert len(parse(body, 3)[0]) == 3
    with pytest.raises(encodings.Invalid):
        parse(body, 2)


@pytest.mark.parametrize("body", [
    {"encoding": "json", "records": [{"value": "\ud800"}]},
    {"encoding": "json", "records": [{"value": {"k": ["a\udfff"]}}]},
    {"encoding": "json", "records": [{"value": None, "key": {"\udc00": 1}}]},
], ids=["value", "nested", "key"])
def test_lone_surrogate_in_json_value_is_rejected_by_both(body):
    assert check_agreement(body) is False


# -- render_records ---------------------------------------------------------------------------

def to_wire(out) -> list:
    """What a client sees: the records as serialised in a response, parsed back."""
    return json.loads(response_dumps({"records": out}))["records"]


stored = st.tuples(st.integers(0, INT64_MAX), st.integers(0, INT64_MAX),
                   st.one_of(st.none(), st.binary(max_size=16),
                             st.text(max_size=8).map(lambda s: s.encode("utf-8"))),
                   st.one_of(st.none(), st.binary(max_size=32),
                             st.text(max_size=8).map(lambda s: s.encode("utf-8")),
                             json_values.filter(lambda v: not has_lone_surrogate(v))
                             .map(encodings.decode_json)),
                   st.one_of(st.none(), st.dictionaries(any_text, any_text, max_size=2)))


@settings(FAST, max_examples=200)
@given(st.lists(stored, max_size=5), st.sampled_from(ENCODINGS))
def test_render_then_produce_gives_back_the_same_bytes(batch, encoding):
    out: list = []
    records_wire.render_records("t", 3, batch, encoding, out)
    wire = to_wire(out)
    assert len(wire) == len(batch)
    for rec, (offset, ts, key, value, headers) in zip(wire, batch):
        assert (rec["topic"], rec["partition"], rec["offset"], rec["timestamp"]) == ("t", 3,
                                                                                     offset, ts)
        assert rec["headers"] == (headers or {})
        shown_as = rec.get("encoding", encoding)
        if "encoding" in rec:
            assert rec["encoding"] == "base64" and encoding != "base64"
        body = {"encoding": shown_as, "records": [{"key": rec["key"], "value": rec["value"]}]}
        [back], _ = parse(body, MANY)
        if shown_as == "json" and value is not None:
            # JSON is shown verbatim when it parses; compact JSON comes back byte for byte
            assert same_json(json.loads(back.value), json.loads(value))
        else:
            assert back.value == value
        if shown_as == "json" and key is not None:
            assert same_json(json.loads(back.key), json.loads(key))
        else:
            assert back.key == key


@settings(FAST, max_examples=200)
@given(json_values.filter(lambda v: not has_lone_surrogate(v)))
def test_json_values_round_trip_exactly(value):
    data = encodings.decode_json(value)
    out: list = []
    records_wire.render_records("t", 0, [(0, 1, data, data, None)], "json", out)
    [rec] = to_wire(out)
    assert "encoding" not in rec
    if value is None:
        assert rec["value"] is None
    else:
        assert same_json(rec["value"], value)
        assert encodings.decode_json(rec["value"]) == data


def test_render_falls_back_to_base64_per_record():
    batch = [(0, 10, b"k", b"\xff", None), (1, 11, b'"ok"', b"[1]", {"h": "v"}),
             (2, 12, b"{bad", b"1", None), (3, 13, None, None, None)]
    out: list = []
    records_wire.render_records("t", 0, batch, "json", out)
    wire = to_wire(out)
    assert wire[0]["encoding"] == "base64"
    assert (wire[0]["key"], wire[0]["value"]) == ("aw==", "/w==")
    assert (wire[1]["key"], wire[1]["value"], wire[1]["headers"]) == ("ok", [1], {"h": "v"})
    assert "encoding" not in wire[1]
    assert wire[2]["encoding"] == "base64"
    assert binascii.a2b_base64(wire[2]["key"]) == b"{bad"
    assert (wire[3]["key"], wire[3]["value"]) == (None, None) and "encoding" not in wire[3]
    out = []
    records_wire.render_records("t", 0, batch, "text", out)
    wire = to_wire(out)
    assert wire[0]["encoding"] == "base64"
    assert [w.get("encoding") for w in wire[1:]] == [None, None, None]
    assert wire[2]["key"] == "{bad"


def test_render_big_integers_exactly():
    data = b'{"n":123456789012345678901234567890}'
    out: list = []
    records_wire.render_records("t", 0, [(0, 0, None, data, None)], "json", out)
    [rec] = to_wire(out)
    assert rec["value"] == {"n": 123456789012345678901234567890}
    assert type(rec["value"]["n"]) is int
