"""The HTTP/1.1 request reader (consumer_api.server.http11): requests fed whole, byte by byte
and in random pieces parse the same (pipelined, chunked, keep-alive); every ProtocolError of
the module's table with its status, code and reason, at and past each limit; the reader's
state as bytes arrive (in_message, head_complete, continue_due); body bytes charged to a
ByteBudget as they arrive and given back; Upgrade requests."""
from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from consumer_api.budget import ByteBudget
from consumer_api.server.http11 import (
    MAX_HEAD_BYTES,
    MAX_HEADERS,
    MAX_URL_BYTES,
    ProtocolError,
    RequestReader,
)

MAX_BODY = 1000

GET = b"GET /api/topics?limit=5 HTTP/1.1\r\nHost: example\r\nAccept: */*\r\n\r\n"
POST = (b"POST /api/topics/t/records HTTP/1.1\r\nHost: example\r\n"
        b"Content-Type: application/json\r\nContent-Length: 13\r\n\r\n{\"value\": 42}")
CHUNKED = (b"POST /upload HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"5\r\nhello\r\n1;ext=yes\r\n \r\nA\r\n0123456789\r\n0\r\n\r\n")
HEAD = b"HEAD / HTTP/1.1\r\nX-Trace: 1\r\nX-Trace: 2\r\n\r\n"
OLD_KEEP = b"GET /old HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
LAST = b"DELETE /api/topics/t HTTP/1.1\r\nConnection: close\r\n\r\n"
PIPELINE = GET + POST + CHUNKED + HEAD + OLD_KEEP + LAST

#: (method, target, version, headers, body, keep_alive) of PIPELINE's requests
EXPECTED = [
    ("GET", b"/api/topics?limit=5", "1.1", [(b"Host", b"example"), (b"Accept", b"*/*")],
     b"", True),
    ("POST", b"/api/topics/t/records", "1.1",
     [(b"Host", b"example"), (b"Content-Type", b"application/json"),
      (b"Content-Length", b"13")], b'{"value": 42}', True),
    ("POST", b"/upload", "1.1", [(b"Transfer-Encoding", b"chunked")],
     b"hello 0123456789", True),
    ("HEAD", b"/", "1.1", [(b"X-Trace", b"1"), (b"X-Trace", b"2")], b"", True),
    ("GET", b"/old", "1.0", [(b"Connection", b"keep-alive")], b"", True),
    ("DELETE", b"/api/topics/t", "1.1", [(b"Connection", b"close")], b"", False),
]


def fields(request) -> tuple:
    return (request.method, request.target, request.version, request.headers, request.body,
            request.keep_alive)


def feed_pieces(reader: RequestReader, data: bytes, cuts=()) -> list:
    """Feed ``data`` cut at ``cuts`` (offsets); the requests completed, in order."""
    done, start = [], 0
    for cut in [*sorted(set(cuts)), len(data)]:
        if cut > start:
            done += reader.feed(data[start:cut])
            start = cut
    return done


def feed_bytewise(reader: RequestReader, data: bytes) -> list:
    done = []
    for i in range(len(data)):
        done += reader.feed(data[i:i + 1])
    return done


def parse(data: bytes, max_body: int = MAX_BODY, budget=None) -> list:
    return [fields(r) for r in RequestReader(max_body, budget).feed(data)]


def head_with(*lines: bytes, method: bytes = b"GET", target: bytes = b"/",
              version: bytes = b"1.1") -> bytes:
    return (method + b" " + target + b" HTTP/" + version + b"\r\n"
            + b"".join(line + b"\r\n" for line in lines) + b"\r\n")


def filler_header(head_bytes: int) -> bytes:
    """A GET whose head takes exactly ``head_bytes`` bytes."""
    bare = len(head_with(b"X-Filler: "))
    return head_with(b"X-Filler: " + b"a" * (head_bytes - bare))


# -- whole, byte by byte, random pieces -----------------------------------------------------

def test_pipelined_requests_fed_at_once():
    assert parse(PIPELINE) == EXPECTED


def test_pipelined_requests_fed_byte_by_byte():
    assert [fields(r) for r in feed_bytewise(RequestReader(MAX_BODY), PIPELINE)] == EXPECTED


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, len(PIPELINE)), max_size=40))
def test_pipelined_requests_fed_in_random_pieces(cuts):
    budget = ByteBudget(10_000)
    requests = feed_pieces(RequestReader(MAX_BODY, budget), PIPELINE, cuts)
    assert [fields(r) for r in requests] == EXPECTED
    assert budget.used == sum(len(r.body) for r in requests) == budget.peak
    for request in requests:
        request.release()
    assert budget.used == 0


