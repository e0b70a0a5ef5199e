"""Calling the WSGI application into a response (consumer_api.server.handler): the head
(Content-Length is the body's, Connection follows keep-alive, the server's own headers
replace the application's), bodies with no content (HEAD, 204, 304), a body that hands over
its ``chunks`` and is settled once when the response ends (``Outgoing.done``), a plain
iterable body (iterated and closed at once), ``write()``, a failing application (a 500
envelope), and ``error()``'s envelopes."""
from __future__ import annotations

import json
import logging
import sys

import pytest

from consumer_api.api.json_io import TrackedBody
from consumer_api.server import handler


def environ(method: str = "GET", path: str = "/") -> dict:
    return {"REQUEST_METHOD": method, "PATH_INFO": path}


def parse(outgoing: handler.Outgoing) -> tuple:
    """(status line, [(name, value)], body) of a whole response; checks ``size``."""
    data = b"".join(outgoing.buffers)
    assert outgoing.size == len(data)
    head, sep, body = data.partition(b"\r\n\r\n")
    assert sep, "the head does not end"
    status, *lines = head.decode("latin-1").split("\r\n")
    return status, [tuple(line.split(": ", 1)) for line in lines], body


def values(headers: list, name: str) -> list:
    return [v for n, v in headers if n.lower() == name.lower()]


def app_of(status="200 OK", headers=(), body=(b"hello",), write=()):
    def app(env, start_response):
        w = start_response(status, list(headers))
        for piece in write:
            w(piece)
        return body
    return app


class Body:
    """A response body that records what is done to it: a plain iterable, or (with
    ``chunks``) one that hands its chunks over; ``settle`` only when ``settles``."""

    def __init__(self, items=(), chunks=None, settles=False, settle_raises=False,
                 close_raises=False, iter_raises=False):
        self.items, self.chunks, self.events = list(items), chunks, []
        self._settle_raises, self._close_raises = settle_raises, close_raises
        self._iter_raises = iter_raises
        if settles:
            self.settle = self._settle

    def __iter__(self):
        self.events.append("iter")
        for item in self.items:
            yield item
        if self._iter_raises:
            raise RuntimeError("the body broke")

    def _settle(self, delivered):
        self.events.append(("settle", delivered))
        if self._settle_raises:
            raise RuntimeError("settle broke")

    def close(self):
        self.events.append("close")
        if self._close_raises:
            raise RuntimeError("close broke")


# -- the head -------------------------------------------------------------------------------

def test_plain_response():
    status, headers, body = parse(handler.call(
        app_of(headers=[("Content-Type", "text/plain")], body=[b"hel", b"", b"lo"]),
        environ(), keep_alive=True))
    assert status == "HTTP/1.1 200 OK"
    assert body == b"hello"
    assert values(headers, "Content-Type") == ["text/plain"]
    assert values(headers, "Content-Length") == ["5"]
    assert values(headers, "Connection") == ["keep-alive"]
    assert len(values(headers, "Date")) == 1


def test_connection_close_when_not_kept_alive():
    _, headers, _ = parse(handler.call(app_of(), environ(), keep_alive=False))
    assert values(headers, "Connection") == ["close"]


def test_content_length_is_the_bodys_whatever_the_app_says():
    app = app_of(headers=[("Content-Length", "999"), ("Transfer-Encoding", "chunked"),
                          ("Connection", "keep-alive"), ("Date", "yesterday"),
                          ("Keep-Alive", "timeout=99"), ("X-Mine", "kept")],
                 body=[b"hello", b" world"])
    _, headers, body = parse(handler.call(app, environ(), keep_alive=False))
    assert body == b"hello world"
    assert values(headers, "Content-Length") == ["11"]
    assert values(headers, "Transfer-Encoding") == []
    assert values(headers, "Keep-Alive") == []
    assert values(headers, "Connection") == ["close"]
    assert values(headers, "Date") != ["yesterday"] and len(values(headers, "Date")) == 1
    assert values(headers, "X-Mine") == ["kept"]


def test_empty_body_has_content_length_zero():
    _, headers, body = parse(handler.call(app_of(body=[]), environ(), keep_alive=True))
    assert body == b"" and values(headers, "Content-Length") == ["0"]


def test_head_keeps_the_apps_content_length_and_sends_no_body():
    body = Body([b"hello"])
    app = app_of(headers=[("Content-Length", "5"), ("Content-Type", "text/plain")], body=body)
    _, headers, sent = parse(handler.call(app, environ("HEAD"), keep_alive=True))
    assert sent == b""
    assert values(headers, "Content-Length") == ["5"]
    assert "close" in body.events  # a plain body is closed whether it was sent or not


def test_head_without_a_content_length_gets_none():
    _, headers, sent = parse(handler.call(app_of(body=[b"hello"]), environ("HEAD"), True))
    assert sent == b"" and values(headers, "Content-Length") == []


