"""Produce bodies: from the wire to records, all or nothing.

Keys and values come in the request's ``encoding`` (:mod:`consumer_api.api.encodings`);
JSON ``null`` is a null record value (a tombstone) in every encoding.

Two paths, side by side: :func:`parse_produce` (the fast path) checks and decodes the
records in one pass; the marshmallow schema (``schemas.records.ProduceRequestSchema``, the
reference path, too slow per record for every request) is the validator of record. When
the fast path finds any problem, :func:`parse_produce_body` re-validates with the schema,
which produces the error details (``tests/api/test_produce_body.py`` checks that the two agree).
"""
from __future__ import annotations

import binascii
import logging

from consumer_api.api.encodings import DECODERS, MAX_HEADER_NAME_BYTES, Invalid, decode_base64
from consumer_api.api.json_io import validate
from consumer_api.api.schemas.common import INT64_MAX
from consumer_api.api.schemas.records import ProduceRequestSchema
from consumer_api.errors import InvalidRequest

log = logging.getLogger(__name__)

RECORD_FIELDS = frozenset(("key", "value", "partition", "headers", "timestamp"))
PRODUCE_FIELDS = frozenset(("records", "encoding"))
_produce = ProduceRequestSchema()


def parse_produce_body(payload, max_records: int):
    """``(records, partitions)`` of a produce body (see :func:`parse_produce`); an
    InvalidRequest naming the fields when it is not valid."""
    items = payload.get("records") if isinstance(payload, dict) else None
    if isinstance(items, list) and len(items) > max_records:
        raise InvalidRequest(f"at most {max_records} records per request",
                             {"records": [f"Longer than maximum length {max_records}."]})
    try:
        return parse_produce(payload, max_records)
    except Invalid:
        validate(_produce, payload)  # raises with the field details
        log.error("produce parser and schema disagree")
        raise InvalidRequest("invalid request body", {"records": ["Invalid record."]}) from None


def _check_headers(headers) -> dict | None:
    if headers is None:
        return None
    if type(headers) is not dict:
        raise Invalid("headers")
    for name, value in headers.items():
        if type(name) is not str or type(value) is not str:
            raise Invalid("headers")
        try:
            if len(name.encode("utf-8")) > MAX_HEADER_NAME_BYTES:
                raise Invalid("headers")
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise Invalid("headers") from None
    return headers or None


def _check_int(value) -> int | None:
    if value is None:
        return None
    if type(value) is not int or not 0 <= value <= INT64_MAX:
        raise Invalid("integer")
    return value


def parse_produce(payload, max_records: int):
    """Parse a produce body into ``(records, partitions)``: a list of record tuples
    ``(key, value, headers, timestamp)`` (the fields of :class:`NewRecord`) and, in the
    same order, the explicit partition of each (None = let the partitioner choose).
    Raises :class:`Invalid` on any problem (all or nothing)."""
    if type(payload) is not dict or not PRODUCE_FIELDS.issuperset(payload):
        raise Invalid("body")
    encoding = payload.get("encoding", "base64")
    decode = DECODERS.get(encoding) if type(encoding) is str else None
    items = payload.get("records")
    if decode is None or type(items) is not list or not 0 < len(items) <= max_records:
        raise Invalid("body")
    if decode is decode_base64:
        fast = _base64_values_only(items)
        if fast is not None:
            return fast, [None] * len(fast)
    records, partitions = [], []
    add_record, add_partition = records.append, partitions.append
    for item in items:
        if type(item) is not dict:
            raise Invalid("record")
        if len(item) == 1:  # the common case: a value alone
            value = item.get("value", _MISSING)
            if value is _MISSING:
                raise Invalid("record")
            add_record((None, decode(value), None, None))
            add_partition(None)
            continue
        if "value" not in item or not RECORD_FIELDS.issuperset(item):
            raise Invalid("record")
        get = item.get
        key, headers, ts, partition = get("key"), get("headers"), get("timestamp"), get("partition")
        if headers is not None:
            headers = _check_headers(headers)
        if ts is not None:
            _check_int(ts)
        if partition is not None:
            _check_int(partition)
        add_record((None if key is None else decode(key), decode(item["value"]), headers, ts))
        add_partition(partition)
    return records, partitions


_MISSING = object()
_A2B = binascii.a2b_base64


def _base64_values_only(items: list):
    """The common produce -- every record a base64 value alone -- in two list passes
    instead of a step per record; None when the body is anything else (or has a problem:
    the general loop then says which)."""
    try:
        values = [item["value"] for item in items if type(item) is dict and len(item) == 1]
        if len(values) != len(items):
            return None
        return [(None, None if v is None else _A2B(v, strict_mode=True), None, None)
                for v in values]
    except (KeyError, TypeError, ValueError, binascii.Error):
        return None
