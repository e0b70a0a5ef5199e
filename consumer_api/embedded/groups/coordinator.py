"""GroupCoordinator: who is in each consumer group and which partitions each member owns.

The server is the group's coordinator *and* its leader: a join, leave or expiry rebalances
the group at once, under one lock, with the group's assignor, and bumps its generation.
There is no in-between state in which two live members own a partition -- the new
assignment replaces the old one atomically -- and with at least one member subscribed to a
topic, every partition of it is owned. Members learn of a rebalance through the ``wake``
callable they joined with (called with the lock held: it must only set a flag and notify;
the sessions layer's waiter does exactly that) and read their new assignment on their next
request.

Thread-safety: ``_lock`` (one Lock for all groups) guards every group, member and
assignment. ``locked()`` exposes it so a caller can check ownership and act (commit, seek)
atomically with respect to rebalances. Never call into a partition log's waiting code or
into the sessions layer while holding it.
"""
from __future__ import annotations

import enum
import threading
from contextlib import contextmanager
from typing import Callable

from consumer_api.embedded.groups.assignors import ASSIGNORS
from consumer_api.errors import GroupNotEmpty, PartitionNotAssigned


class GroupState(enum.Enum):
    EMPTY = "Empty"  # no members (it may have committed offsets)
    STABLE = "Stable"  # members, each with its assignment of the current generation
    DEAD = "Dead"  # deleted


TRANSITIONS = {
    GroupState.EMPTY: {GroupState.STABLE, GroupState.DEAD},
    GroupState.STABLE: {GroupState.STABLE, GroupState.EMPTY},
    GroupState.DEAD: set(),
}


class IllegalTransition(RuntimeError):
    pass


class Member:
    """``since`` maps each owned ``(topic, partition)`` to the generation from which this
    member has owned it without a break: a member that slept through a rebalance which
    took a partition away and gave it back must not resume from its old position."""

    __slots__ = ("member_id", "topics", "wake", "assignment", "since")

    def __init__(self, member_id: str, topics: tuple, wake: Callable[[], None]):
        self.member_id = member_id
        self.topics = topics
        self.wake = wake
        self.assignment: dict[str, list[int]] = {}
        self.since: dict[tuple[str, int], int] = {}


class Group:
    __slots__ = ("group_id", "state", "generation", "assignor", "members", "owners")

    def __init__(self, group_id: str, assignor: str):
        self.group_id = group_id
        self.state = GroupState.EMPTY
        self.generation = 0
        self.assignor = assignor
        self.members: dict[str, Member] = {}  # in join order
        self.owners: dict[tuple[str, int], str] = {}  # (topic, partition) -> member id

    def transition(self, new: GroupState) -> None:
        if new not in TRANSITIONS[self.state]:
            raise IllegalTransition(f"group {self.group_id}: {self.state.value} -> {new.value}")
        self.state = new


