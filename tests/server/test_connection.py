"""One client connection (consumer_api.server.connection) over real sockets (a Unix socket
pair, and loopback TCP): read_once (complete requests to ``pending``, end of stream, nothing
there yet, ``100 Continue``, protocol errors, the times the owner's deadlines start from),
sending a large response in pieces to a peer that reads slowly, finish_sending, and close()
(an unsent response settled as not delivered, buffered bodies given back; idempotent)."""
from __future__ import annotations

import select
import socket
import threading
import types

import pytest

from consumer_api.budget import ByteBudget
from consumer_api.server import connection as connection_module
from consumer_api.server.connection import CLOSED, CONTINUE, READING, SEND_BUFFERS, Connection
from consumer_api.server.handler import Outgoing
from consumer_api.server.http11 import ProtocolError

MAX_BODY = 1 << 20
GET = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"
TIMEOUT_S = 5.0  # only ever reached when a test fails


def unix_pair(sndbuf=None):
    server, client = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    if sndbuf:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
    return server, client, "", "/run/test.sock"


def tcp_pair(sndbuf=None):
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if sndbuf:
            client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, sndbuf)
        client.connect(listener.getsockname())
        server, peer = listener.accept()
        if sndbuf:
            server.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
        return server, client, peer, listener.getsockname()


PAIRS = {"unix": unix_pair, "tcp": tcp_pair}


@pytest.fixture
def opened():
    """``opened(kind, budget=None, sndbuf=None)`` -> (Connection, the client's socket)."""
    made = []

    def open_(kind="unix", budget=None, sndbuf=None):
        server, client, peer, addr = PAIRS[kind](sndbuf)
        client.settimeout(TIMEOUT_S)
        conn = Connection(server, peer, addr, MAX_BODY, budget)
        made.append((conn, client))
        return conn, client

    yield open_
    for conn, client in made:
        conn.close()
        client.close()


@pytest.fixture
def clock(monkeypatch):
    """The connection's monotonic clock, moved by hand."""
    fake = types.SimpleNamespace(now=100.0)
    monkeypatch.setattr(connection_module, "time",
                        types.SimpleNamespace(monotonic=lambda: fake.now))
    return fake


def read_until(conn: Connection, done) -> None:
    """read_once whenever the socket is readable until ``done()``."""
    while not done():
        ready, _, _ = select.select([conn.sock], [], [], TIMEOUT_S)
        assert ready, "nothing arrived"
        conn.read_once()


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = bytearray()
    while len(data) < n:
        piece = sock.recv(n - len(data))
        assert piece, f"end of stream after {len(data)} of {n} bytes"
        data += piece
    return bytes(data)


class Settled:
    """A body's ``settle``: records each call."""

    def __init__(self):
        self.calls = []

    def __call__(self, delivered):
        self.calls.append(delivered)


# -- reading --------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", PAIRS)
def test_complete_requests_go_to_pending(opened, kind):
    conn, client = opened(kind)
    client.sendall(GET + b"POST /p HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi" + b"GET /next")
    read_until(conn, lambda: len(conn.pending) == 2 and conn.partial)
    assert [(r.method, r.target, r.body) for r in conn.pending] == [
        ("GET", b"/", b""), ("POST", b"/p", b"hi")]
    client.sendall(b" HTTP/1.1\r\n\r\n")
    read_until(conn, lambda: len(conn.pending) == 3)
    assert conn.pending[2].target == b"/next"
    assert not conn.partial


def test_read_once_returns_the_bytes_received(opened):
    conn, client = opened()
    client.sendall(GET)
    assert conn.read_once() == len(GET)
    assert len(conn.pending) == 1


def test_nothing_there_raises_blocking_io_error(opened):
    conn, _client = opened()
    with pytest.raises(BlockingIOError):
        conn.read_once()
    assert not conn.eof and not conn.pending


@pytest.mark.parametrize("kind", PAIRS)
def test_end_of_stream(opened, kind):
    conn, client = opened(kind)
    client.sendall(GET)
    client.shutdown(socket.SHUT_WR)
    read_until(conn, lambda: conn.pending)
    read_until(conn, lambda: conn.eof)
    assert conn.read_once() == 0
    assert conn.eof is True
    assert len(conn.pending) == 1  # what arrived before the end is still to be answered


def test_protocol_error_propagates(opened):
    conn, client = opened()
    client.sendall(b"get / HTTP/1.1\r\n\r\n")
    with pytest.raises(ProtocolError) as caught:
        conn.read_once()
    assert caught.value.status == 400
    assert not conn.pending


@pytest.mark.parametrize("kind", PAIRS)
def test_100_continue_when_the_head_asks_for_it(opened, kind):
    conn, client = opened(kind)
    client.sendall(b"PUT /p HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n")
    read_until(conn, lambda: conn.reader.head_complete)
    assert recv_exactly(client, len(CONTINUE)) == CONTINUE == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert conn.reader.continue_due is False
    client.sendall(b"abc")
    read_until(conn, lambda: conn.pending)
    assert conn.pending[0].body == b"abc"
    client.setblocking(False)
    with pytest.raises(BlockingIOError):  # one 100 Continue, not one per read
        client.recv(100)