@pytest.mark.parametrize("status", ["204 No Content", "304 Not Modified"])
def test_no_body_statuses(status):
    _, headers, sent = parse(handler.call(app_of(status, body=[b"ignored"]), environ(), True))
    assert sent == b""
    assert values(headers, "Connection") == ["keep-alive"]


def test_status_is_the_apps():
    status, _, _ = parse(handler.call(app_of("418 I'm a teapot"), environ(), True))
    assert status == "HTTP/1.1 418 I'm a teapot"


# -- bodies ---------------------------------------------------------------------------------

def test_plain_iterable_is_iterated_and_closed_at_once():
    body = Body([b"a", b"b"])
    outgoing = handler.call(app_of(body=body), environ(), True)
    assert body.events == ["iter", "close"]
    assert parse(outgoing)[2] == b"ab"
    outgoing.done(True)
    outgoing.done(False)
    assert body.events == ["iter", "close"]  # nothing more to tell it


def test_generator_body():
    def app(env, start_response):
        start_response("200 OK", [])
        yield b"one,"
        yield b"two"
    assert parse(handler.call(app, environ(), True))[2] == b"one,two"


def test_chunks_are_handed_over_and_settled_when_done():
    chunks = [b'{"records":[', b"1,2", b"]}"]
    body = Body(chunks=list(chunks), settles=True)
    outgoing = handler.call(app_of(body=body), environ(), True)
    assert body.chunks is None  # the server holds them now
    assert "iter" not in body.events  # taken as they are, not iterated
    assert outgoing.buffers[1:] == chunks
    assert all(a is b for a, b in zip(outgoing.buffers[1:], chunks))  # not copied
    assert values(parse(outgoing)[1], "Content-Length") == [str(sum(map(len, chunks)))]
    assert body.events == []  # not settled, not closed: the response is not sent yet
    outgoing.done(True)
    assert body.events == [("settle", True), "close"]
    outgoing.done(True)
    outgoing.done(False)
    assert body.events == [("settle", True), "close"]


def test_undelivered_response_is_settled_false():
    body = Body(chunks=[b"x"], settles=True)
    outgoing = handler.call(app_of(body=body), environ(), True)
    outgoing.done(False)
    outgoing.done(True)
    assert body.events == [("settle", False), "close"]


def test_tracked_body_delivery_callbacks():
    calls = []
    body = TrackedBody([b"[1,", b"2]"], lambda: calls.append("delivered"),
                       lambda: calls.append("undelivered"))
    outgoing = handler.call(app_of(body=body), environ(), True)
    assert body.chunks is None and calls == []
    assert parse(outgoing)[2] == b"[1,2]"
    outgoing.done(True)
    outgoing.done(False)
    assert calls == ["delivered"]


def test_tracked_body_not_delivered():
    calls = []
    body = TrackedBody([b"[]"], lambda: calls.append("delivered"),
                       lambda: calls.append("undelivered"))
    handler.call(app_of(body=body), environ(), True).done(False)
    assert calls == ["undelivered"]


def test_iterable_body_with_settle_is_closed_after_settling():
    body = Body([b"a"], settles=True)
    outgoing = handler.call(app_of(body=body), environ(), True)
    assert body.events == ["iter"]
    outgoing.done(True)
    assert body.events == ["iter", ("settle", True), "close"]


def test_done_never_raises(caplog):
    body = Body(chunks=[b"x"], settles=True, settle_raises=True, close_raises=True)
    outgoing = handler.call(app_of(body=body), environ(), True)
    with caplog.at_level(logging.ERROR, logger="consumer_api.server.handler"):
        outgoing.done(True)
        outgoing.done(True)
    assert body.events == [("settle", True), "close"]  # closed even though settle failed
    assert len(caplog.records) == 2  # both failures logged, once each


def test_head_of_a_chunks_body_is_still_settled_once():
    body = Body(chunks=[b"hello"], settles=True)
    outgoing = handler.call(app_of(headers=[("Content-Length", "5")], body=body),
                            environ("HEAD"), True)
    assert parse(outgoing)[2] == b""
    assert body.events == []
    outgoing.done(True)
    outgoing.done(True)
    assert [e for e in body.events if e != "close"] in ([("settle", True)],
                                                        [("settle", False)])
    assert body.events[-1] == "close"


def test_write_callable_is_honoured():
    app = app_of(body=[b"cd", b"e"], write=[b"a", b"b"])
    _, headers, body = parse(handler.call(app, environ(), True))
    assert body == b"abcde"
    assert values(headers, "Content-Length") == ["5"]


def test_write_only_app():
    _, headers, body = parse(handler.call(app_of(body=[], write=[b"all", b" here"]),
                                          environ(), True))
    assert body == b"all here" and values(headers, "Content-Length") == ["8"]


