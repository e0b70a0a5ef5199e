"""The log of one partition: an ordered list of segments in one directory.

Offsets are dense and start at 0. ``log_start_offset`` is the base offset of the oldest
segment (it moves up when retention deletes segments); ``high_watermark`` is the offset the
next appended record gets. A record is readable as soon as ``append`` returns its offset.

Thread-safety: every public method takes ``lock`` (one ``threading.Lock`` per partition);
:func:`append_all` alone holds several, taken in one global order. I/O under the lock:
appends write into the active segment; a roll (a new segment) creates and preallocates its
files and fsyncs the directory; a flush fsyncs the segment.

Wake-ups: the one mechanism is listeners. Those registered with :meth:`add_listener` are
called after every append and on close, *with the lock held* -- they must be quick and must
not take a lock that is held while calling into a partition log (a consumer session's
waiter lock qualifies: it is never held across a log call). Long-polls wait on their own
waiter, woken by a listener (see :mod:`consumer_api.sessions.manager`).
"""
from __future__ import annotations

import bisect
import contextlib
import itertools
import logging
import math
import os
import shutil
import threading
from dataclasses import dataclass, field, fields
from operator import attrgetter
from typing import Callable, Sequence

from consumer_api.clock import wall_clock_ms
from consumer_api.config import Config, MiB
from consumer_api.errors import CorruptLog, OffsetOutOfRange, Unavailable
from consumer_api.offset_rules import out_of_range
from consumer_api.durable import fsync_dir
from consumer_api.embedded.storage import formats, records, segment_loader
from consumer_api.embedded.storage.segment import Segment

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class LogConfig:
    """Per-partition settings. ``-1`` disables a retention limit; the defaults are the
    server's (:class:`consumer_api.config.Config`), :meth:`from_config` takes a server's.

    ``flush_policy``: ``"always"`` syncs to disk before ``append`` returns; ``"interval"``
    syncs after ``flush_interval_messages`` records (``-1``: never by count) or when
    :meth:`PartitionLog.flush_if_due` (called by the engine's flusher thread) finds data
    older than ``flush_interval_ms``. An acknowledged record always survives a crash of the
    process (it is in the page cache); the flush protects against a crash of the machine.
    """

    segment_bytes: int = Config.segment_bytes
    index_interval_bytes: int = Config.index_interval_bytes
    retention_ms: int = Config.retention_ms
    retention_bytes: int = Config.retention_bytes
    flush_policy: str = Config.flush_policy
    flush_interval_messages: int = Config.flush_interval_messages
    flush_interval_ms: int = Config.flush_interval_ms

    @classmethod
    def from_config(cls, config: Config) -> "LogConfig":
        """The server's storage settings, as every topic's defaults."""
        return cls(**{f.name: getattr(config, f.name) for f in fields(cls)})


@dataclass
class RecoveryReport:
    """What opening the partition found. ``dropped_bytes`` were cut from the tail;
    ``rebuilt`` lists the base offsets of sealed segments whose indexes were rebuilt."""

    segments: int = 0
    dropped_bytes: int = 0
    reason: str = "end"
    high_watermark: int = 0
    rebuilt: list = field(default_factory=list)


def _segment_bases(directory: str) -> list[int]:
    bases = []
    for name in os.listdir(directory):
        stem, ext = os.path.splitext(name)
        if len(stem) != 20 or not stem.isdigit():
            continue  # not a segment file: leave it alone
        if ext == ".log":
            bases.append(int(stem))
        elif ext in (".index", ".timeindex") and not os.path.exists(
                os.path.join(directory, stem + ".log")):
            os.unlink(os.path.join(directory, name))  # left over from a deleted segment
    return sorted(bases)


