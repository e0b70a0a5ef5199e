"""Record keys and values on the wire, both ways, one batch per call.

Encodings (API.md, "Bytes on the wire"):

* ``base64`` (default): a string of standard, padded base64; anything else is an error,
  never silently decoded.
* ``text``: a string, stored as its UTF-8 bytes.
* ``json``: any JSON value, stored as its compact UTF-8 serialisation. JSON ``null`` is a
  null record value (a tombstone), not the four bytes ``null`` (and stored bytes ``null``,
  produced in another encoding, read back in base64 under ``json``).

``null`` is a null key or value in every encoding.

Reading back: a record whose key or value cannot be shown in the requested encoding (bytes
that are not UTF-8 for ``text``, not JSON for ``json``) comes back with both in base64 and
``"encoding": "base64"`` on that record, so no byte is lost or altered and one odd record
never blocks a consumer.

Produce requests are parsed by :func:`parse_produce` in one pass over the records (the fast
path); the marshmallow schema (``schemas.records.ProduceRequestSchema``, the reference path)
costs too much per record for the hot path. The one-pass parser applies the same rules; when
it finds any problem the request is re-validated by the schema, which stays the validator of
record and produces the error details (``tests/api/test_codec.py`` checks that the two agree).
"""
from __future__ import annotations

import binascii
import json

import orjson

from consumer_api.api.schemas.common import INT64_MAX
from consumer_api.records import NO_HEADERS

RECORD_FIELDS = frozenset(("key", "value", "partition", "headers", "timestamp"))
PRODUCE_FIELDS = frozenset(("records", "encoding"))
MAX_HEADER_NAME_BYTES = 0xFFFF


class Invalid(ValueError):
    """The fast parser found a problem; re-validate with the schema for the details."""


# -- wire -> bytes --------------------------------------------------------------------------

def decode_base64(value) -> bytes | None:
    if value is None:
        return None
    if type(value) is not str:
        raise Invalid("not a base64 string")
    try:
        return binascii.a2b_base64(value, strict_mode=True)
    except (binascii.Error, ValueError):
        raise Invalid("not valid base64") from None


def decode_text(value) -> bytes | None:
    if value is None:
        return None
    if type(value) is not str:
        raise Invalid("not a string")
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError:
        raise Invalid("not encodable as UTF-8") from None


def decode_json(value) -> bytes | None:
    if value is None:
        return None
    try:
        return orjson.dumps(value)
    except TypeError:  # integers beyond 64 bits, lone surrogates, nesting deeper than 255
        pass
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise Invalid("not encodable as UTF-8") from None
    except RecursionError:
        raise Invalid("nested too deeply") from None


DECODERS = {"base64": decode_base64, "text": decode_text, "json": decode_json}


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


# -- bytes -> wire --------------------------------------------------------------------------

def _b64(data):
    return None if data is None else binascii.b2a_base64(data, newline=False).decode("ascii")


def _text(data):
    return None if data is None else data.decode("utf-8")


def _json(data):
    """Stored JSON goes out verbatim (an ``orjson.Fragment``), after a parse that proves it
    is JSON: no float rounding of big integers, no re-serialisation. The stored text
    ``null`` cannot be told from a null value in this encoding, so it goes out in base64
    (ValueError: the caller's fallback)."""
    if data is None:
        return None
    if orjson.loads(data) is None:
        raise ValueError("the JSON text null is shown in base64")
    return orjson.Fragment(data)


ENCODERS = {"base64": _b64, "text": _text, "json": _json}


def render_records(topic: str, partition: int, records, encoding: str, out: list) -> None:
    """Append the API form of ``records`` (``(offset, timestamp, key, value, headers)``
    tuples) to ``out``. (Responses in base64 are written by :func:`records_json`'s
    faster path; this is its reference and the path of the other encodings.)"""
    add = out.append
    encode = ENCODERS[encoding]
    for offset, ts, key, value, headers in records:
        rec = {"topic": topic, "partition": partition, "offset": offset, "timestamp": ts,
               "headers": headers or NO_HEADERS}
        try:
            rec["key"], rec["value"] = encode(key), encode(value)
        except ValueError:  # UnicodeDecodeError and orjson.JSONDecodeError are ValueErrors
            rec["key"], rec["value"], rec["encoding"] = _b64(key), _b64(value), "base64"
        add(rec)


def records_json(chunks, encoding: str) -> bytes:
    """The JSON array of the API form of ``chunks`` (``(topic, partition, records)``), as
    bytes: :func:`records_json_pieces` joined (``chunks`` is left as it was)."""
    return b"".join(records_json_pieces([(t, p, list(r)) for t, p, r in chunks], encoding))


#: about how many bytes of record keys and values one piece of a response encodes
PIECE_BYTES = 256 * 1024


def records_json_pieces(chunks, encoding: str) -> list:
    """The JSON array of the API form of ``chunks`` (``(topic, partition, records)``), as a
    list of bytes pieces to send one after the other -- exactly ``orjson.dumps`` of
    :func:`render_records`' output once joined. **Empties the records lists** as it goes:
    a window of records (about :data:`PIECE_BYTES` of keys and values) is encoded, then
    dropped, so a large response never holds its records and their JSON whole at once.

    For base64 (the default, and the consume hot path) each record is formatted straight
    into bytes from a per-partition template, skipping the dict per record. Base64 text and integers need no escaping;
    the topic name and headers go through orjson.
    """
    out = [b"["]
    for topic, partition, records in chunks:
        step = _window(records)
        while records:
            window = records[:step]
            del records[:step]
            if len(out) > 1:
                out.append(b",")
            out.append(window_json(topic, partition, window, encoding))
    out.append(b"]")
    return out


def _window(records) -> int:
    """Records per piece, judged by the first record's size."""
    if not records:
        return 1
    first = records[0]
    size = 64 + len(first[2] or b"") + len(first[3] or b"")
    return max(1, min(4096, PIECE_BYTES // size))


def window_json(topic: str, partition: int, records, encoding: str) -> bytes:
    """The API form of ``records`` of one partition: their JSON objects, comma-separated
    (no brackets)."""
    if encoding == "base64":
        parts: list = []
        _base64_records(topic, partition, records, parts)
        return b",".join(parts)
    out: list = []
    render_records(topic, partition, records, encoding, out)
    return orjson.dumps(out)[1:-1]


def _base64_records(topic: str, partition: int, records, parts: list) -> None:
    head = b'{"topic":%s,"partition":%d,"offset":' % (orjson.dumps(topic), partition)
    plain = head + b'%d,"timestamp":%d,"key":null,"value":"%s","headers":{}}'
    keyed = head + b'%d,"timestamp":%d,"key":"%s","value":"%s","headers":{}}'
    full = head + b'%d,"timestamp":%d,"key":%s,"value":%s,"headers":%s}'
    b64 = binascii.b2a_base64
    add = parts.append
    for offset, ts, key, value, headers in records:
        if headers is None and value is not None:
            if key is None:
                add(plain % (offset, ts, b64(value, newline=False)))
            else:
                add(keyed % (offset, ts, b64(key, newline=False), b64(value, newline=False)))
        else:
            add(full % (offset, ts, _b64_json(key), _b64_json(value),
                        orjson.dumps(headers) if headers else b"{}"))


def _b64_json(data) -> bytes:
    return b"null" if data is None else b'"' + binascii.b2a_base64(data, newline=False) + b'"'
