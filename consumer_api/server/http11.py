"""HTTP/1.1 requests read from a byte stream a piece at a time (httptools, i.e. llhttp).

A :class:`RequestReader` belongs to one connection: ``feed(data)`` parses whatever arrived
and returns the requests it completed (a client may pipeline several). Anything that is not
an acceptable HTTP/1.1 request raises :class:`ProtocolError`, which carries the status and
code of the error envelope to answer with before closing the connection:

=====  =============================  ======================================================
400    ``invalid_request``            not HTTP (a bad request line, method, header, chunk
                                      size; Content-Length with Transfer-Encoding; ...)
413    ``payload_too_large``          a body over ``max_body_bytes`` (declared or chunked);
                                      nothing of it reaches the application
414    ``uri_too_long``               a request target over :data:`MAX_URL_BYTES`
417    ``expectation_failed``         an ``Expect`` other than ``100-continue``
431    ``header_fields_too_large``    a head over :data:`MAX_HEAD_BYTES` or
                                      :data:`MAX_HEADERS` fields
501    ``not_implemented``            a Transfer-Encoding other than ``chunked``
503    ``unavailable``                the server-wide budget for buffered bodies is spent
505    ``http_version_not_supported`` a version other than 1.0 and 1.1
=====  =============================  ======================================================

Body bytes are charged to a :class:`~consumer_api.budget.ByteBudget` as they arrive and
given back by :meth:`Request.release` (or :meth:`RequestReader.release` for a request
that never completed). Not thread-safe: only the connection's current owner calls it.
"""
from __future__ import annotations

import httptools

#: the longest request target (path and query) accepted, in bytes
MAX_URL_BYTES = 8 * 1024
#: the most bytes a request line and its headers may take (measured per piece read, so a
#: head may pass it by less than one read before it is refused)
MAX_HEAD_BYTES = 64 * 1024
#: the most header fields in one request
MAX_HEADERS = 100