def test_one_request_per_feed_as_it_arrives():
    reader = RequestReader(MAX_BODY)
    assert [fields(r) for r in reader.feed(GET)] == EXPECTED[:1]
    assert [fields(r) for r in reader.feed(POST)] == EXPECTED[1:2]
    assert reader.feed(CHUNKED[:40]) == []
    assert [fields(r) for r in reader.feed(CHUNKED[40:])] == EXPECTED[2:3]


def test_chunked_body_is_dechunked():
    data = head_with(b"Transfer-Encoding: chunked", method=b"POST") + (
        b"3\r\nabc\r\n"
        b"1F\r\n" + b"x" * 31 + b"\r\n"      # upper-case hex
        b"2;name=value\r\nyz\r\n"           # a chunk extension
        b"0\r\n\r\n")
    (request,) = RequestReader(MAX_BODY).feed(data)
    assert request.body == b"abc" + b"x" * 31 + b"yz"


def test_keep_alive_by_version_and_connection_header():
    assert parse(head_with())[0][5] is True
    assert parse(head_with(b"Connection: close"))[0][5] is False
    assert parse(head_with(version=b"1.0"))[0][5] is False
    assert parse(head_with(b"Connection: keep-alive", version=b"1.0"))[0][5] is True


def test_body_exactly_at_the_limit_is_accepted():
    body = b"b" * MAX_BODY
    declared = head_with(b"Content-Length: %d" % MAX_BODY, method=b"POST") + body
    chunked = (head_with(b"Transfer-Encoding: chunked", method=b"POST")
               + b"%x\r\n" % MAX_BODY + body + b"\r\n0\r\n\r\n")
    assert parse(declared)[0][4] == body
    assert parse(chunked)[0][4] == body


def test_limits_exactly_reached_are_accepted():
    target = b"/" + b"u" * (MAX_URL_BYTES - 1)
    assert parse(head_with(target=target))[0][1] == target
    many = [b"X-H%d: v" % i for i in range(MAX_HEADERS)]
    assert len(parse(head_with(*many))[0][3]) == MAX_HEADERS
    full_head = filler_header(MAX_HEAD_BYTES)
    assert len(full_head) == MAX_HEAD_BYTES
    assert len(RequestReader(MAX_BODY).feed(full_head)) == 1
    assert len(feed_bytewise(RequestReader(MAX_BODY), full_head)) == 1


# -- protocol errors ------------------------------------------------------------------------

TE_CHUNKED = b"Transfer-Encoding: chunked"
ERRORS = {
    "lowercase method": (b"get / HTTP/1.1\r\n\r\n", 400, "invalid_request", "bad_request"),
    "not HTTP": (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400, "invalid_request",
                 "bad_request"),
    "bad chunk size": (head_with(TE_CHUNKED, method=b"POST") + b"zz\r\nab\r\n", 400,
                       "invalid_request", "bad_request"),
    "content-length with transfer-encoding": (
        head_with(b"Content-Length: 3", TE_CHUNKED, method=b"POST") + b"3\r\nabc\r\n0\r\n\r\n",
        400, "invalid_request", "bad_request"),
    "duplicate content-length": (
        head_with(b"Content-Length: 3", b"Content-Length: 3", method=b"POST") + b"abc",
        400, "invalid_request", "bad_request"),
    "url too long": (head_with(target=b"/" + b"u" * MAX_URL_BYTES), 414, "uri_too_long",
                     "uri_too_long"),
    "head too large": (filler_header(MAX_HEAD_BYTES + 1), 431, "header_fields_too_large",
                       "headers_too_large"),
    "too many headers": (head_with(*[b"X-H%d: v" % i for i in range(MAX_HEADERS + 1)]), 431,
                         "header_fields_too_large", "headers_too_large"),
    "declared body too large": (
        head_with(b"Content-Length: %d" % (MAX_BODY + 1), method=b"POST")
        + b"b" * (MAX_BODY + 1), 413, "payload_too_large", "body_too_large"),
    "chunked body too large": (
        head_with(TE_CHUNKED, method=b"POST") + b"%x\r\n" % 600 + b"b" * 600 + b"\r\n"
        + b"%x\r\n" % 401 + b"b" * 401 + b"\r\n0\r\n\r\n", 413, "payload_too_large",
        "body_too_large"),
    "HTTP/2.0": (b"GET / HTTP/2.0\r\n\r\n", 505, "http_version_not_supported", "bad_request"),
    "transfer-encoding gzip": (head_with(b"Transfer-Encoding: gzip", method=b"POST"), 501,
                               "not_implemented", "bad_request"),
    "transfer-encoding gzip, chunked": (
        head_with(b"Transfer-Encoding: gzip, chunked", method=b"POST"), 501, "not_implemented",
        "bad_request"),
    "expect other than 100-continue": (
        head_with(b"Expect: 200-ok", b"Content-Length: 1", method=b"POST") + b"x", 417,
        "expectation_failed", "bad_request"),
}


