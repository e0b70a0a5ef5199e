"""Helpers for the consumer-session tests (ConsumerManager driven directly).

* ``wait_until`` (:mod:`tests.waiting`) for what no event can be waited on.
* ``produce(engine, topic, partition, n)`` appends ``n`` records to one partition and
  returns their offsets.
* ``offsets_of(chunks)`` flattens a consume result into ``[(topic, partition, offset)]``.
* ``bg`` starts consumes in background threads (``bg.consume(cid, ...)``); on teardown it
  shuts the manager down (which answers every waiting poll) and joins them.
* ``notify_spy`` counts every ``Waiter.notify`` (appends, rebalances, closes, shutdown).
* ``next_ids`` makes the next consumer ids deterministic (``next_ids.append("b")``) so a
  test can choose which member the range assignor (members sorted by id) favours.
"""
from __future__ import annotations

import threading
import time
import types

import pytest

from consumer_api.records import NewRecord
from consumer_api.sessions import manager as manager_module
from consumer_api.sessions.session import Waiter

#: real-time bound of every wait on another thread
BOUND = 5.0


def produce(engine, topic: str, partition: int, n: int = 1, value: bytes = b"v",
            timestamps=None, key: bytes | None = None) -> list[int]:
    """Append ``n`` records (one batch) to ``topic[partition]``; returns their offsets."""
    if timestamps is None:
        timestamps = [None] * n
    recs = [NewRecord(key=key, value=value, headers=None, timestamp=ts) for ts in timestamps]
    return [o["offset"] for o in engine.produce(topic, recs, [partition] * len(recs))]


def offsets_of(chunks) -> list[tuple]:
    return [(topic, p, rec[0]) for topic, p, records in chunks for rec in records]


def owned(assignment_body: dict) -> set:
    """``{(topic, p)}`` of a subscribe / assignment body."""
    return {(t, p) for t, ps in assignment_body["assignment"].items() for p in ps}


class BackgroundConsume:
    """One ``manager.consume`` running on its own thread."""

    def __init__(self, manager, consumer_id: str, **kwargs):
        self.manager = manager
        self.consumer_id = consumer_id
        self.kwargs = kwargs
        self.chunks = None
        self.error: BaseException | None = None
        self.started_at = None
        self.finished_at = None
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True,
                                       name=f"consume-{consumer_id[:8]}")

    def _run(self):
        self.started_at = time.monotonic()
        try:
            self.chunks, _ = self.manager.consume(self.consumer_id, **self.kwargs)
        except BaseException as exc:  # noqa: BLE001 -- handed to the test by result()
            self.error = exc
        finally:
            self.finished_at = time.monotonic()
            self.done.set()

    def start(self) -> BackgroundConsume:
        self.thread.start()
        return self

    def alive(self) -> bool:
        return not self.done.is_set()

    def result(self, timeout: float = BOUND):
        """The consume's chunks (or its exception, re-raised), waiting at most ``timeout``."""
        assert self.done.wait(timeout), \
            f"consume of {self.consumer_id} still running after {timeout} s"
        self.thread.join(timeout)
        if self.error is not None:
            raise self.error
        return self.chunks


class Background:
    def __init__(self, manager):
        self.manager = manager
        self.consumes: list[BackgroundConsume] = []

    def consume(self, consumer_id: str, **kwargs) -> BackgroundConsume:
        kwargs.setdefault("timeout_ms", 30_000)
        c = BackgroundConsume(self.manager, consumer_id, **kwargs)
        self.consumes.append(c)
        return c.start()

    def close(self):
        self.manager.shutdown()  # answers every waiting poll
        deadline = time.monotonic() + BOUND
        for c in self.consumes:
            c.thread.join(max(0.0, deadline - time.monotonic()))
        stuck = [c.consumer_id for c in self.consumes if c.thread.is_alive()]
        assert not stuck, f"consumes still running after shutdown: {stuck}"


@pytest.fixture
def bg(manager):
    background = Background(manager)
    yield background
    background.close()


@pytest.fixture
def notify_spy(monkeypatch):
    """Every Waiter.notify call, as the list of waiters notified (in order)."""
    calls: list = []
    lock = threading.Lock()
    real = Waiter.notify

    def notify(self, *source):
        with lock:
            calls.append(self)
        real(self, *source)

    monkeypatch.setattr(Waiter, "notify", notify)
    return calls


@pytest.fixture
def next_ids(monkeypatch):
    """Consumer ids to hand out next (then random ones again)."""
    queue: list[str] = []
    real = manager_module.uuid

    def uuid4():
        if queue:
            return types.SimpleNamespace(hex=queue.pop(0))
        return real.uuid4()

    monkeypatch.setattr(manager_module, "uuid", types.SimpleNamespace(uuid4=uuid4))
    return queue