def test_no_100_continue_without_expect(opened):
    conn, client = opened()
    client.sendall(b"PUT /p HTTP/1.1\r\nContent-Length: 3\r\n\r\n")
    read_until(conn, lambda: conn.reader.head_complete)
    client.setblocking(False)
    with pytest.raises(BlockingIOError):
        client.recv(100)


def test_deadline_times_are_not_moved_by_a_trickling_client(opened, clock):
    conn, client = opened()
    clock.now = 10.0
    client.sendall(b"POST /p HTTP/1.1\r\nContent-")
    conn.read_once()
    assert conn.started_at == 10.0 and conn.partial and not conn.reader.head_complete
    clock.now = 11.0
    client.sendall(b"Length: 3\r\n")
    conn.read_once()
    assert conn.started_at == 10.0  # the head's deadline runs from its first byte
    clock.now = 12.0
    client.sendall(b"\r\na")
    conn.read_once()
    assert conn.started_at == 10.0 and conn.head_at == 12.0
    clock.now = 13.0
    client.sendall(b"b")
    conn.read_once()
    assert conn.head_at == 12.0  # the body's deadline runs from the end of the head
    clock.now = 14.0
    client.sendall(b"c" + b"GET / HT")
    conn.read_once()
    assert len(conn.pending) == 1
    assert conn.started_at == 14.0 and conn.partial  # the next request began now


def test_client_names_the_peer(opened):
    assert opened("tcp")[0].client == "address 127.0.0.1"
    assert opened("unix")[0].client == "address local"


def test_tcp_nodelay_on_tcp(opened):
    conn, _client = opened("tcp")
    assert conn.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    assert conn.sock.getblocking() is False
    assert opened("unix")[0].sock.getblocking() is False


# -- writing --------------------------------------------------------------------------------

def big_response():
    head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n"
    chunks = [bytes([65 + i % 26]) * (1 + (i * 7919) % 30_000) for i in range(4 * SEND_BUFFERS)]
    head %= sum(map(len, chunks))
    return [head, *chunks]


@pytest.mark.parametrize("kind", PAIRS)
def test_large_response_sent_in_pieces_to_a_slow_reader(opened, kind):
    conn, client = opened(kind, sndbuf=16 * 1024)
    buffers = big_response()
    expected = b"".join(buffers)
    settled = Settled()
    outgoing = Outgoing(buffers, settle=settled)
    conn.start_sending(outgoing, close_after=False)
    assert outgoing.buffers is None  # the connection's queue holds them now
    received = bytearray()
    not_yet = 0
    while not conn.send_some():
        not_yet += 1
        received += client.recv(64 * 1024)  # a reader slower than the writer
        assert not_yet < 100_000
    assert not_yet > 0
    received += recv_exactly(client, len(expected) - len(received))
    assert received == expected
    assert settled.calls == []  # sent is not ended: the owner says when
    conn.finish_sending(True)
    assert settled.calls == [True]
    assert conn.served == 1 and conn.outgoing is None


def test_send_some_without_a_reader_returns_false(opened):
    conn, client = opened(sndbuf=4096)
    conn.start_sending(Outgoing([b"x" * (4 << 20)]), close_after=False)
    assert conn.send_some() is False
    assert conn.send_some() is False  # still nothing taken: no error, no busy loop
    client.setblocking(False)
    got = 0
    while not conn.send_some():
        try:
            got += len(client.recv(1 << 20))
        except BlockingIOError:
            pass
    while got < 4 << 20:
        client.setblocking(True)
        got += len(client.recv(1 << 20))
    assert got == 4 << 20


def test_small_response_sent_at_once(opened):
    conn, client = opened()
    conn.start_sending(Outgoing([b"HTTP/1.1 204 No Content\r\n", b"\r\n"]), close_after=True)
    assert conn.close_after is True
    assert conn.send_some() is True
    assert recv_exactly(client, 27) == b"HTTP/1.1 204 No Content\r\n\r\n"
    assert conn.send_some() is True  # nothing left


class SendGuard:
    """Wraps a socket; fails the test if sendmsg is called in a loop that sends nothing."""

    def __init__(self, sock):
        self._sock, self.empty_sends = sock, 0

    def sendmsg(self, buffers):
        sent = self._sock.sendmsg(buffers)
        if sent == 0:
            self.empty_sends += 1
            assert self.empty_sends < 100, "send_some loops on buffers that send nothing"
        return sent

    def __getattr__(self, name):
        return getattr(self._sock, name)


