"""The backend contract (:mod:`consumer_api.backend`) as tests, one run per store.

``store`` is an open :class:`~consumer_api.backend.Backend` built the way the server builds
it (:func:`consumer_api.backends.build_backend`), over a fresh data directory; ``BACKENDS``
names the stores the contract runs against (a new store adds itself there, with what it
needs to start). ``joined(member, topics)`` joins and waits for the assignment on the
member's own wake-up (a store may complete a join later); ``Wakes`` counts wake-ups and
lets a test wait for the next one.
"""
from __future__ import annotations

import threading

import pytest

from consumer_api.backends import build_backend
from consumer_api.config import Config

BACKENDS = ["embedded"]
#: real seconds a test waits for a store's wake-up before failing
BOUND = 10.0


@pytest.fixture(params=BACKENDS)
def store(request, tmp_path):
    backend = build_backend(Config(backend=request.param, data_dir=str(tmp_path / "data")))
    if not backend.is_open:
        backend.open()
    backend.start()
    yield backend
    backend.close()


class Wakes:
    """A member's ``wake``: counts calls; :meth:`wait` returns once one came after the
    last :meth:`clear` (False after BOUND seconds)."""

    def __init__(self):
        self.count = 0
        self._event = threading.Event()

    def __call__(self, *_source) -> None:
        self.count += 1
        self._event.set()

    def clear(self) -> None:
        self._event.clear()

    def wait(self, timeout: float = BOUND) -> bool:
        return self._event.wait(timeout)


def joined(member, topics, wakes: Wakes):
    """Join and return the assignment, waiting on ``wakes`` for a join that completes
    later."""
    found = member.join(topics)
    while found is None:
        wakes.clear()
        found = member.assignment()
        if found is None:
            assert wakes.wait(), "the join did not complete"
    return found


def await_assignment(member, wakes: Wakes, check, what: str):
    """The member's assignment once ``check(assignment)`` holds, waiting on its wake-ups."""
    for _ in range(100):
        wakes.clear()
        current = member.assignment()
        if current is not None and check(current):
            return current
        assert wakes.wait(), f"no wake-up while waiting for {what}"
    raise AssertionError(f"{what}: never")
