"""One HTTP consumer session, and the waiter its long-poll sleeps on.

A session is either a *group member* (``manual`` False: its partitions come from the
group's coordinator and change on every rebalance) or *manually assigned* (``manual``
True: it named its partitions with PUT /assignment and left group management).

``positions`` maps ``(topic, partition)`` to the next offset to read, for exactly the
partitions the session currently owns (as of ``generation``). ``acked`` keeps, per owned
partition, the last offset the session itself committed; ``restored``, for a session
brought back after a restart, the saved positions its first assignment resumes from (see
:mod:`consumer_api.sessions.restore`).

Consumes on one session take turns, newest first: a consume takes the next
``consume_ticket`` and wakes the consume running on the session, if any; a consume whose
ticket is no longer the newest returns empty -- from its wait, or from the queue for the
turn -- so at most one consume per session waits for records, and a client's retry of a
poll it gave up on is served instead of queued behind it (:meth:`Session.begin_consume`,
:meth:`Session.end_consume`).

Thread-safety:
* ``lock`` guards ``positions``, ``assignment``, ``generation``, ``partitions``,
  ``pending_commit``, ``acked``, ``restored``, ``consume_ticket``, ``consuming`` and
  ``_turn``; it is held briefly,
  never across a wait (``_turn``, a Condition on it made when a consume first has to queue,
  releases it while the consume queues).
* ``last_heartbeat``, ``consuming`` and ``closed`` are single attribute writes read by the
  reaper under the manager's lock (atomic under the GIL); a running consume reads
  ``consume_ticket`` without the lock the same way; ``unsaved`` is set by any thread and
  cleared by the saver, also without it.
* ``client`` (the name of the client whose share the session counts in) and ``member`` (its
  place in its group, :class:`consumer_api.backend.Member`) never change once the session
  is in the manager's table; the member's join, assign, leave and reposition are called
  under ``lock``.
"""
from __future__ import annotations

import threading
import time


class Waiter:
    """A one-bit mailbox for one long-poll: ``notify`` (from an append to a watched
    partition, a rebalance, a close or a shutdown) sets the bit and wakes the poll;
    ``wait`` returns at once if the bit is set, else sleeps until notified or timed out,
    and clears it. A notification between two waits is never lost."""

    __slots__ = ("_cond", "_signaled")

    def __init__(self):
        self._cond = threading.Condition(threading.Lock())
        self._signaled = False

    def notify(self, *_source) -> None:
        with self._cond:
            self._signaled = True
            self._cond.notify()

    def wait(self, timeout_s: float) -> bool:
        with self._cond:
            if not self._signaled:
                self._cond.wait(timeout_s)
            signaled, self._signaled = self._signaled, False
            return signaled


class Session:
    __slots__ = ("consumer_id", "group_id", "topics", "auto_offset_reset", "timeout_s",
                 "auto_commit", "encoding", "owner", "manual", "generation", "assignment",
                 "partitions", "positions", "pending_commit", "last_heartbeat", "consuming",
                 "closed", "waiter", "rotation", "lock", "_turn", "consume_ticket", "client",
                 "member", "assignor", "acked", "restored", "unsaved", "unsent")

    def __init__(self, consumer_id: str, group_id: str, topics: list, auto_offset_reset: str,
                 session_timeout_ms: int, auto_commit: bool, encoding: str, owner, now_s: float,
                 client: str | None = None, assignor: str | None = None):
        self.consumer_id = consumer_id
        self.group_id = group_id
        self.topics = topics
        self.auto_offset_reset = auto_offset_reset
        self.timeout_s = session_timeout_ms / 1000
        self.auto_commit = auto_commit
        self.encoding = encoding
        self.owner = owner
        self.manual = False
        self.generation = -1
        self.assignment: dict = {}
        self.partitions: list = []  # (topic, partition), sorted: the keys of positions
        self.positions: dict = {}
        self.pending_commit: dict = {}
        self.last_heartbeat = now_s
        self.consuming = False  # a consume has the turn
        self.closed = False
        self.waiter: Waiter | None = None
        self.rotation = 0  # which partition a consume reads first (fairness)
        self.lock = threading.Lock()
        self._turn: threading.Condition | None = None  # made when a consume first queues
        self.consume_ticket = 0  # the number of the newest consume on this session
        self.client = client
        self.member = None  # its consumer_api.backend.Member, set by the manager at once
        self.assignor = assignor  # the one it asked its group for, if any
        self.acked: dict = {}
        self.restored: dict = {}
        self.unsaved = False  # changed since the saver last wrote it (see sessions.saver)
        #: {(topic, partition): offset}: where the records start that consumes took and
        #: whose responses are not known to be delivered (saved instead of the position)
        self.unsent: dict = {}

    @property
    def session_timeout_ms(self) -> int:
        return int(self.timeout_s * 1000)

    def deadline(self) -> float:
        return self.last_heartbeat + self.timeout_s

    def begin_consume(self, timeout_s: float) -> int | None:
        """Take the next ticket, make the running and queued consumes give up, and wait
        (at most ``timeout_s`` real seconds) for the turn. Returns the ticket, with the
        turn taken (``consuming``; give it back with :meth:`end_consume`), or None: a
        newer consume came meanwhile, or the turn did not come in time."""
        with self.lock:
            self.consume_ticket += 1
            ticket = self.consume_ticket
            if self._turn is not None:
                self._turn.notify_all()  # queued older consumes see they are superseded
        self.wake()  # the running one, if it waits for records
        deadline = time.monotonic() + timeout_s
        with self.lock:
            while self.consuming and self.consume_ticket == ticket:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                if self._turn is None:
                    self._turn = threading.Condition(self.lock)
                self._turn.wait(remaining)
            if self.consume_ticket != ticket:
                return None
            self.consuming = True
        return ticket

    def end_consume(self) -> None:
        """Give the turn back (after the consume's last heartbeat)."""
        with self.lock:
            self.consuming = False
            if self._turn is not None:
                self._turn.notify_all()

    def superseded(self, ticket: int) -> bool:
        """Whether a consume newer than the one holding ``ticket`` has come."""
        return self.consume_ticket != ticket

    def wake(self, *_source) -> None:
        """Wake this session's waiting consume, if any (new records on a watched
        partition, a rebalance, a completed join, a close, a shutdown). Any arguments are
        ignored (a store may pass what changed)."""
        waiter = self.waiter
        if waiter is not None:
            waiter.notify()
