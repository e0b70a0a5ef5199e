"""One process per data directory.

``DataDirLock(path)`` takes an exclusive ``fcntl.flock`` on ``<data_dir>/.lock`` and writes
its pid there. If another process holds it, :class:`~consumer_api.errors.DataDirLocked`
says which pid -- at once, unless the holder is a *sibling* (a process with the same parent:
the previous worker of the same gunicorn, still finishing its requests after a reload),
which is waited for up to ``sibling_wait_s``. The kernel drops the lock when the holder
exits, even after ``kill -9``, so a crash never leaves a stale lock behind.
"""
from __future__ import annotations

import fcntl
import os
import time

from consumer_api.errors import DataDirLocked

LOCK_NAME = ".lock"
#: how often a sibling's lock is tried again while waiting for it
SIBLING_POLL_S = 0.05


def _parent_of(pid: str) -> int | None:
    try:
        with open(f"/proc/{int(pid)}/stat", encoding="ascii") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


class DataDirLock:
    def __init__(self, data_dir: str, sibling_wait_s: float = 0.0):
        os.makedirs(data_dir, exist_ok=True)
        self.path = os.path.join(data_dir, LOCK_NAME)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + sibling_wait_s
        while not self._try_lock():
            holder = os.pread(self._fd, 32, 0).decode(errors="replace").strip() or "unknown"
            sibling = holder != str(os.getpid()) and _parent_of(holder) == os.getppid()
            if sibling and time.monotonic() < deadline:
                time.sleep(SIBLING_POLL_S)  # start-up only: the old worker is draining
                continue
            os.close(self._fd)
            raise DataDirLocked(
                f"the data directory {os.path.abspath(data_dir)} is in use by another "
                f"process (pid {holder}); stop it or choose another CONSUMER_API_DATA_DIR",
                {"data_dir": os.path.abspath(data_dir), "pid": holder})
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, f"{os.getpid()}\n".encode(), 0)

    def _try_lock(self) -> bool:
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
