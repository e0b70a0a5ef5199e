"""A fixed pool of daemon threads that runs submitted jobs fairly between clients.

Jobs are queued per key (a client's address): the threads take one job of each key with
jobs waiting in turn, so a client with a hundred requests queued delays another client's
one request by at most one job, not a hundred. Within a key, jobs run in submission order.
Its threads never hold up the interpreter's exit: the worker waits for the jobs it cares
about itself.

Thread-safety: one Condition guards the queues, ``waiting`` and ``busy`` (both read without
it as gauges and hints, never as decisions that must be exact).
"""
from __future__ import annotations

import collections
import logging
import threading

log = logging.getLogger(__name__)


class ThreadPool:
    def __init__(self, size: int, name: str = "request"):
        self.size = size
        self.busy = 0  # jobs running
        self.waiting = 0  # jobs queued
        self._cond = threading.Condition(threading.Lock())
        self._queues: dict = {}  # key -> deque of (job, arg)
        self._turns: collections.deque = collections.deque()  # keys with jobs, in turn
        self._stopping = False
        self._threads = [threading.Thread(target=self._run, name=f"{name}-{i}", daemon=True)
                         for i in range(size)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def submit(self, job, arg, key=None) -> None:
        """Run ``job(arg)`` on a pool thread, in turn with the other keys' jobs; an
        exception is logged, never raised."""
        with self._cond:
            queue = self._queues.get(key)
            if queue is None:
                queue = self._queues[key] = collections.deque()
                self._turns.append(key)
            queue.append((job, arg))
            self.waiting += 1
            self._cond.notify()

    def stop(self, timeout_s: float = 1.0) -> None:
        """Let the threads finish the queued jobs and end; wait at most ``timeout_s``."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout_s / max(1, len(self._threads)))

    def _take(self):
        """(Lock held.) The next job: the first of the key whose turn it is."""
        key = self._turns.popleft()
        queue = self._queues[key]
        item = queue.popleft()
        if queue:
            self._turns.append(key)
        else:
            del self._queues[key]
        self.waiting -= 1
        self.busy += 1
        return item

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._turns:
                    if self._stopping:
                        return
                    self._cond.wait()
                job, arg = self._take()
            try:
                job(arg)
            except Exception:  # a job's own error handling failed: keep the thread
                log.exception("a request job failed")
            finally:
                with self._cond:
                    self.busy -= 1
