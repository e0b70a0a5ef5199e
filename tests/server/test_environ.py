"""The WSGI environ of a request (consumer_api.server.environ): the request line (PATH_INFO
percent-decoded as latin-1, QUERY_STRING, RAW_URI, REQUEST_METHOD, SERVER_PROTOCOL), the body
(CONTENT_LENGTH of the de-chunked body, wsgi.input), headers (HTTP_*, CONTENT_TYPE, repeated
ones joined, underscores dropped, framing headers not passed on), the peer and server
addresses (TCP and Unix socket), a target that is not a URL (400) -- and a Flask application
reading such an environ."""
from __future__ import annotations

import flask
import pytest

from consumer_api.server import handler
from consumer_api.server.environ import build_environ
from consumer_api.server.http11 import ProtocolError, Request, RequestReader

PEER = ("192.0.2.7", 51234)
SERVER = ("0.0.0.0", 8080)
SOCK = object()  # stands in for the client socket: build_environ only passes it on


def request_of(raw: bytes) -> Request:
    (request,) = RequestReader(1 << 20).feed(raw)
    return request


def environ_of(raw: bytes, peer=PEER, server=SERVER) -> dict:
    return build_environ(request_of(raw), SOCK, peer, server)


def get(target: bytes, *headers: bytes, method: bytes = b"GET") -> dict:
    return environ_of(method + b" " + target + b" HTTP/1.1\r\n"
                      + b"".join(h + b"\r\n" for h in headers) + b"\r\n")


def test_request_line():
    env = get(b"/api/topics/a%20b/%C3%A9%2F?limit=5&q=a%20b", method=b"DELETE")
    assert env["REQUEST_METHOD"] == "DELETE"
    # PEP 3333: the path's bytes, percent-decoded, as latin-1 (UTF-8 "é" is two characters)
    assert env["PATH_INFO"] == "/api/topics/a b/\xc3\xa9/"
    assert env["PATH_INFO"].encode("latin-1").decode("utf-8") == "/api/topics/a b/é/"
    assert env["QUERY_STRING"] == "limit=5&q=a%20b"  # not decoded
    assert env["RAW_URI"] == "/api/topics/a%20b/%C3%A9%2F?limit=5&q=a%20b"
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["SCRIPT_NAME"] == ""


def test_latin1_byte_and_no_query():
    env = get(b"/caf%E9")
    assert env["PATH_INFO"] == "/caf\xe9"
    assert env["QUERY_STRING"] == ""


def test_absolute_form_target():
    env = get(b"http://example.com:8080/api/topics?x=1")
    assert env["PATH_INFO"] == "/api/topics"
    assert env["QUERY_STRING"] == "x=1"
    assert env["RAW_URI"] == "http://example.com:8080/api/topics?x=1"


def test_http_10():
    env = environ_of(b"GET / HTTP/1.0\r\n\r\n")
    assert env["SERVER_PROTOCOL"] == "HTTP/1.0"


def test_wsgi_keys():
    env = get(b"/")
    assert env["wsgi.version"] == (1, 0)
    assert env["wsgi.url_scheme"] == "http"
    assert env["wsgi.input_terminated"] is True
    assert env["wsgi.multithread"] is True
    assert env["wsgi.multiprocess"] is False
    assert env["wsgi.run_once"] is False
    assert env["consumer_api.socket"] is SOCK


def test_body_with_content_length():
    env = environ_of(b"POST /r HTTP/1.1\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 11\r\n\r\n{\"a\": [1]} ")
    assert env["CONTENT_TYPE"] == "application/json"
    assert env["CONTENT_LENGTH"] == "11"
    assert env["wsgi.input"].read() == b'{"a": [1]} '
    assert "HTTP_CONTENT_TYPE" not in env and "HTTP_CONTENT_LENGTH" not in env


