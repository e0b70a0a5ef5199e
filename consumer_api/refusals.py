"""Refusals: requests the server turns away, or connections it cuts, to protect its other
clients -- counted by reason and logged at most once per client and reason per interval.

``reason`` is a short stable word (the ``reason`` label of ``consumer_api_refusals_total``):

=====================  =====================================================================
``header_timeout``     a request's head did not arrive in time (408)
``body_timeout``       its body did not arrive in time (408)
``send_timeout``       a response was not taken by the client in time (connection cut)
``request_budget``     no room left for buffered request bodies (503)
``response_budget``    no room left for responses in flight (503, or a smaller batch)
``bad_request``        a request that is not valid HTTP/1.1 (400, 501, 505)
``uri_too_long``       414
``headers_too_large``  431
``body_too_large``     413
``draining``           a request that arrived while the server stops (503)
``server_polls``       every waiting-poll slot of the server is taken (429)
``client_polls``       the client's share of waiting polls is taken (429)
``client_sessions``    the client's share of consumer sessions is taken (429)
``server_sessions``    the server's consumer sessions are all taken (429)
``stats_scans``        a worker runs as many counts by key as it may (503)
=====================  =====================================================================

``client`` names who was refused: an API key's name, or a peer address. Never a key, a
header value or a body. Thread-safe: one lock guards the counts and the log book.
"""
from __future__ import annotations

import logging
import threading
import time

log = logging.getLogger(__name__)

#: the most (client, reason) pairs remembered for rate limiting; older ones are forgotten
MAX_TRACKED = 10_000


class Refusals:
    """Counts by reason; a WARNING line per (client, reason) at most every ``interval_s``
    seconds, saying how many refusals the previous lines did not show. ``clock`` is
    monotonic seconds (injectable for tests)."""

    def __init__(self, interval_s: float = 60.0, clock=time.monotonic):
        self.interval_s = interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._book: dict[tuple, list] = {}  # (client, reason) -> [last line at, not shown]

    def record(self, reason: str, client: str, detail: str = "") -> None:
        now = self._clock()
        with self._lock:
            self._counts[reason] = self._counts.get(reason, 0) + 1
            entry = self._book.get((client, reason))
            if entry is not None and now - entry[0] < self.interval_s:
                entry[1] += 1
                return
            hidden = entry[1] if entry is not None else 0
            if entry is None and len(self._book) >= MAX_TRACKED:
                self._forget(now)
            self._book[(client, reason)] = [now, 0]
        more = f" ({hidden} more since the last line)" if hidden else ""
        log.warning("refused %s from %s%s%s", reason, client, f": {detail}" if detail else "",
                    more)

    def _forget(self, now: float) -> None:
        """(Lock held.) Drop entries whose interval has passed; if none has, the oldest."""
        stale = [k for k, (at, _) in self._book.items() if now - at >= self.interval_s]
        for key in stale or [min(self._book, key=lambda k: self._book[k][0])]:
            del self._book[key]

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)
