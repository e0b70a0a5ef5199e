"""A fixed pool of daemon threads that run submitted jobs in order of submission.

Lighter than ``concurrent.futures`` (no future per job) and its threads never hold up the
interpreter's exit: the worker waits for the jobs it cares about itself. Thread-safe:
``submit`` from any thread; ``busy`` is read without a lock (a gauge, not a decision).
"""
from __future__ import annotations

import logging
import queue
import threading

log = logging.getLogger(__name__)
_STOP = object()


class ThreadPool:
    def __init__(self, size: int, name: str = "request"):
        self.size = size
        self.busy = 0
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()  # guards busy
        self._threads = [threading.Thread(target=self._run, name=f"{name}-{i}", daemon=True)
                         for i in range(size)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def submit(self, job, arg) -> None:
        """Run ``job(arg)`` on a pool thread; an exception is logged, never raised."""
        self._jobs.put((job, arg))

    def stop(self, timeout_s: float = 1.0) -> None:
        """Let every thread finish its job and end; wait at most ``timeout_s`` in all."""
        for _ in self._threads:
            self._jobs.put(_STOP)
        for thread in self._threads:
            thread.join(timeout_s / max(1, len(self._threads)))

    def _run(self) -> None:
        while True:
            item = self._jobs.get()
            if item is _STOP:
                return
            with self._lock:
                self.busy += 1
            try:
                item[0](item[1])
            except Exception:  # a job's own error handling failed: keep the thread
                log.exception("a request job failed")
            finally:
                with self._lock:
                    self.busy -= 1
