"""The seam between the HTTP layer (and sessions) and a message store.

:class:`Backend` is everything ``consumer_api.api``, ``consumer_api.sessions``,
``consumer_api.metrics`` and ``consumer_api.app`` may ask of a store; :class:`Member` is
what one consumer session asks of its group. The embedded engine
(:mod:`consumer_api.embedded`) implements both over local segment files; a store over an
Apache Kafka cluster implements the same. :func:`consumer_api.backends.build_backend`
picks one from the configuration.

Conventions, for every method here:

* Offsets are Kafka's: the first record of a partition is 0, ``log_start_offset`` is the
  oldest offset still stored, ``high_watermark`` the offset the next record will get.
  Timestamps are epoch milliseconds. Sizes are bytes.
* A partition is named ``(topic, partition)`` (a :data:`TopicPartition`); offsets maps are
  ``{(topic, partition): offset}``.
* Results are plain dicts, lists and tuples shaped like the API's responses (the API
  layer filters them, never reshapes them); records read back are tuples in the field
  order of :class:`consumer_api.records.Record`.
* Failures are :mod:`consumer_api.errors` exceptions: TopicNotFound, PartitionNotFound,
  TopicExists, OffsetOutOfRange, PartitionNotAssigned, GroupNotFound, GroupNotEmpty,
  InvalidRequest, StorageFull, CorruptLog, Unavailable. Nothing else escapes on purpose.
* Every method may be called from any request thread at once, unless it says otherwise.
  A :class:`Member` is driven by its session, which serialises the calls that change it
  (see its docstring); wake-ups come from any thread, the store's own included.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol, Sequence

#: ``(topic, partition)``
TopicPartition = tuple[str, int]
#: a record read back: ``(offset, timestamp, key, value, headers)``
RecordTuple = tuple
#: called with no arguments (or any, ignored) to wake a waiting consume; it must only set
#: a flag and notify -- it may run under a store's lock, on any thread
Wake = Callable[..., None]


@dataclass(frozen=True)
class Assignment:
    """A group member's partitions as of one ``generation`` of its group.

    ``partitions`` maps a topic to its sorted partition numbers (topics with none are
    left out). ``since`` maps every owned ``(topic, partition)`` to the generation from
    which this member has held it without a break: a member that slept through a
    rebalance which took a partition away and gave it back must not resume from its old
    position. A group member's generation is 0 or more; a manual assignment has
    generation -1, and ``since`` names at most the partitions the session must place anew
    (with a generation later than any it has seen); the others keep its positions."""

    generation: int
    partitions: dict[str, list[int]]
    since: dict[TopicPartition, int] = field(default_factory=dict)

    def pairs(self) -> list[TopicPartition]:
        """The owned partitions as sorted ``(topic, partition)`` pairs."""
        return sorted((t, p) for t, ps in self.partitions.items() for p in ps)


@dataclass(frozen=True)
class PartitionStats:
    """One partition, for ``/metrics``: offsets and the record bytes it stores (None when
    the store cannot tell)."""

    topic: str
    partition: int
    log_start_offset: int
    high_watermark: int
    size_bytes: int | None


@dataclass(frozen=True)
class BackendStats:
    """What ``/metrics`` reads from the store at scrape time: every partition, the
    committed offsets of every group (``{group: {(topic, partition): offset}}``) and the
    count of group rebalances since the store opened."""

    partitions: list[PartitionStats]
    committed: dict[str, dict[TopicPartition, int]]
    rebalances: int

    def watermarks(self) -> dict[TopicPartition, int]:
        """Every partition's high watermark."""
        return {(p.topic, p.partition): p.high_watermark for p in self.partitions}

    def lags(self) -> dict[str, dict[TopicPartition, int]]:
        """Per group, each committed partition's lag: its high watermark minus the
        commit (never below 0), sorted by group and partition; partitions that no longer
        exist are left out."""
        ends = self.watermarks()
        return {group: {tp: max(ends[tp] - offset, 0)
                        for tp, offset in sorted(offsets.items()) if tp in ends}
                for group, offsets in sorted(self.committed.items())}


