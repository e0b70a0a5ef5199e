"""Where the server is in its life: ``starting`` (recovering its logs), ``ready``,
``draining`` (SIGTERM: no new work, waiting polls answered, logs about to close).

While not ready, every ``/api`` route but the health probes answers ``503 unavailable``;
``/api/health/ready`` says 503 too, so a load balancer stops sending work. The state is one
attribute, written by the starting thread and the signal path, read by request threads.
"""
from __future__ import annotations

from consumer_api.errors import Unavailable

STARTING, READY, DRAINING = "starting", "ready", "draining"
#: the health probes: answered in every state and without a key
PROBES = "/api/health"
MESSAGES = {STARTING: "the server is starting: recovering its logs",
            DRAINING: "the server is shutting down"}


class Lifecycle:
    def __init__(self, state: str = STARTING):
        self.state = state

    @property
    def ready(self) -> bool:
        return self.state == READY

    def check(self) -> None:
        if self.state != READY:
            raise Unavailable(MESSAGES[self.state], {"state": self.state})


def gate(lifecycle: Lifecycle, method: str, path: str) -> None:
    """Before the request: 503 for API work unless ready."""
    if not lifecycle.ready and method != "OPTIONS" and path.startswith("/api/") \
            and not path.startswith(PROBES):
        lifecycle.check()
