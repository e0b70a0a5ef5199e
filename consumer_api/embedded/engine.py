"""The embedded engine: everything that lives in one data directory of one process.

``Engine(config)`` takes the data directory's lock file, opens (and recovers) every topic,
and owns the maintenance thread that flushes logs on the flush interval and enforces
retention. Threads are started by :meth:`start`, never at construction, so that a forking
server (gunicorn) starts them in the worker that serves requests.
"""
from __future__ import annotations

import logging
import resource
import threading
import time

from consumer_api.config import Config
from consumer_api.embedded.lockfile import DataDirLock
from consumer_api.embedded.storage.partition_log import LogConfig, wall_clock_ms
from consumer_api.embedded.topics import TopicRegistry

log = logging.getLogger(__name__)


def log_defaults(config: Config) -> LogConfig:
    return LogConfig(segment_bytes=config.segment_bytes,
                     index_interval_bytes=config.index_interval_bytes,
                     retention_ms=config.retention_ms,
                     retention_bytes=config.retention_bytes,
                     flush_policy=config.flush_policy,
                     flush_interval_messages=config.flush_interval_messages,
                     flush_interval_ms=config.flush_interval_ms)


def _raise_open_files_limit() -> None:
    """Each segment holds a few descriptors (its maps): allow as many as the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Engine:
    def __init__(self, config: Config, now_ms=wall_clock_ms):
        self.config = config
        self._now_ms = now_ms
        _raise_open_files_limit()
        started = time.monotonic()
        self._dir_lock = DataDirLock(config.data_dir)
        try:
            self.topics = TopicRegistry(config.data_dir, log_defaults(config), now_ms)
        except BaseException:
            self._dir_lock.release()
            raise
        self.open_seconds = time.monotonic() - started
        log.info("opened %s: %d topics in %.3f s, %d bytes dropped by recovery",
                 config.data_dir, len(self.topics.list()), self.open_seconds,
                 self.topics.recovered_bytes_dropped)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_retention_ms = 0

    # -- maintenance -----------------------------------------------------------------------

    def start(self) -> None:
        """Start the maintenance thread (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._maintain, name="log-maintenance",
                                            daemon=True)
            self._thread.start()

    def _maintain(self) -> None:
        period_s = max(0.05, min(self.config.flush_interval_ms,
                                 self.config.retention_check_interval_ms) / 1000)
        while not self._stop.wait(period_s):
            try:
                self.run_maintenance()
            except Exception:  # keep maintaining; the next pass retries
                log.exception("log maintenance failed")

    def run_maintenance(self, now_ms: int | None = None) -> dict:
        """One pass: flush partitions whose flush interval passed; enforce retention when
        its check interval passed. Returns counts (for tests and metrics)."""
        now = self._now_ms() if now_ms is None else now_ms
        flushed = deleted = 0
        retention_due = now - self._last_retention_ms >= self.config.retention_check_interval_ms
        for _topic, _number, plog in self.topics.partitions():
            flushed += plog.flush_if_due(now)
            if retention_due:
                deleted += plog.enforce_retention(now)
        if retention_due:
            self._last_retention_ms = now
        return {"flushed": flushed, "segments_deleted": deleted}

    # -- shutdown --------------------------------------------------------------------------

    def close(self) -> None:
        """Stop maintenance, flush and close every log, release the data directory."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.topics.close()
        self._dir_lock.release()