@pytest.mark.parametrize("feed", ["whole", "bytewise"])
@pytest.mark.parametrize("case", ERRORS)
def test_protocol_errors(case, feed):
    data, status, code, reason = ERRORS[case]
    reader = RequestReader(MAX_BODY)
    returned = []
    with pytest.raises(ProtocolError) as caught:
        if feed == "whole":
            returned += reader.feed(data)
        else:
            for i in range(len(data)):
                returned += reader.feed(data[i:i + 1])
    err = caught.value
    assert (err.status, err.code, err.reason) == (status, code, reason)
    assert err.message and str(err) == err.message
    assert returned == []  # nothing of a refused request reaches the application


def test_limit_errors_carry_the_limit_in_details():
    def details(data):
        with pytest.raises(ProtocolError) as caught:
            RequestReader(MAX_BODY).feed(data)
        return caught.value.details

    assert details(ERRORS["url too long"][0]) == {"max_url_bytes": MAX_URL_BYTES}
    assert details(ERRORS["head too large"][0]) == {"max_head_bytes": MAX_HEAD_BYTES}
    assert details(ERRORS["too many headers"][0]) == {"max_headers": MAX_HEADERS}
    assert details(ERRORS["declared body too large"][0]) == {"max_body_bytes": MAX_BODY}
    assert details(ERRORS["transfer-encoding gzip"][0]) == {"transfer_encoding": "gzip"}


def test_url_too_long_in_small_pieces():
    data = head_with(target=b"/" + b"u" * (3 * MAX_URL_BYTES))
    reader = RequestReader(MAX_BODY)
    with pytest.raises(ProtocolError) as caught:
        feed_pieces(reader, data, range(0, len(data), 100))
    assert caught.value.status == 414


def test_url_too_long_refused_before_the_line_ends():
    reader = RequestReader(MAX_BODY)
    with pytest.raises(ProtocolError) as caught:
        reader.feed(b"GET /" + b"u" * MAX_URL_BYTES)  # no space, no CRLF yet
    assert caught.value.status == 414


