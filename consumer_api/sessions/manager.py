"""ConsumerManager: the HTTP consumer sessions of one server.

A session is created by subscribe (it joins its group then, and waits a bounded time for
the join, so the first consume can return data), and every later request on it is a
heartbeat. A consume reads the session's partitions from their positions; when none has
data it watches exactly the partitions it owns and sleeps on its own Waiter until new
records on one of them, a rebalance of its group, its close, or server shutdown -- no
sleep-and-retry and no waking of unrelated consumers (the long-poll:
:mod:`consumer_api.sessions.long_poll`; reading the records:
:mod:`consumer_api.sessions.reading`). The reaper keeps (deadline, id) pairs in a heap,
sleeps until the earliest, expires sessions under the lock and makes them leave their groups
outside it. Sessions live in memory; with a :class:`~consumer_api.sessions.saved.SessionLog`
they are also saved (:mod:`consumer_api.sessions.saver`: at once for a session created,
closed or expired, a manual assignment or a seek; within ``save_interval_s`` for positions
and commits) and :meth:`ConsumerManager.restore` brings them back after a restart
(:mod:`consumer_api.sessions.restore`).

Shares: a consume that finds nothing and may wait takes a *poll slot* before it sleeps and
gives it back however the wait ends. Slots are capped server-wide (``max_waiting_polls``:
the threads left after a reserve for everything else) and per client; so are sessions. A
refused slot is ``TooManyPolls`` at once -- nothing is taken, the client retries later.
A newer consume on a session supersedes the one waiting there (it returns empty), so one
session never holds two slots or two threads for a whole wait.

Everything a session asks of the store goes through the seam (:mod:`consumer_api.backend`):
the :class:`~consumer_api.backend.Backend` for offsets and timestamps, and the session's own
:class:`~consumer_api.backend.Member` for its group (join, assignment, reads, watches,
commits). A join may complete later than it is asked for: the member wakes the session then,
and until it does the session owns no partitions.

Thread-safety: ``_lock`` (a Lock; ``_cond`` is a Condition on it for the reaper) guards
the session table, the deadline heap and the two tallies (sessions and waiting polls, in
all and per client) only. It is never held while calling the store or waiting for records.
Per-session state has the session's own locks (see :mod:`consumer_api.sessions.session`).
Lock order: manager lock -> nothing; session lock -> the store's locks (on the embedded
store: the group coordinator's, the offset store's, a partition's, taken by assignment
reads, start-offset lookups, seeks and out-of-range resets); a store's lock -> a session's
waiter lock (a wake-up: rebalances and appends wake sessions under the store's locks);
the saver's write lock -> manager lock (it lists the live sessions).
"""
from __future__ import annotations

import heapq
import itertools
import logging
import sys
import threading
import time
import uuid

from consumer_api.backend import Assignment, Backend
from consumer_api.clock import wall_clock_ms
from consumer_api.errors import (ConsumerNotFound, InvalidRequest, OffsetOutOfRange,
                                 PartitionNotAssigned, PartitionNotFound, TooManyConsumers,
                                 TooManyPolls, TopicNotFound, Unavailable)
from consumer_api.sessions.collect import Collector, RecordLists
from consumer_api.sessions.scan import Scan
from consumer_api.sessions.long_poll import poll
from consumer_api.sessions.quota import ClientQuota, Tally
from consumer_api.sessions.reading import retreat
from consumer_api.sessions.restore import restore_sessions, resume_at
from consumer_api.sessions.saved import SavedSession, SessionLog
from consumer_api.sessions.saver import NoSaver, SessionSaver
from consumer_api.sessions.session import Session, Waiter

log = logging.getLogger(__name__)

#: how long (real seconds, at least) a consume waits for the turn on its session: the
#: consume it supersedes gives it up at once unless it is in the middle of a read
HANDOVER_S = 5.0
#: how long (real seconds, by default) a subscribe waits for a join that does not complete
#: at once; past it the session is answered "joining", with no partitions yet
JOIN_WAIT_S = 10.0
#: what a member that is not (yet, or any more) in its group owns
NO_ASSIGNMENT = Assignment(-1, {})


