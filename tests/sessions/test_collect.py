"""A consume feeding a collector (``manager.consume(..., collector=...)``): records arrive
a window at a time, positions advance past exactly the windows the collector took, a
collector with no room ends the consume at once (without waiting), and ``give_back`` of
the returned spans moves the positions back."""
from __future__ import annotations

from consumer_api.record_filter import compile_filter
from consumer_api.sessions.collect import WINDOW_BYTES, RecordLists, Span
from consumer_api.sessions.scan import Scan
from tests.sessions.conftest import produce

VALUE = b"x" * 10_000


class Budgeted(RecordLists):
    """Room for ``windows`` windows, then none; can refuse the n-th ``add``."""

    def __init__(self, windows: int, refuse_add: int | None = None):
        super().__init__()
        self.windows, self.refuse_add, self.adds, self.asked = windows, refuse_add, 0, []

    def room(self, stored_bytes):
        self.asked.append(stored_bytes)
        if not self.windows:
            return 0
        self.windows -= 1
        return stored_bytes

    def add(self, topic, partition, records):
        self.adds += 1
        if self.adds == self.refuse_add:
            return False
        return super().add(topic, partition, records)


def setup(engine, manager, n=100):
    engine.create_topic("c", 1)
    produce(engine, "c", 0, n, value=VALUE)
    return manager.subscribe("g", ["c"], "earliest")["consumer_id"]


def test_records_come_a_window_at_a_time_and_spans_say_what_was_taken(engine, manager):
    cid = setup(engine, manager)
    collector = Budgeted(windows=1000)
    spans, encoding = manager.consume(cid, max_records=100, timeout_ms=0,
                                      max_bytes=10 << 20, collector=collector)
    assert encoding == "base64" and collector.encoding == "base64"
    assert spans == [Span("c", 0, 0, 100, 100)]
    assert max(collector.asked) == WINDOW_BYTES
    assert collector.adds > 1  # ~1 MB of records in windows of ~256 KiB
    assert [r[0] for r in collector.chunks()[0][2]] == list(range(100))
    assert manager.positions(cid) == {("c", 0): 100}


def test_a_collector_out_of_room_ends_the_batch_where_it_stopped(engine, manager):
    cid = setup(engine, manager)
    collector = Budgeted(windows=1)
    spans, _ = manager.consume(cid, max_records=100, timeout_ms=0, max_bytes=10 << 20,
                               collector=collector)
    (span,) = spans
    assert 0 < span.count < 100 and span.after == span.count
    assert manager.positions(cid) == {("c", 0): span.count}


def test_a_window_the_collector_refuses_is_not_taken(engine, manager):
    cid = setup(engine, manager)
    collector = Budgeted(windows=1000, refuse_add=2)
    (span,), _ = manager.consume(cid, max_records=100, timeout_ms=0, max_bytes=10 << 20,
                                 collector=collector)
    assert manager.positions(cid) == {("c", 0): span.after}
    assert span.count == len(collector.chunks()[0][2])


def test_no_room_at_all_returns_at_once_instead_of_waiting(engine, manager, clock):
    cid = setup(engine, manager)
    started = clock.monotonic()
    spans, _ = manager.consume(cid, max_records=10, timeout_ms=300_000,
                               collector=Budgeted(windows=0))
    assert spans == [] and clock.monotonic() == started
    assert manager.positions(cid) == {("c", 0): 0}


def test_give_back_moves_the_spans_positions_back(engine, manager):
    cid = setup(engine, manager, n=10)
    spans, _ = manager.consume(cid, max_records=10, timeout_ms=0, collector=Budgeted(10))
    assert manager.positions(cid) == {("c", 0): 10}
    manager.give_back(cid, spans)
    assert manager.positions(cid) == {("c", 0): 0}
    manager.seek(cid, "c", 0, 5)
    manager.give_back(cid, spans)  # the position moved since: it stays
    assert manager.positions(cid) == {("c", 0): 5}


def test_a_filtered_response_given_back_is_examined_again_from_where_it_began(engine, manager):
    engine.create_topic("c", 1)
    for i in range(6):
        produce(engine, "c", 0, key=b"hit" if i in (2, 4) else b"miss")
    cid = manager.subscribe("g", ["c"], "earliest")["consumer_id"]
    scan = Scan(compile_filter({"key": {"equals": "hit"}}))
    spans, _ = manager.consume(cid, timeout_ms=0, collector=Budgeted(10), scan=scan)
    assert [(s.first, s.after, s.count) for s in spans] == [(0, 6, 2)]
    manager.give_back(cid, spans)
    assert manager.positions(cid) == {("c", 0): 0}
    again = Budgeted(10)
    manager.consume(cid, timeout_ms=0, collector=again,
                    scan=Scan(compile_filter({"key": {"equals": "hit"}})))
    assert [r[0] for r in again.chunks()[0][2]] == [2, 4]
