"""One careless or hostile client against the real server: it must not take the server down.

The server here has 4 threads and short deadlines, so that each test is quick and a held
thread would show: 20 clients that trickle their heads or bodies, or never read their
responses, would take all 4 threads of a server that held one per connection, and the other
clients' requests (health, a produce) would hang. Every refusal is an answer in the API's
error envelope, counted in /metrics by reason.
"""
from __future__ import annotations

import json
import os
import signal
import socket
from pathlib import Path

import pytest
import requests

from tests.e2e.conftest import metric, start_server
from tests.waiting import wait_until

THREADS = 4
HEADER_TIMEOUT_MS = 600
BODY_TIMEOUT_MS = 800
SEND_TIMEOUT_MS = 1_000
MAX_BODY = 256 * 1024
CROWD = 20  # more connections than threads
PROBE_TIMEOUT_S = 5.0


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    with start_server(tmp_path_factory.mktemp("hostile-data"),
                      CONSUMER_API_THREADS=THREADS,
                      CONSUMER_API_HEADER_TIMEOUT_MS=HEADER_TIMEOUT_MS,
                      CONSUMER_API_BODY_TIMEOUT_MS=BODY_TIMEOUT_MS,
                      CONSUMER_API_SEND_TIMEOUT_MS=SEND_TIMEOUT_MS,
                      CONSUMER_API_MAX_BODY_BYTES=MAX_BODY) as server:
        for name in ("victim", "big", "chunky"):
            resp = requests.post(server.url("/api/topics"), json={"name": name, "partitions": 1})
            assert resp.status_code == 201, resp.text
        yield server


# -- helpers ------------------------------------------------------------------------------

def connect(port: int, rcvbuf: int | None = None) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect(("127.0.0.1", port))
    sock.settimeout(10)
    return sock


def read_response(sock: socket.socket) -> tuple[int, dict, dict]:
    """(status, headers, JSON body) of the next response; the body must be JSON."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"the server closed the connection without answering: {data!r}"
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    length = int(headers["content-length"])
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection in the middle of a response"
        body += chunk
    return int(lines[0].split()[1]), headers, json.loads(body[:length])


def exchange(port: int, raw: bytes) -> tuple[int, dict, dict]:
    sock = connect(port)
    try:
        sock.sendall(raw)
        return read_response(sock)
    finally:
        sock.close()


def assert_envelope(body: dict, code: str) -> None:
    assert set(body) == {"error", "code", "details"} and body["code"] == code, body
    assert isinstance(body["error"], str) and body["error"]


def others_are_served(srv) -> None:
    """What everybody else does goes on: health, a produce, the metrics."""
    assert requests.get(srv.url("/api/health"), timeout=PROBE_TIMEOUT_S).status_code == 200
    resp = requests.post(srv.url("/api/topics/victim/records"), timeout=PROBE_TIMEOUT_S,
                         json={"encoding": "text", "records": [{"value": "probe"}]})
    assert resp.status_code == 200, resp.text
    assert requests.get(srv.url("/metrics"), timeout=PROBE_TIMEOUT_S).status_code == 200


def refusals(srv, reason: str) -> float:
    return metric(srv, f'consumer_api_refusals_total{{reason="{reason}"}}')


def high_watermark(srv, topic: str) -> int:
    resp = requests.get(srv.url(f"/api/topics/{topic}"), timeout=PROBE_TIMEOUT_S)
    return resp.json()["partitions"][0]["high_watermark"]


def produce_head(topic: str, length: int | None) -> bytes:
    framing = (f"Content-Length: {length}" if length is not None
               else "Transfer-Encoding: chunked")
    return (f"POST /api/topics/{topic}/records HTTP/1.1\r\nHost: t\r\n"
            f"Content-Type: application/json\r\n{framing}\r\n\r\n").encode()


# -- slow requests ------------------------------------------------------------------------

def test_heads_that_never_finish_hold_no_thread_and_get_408(srv):
    before = refusals(srv, "header_timeout")
    crowd = [connect(srv.port) for _ in range(CROWD)]
    for sock in crowd:
        sock.sendall(b"GET /api/hea")
    others_are_served(srv)
    for sock in crowd:
        status, headers, body = read_response(sock)
        assert status == 408 and headers["connection"] == "close"
        assert_envelope(body, "request_timeout")
        assert body["details"] == {"timeout_ms": HEADER_TIMEOUT_MS}
        sock.close()
    assert refusals(srv, "header_timeout") - before == CROWD


def test_bodies_that_trickle_hold_no_thread_get_408_and_store_nothing(srv):
    record = b'{"encoding": "text", "records": [{"value": "never"}]}'
    stored = high_watermark(srv, "victim")
    crowd = [connect(srv.port) for _ in range(CROWD)]
    for sock in crowd:
        sock.sendall(produce_head("victim", len(record)) + record[:10])
    others_are_served(srv)  # one record more
    for sock in crowd:
        status, _, body = read_response(sock)
        assert status == 408
        assert_envelope(body, "request_timeout")
        assert "body" in body["error"]
        sock.close()
    assert high_watermark(srv, "victim") == stored + 1


def test_a_client_that_never_reads_its_responses_holds_no_thread_and_is_cut(srv):
    """Responses of ~10 MB: more than the kernel's socket buffers take (4 MB here)."""
    value = "v" * 10_000
    for _ in range(50):
        resp = requests.post(srv.url("/api/topics/big/records"), json={
            "encoding": "text", "records": [{"value": value}] * 20})
        assert resp.status_code == 200
    before = refusals(srv, "send_timeout")
    crowd = [connect(srv.port, rcvbuf=4096) for _ in range(2 * THREADS)]
    for sock in crowd:
        sock.sendall(b"GET /api/topics/big/partitions/0/records?offset=0&max_records=1000"
                     b"&max_bytes_total=104857600 HTTP/1.1\r\nHost: t\r\n\r\n")
    others_are_served(srv)
    wait_until(lambda: refusals(srv, "send_timeout") - before == len(crowd),
               "every unread response was given up")
    assert metric(srv, "consumer_api_response_bytes_in_flight") == 0
    for sock in crowd:
        sock.close()
    others_are_served(srv)


