"""The worker's response class: a response leaves in one send, headers and body together,
and every other shape of response goes out exactly as gunicorn writes it."""
from __future__ import annotations

import pytest
from gunicorn.config import Config
from gunicorn.http import wsgi
from gunicorn.http.parser import RequestParser

from consumer_api.gunicorn_worker import OneSendResponse

GET = b"GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n"
HEAD = b"HEAD /api/health HTTP/1.1\r\nHost: x\r\n\r\n"


class RecordingSocket:
    """Stands in for the client socket: remembers every ``sendall``."""

    def __init__(self):
        self.sends: list[bytes] = []

    def sendall(self, data):
        self.sends.append(bytes(data))


def respond(response_class, request: bytes, status: str, headers: list, body: list) -> list:
    """What ``response_class`` sends for a WSGI response, one entry per ``sendall``."""
    cfg = Config()
    req = next(RequestParser(cfg, [request], ("127.0.0.1", 50000)))
    sock = RecordingSocket()
    resp, _ = wsgi.create(req, sock, ("127.0.0.1", 50000), ("127.0.0.1", 8080), cfg,
                          response_class=response_class)
    resp.start_response(status, headers)
    for chunk in body:
        resp.write(chunk)
    resp.close()
    return sock.sends


def without_date(sends: list) -> list:
    return [b"\r\n".join(line for line in s.split(b"\r\n") if not line.startswith(b"Date: "))
            for s in sends]


def test_a_response_with_a_length_goes_out_in_one_send():
    sends = respond(OneSendResponse, GET, "200 OK", [("Content-Length", "11")], [b"hello world"])
    assert len(sends) == 1
    head, _, body = sends[0].partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"\r\nContent-Length: 11" in head and b"\r\nConnection: keep-alive" in head
    assert body == b"hello world"


def test_the_bytes_on_the_wire_are_gunicorns():
    shapes = [
        (GET, "200 OK", [("Content-Length", "5"), ("X-Request-Id", "abc")], [b"hel", b"lo"]),
        (GET, "201 CREATED", [("Content-Length", "0")], []),
        (HEAD, "200 OK", [("Content-Length", "5")], [b"hello"]),
        (GET, "204 NO CONTENT", [], []),
        (GET, "200 OK", [], [b"streamed", b" body"]),  # no length: chunked
    ]
    for request, status, headers, body in shapes:
        ours = respond(OneSendResponse, request, status, headers, body)
        theirs = respond(wsgi.Response, request, status, headers, body)
        assert b"".join(without_date(ours)) == b"".join(without_date(theirs)), status


@pytest.mark.parametrize("request_line, status, headers, body", [
    (HEAD, "200 OK", [("Content-Length", "5")], [b"hello"]),
    (GET, "204 NO CONTENT", [], []),
    (GET, "200 OK", [("Content-Length", "0")], [b""]),
])
def test_a_response_without_body_bytes_still_sends_its_headers_once(request_line, status,
                                                                      headers, body):
    sends = respond(OneSendResponse, request_line, status, headers, body)
    assert len(sends) == 1 and sends[0].endswith(b"\r\n\r\n")
    assert sends[0].count(b"HTTP/1.1 ") == 1


def test_a_chunked_response_sends_its_headers_before_the_first_chunk():
    sends = respond(OneSendResponse, GET, "200 OK", [], [b"abc"])
    assert sends[0].endswith(b"Transfer-Encoding: chunked\r\n\r\n")
    assert sends[1:] == [b"3\r\nabc\r\n", b"0\r\n\r\n"]
