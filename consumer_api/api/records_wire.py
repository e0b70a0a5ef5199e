"""Records on the wire: from stored records to the JSON of read and consume responses.

Keys and values are written in the requested encoding (:mod:`consumer_api.api.encodings`). A record whose key or value cannot be shown in
the requested encoding (bytes that are not UTF-8 for ``text``, not JSON for ``json``, and
the stored text ``null`` under ``json``) comes back with both in base64 and
``"encoding": "base64"`` on that record, so no byte is lost or altered and one odd record
never blocks a consumer.

Two paths, side by side: :func:`render_records` here (the reference: a dict per record for
orjson, and the path of ``text`` and ``json``) and, for ``base64`` (the default and the
consume hot path), :mod:`consumer_api.api.records_wire_base64`, which builds the JSON
bytes without a dict per record. Both give the same JSON (``tests/api/test_records_json.py``).
"""
from __future__ import annotations

import orjson

from consumer_api.api import records_wire_base64
from consumer_api.api.encodings import ENCODERS, encode_base64
from consumer_api.records import NO_HEADERS


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
            b64 = encode_base64
            rec["key"], rec["value"], rec["encoding"] = b64(key), b64(value), "base64"
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

    For base64 (the default, and the consume hot path) the bytes are built without a dict
    per record (:mod:`consumer_api.api.records_wire_base64`).
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
        return records_wire_base64.window_json(topic, partition, records)
    out: list = []
    render_records(topic, partition, records, encoding, out)
    return orjson.dumps(out)[1:-1]