class ConsumerManager:
    """``backend`` is the store (see :mod:`consumer_api.backend`). ``clock`` (seconds, monotonic) drives heartbeats and deadlines; ``now_ms`` (epoch ms)
    stamps responses. Both are injectable so tests never sleep. ``max_waiting_polls``
    caps the consumes waiting at once, server-wide (None: no cap; see
    :meth:`limit_waiting_polls`). ``node_id``, when set, starts every consumer id this
    manager makes (``<node_id>.<32 hex digits>``), so that a proxy in front of several
    nodes can send a session's requests to the node that holds it. ``sessions_log``, when
    given, is where the sessions are saved (positions at most ``save_interval_s`` real
    seconds late) and restored from."""

    def __init__(self, backend: Backend, max_sessions: int = 10_000, clock=time.monotonic,
                 now_ms=wall_clock_ms, max_waiting_polls: int | None = None,
                 node_id: str = "", join_wait_s: float = JOIN_WAIT_S,
                 sessions_log: SessionLog | None = None, save_interval_s: float = 1.0):
        self.backend = backend
        self.max_sessions = max_sessions
        self.max_waiting_polls = max_waiting_polls
        self.clock = clock
        self.now_ms = now_ms
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._sessions: dict[str, Session] = {}
        self._deadlines: list = []  # heap of (deadline_s, seq, consumer_id)
        self._seq = itertools.count()
        self._session_tally = Tally()  # live sessions, per client name
        self._poll_tally = Tally()  # poll slots held: consumes waiting for records
        self._stopping = False  # written under _lock; read without it (one attribute)
        self._reaper: threading.Thread | None = None
        self.expired_total = 0
        self._id_prefix = f"{node_id}." if node_id else ""
        self.join_wait_s = join_wait_s
        self.saver = NoSaver() if sessions_log is None else SessionSaver(
            sessions_log, self._live, save_interval_s)

    # -- session table ---------------------------------------------------------------------

    def _get(self, consumer_id: str, owner=None) -> Session:
        """The live session (404 for unknown, closed, expired or another key's) -- and a
        heartbeat."""
        session = self._sessions.get(consumer_id)
        if session is None or session.closed or session.owner != owner:
            raise ConsumerNotFound(f"consumer {consumer_id!r} not found (unknown, closed or "
                                   "expired)", {"consumer_id": consumer_id})
        session.last_heartbeat = self.clock()
        return session

    def _push_deadline(self, session: Session) -> None:
        heapq.heappush(self._deadlines, (session.deadline(), next(self._seq), session.consumer_id))

    @property
    def stopping(self) -> bool:
        """Whether :meth:`shutdown` began: consumes return at once, subscribes are 503."""
        return self._stopping

    def count(self) -> int:
        return len(self._sessions)

    def waiting(self) -> int:
        """Consumes waiting for records right now (poll slots held)."""
        with self._lock:
            return self._poll_tally.total

    def limit_waiting_polls(self, limit: int | None) -> None:
        """Cap the consumes that may wait at once, server-wide (None: no cap). Polls
        already waiting keep their slots. ValueError for a limit below 1."""
        if limit is not None and limit < 1:
            raise ValueError(f"the limit of waiting polls must be at least 1, not {limit}")
        with self._lock:
            self.max_waiting_polls = limit

    # -- subscribe and close ---------------------------------------------------------------

    def subscribe(self, group_id: str, topics: list, auto_offset_reset: str = "latest",
                  session_timeout_ms: int = 30_000, auto_commit: bool = False,
                  encoding: str = "base64", owner=None,
                  client: ClientQuota | None = None, assignor: str | None = None) -> dict:
        """Create a session, join its group (rebalancing it) and return the assignment.
        ``assignor`` is the group's when this is its first member (see Member.join).
        ``owner`` (an API key's name, or None) alone may use the session later; ``client``
        is whose share it counts in. TooManyConsumers when the server holds
        ``max_sessions`` sessions, or ``client`` already holds its ``max_sessions``."""
        topics = list(dict.fromkeys(topics))
        session = Session(self._id_prefix + uuid.uuid4().hex, group_id, topics, auto_offset_reset,
                          session_timeout_ms, auto_commit, encoding, owner, self.clock(),
                          None if client is None else sys.intern(client.name), assignor)
        session.member = self.backend.member(group_id, session.consumer_id, session.wake)
        with self._lock:
            if self._stopping:
                raise Unavailable("the server is shutting down")
            self._enter(session, client, owner)
        try:
            assignment = session.member.join(topics, assignor) or self.await_join(
                session, time.monotonic() + self.join_wait_s)
        except BaseException:
            with self._lock:
                self._forget(session)
            raise
        with session.lock:
            self._apply_assignment(session, assignment)
        self.saver.put(session)
        return self._assignment_body(session)

    def await_join(self, session: Session, deadline: float) -> Assignment:
        """Wait (until ``deadline``, on the real monotonic clock) for a join that completes
        later; the assignment, or none yet (the session's requests pick it up once it
        comes)."""
        waiter = session.waiter = Waiter()
        try:
            while (found := session.member.assignment()) is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._stopping:
                    return NO_ASSIGNMENT
                waiter.wait(remaining)
            return found
        finally:
            session.waiter = None

    def _admit_session(self, client: ClientQuota | None, owner) -> None:
        """(Lock held.) TooManyConsumers unless the server and ``client`` have room for one
        more session. Details: ``limit``, ``scope`` (``server`` or ``client``), ``client``
        (its name), ``max_sessions`` (the limit again) and, for an owned session, ``key``
        (the owner)."""
        if len(self._sessions) >= self.max_sessions:
            limit = self.max_sessions
            raise TooManyConsumers(
                f"the server has reached its limit of {limit} consumer sessions; close "
                "unused ones", {"limit": limit, "scope": "server", "max_sessions": limit})
        if client is not None and self._session_tally.held(client.name) >= client.max_sessions:
            limit = client.max_sessions
            details = {"limit": limit, "scope": "client", "client": client.name,
                       "max_sessions": limit}
            if owner is not None:
                details["key"] = owner
            raise TooManyConsumers(
                f"{client.name} has reached its limit of {limit} consumer sessions; close "
                "unused ones", details)

    def _forget(self, session: Session) -> None:
        """(Lock held.) Take the session out of the table and its client's count, once."""
        if self._sessions.pop(session.consumer_id, None) is not None:
            self._session_tally.remove(session.client)

    def close(self, consumer_id: str, commit: bool = False, owner=None) -> None:
        """Unsubscribe: optionally commit the positions first, then leave the group."""
        session = self._get(consumer_id, owner)
        if commit:
            self.commit(consumer_id, None, owner)
        self._end(session, "closed")
        self.saver.drop([session])

    def _end(self, session: Session, why: str) -> None:
        with self._lock:
            if session.closed:
                return
            session.closed = True
            self._forget(session)
        with session.lock:
            session.member.leave()
        session.wake()
        log.info("consumer %s of group %s %s", session.consumer_id, session.group_id, why)

    # -- assignment ------------------------------------------------------------------------

    def sync(self, session: Session) -> list:
        """Bring the session up to its group's current generation (call with its lock).
        Returns its partitions."""
        if session.manual:
            return session.partitions
        current = session.member.assignment()
        if current is None:
            if session.closed:
                raise ConsumerNotFound(f"consumer {session.consumer_id!r} not found (closed "
                                       "or expired)", {"consumer_id": session.consumer_id})
            current = NO_ASSIGNMENT  # a join in progress, or the store dropped the member
        if current.generation != session.generation or (
                current is NO_ASSIGNMENT and session.partitions):
            self._apply_assignment(session, current)
        return session.partitions

    def _apply_assignment(self, session: Session, assignment: Assignment) -> None:
        """Partitions the session has owned without a break since a generation it saw keep
        their position; every other one starts at the group's committed offset, else at
        ``auto_offset_reset``."""
        partitions = assignment.pairs()
        old, seen, since = session.positions, session.generation, assignment.since
        generation = assignment.generation
        kept = {tp for tp in partitions if tp in old and since.get(tp, generation) <= seen}
        fresh = [tp for tp in partitions if tp not in kept]
        committed = session.member.committed(fresh) if fresh else {}
        positions = {tp: old[tp] for tp in kept}
        for tp in fresh:
            positions[tp] = self._start_offset(session, tp, committed.get(tp))
            session.member.reposition(*tp, positions[tp])
        session.positions = {tp: positions[tp] for tp in partitions}
        session.partitions = partitions
        session.assignment = assignment.partitions
        session.generation = generation
        # an auto-commit still pending for a partition owned by someone else meanwhile
        # would move the group's offset back over that member's commits: drop it
        session.pending_commit = {tp: o for tp, o in session.pending_commit.items()
                                  if tp in kept}
        session.acked = {tp: o for tp, o in session.acked.items() if tp in kept}
        if assignment is not NO_ASSIGNMENT:
            session.restored = {}  # claims hold for the first assignment after a restore
        self.saver.changed(session)

    def _start_offset(self, session: Session, tp, committed: int | None) -> int:
        try:
            start, end = self.backend.log_offsets(*tp)
        except (TopicNotFound, PartitionNotFound):
            return 0  # deleted meanwhile: the rebalance that follows drops it
        claim = session.restored.get(tp)
        if claim is not None:
            resumed = resume_at(claim, committed, session.acked.get(tp))
            if start <= resumed <= end:
                return resumed
        if committed is not None and start <= committed <= end:
            return committed
        return start if session.auto_offset_reset == "earliest" else end

    def _assignment_body(self, session: Session) -> dict:
        body = {"consumer_id": session.consumer_id, "group_id": session.group_id,
                "topics": list(session.topics) if not session.manual else sorted(session.assignment),
                "assignment": {t: list(ps) for t, ps in session.assignment.items()},
                "generation": session.generation}
        if self._joining(session):
            body["state"] = "joining"
        return body

    @staticmethod
    def _joining(session: Session) -> bool:
        """Whether the session's join into its group is still in progress: a group member
        that has seen no generation of its group yet (a store's generations start at 0)."""
        return not session.manual and session.generation < 0

    def get_assignment(self, consumer_id: str, owner=None) -> dict:
        session = self._get(consumer_id, owner)
        with session.lock:
            self.sync(session)
            body = {"group_id": session.group_id,
                    "assignment": {t: list(ps) for t, ps in session.assignment.items()},
                    "generation": session.generation}
        if self._joining(session):
            body["state"] = "joining"
        return body

    def assign(self, consumer_id: str, topics: dict, owner=None) -> dict:
        """Manual assignment: the session leaves group management and reads exactly the
        given ``{topic: [partitions]}``."""
        session = self._get(consumer_id, owner)
        wanted = self.checked_assignment(topics)
        with session.lock:
            # first catch up with the group: a partition the group moved away while the
            # session was idle must not keep the session's old position
            self.sync(session)
            assignment = session.member.assign(wanted)
            session.manual = True
            self._apply_assignment(session, assignment)
        session.wake()
        self.saver.put(session)
        return self._assignment_body(session)

    def checked_assignment(self, topics: dict) -> dict:
        """``{topic: [partitions]}`` sorted and without repeats; TopicNotFound or
        PartitionNotFound for what does not exist."""
        wanted = {}
        for topic, partitions in topics.items():
            count = self.backend.partition_count(topic)  # TopicNotFound
            for p in partitions:
                if not 0 <= p < count:
                    raise PartitionNotFound(f"topic {topic!r} has no partition {p}",
                                            {"topic": topic, "partition": p})
            wanted[topic] = sorted(set(partitions))
        return wanted

    # -- consume ---------------------------------------------------------------------------

    def consume(self, consumer_id: str, max_records: int = 500, timeout_ms: int = 30_000,
                max_bytes: int = 1 << 20, encoding: str | None = None, owner=None,
                abandoned=None, client: ClientQuota | None = None,
                collector: Collector | None = None, scan: Scan | None = None,
                min_records: int = 1):
        """Long-poll. Returns as soon as any owned partition has records, or with none
        after ``timeout_ms`` (or at once when the server shuts down). Positions advance
        past exactly the records taken. With ``min_records`` > 1 it returns once that many
        (at most ``max_records``) are ready to read, or after ``timeout_ms`` with what
        there is: fewer, larger answers for a consumer that can wait (Kafka's
        ``fetch.min.bytes``, counted in records).

        Without ``collector``: ``(chunks, encoding)``, chunks a list of ``(topic,
        partition, records)``. With one (see :mod:`consumer_api.sessions.collect`): the
        records go to it a window at a time, and the result is ``(spans, encoding)``, a
        :class:`Span` per partition; when the collector has no room for even the first
        window the consume returns ``[]`` at once, without waiting. ``encoding`` is the
        given one or the session's (the collector's ``begin`` gets it too).

        ``scan`` (see :mod:`consumer_api.sessions.scan`), when given, filters what is
        returned: the positions move past the records it skips too, and a consume whose
        scan reached its bound returns at once with what matched.

        ``abandoned()``, when given, says whether the caller went away while the poll
        waited: then it returns ``[]`` without taking records (nobody would see them).

        A consume that finds nothing and may wait (``timeout_ms`` > 0) holds a poll slot
        while it waits: TooManyPolls at once, nothing taken, when the server's
        ``max_waiting_polls`` or ``client``'s ``max_polls`` are all held. A newer consume
        on the same session supersedes this one: it returns ``[]`` at once and the newer
        one runs with its own timeout."""
        session = self._get(consumer_id, owner)
        encoding = encoding or session.encoding
        keep = collector is None
        if keep:
            collector = RecordLists()
        collector.begin(encoding)
        deadline = self.clock() + timeout_ms / 1000
        ticket = session.begin_consume(max(timeout_ms / 1000, HANDOVER_S))
        if ticket is None:  # superseded while it queued (or the turn never came)
            return [], encoding
        try:
            remaining_ms = max(0, int((deadline - self.clock()) * 1000))
            spans = poll(self, session, ticket, max_records, remaining_ms, max_bytes,
                         abandoned, client, collector, scan or Scan(), min_records)
            if keep:  # the records are in the caller's hands now
                self._sent(session, [(t, p) for t, p, _records in collector.chunks()])
        finally:  # heartbeat first: the reaper must never see a finished, stale consume
            session.last_heartbeat = self.clock()
            session.end_consume()
        return (collector.chunks() if keep else spans), encoding

    def take_poll_slot(self, client: ClientQuota | None) -> None:
        """A slot for one waiting consume, or TooManyPolls (details: ``limit``, ``scope``
        ``client`` or ``server``, and ``client`` with its name). The client's own cap is
        checked first: when both are full, its own share is what it can change."""
        name = None if client is None else client.name
        with self._lock:
            if client is not None and self._poll_tally.held(name) >= client.max_polls:
                limit = client.max_polls
                raise TooManyPolls(
                    f"{name} already has {limit} consumes waiting for records, its limit; "
                    "retry after a pause, or consume on fewer sessions at once",
                    {"limit": limit, "scope": "client", "client": name})
            limit = self.max_waiting_polls
            if limit is not None and self._poll_tally.total >= limit:
                raise TooManyPolls(
                    f"all {limit} of the server's slots for waiting consumes are taken; "
                    "retry after a pause", {"limit": limit, "scope": "server"})
            self._poll_tally.add(name)

    def release_poll_slot(self, client: ClientQuota | None) -> None:
        with self._lock:
            self._poll_tally.remove(None if client is None else client.name)

    def delivered(self, consumer_id: str, spans: list) -> None:
        """The response carrying ``spans`` (as :meth:`consume` with a collector returned
        them) reached the client: its records need no longer be saved as unsent."""
        session = self._sessions.get(consumer_id)
        if session is not None:
            self._sent(session, [(span.topic, span.partition) for span in spans])

    def _sent(self, session: Session, partitions) -> None:
        with session.lock:
            for tp in partitions:
                session.unsent.pop(tp, None)
        self.saver.changed(session)

    def give_back(self, consumer_id: str, spans: list) -> None:
        """The response carrying ``spans`` (as :meth:`consume` with a collector returned
        them) never reached the client -- the connection broke, or the client did not take
        it in time: move the positions back so the records are consumed again. A partition
        whose position moved since (a seek, a rebalance, another consume) keeps it; so does
        a closed session."""
        session = self._sessions.get(consumer_id)
        if session is None or session.closed:
            return
        returned = 0
        for span in spans:
            tp = (span.topic, span.partition)
            with session.lock:
                moved_back = session.positions.get(tp) == span.after
            if moved_back:
                retreat(session, tp, span.after, span.first)
                returned += span.count
        self._sent(session, [(span.topic, span.partition) for span in spans])
        log.warning("consumer %s: a response of %d records did not reach the client; %d of "
                    "them will be consumed again", consumer_id,
                    sum(span.count for span in spans), returned)

    def auto_commit(self, session: Session) -> None:
        """Commit what the previous consume returned (partitions still owned only)."""
        with session.lock:
            self.sync(session)
            pending = {tp: o for tp, o in session.pending_commit.items() if tp in session.positions}
            session.pending_commit = {}
        if pending:
            try:
                session.member.commit(pending)
            except PartitionNotAssigned:  # a rebalance raced us; the new owner resumes
                return
            self._acknowledge(session, pending)

    @staticmethod
    def _acknowledge(session: Session, committed: dict) -> None:
        """Note the offsets the session committed itself (see restore.resume_at)."""
        with session.lock:
            session.acked.update((tp, o) for tp, o in committed.items()
                                 if tp in session.positions)
        SessionSaver.changed(session)

    # -- commit, seek, position ------------------------------------------------------------

    def commit(self, consumer_id: str, offsets: dict | None = None, owner=None) -> dict:
        """Commit ``{(topic, partition): offset}`` -- or, with None, the current positions
        (exactly the records returned so far). Returns what was committed."""
        session = self._get(consumer_id, owner)
        with session.lock:
            self.sync(session)
            if offsets is None:
                offsets = dict(session.positions)
            else:
                self._require_owned(session, offsets)
        session.member.commit(offsets)
        self._acknowledge(session, offsets)
        return offsets

    @staticmethod
    def _require_owned(session: Session, partitions) -> None:
        for topic, p in partitions:
            if (topic, p) not in session.positions:
                raise PartitionNotAssigned(
                    f"partition {p} of topic {topic!r} is not assigned to this consumer",
                    {"topic": topic, "partition": p,
                     "assignment": {t: list(ps) for t, ps in session.assignment.items()}})

    def seek(self, consumer_id: str, topic: str | None = None, partition: int | None = None,
             offset: int | None = None, position: str | None = None,
             timestamp: int | None = None, owner=None) -> dict:
        """Move positions: to ``offset`` (one partition), to ``position`` beginning/end,
        or to the first record at or after ``timestamp``; omitted topic/partition = every
        owned partition (of that topic). Returns the new positions."""
        session = self._get(consumer_id, owner)
        with session.lock:
            self.sync(session)
            targets = self._seek_targets(session, topic, partition)
            new = {}
            for tp in targets:
                start, end = self.backend.log_offsets(*tp)
                if offset is not None:
                    if not start <= offset <= end:
                        raise OffsetOutOfRange(
                            f"offset {offset} is outside partition {tp[1]} of {tp[0]!r}: "
                            f"valid offsets are {start}..{end}",
                            {"topic": tp[0], "partition": tp[1], "log_start_offset": start,
                             "high_watermark": end})
                    new[tp] = offset
                elif position is not None:
                    new[tp] = start if position == "beginning" else end
                else:
                    new[tp] = self.backend.offset_for_timestamp(*tp, timestamp)
            session.positions.update(new)
            for tp, offset in new.items():
                session.pending_commit.pop(tp, None)
                session.member.reposition(*tp, offset)
        self.saver.put(session)
        return new

    def _seek_targets(self, session: Session, topic, partition) -> list:
        if topic is None:
            if partition is not None:
                raise InvalidRequest("a partition needs its topic",
                                     {"topic": ["Required when partition is given."]})
            return list(session.partitions)
        if partition is None:
            targets = [tp for tp in session.partitions if tp[0] == topic]
            if not targets:
                self._require_owned(session, [(topic, -1)])
            return targets
        self.backend.log_offsets(topic, partition)  # 404 for a partition that doesn't exist
        self._require_owned(session, [(topic, partition)])
        return [(topic, partition)]

    def positions(self, consumer_id: str, owner=None) -> dict:
        session = self._get(consumer_id, owner)
        with session.lock:
            self.sync(session)
            return dict(session.positions)

    def committed(self, consumer_id: str, owner=None) -> dict:
        """Committed offsets of the session's partitions (those with a commit)."""
        session = self._get(consumer_id, owner)
        with session.lock:
            self.sync(session)
            mine = list(session.partitions)
        return session.member.committed(mine)

    def describe_sessions(self, visible=lambda group_id: True) -> list[dict]:
        """The live sessions whose group ``visible(group_id)`` allows, by consumer id:
        ``{consumer_id, group_id, topics, assignment, generation, manual, owner,
        last_heartbeat_ms_ago, waiting}`` -- ``waiting`` while a consume waits for records.
        Each as of its last request (it is not brought up to its group's generation)."""
        with self._lock:
            sessions = sorted(self._sessions.values(), key=lambda s: s.consumer_id)
        now = self.clock()
        out = []
        for session in sessions:
            if session.closed or not visible(session.group_id):
                continue
            with session.lock:
                body = self._assignment_body(session)
                body.update(manual=session.manual, owner=session.owner,
                            waiting=session.waiter is not None,
                            last_heartbeat_ms_ago=max(0, int((now - session.last_heartbeat)
                                                             * 1000)))
            out.append(body)
        return out

    def heartbeat_ages_ms(self, consumer_ids) -> dict[str, int]:
        """Milliseconds since each live session's last request (0 for an id this server
        holds no session of)."""
        now = self.clock()
        ages = {}
        for consumer_id in consumer_ids:
            session = self._sessions.get(consumer_id)
            beat = session.last_heartbeat if session else now
            ages[consumer_id] = max(0, int((now - beat) * 1000))
        return ages

    # -- expiry ----------------------------------------------------------------------------

    def expire(self, now: float | None = None) -> list[str]:
        """Close every session whose heartbeat is older than its timeout (a consume in
        progress counts as a heartbeat); returns their ids."""
        now = self.clock() if now is None else now
        with self._lock:
            expired = self._collect_expired(now)
        for session in expired:
            self._end(session, f"expired (no heartbeat for {session.session_timeout_ms} ms)")
        self.expired_total += len(expired)
        if expired:
            self.saver.drop(expired)
        return [s.consumer_id for s in expired]

    def _collect_expired(self, now: float) -> list:
        out = []
        heap = self._deadlines
        while heap and heap[0][0] <= now:
            _, _, consumer_id = heapq.heappop(heap)
            session = self._sessions.get(consumer_id)
            if session is None or session.closed:
                continue
            if session.consuming:
                session.last_heartbeat = now
            if session.deadline() > now:
                self._push_deadline(session)
            else:
                out.append(session)
        return out

    # -- saved across restarts -------------------------------------------------------------

    def _live(self) -> list[Session]:
        with self._lock:
            return list(self._sessions.values())

    def restore(self, owner_known=lambda owner: True) -> int:
        """Bring back the sessions of the sessions log (see
        :mod:`consumer_api.sessions.restore`); how many came back. Call once, with the store
        open, before the first request. ``owner_known(owner)``: whether a saved owner (an
        API key's name, or None on an open server) may still use its sessions."""
        saved_log = self.saver.log
        if saved_log is None:
            return 0
        saved = saved_log.read()
        back = restore_sessions(self, saved, owner_known)
        self.saver.rewrite()  # the log holds what came back, and nothing else
        if saved:
            log.info("restored %d of %d saved consumer sessions from %s", len(back),
                     len(saved), saved_log.path)
        return len(back)

    @property
    def id_prefix(self) -> str:
        """What starts every consumer id of this manager (its node's, or nothing)."""
        return self._id_prefix

    def adopt(self, saved: SavedSession, resume: dict) -> Session:
        """Put a saved session back in the table with a fresh heartbeat and a member not
        yet in its group; ``resume`` is what its first assignment resumes from.
        TooManyConsumers when the server holds ``max_sessions`` already."""
        session = Session(saved.consumer_id, saved.group_id, saved.topics,
                          saved.auto_offset_reset, saved.session_timeout_ms, saved.auto_commit,
                          saved.encoding, saved.owner, self.clock(),
                          None if saved.client is None else sys.intern(saved.client),
                          saved.assignor)
        session.acked, session.restored = dict(saved.acked), dict(resume)
        session.member = self.backend.member(saved.group_id, session.consumer_id, session.wake)
        with self._lock:
            self._enter(session, None, saved.owner)
        return session

    def _enter(self, session: Session, client: ClientQuota | None, owner) -> None:
        """Admit ``session`` into the table (TooManyConsumers when there is no room for
        it). ``_lock`` held."""
        self._admit_session(client, owner)
        self._sessions[session.consumer_id] = session
        self._session_tally.add(session.client)
        self._push_deadline(session)
        self._cond.notify()  # the reaper may need an earlier wake-up

    def settle(self, session: Session, manual: Assignment | None) -> None:
        """Place an adopted session: its manual assignment, or its group's current one
        (none yet while its join is in progress: the assignment that completes it is
        placed by the session's next request)."""
        with session.lock:
            if manual is not None:
                session.manual = True
                self._apply_assignment(session, manual)
            else:
                self.sync(session)

    def discard(self, session: Session, why: str) -> None:
        """Take an adopted session out again (it leaves its group)."""
        self._end(session, f"not restored: {why}")

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the reaper thread and the saver's (idempotent; call after any fork)."""
        self.saver.start()
        if self._reaper is None:
            self._reaper = threading.Thread(target=self._reap, name="session-reaper", daemon=True)
            self._reaper.start()

    def _reap(self) -> None:
        while True:
            with self._lock:
                if self._stopping:
                    return
                nxt = self._deadlines[0][0] if self._deadlines else None
                delay = None if nxt is None else max(0.0, nxt - self.clock())
                if delay is None or delay > 0:
                    self._cond.wait(delay)
                    continue
            try:
                self.expire()
            except Exception:  # keep reaping
                log.exception("session reaper failed")

    def shutdown(self) -> None:
        """Stop taking consumes, answer every waiting poll (empty; nothing is committed on
        the clients' behalf) and stop the reaper. The sessions are saved by
        :meth:`stop_saving`."""
        with self._lock:
            self._stopping = True
            sessions = list(self._sessions.values())
            self._cond.notify_all()
        for session in sessions:
            session.wake()
        if self._reaper is not None:
            self._reaper.join(timeout=5)

    def stop_saving(self) -> None:
        """Save the sessions a last time, as they are once the requests in flight are done
        (call after :meth:`shutdown`, before the store closes), and no more after."""
        self.saver.stop()