@pytest.mark.parametrize("buffers", [
    [b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n", b"{}", b""],
    [b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n", b"", b"{", b"", b"}", b"", b""],
])
def test_empty_chunks_are_sent_too(opened, buffers):
    # a body's chunks are "a list of bytes": an empty one among them, or at the end, is
    # legal and must not stop (or spin) the sending
    conn, client = opened()
    conn.sock = SendGuard(conn.sock)
    conn.start_sending(Outgoing(list(buffers)), close_after=False)
    assert conn.send_some() is True
    expected = b"".join(buffers)
    assert recv_exactly(client, len(expected)) == expected


def test_finish_sending_abandoned(opened, clock):
    conn, _client = opened()
    settled = Settled()
    idle_since = conn.idle_since
    clock.now += 5
    conn.start_sending(Outgoing([b"x"], settle=settled), close_after=False)
    conn.finish_sending(False)
    assert settled.calls == [False]
    assert conn.served == 0 and conn.idle_since == idle_since


def test_finish_sending_counts_served(opened, clock):
    conn, client = opened()
    for i in range(3):
        clock.now = 200.0 + i
        conn.start_sending(Outgoing([b"%d" % i]), close_after=False)
        assert conn.send_some()
        conn.finish_sending(True)
    assert conn.served == 3
    assert conn.idle_since == 202.0
    assert recv_exactly(client, 3) == b"012"


# -- closing --------------------------------------------------------------------------------

def test_close_settles_and_gives_everything_back(opened):
    budget = ByteBudget(1 << 20)
    conn, client = opened(budget=budget)
    client.sendall(b"POST /a HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"
                   b"POST /b HTTP/1.1\r\nContent-Length: 100\r\n\r\n" + b"x" * 7)
    read_until(conn, lambda: conn.pending and budget.used == 12)
    settled = Settled()
    conn.start_sending(Outgoing([b"x" * 10], settle=settled), close_after=False)
    conn.close()
    assert settled.calls == [False]
    assert budget.used == 0
    assert not conn.pending
    assert conn.state == CLOSED
    assert conn.sock.fileno() == -1
    assert client.recv(100) == b""  # the client sees the end
    conn.close()
    assert settled.calls == [False] and budget.used == 0


def test_close_after_a_protocol_error_gives_back_the_partial_body(opened):
    budget = ByteBudget(1 << 20)
    conn, client = opened(budget=budget)
    client.sendall(b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\nzz\r\n")
    with pytest.raises(ProtocolError):
        read_until(conn, lambda: False)
    assert budget.used == 4
    conn.close()
    assert budget.used == 0


def test_close_of_an_idle_connection(opened):
    conn, _client = opened()
    assert conn.state == READING
    conn.close()
    conn.close()
    assert conn.state == CLOSED and conn.served == 0


# -- 100 Continue behind a response; a request longer than one read -------------------------

EXPECTING = b"PUT /p HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n"
NO_CONTENT = b"HTTP/1.1 204 No Content\r\n\r\n"


def drain(client: socket.socket) -> bytes:
    """What the client can read now, without waiting."""
    client.setblocking(False)
    data = bytearray()
    try:
        while piece := client.recv(1 << 16):
            data += piece
    except BlockingIOError:
        pass
    return bytes(data)


def test_100_continue_for_a_head_behind_a_request_comes_after_its_response(opened):
    conn, client = opened()
    client.sendall(GET + EXPECTING)
    read_until(conn, lambda: conn.pending and conn.reader.head_complete)
    assert drain(client) == b""  # not before the response to the GET
    conn.pending.popleft()
    conn.start_sending(Outgoing([NO_CONTENT]), close_after=False)
    assert conn.send_some()
    conn.finish_sending(True)
    assert drain(client) == NO_CONTENT + CONTINUE


def test_100_continue_due_when_the_send_buffer_is_full_is_not_lost(opened):
    # a response to a slow reader ends with the kernel's buffer full: the 100 Continue due
    # for the next head cannot go now; it must not be dropped or cut
    conn, client = opened(sndbuf=4096)
    client.sendall(GET + EXPECTING)
    read_until(conn, lambda: conn.pending and conn.reader.head_complete)
    conn.pending.popleft()
    conn.start_sending(Outgoing([NO_CONTENT]), close_after=False)
    assert conn.send_some()
    filler = 0
    try:
        while True:  # the rest of a long response, still in the kernel
            filler += conn.sock.send(b"f" * 1024)
    except BlockingIOError:
        pass
    conn.finish_sending(True)
    received = drain(client)
    assert received.startswith(NO_CONTENT + b"f" * filler)
    # whatever of it the kernel did not take goes out, whole, before the next response
    conn.start_sending(Outgoing([NO_CONTENT]), close_after=False)
    while not conn.send_some():
        received += drain(client)
    received += drain(client)
    assert received[len(NO_CONTENT) + filler:] == CONTINUE + NO_CONTENT


def test_a_request_longer_than_one_read_is_read_whole(opened):
    conn, client = opened()
    body = bytes(range(256)) * 1200  # more than a read and than the socket buffers
    data = b"POST /big HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    sender = threading.Thread(target=client.sendall, args=(data,))
    sender.start()
    read_until(conn, lambda: conn.pending)
    sender.join(TIMEOUT_S)
    assert conn.pending[0].body == body
