"""Bringing saved sessions (:mod:`consumer_api.sessions.saved`) back after a restart: which
of them may come back, and where each resumes.

A saved session comes back with its id, owner, client, group, subscription or manual
assignment, settings and positions, unless its owner's key is no longer configured, its id
is not this node's, the server has no room for it, or its store refuses it (a topic or
partition gone, an assignor not offered): then it is dropped with a log line and its id
is ``404`` like any unknown one. Its session timeout counts from the restore.

Where it resumes: the saved position of a partition is a *claim*. A restored session that
is assigned a partition in its first assignment after the restore resumes it from its
claim -- unless two sessions of one group claim the same partition (one of them had not
yet heard of a rebalance), then neither does -- and other partitions, as in any rebalance,
from the group's committed offset (else ``auto_offset_reset``). The group's committed
offset wins over a claim behind it when the session did not commit it itself: records
committed after its last line was saved (an auto-commit, another member's commit while this
node was down) are not read again. A claim outside the partition's log is ignored.
"""
from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from consumer_api.backend import TopicPartition
from consumer_api.errors import ConsumerApiError
from consumer_api.sessions.saved import SavedSession

if TYPE_CHECKING:
    from consumer_api.sessions.manager import ConsumerManager
    from consumer_api.sessions.session import Session

log = logging.getLogger(__name__)


def restore_sessions(manager: ConsumerManager, saved: list[SavedSession],
                     owner_known) -> list[Session]:
    """Adopt every saved session that may come back, have each rejoin its group (or take
    its manual assignment) and then place them all: every member of a group has joined
    before any is placed, so each resumes in the group's assignment after the restart (a
    store whose joins complete later is waited for, ``join_wait_s`` in all). Members that
    asked for an assignor join first: a group's first member chooses it. The sessions that
    came back."""
    allowed = [s for s in saved if _allowed(s, why_not(s, manager.id_prefix, owner_known))]
    allowed.sort(key=lambda s: s.assignor is None)
    resumes = claims(allowed)
    joined = []
    for s in allowed:
        try:
            session = manager.adopt(s, resumes[s.consumer_id])
        except ConsumerApiError as exc:
            _allowed(s, str(exc))
            continue
        try:
            joined.append((session, _rejoin(manager, session, s)))
        except ConsumerApiError as exc:
            manager.discard(session, str(exc))
    deadline = time.monotonic() + manager.join_wait_s
    back = []
    for session, manual in joined:
        if manual is None:  # a store whose joins take a while: wait, all at once
            manager.await_join(session, deadline)
        try:
            manager.settle(session, manual)
        except ConsumerApiError as exc:
            manager.discard(session, str(exc))
            continue
        back.append(session)
    return back


def _allowed(saved: SavedSession, why: str | None) -> bool:
    """Whether there is no reason (``why``) against a saved session; logs the reason."""
    if why is not None:
        log.warning("consumer %s of group %s is not restored: %s", saved.consumer_id,
                    saved.group_id, why)
    return why is None


def _rejoin(manager: ConsumerManager, session: Session, saved: SavedSession):
    """Join the group again, or take the manual assignment again (returned)."""
    if not saved.manual:
        with session.lock:
            session.member.join(saved.topics, saved.assignor)
        return None
    wanted = manager.checked_assignment(saved.assignment)
    with session.lock:
        return session.member.assign(wanted)


def claims(saved: list[SavedSession]) -> dict[str, dict[TopicPartition, int]]:
    """Per consumer id, the saved positions it may resume from: a manually assigned
    session's all; a group member's those no other saved member of its group claims."""
    claimants: dict = {}
    for s in saved:
        if not s.manual:
            for tp in s.positions:
                claimants.setdefault((s.group_id, tp), []).append(s.consumer_id)
    return {s.consumer_id: {tp: o for tp, o in s.positions.items()
                            if s.manual or len(claimants[(s.group_id, tp)]) == 1}
            for s in saved}


def resume_at(claim: int, committed: int | None, acked: int | None) -> int:
    """The offset a restored session resumes a partition from: its claim, or the group's
    committed offset when that is further on and not the session's own commit."""
    if committed is not None and committed > claim and committed != acked:
        return committed
    return claim


def why_not(saved: SavedSession, id_prefix: str, owner_known) -> str | None:
    """Why a saved session may not come back (None: it may, as far as its record says)."""
    if not saved.consumer_id.startswith(id_prefix) or (
            not id_prefix and "." in saved.consumer_id):
        return "it was saved by another node"
    if not owner_known(saved.owner):
        return "its owner's API key is not configured any more" if saved.owner else \
            "it has no owner and the server now needs API keys"
    return None
