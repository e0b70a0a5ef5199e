"""Records on the wire in base64 (the default encoding, and the consume hot path): the JSON
objects of one partition's window of records, comma-separated, as bytes.

Two ways, the first whenever it can:

* :func:`_columns_json`, for a window of records without headers or null values whose
  keys are all null or all present (what producers usually send): the window is taken
  apart into columns once (one ``zip``), each column becomes its JSON pieces in bulk (the
  offsets' digits by one ``str`` of them all, each run of equal timestamps one shared
  piece, keys and values one base64 call each) and the pieces are joined once -- no
  formatting step per record.
* :func:`_template_json`, for any window: each record formatted into a per-partition
  template, headers through orjson.

Both give exactly the bytes of each other, and the same JSON as the reference
(:func:`consumer_api.api.records_wire.render_records` through orjson;
``tests/api/test_records_json.py``). Base64 text and integers need no escaping; the topic
name and headers go through orjson.
"""
from __future__ import annotations

import binascii
from itertools import groupby

import orjson

_b2a = binascii.b2a_base64
_TAIL = b'","headers":{}}'
#: a window with more timestamp runs than this share of its records is formatted per record
_MAX_RUN_SHARE = 0.25


def window_json(topic: str, partition: int, records) -> bytes:
    """The base64 API form of ``records`` (``(offset, timestamp, key, value, headers)``
    tuples, non-empty) of one partition: their JSON objects, comma-separated."""
    head = b'{"topic":%s,"partition":%d,"offset":' % (orjson.dumps(topic), partition)
    return _columns_json(head, records) or _template_json(head, records)


def _columns_json(head: bytes, records) -> bytes | None:
    """The window built a column at a time, or None when it is not one this way takes."""
    offsets, stamps, keys, values, headers = zip(*records)
    n = len(offsets)
    if headers.count(None) != n or None in values:
        return None
    keyless = keys.count(None) == n
    if not keyless and None in keys:
        return None
    after_ts = b',"key":null,"value":"' if keyless else b',"key":"'
    ts_pieces = _run_pieces(stamps, after_ts)
    if ts_pieces is None:
        return None
    step = 4 if keyless else 6
    pieces = [_TAIL + b"," + head] * (step * n)
    pieces[0::step] = str(offsets)[1:-1].replace(",", "").encode().split(b" ")
    pieces[1::step] = ts_pieces
    if not keyless:
        pieces[2::step] = [_b2a(k, newline=False) for k in keys]
        pieces[3::step] = [b'","value":"'] * n
    pieces[step - 2::step] = [_b2a(v, newline=False) for v in values]
    pieces[-1] = _TAIL
    return head + b"".join(pieces)


def _run_pieces(stamps: tuple, after: bytes) -> list | None:
    """``,"timestamp":<ts>`` + ``after`` for each record, one shared piece per run of
    equal timestamps; None when the runs are too many for this to pay."""
    runs = [(ts, len(list(run))) for ts, run in groupby(stamps)]
    if len(runs) > 1 and len(runs) > _MAX_RUN_SHARE * len(stamps):
        return None
    pieces: list = []
    for ts, count in runs:
        pieces += [b',"timestamp":%d%s' % (ts, after)] * count
    return pieces


def _template_json(head: bytes, records) -> bytes:
    """The window formatted a record at a time."""
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