def test_chunked_body_has_its_dechunked_length_and_no_transfer_encoding():
    env = environ_of(b"POST /r HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"4\r\nabcd\r\n3\r\nefg\r\n0\r\n\r\n")
    assert env["CONTENT_LENGTH"] == "7"
    assert env["wsgi.input"].read() == b"abcdefg"
    assert not any("TRANSFER_ENCODING" in key for key in env)


def test_no_body():
    env = get(b"/")
    assert env["CONTENT_LENGTH"] == "0"
    assert env["wsgi.input"].read() == b""
    assert "CONTENT_TYPE" not in env


def test_wsgi_input_reads_in_parts():
    env = environ_of(b"PUT /r HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123456789")
    body = env["wsgi.input"]
    assert body.read(4) == b"0123"
    assert body.readline() == b"456789"
    assert body.read() == b""


def test_headers():
    env = get(b"/", b"Host: example.com:8080", b"X-Api-Key: secret", b"accept-encoding: gzip",
              b"X-Forwarded-For: 10.0.0.1", b"x-forwarded-for: 10.0.0.2")
    assert env["HTTP_HOST"] == "example.com:8080"
    assert env["HTTP_X_API_KEY"] == "secret"
    assert env["HTTP_ACCEPT_ENCODING"] == "gzip"
    assert env["HTTP_X_FORWARDED_FOR"] == "10.0.0.1,10.0.0.2"


def test_header_values_as_latin1():
    env = get(b"/", b"X-Name: caf\xe9")
    assert env["HTTP_X_NAME"] == "caf\xe9"


def test_headers_with_underscores_are_dropped():
    env = get(b"/", b"X_Forwarded_For: 6.6.6.6", b"X-Forwarded-For: 10.0.0.1",
              b"X_Api_Key: forged")
    assert env["HTTP_X_FORWARDED_FOR"] == "10.0.0.1"
    assert "HTTP_X_API_KEY" not in env
    assert "6.6.6.6" not in repr(env) and "forged" not in repr(env)


def test_underscore_header_alone_sets_nothing():
    env = get(b"/", b"X_Forwarded_For: 6.6.6.6")
    assert "HTTP_X_FORWARDED_FOR" not in env


def test_tcp_peer_and_server():
    env = get(b"/")
    assert (env["REMOTE_ADDR"], env["REMOTE_PORT"]) == ("192.0.2.7", "51234")
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("0.0.0.0", "8080")


def test_ipv6_peer():
    env = environ_of(b"GET / HTTP/1.1\r\n\r\n", peer=("::1", 40000, 0, 0),
                     server=("::", 8080, 0, 0))
    assert (env["REMOTE_ADDR"], env["REMOTE_PORT"]) == ("::1", "40000")
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("::", "8080")


def test_unix_socket_peer():
    env = environ_of(b"GET / HTTP/1.1\r\n\r\n", peer="", server="/run/consumer-api.sock")
    assert (env["REMOTE_ADDR"], env["REMOTE_PORT"]) == ("", "0")
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("localhost", "0")


@pytest.mark.parametrize("target", [b"example.com:443", b"", b"http://[::1", b"?x"])
def test_target_that_is_not_a_url_path(target):
    request = Request("GET", target, "1.1", [], b"", True, None, 0)
    with pytest.raises(ProtocolError) as caught:
        build_environ(request, SOCK, PEER, SERVER)
    assert (caught.value.status, caught.value.code) == (400, "invalid_request")


def test_connect_request_is_refused_by_the_environ():
    (request,) = RequestReader(100).feed(b"CONNECT example.com:443 HTTP/1.1\r\n\r\n")
    with pytest.raises(ProtocolError) as caught:
        build_environ(request, SOCK, PEER, SERVER)
    assert caught.value.status == 400


def test_each_environ_has_its_own_input():
    request = request_of(b"POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nab")
    first = build_environ(request, SOCK, PEER, SERVER)
    assert first["wsgi.input"].read() == b"ab"
    second = build_environ(request, SOCK, PEER, SERVER)
    assert second["wsgi.input"].read() == b"ab"


# -- Flask on this environ ------------------------------------------------------------------

def flask_app() -> flask.Flask:
    app = flask.Flask("environ-test")

    @app.route("/echo/<path:name>", methods=["GET", "POST"])
    def echo(name):
        req = flask.request
        return flask.jsonify(
            name=name, path=req.path, args=req.args.to_dict(flat=False),
            body=req.get_data(as_text=True), json=req.get_json(silent=True),
            content_length=req.content_length, mimetype=req.mimetype, host=req.host,
            remote_addr=req.remote_addr, method=req.method, url=req.url,
            trace=req.headers.get("X-Trace"), forged=req.headers.get("X-Api-Key"))

    return app


def run_flask(raw: bytes) -> tuple:
    env = environ_of(raw)
    outgoing = handler.call(flask_app(), env, keep_alive=True)
    head, _, body = b"".join(outgoing.buffers).partition(b"\r\n\r\n")
    return head.split(b"\r\n")[0], flask.json.loads(body)


def test_flask_reads_the_environ():
    status, got = run_flask(
        b"POST /echo/caf%C3%A9%20bar?a=1&a=2&b=%C3%A9 HTTP/1.1\r\nHost: api.example:8080\r\n"
        b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
        b"X-Trace: 1\r\nX-Trace: 2\r\nX_Api_Key: forged\r\n\r\n"
        b"5\r\n{\"k\":\r\n4\r\n [1]\r\n1\r\n}\r\n0\r\n\r\n")
    assert status == b"HTTP/1.1 200 OK"
    assert got == {
        "name": "café bar", "path": "/echo/café bar", "args": {"a": ["1", "2"], "b": ["é"]},
        "body": '{"k": [1]}', "json": {"k": [1]}, "content_length": 10,
        "mimetype": "application/json", "host": "api.example:8080",
        "remote_addr": "192.0.2.7", "method": "POST",
        "url": "http://api.example:8080/echo/café%20bar?a=1&a=2&b=é",  # werkzeug's IRI
        "trace": "1,2", "forged": None,
    }