def test_endless_head_refused_once_it_passes_the_limit():
    reader = RequestReader(MAX_BODY)
    reader.feed(b"GET / HTTP/1.1\r\nX-Endless: ")
    with pytest.raises(ProtocolError) as caught:
        for _ in range(MAX_HEAD_BYTES // 1000 + 2):  # a client that never ends its head
            reader.feed(b"a" * 1000)
    assert caught.value.status == 431


def test_endless_trailer_section_refused():
    # the trailers after a chunked body are header fields too: a client that sends one
    # without end must be refused, not buffered
    reader = RequestReader(MAX_BODY)
    reader.feed(head_with(TE_CHUNKED, method=b"POST") + b"1\r\nx\r\n0\r\nX-Trailer: ")
    with pytest.raises(ProtocolError) as caught:
        for _ in range(4 * MAX_HEAD_BYTES // 65536):
            reader.feed(b"a" * 65536)
    assert caught.value.status == 431


def test_declared_body_too_large_is_refused_at_the_head():
    reader = RequestReader(MAX_BODY)
    with pytest.raises(ProtocolError) as caught:
        reader.feed(head_with(b"Content-Length: %d" % (MAX_BODY + 1), method=b"POST"))
    assert caught.value.status == 413


def test_chunked_body_too_large_never_returns_a_request():
    data = head_with(TE_CHUNKED, method=b"POST") + b"".join(
        b"64\r\n" + b"c" * 100 + b"\r\n" for _ in range(20)) + b"0\r\n\r\n"
    reader = RequestReader(MAX_BODY)
    returned = []
    with pytest.raises(ProtocolError) as caught:
        for start in range(0, len(data), 7):
            returned += reader.feed(data[start:start + 7])
    assert caught.value.status == 413
    assert returned == []
    assert start < len(data) - 200  # refused as the body crossed the limit, not at its end


def test_other_http_versions():
    assert parse(head_with(version=b"1.0"))[0][2] == "1.0"
    for version in (b"0.9", b"2.0", b"3.0"):
        with pytest.raises(ProtocolError) as caught:
            RequestReader(MAX_BODY).feed(head_with(version=version))
        assert caught.value.status in (400, 505)


# -- state as bytes arrive ------------------------------------------------------------------

def test_state_as_bytes_arrive():
    head = head_with(b"Content-Length: 3", method=b"POST")
    data = head + b"abc"
    reader = RequestReader(MAX_BODY)
    assert (reader.in_message, reader.head_complete) == (False, False)
    for i in range(len(data)):
        done = reader.feed(data[i:i + 1])
        if i < len(head) - 1:
            assert (reader.in_message, reader.head_complete, done) == (True, False, []), i
        elif i < len(data) - 1:
            assert (reader.in_message, reader.head_complete, done) == (True, True, []), i
        else:
            assert (reader.in_message, reader.head_complete, len(done)) == (False, False, 1)


def test_state_with_the_next_request_begun():
    reader = RequestReader(MAX_BODY)
    assert len(reader.feed(GET + b"GE")) == 1
    assert (reader.in_message, reader.head_complete) == (True, False)
    assert len(reader.feed(GET[2:])) == 1
    assert (reader.in_message, reader.head_complete) == (False, False)


def test_continue_due_when_the_head_asks_for_it():
    reader = RequestReader(MAX_BODY)
    head = head_with(b"Content-Length: 3", b"Expect: 100-Continue", method=b"POST")
    assert reader.feed(head) == []
    assert reader.continue_due is True
    reader.continue_due = False  # the owner sent it
    (request,) = reader.feed(b"abc")
    assert request.body == b"abc"
    assert reader.continue_due is False


def test_continue_not_due_without_expect_or_once_the_body_is_there():
    reader = RequestReader(MAX_BODY)
    reader.feed(head_with(b"Content-Length: 3", method=b"POST"))
    assert reader.continue_due is False
    reader = RequestReader(MAX_BODY)
    data = head_with(b"Content-Length: 3", b"Expect: 100-continue", method=b"POST") + b"abc"
    assert len(reader.feed(data)) == 1
    assert reader.continue_due is False  # the body came with the head: too late for a 100


# -- the budget of buffered bodies ----------------------------------------------------------

def test_body_bytes_charged_as_they_arrive_and_released():
    budget = ByteBudget(10_000)
    reader = RequestReader(MAX_BODY, budget)
    reader.feed(head_with(b"Content-Length: 500", method=b"POST"))
    assert budget.used == 0
    reader.feed(b"x" * 200)
    assert budget.used == 200
    (request,) = reader.feed(b"x" * 300)
    assert budget.used == request.held == 500
    request.release()
    assert budget.used == 0 and request.held == 0
    request.release()
    assert budget.used == 0  # idempotent


def test_chunked_bodies_charged_by_their_dechunked_bytes():
    budget = ByteBudget(10_000)
    reader = RequestReader(MAX_BODY, budget)
    reader.feed(head_with(TE_CHUNKED, method=b"POST") + b"a\r\n0123456789\r\n")
    assert budget.used == 10
    (request,) = reader.feed(b"5\r\nabcde\r\n0\r\n\r\n")
    assert budget.used == request.held == 15


def test_reader_release_gives_back_an_unfinished_request():
    budget = ByteBudget(10_000)
    reader = RequestReader(MAX_BODY, budget)
    reader.feed(head_with(b"Content-Length: 500", method=b"POST") + b"x" * 123)
    assert budget.used == 123
    reader.release()
    assert budget.used == 0
    reader.release()
    assert budget.used == 0


def test_requests_without_a_body_hold_nothing():
    budget = ByteBudget(10)
    (request,) = RequestReader(MAX_BODY, budget).feed(GET)
    assert request.held == 0 and budget.used == 0
    request.release()
    assert budget.used == 0


def test_full_budget_refuses_with_503():
    budget = ByteBudget(100)
    assert budget.take(90)  # held by other connections
    reader = RequestReader(MAX_BODY, budget)
    reader.feed(head_with(b"Content-Length: 50", method=b"POST") + b"x" * 5)
    with pytest.raises(ProtocolError) as caught:
        reader.feed(b"x" * 45)
    err = caught.value
    assert (err.status, err.code, err.reason) == (503, "unavailable", "request_budget")
    reader.release()
    assert budget.used == 90  # what the refused request held went back; others' did not


def test_too_large_chunked_body_gives_back_what_it_held():
    budget = ByteBudget(10_000)
    reader = RequestReader(MAX_BODY, budget)
    reader.feed(head_with(TE_CHUNKED, method=b"POST") + b"%x\r\n" % 800 + b"x" * 800 + b"\r\n")
    assert budget.used == 800
    with pytest.raises(ProtocolError):
        reader.feed(b"%x\r\n" % 800 + b"x" * 800 + b"\r\n")
    reader.release()
    assert budget.used == 0


def test_a_refused_feed_leaks_no_budget_of_requests_it_completed():
    # a good request and a bad one in the same read: whatever the reader does with the good
    # one, the bytes charged for its body must be given back (by the reader's release)
    budget = ByteBudget(10_000)
    reader = RequestReader(MAX_BODY, budget)
    with pytest.raises(ProtocolError):
        reader.feed(head_with(b"Content-Length: 3", method=b"POST") + b"abc"
                    + b"get / HTTP/1.1\r\n\r\n")
    reader.release()
    assert budget.used == 0


def test_bytes_after_a_connection_close_request_do_not_refuse_it():
    # RFC 9112 9.6: the server answers the request that said "close" and processes nothing
    # after it; a stray CRLF after a body (RFC 9112 2.2) or a pipelined request must not turn
    # that answer into a 400
    for extra in (b"\r\n", GET):
        reader = RequestReader(MAX_BODY)
        requests = reader.feed(head_with(b"Connection: close", target=b"/first") + extra)
        assert [(r.target, r.keep_alive) for r in requests] == [(b"/first", False)]


# -- Upgrade ---------------------------------------------------------------------------------

UPGRADE = head_with(b"Upgrade: websocket", b"Connection: Upgrade", target=b"/ws")


@pytest.mark.parametrize("bytewise", [False, True])
def test_upgrade_request_is_served_then_nothing_more_is_parsed(bytewise):
    reader = RequestReader(MAX_BODY)
    requests = feed_bytewise(reader, UPGRADE) if bytewise else reader.feed(UPGRADE)
    assert [(r.method, r.target, r.keep_alive) for r in requests] == [("GET", b"/ws", False)]
    assert reader.upgraded is True
    assert reader.feed(GET) == []
    assert reader.feed(b"\x81\x05hello not http at all") == []


def test_upgrade_after_pipelined_requests():
    reader = RequestReader(MAX_BODY)
    requests = reader.feed(GET + UPGRADE + GET)
    assert [(r.target, r.keep_alive) for r in requests] == [
        (b"/api/topics?limit=5", True), (b"/ws", False)]


def test_upgrade_request_with_a_body_keeps_its_body():
    # served as a plain request (the server does not switch protocols): its body must reach
    # the application, or the request be refused -- never handed over without its body
    data = head_with(b"Upgrade: h2c", b"Connection: Upgrade", b"Content-Length: 3",
                     method=b"POST") + b"abc"
    try:
        requests = RequestReader(MAX_BODY).feed(data)
    except ProtocolError:
        return
    assert [(r.method, r.body) for r in requests] == [("POST", b"abc")]


# -- random requests, random splits ---------------------------------------------------------

_TOKEN = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-", min_size=1,
                 max_size=12).filter(lambda s: s.lower() not in (
                     "content-length", "transfer-encoding", "expect", "connection", "upgrade"))
_VALUE = st.binary(max_size=30).map(
    lambda b: bytes(c for c in b if 0x21 <= c <= 0x7e or c >= 0x80))
_TARGET = st.text("abcdefghijklmnopqrstuvwxyz0123456789/-._~%=&?", max_size=40).map(
    lambda s: ("/" + s).encode())


def _chunked(parts) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts if p) + b"0\r\n\r\n"


