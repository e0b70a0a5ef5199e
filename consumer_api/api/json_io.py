"""JSON in and out: the orjson provider behind Flask's JSON API, and request parsing.

orjson serialises responses (hundreds of records per consume response). One exception to orjson on input: it reads integers beyond 64 bits
as floats, which would silently change a record value sent with ``"encoding": "json"``, so
such a body holding a run of 20+ digits is parsed with the standard library instead (in
any other body a huge integer is refused by the schemas either way).

``json_body(schema)`` / ``query_args(schema)`` validate with a marshmallow schema and turn
every failure (malformed JSON, schema violation) into ``InvalidRequest`` with ``details``
naming the fields; a body that is not ``application/json``, or in a ``Content-Encoding``
other than gzip and zstd, is ``UnsupportedMediaType`` (415). A compressed body is
decompressed within ``max_body_bytes`` (:mod:`consumer_api.api.content_coding`).

Record responses (:func:`delivery_tracked_json_response`) are compressed when the client
asks for it in ``Accept-Encoding`` and the body is at least :data:`MIN_COMPRESS_BYTES`.
"""
from __future__ import annotations

import json

import orjson
from flask import current_app, request
from flask.json.provider import JSONProvider
from marshmallow import Schema, ValidationError

from consumer_api.api import content_coding
from consumer_api.api.state import state
from consumer_api.errors import InvalidRequest, Unavailable, UnsupportedMediaType

_DIGITS_TO_ZERO = bytes(48 if 48 <= i <= 57 else 32 for i in range(256))
_TWENTY_ZEROS = b"0" * 20
_DUMP_OPTS = orjson.OPT_NON_STR_KEYS
#: smaller record responses go uncompressed (the saving would not pay for the work)
MIN_COMPRESS_BYTES = 1024
JSON_ONLY = {"accepted_media_types": ["application/json"]}


def _default(obj):
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def loads(data):
    if isinstance(data, str):
        data = data.encode()
    if b'"json"' in data and _long_digit_run(data):
        return json.loads(data, parse_constant=_not_json)
    return orjson.loads(data)


def _long_digit_run(data: bytes) -> bool:
    """Whether ``data`` holds 20 digits in a row (an integer orjson would turn into a
    float). ``bytes.translate`` + ``find`` run in C, unlike a regex search."""
    return data.translate(_DIGITS_TO_ZERO).find(_TWENTY_ZEROS) >= 0


def _not_json(name: str):
    raise ValueError(f"{name} is not JSON")


def dumps(obj) -> bytes:
    return orjson.dumps(obj, default=_default, option=_DUMP_OPTS)


class OrjsonProvider(JSONProvider):
    mimetype = "application/json"

    def dumps(self, obj, **kwargs) -> str:
        return dumps(obj).decode()

    def loads(self, s, **kwargs):
        return loads(s)

    def response(self, *args, **kwargs):
        obj = self._prepare_response_obj(args, kwargs)
        return self._app.response_class(dumps(obj), mimetype=self.mimetype)


def delivery_tracked_json_response(body, delivered, undelivered):
    """A 200 response whose JSON body was serialised already (``body``: bytes, or a list
    of bytes chunks: the record responses), and then exactly one of ``delivered()`` --
    the server wrote the whole body to the connection -- or ``undelivered()`` -- it did
    not (the client went away, the write failed or timed out, or the response could not
    be built). Both run after the request, outside its context, except an
    ``undelivered()`` for a response that could not be built. Content-Length is set, so
    the response is not chunked.

    The body is compressed in the coding the request's ``Accept-Encoding`` prefers
    (``Content-Encoding`` says which) when it has at least MIN_COMPRESS_BYTES;
    ``Vary: Accept-Encoding`` is set either way."""
    try:
        chunks, coding = _encoded([body] if isinstance(body, bytes) else body)
    except BaseException:
        undelivered()
        raise
    tracked = TrackedBody(chunks, delivered, undelivered)
    resp = current_app.response_class(tracked, mimetype="application/json",
                                      direct_passthrough=True)
    resp.headers["Content-Length"] = str(sum(len(c) for c in chunks))
    resp.headers["Vary"] = "Accept-Encoding"
    if coding is not None:
        resp.headers["Content-Encoding"] = coding
    return resp


