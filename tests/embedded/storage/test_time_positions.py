"""PartitionLog.positions_for_times: where each time starts in the log, as offsets and
bytes, across segment rolls, with timestamps that go back, after retention and a reopen."""
from __future__ import annotations

import pytest

from consumer_api.errors import Unavailable
from consumer_api.records import NewRecord
from tests.embedded.storage.test_partition_log import (_timestamped_log,
                                                       brute_offset_for_timestamp)


@pytest.fixture
def make_log(data_dir, clock):
    from tests.embedded.storage.test_partition_log import open_log
    made = []

    def make(**cfg):
        plog = open_log(data_dir, clock, **cfg)
        made.append(plog)
        return plog
    yield make
    for plog in made:
        plog.close()


def probes_of(model) -> list[int]:
    stamps = sorted({r.timestamp for r in model.records})
    probes = set(range(stamps[0] - 3, stamps[-1] + 3, 89))
    probes |= set(stamps) | {s + 1 for s in stamps} | {0, 2 ** 62}
    return sorted(probes)


def expected_positions(model, probes, start=0, origin=0):
    """``(offset, byte)`` by brute force: bytes are the records' shares of their batches
    before the offset, counted from ``start`` (plus ``origin``, the bytes the log had
    before it)."""
    out = []
    for t in probes:
        offset = brute_offset_for_timestamp(model, t, start)
        offset = len(model.records) if offset is None else offset
        out.append((offset, origin + sum(model.shares[start:offset])))
    return out


def test_positions_match_a_brute_force_search_across_segments(make_log, clock):
    plog, model = _timestamped_log(make_log, clock)
    assert any(b.timestamp < a.timestamp for a, b in zip(model.records, model.records[1:]))
    probes = probes_of(model)
    assert plog.positions_for_times(probes) == expected_positions(model, probes)
    assert plog.positions_for_times(probes, chunk=1) == expected_positions(model, probes)


def test_a_record_older_than_one_before_it_counts_at_the_newer_time(make_log, clock):
    plog = make_log()
    plog.append([NewRecord(None, b"a", timestamp=100), NewRecord(None, b"b", timestamp=300),
                 NewRecord(None, b"late", timestamp=150), NewRecord(None, b"c", timestamp=400)])
    offsets = [o for o, _ in plog.positions_for_times([100, 200, 300, 301, 401])]
    # [100, 200): a; [200, 300): nothing; [300, 301): b and the late record; then c; end
    assert offsets == [0, 1, 1, 3, 4]


def test_the_byte_origin_stays_when_retention_deletes_segments(make_log, clock):
    plog, model = _timestamped_log(make_log, clock)
    first_kept = plog.segments[3].base_offset
    assert plog.delete_segments_before(first_kept) == 3
    probes = probes_of(model)
    deleted = sum(model.shares[:first_kept])
    assert plog.positions_for_times(probes) == expected_positions(model, probes, first_kept,
                                                                  deleted)


def test_after_a_reopen_and_more_appends(make_log, clock):
    plog, model = _timestamped_log(make_log, clock)
    plog.close()
    plog = make_log(segment_bytes=4096)
    for i in range(30):
        batch = [NewRecord(None, b"n" * (i * 7), timestamp=clock.now_ms() + (-1) ** i * 999)]
        model.add(plog.append(batch), batch, clock.now_ms())
    probes = probes_of(model)
    assert plog.positions_for_times(probes) == expected_positions(model, probes)


def test_an_empty_log_is_all_end(make_log):
    plog = make_log()
    assert plog.positions_for_times([0, 5, 2 ** 62]) == [(0, 0)] * 3


def test_a_closed_log_is_unavailable(make_log):
    plog = make_log()
    plog.close()
    with pytest.raises(Unavailable):
        plog.positions_for_times([0])