@st.composite
def _random_request(draw, last: bool):
    """(bytes, expected fields) of one request; all but the ``last`` keep alive."""
    method = draw(st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]))
    version = draw(st.sampled_from(["1.0", "1.1"]))
    headers = [(name.encode(), value)
               for name, value in draw(st.lists(st.tuples(_TOKEN, _VALUE), max_size=6))]
    keep_alive = draw(st.booleans()) if last else True
    if version == "1.0" and keep_alive:
        headers.append((b"Connection", b"keep-alive"))
    elif version == "1.1" and not keep_alive:
        headers.append((b"Connection", b"close"))
    body = draw(st.binary(max_size=MAX_BODY // 4))
    framing = draw(st.sampled_from(["length", "chunked"] if body else ["none", "length"]))
    wire_body = b""
    if framing == "length":
        headers.append((b"Content-Length", b"%d" % len(body)))
        wire_body = body
    elif framing == "chunked":
        headers.append((b"Transfer-Encoding", b"chunked"))
        cuts = sorted(draw(st.lists(st.integers(0, len(body)), max_size=4)))
        bounds = [0, *cuts, len(body)]
        wire_body = _chunked(body[a:b] for a, b in zip(bounds, bounds[1:]))
    target = draw(_TARGET)
    wire = (method.encode() + b" " + target + b" HTTP/" + version.encode() + b"\r\n"
            + b"".join(n + b": " + v + b"\r\n" for n, v in headers) + b"\r\n" + wire_body)
    return wire, (method, target, version, headers, body, keep_alive)


@st.composite
def _random_pipeline(draw):
    count = draw(st.integers(1, 3))
    return [draw(_random_request(last=i == count - 1)) for i in range(count)]


@settings(max_examples=150, deadline=None)
@given(_random_pipeline(), st.lists(st.integers(0, 2_000), max_size=12))
def test_random_requests_in_random_pieces_come_out_as_sent(pipeline, cuts):
    data = b"".join(wire for wire, _ in pipeline)
    expected = [request for _, request in pipeline]
    budget = ByteBudget(10_000)
    requests = feed_pieces(RequestReader(MAX_BODY, budget), data, cuts)
    assert [fields(r) for r in requests] == expected
    assert budget.used == sum(len(r.body) for r in requests)
    assert [fields(r) for r in feed_bytewise(RequestReader(MAX_BODY), data)] == expected


def test_the_http2_preface_is_505():
    # what an HTTP/2 client with prior knowledge sends first: a version other than 1.0/1.1
    with pytest.raises(ProtocolError) as caught:
        RequestReader(MAX_BODY).feed(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
    err = caught.value
    assert (err.status, err.code) == (505, "http_version_not_supported"), err.message


@pytest.mark.parametrize("closing", [head_with(b"Connection: close", target=b"/first"),
                                     head_with(target=b"/first", version=b"1.0")],
                         ids=["close", "1.0"])
def test_bytes_after_a_closing_request_in_a_later_feed_are_ignored(closing):
    # as in one feed (above): nothing after a request that closes the connection is parsed
    reader = RequestReader(MAX_BODY)
    assert [(r.target, r.keep_alive) for r in reader.feed(closing)] == [(b"/first", False)]
    assert reader.feed(GET) == []
    assert reader.feed(b"\x00not http") == []