class GroupCoordinator:
    def __init__(self, partitions_of: Callable[[str], int], default_assignor: str = "range"):
        if default_assignor not in ASSIGNORS:
            raise ValueError(f"unknown assignor {default_assignor!r}; known: {sorted(ASSIGNORS)}")
        self._partitions_of = partitions_of
        self.default_assignor = default_assignor
        self._lock = threading.Lock()
        self._groups: dict[str, Group] = {}
        self.rebalances = 0  # total, for metrics

    @contextmanager
    def locked(self):
        with self._lock:
            yield

    # -- membership ------------------------------------------------------------------------

    def join(self, group_id: str, member_id: str, topics, wake: Callable[[], None],
             assignor: str | None = None) -> tuple:
        """Add a member (or change its subscription) and rebalance. Returns the member's
        ``(generation, assignment)``. ``assignor``, when given, becomes the group's if it
        has no members yet."""
        topics = tuple(dict.fromkeys(topics))
        if assignor is not None and assignor not in ASSIGNORS:
            raise ValueError(f"unknown assignor {assignor!r}; known: {sorted(ASSIGNORS)}")
        with self._lock:
            group = self._groups.get(group_id)
            if group is None:
                group = self._groups[group_id] = Group(group_id, self.default_assignor)
            if assignor is not None and not group.members:
                group.assignor = assignor
            group.members[member_id] = Member(member_id, topics, wake)
            self._rebalance(group)
            return group.generation, _copy(group.members[member_id].assignment)

    def leave(self, group_id: str, member_id: str) -> bool:
        """Remove a member and rebalance the rest; False if it was not a member."""
        with self._lock:
            group = self._groups.get(group_id)
            if group is None or group.members.pop(member_id, None) is None:
                return False
            self._rebalance(group)
            return True

    def topics_changed(self, topic: str, then: Callable[[], None] | None = None) -> None:
        """A topic was created, deleted or re-created: rebalance groups subscribed to it,
        then run ``then`` still under the lock (so no commit can slip in between)."""
        with self._lock:
            for group in self._groups.values():
                if any(topic in m.topics for m in group.members.values()):
                    self._rebalance(group)
            if then is not None:
                then()

    def _rebalance(self, group: Group) -> None:
        if not group.members:
            group.transition(GroupState.EMPTY)
            group.owners = {}
            group.generation += 1
            self.rebalances += 1
            return
        subscriptions = {m.member_id: m.topics for m in group.members.values()}
        plan = ASSIGNORS[group.assignor](subscriptions, self._safe_partitions_of, group.owners)
        group.transition(GroupState.STABLE)
        group.generation += 1
        self.rebalances += 1
        previous, owners = group.owners, {}
        for member_id, assignment in plan.items():
            member = group.members[member_id]
            since = {}
            for topic, partitions in assignment.items():
                for p in partitions:
                    tp = (topic, p)
                    owners[tp] = member_id
                    kept = previous.get(tp) == member_id and tp in member.since
                    since[tp] = member.since[tp] if kept else group.generation
            member.assignment, member.since = assignment, since
        group.owners = owners
        for member in group.members.values():
            member.wake()

    def _safe_partitions_of(self, topic: str) -> int:
        try:
            return self._partitions_of(topic)
        except Exception:  # a deleted topic has no partitions to hand out
            return 0

    # -- queries ---------------------------------------------------------------------------

    def assignment(self, group_id: str, member_id: str) -> tuple | None:
        """``(generation, assignment)`` of a member, None if it is not one."""
        found = self.membership(group_id, member_id)
        return None if found is None else found[:2]

    def membership(self, group_id: str, member_id: str) -> tuple | None:
        """``(generation, assignment, since)`` of a member (see :class:`Member`), None if
        it is not one."""
        with self._lock:
            group = self._groups.get(group_id)
            member = group.members.get(member_id) if group else None
            if member is None:
                return None
            return group.generation, _copy(member.assignment), dict(member.since)

    def generation(self, group_id: str) -> int:
        group = self._groups.get(group_id)
        return group.generation if group else 0

    def owner(self, group_id: str, topic: str, partition: int) -> str | None:
        group = self._groups.get(group_id)
        return group.owners.get((topic, partition)) if group else None

    def check_owned(self, group_id: str, member_id: str | None, partitions) -> None:
        """Raise PartitionNotAssigned unless ``member_id`` owns every ``(topic, p)``; with
        ``member_id`` None (a manually assigned session), unless no member owns them.
        Call under :meth:`locked` to act on the answer atomically."""
        group = self._groups.get(group_id)
        owners = group.owners if group else {}
        for topic, p in partitions:
            owner = owners.get((topic, p))
            if owner != member_id:
                raise PartitionNotAssigned(
                    f"partition {p} of topic {topic!r} is not assigned to this consumer"
                    + (" (a rebalance moved it to another member)" if owner else ""),
                    {"topic": topic, "partition": p})

    def has_members(self, group_id: str) -> bool:
        group = self._groups.get(group_id)
        return bool(group and group.members)

    def describe(self, group_id: str) -> dict | None:
        with self._lock:
            group = self._groups.get(group_id)
            if group is None:
                return None
            return {"group_id": group_id, "state": group.state.value,
                    "generation": group.generation, "assignor": group.assignor,
                    "members": [{"consumer_id": m.member_id, "topics": list(m.topics),
                                 "assignment": _copy(m.assignment)}
                                for m in group.members.values()]}

    def group_ids(self) -> list[str]:
        with self._lock:
            return list(self._groups)

    def forget(self, group_id: str) -> None:
        """Drop an empty group (it is being deleted)."""
        with self._lock:
            group = self._groups.get(group_id)
            if group is None:
                return
            if group.members:
                raise GroupNotEmpty(f"group {group_id!r} has active members; stop them first",
                                    {"group_id": group_id})
            group.transition(GroupState.DEAD)
            del self._groups[group_id]


def _copy(assignment: dict) -> dict:
    return {topic: list(ps) for topic, ps in assignment.items()}