class PartitionLog:
    def __init__(self, directory: str, config: LogConfig = LogConfig(),
                 now_ms: Callable[[], int] = wall_clock_ms, name: tuple | None = None,
                 segment_format=formats.CURRENT):
        """``name``: ``(topic, partition)``, which an offset out of range names.
        ``segment_format``: the format module new segments are written in (the current
        one; tests and benchmarks pass format 1's). Segments of another format are read
        as they are; an active one found at opening is rolled (sealed, a new one made)."""
        self.directory = directory
        self.name = name
        self._format = segment_format
        self.config = config
        self._now_ms = now_ms
        self.lock = threading.Lock()
        self._listeners: set = set()
        self.closed = False
        os.makedirs(directory, exist_ok=True)
        self.segments: list[Segment] = []
        self._bases: list[int] = []
        self._byte_bases: list[int] = []  # bytes before each segment: positions_for_times
        self.recovery = self._open()
        self._unflushed_since_ms = None
        self._unflushed_records = 0

    # -- opening ---------------------------------------------------------------------------

    def _open(self) -> RecoveryReport:
        bases = _segment_bases(self.directory)
        report = RecoveryReport(segments=max(len(bases), 1))
        interval = self.config.index_interval_bytes
        for base, next_base in zip(bases, bases[1:]):
            seg = segment_loader.open_sealed(self.directory, base, interval, next_base)
            if seg.rebuilt:
                report.rebuilt.append(base)
            self._add_segment(seg)
        if bases:
            seg, report.dropped_bytes, report.reason = segment_loader.recover(
                self.directory, bases[-1], self.config.segment_bytes, interval, self._format)
            if report.dropped_bytes:
                log.warning("%s: recovery dropped %d bytes at the tail (%s)",
                            self.directory, report.dropped_bytes, report.reason)
        else:
            seg = Segment.create(self.directory, 0, self.config.segment_bytes, interval,
                                 self._format)
        self._add_segment(seg)
        if seg.codec is not self._format:
            self._change_format()
        report.high_watermark = self.active.next_offset
        return report

    def _change_format(self) -> None:
        """Appends go on in the log's format: an empty active segment of another format
        is rewritten as one of it; a non-empty one is rolled."""
        if self.active.empty:
            self.active.reformat(self._format)
        else:
            log.info("%s: segment %d is of format %d; new records go to a new segment of "
                     "format %d", self.directory, self.active.base_offset,
                     self.active.codec.FORMAT, self._format.FORMAT)
            self._roll(self.config.segment_bytes)

    def _add_segment(self, seg: Segment) -> None:
        before = self._byte_bases[-1] + self.segments[-1].batch_bytes if self.segments else 0
        self.segments.append(seg)
        self._bases.append(seg.base_offset)
        self._byte_bases.append(before)

    @property
    def active(self) -> Segment:
        return self.segments[-1]

    # -- positions -------------------------------------------------------------------------

    @property
    def log_start_offset(self) -> int:
        with self.lock:
            return self.segments[0].base_offset

    @property
    def high_watermark(self) -> int:
        return self.segments[-1].next_offset  # one attribute read: atomic under the GIL

    @property
    def size_bytes(self) -> int:
        with self.lock:
            return sum(seg.batch_bytes for seg in self.segments)

    def offsets(self) -> tuple[int, int]:
        """``(log_start_offset, high_watermark)`` read together."""
        with self.lock:
            return self.segments[0].base_offset, self.segments[-1].next_offset

    # -- appending -------------------------------------------------------------------------

    def append(self, batch: Sequence, now_ms: int | None = None) -> int:
        """Append ``batch`` (a non-empty sequence of :class:`records.NewRecord`) atomically;
        return the offset of its first record (the others follow consecutively). Records
        without a timestamp get ``now_ms`` (default: the log clock's now). Raises
        StorageFull (nothing appended) when the disk is full."""
        now = self._now_ms() if now_ms is None else now_ms
        with self.lock:
            return self._commit(self._prepare(batch, now), now)

    def _prepare(self, batch: Sequence, now: int) -> records.EncodedBatch:
        """Encode ``batch`` for the end of the log and give it disk blocks (rolling if it
        does not fit), writing nothing; raises StorageFull. Lock held."""
        if not batch:
            raise ValueError("empty batch")
        self._check_open()
        encoded = self._encode(batch, now)
        if not self.active.fits(len(encoded.data)):
            self._make_room(len(encoded.data))
            encoded = self._encode(batch, now)
        self.active.reserve(encoded)
        return encoded

    def _commit(self, encoded: records.EncodedBatch, now: int) -> int:
        """Write a prepared batch (its blocks are reserved) and wake readers; the offset of
        its first record. Lock held."""
        base = self.active.next_offset
        self.active.append(encoded)
        self._after_append(encoded.count, now)
        for listener in self._listeners:
            listener(self)
        return base

    def _encode(self, batch, now: int) -> records.EncodedBatch:
        seg = self.active
        return seg.codec.encode_batch(batch, seg.next_offset, now,
                                      self.config.index_interval_bytes, seg.since_mark,
                                      seg.max_timestamp)

    def _make_room(self, nbytes: int) -> None:
        """Roll so that ``nbytes`` fit in the active segment (a batch larger than
        ``segment_bytes`` gets a segment of its own size)."""
        capacity = max(self.config.segment_bytes, nbytes)
        if self.active.empty:
            self.active.grow(capacity)
        else:
            self._roll(capacity)

    def _roll(self, capacity: int) -> None:
        """Create the next segment, then seal the old one: if the disk is full the create
        fails first and the old segment simply stays active."""
        old = self.active
        new = Segment.create(self.directory, old.next_offset, capacity,
                             self.config.index_interval_bytes, self._format)
        old.seal()
        self._add_segment(new)
        self._fsync_directory()

    def _fsync_directory(self) -> None:
        fsync_dir(self.directory)

    def _after_append(self, count: int, now: int) -> None:
        if self.config.flush_policy == "always":
            self.active.sync()
            return
        self._unflushed_records += count
        if self._unflushed_since_ms is None:
            self._unflushed_since_ms = now
        limit = self.config.flush_interval_messages
        if 0 < limit <= self._unflushed_records:
            self.active.sync()
            self._unflushed_records, self._unflushed_since_ms = 0, None

    def flush(self) -> None:
        """Make everything appended so far durable. The sync runs outside the lock (on a
        duplicate descriptor), so appends and reads go on meanwhile."""
        with self.lock:
            if self.closed:
                return
            fd = self.active.dup_fd()
            self._unflushed_records, self._unflushed_since_ms = 0, None
        try:
            os.fdatasync(fd)
        finally:
            os.close(fd)

    def flush_if_due(self, now_ms: int | None = None) -> bool:
        """Flush when the oldest unflushed record is ``flush_interval_ms`` old."""
        now = self._now_ms() if now_ms is None else now_ms
        with self.lock:
            since = self._unflushed_since_ms
            due = since is not None and now - since >= self.config.flush_interval_ms
        if due:
            self.flush()
        return due

    # -- reading ---------------------------------------------------------------------------

    def read(self, offset: int, max_records: int = 500, max_bytes: int = MiB) -> list:
        """Up to ``max_records`` records from ``offset`` on, at most ``max_bytes`` of frames
        (but at least one record when any exists). ``offset == high_watermark`` gives [];
        outside ``[log_start_offset, high_watermark]`` raises OffsetOutOfRange."""
        return self.fetch(offset, max_records, max_bytes)[0]

    def fetch(self, offset: int, max_records: int, max_bytes: int, taken: int = 0):
        """:meth:`read` for a caller gathering from several partitions: ``taken`` is the
        frame bytes it already holds (when non-zero, nothing is returned past
        ``max_bytes``). Returns ``(records, taken + bytes returned)``."""
        with self.lock:
            self._check_open()
            self._check_range(offset)
            out = []
            first = bisect.bisect_right(self._bases, offset) - 1
            try:
                for seg in self.segments[first:]:
                    if offset >= seg.next_offset:
                        continue
                    got, taken, stopped = seg.read(offset, max_records - len(out), max_bytes,
                                                   taken)
                    out.extend(got)
                    if stopped or len(out) >= max_records:
                        break
            except records.CorruptRecordError as exc:
                raise CorruptLog(f"{exc} in {self.directory}") from exc
            return out, taken

    def _check_range(self, offset: int) -> None:
        start, end = self.segments[0].base_offset, self.segments[-1].next_offset
        if not start <= offset <= end:
            if self.name is not None:
                raise out_of_range(*self.name, offset, start, end)
            raise OffsetOutOfRange(
                f"offset {offset} is outside the log [{start}, {end}]",
                {"log_start_offset": start, "high_watermark": end})

    def offset_for_timestamp(self, timestamp: int) -> int | None:
        """The earliest offset whose record's timestamp is ``>= timestamp`` (epoch ms),
        None when every record is older."""
        with self.lock:
            self._check_open()
            offset = self._position_at(timestamp, self._reach())[0]
            return None if offset == self.active.next_offset else offset

    def positions_for_times(self, timestamps: Sequence[int],
                            chunk: int = 64) -> list[tuple[int, int]]:
        """For each of ``timestamps`` (epoch ms, ascending): ``(offset, byte)`` of the
        first record whose timestamp is ``>= timestamp``, else of the end of the log as
        it stood when the call began (records appended meanwhile are not seen). ``byte``
        counts the log's frame bytes from an origin fixed for the life of this object, so
        the difference of two positions is the size of the records between them. Both
        fields never decrease along the answer.

        Cost: per timestamp, binary searches of one segment's indexes and a scan of at
        most one index interval. The lock is taken for ``chunk`` lookups at a time, so
        appends are never held up for long; retention may delete segments in between,
        which only moves later positions up."""
        with self.lock:
            self._check_open()
            end = (self.active.next_offset, self._byte_bases[-1] + self.active.batch_bytes)
        out = []
        found = None  # (offset, byte, timestamp): each time up to that timestamp starts there
        for first in range(0, len(timestamps), chunk):
            with self.lock:
                self._check_open()
                reach = self._reach()
                for t in timestamps[first:first + chunk]:
                    if found is None or t > found[2]:
                        found = self._position_at(t, reach)
                    out.append(min(found[:2], end))
        return out

    def _reach(self) -> list[int]:
        """The largest timestamp in each segment and every segment before it. Lock held."""
        return list(itertools.accumulate((seg.max_timestamp for seg in self.segments), max))

    def _position_at(self, timestamp: int, reach: list[int]) -> tuple[int, int, float]:
        """``(offset, byte, its timestamp)`` of the first record with a timestamp
        ``>= timestamp``, or ``(end, end byte, inf)``; ``reach`` is :meth:`_reach`. Lock
        held."""
        for i in range(bisect.bisect_left(reach, timestamp), len(reach)):
            found = self.segments[i].position_for_timestamp(timestamp)
            if found is not None:  # the first segment searched has it
                offset, pos, ts = found
                return offset, self._byte_bases[i] + pos - self.segments[i].start, ts
        return (self.active.next_offset, self._byte_bases[-1] + self.active.batch_bytes,
                math.inf)

    # -- retention -------------------------------------------------------------------------

    def enforce_retention(self, now_ms: int | None = None) -> int:
        """Delete whole old segments past ``retention_ms`` (by their newest record) or
        beyond ``retention_bytes``; returns how many were deleted. An expired active
        segment is rolled first so it can go too."""
        now = self._now_ms() if now_ms is None else now_ms
        cfg = self.config
        deleted = 0
        with self.lock:
            if self.closed:
                return 0
            if cfg.retention_ms >= 0:
                horizon = now - cfg.retention_ms
                act = self.active
                if not act.empty and act.max_timestamp < horizon:
                    self._roll(cfg.segment_bytes)
                while len(self.segments) > 1 and self.segments[0].max_timestamp < horizon:
                    deleted += self._delete_oldest()
            if cfg.retention_bytes >= 0:
                total = sum(seg.batch_bytes for seg in self.segments)
                while len(self.segments) > 1 and \
                        total - self.segments[0].batch_bytes >= cfg.retention_bytes:
                    total -= self.segments[0].batch_bytes
                    deleted += self._delete_oldest()
        return deleted

    def delete_segments_before(self, offset: int) -> int:
        """Delete whole segments holding only records below ``offset`` (rolling the active
        segment first if it is one of them); returns how many."""
        deleted = 0
        with self.lock:
            if self.closed:
                return 0
            act = self.active
            if not act.empty and act.next_offset <= offset:
                self._roll(self.config.segment_bytes)
            while len(self.segments) > 1 and self.segments[0].next_offset <= offset:
                deleted += self._delete_oldest()
        return deleted

    def _delete_oldest(self) -> int:
        seg = self.segments.pop(0)
        self._bases.pop(0)
        self._byte_bases.pop(0)
        seg.close(sync=False)
        seg.remove_files()
        return 1

    # -- waiting ---------------------------------------------------------------------------

    def add_listener(self, listener: Callable[["PartitionLog"], None]) -> None:
        with self.lock:
            self._listeners.add(listener)

    def remove_listener(self, listener) -> None:
        with self.lock:
            self._listeners.discard(listener)

    def _check_open(self) -> None:
        if self.closed:
            raise Unavailable(f"partition log {self.directory} is closed")

    def close(self, sync: bool = True) -> None:
        """Flush, trim and close every segment; wake every waiter. Idempotent. ``sync``
        False skips the fsyncs (for a log about to be deleted)."""
        with self.lock:
            if self.closed:
                return
            self.closed = True
            for seg in self.segments:
                seg.close(sync)
            for listener in list(self._listeners):
                listener(self)

    def delete(self) -> None:
        """Close and remove the partition's directory."""
        self.close(sync=False)
        shutil.rmtree(self.directory, ignore_errors=True)


def append_all(shares: Sequence[tuple["PartitionLog", Sequence]], now_ms: int) -> list[int]:
    """Append one batch to each of several partition logs, all or none of them as far as
    disk space goes: every batch gets its disk blocks before any is written, so a full disk
    (StorageFull) leaves every log as it was. Returns each share's first offset, in the
    order given. (A crash in the middle may still keep some logs' batches and not others':
    each batch is atomic on its own.)

    Lock order: the logs' locks are taken in the order of their directories, and all are
    held until every batch is written; nothing else holds two partition locks at once.
    """
    if len(shares) == 1:
        plog, batch = shares[0]
        return [plog.append(batch, now_ms)]
    logs = sorted((plog for plog, _ in shares), key=attrgetter("directory"))
    if len({id(plog) for plog in logs}) != len(logs):
        raise ValueError("one batch per partition log")
    with contextlib.ExitStack() as held:
        for plog in logs:
            held.enter_context(plog.lock)
        prepared = [plog._prepare(batch, now_ms) for plog, batch in shares]
        return [plog._commit(encoded, now_ms) for (plog, _), encoded in zip(shares, prepared)]
