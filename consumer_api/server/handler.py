"""One request through the WSGI application, into an :class:`Outgoing` response.

The application's body is made whole before anything is sent, on the request's thread, so
that sending needs no thread: a body that offers ``chunks`` (a list of bytes) hands them
over (its ``chunks`` becomes None, so each is freed once sent); any other is iterated and
closed at once. A body that offers ``settle(delivered)``
is told, once its bytes have all reached the kernel (True) or the connection failed or timed
out first (False), and closed then. An application that fails gets a ``500`` envelope.
"""
from __future__ import annotations

import logging

from consumer_api.server import responses

log = logging.getLogger(__name__)
_NO_BODY = ("204", "304")


class Outgoing:
    """A response to send: ``buffers`` (the head, then the body's chunks), its ``size`` in
    bytes, and the body's ``settle``/``close`` (None when already done)."""

    __slots__ = ("buffers", "size", "_settle", "_close")

    def __init__(self, buffers: list, settle=None, close=None):
        self.buffers = buffers
        self.size = sum(len(b) for b in buffers)
        self._settle, self._close = settle, close

    def done(self, delivered: bool) -> None:
        """Tell the body how it ended (idempotent; never raises)."""
        settle, close, self._settle, self._close = self._settle, self._close, None, None
        try:
            if settle is not None:
                settle(delivered)
        except Exception:
            log.exception("settling a response failed")
        finally:
            _close_quietly(close)


def error(status: int, code: str, message: str, details: dict | None = None,
          headers: tuple = (), keep_alive: bool = False) -> Outgoing:
    return Outgoing([responses.error_response(status, code, message, details, headers,
                                              keep_alive)])


def call(app, environ: dict, keep_alive: bool) -> Outgoing:
    """Run ``app`` for ``environ``; ``keep_alive`` says whether the connection stays open."""
    started: list = []
    written: list = []

    def start_response(status, headers, exc_info=None):
        started[:] = [status, headers]  # nothing is sent before the app returns: replace
        return written.append

    body = None
    try:
        body = app(environ, start_response)
        chunks = getattr(body, "chunks", None)
        if chunks is None:
            chunks = [c for c in body if c]
        else:
            body.chunks = None  # handed over: each chunk is dropped once it is sent
        if not started:
            raise RuntimeError("the application returned without calling start_response")
        if written:
            chunks = written + list(chunks)
        if not all(isinstance(c, (bytes, bytearray, memoryview)) for c in chunks):
            raise TypeError("a WSGI body must be bytes chunks")
        status, headers = started
        if (environ["REQUEST_METHOD"] == "HEAD" or status[:3] in _NO_BODY
                or status[0] == "1"):
            buffers = [responses.head(status, headers, keep_alive, None)]
        else:
            length = sum(len(c) for c in chunks)
            buffers = [responses.head(status, headers, keep_alive, length), *chunks]
    except Exception:
        _close_quietly(getattr(body, "close", None))
        log.exception("the application failed on %s %s", environ.get("REQUEST_METHOD"),
                      environ.get("PATH_INFO"))
        return error(500, "internal_error", "internal error; the server log has the details",
                     keep_alive=keep_alive)
    settle = getattr(body, "settle", None)
    close = getattr(body, "close", None)
    if settle is None:
        _close_quietly(close)
        close = None
    return Outgoing(buffers, settle, close)


def _close_quietly(close) -> None:
    if close is None:
        return
    try:
        close()
    except Exception:
        log.exception("closing a response body failed")
