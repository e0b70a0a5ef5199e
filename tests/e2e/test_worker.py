"""The worker over a real socket: a client that sends its next request on the same connection
right away (served by the thread that holds the connection), one that pipelines, one that goes
quiet (back to the worker's event loop) and one that hangs up -- every request answered once,
in order, on the one connection."""
from __future__ import annotations

import json
import socket
import time

import pytest

from consumer_api.server.worker import HOT_WAIT_S
from tests.e2e.conftest import reset_mid_response, start_server
from tests.waiting import wait_until

TOPIC = "worker-e2e"


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    with start_server(tmp_path_factory.mktemp("worker-data")) as server:
        conn = Connection(server.port)
        status, _ = conn.exchange(request("POST", "/api/topics",
                                          {"name": TOPIC, "partitions": 1}))
        assert status == 201
        conn.close()
        yield server


def request(method: str, path: str, body=None) -> bytes:
    data = b"" if body is None else json.dumps(body).encode()
    head = f"{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Length: {len(data)}\r\n"
    if body is not None:
        head += "Content-Type: application/json\r\n"
    return (head + "\r\n").encode() + data


def produce(value: str) -> bytes:
    return request("POST", f"/api/topics/{TOPIC}/records",
                   {"records": [{"value": value}], "encoding": "text"})


class Connection:
    """One kept-alive HTTP/1.1 connection, read by hand (responses carry a length)."""

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_response(self, head_only: bool = False) -> tuple[int, dict | None]:
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
        assert headers.get("connection") == "keep-alive", headers
        length = 0 if head_only else int(headers["content-length"])
        while len(self.buf) < length:
            self._fill()
        body, self.buf = self.buf[:length], self.buf[length:]
        return int(lines[0].split()[1]), json.loads(body) if body else None

    def exchange(self, data: bytes) -> tuple[int, dict | None]:
        self.send(data)
        return self.read_response()

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        assert chunk, "the server closed the connection"
        self.buf += chunk

    def close(self) -> None:
        self.sock.close()


def offsets_of(body: dict) -> list[int]:
    return [o["offset"] for o in body["offsets"]]


def test_requests_sent_back_to_back_are_each_answered_in_order(srv):
    conn = Connection(srv.port)
    answers = [conn.exchange(produce(f"b2b-{i}")) for i in range(50)]
    assert {status for status, _ in answers} == {200}
    offsets = [offsets_of(body)[0] for _, body in answers]
    assert offsets == list(range(offsets[0], offsets[0] + 50))
    conn.close()


def test_pipelined_requests_are_answered_in_order(srv):
    conn = Connection(srv.port)
    conn.send(produce("pipelined-a") + produce("pipelined-b")
              + request("GET", "/api/health") + produce("pipelined-c"))
    (s1, a), (s2, b), (s3, health), (s4, c) = [conn.read_response() for _ in range(4)]
    assert (s1, s2, s3, s4) == (200, 200, 200, 200) and health == {"status": "ok"}
    first = offsets_of(a)[0]
    assert offsets_of(b) == [first + 1] and offsets_of(c) == [first + 2]
    status, read = conn.exchange(request(
        "GET", f"/api/topics/{TOPIC}/partitions/0/records?offset={first}&encoding=text"))
    assert status == 200
    assert [r["value"] for r in read["records"]] == ["pipelined-a", "pipelined-b",
                                                     "pipelined-c"]
    conn.close()


def test_a_connection_quiet_past_the_hot_window_is_still_served(srv):
    conn = Connection(srv.port)
    assert conn.exchange(request("GET", "/api/health"))[0] == 200
    for _ in range(3):
        # nothing to poll for: the connection must sit idle past the window to be handed
        # back to the event loop
        time.sleep(HOT_WAIT_S * 10)
        status, body = conn.exchange(produce("after-a-pause"))
        assert status == 200 and len(body["offsets"]) == 1
    conn.close()


def test_a_head_request_gets_headers_and_the_connection_goes_on(srv):
    conn = Connection(srv.port)
    conn.send(request("HEAD", "/api/health"))
    assert conn.read_response(head_only=True)[0] == 200
    assert conn.exchange(request("GET", "/api/health")) == (200, {"status": "ok"})
    conn.close()


def test_clients_hanging_up_right_after_a_response_leave_no_error(srv):
    for i in range(20):
        conn = Connection(srv.port)
        assert conn.exchange(produce(f"hang-up-{i}"))[0] == 200
        conn.close()  # the server is probably still waiting for a next request
    conn = Connection(srv.port)
    assert conn.exchange(request("GET", "/api/health")) == (200, {"status": "ok"})
    conn.close()
    out = srv.output()
    assert "Traceback" not in out and "[ERROR]" not in out, out


def test_a_consume_response_cut_off_by_the_client_is_consumed_again(srv):
    """The client resets its connection while the server is still writing a large consume
    response: the session's position moves back, and the records come again."""
    topic, count, size = "cut-off", 10_000, 2_000  # ~27 MB of JSON: more than socket buffers
    conn = Connection(srv.port)
    assert conn.exchange(request("POST", "/api/topics", {"name": topic, "partitions": 1}))[0] == 201
    for base in range(0, count, 1_000):
        status, _ = conn.exchange(request("POST", f"/api/topics/{topic}/records", {
            "encoding": "text", "records": [{"value": f"{base + i:08d}" + "x" * (size - 8)}
                                            for i in range(1_000)]}))
        assert status == 200
    status, sub = conn.exchange(request("POST", "/api/consumers/subscribe", {
        "group_id": "cut-off", "topics": [topic], "auto_offset_reset": "earliest"}))
    assert status == 200
    cid = sub["consumer_id"]

    reset_mid_response(srv.port, request("POST", f"/api/consumers/{cid}/consume", {
        "max_records": count, "max_bytes_total": 100 << 20, "timeout_ms": 0}))

    def position():
        status, body = conn.exchange(request("GET", f"/api/consumers/{cid}/position"))
        assert status == 200
        return body["offsets"][topic]["0"]

    wait_until(lambda: position() == 0, "the position moved back to 0")
    status, got = conn.exchange(request("POST", f"/api/consumers/{cid}/consume", {
        "max_records": 3, "timeout_ms": 0, "encoding": "text"}))
    assert status == 200
    assert [(r["offset"], r["value"][:8]) for r in got["records"]] == [
        (0, "00000000"), (1, "00000001"), (2, "00000002")]
    conn.close()
    assert "Traceback" not in srv.output()
