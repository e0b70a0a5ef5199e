"""Reading a consumer session's records: one pass over its partitions, a window at a time.

A pass starts one partition further each time (a busy partition cannot starve the
others), reads each from the session's position through its member
(:class:`consumer_api.backend.Member`) a window of about WINDOW_BYTES at a time into a
:class:`~consumer_api.sessions.collect.Collector`, and advances the position past exactly
the records the collector took. A seek or a rebalance made while reading wins: the
records read are dropped. A position that retention left outside the log is reset by the
session's ``auto_offset_reset`` first.

Thread-safety: runs on the thread of the consume that holds the session's turn; every
change of ``positions`` (and ``pending_commit``) is made under the session's lock,
compare-and-set against the position read from.
"""
from __future__ import annotations

import logging

from consumer_api.backend import Backend
from consumer_api.errors import OffsetOutOfRange, PartitionNotFound, TopicNotFound
from consumer_api.sessions.collect import WINDOW_BYTES, Collector, Span
from consumer_api.sessions.saver import SessionSaver
from consumer_api.sessions.scan import Scan
from consumer_api.sessions.session import Session

log = logging.getLogger(__name__)


def watch_exactly(session: Session, watched: set, partitions: list) -> None:
    """Watch exactly the owned partitions (after a rebalance: add the new ones, drop
    the lost ones); a watched partition's new records wake the session's waiter."""
    wanted = set(partitions)
    for tp in watched - wanted:
        session.member.unwatch(*tp)
    for tp in wanted - watched:
        session.member.watch(*tp)
    watched.clear()
    watched.update(wanted)


def fetch_pass(backend: Backend, session: Session, partitions: list, max_records: int,
               max_bytes: int, collector: Collector, scan: Scan) -> tuple:
    """One pass over the owned partitions, starting one further each time (so a busy
    partition cannot starve the others), keeping what ``scan`` keeps. ``(spans,
    blocked)``: blocked when the collector had no more room."""
    spans: list = []
    n = len(partitions)
    if not n:
        return spans, False
    first = session.rotation % n
    session.rotation += 1
    left, taken = [max_records], [0]  # shared by the partitions of this pass
    for i in range(n):
        topic, p = tp = partitions[(first + i) % n]
        position = session.positions.get(tp)
        if position is None:
            continue
        try:
            if session.member.high_watermark(topic, p) == position:
                continue
            span, stop = _take(backend, session, tp, position, left, max_bytes, taken,
                               collector, scan)
        except (TopicNotFound, PartitionNotFound):
            continue  # deleted meanwhile; the rebalance that follows drops it
        if span is not None:
            spans.append(span)
        if stop is not None:
            return spans, stop == "blocked"
        if not left[0] or scan.exhausted:
            break
    return spans, False


def _take(backend: Backend, session: Session, tp, position: int, left: list, max_bytes: int,
          taken: list, collector: Collector, scan: Scan) -> tuple:
    """Read one partition from ``position`` a window at a time into the collector,
    advancing the position past each window it reads (the records ``scan`` skips
    included). ``left`` (records) and ``taken`` (stored bytes) are the pass's running
    totals, in one-item lists. Returns ``(span or None, stop)``: stop is None to go on
    with the next partition, ``"full"`` when ``max_bytes`` is reached, ``"blocked"`` when
    the collector has no room."""
    topic, p = tp
    first = count = 0
    stop = None
    while left[0] and stop is None and not scan.exhausted:
        records, stop, read_from = _window(backend, session, tp, position,
                                           scan.fetch_count(left[0]), max_bytes, taken,
                                           collector)
        if not records:
            break
        read_to = records[-1][0] + 1
        records, after, skipped = scan.keep(records, left[0])
        taken[0] -= skipped
        if not _advance(session, tp, read_from, after, read_to, bool(records)):
            collector.unused()  # a seek or a rebalance won: the records are dropped
            break
        if not records:
            collector.unused()  # none matched: the position moved past them all
        elif not collector.add(topic, p, records):
            retreat(session, tp, after, read_from)
            stop = "blocked"
            break
        else:
            first = first if count else read_from
            count += len(records)
            left[0] -= len(records)
        position = after
    return _span(tp, first, position, count), stop


def _window(backend: Backend, session: Session, tp, position: int, left: int, max_bytes: int,
            taken: list, collector: Collector) -> tuple:
    """The next window of one partition: ``(records, stop, position read from)``.
    A window holds about WINDOW_BYTES; a record larger than that (but within
    ``max_bytes``) comes in a window of its own. The first record of a consume comes
    whatever its size (as a fetch with nothing taken yet gives it)."""
    remaining = max_bytes - taken[0]
    if taken[0] and remaining <= 0:
        return [], "full", position
    allowed = 0
    for ask in dict.fromkeys((min(WINDOW_BYTES, remaining), remaining)):
        allowed = collector.room(ask)
        if not allowed:
            return [], "blocked", position
        records, now_taken, read_from = _read(backend, session, tp, position, left,
                                              taken[0] + allowed, taken[0])
        if records:
            taken[0] = now_taken
            return records, None, read_from
        collector.unused()
        if not taken[0]:
            return [], None, read_from  # nothing at all from here on
    if allowed < remaining:
        return [], "blocked", position  # the collector's room is short of the record
    if session.member.high_watermark(*tp) <= position:
        return [], None, position  # this partition is done; the next may have some
    return [], "full", position


def _span(tp, first: int, after: int, count: int):
    return Span(tp[0], tp[1], first, after, count) if count else None


def retreat(session: Session, tp, after: int, back_to: int) -> None:
    """Undo an advance whose records were not taken after all."""
    with session.lock:
        if session.positions.get(tp) == after:
            session.positions[tp] = back_to
            session.member.reposition(*tp, back_to)
            SessionSaver.changed(session)
            if session.pending_commit.get(tp) == after:
                session.pending_commit[tp] = back_to


def _read(backend: Backend, session: Session, tp, position, max_records, max_bytes, taken):
    """``(records, taken, position read from)``: a position that retention (or a
    re-created topic) left outside the log is reset by ``auto_offset_reset`` first."""
    fetch = session.member.fetch
    try:
        return (*fetch(*tp, position, max_records, max_bytes, taken), position)
    except OffsetOutOfRange:  # retention passed the position: reset by the policy
        start, end = backend.log_offsets(*tp)
        reset = start if session.auto_offset_reset == "earliest" else end
        log.info("consumer %s: position %d of %s[%d] is out of range [%d, %d]; reset to %d",
                 session.consumer_id, position, tp[0], tp[1], start, end, reset)
        with session.lock:
            if session.positions.get(tp) == position:
                session.positions[tp] = reset
                session.member.reposition(*tp, reset)
                SessionSaver.changed(session)
        return (*fetch(*tp, reset, max_records, max_bytes, taken), reset)


def _advance(session: Session, tp, read_from: int, new_position: int, read_to: int,
             taking: bool) -> bool:
    """Move the position past returned (or skipped) records -- unless a seek or a
    rebalance changed it while reading: then the records are dropped (the seek or the new
    owner wins). Records read up to ``read_to`` but not passed are read again next time.
    ``taking``: records are returned (not only skipped); they count as ``unsent`` from
    ``read_from`` on until the consume's caller says they were delivered."""
    with session.lock:
        if session.positions.get(tp) != read_from:
            return False
        session.positions[tp] = new_position
        SessionSaver.changed(session)
        if taking:
            session.unsent.setdefault(tp, read_from)
        if new_position < read_to:
            session.member.reposition(*tp, new_position)
        if session.auto_commit:
            session.pending_commit[tp] = new_position
        return True
