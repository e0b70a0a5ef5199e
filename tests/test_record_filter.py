"""Record filters (consumer_api/record_filter.py): what matches, and every malformed
filter refused with the place it is wrong."""
from __future__ import annotations

import orjson
import pytest

from consumer_api.errors import InvalidRequest
from consumer_api.record_filter import MAX_CONDITIONS, compile_filter


def matches(spec, key=None, value=None, headers=None) -> bool:
    if value is not None and not isinstance(value, bytes):
        value = orjson.dumps(value)
    return compile_filter(spec)(key, value, headers or {})


def test_key_equals_and_prefix():
    assert matches({"key": {"equals": "user-7"}}, key=b"user-7")
    assert not matches({"key": {"equals": "user-7"}}, key=b"user-70")
    assert matches({"key": {"prefix": "user-"}}, key=b"user-70")
    assert not matches({"key": {"prefix": "user-"}}, key=None)
    assert matches({"key": {"equals": "ü"}}, key="ü".encode())


def test_header_present_and_equal():
    assert matches({"header": {"name": "trace"}}, headers={"trace": ""})
    assert not matches({"header": {"name": "trace"}}, headers={})
    assert matches({"header": {"name": "trace", "equals": "abc"}}, headers={"trace": "abc"})
    assert not matches({"header": {"name": "trace", "equals": "abc"}}, headers={"trace": "x"})


@pytest.mark.parametrize("op, operand, found, expected", [
    ("equals", 5, 5, True), ("equals", 5, 5.0, True), ("equals", 1, True, False),
    ("equals", "a", "a", True), ("equals", {"x": [1]}, {"x": [1]}, True),
    ("in", ["a", 2], 2, True), ("in", ["a", 2], "b", False), ("in", [True], 1, False),
    ("gt", 100, 100.5, True), ("gt", 100, 100, False), ("gte", 100, 100, True),
    ("lt", 0, -1, True), ("lte", "m", "a", True), ("lt", 5, "4", False),
    ("gt", 0, True, False),
])
def test_value_conditions_at_a_path(op, operand, found, expected):
    spec = {"value": {"path": "order.total", op: operand}}
    assert matches(spec, value={"order": {"total": found}}) is expected


def test_a_path_through_lists_and_to_nothing():
    doc = {"items": [{"sku": "a"}, {"sku": "b"}]}
    assert matches({"value": {"path": "items.1.sku", "equals": "b"}}, value=doc)
    assert not matches({"value": {"path": "items.5.sku", "equals": "b"}}, value=doc)
    assert not matches({"value": {"path": "nope", "equals": None}}, value=doc)
    assert matches({"value": {"path": "", "equals": doc}}, value=doc)  # the whole value


def test_a_value_that_is_not_json_or_absent_does_not_match():
    spec = {"value": {"path": "a", "equals": 1}}
    assert not matches(spec, value=b"\xff not json")
    assert not matches(spec, value=None)


def test_all_and_any_nest():
    spec = {"all": [{"key": {"prefix": "user-"}},
                    {"any": [{"value": {"path": "kind", "equals": "refund"}},
                             {"header": {"name": "priority"}}]}]}
    assert matches(spec, key=b"user-1", value={"kind": "refund"})
    assert matches(spec, key=b"user-1", value={"kind": "sale"}, headers={"priority": "1"})
    assert not matches(spec, key=b"user-1", value={"kind": "sale"})
    assert not matches(spec, key=b"shop-1", value={"kind": "refund"})


@pytest.mark.parametrize("spec, where", [
    ("key", "filter"),
    ({}, "filter"),
    ({"key": {"equals": "a"}, "header": {"name": "b"}}, "filter"),
    ({"size": {"gt": 1}}, "filter"),
    ({"all": []}, "filter.all"),
    ({"any": {"key": {}}}, "filter.any"),
    ({"all": [{"key": {"equals": 1}}]}, "filter.all[0].key.equals"),
    ({"key": {"equals": "a", "prefix": "b"}}, "filter.key"),
    ({"key": {"suffix": "a"}}, "filter.key"),
    ({"header": {"equals": "a"}}, "filter.header.name"),
    ({"value": {"equals": 1}}, "filter.value.path"),
    ({"value": {"path": "a", "gt": 1, "lt": 5}}, "filter.value"),
    ({"value": {"path": "a..b", "equals": 1}}, "filter.value.path"),
    ({"value": {"path": "a", "in": 3}}, "filter.value.in"),
    ({"value": {"path": "a", "gt": [1]}}, "filter.value.gt"),
    ({"value": {"path": "a", "gt": True}}, "filter.value.gt"),
])
def test_a_malformed_filter_is_refused_naming_where(spec, where):
    with pytest.raises(InvalidRequest) as exc:
        compile_filter(spec)
    [problem] = exc.value.details["filter"]
    assert problem.startswith(where + ":"), problem


def test_filters_are_bounded_in_size_and_depth():
    many = {"any": [{"key": {"equals": str(i)}} for i in range(MAX_CONDITIONS + 1)]}
    with pytest.raises(InvalidRequest, match="at most"):
        compile_filter(many)
    deep = {"key": {"equals": "x"}}
    for _ in range(9):
        deep = {"all": [deep]}
    with pytest.raises(InvalidRequest, match="nest"):
        compile_filter(deep)