# -- protocol errors ----------------------------------------------------------------------

@pytest.mark.parametrize("raw, status, code", [
    (b"get /api/health HTTP/1.1\r\nHost: t\r\n\r\n", 400, "invalid_request"),
    (b"GET /" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: t\r\n\r\n", 414, "uri_too_long"),
    (b"GET /api/health HTTP/1.1\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(10_000))
     + b"\r\n", 431, "header_fields_too_large"),
    (b"GET /api/health HTTP/1.1\r\nX-Big: " + b"v" * 100_000 + b"\r\n\r\n", 431,
     "header_fields_too_large"),
    (produce_head("victim", 5)[:-2] + b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400,
     "invalid_request"),
    (produce_head("victim", None) + b"zz\r\n{}\r\n0\r\n\r\n", 400, "invalid_request"),
    (b"GET /api/health HTTP/2.0\r\nHost: t\r\n\r\n", 505, "http_version_not_supported"),
    (b"POST /api/topics HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501, "not_implemented"),
    (b"POST /api/topics HTTP/1.1\r\nExpect: tea\r\nContent-Length: 2\r\n\r\n{}", 417,
     "expectation_failed"),
    (produce_head("victim", MAX_BODY + 1), 413, "payload_too_large"),
], ids=["lowercase-method", "10-KB-url", "10000-headers", "100-KB-header", "cl-and-te",
        "bad-chunk-size", "http2", "gzip-te", "expect-tea", "declared-too-large"])
def test_a_request_that_is_not_acceptable_http_gets_the_envelope(srv, raw, status, code):
    got, headers, body = exchange(srv.port, raw)
    assert got == status and headers["content-type"] == "application/json"
    assert headers["connection"] == "close"
    assert_envelope(body, code)


def test_a_chunked_body_over_the_limit_is_413_and_nothing_of_it_is_stored(srv):
    """The first MAX_BODY bytes alone would be a valid produce: none of it is stored."""
    value = "x" * (MAX_BODY - 100)
    valid = json.dumps({"encoding": "text", "records": [{"value": value}]}).encode()
    assert len(valid) <= MAX_BODY
    body = valid + b" " * (MAX_BODY - len(valid)) + b"junk" * 10_000
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 8192]), body[i:i + 8192])
                      for i in range(0, len(body), 8192)) + b"0\r\n\r\n"
    status, _, reply = exchange(srv.port, produce_head("chunky", None) + chunks)
    assert status == 413
    assert_envelope(reply, "payload_too_large")
    assert reply["details"] == {"max_body_bytes": MAX_BODY}
    assert high_watermark(srv, "chunky") == 0


def test_100_continue_is_answered_before_the_body(srv):
    record = b'{"encoding": "text", "records": [{"value": "after 100"}]}'
    sock = connect(srv.port)
    try:
        sock.sendall(produce_head("victim", len(record))[:-2] + b"Expect: 100-continue\r\n\r\n")
        assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(record)
        status, _, body = read_response(sock)
        assert status == 200 and len(body["offsets"]) == 1
    finally:
        sock.close()


# -- budgets ------------------------------------------------------------------------------

def test_past_the_budget_of_buffered_bodies_a_request_gets_503(server_factory):
    srv = server_factory(CONSUMER_API_REQUEST_BUFFER_BYTES=100_000,
                         CONSUMER_API_MAX_BODY_BYTES=MAX_BODY)
    holder = connect(srv.port)
    holder.sendall(produce_head("any", 90_000) + b" " * 80_000)
    wait_until(lambda: metric(srv, "consumer_api_request_bytes_buffered") >= 80_000,
               "the first body is buffered")
    status, headers, body = exchange(srv.port, produce_head("any", 30_000) + b" " * 30_000)
    assert status == 503 and headers["retry-after"] == "1"
    assert_envelope(body, "unavailable")
    holder.close()
    wait_until(lambda: metric(srv, "consumer_api_request_bytes_buffered") == 0,
               "the budget is given back when the client leaves")
    assert exchange(srv.port, b"GET /api/health HTTP/1.1\r\n\r\n")[0] == 200


