"""Fields and schemas shared by every resource."""
from __future__ import annotations

from marshmallow import Schema, fields, validate

#: the largest offset, timestamp or count the API takes (Kafka's int64)
INT64_MAX = (1 << 63) - 1
#: how record keys and values are written in JSON
ENCODINGS = ("base64", "text", "json")


def strict_int(minimum: int = 0, maximum: int = INT64_MAX, **kwargs) -> fields.Integer:
    """An integer field that refuses strings, floats and booleans, within a range."""
    return fields.Integer(strict=True, validate=validate.Range(min=minimum, max=maximum),
                          **kwargs)


class StrictBoolean(fields.Boolean):
    """JSON true or false only (marshmallow's Boolean also takes 1, "yes", "on", ...)."""

    def _deserialize(self, value, attr, data, **kwargs):
        if type(value) is not bool:
            raise self.make_error("invalid", input=value)
        return value


#: the OpenAPI schema of a filter (swagger/template.yml); compiled by api/filtering.py
FILTER_REF = {"$ref": "#/components/schemas/RecordFilter"}


def filter_field() -> fields.Raw:
    """A consume's ``filter`` (a JSON object, checked when compiled)."""
    return fields.Raw(metadata={
        "allOf": [FILTER_REF],
        "description": "return only the records this filter matches; the position moves "
                       "past the others too (a commit covers them). A request examines at "
                       "most the server's max_filter_scan_records records."})


def filter_query_field() -> fields.String:
    """A read's ``filter``: the JSON text of a filter (documented as a JSON-serialised
    RecordFilter: ``x-json-content``, see api/spec.py)."""
    return fields.String(metadata={
        "description": "a RecordFilter as JSON text: return only the records it matches; "
                       "next_offset moves past the others too. A read examines at most the "
                       "server's max_filter_scan_records records.",
        "x-json-content": FILTER_REF})


class ScanReportSchema(Schema):
    """What a filtered response adds (absent without a filter)."""

    scanned = fields.Integer(metadata={
        "description": "with a filter: the records examined, matched or not"})
    scan_limit_reached = fields.Boolean(metadata={
        "description": "with a filter: the request stopped at the server's bound on records "
                       "examined, with more to examine; ask again to go on"})


def encoding_field(**kwargs) -> fields.String:
    return fields.String(
        validate=validate.OneOf(ENCODINGS), load_default="base64",
        metadata={"description": "How keys and values travel in JSON: base64 (binary-safe, "
                                 "the default), text (UTF-8 strings) or json (any JSON value).",
                  "enum": list(ENCODINGS), "default": "base64"}, **kwargs)


class ErrorSchema(Schema):
    """The one error envelope of every failure."""

    error = fields.String(required=True, metadata={"example": "topic 'orders' does not exist"})
    code = fields.String(required=True, metadata={"example": "topic_not_found"})
    details = fields.Dict(metadata={"description": "field errors, valid ranges, ...",
                                    "example": {"topic": "orders"}})


class MessageSchema(Schema):
    message = fields.String(required=True)


class HealthSchema(Schema):
    status = fields.String(required=True, metadata={"example": "ok"})
