"""A memory-mapped file of fixed capacity whose disk blocks are reserved before use.

The file is sized to ``capacity`` (sparse) and mapped whole (``MAP_SHARED``). Bytes are
only ever written below ``reserved``, the prefix whose blocks ``os.posix_fallocate`` has
allocated, so a write into the map can never fault for lack of space (which would be a
SIGBUS, killing the process). The reservation grows in chunks ahead of the writes (so a
topic of 1,000 partitions does not reserve 1,000 whole segments up front); when the disk is
full the reservation fails with :class:`~consumer_api.errors.StorageFull` before anything
is written. ``trim(size)`` cuts the file to its real length (on roll and close).

Writes of a page or more go through ``os.pwrite`` rather than the map: the kernel fills
the page cache directly, faster than first-touch page faults on a fresh map, and Linux's
unified page cache makes the bytes visible through the map at once. Small writes
(index entries) store into the map.

Not thread-safe: the owner (a segment, under its partition's lock) serialises access.
"""
from __future__ import annotations

import errno
import mmap
import os

from consumer_api.errors import StorageFull

#: first reservation, and the smallest growth step (small: a topic of 1,024 partitions
#: reserves 3 files x 64 KiB each, not whole segments)
MIN_RESERVE_BYTES = 64 << 10
#: the largest growth step (the step doubles up to it)
MAX_RESERVE_STEP_BYTES = 16 << 20
#: writes at least this long use pwrite instead of the map
PWRITE_MIN_BYTES = 4096


def is_disk_full(exc: OSError) -> bool:
    """Whether ``exc`` means the volume (or the user's quota, or the file size limit) has
    no room: ENOSPC, EDQUOT or EFBIG."""
    return exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def _raise_if_full(exc: OSError, path: str):
    if is_disk_full(exc):
        raise StorageFull(f"no space left to grow {os.path.basename(path)}: {exc.strerror}",
                          {"path": os.path.basename(path)}) from exc
    raise exc


class MappedFile:
    """A writable map of ``capacity`` bytes over ``path``.

    ``reserved`` bytes at the start have real blocks. Use :meth:`write` (which reserves
    first) for every write; read through :attr:`map` below the owner's logical end.
    """

    def __init__(self, path: str, capacity: int, used: int = 0, create: bool = False):
        self.path = path
        self.capacity = capacity
        flags = os.O_RDWR | (os.O_CREAT | os.O_EXCL if create else 0)
        self._fd = os.open(path, flags, 0o644)
        try:
            os.ftruncate(self._fd, used)  # drop whatever lies past the valid data
            self.reserved = used
            self.reserve(min(capacity, max(used, MIN_RESERVE_BYTES)))
            os.ftruncate(self._fd, capacity)
            self.map = mmap.mmap(self._fd, capacity, access=mmap.ACCESS_WRITE)
        except BaseException:
            os.close(self._fd)
            if create:
                os.unlink(path)
            raise

    def reserve(self, upto: int) -> None:
        """Make sure bytes ``[0, upto)`` have disk blocks (raises StorageFull)."""
        if upto <= self.reserved:
            return
        if upto > self.capacity:
            raise ValueError(f"{upto} exceeds the capacity {self.capacity} of {self.path}")
        step = min(MAX_RESERVE_STEP_BYTES, max(MIN_RESERVE_BYTES, self.reserved))
        target = min(self.capacity, max(upto, self.reserved + step))
        try:
            os.posix_fallocate(self._fd, self.reserved, target - self.reserved)
        except OSError as exc:
            try:
                os.posix_fallocate(self._fd, self.reserved, upto - self.reserved)
                target = upto
            except OSError:
                _raise_if_full(exc, self.path)
        self.reserved = target

    def write(self, pos: int, data) -> None:
        end = pos + len(data)
        self.reserve(end)
        if end - pos >= PWRITE_MIN_BYTES:
            try:
                written = os.pwrite(self._fd, data, pos)
            except OSError as exc:
                _raise_if_full(exc, self.path)
            if written != end - pos:
                raise OSError(errno.EIO, f"short write to {self.path}")
        else:
            self.map[pos:end] = data

    def grow(self, capacity: int) -> None:
        """Map a larger (sparse) file; blocks are still reserved only as writes come."""
        if capacity <= self.capacity:
            return
        self.map.close()
        os.ftruncate(self._fd, capacity)
        self.map = mmap.mmap(self._fd, capacity, access=mmap.ACCESS_WRITE)
        self.capacity = capacity

    def sync(self) -> None:
        """Make every byte written so far durable. ``fdatasync`` covers pages dirtied
        through the map as well as by pwrite (one page cache), and unlike ``mmap.flush``
        it releases the GIL while the disk works."""
        os.fdatasync(self._fd)

    def dup_fd(self) -> int:
        """A duplicate of the file descriptor, for syncing without the owner's lock."""
        return os.dup(self._fd)

    def trim(self, size: int, sync: bool = True) -> None:
        """Unmap, cut the file to ``size`` bytes and (unless the file is about to be
        deleted) fsync it; the object is closed after."""
        self.map.close()
        try:
            os.ftruncate(self._fd, size)
            if sync:
                os.fsync(self._fd)
        finally:
            os.close(self._fd)


def map_readonly(path: str):
    """Map a sealed file read-only. Returns ``(map, size)``; an empty file maps to b""."""
    size = os.path.getsize(path)
    if size == 0:
        return b"", 0
    with open(path, "rb") as f:
        return mmap.mmap(f.fileno(), size, access=mmap.ACCESS_READ), size
