"""Consume bodies: the common one checked in a few comparisons, every other one by the schema.

A consumer sends the same small body on every poll: integer limits and perhaps an
encoding. :func:`parse_consume_body` checks such a body itself, with the ranges and
defaults read from ``ConsumeSchema`` (so there is one statement of the rules); a body with
anything else -- a filter, a value of another type or out of range, a field the schema
does not know -- goes through ``ConsumeSchema``, the validator of record, which also words
the errors. ``tests/api/test_consume_body.py`` checks that the two agree.
"""
from __future__ import annotations

from marshmallow import fields, validate

from consumer_api.api.json_io import validate as schema_load
from consumer_api.api.schemas.consumers import ConsumeSchema

_schema = ConsumeSchema()


def _integer_rules(schema) -> dict:
    """``{name: (minimum, maximum, default)}`` of the schema's integer fields."""
    rules = {}
    for name, field in schema.fields.items():
        if isinstance(field, fields.Integer):
            bounds = next(v for v in field.validators if isinstance(v, validate.Range))
            rules[name] = (bounds.min, bounds.max, field.load_default)
    return rules


_INTEGERS = _integer_rules(_schema)
_ENCODINGS = frozenset(_schema.fields["encoding"].validate.choices)
_DEFAULTS = {name: default for name, (_low, _high, default) in _INTEGERS.items()}


def fast_load(payload) -> dict | None:
    """What ``ConsumeSchema().load(payload)`` returns, when ``payload`` holds only
    in-range integer limits and a known encoding; None for any other payload."""
    if type(payload) is not dict:
        return None
    out = dict(_DEFAULTS)
    for name, value in payload.items():
        rule = _INTEGERS.get(name)
        if rule is not None:
            if type(value) is not int or not rule[0] <= value <= rule[1]:
                return None
        elif name != "encoding" or type(value) is not str or value not in _ENCODINGS:
            return None
        out[name] = value
    return out


def parse_consume_body(payload) -> dict:
    """The consume request ``payload`` loaded (defaults filled in); InvalidRequest naming
    the fields when it is not valid."""
    loaded = fast_load(payload)
    return loaded if loaded is not None else schema_load(_schema, payload)
