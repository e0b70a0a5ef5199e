"""One HTTP consumer session, and the waiter its long-poll sleeps on.

A session is either a *group member* (``manual`` False: its partitions come from the
group's coordinator and change on every rebalance) or *manually assigned* (``manual``
True: it named its partitions with PUT /assignment and left group management).

``positions`` maps ``(topic, partition)`` to the next offset to read, for exactly the
partitions the session currently owns (as of ``generation``).

Thread-safety:
* ``lock`` guards ``positions``, ``assignment``, ``generation``, ``partitions`` and
  ``pending_commit``; it is held briefly, never across a wait.
* ``consume_lock`` serialises consumes on one session: a second concurrent consume queues
  behind the first (then runs with its own timeout).
* ``last_heartbeat``, ``consuming`` and ``closed`` are single attribute writes read by the
  reaper under the manager's lock (atomic under the GIL).
"""
from __future__ import annotations

import threading


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
                 "closed", "waiter", "rotation", "lock", "consume_lock")

    def __init__(self, consumer_id: str, group_id: str, topics: list, auto_offset_reset: str,
                 session_timeout_ms: int, auto_commit: bool, encoding: str, owner, now_s: float):
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
        self.consuming = False
        self.closed = False
        self.waiter: Waiter | None = None
        self.rotation = 0  # which partition a consume reads first (fairness)
        self.lock = threading.Lock()
        self.consume_lock = threading.Lock()

    @property
    def session_timeout_ms(self) -> int:
        return int(self.timeout_s * 1000)

    def deadline(self) -> float:
        return self.last_heartbeat + self.timeout_s

    def wake(self) -> None:
        """Wake this session's waiting consume, if any (rebalance, close, shutdown)."""
        waiter = self.waiter
        if waiter is not None:
            waiter.notify()