class Member(Protocol):
    """One consumer session's place in its group, owned by that session.

    Made by :meth:`Backend.member` with the ``wake`` callable to call when the member's
    assignment changes (a join completed, a rebalance) and, while watched, when a
    partition has new records. The session calls :meth:`join` once, then reads
    :meth:`assignment` before each use; a store whose joins take seconds returns None
    from both until the join completes, then wakes. The session serialises
    :meth:`join`, :meth:`assign`, :meth:`leave` and :meth:`reposition` (under its own
    lock); :meth:`fetch`, :meth:`high_watermark`, :meth:`watch`, :meth:`unwatch`,
    :meth:`commit` and :meth:`committed` may run on any request thread.
    """

    def join(self, topics: Sequence[str], assignor: str | None = None) -> Assignment | None:
        """Join the group subscribed to ``topics`` (rebalancing it). The assignment if
        the join completed at once, None if it completes later (``wake`` is called
        then). TopicNotFound for a topic that does not exist. ``assignor`` (``range``,
        ``roundrobin`` or ``sticky``) becomes the group's when it has no members yet
        (None: the store's default); InvalidRequest for one the store does not offer."""

    def assignment(self) -> Assignment | None:
        """The current assignment; None while a join is pending, and after
        :meth:`leave` (or when the store dropped the member)."""

    def assign(self, partitions: dict[str, list[int]]) -> Assignment:
        """Leave group management and own exactly ``partitions`` (already checked to
        exist) from now on; commits then may only name partitions that no group member
        owns. Returns the manual assignment (generation -1)."""

    def fetch(self, topic: str, partition: int, offset: int, max_records: int,
              max_bytes: int, taken: int) -> tuple[list[RecordTuple], int]:
        """Records of an owned partition from ``offset``: ``(records, taken)`` where
        ``taken`` grows by the stored size of each record returned and no record is
        returned that would take it past ``max_bytes`` -- except the first of a consume
        (``taken`` 0), which comes whatever its size. At most ``max_records``; ``[]``
        when there is nothing from ``offset`` yet. OffsetOutOfRange when ``offset`` is
        outside ``[log_start_offset, high_watermark]``."""

    def high_watermark(self, topic: str, partition: int) -> int:
        """The partition's high watermark as this member last saw it (cheap; may lag the
        store by as much as a wake-up)."""

    def watch(self, topic: str, partition: int) -> None:
        """Call ``wake`` on every new record of the partition (and when it goes away)
        until :meth:`unwatch`. A partition that no longer exists is ignored."""

    def unwatch(self, topic: str, partition: int) -> None:
        """Stop :meth:`watch`; harmless when not watching."""

    def reposition(self, topic: str, partition: int, offset: int) -> None:
        """The session's next offset for an owned partition moved other than by reading
        on (a seek, a reset, records given back): a store that reads ahead drops what
        it buffered past it."""

    def commit(self, offsets: dict[TopicPartition, int]) -> None:
        """Commit offsets for the group, atomically with respect to rebalances: every
        partition must be owned by this member (PartitionNotAssigned otherwise) and
        every offset within ``[0, high_watermark]`` (OffsetOutOfRange); TopicNotFound /
        PartitionNotFound for what does not exist. Nothing is committed on error."""

    def committed(self, partitions: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        """The group's committed offsets of ``partitions`` (those with a commit)."""

    def leave(self) -> None:
        """Leave the group (rebalancing the rest) and stop every watch. Idempotent."""


class Backend(Protocol):
    """A message store: topics, records, consumer groups. See the module docstring for
    units, errors and thread-safety."""

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        """Whether :meth:`open` completed and :meth:`close` has not begun."""

    def open(self) -> None:
        """Open (recover, connect) the store; may take long. Raises if it cannot."""

    def start(self) -> None:
        """Start the store's background threads (after any fork). Idempotent."""

    def close(self) -> None:
        """Stop background threads, flush and release everything. Idempotent."""

    # -- topics ------------------------------------------------------------------------

    def create_topic(self, name: str, partitions: int, config: dict | None = None) -> dict:
        """``{name, partitions, config}``; TopicExists / InvalidRequest / StorageFull."""

    def list_topics(self) -> list[dict]:
        """``[{name, partitions: [{partition, log_start_offset, high_watermark}]}]``,
        sorted by name."""

    def describe_topic(self, name: str) -> dict:
        """``{name, config, partitions: [{partition, log_start_offset, high_watermark,
        size_bytes}]}``; TopicNotFound."""

    def delete_topic(self, name: str) -> None:
        """Delete a topic and its committed offsets; groups reading it rebalance.
        TopicNotFound."""

    def partition_count(self, topic: str) -> int:
        """TopicNotFound."""

    def log_offsets(self, topic: str, partition: int) -> tuple[int, int]:
        """``(log_start_offset, high_watermark)``; TopicNotFound / PartitionNotFound."""

    def offset_for_timestamp(self, topic: str, partition: int, timestamp: int) -> int:
        """The first offset whose record's timestamp is at or after ``timestamp``; the
        high watermark when there is none."""

    def positions_for_times(self, topic: str, partitions: Sequence[int],
                            timestamps: Sequence[int]) -> dict[int, list[tuple[int, int | None]]]:
        """Where each time starts in each partition: ``{partition: [(offset, byte), ...]}``,
        one pair per timestamp (ascending). ``offset`` is :meth:`offset_for_timestamp`'s
        answer, as of one moment (the high watermark then when no record is at or after
        the time); ``byte`` is a position in the partition's stored bytes such that the
        difference of two is the size of the records between them, or None when the store
        cannot tell. Both never decrease along a partition's list. Answered from the
        store's time index, not by reading records. TopicNotFound / PartitionNotFound."""

    # -- records -----------------------------------------------------------------------

    def produce(self, topic: str, records: list, partitions: list) -> list[dict]:
        """Append ``records`` (:class:`consumer_api.records.NewRecord`-shaped) where
        ``partitions[i]`` is record i's explicit partition or None (keyed: Kafka's murmur2,
        :mod:`consumer_api.partitioner`; keyless: round-robin per record). Returns
        ``{partition, offset, timestamp}`` per record, in request order, once every
        record is stored. TopicNotFound / PartitionNotFound (nothing appended) /
        StorageFull (nothing appended)."""

    def read(self, topic: str, partition: int, offset: int | None, max_records: int,
             max_bytes: int) -> list[RecordTuple]:
        """Stateless read from ``offset`` (None: the log start); OffsetOutOfRange."""

    def fetch(self, topic: str, partition: int, offset: int, max_records: int,
              max_bytes: int, taken: int) -> tuple[list[RecordTuple], int]:
        """Stateless read in windows, as :meth:`Member.fetch`."""

    def stats(self) -> BackendStats:
        """What ``/metrics`` shows (only while open)."""

    # -- consumer groups ---------------------------------------------------------------

    def member(self, group_id: str, member_id: str, wake: Wake) -> Member:
        """A new, not yet joined member of ``group_id`` for one session."""

    def list_groups(self) -> list[dict]:
        """``[{group_id, state, generation, members: [member ids]}]`` of every group with
        members or committed offsets, sorted by id."""

    def describe_group(self, group_id: str) -> dict:
        """``{group_id, state, generation, assignor, members: [{consumer_id, topics,
        assignment}], offsets: [{topic, partition, committed_offset, high_watermark,
        lag}]}`` (one offsets row per partition of every topic the group reads or has
        committed; ``committed_offset`` and ``lag`` None where nothing is committed).
        GroupNotFound."""

    def committed(self, group_id: str) -> dict[TopicPartition, int]:
        """Every committed offset of a group (``{}`` for an unknown group)."""

    def set_offsets(self, group_id: str, offsets: dict[TopicPartition, int] | None = None,
                    reset: str | None = None, topics: Sequence[str] | None = None) -> dict:
        """While the group has no members: commit explicit ``offsets``, or ``reset``
        (``earliest``/``latest``) every partition of ``topics`` (default: the topics it
        has committed). Returns what was committed. GroupNotEmpty / InvalidRequest /
        TopicNotFound / PartitionNotFound / OffsetOutOfRange."""

    def delete_group(self, group_id: str) -> None:
        """Delete an empty group and its offsets. GroupNotEmpty / GroupNotFound."""