class ProtocolError(Exception):
    """The peer sent something this server does not accept: answer ``status`` with the
    envelope (``code``, ``message``, ``details``) and close. ``reason`` is the refusal
    reason counted in /metrics (see :mod:`consumer_api.refusals`)."""

    def __init__(self, status: int, code: str, message: str, reason: str = "bad_request",
                 details: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.reason, self.details = reason, details or {}


def _bad(message: str) -> ProtocolError:
    return ProtocolError(400, "invalid_request", message)


class Request:
    """One complete request: ``method`` (str), ``target`` (bytes, as sent), ``version``
    ("1.0"/"1.1"), ``headers`` (list of (bytes, bytes) as sent), ``body`` (bytes, already
    de-chunked), ``keep_alive``; ``held`` body bytes are charged to the budget until
    :meth:`release`."""

    __slots__ = ("method", "target", "version", "headers", "body", "keep_alive", "_budget",
                 "held")

    def __init__(self, method, target, version, headers, body, keep_alive, budget, held):
        self.method, self.target, self.version = method, target, version
        self.headers, self.body, self.keep_alive = headers, body, keep_alive
        self._budget, self.held = budget, held

    def release(self) -> None:
        """Give the body's bytes back to the budget (idempotent)."""
        if self.held and self._budget is not None:
            self._budget.give(self.held)
        self.held = 0


class RequestReader:
    """Parses the requests of one connection. ``max_body_bytes`` caps a body; ``budget``
    (optional) is charged with body bytes as they arrive.

    State for the owner's deadlines: ``in_message`` (bytes of a request have arrived and it
    is not complete), ``head_complete`` (its head is complete, its body is not),
    ``continue_due`` (the head asked for ``100 Continue``: send it, then clear this).
    """

    def __init__(self, max_body_bytes: int, budget=None):
        self.max_body_bytes = max_body_bytes
        self._budget = budget
        self._parser = httptools.HttpRequestParser(self)
        self.in_message = False
        self.head_complete = False
        self.continue_due = False
        self.upgraded = False  # the peer asked to switch protocols
        self.ended = False  # no request follows (upgrade, Connection: close): bytes ignored
        self._trailer_possible = False  # between a chunk's size line and its data
        self._trailers = 0
        self._head_room = MAX_HEAD_BYTES
        self._done: list = []
        self._reset()

    def _reset(self) -> None:
        self._url: list = []
        self._url_bytes = 0
        self._headers: list = []
        self._body: list = []
        self._body_bytes = 0
        self._held = 0
        self._declared = None
        self._chunked = False
        self._trailers = 0
        self._trailer_possible = False
        self._head_room = MAX_HEAD_BYTES

    # -- feeding --------------------------------------------------------------------------

    def feed(self, data: bytes) -> list:
        """Parse ``data``; return the requests it completed (possibly none). On a
        ProtocolError the requests completed by this same feed are released, not served."""
        self._done = []
        try:
            self._feed(data)
        except ProtocolError:
            for request in self._done:
                request.release()
            self._done = []
            raise
        return self._done

    def _feed(self, data: bytes) -> None:
        """Where fields may come (a head; the trailer after the last chunk) bytes go in
        pieces of the room left, so a head or trailer that never ends is refused once it
        has taken MAX_HEAD_BYTES, never buffered without bound."""
        pos, size = 0, len(data)
        while pos < size and not self.ended:
            if self._in_fields():
                if self._head_room <= 0:
                    raise self._head_too_large()
                piece = data[pos:pos + self._head_room]
                self._head_room -= len(piece)
            else:
                piece = data[pos:] if pos else data
            self._parse(piece)
            pos += len(piece)
        if self.in_message and self._in_fields() and self._head_room <= 0:
            raise self._head_too_large()

    def _in_fields(self) -> bool:
        return not self.head_complete or self._trailer_possible

    def _parse(self, piece: bytes) -> None:
        try:
            self._parser.feed_data(piece)
        except httptools.HttpParserUpgrade:
            self.upgraded = self.ended = True  # served as a plain request, then closed
            if self._done:
                self._done[-1].keep_alive = False
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, ProtocolError):
                raise exc.__context__ from None
            raise
        except httptools.HttpParserInvalidMethodError:
            raise _bad("not an HTTP request: the method is not one of HTTP's (they are "
                       "upper case: GET, POST, ...)") from None
        except httptools.HttpParserError as exc:
            if str(exc).startswith("Pause on PRI"):  # the HTTP/2 connection preface
                raise ProtocolError(505, "http_version_not_supported",
                                    "HTTP/2 is not spoken here: use HTTP/1.1") from None
            if self._done and not self._done[-1].keep_alive:
                self.ended = True  # bytes after a request that closes: ignored (RFC 9112)
                return
            raise _bad(f"not a valid HTTP/1.1 request: {exc}") from None

    def _head_too_large(self) -> ProtocolError:
        if not self._headers and self._url_bytes >= MAX_URL_BYTES:
            return self._url_too_long()
        return ProtocolError(431, "header_fields_too_large",
                             f"the request line and headers take more than {MAX_HEAD_BYTES} "
                             "bytes", "headers_too_large", {"max_head_bytes": MAX_HEAD_BYTES})

    @staticmethod
    def _url_too_long() -> ProtocolError:
        return ProtocolError(414, "uri_too_long",
                             f"the request target is longer than {MAX_URL_BYTES} bytes",
                             "uri_too_long", {"max_url_bytes": MAX_URL_BYTES})

    def release(self) -> None:
        """Give back the budget held by a request that will never complete."""
        if self._held and self._budget is not None:
            self._budget.give(self._held)
        self._held = 0

    # -- httptools callbacks ------------------------------------------------------------

    def on_message_begin(self) -> None:
        self.in_message = True

    def on_url(self, piece: bytes) -> None:
        self._url_bytes += len(piece)
        if self._url_bytes > MAX_URL_BYTES:
            raise self._url_too_long()
        self._url.append(piece)

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.head_complete:  # a trailer field: counted, not kept
            self._trailers += 1
            if self._trailers > MAX_HEADERS:
                raise ProtocolError(431, "header_fields_too_large",
                                    f"more than {MAX_HEADERS} trailer fields",
                                    "headers_too_large", {"max_headers": MAX_HEADERS})
            return
        if len(self._headers) >= MAX_HEADERS:
            raise ProtocolError(431, "header_fields_too_large",
                                f"more than {MAX_HEADERS} header fields", "headers_too_large",
                                {"max_headers": MAX_HEADERS})
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        version = self._parser.get_http_version()
        if version not in ("1.1", "1.0"):
            raise ProtocolError(505, "http_version_not_supported",
                                f"HTTP/{version} is not supported: use HTTP/1.1")
        upgrade = connection_upgrade = False
        for name, value in self._headers:
            name = name.lower()
            upgrade |= self._check_header(name, value)
            connection_upgrade |= name == b"connection" and b"upgrade" in value.lower()
        if upgrade and connection_upgrade and (self._declared or self._chunked):
            raise _bad("this server does not switch protocols: send a request with a body "
                       "without Upgrade")
        self.head_complete = True

    def _check_header(self, name: bytes, value: bytes) -> bool:
        """Refuse what this server does not accept; True for an Upgrade header."""
        if name == b"upgrade":
            return True
        if name == b"content-length":
            self._declared = int(value)  # llhttp has checked it is a number
            if self._declared > self.max_body_bytes:
                raise self._body_too_large()
        elif name == b"transfer-encoding":
            if value.strip().lower() != b"chunked":
                raise ProtocolError(501, "not_implemented",
                                    "the only Transfer-Encoding this server takes is chunked",
                                    details={"transfer_encoding": value.decode("latin-1")})
            self._chunked = True
        elif name == b"expect":
            if value.strip().lower() != b"100-continue":
                raise ProtocolError(417, "expectation_failed",
                                    "the only expectation this server meets is 100-continue")
            self.continue_due = True
        return False

    def _body_too_large(self) -> ProtocolError:
        return ProtocolError(413, "payload_too_large",
                             f"request body too large (the limit is {self.max_body_bytes} "
                             "bytes)", "body_too_large", {"max_body_bytes": self.max_body_bytes})

    def on_chunk_header(self) -> None:
        self._trailer_possible = True  # until data comes, this may be the last chunk
        self._head_room = MAX_HEAD_BYTES

    def on_chunk_complete(self) -> None:
        self._trailer_possible = False

    def on_body(self, body: bytes) -> None:
        self._trailer_possible = False
        n = len(body)
        self._body_bytes += n
        if self._body_bytes > self.max_body_bytes:
            raise self._body_too_large()
        if self._budget is not None:
            if not self._budget.take(n):
                raise ProtocolError(503, "unavailable",
                                    "the server holds as many request bodies as it may; "
                                    "retry shortly", "request_budget")
            self._held += n
        self._body.append(body)

    def on_message_complete(self) -> None:
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        request = Request(self._parser.get_method().decode("ascii"), b"".join(self._url),
                          self._parser.get_http_version(), self._headers, body,
                          self._parser.should_keep_alive(), self._budget, self._held)
        self._done.append(request)
        self.ended = not request.keep_alive  # nothing is read after a closing request
        self.in_message = self.head_complete = self.continue_due = False
        self._reset()
