"""Records on the wire in base64 (the default encoding, and the consume hot path): the JSON
objects of one partition's window of records, comma-separated, as bytes.

Each record is formatted straight into bytes from a per-partition template (one ``%`` and
one base64 call per record, no dict); headers go through orjson. Base64 text and integers
need no escaping. The result is the JSON of the reference
(:func:`consumer_api.api.records_wire.render_records` through orjson;
``tests/api/test_records_json.py``).
"""
from __future__ import annotations

import binascii

import orjson

_b2a = binascii.b2a_base64


def window_json(topic: str, partition: int, records) -> bytes:
    """The base64 API form of ``records`` (``(offset, timestamp, key, value, headers)``
    tuples) of one partition: their JSON objects, comma-separated."""
    head = b'{"topic":%s,"partition":%d,"offset":' % (orjson.dumps(topic), partition)
    plain = head + b'%d,"timestamp":%d,"key":null,"value":"%s","headers":{}}'
    keyed = head + b'%d,"timestamp":%d,"key":"%s","value":"%s","headers":{}}'
    full = head + b'%d,"timestamp":%d,"key":%s,"value":%s,"headers":%s}'
    parts: list = []
    add = parts.append
    for offset, ts, key, value, headers in records:
        if headers is None and value is not None:
            if key is None:
                add(plain % (offset, ts, _b2a(value, newline=False)))
            else:
                add(keyed % (offset, ts, _b2a(key, newline=False), _b2a(value, newline=False)))
        else:
            add(full % (offset, ts, _b64_json(key), _b64_json(value),
                        orjson.dumps(headers) if headers else b"{}"))
    return b",".join(parts)


def _b64_json(data) -> bytes:
    return b"null" if data is None else b'"' + _b2a(data, newline=False) + b'"'
