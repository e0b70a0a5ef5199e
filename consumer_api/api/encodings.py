"""One key or value on the wire, in each encoding: wire -> bytes (:data:`DECODERS`) and
bytes -> wire (:data:`ENCODERS`).

* ``base64`` (default): a string of standard, padded base64; anything else is an error,
  never silently decoded.
* ``text``: a string, stored as its UTF-8 bytes.
* ``json``: any JSON value, stored as its compact UTF-8 serialisation; read back verbatim.

``null`` is a null key or value in every encoding. A decoder raises :class:`Invalid` for a
value it cannot take; an encoder raises ValueError for bytes it cannot show (the caller
falls back to base64).
"""
from __future__ import annotations

import binascii
import json

import orjson

#: the longest header name, in UTF-8 bytes (the storage format's limit)
MAX_HEADER_NAME_BYTES = 0xFFFF


class Invalid(ValueError):
    """A value (or a produce body) the fast path cannot take: the reference path says why."""


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


def encode_base64(data):
    return None if data is None else binascii.b2a_base64(data, newline=False).decode("ascii")


def encode_text(data):
    return None if data is None else data.decode("utf-8")


def encode_json(data):
    """Stored JSON goes out verbatim (an ``orjson.Fragment``), after a parse that proves it
    is JSON: no float rounding of big integers, no re-serialisation. The stored text
    ``null`` cannot be told from a null value in this encoding, so it goes out in base64
    (ValueError: the caller's fallback)."""
    if data is None:
        return None
    if orjson.loads(data) is None:
        raise ValueError("the JSON text null is shown in base64")
    return orjson.Fragment(data)


ENCODERS = {"base64": encode_base64, "text": encode_text, "json": encode_json}
