"""KafkaMember: one consumer session's place in a Kafka consumer group, kept by a pump.

A confluent-kafka Consumer may be touched by one thread only: a ``commit()`` or
``committed()`` from another thread while one polls was seen to hang the interpreter. So
each member has a *pump*, a thread that owns its Consumer: it polls without pause (keeping
the member alive in its group while the HTTP client is idle), runs the rebalance callbacks,
buffers what it fetches, and runs the commands request threads hand it through a queue
(seek, commit, committed, manual assignment, close), each waited for at most ``timeout_s``.

Positions are the session's (:mod:`consumer_api.sessions`). What a partition newly assigned
delivers is dropped until the session says where to read it from (:meth:`reposition`, which
every new partition gets, a seek): the member never lets Kafka's ``auto.offset.reset``
choose lazily. The pump
buffers at most ``buffer_bytes`` per partition (pausing the partition past it, resuming it
when the session has taken half) and wakes the session on new records of a watched
partition and on every rebalance. A rebalance that keeps a partition keeps its buffer; a
partition lost is dropped with its buffer. Eager assignors (range, roundrobin) revoke and
hand out whole sets; cooperative-sticky (our ``sticky``) revokes and adds only what moves,
and the partitions that stay are read on without a pause. Records this node's producer stored that the pump
has not fetched yet are waited for briefly (:meth:`KafkaMember.high_watermark`), so a
consume right after a produce through the same node sees them.

``generation`` counts this member's assignments (an epoch of its own, 1 for the first, not
Kafka's group generation); ``since`` keeps, per partition, the generation from which it was held.
Commits are checked against the member's current assignment and fenced by Kafka: a
commit that meets a rebalance fails with PartitionNotAssigned.

Thread-safety: ``_lock`` guards the assignment, the buffers and the watched set
(``_changed``, a condition on it, is notified whenever a buffer changes); the Consumer is
touched only by the pump thread.
"""
from __future__ import annotations

import collections
import logging
import queue
import threading
import time
from concurrent.futures import Future
from typing import Sequence

from confluent_kafka import OFFSET_END, Consumer, KafkaError, KafkaException, TopicPartition

from consumer_api.backend import Assignment, TopicPartition as TP, Wake
from consumer_api.errors import InvalidRequest, PartitionNotAssigned, TopicNotFound, Unavailable
from consumer_api.kafka.admin import KafkaAdmin, kafka_error
from consumer_api.offset_rules import check_commit, out_of_range
from consumer_api.kafka.reader import stored_size, to_record

log = logging.getLogger(__name__)

#: messages the pump takes from its consumer at a time; the most it waits for one
#: (seconds) before it serves the commands again -- shorter while a partition waits to be
#: resumed (the session drained its buffer), so reading goes on at once
BATCH = 1000
POLL_S = 0.05
BUSY_POLL_S = 0.002
#: the most (seconds) a read waits for the pump to fetch records this node stored
CATCH_UP_S = 1.0
#: librdkafka settings of a member that the server's client settings may override:
#: a member hears of a rebalance at its next heartbeat (librdkafka: every 3 s), so a
#: subscribe joins within about a second; a seek takes effect when the fetch in flight
#: returns (librdkafka waits up to 500 ms for data); a partition resumed after its buffer
#: drained fetches again at once (librdkafka backs off 1 s when its queue was full)
MEMBER_DEFAULTS = {"heartbeat.interval.ms": 1000, "fetch.wait.max.ms": 100,
                   "fetch.queue.backoff.ms": 10}
#: the ``since`` of a manually assigned partition the session must place anew: later
#: than any generation it has seen
NEW = 1 << 62
#: our assignors and librdkafka's (cooperative-sticky rebalances incrementally)
KAFKA_ASSIGNORS = {"range": "range", "roundrobin": "roundrobin",
                   "sticky": "cooperative-sticky"}
#: Kafka errors that mean "a rebalance took the partition": a commit is refused with 409
FENCED = frozenset((KafkaError.ILLEGAL_GENERATION, KafkaError.REBALANCE_IN_PROGRESS,
                    KafkaError.UNKNOWN_MEMBER_ID, KafkaError.FENCED_INSTANCE_ID))


