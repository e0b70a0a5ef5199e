"""History: the last hour of the server's activity, one sample every 10 s, for charts.

A sample (JSON-ready, numbers per second over the interval before it)::

    {"time_ms": 1733400000000, "records_in": 120.5, "records_out": 98.0,
     "sessions": 3, "waiting_polls": 1,
     "topics": {"orders": {"records_in": 120.5, "records_out": 98.0, "high_watermark": 9120,
                           "size_bytes": 912000, "partitions": [4560, 4560]}},
     "groups": {"billing": {"lag": 12}}}

``records_in`` comes from the topics' high watermarks (every producer, through any node or
client); ``records_out`` from the records this node's consumes delivered. ``lag`` is the
high watermark minus the group's committed offset, summed over its partitions;
``size_bytes`` the topic's record bytes (None where the store does not tell);
``partitions`` each partition's high watermark, by partition number. The first
sample has no rates yet (0). Only the store's public ``stats()`` is read: the same on
every store.

Thread-safety: :meth:`History.take` runs on the sampler thread (or a test); the other
methods from any thread; ``_lock`` guards the ring of samples.
"""
from __future__ import annotations

import collections
import logging
import threading
from typing import Callable

from consumer_api.backend import Backend
from consumer_api.sessions.manager import ConsumerManager

log = logging.getLogger(__name__)

#: one sample per INTERVAL_MS, the last KEEP of them (an hour)
INTERVAL_MS = 10_000
KEEP = 360


class History:
    """``consumed()`` gives the records this node delivered so far, ``{topic: count}``;
    samples are timed by the manager's clock (``manager.now_ms``)."""

    def __init__(self, backend: Backend, manager: ConsumerManager,
                 consumed: Callable[[], dict], interval_ms: int = INTERVAL_MS,
                 keep: int = KEEP):
        self._backend = backend
        self._manager = manager
        self._consumed = consumed
        self.interval_ms = interval_ms
        self._lock = threading.Lock()
        self._samples: collections.deque = collections.deque(maxlen=keep)
        self._last: tuple | None = None  # (time_ms, {topic: hw sum}, {topic: consumed})
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def samples(self, since_ms: int = 0) -> list[dict]:
        """The kept samples taken after ``since_ms`` (epoch ms), oldest first."""
        with self._lock:
            return [s for s in self._samples if s["time_ms"] > since_ms]

    def take(self) -> dict | None:
        """Read the server's state now and keep a sample of it; None while the store is
        not open."""
        if not self._backend.is_open:
            return None
        now = self._manager.now_ms()
        stats = self._backend.stats()
        by_topic: dict[str, list] = {}
        for part in sorted(stats.partitions, key=lambda p: (p.topic, p.partition)):
            by_topic.setdefault(part.topic, []).append(part)
        ends = {topic: sum(p.high_watermark for p in parts) for topic, parts in by_topic.items()}
        consumed = dict(self._consumed())
        sample = {"time_ms": now, "sessions": self._manager.count(),
                  "waiting_polls": self._manager.waiting(),
                  "topics": self._topics(now, by_topic, ends, consumed),
                  "groups": {group: {"lag": sum(lags.values())}
                             for group, lags in stats.lags().items()}}
        sample["records_in"] = sum(t["records_in"] for t in sample["topics"].values())
        sample["records_out"] = sum(t["records_out"] for t in sample["topics"].values())
        self._last = (now, ends, consumed)
        with self._lock:
            self._samples.append(sample)
        return sample

    def _topics(self, now: int, by_topic: dict, ends: dict, consumed: dict) -> dict:
        before_ms, before_ends, before_consumed = self._last or (now, ends, consumed)
        seconds = (now - before_ms) / 1000

        def rate(new: float, old: float) -> float:
            return round(max(new - old, 0) / seconds, 3) if seconds > 0 else 0.0

        out = {}
        for topic, parts in by_topic.items():
            sizes = [p.size_bytes for p in parts]
            out[topic] = {"high_watermark": ends[topic],
                          "size_bytes": None if None in sizes else sum(sizes),
                          "partitions": [p.high_watermark for p in parts],
                          "records_in": rate(ends[topic], before_ends.get(topic, ends[topic])),
                          "records_out": rate(consumed.get(topic, 0),
                                              before_consumed.get(topic, 0))}
        return out

    # -- the sampler thread ----------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="history", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop sampling (wakes the sampler at once)."""
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.take()
            except Exception:  # a store that failed a moment must not end the history
                log.exception("could not take a history sample")
            self._stop.wait(self.interval_ms / 1000)