def test_start_response_with_exc_info_before_any_output_replaces_the_head():
    # PEP 3333: with exc_info and nothing sent yet (here nothing is sent before the app
    # returns, unless it called write()), start_response replaces the stored head
    def app(env, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            raise ValueError("changed its mind")
        except ValueError:
            start_response("503 Service Unavailable", [("Retry-After", "1")], sys.exc_info())
        return [b"busy"]
    status, headers, body = parse(handler.call(app, environ(), True))
    assert status == "HTTP/1.1 503 Service Unavailable"
    assert values(headers, "Retry-After") == ["1"]
    assert body == b"busy"


# -- a failing application ------------------------------------------------------------------

def assert_internal_error(outgoing: handler.Outgoing, keep_alive: bool) -> None:
    status, headers, body = parse(outgoing)
    assert status == "HTTP/1.1 500 Internal Server Error"
    assert values(headers, "Content-Type") == ["application/json"]
    assert values(headers, "Connection") == ["keep-alive" if keep_alive else "close"]
    envelope = json.loads(body)
    assert envelope["code"] == "internal_error"
    assert set(envelope) == {"error", "code", "details"}


@pytest.mark.parametrize("keep_alive", [True, False])
def test_app_that_raises(keep_alive, caplog):
    def app(env, start_response):
        raise KeyError("boom")
    with caplog.at_level(logging.ERROR, logger="consumer_api.server.handler"):
        outgoing = handler.call(app, environ("POST", "/x"), keep_alive)
    assert_internal_error(outgoing, keep_alive)
    assert b"boom" not in b"".join(outgoing.buffers)
    (record,) = caplog.records
    assert "POST /x" in record.getMessage()
    assert record.exc_info[0] is KeyError  # the traceback is in the log, not the response


def test_app_that_raises_after_start_response():
    def app(env, start_response):
        start_response("200 OK", [])
        raise KeyError("boom")
    assert_internal_error(handler.call(app, environ(), True), True)


def test_body_that_raises_while_iterated_is_closed():
    body = Body([b"partial"], iter_raises=True)
    outgoing = handler.call(app_of(body=body), environ(), True)
    assert_internal_error(outgoing, True)
    assert "partial" not in b"".join(outgoing.buffers).decode()
    assert body.events == ["iter", "close"]


def test_app_without_start_response_gets_500_and_its_body_closed():
    body = Body([b"x"])
    assert_internal_error(handler.call(lambda env, sr: body, environ(), True), True)
    assert body.events[-1] == "close"


def test_chunks_body_without_start_response_is_closed():
    body = Body(chunks=[b"x"], settles=True)
    outgoing = handler.call(lambda env, sr: body, environ(), True)
    assert_internal_error(outgoing, True)
    assert "close" in body.events
    outgoing.done(True)  # the 500 is not the body's: it is not told it was delivered
    assert ("settle", True) not in body.events


@pytest.mark.parametrize("app", [
    app_of(body=b"hello"),  # bytes, not an iterable of bytes
    app_of(body=["hello"]),  # str chunks
    app_of(headers=[("X-Price", "5 \u20ac")]),  # a header value that is not latin-1
], ids=["bytes body", "str chunks", "non-latin-1 header"])
def test_app_that_breaks_wsgi_gets_500(app):
    # PEP 3333 violations are the application failing: the client gets the 500 envelope
    # (not an exception out of call(), nor a response that cannot be sent)
    assert_internal_error(handler.call(app, environ(), True), True)


def test_close_that_raises_does_not_hide_the_500():
    body = Body([b"x"], iter_raises=True, close_raises=True)
    assert_internal_error(handler.call(app_of(body=body), environ(), True), True)


# -- error() --------------------------------------------------------------------------------

def test_error_envelope():
    outgoing = handler.error(413, "payload_too_large", "request body too large",
                             {"max_body_bytes": 10})
    status, headers, body = parse(outgoing)
    assert status.startswith("HTTP/1.1 413 ")
    assert json.loads(body) == {"error": "request body too large", "code": "payload_too_large",
                                "details": {"max_body_bytes": 10}}
    assert values(headers, "Content-Type") == ["application/json"]
    assert values(headers, "Content-Length") == [str(len(body))]
    assert values(headers, "Connection") == ["close"]
    assert len(values(headers, "Date")) == 1
    outgoing.done(True)  # nothing to settle
    outgoing.done(False)


def test_error_with_extra_headers_and_keep_alive():
    status, headers, body = parse(handler.error(503, "unavailable", "busy", None,
                                                (("Retry-After", "1"),), keep_alive=True))
    assert status == "HTTP/1.1 503 Service Unavailable"
    assert values(headers, "Retry-After") == ["1"]
    assert values(headers, "Connection") == ["keep-alive"]
    assert json.loads(body) == {"error": "busy", "code": "unavailable", "details": {}}


def test_error_with_a_status_without_a_phrase():
    status, _, _ = parse(handler.error(599, "odd", "odd"))
    assert status == "HTTP/1.1 599 Unknown"


def test_outgoing_size():
    assert handler.Outgoing([b"ab", b"", b"cde"]).size == 5
