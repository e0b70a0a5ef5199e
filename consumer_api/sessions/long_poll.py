"""The long-poll: one consume waiting on its session until there are records to return.

:func:`poll` reads the session's partitions (:mod:`consumer_api.sessions.reading`); when none
has data it watches exactly the partitions the session owns and sleeps on a fresh
:class:`~consumer_api.sessions.session.Waiter` until new records on one of them, a
rebalance of its group (or a join completing), its close, a newer consume on the session,
or server shutdown -- never sleep-and-retry, never waking unrelated consumers. Before its
first sleep it takes a poll slot from the manager (TooManyPolls when none is free) and
gives it back however the wait ends.

Thread-safety: runs on the request thread holding the session's turn
(:meth:`Session.begin_consume`); the session's waiter is set before the first check of
``superseded`` so that no wake-up is lost.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from consumer_api.errors import ConsumerNotFound
from consumer_api.sessions.collect import Collector
from consumer_api.sessions.quota import ClientQuota
from consumer_api.sessions.reading import fetch_pass, watch_exactly
from consumer_api.sessions.scan import Scan
from consumer_api.sessions.session import Session, Waiter

if TYPE_CHECKING:
    from consumer_api.sessions.manager import ConsumerManager

log = logging.getLogger(__name__)


def poll(manager: ConsumerManager, session: Session, ticket: int, max_records: int,
         timeout_ms: int, max_bytes: int, abandoned, client: ClientQuota | None,
         collector: Collector, scan: Scan, min_records: int = 1) -> list:
    """The spans a consume returns (see :meth:`ConsumerManager.consume`): records as soon as
    any owned partition has some ``scan`` keeps, else ``[]`` after ``timeout_ms``, at
    shutdown, when superseded, when ``abandoned()`` says the caller left, or once the scan
    examined as many records as it may. With ``min_records`` > 1 it first waits (up to
    ``timeout_ms``) until that many records -- at most ``max_records`` -- are ready in
    the owned partitions (counted before any filter), then reads what there is."""
    check_live(session)
    if session.auto_commit:
        manager.auto_commit(session)
    deadline = manager.clock() + timeout_ms / 1000
    wanted = min(min_records, max_records)
    waiter = Waiter()
    session.waiter = waiter  # before the first superseded() check: no wake-up is lost
    watched: set = set()
    slot = False
    try:
        while True:
            check_live(session)
            if manager.stopping or session.superseded(ticket):
                return []
            with session.lock:
                partitions = manager.sync(session)
            watch_exactly(session, watched, partitions)
            remaining = deadline - manager.clock()
            gathering = (wanted > 1 and remaining > 0
                         and ready(session, partitions, wanted) < wanted)
            if not gathering:
                spans, blocked = fetch_pass(manager.backend, session, partitions,
                                            max_records, max_bytes, collector, scan)
                if spans or blocked or scan.exhausted:
                    return spans
                remaining = deadline - manager.clock()
            if remaining <= 0:
                return []
            if not slot:
                manager.take_poll_slot(client)
                slot = True
            waiter.wait(remaining)
            if abandoned is not None and abandoned():
                log.info("consumer %s: the client left a waiting consume; no records taken",
                         session.consumer_id)
                return []
    finally:
        if slot:
            manager.release_poll_slot(client)
        session.waiter = None
        for tp in watched:
            session.member.unwatch(*tp)


def ready(session: Session, partitions: list, enough: int) -> int:
    """Records the session could read now in ``partitions`` (high watermark - position,
    as its member last saw the high watermark), counted until they reach ``enough``."""
    count = 0
    for tp in partitions:
        position = session.positions.get(tp)
        if position is not None:
            count += max(0, session.member.high_watermark(*tp) - position)
            if count >= enough:
                break
    return count


def check_live(session: Session) -> None:
    """ConsumerNotFound when the session was closed or expired (while waiting)."""
    if session.closed:
        raise ConsumerNotFound(f"consumer {session.consumer_id!r} was closed or expired "
                               "while waiting", {"consumer_id": session.consumer_id})