def _encoded(chunks: list) -> tuple:
    """``(chunks, coding)``: the body in the coding the client prefers, or as it is
    (coding None) when it asked for none or the body is small."""
    coding = content_coding.response_coding(request.headers.get("Accept-Encoding"))
    if coding is None or sum(len(c) for c in chunks) < MIN_COMPRESS_BYTES:
        return chunks, None
    return [content_coding.compress(chunks, coding)], coding


class TrackedBody:
    """A WSGI body that learns whether it was delivered, with any server:

    * a server that makes bodies whole before sending (``consumer_api.server``) takes
      ``chunks`` (setting it to None: they are its now) and calls ``settle(delivered)``
      once it knows, then ``close()``;
    * any other WSGI server iterates it: asking for the item after the last means every
      item was written (delivered); ``close()`` without that means it was not.
    """

    def __init__(self, chunks: list, delivered, undelivered):
        self.chunks = chunks
        self._callbacks = (delivered, undelivered)
        self._next = 0

    def __iter__(self):
        return self

    def __next__(self) -> bytes:
        if self._next < len(self.chunks):
            self._next += 1
            return self.chunks[self._next - 1]
        self.settle(True)  # asked for more: the body was written
        raise StopIteration

    def close(self) -> None:
        self.settle(False)  # no-op when settled already

    def settle(self, delivered: bool) -> None:
        callbacks, self._callbacks = self._callbacks, None
        if callbacks is not None:
            callbacks[0 if delivered else 1]()


def raw_json_body(empty_ok: bool = False):
    """The parsed JSON body, decompressed first when it came compressed. An empty body is
    ``{}`` when ``empty_ok``."""
    coding = content_coding.request_coding(request.headers.get("Content-Encoding"))
    data = _decoded(request.get_data(cache=False), coding)
    try:
        return _parse(data, empty_ok)
    finally:
        if coding is not None:
            state().request_budget.give(len(data))


def _decoded(data: bytes, coding: str | None):
    """``data`` decompressed, charged to the request budget (503 when it is spent: a
    ``request_budget`` refusal, see api/errors.py)."""
    app_state = state()
    try:
        return content_coding.decode(data, coding, app_state.config.max_body_bytes,
                                     app_state.request_budget)
    except content_coding.NoRoom:
        raise Unavailable("the server holds as many request bodies as it may; retry shortly",
                          {"reason": "request_budget"}) from None


def _parse(data, empty_ok: bool):
    if not data.strip():
        if empty_ok:
            return {}
        raise InvalidRequest("the request needs a JSON body", {"body": ["Missing data."]})
    if request.mimetype != "application/json":
        given = request.mimetype or "empty"
        raise UnsupportedMediaType(
            f"the request body must be JSON (Content-Type: application/json), not {given!r}",
            {"content_type": given[:100], **JSON_ONLY})
    try:
        return loads(data)
    except ValueError as exc:
        raise InvalidRequest(f"malformed JSON: {exc}", {"body": [f"Malformed JSON: {exc}"]}) from None


def validate(schema: Schema, data, what: str = "request body"):
    try:
        return schema.load(data)
    except ValidationError as exc:
        details = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
        raise InvalidRequest(f"invalid {what}: " + summarize(details), details) from None


def json_body(schema: Schema, empty_ok: bool = False):
    return validate(schema, raw_json_body(empty_ok))


def query_args(schema: Schema):
    return validate(schema, request.args.to_dict(), "query string")


def summarize(details: dict, limit: int = 3) -> str:
    """A one-line human summary of marshmallow-style field errors."""
    parts = []
    for path, msg in _flatten(details):
        parts.append(f"{path}: {msg}")
        if len(parts) == limit:
            break
    more = len(list(_flatten(details))) - len(parts)
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def _flatten(details, prefix=""):
    if isinstance(details, dict):
        for key, value in details.items():
            yield from _flatten(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(details, list):
        for msg in details:
            if isinstance(msg, (dict, list)):
                yield from _flatten(msg, prefix)
            else:
                yield prefix or "body", msg
    else:
        yield prefix or "body", details
