"""The consume body's quick check (``consume_body.fast_load``) against the validator of
record (``schemas.consumers.ConsumeSchema``): whatever the quick check takes, the schema
loads to the same dict; whatever it passes on, the schema still decides."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError

from consumer_api.api.consume_body import fast_load, parse_consume_body
from consumer_api.api.schemas.consumers import ConsumeSchema
from consumer_api.errors import InvalidRequest

SCHEMA = ConsumeSchema()
FAST = settings(max_examples=600, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])

# values near and past every bound, of every JSON type
EDGES = st.sampled_from([0, 1, 1023, 1024, 9999, 10000, 10001, 300000, 300001,
                         104857600, 104857601, -1, 2**63])
VALUES = st.one_of(EDGES, st.integers(), st.booleans(), st.none(), st.floats(allow_nan=False),
                   st.text(max_size=8), st.sampled_from(["base64", "text", "json", "BASE64"]),
                   st.lists(st.integers(), max_size=2), st.just({"key": {"equals": "a"}}))
NAMES = st.sampled_from(["max_records", "min_records", "timeout_ms", "max_bytes_total",
                         "encoding", "filter", "other", ""])
BODIES = st.one_of(st.dictionaries(NAMES, VALUES, max_size=5), st.lists(st.integers()),
                   st.integers(), st.none())


def schema_outcome(body):
    try:
        return SCHEMA.load(body)
    except ValidationError:
        return "invalid"


@FAST
@given(BODIES)
def test_what_the_quick_check_takes_the_schema_loads_the_same(body):
    quick = fast_load(body)
    if quick is not None:
        assert quick == schema_outcome(body)


@FAST
@given(st.fixed_dictionaries({}, optional={
    "max_records": st.integers(1, 10000), "min_records": st.integers(1, 10000),
    "timeout_ms": st.integers(0, 300000),
    "max_bytes_total": st.integers(1024, 104857600),
    "encoding": st.sampled_from(["base64", "text", "json"])}))
def test_every_valid_body_without_a_filter_takes_the_quick_path(body):
    assert fast_load(body) == SCHEMA.load(body)


@pytest.mark.parametrize("body, field", [
    ({"max_records": 0}, "max_records"), ({"max_records": True}, "max_records"),
    ({"timeout_ms": "5"}, "timeout_ms"), ({"max_bytes_total": 10}, "max_bytes_total"),
    ({"encoding": "hex"}, "encoding"), ({"maxrecords": 5}, "maxrecords"),
])
def test_a_body_the_quick_check_refuses_gets_the_schemas_error(body, field):
    assert fast_load(body) is None
    with pytest.raises(InvalidRequest) as caught:
        parse_consume_body(body)
    assert field in caught.value.details
    assert caught.value.details == SCHEMA.validate(body)


def test_a_filter_goes_through_the_schema():
    body = {"max_records": 5, "filter": {"key": {"equals": "a"}}}
    assert fast_load(body) is None
    assert parse_consume_body(body) == SCHEMA.load(body)
