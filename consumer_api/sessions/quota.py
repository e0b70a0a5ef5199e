"""Fair shares: who a request comes from, what that client may hold, and the counts of what
it holds.

A *client* is whoever the HTTP layer says it is -- an API key, or a peer address on an open
server (see :mod:`consumer_api.api.security`) -- named by a plain string. Its share is two
caps: live consumer sessions and consumes waiting for records at once. A request made with
no :class:`ClientQuota` (a caller embedding the manager) is counted in the server's totals
only, and capped by the server-wide limits only.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ClientQuota:
    """A client and its share. ``name`` says what it is (``"key billing"``, ``"address
    10.0.0.7"``): refusals and logs show it, and the counts are kept by it."""

    name: str
    max_sessions: int  # live consumer sessions it may hold at once
    max_polls: int  # consumes of its sessions that may wait for records at once


class Tally:
    """How many of one thing (sessions, waiting polls) are held in all and per client name.

    Not thread-safe by itself: its owner (the ConsumerManager) calls it with its lock held.
    A name whose count falls to zero is forgotten, so the table holds only clients that hold
    something."""

    __slots__ = ("total", "_by_client")

    def __init__(self):
        self.total = 0
        self._by_client: dict[str, int] = {}

    def held(self, name: str) -> int:
        return self._by_client.get(name, 0)

    def add(self, name: str | None) -> None:
        self.total += 1
        if name is not None:
            self._by_client[name] = self._by_client.get(name, 0) + 1

    def remove(self, name: str | None) -> None:
        self.total -= 1
        if name is not None:
            left = self._by_client.get(name, 0) - 1
            if left > 0:
                self._by_client[name] = left
            else:
                self._by_client.pop(name, None)
