"""The gunicorn worker consumer-api runs in: gunicorn's ``gthread`` worker, tuned for clients
that send one request after another on a kept-alive connection (producers and consumers).

* **Back-to-back requests stay on their thread.** gthread hands a kept-alive connection back
  to its main thread after every response (a pipe write, a selector registration, a wake-up,
  a thread-pool submit: two thread hand-offs per request). :class:`Worker` first waits up to
  :data:`HOT_KEEPALIVE_S` on the socket in the thread that served the last request, and serves
  the next one there if it comes; only a connection that stays quiet longer goes back to the
  poller. The wait is a ``poll(2)`` on the socket, not a sleep; a stopping worker does not wait.
* **A response goes out in one send.** gunicorn writes the status line and headers with one
  ``sendall`` and the body with another: two TCP segments, two wake-ups of the client.
  :class:`OneSendResponse` holds the header block back and sends it with the first body
  bytes (responses with a fixed length; chunked and file responses are sent as gunicorn does).
* **The heartbeat is touched at most once a second** (see :meth:`Worker.notify`).
* **SIGTERM drains first** (see :meth:`Worker.handle_exit`).

Measured with ``bench/server_bench.py --only 1`` (produce, one client): see README
"Performance". Thread-safety: a connection is served by one thread at a time, as in gthread.
"""
from __future__ import annotations

import select
import threading
import time

from gunicorn import util
from gunicorn.http import wsgi
from gunicorn.workers.gthread import ThreadWorker

# How long a thread keeps a kept-alive connection after a response, waiting for the next
# request (seconds). A client in a produce or consume loop turns a response around in well
# under a millisecond; a quieter connection goes back to the poller after this.
HOT_KEEPALIVE_S = 0.002
# The arbiter only needs a sign of life within ``timeout`` (330 s).
HEARTBEAT_EVERY_S = 1.0


class OneSendResponse(wsgi.Response):
    """A gunicorn response whose header block leaves with the first body bytes."""

    _held = b""

    def write(self, arg):
        if (arg and not self.headers_sent and not self.chunked
                and not self._omits_body and self.response_length != 0):
            self._held = self._header_block()
            self.headers_sent = True
        super().write(arg)

    def _emit_body(self, data):
        if self._held:
            data, self._held = self._held + data, b""
        super()._emit_body(data)

    def close(self):
        if self._held:  # write() dropped the body: the headers still go out
            held, self._held = self._held, b""
            util.write(self.sock, held)
        super().close()

    def _header_block(self) -> bytes:
        """The bytes ``send_headers`` would write: status line, headers, blank line."""
        lines = self.default_headers()
        lines.extend("%s: %s\r\n" % (name, value) for name, value in self.headers)
        return ("".join(lines) + "\r\n").encode("latin-1")


class Worker(ThreadWorker):
    """gthread, serving back-to-back requests on the thread that has the connection."""

    _last_notify = 0.0

    def init_process(self):
        wsgi.Response = OneSendResponse  # what wsgi.create() builds for HTTP/1.x requests
        super().init_process()

    def notify(self):
        """gthread touches its heartbeat file (a ``utime`` syscall) on every turn of its event
        loop, a few times per request; touch it at most every :data:`HEARTBEAT_EVERY_S`."""
        now = time.monotonic()
        if now - self._last_notify >= HEARTBEAT_EVERY_S:
            self._last_notify = now
            super().notify()

    def handle_exit(self, sig, frame):
        """On SIGTERM, before gthread stops accepting and waits for the requests in flight:
        answer every waiting long-poll now and refuse new work (503), so the graceful stop
        takes milliseconds, not the longest poll. The logs close in ``worker_exit``, after
        the requests (see ``gunicorn_conf``)."""
        app = getattr(self, "wsgi", None)
        if self.alive and app is not None:
            from consumer_api.app import begin_shutdown
            threading.Thread(target=begin_shutdown, args=(app,), name="drain",
                             daemon=True).start()
        super().handle_exit(sig, frame)

    def handle(self, conn):
        keepalive = super().handle(conn)
        while keepalive is True and self.alive and self._next_request_soon(conn):
            keepalive = super().handle(conn)
        return keepalive

    @staticmethod
    def _next_request_soon(conn) -> bool:
        """Whether the connection's next request is here or arrives within
        :data:`HOT_KEEPALIVE_S` (bytes already read ahead count)."""
        if conn.parser.unreader.buf.getvalue():
            return True
        poller = select.poll()
        poller.register(conn.sock, select.POLLIN)
        return bool(poller.poll(HOT_KEEPALIVE_S * 1000))
