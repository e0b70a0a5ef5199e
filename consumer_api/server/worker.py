"""The gunicorn worker consumer-api runs in: an event loop that reads and writes, and a pool
of threads that only ever run the application on complete requests.

# design: the main thread runs a selector loop. It accepts connections, reads requests
# (non-blocking, parsed a piece at a time) and sends responses. Only a request that has
# arrived whole -- head and body -- is handed to a pool thread, which runs the WSGI app,
# makes the body whole and sends what the kernel takes at once. Whatever is left to send,
# and every connection that goes quiet, comes back to the loop through a queue (and a byte
# on a pipe that wakes the selector). So a client that trickles its request, or never reads
# its response, holds a socket and a few buffers, never a thread. A thread that has just
# answered keeps the connection for up to HOT_WAIT_S in case the next request follows
# (producers and consumers send back to back): no hand-off at all on that path -- unless
# other requests wait for a thread: then the next one queues behind them. The pool takes
# waiting requests one client (address) at a time, so a client with a hundred requests in
# flight delays another's by one request, not a hundred.
#
# Deadlines (a heap, checked every turn of the loop): a request's head must arrive within
# header_timeout_ms of its first byte and its body within body_timeout_ms of its head,
# else 408 in the error envelope; a response must be sent within send_timeout_ms, else
# the connection is cut (a consume's records are given back). Idle kept-alive connections
# close after gunicorn's ``keepalive``; new ones that send nothing after header_timeout_ms.
#
# Stopping (SIGTERM): waiting long-polls are answered at once and the loop goes on until
# no request is being served or sent; meanwhile new requests, on new connections too, get
# 503 in the envelope. When the gunicorn master disappears (kill -9) the worker closes its
# listening sockets within a second, so a restarted server never shares the port with it.

Ownership: a :class:`~consumer_api.server.connection.Connection` belongs to the loop or to
one pool thread, never both; the selector, the deadline heap and the connection table are
the loop's alone. Cross-thread: the hand-off queue (thread-safe) and ``_draining`` (one
attribute, set by the loop).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import errno
import heapq
import itertools
import logging
import os
import queue
import select
import selectors
import socket
import threading
import time

from gunicorn.workers import base

from consumer_api.server import handler
from consumer_api.server.connection import BUSY, CLOSED, READING, WRITING, Connection
from consumer_api.server.environ import build_environ
from consumer_api.server.http11 import ProtocolError
from consumer_api.server.pool import ThreadPool

log = logging.getLogger(__name__)

#: how long a thread that answered keeps its connection for the next request (seconds)
HOT_WAIT_S = 0.002
#: the most a thread spends reading one request that trickles in, before the loop takes it
HOT_READ_S = 0.02
#: after a response that closes its connection: how long to read and drop what the client
#: still sends, so that it reads the response rather than a reset (seconds)
LINGER_S = 2.0
#: connections accepted per wake-up of a listening socket
ACCEPT_BATCH = 64
#: the arbiter only needs a sign of life within ``timeout``
HEARTBEAT_EVERY_S = 1.0
LINGERING = "lingering"


class Worker(base.Worker):
    """gunicorn worker class ``consumer_api.server.worker.Worker`` (see the module doc)."""

    _last_notify = 0.0
    _draining = False

    # -- gunicorn's hooks -----------------------------------------------------------------

    def init_process(self):
        _tune_malloc()
        if self.cfg.is_ssl:
            raise RuntimeError("this worker speaks plain HTTP: terminate TLS in nginx "
                               "(deploy/nginx.conf)")
        super().init_process()

    def notify(self):
        now = time.monotonic()
        if now - self._last_notify >= HEARTBEAT_EVERY_S:
            self._last_notify = now
            super().notify()

    def handle_exit(self, sig, frame):
        """SIGTERM: answer every waiting long-poll now and refuse new work (503), then
        serve out what is in flight (the loop drains)."""
        if self.alive:
            self._begin_app_shutdown()
        super().handle_exit(sig, frame)

    def _begin_app_shutdown(self) -> None:
        app = getattr(self, "wsgi", None)
        if app is not None:
            from consumer_api.app import begin_shutdown
            threading.Thread(target=begin_shutdown, args=(app,), name="drain",
                             daemon=True).start()

    # -- set-up and tear-down -------------------------------------------------------------

    def run(self):
        from consumer_api.api.state import state_of
        hooks = state_of(self.wsgi)
        config = hooks.config
        self._refusals = hooks.refusals
        self._request_budget = hooks.request_budget
        self._max_body = config.max_body_bytes
        self._header_timeout = config.header_timeout_ms / 1000
        self._body_timeout = config.body_timeout_ms / 1000
        self._send_timeout = config.send_timeout_ms / 1000
        self._max_conns = self.cfg.worker_connections
        self._selector = selectors.DefaultSelector()
        self._conns: set = set()
        self._timers: list = []
        self._seq = itertools.count()
        self._handoffs: queue.SimpleQueue = queue.SimpleQueue()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._wake_pending = False
        self._listeners = {}
        self._accept_paused_until = 0.0
        self._drain_deadline = None
        self._pool = ThreadPool(self.cfg.threads)
        self._pool.start()
        self._selector.register(self._wake_r, selectors.EVENT_READ, self._on_wake)
        self._selector.register(self.PIPE[0], selectors.EVENT_READ, self._on_signal)
        for listener in self.sockets:
            listener.setblocking(False)
            self._listeners[listener] = listener.getsockname()
        self._listen(True)
        try:
            self._loop()
        finally:
            self._teardown()

    def _teardown(self) -> None:
        for conn in list(self._conns):
            if conn.state != BUSY:  # a busy one is its thread's; the process ends anyway
                conn.close()
        self._pool.stop()
        self._selector.close()

    # -- the loop -------------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            self.notify()
            if self.alive and os.getppid() != self.ppid:
                self._orphaned()
            if not self.alive and not self._draining:
                self._start_drain()
            if self._draining and self._drained():
                return
            for key, _events in self._selector.select(self._select_timeout()):
                target = key.data
                if type(target) is Connection:
                    self._writable(target) if target.state == WRITING else self._readable(target)
                else:
                    target(key.fileobj)
            self._expire(time.monotonic())
            if not self._accepting:
                self._maybe_resume_accepting()

    def _select_timeout(self) -> float:
        timeout = 1.0
        if self._timers:
            timeout = min(timeout, max(0.0, self._timers[0][0] - time.monotonic()))
        if self._draining:
            timeout = min(timeout, 0.1)
        return timeout

    def _on_signal(self, fd) -> None:
        _drain_pipe(fd)  # a signal arrived: the loop's next turn acts on ``alive``

    def _on_wake(self, fd) -> None:
        _drain_pipe(fd)
        self._wake_pending = False
        while True:
            try:
                conn, state = self._handoffs.get_nowait()
            except queue.Empty:
                return
            self._take_back(conn, state)

    def _hand_back(self, conn: Connection, state: str) -> None:
        """(Pool thread.) Give the connection back to the loop, to close, read or write."""
        self._handoffs.put((conn, state))
        if not self._wake_pending:
            self._wake_pending = True
            try:
                os.write(self._wake_w, b"!")
            except BlockingIOError:
                pass  # the pipe is full of wake-ups already

    def _take_back(self, conn: Connection, state: str) -> None:
        if state == CLOSED:
            self._close(conn)
        elif state == WRITING:
            self._watch(conn, WRITING)
        elif state == LINGERING:
            self._linger(conn)
        elif conn.pending:
            self._dispatch(conn)
        elif self._draining and not conn.partial:
            self._close(conn)
        else:
            self._watch(conn, READING)

    # -- accepting ------------------------------------------------------------------------

    _accepting = False

    def _listen(self, on: bool) -> None:
        for listener in self._listeners:
            if on:
                self._selector.register(listener, selectors.EVENT_READ, self._accept)
            else:
                self._selector.unregister(listener)
        self._accepting = on

    def _maybe_resume_accepting(self) -> None:
        if (self._listeners and len(self._conns) < self._max_conns
                and time.monotonic() >= self._accept_paused_until):
            self._listen(True)

    def _accept(self, listener) -> None:
        for _ in range(ACCEPT_BATCH):
            if len(self._conns) >= self._max_conns:
                self._listen(False)
                return
            try:
                sock, peer = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    log.warning("cannot accept connections: %s; pausing for a second", exc)
                    self._accept_paused_until = time.monotonic() + 1.0
                    self._listen(False)
                    return
                if exc.errno in (errno.ECONNABORTED, errno.EPROTO):
                    continue
                raise
            conn = Connection(sock, peer, self._listeners[listener], self._max_body,
                              self._request_budget)
            self._conns.add(conn)
            self._watch(conn, READING)

    def _orphaned(self) -> None:
        """The master is gone (killed): stop listening now, finish what is in flight."""
        log.warning("the gunicorn master (pid %s) is gone: closing the listening sockets "
                    "and stopping", self.ppid)
        if self._accepting:
            self._listen(False)
        for listener in self._listeners:
            listener.close()
        self._listeners = {}
        self._begin_app_shutdown()
        self.alive = False

    # -- connections in the loop ----------------------------------------------------------

    def _watch(self, conn: Connection, state: str) -> None:
        """Own ``conn`` in the loop: wait for it to become readable (READING, LINGERING) or
        writable (WRITING), under the matching deadline."""
        conn.state = state
        events = selectors.EVENT_WRITE if state == WRITING else selectors.EVENT_READ
        try:
            self._selector.modify(conn.sock, events, conn)
        except KeyError:
            self._selector.register(conn.sock, events, conn)
        self._set_timer(conn)

    def _unwatch(self, conn: Connection) -> None:
        try:
            self._selector.unregister(conn.sock)
        except (KeyError, ValueError):
            pass

    def _close(self, conn: Connection) -> None:
        self._unwatch(conn)
        conn.close()
        conn.timer = None
        self._conns.discard(conn)

    def _dispatch(self, conn: Connection) -> None:
        """Hand a connection with a complete request to a pool thread."""
        if self._draining:
            return self._refuse(conn, ProtocolError(
                503, "unavailable", "the server is shutting down", "draining",
                {"state": "draining"}))
        self._unwatch(conn)
        conn.state = BUSY
        conn.timer = None
        self._pool.submit(self._serve, conn, conn.client)

    def _readable(self, conn: Connection) -> None:
        if conn.state == LINGERING:
            return self._discard(conn)
        try:
            if not conn.read_once():
                return self._dispatch(conn) if conn.pending else self._close(conn)
        except (BlockingIOError, InterruptedError):
            return
        except ProtocolError as exc:
            return self._refuse(conn, exc)
        except OSError:
            return self._close(conn)
        if conn.pending:
            self._dispatch(conn)
        else:
            self._set_timer(conn)

    def _writable(self, conn: Connection) -> None:
        try:
            if not conn.send_some():
                return
        except OSError:
            return self._close(conn)
        conn.finish_sending(True)
        if conn.close_after:
            return self._linger(conn)
        if conn.pending:
            return self._dispatch(conn)
        if self._draining:
            return self._close(conn)
        self._watch(conn, READING)

    def _refuse(self, conn: Connection, exc: ProtocolError) -> None:
        """Answer ``exc`` in the envelope, then close (from the loop)."""
        self._refusals.record(exc.reason, conn.client, exc.message)
        conn.reader.release()
        extra = (("Retry-After", "1"),) if exc.status == 503 else ()
        conn.start_sending(handler.error(exc.status, exc.code, exc.message, exc.details, extra),
                           close_after=True)
        self._watch(conn, WRITING)
        self._writable(conn)

    def _linger(self, conn: Connection) -> None:
        """The response is sent and the connection ends: say so (FIN), then read and drop
        what the client still sends for up to LINGER_S, so that it reads the response."""
        try:
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            return self._close(conn)
        self._watch(conn, LINGERING)

    def _discard(self, conn: Connection) -> None:
        try:
            while conn.sock.recv(256 * 1024):
                pass
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            pass
        self._close(conn)  # end of stream, or broken

    # -- deadlines ------------------------------------------------------------------------

    def _deadline(self, conn: Connection) -> tuple:
        if conn.state == WRITING:
            return conn.sent_since + self._send_timeout, "send_timeout"
        if conn.state == LINGERING:
            return time.monotonic() + LINGER_S, "linger"
        if conn.reader.head_complete:
            return conn.head_at + self._body_timeout, "body_timeout"
        if conn.partial:
            return conn.started_at + self._header_timeout, "header_timeout"
        idle = self.cfg.keepalive if conn.served else self._header_timeout
        return conn.idle_since + idle, "idle"

    def _set_timer(self, conn: Connection) -> None:
        deadline, kind = self._deadline(conn)
        timer = conn.timer
        if timer is not None and timer[3] == kind and timer[0] == deadline:
            return
        conn.timer = (deadline, next(self._seq), conn, kind)
        heapq.heappush(self._timers, conn.timer)

    def _expire(self, now: float) -> None:
        timers = self._timers
        while timers and timers[0][0] <= now:
            entry = heapq.heappop(timers)
            conn = entry[2]
            if conn.timer is not entry or conn.state in (BUSY, CLOSED):
                continue
            kind = entry[3]
            if kind in ("header_timeout", "body_timeout"):
                what = "head" if kind == "header_timeout" else "body"
                limit = self._header_timeout if kind == "header_timeout" else self._body_timeout
                self._refuse(conn, ProtocolError(
                    408, "request_timeout",
                    f"the request's {what} did not arrive within {limit:g} s", kind,
                    {"timeout_ms": int(limit * 1000)}))
            elif kind == "send_timeout":
                self._refusals.record("send_timeout", conn.client,
                                      f"a response of {conn.outgoing.size} bytes was not "
                                      f"taken within {self._send_timeout:g} s")
                self._close(conn)
            else:  # idle, linger
                self._close(conn)

    # -- stopping -------------------------------------------------------------------------

    def _start_drain(self) -> None:
        self._draining = True
        self._drain_deadline = time.monotonic() + self.cfg.graceful_timeout
        for conn in list(self._conns):
            if conn.state == READING and not conn.partial and not conn.pending:
                self._close(conn)

    def _drained(self) -> bool:
        if time.monotonic() >= self._drain_deadline:
            busy = sum(1 for c in self._conns if c.state in (BUSY, WRITING))
            if busy:
                log.warning("stopping with %d requests still in flight after %s s", busy,
                            self.cfg.graceful_timeout)
            return True
        return not any(c.state in (BUSY, WRITING) for c in self._conns)

    # -- serving (pool threads) -----------------------------------------------------------

    def _serve(self, conn: Connection) -> None:
        """(Pool thread.) Answer the connection's complete requests, and the next ones
        while they follow at once; then give it back to the loop."""
        try:
            while True:
                request = conn.pending.popleft()
                outgoing, close_after = self._respond(conn, request)
                conn.start_sending(outgoing, close_after)
                if not conn.send_some():
                    return self._hand_back(conn, WRITING)
                conn.finish_sending(True)
                if close_after:
                    return self._hand_back(conn, LINGERING)
                if not conn.pending and not self._read_next(conn):
                    return self._hand_back(conn, READING)
                if self._pool.waiting:  # others wait for a thread: this one takes its turn
                    return self._pool.submit(self._serve, conn, conn.client)
        except ProtocolError as exc:
            self._refusals.record(exc.reason, conn.client, exc.message)
            conn.reader.release()
            conn.start_sending(handler.error(exc.status, exc.code, exc.message, exc.details),
                               close_after=True)
            self._hand_back(conn, WRITING)
        except OSError:
            self._hand_back(conn, CLOSED)
        except Exception:
            log.exception("serving a connection failed")
            self._hand_back(conn, CLOSED)

    def _respond(self, conn: Connection, request) -> tuple:
        keep_alive = (request.keep_alive and not conn.eof and not self._draining
                      and not conn.reader.ended)
        try:
            environ = build_environ(request, conn.sock, conn.peer, conn.server)
            return handler.call(self.wsgi, environ, keep_alive), not keep_alive
        except ProtocolError as exc:
            self._refusals.record(exc.reason, conn.client, exc.message)
            return handler.error(exc.status, exc.code, exc.message, exc.details), True
        finally:
            request.release()

    def _read_next(self, conn: Connection) -> bool:
        """(Pool thread.) Wait up to HOT_WAIT_S for the next request and read it while it
        keeps coming (at most HOT_READ_S); True when one is complete."""
        if conn.eof or self._draining:
            return False
        poller = select.poll()
        poller.register(conn.sock, select.POLLIN)
        give_up = time.monotonic() + HOT_READ_S
        while poller.poll(HOT_WAIT_S * 1000):
            try:
                if not conn.read_once():
                    return bool(conn.pending)
            except (BlockingIOError, InterruptedError):
                pass
            if conn.pending:
                return True
            if time.monotonic() > give_up:
                return False
        return False


def _drain_pipe(fd) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except (BlockingIOError, InterruptedError):
        pass


def _tune_malloc() -> None:
    """Large response buffers come and go: have glibc map them separately (and give the
    memory back when they go) rather than grow its heaps by them, and keep the number of
    its per-thread arenas small, so that a burst of large reads does not leave the worker
    holding memory it no longer uses."""
    libc_name = ctypes.util.find_library("c")
    if not libc_name:
        return
    try:
        mallopt = ctypes.CDLL(libc_name).mallopt
    except (OSError, AttributeError):
        return
    m_arena_max, m_mmap_threshold = -8, -3
    mallopt(m_mmap_threshold, 256 * 1024)
    mallopt(m_arena_max, 2)
