"""One process per data directory.

``DataDirLock(path)`` takes an exclusive ``fcntl.flock`` on ``<data_dir>/.lock`` without
waiting; if another process holds it, :class:`~consumer_api.errors.DataDirLocked` says
which pid. The kernel drops the lock when the holder exits, even after ``kill -9``, so a
crash never leaves a stale lock behind.
"""
from __future__ import annotations

import fcntl
import os

from consumer_api.errors import DataDirLocked

LOCK_NAME = ".lock"


class DataDirLock:
    def __init__(self, data_dir: str):
        os.makedirs(data_dir, exist_ok=True)
        self.path = os.path.join(data_dir, LOCK_NAME)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self._fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(self._fd)
            raise DataDirLocked(
                f"the data directory {os.path.abspath(data_dir)} is in use by another "
                f"process (pid {holder}); stop it or choose another CONSUMER_API_DATA_DIR",
                {"data_dir": os.path.abspath(data_dir), "pid": holder}) from None
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, f"{os.getpid()}\n".encode(), 0)

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