class _Buffer:
    """Records of one partition fetched ahead, oldest first, each with its stored size;
    ``next`` is the offset the consumer delivers next (-1 until a seek set it);
    ``pending`` while a seek asked for has not been made (what arrives then is dropped);
    ``placed`` once the session said where to read (a buffer made for a partition just
    assigned is not)."""

    __slots__ = ("records", "bytes", "pending", "paused", "out_of_range", "next", "placed")

    def __init__(self):
        self.records: collections.deque = collections.deque()
        self.bytes = 0
        self.pending = True
        self.paused = False
        self.out_of_range = False
        self.next = -1
        self.placed = False


class KafkaMember:
    def __init__(self, client_config: dict, admin: KafkaAdmin, group_id: str, member_id: str,
                 wake: Wake, on_rebalance=None, timeout_s: float = 30.0,
                 buffer_bytes: int = 1 << 20, stored_end=lambda topic, partition: 0):
        self._config = {**MEMBER_DEFAULTS,
                        **client_config, "group.id": group_id, "client.id": member_id,
                        "enable.auto.commit": False, "enable.auto.offset.store": False,
                        "auto.offset.reset": "error",
                        # a deleted or re-created topic is noticed within a second
                        "topic.metadata.refresh.interval.ms": 1000,
                        "queued.max.messages.kbytes": max(64, buffer_bytes >> 10)}
        self._admin = admin
        self.group_id, self.member_id = group_id, member_id
        self._wake = wake
        self._on_rebalance = on_rebalance
        self.timeout_s = timeout_s
        self._buffer_bytes = buffer_bytes
        self._stored_end = stored_end
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._assignment: Assignment | None = None
        self._manual: list | None = None  # the partitions named by hand (pump only)
        self._revoking = False  # leaving the group, until its revoke callback (pump only)
        self._buffers: dict[TP, _Buffer] = {}
        self._watched: set = set()
        self._generation = 0  # the first assignment is generation 1, as on the embedded store
        self._commands: queue.SimpleQueue = queue.SimpleQueue()
        self._later: list = []  # commands to try again after the next poll (pump only)
        self._resume: set = set()
        self._thread: threading.Thread | None = None
        self._left = False

    # -- membership ------------------------------------------------------------------------

    @property
    def _cooperative(self) -> bool:
        """Whether its group rebalances incrementally (cooperative-sticky)."""
        return self._config.get("partition.assignment.strategy") == "cooperative-sticky"

    def join(self, topics: Sequence[str], assignor: str | None = None) -> Assignment | None:
        if assignor is not None:  # the group's members agree on one (Kafka: its protocol)
            if assignor not in KAFKA_ASSIGNORS:
                raise InvalidRequest(f"the {assignor} assignor is not offered on the Kafka "
                                     "store yet", {"assignor": [
                                         f"One of: {', '.join(KAFKA_ASSIGNORS)}."]})
            self._config["partition.assignment.strategy"] = KAFKA_ASSIGNORS[assignor]
        for topic in topics:
            self._admin.partition_count(topic)  # TopicNotFound before anything starts
        self._start_pump(list(topics))
        return None  # the assignment comes with the first rebalance (wake() then)

    def _start_pump(self, topics: list | None) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._pump, args=(topics,), daemon=True,
                                            name=f"kafka-member-{self.member_id[:8]}")
            self._thread.start()

    def assignment(self) -> Assignment | None:
        with self._lock:
            return None if self._left else self._assignment

    def assign(self, partitions: dict[str, list[int]]) -> Assignment:
        chosen = {t: sorted(set(ps)) for t, ps in partitions.items() if ps}
        self._start_pump(None)
        self._call(self._assign_manually, chosen)
        with self._lock:
            self._buffers = {tp: b for tp, b in self._buffers.items()
                             if tp[1] in chosen.get(tp[0], ())}
            # a partition the session has not placed (a rebalance it has not seen took it
            # and gave it back) is new to it: it must be placed again
            since = {tp: 0 if b.placed else NEW for tp, b in self._buffers.items()}
            self._assignment = Assignment(-1, chosen, since)
            return self._assignment

    def leave(self) -> None:
        with self._lock:
            if self._left:
                return
            self._left = True
            self._changed.notify_all()
        if self._thread is not None and self._thread.is_alive():
            try:
                self._call(None)  # close the consumer: it leaves the group at once
            except Unavailable:
                log.warning("member %s of group %s did not close in time", self.member_id,
                            self.group_id)

    # -- records ---------------------------------------------------------------------------

    def fetch(self, topic: str, partition: int, offset: int, max_records: int,
              max_bytes: int, taken: int) -> tuple[list, int]:
        tp = (topic, partition)
        out: list = []
        with self._lock:
            buffer = self._buffers.get(tp)
            if buffer is None:
                return out, taken
            if buffer.out_of_range:
                start, end = self._admin.log_offsets(topic, partition)
                raise out_of_range(topic, partition, offset, start, end)
            if buffer.pending:
                return out, taken
            records = buffer.records
            while records and records[0][0] < offset:
                buffer.bytes -= records.popleft()[5]
            while records and len(out) < max_records:
                record = records[0]
                if taken and taken + record[5] > max_bytes:
                    break
                records.popleft()
                buffer.bytes -= record[5]
                taken += record[5]
                out.append(record[:5])
            if buffer.paused and buffer.bytes <= self._buffer_bytes // 2:
                self._resume.add(tp)
        return out, taken

    def high_watermark(self, topic: str, partition: int) -> int:
        """The offset after the last record this member holds for the partition -- what it
        could hand out now, not the partition's own high watermark; -1 while it holds
        nothing to read from (a seek pending, the partition not assigned). While it holds
        nothing and this node's producer stored records the pump has not fetched yet, it
        waits for them (at most CATCH_UP_S)."""
        tp = (topic, partition)
        stored = self._stored_end(topic, partition)
        deadline = time.monotonic() + CATCH_UP_S
        with self._lock:
            while True:
                buffer = self._buffers.get(tp)
                if buffer is None:
                    return -1
                behind = stored and not self._left and not buffer.out_of_range and (
                    buffer.pending or (not buffer.records and not buffer.paused
                                       and buffer.next < stored))
                left = deadline - time.monotonic()
                if not behind or left <= 0:
                    return -1 if buffer.pending else buffer.next
                self._changed.wait(left)

    def watch(self, topic: str, partition: int) -> None:
        with self._lock:
            self._watched.add((topic, partition))

    def unwatch(self, topic: str, partition: int) -> None:
        with self._lock:
            self._watched.discard((topic, partition))

    def reposition(self, topic: str, partition: int, offset: int) -> None:
        """Read the partition from ``offset`` on. An offset outside the log is found here
        (one round trip) rather than by the consumer later: the next fetch is then
        OffsetOutOfRange."""
        tp = (topic, partition)
        with self._lock:
            buffer = self._buffers.get(tp)
            if buffer is not None and not buffer.pending and buffer.records \
                    and buffer.records[0][0] <= offset <= buffer.next:
                return  # what is buffered already reaches it: fetch skips to it
        start, end = self._admin.log_offsets(topic, partition)
        with self._lock:
            fresh = self._buffers[tp] = _Buffer()
            fresh.placed = True
            if not start <= offset <= end:
                fresh.out_of_range = True
                return
            self._commands.put((self._seek, (tp, offset, fresh), None))

    # -- offsets ---------------------------------------------------------------------------

    def commit(self, offsets: dict) -> None:
        with self._lock:
            owned = set(self._assignment.pairs()) if self._assignment else set()
        by_topic: dict = {}
        for (topic, p), offset in offsets.items():
            if (topic, p) not in owned:
                raise PartitionNotAssigned(
                    f"partition {p} of topic {topic!r} is not assigned to this consumer",
                    {"topic": topic, "partition": p})
            by_topic.setdefault(topic, {})[p] = offset
        for topic, chosen in by_topic.items():  # one round trip per topic, not per partition
            ranges = self._admin.offsets_of(topic, list(chosen))
            for p, offset in chosen.items():
                check_commit(topic, p, offset, *ranges[p])
        self._call(self._commit, offsets)

    def committed(self, partitions: Sequence[TP]) -> dict:
        if not partitions:
            return {}
        if self._thread is None or not self._thread.is_alive():
            return {}
        return self._call(self._committed, list(partitions))

    # -- handing work to the pump ----------------------------------------------------------

    def _call(self, command, *args):
        """Run ``command(consumer, *args)`` on the pump thread and wait for its result;
        ``None`` closes the consumer."""
        done: Future = Future()
        self._commands.put((command, args, done))
        try:
            return done.result(self.timeout_s)
        except TimeoutError:
            raise Unavailable(f"the Kafka consumer of {self.member_id} did not answer within "
                              f"{self.timeout_s:g} s") from None

    # -- the pump thread -------------------------------------------------------------------

    def _pump(self, topics: list | None) -> None:
        consumer = Consumer(self._config)
        try:
            if topics is not None:
                consumer.subscribe(topics, on_assign=self._assigned, on_revoke=self._revoked,
                                   on_lost=self._revoked)
            while self._serve_commands(consumer):
                self._resume_drained(consumer)
                message = consumer.poll(self._poll_timeout())
                if message is not None:  # then what else is there, without waiting
                    for each in [message, *consumer.consume(BATCH, 0)]:
                        self._take(consumer, each)
                for command in self._later:
                    self._commands.put(command)
                self._later = []
        except Exception:
            log.exception("the Kafka consumer of %s failed", self.member_id)
        finally:
            with self._lock:
                self._left = True
                self._changed.notify_all()
            self._wake()

    def _serve_commands(self, consumer) -> bool:
        """Run the queued commands; False once asked to close (after closing)."""
        while True:
            try:
                command, args, done = self._commands.get_nowait()
            except queue.Empty:
                return True
            if command is None:
                try:
                    consumer.close()
                finally:
                    if done is not None:
                        done.set_result(None)
                return False
            try:
                result = command(consumer, *args)
                if done is not None:
                    done.set_result(result)
            except BaseException as exc:
                if done is None:
                    log.warning("member %s: %s failed: %r", self.member_id, command.__name__,
                                exc)
                else:
                    done.set_exception(exc)

    def _poll_timeout(self) -> float:
        with self._lock:
            backpressured = any(b.paused and not b.pending for b in self._buffers.values())
        return BUSY_POLL_S if backpressured else POLL_S

    def _resume_drained(self, consumer) -> None:
        """Let partitions the session has half drained fetch again, from where their buffer
        ends (what the consumer had fetched past it while paused was dropped)."""
        with self._lock:
            ready, self._resume = self._resume, set()
            resume = {tp: self._buffers[tp].next for tp in ready if tp in self._buffers
                      and not self._buffers[tp].pending}
            for tp in resume:
                self._buffers[tp].paused = False
        for (topic, p), offset in resume.items():
            consumer.seek(TopicPartition(topic, p, offset))
        if resume:
            consumer.resume([TopicPartition(t, p) for t, p in resume])

    def _take(self, consumer, message) -> None:
        error = message.error()
        tp = (message.topic(), message.partition())
        if error is not None:
            if error.code() == KafkaError._AUTO_OFFSET_RESET:
                with self._lock:
                    if tp in self._buffers and not self._buffers[tp].pending:
                        self._buffers[tp].out_of_range = True
                        self._changed.notify_all()
                self._wake()
            elif error.code() != KafkaError._PARTITION_EOF:
                log.warning("member %s: %s", self.member_id, error.str())
            return
        record = to_record(message)
        size = stored_size(message.key(), message.value(), message.headers())
        with self._lock:
            buffer = self._buffers.get(tp)
            if buffer is None or buffer.pending or buffer.paused \
                    or message.offset() < buffer.next:
                return
            buffer.next = message.offset() + 1
            buffer.records.append((*record, size))
            buffer.bytes += size
            self._changed.notify_all()
            full = buffer.bytes > self._buffer_bytes and not buffer.paused
            if full:
                buffer.paused = True
            watched = tp in self._watched
        if full:
            consumer.pause([TopicPartition(*tp)])
        if watched:
            self._wake()

    def _seek(self, consumer, tp: TP, offset: int, buffer: _Buffer, tries: int = 200) -> None:
        """Move the consumer's fetch of ``tp`` to ``offset`` and let it fetch into
        ``buffer``. A partition assigned a moment ago cannot be sought yet (librdkafka:
        erroneous state): the seek is tried again after the next polls, at most ``tries``
        times. A seek whose buffer was replaced meanwhile (a later reposition, a lost
        partition) is not made."""
        with self._lock:
            if self._buffers.get(tp) is not buffer:
                return
        try:
            consumer.seek(TopicPartition(tp[0], tp[1], offset))
        except KafkaException as exc:
            error = kafka_error(exc)
            if error is None or error.code() != KafkaError._STATE or tries <= 1:
                raise
            self._later.append((self._seek, (tp, offset, buffer, tries - 1), None))
            return
        with self._lock:
            if self._buffers.get(tp) is buffer:
                buffer.pending = False
                buffer.paused = False
                buffer.next = offset
                self._changed.notify_all()
        consumer.resume([TopicPartition(*tp)])

    def _commit(self, consumer, offsets: dict) -> None:
        try:
            consumer.commit(offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()],
                            asynchronous=False)
        except KafkaException as exc:
            error = kafka_error(exc)
            if error is not None and error.code() in FENCED:
                (topic, p), = list(offsets)[:1]
                raise PartitionNotAssigned(
                    f"partition {p} of topic {topic!r} is not assigned to this consumer "
                    "(a rebalance moved it)", {"topic": topic, "partition": p}) from None
            if error is not None and error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise TopicNotFound(f"a topic of {sorted(offsets)} does not exist") from None
            raise Unavailable(f"the Kafka cluster did not take the commit: {exc}") from None

    def _committed(self, consumer, partitions: list) -> dict:
        found = consumer.committed([TopicPartition(t, p) for t, p in partitions],
                                   timeout=self.timeout_s)
        return {(tp.topic, tp.partition): tp.offset for tp in found if tp.offset >= 0}

    def _assign_manually(self, consumer, chosen: dict) -> None:
        """Leave the group and read exactly ``chosen``. Leaving revokes what the group gave
        in a callback a poll later, which unassigns everything: the manual partitions are
        assigned once that has run."""
        if self._manual is None and consumer.assignment():
            self._revoking = True
            consumer.unsubscribe()
            deadline = time.monotonic() + self.timeout_s
            while self._revoking and time.monotonic() < deadline:
                message = consumer.poll(POLL_S)
                if message is not None:
                    self._take(consumer, message)
        elif self._manual is None:
            consumer.unsubscribe()
        self._manual = [(t, p) for t, ps in chosen.items() for p in ps]
        self._reassign(consumer, self._manual)

    def _reassign(self, consumer, pairs: list) -> None:
        """Assign ``pairs``: those with a buffer that reads on go on from where it is; the
        others are paused until the session repositions them."""
        with self._lock:
            kept = [tp for tp in pairs if tp in self._buffers
                    and not self._buffers[tp].pending and self._buffers[tp].next >= 0]
            nexts = {tp: self._buffers[tp].next for tp in kept}
            self._buffers = {tp: self._buffers.get(tp) or _Buffer() for tp in pairs}
            for tp in kept:
                self._buffers[tp].paused = False
            self._changed.notify_all()
        # a partition the session has not placed yet is assigned at its end (with no
        # offset librdkafka would look for a commit and fail on auto.offset.reset=error),
        # not paused: a fetch kept in flight is what makes the seek take effect at once
        # (with every partition paused librdkafka checks again only about every second).
        # What it fetches before the seek is dropped (the buffer is pending).
        consumer.assign([TopicPartition(t, p, nexts.get((t, p), OFFSET_END))
                         for t, p in pairs])

    # -- rebalance callbacks (on the pump thread, inside poll) -----------------------------

    def _revoked(self, consumer, partitions) -> None:
        """Eager rebalances revoke everything first; the buffers of partitions that stay
        are kept until the assignment says which those are. Cooperative ones revoke only
        what moves: those partitions go now, with their buffers."""
        self._revoking = False
        if not self._cooperative or self._manual is not None:
            return
        gone = {(tp.topic, tp.partition) for tp in partitions}
        with self._lock:
            for tp in gone:
                self._buffers.pop(tp, None)
            current = self._assignment.pairs() if self._assignment else []
        consumer.incremental_unassign(partitions)
        self._publish([tp for tp in current if tp not in gone])

    def _assigned(self, consumer, partitions) -> None:
        """Eager rebalances hand out the whole new set; cooperative ones what is added."""
        if self._manual is not None:  # it left the group: what the group hands out is not its own
            return
        given = sorted((tp.topic, tp.partition) for tp in partitions)
        if not self._cooperative:
            self._reassign(consumer, given)
            self._publish(given)
            return
        with self._lock:
            current = self._assignment.pairs() if self._assignment else []
            for tp in given:
                self._buffers[tp] = _Buffer()
            self._changed.notify_all()
        # placed at the end until the session's seek (see _reassign); a fetch in flight
        # makes the seek take effect at once
        consumer.incremental_assign([TopicPartition(t, p, OFFSET_END) for t, p in given])
        self._publish(sorted(set(current) | set(given)))

    def _publish(self, pairs: list) -> None:
        """The member's new assignment (a generation of its own); partitions it held
        before keep the generation they were held since. Wakes the session."""
        with self._lock:
            previous = self._assignment
            self._generation += 1
            since = {}
            grouped: dict = {}
            for tp in pairs:
                kept = previous is not None and tp in previous.since
                since[tp] = previous.since[tp] if kept else self._generation
                grouped.setdefault(tp[0], []).append(tp[1])
            self._assignment = Assignment(self._generation, grouped, since)
        if self._on_rebalance is not None:
            self._on_rebalance()
        self._wake()
