"""A server-wide budget of bytes held in memory for one purpose: request bodies being
received, or record responses waiting to be sent.

Thread-safe: one lock guards ``used`` and ``peak``. Units are bytes.
"""
from __future__ import annotations

import threading


class ByteBudget:
    """At most ``limit`` bytes taken at once (``force`` may pass it: for bytes that exist
    already and must be counted). Every take is paired with a ``give`` of the same size."""

    def __init__(self, limit: int):
        if limit < 1:
            raise ValueError("a budget needs a limit of at least 1 byte")
        self.limit = limit
        self.used = 0
        self.peak = 0
        self._lock = threading.Lock()

    def take(self, n: int) -> bool:
        """Take ``n`` bytes if they fit; False (nothing taken) if not."""
        with self._lock:
            if self.used + n > self.limit:
                return False
            self._add(n)
            return True

    def take_up_to(self, n: int) -> int:
        """Take as much of ``n`` as fits (0 when full); returns what was taken."""
        with self._lock:
            granted = max(0, min(n, self.limit - self.used))
            self._add(granted)
            return granted

    def force(self, n: int) -> None:
        """Count ``n`` bytes even past the limit."""
        with self._lock:
            self._add(n)

    def give(self, n: int) -> None:
        with self._lock:
            self.used -= n

    def room(self) -> int:
        return max(0, self.limit - self.used)

    def _add(self, n: int) -> None:
        self.used += n
        if self.used > self.peak:
            self.peak = self.used
