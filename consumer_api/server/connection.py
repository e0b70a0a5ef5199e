"""One client connection: its socket (non-blocking), its request reader, the requests read
and not yet answered, and the response being sent.

A connection has exactly one owner at a time -- the worker's event loop, or the one pool
thread serving its requests -- and only the owner touches it; ownership passes through the
worker's hand-off queue (see :mod:`consumer_api.server.worker`). So nothing here locks.

Times are ``time.monotonic()`` seconds.
"""
from __future__ import annotations

import collections
import socket
import time

from consumer_api.server.http11 import RequestReader

RECV_BYTES = 64 * 1024
#: buffers per ``sendmsg`` call (Linux takes up to 1024)
SEND_BUFFERS = 64
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"

# what the owner does with the connection next (see the worker)
READING, BUSY, WRITING, CLOSED = "reading", "busy", "writing", "closed"


class Connection:
    __slots__ = ("sock", "peer", "server", "client", "reader", "pending", "outgoing", "_out",
                 "close_after", "state", "started_at", "head_at", "idle_since", "served",
                 "sent_since", "timer", "eof", "_continue_left")

    def __init__(self, sock: socket.socket, peer, server, max_body_bytes: int, budget=None):
        sock.setblocking(False)
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock, self.peer, self.server = sock, peer, server
        self.client = f"address {peer[0]}" if isinstance(peer, tuple) else "address local"
        self.reader = RequestReader(max_body_bytes, budget)
        self.pending: collections.deque = collections.deque()  # complete requests
        self.outgoing = None  # the handler.Outgoing being sent
        self._out: collections.deque = collections.deque()  # its unsent buffers
        self.close_after = False  # close once the response in ``outgoing`` is sent
        self.state = READING
        self.started_at = self.head_at = None  # when the current request began / its head ended
        self.idle_since = time.monotonic()
        self.served = 0  # responses sent
        self.sent_since = 0.0  # when ``outgoing`` began to be sent
        self.timer = None  # the worker's current deadline entry
        self.eof = False  # the peer closed its side
        self._continue_left = b""  # the part of a 100 Continue the kernel did not take

    # -- reading --------------------------------------------------------------------------

    def read_once(self) -> int:
        """Receive what is there (BlockingIOError when nothing is) and parse it: complete
        requests go to ``pending``; a ``100 Continue`` is sent when a head asks for it.
        Returns the bytes received, 0 at end of stream. ProtocolError for bad input;
        OSError when the connection broke."""
        data = self.sock.recv(RECV_BYTES)
        if not data:
            self.eof = True
            return 0
        reader = self.reader
        was_in, had_head = reader.in_message, reader.head_complete
        done = reader.feed(data)
        if done:
            self.pending.extend(done)
        now = None
        if reader.in_message and (done or not was_in):
            self.started_at = now = time.monotonic()
        if reader.head_complete and (done or not had_head):
            self.head_at = now or time.monotonic()
        self.continue_if_due()
        return len(data)

    def continue_if_due(self) -> None:
        """Send ``100 Continue`` for a head that asked for it -- once the requests before it
        are answered (a response must not come after it)."""
        if self.reader.continue_due and not self.pending and self.outgoing is None:
            self.reader.continue_due = False
            try:
                sent = self.sock.send(CONTINUE)
            except (BlockingIOError, InterruptedError):
                sent = 0
            self._continue_left = CONTINUE[sent:]  # goes out before the next response

    @property
    def partial(self) -> bool:
        """Bytes of a request have arrived and the request is not complete."""
        return self.reader.in_message

    # -- writing --------------------------------------------------------------------------

    def start_sending(self, outgoing, close_after: bool) -> None:
        self.outgoing = outgoing
        if self._continue_left:
            self._out.append(self._continue_left)
            self._continue_left = b""
        self._out.extend(b for b in outgoing.buffers if len(b))
        outgoing.buffers = None  # the queue holds them now; each goes once it is sent
        self.close_after = close_after
        self.sent_since = time.monotonic()

    def send_some(self) -> bool:
        """Send what the kernel takes now; True once everything is sent. BlockingIOError is
        never raised (it means: not yet); OSError when the connection broke."""
        out = self._out
        while out:
            batch = [out[i] for i in range(min(len(out), SEND_BUFFERS))]
            try:
                sent = self.sock.sendmsg(batch)
            except (BlockingIOError, InterruptedError):
                return False
            while sent:
                first = out[0]
                if sent >= len(first):
                    sent -= len(first)
                    out.popleft()
                else:
                    out[0] = memoryview(first)[sent:]
                    sent = 0
        return True

    def finish_sending(self, delivered: bool) -> None:
        """The response ended (sent, or abandoned): tell its body, forget its buffers."""
        outgoing, self.outgoing = self.outgoing, None
        self._out.clear()
        if outgoing is not None:
            outgoing.done(delivered)
        if delivered:
            self.served += 1
            self.idle_since = time.monotonic()
            try:
                self.continue_if_due()  # a head read ahead of this response asked for it
            except OSError:
                pass  # the connection broke: its next read says so

    # -- the end --------------------------------------------------------------------------

    def close(self) -> None:
        """Close the socket; give back what the connection held (idempotent)."""
        if self.state == CLOSED:
            return
        self.state = CLOSED
        self.finish_sending(False)
        self.reader.release()
        for request in self.pending:
            request.release()
        self.pending.clear()
        try:
            self.sock.close()
        except OSError:
            pass