# -- logging refusals ---------------------------------------------------------------------

def test_refusals_are_counted_each_and_logged_once_per_client_and_reason(server_factory):
    srv = server_factory()
    for _ in range(5):
        assert exchange(srv.port, b"get / HTTP/1.1\r\n\r\n")[0] == 400
    assert refusals(srv, "bad_request") == 5
    lines = [line for line in srv.output().splitlines()
             if "refused bad_request from address 127.0.0.1" in line]
    assert len(lines) == 1, srv.output()


# -- stopping -----------------------------------------------------------------------------

def test_a_connection_opened_while_the_server_drains_gets_503(server_factory):
    srv = server_factory(CONSUMER_API_SEND_TIMEOUT_MS=60_000)
    resp = requests.post(srv.url("/api/topics"), json={"name": "big", "partitions": 1})
    assert resp.status_code == 201
    for _ in range(4):
        requests.post(srv.url("/api/topics/big/records"), json={
            "encoding": "text", "records": [{"value": "v" * 10_000}] * 100})
    slow = connect(srv.port, rcvbuf=4096)  # its response keeps the server draining
    slow.sendall(b"GET /api/topics/big/partitions/0/records?max_records=1000"
                 b"&max_bytes_total=104857600 HTTP/1.1\r\nHost: t\r\n\r\n")
    assert slow.recv(12) == b"HTTP/1.1 200"
    srv.proc.send_signal(signal.SIGTERM)
    wait_until(lambda: _answers_503(srv.port), "a new connection gets 503")
    status, headers, body = exchange(srv.port, b"GET /api/health HTTP/1.1\r\n\r\n")
    assert status == 503 and headers["connection"] == "close"
    assert_envelope(body, "unavailable")
    slow.close()
    assert srv.wait_exit() == 0


def _answers_503(port: int) -> bool:
    try:
        return exchange(port, b"GET /api/health HTTP/1.1\r\n\r\n")[0] == 503
    except (OSError, AssertionError):
        return False


def test_when_the_master_is_killed_the_worker_stops_listening_and_exits(server_factory):
    srv = server_factory()
    worker = _worker_pid(srv.pid)
    os.kill(srv.pid, signal.SIGKILL)
    srv.proc.wait(timeout=5)
    wait_until(lambda: not _accepts(srv.port), "the orphaned worker closed its socket",
               timeout=5)
    wait_until(lambda: not Path(f"/proc/{worker}").exists() or _zombie(worker),
               "the orphaned worker exited", timeout=10)


def _worker_pid(master: int) -> int:
    for children in Path(f"/proc/{master}/task").glob("*/children"):
        pids = children.read_text().split()
        if pids:
            return int(pids[0])
    raise AssertionError("the master has no worker")


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_a_consume_response_never_read_is_given_up_and_its_records_come_again(srv):
    """The send timeout cuts the connection; the session's position moves back."""
    resp = requests.post(srv.url("/api/topics"), json={"name": "unread", "partitions": 1})
    assert resp.status_code == 201
    for base in range(0, 1000, 20):
        resp = requests.post(srv.url("/api/topics/unread/records"), json={
            "encoding": "text",
            "records": [{"value": f"{base + i:08d}" + "x" * 9_992} for i in range(20)]})
        assert resp.status_code == 200
    sub = requests.post(srv.url("/api/consumers/subscribe"), json={
        "group_id": "unread", "topics": ["unread"], "auto_offset_reset": "earliest"}).json()
    consumer = srv.url(f"/api/consumers/{sub['consumer_id']}")
    body = b'{"max_records": 1000, "max_bytes_total": 104857600, "timeout_ms": 0}'
    sock = connect(srv.port, rcvbuf=4096)
    sock.sendall(b"POST /api/consumers/%s/consume HTTP/1.1\r\nHost: t\r\n"
                 b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                 % (sub["consumer_id"].encode(), len(body), body))
    assert sock.recv(12) == b"HTTP/1.1 200"

    def position() -> int:
        return requests.get(consumer + "/position").json()["offsets"]["unread"]["0"]

    wait_until(lambda: position() == 1000, "the consume took the records")
    wait_until(lambda: position() == 0, "the unread response gave its records back")
    sock.close()
    got = requests.post(consumer + "/consume", json={"max_records": 2, "timeout_ms": 0,
                                                     "encoding": "text"}).json()
    assert [r["value"][:8] for r in got["records"]] == ["00000000", "00000001"]
