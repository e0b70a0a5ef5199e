"""The backend contract (:mod:`consumer_api.backend`) as tests, one run per store.

``store`` is an open :class:`~consumer_api.backend.Backend`: the embedded engine built the
way the server builds it (:func:`consumer_api.backends.build_backend`) over a fresh data
directory, and the Kafka store over the test run's broker (its topics deleted after each
test). ``BACKENDS`` names the stores and what each implements so far. ``joined(member, topics)`` joins and waits for the assignment on the
member's own wake-up (a store may complete a join later); ``Wakes`` counts wake-ups and
lets a test wait for the next one.
"""
from __future__ import annotations

import threading

import pytest

from consumer_api.backends import build_backend
from consumer_api.config import Config

#: each store and what of the contract it implements so far; a test module says what it
#: needs (``NEEDS``, default "groups") and runs against the stores that have it
BACKENDS = {"embedded": {"topics", "records", "admin", "groups", "sizes"},
            "kafka": {"topics", "records", "admin", "groups"}}
#: real seconds a test waits for a store's wake-up before failing
BOUND = 10.0


def pytest_generate_tests(metafunc):
    if "store" in metafunc.fixturenames:
        need = getattr(metafunc.module, "NEEDS", "groups")
        names = [name for name, has in BACKENDS.items() if need in has]
        metafunc.parametrize("store", names, indirect=True)


@pytest.fixture
def knows_sizes(request) -> bool:
    """Whether the store under test tells a partition's ``size_bytes`` (else None)."""
    return "sizes" in BACKENDS[request.node.callspec.params["store"]]


@pytest.fixture
def store(request, tmp_path):
    if request.param == "kafka":
        from tests.kafka.store import kafka_store
        with kafka_store(request.getfixturevalue("kafka_broker"), BOUND) as backend:
            yield backend
        return
    backend = build_backend(Config(data_dir=str(tmp_path / "data")))
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
