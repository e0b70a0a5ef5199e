"""ConsumerManager driven directly: subscribe, consume, commit, seek, auto-commit, manual
assignment and close (API.md, "Consumers" and "Consumer groups")."""
from __future__ import annotations

import pytest

from consumer_api.api.errors import STATUS
from consumer_api.embedded.storage.batches import RECORD_OVERHEAD
from consumer_api.errors import (
    ConsumerNotFound,
    GroupNotFound,
    InvalidRequest,
    OffsetOutOfRange,
    PartitionNotAssigned,
    PartitionNotFound,
    TooManyConsumers,
    TopicNotFound,
)
from consumer_api.sessions.manager import ConsumerManager
from tests.sessions.conftest import offsets_of, owned, produce


def drain(manager, cid, max_records=500, max_bytes=1 << 20, limit=10_000):
    """Consume (timeout 0) until a consume returns nothing; every (topic, p, offset)."""
    out = []
    for _ in range(limit):
        chunks, _ = manager.consume(cid, max_records=max_records, timeout_ms=0,
                                    max_bytes=max_bytes)
        if not chunks:
            return out
        out.extend(offsets_of(chunks))
    raise AssertionError("consume never ran dry")


def members(manager, group):
    return {m["consumer_id"]: {(t, p) for t, ps in m["assignment"].items() for p in ps}
            for m in manager.backend.describe_group(group)["members"]}


# -- subscribe -----------------------------------------------------------------------------

def test_subscribe_returns_real_assignment_and_first_consume_serves_backlog(engine, manager):
    engine.create_topic("orders", 3)
    for p in range(3):
        produce(engine, "orders", p, 4)
    body = manager.subscribe("g", ["orders"], auto_offset_reset="earliest")
    assert body["group_id"] == "g"
    assert body["topics"] == ["orders"]
    assert body["assignment"] == {"orders": [0, 1, 2]}
    assert body["generation"] >= 1
    assert manager.get_assignment(body["consumer_id"]) == {
        "group_id": "g", "assignment": {"orders": [0, 1, 2]},
        "generation": body["generation"]}
    assert manager.positions(body["consumer_id"]) == {("orders", p): 0 for p in range(3)}

    first, _ = manager.consume(body["consumer_id"], timeout_ms=0)
    assert first, "the first consume must return the backlog immediately"
    got = offsets_of(first) + drain(manager, body["consumer_id"])
    assert sorted(got) == [("orders", p, o) for p in range(3) for o in range(4)]


def test_subscribe_deduplicates_topics_and_consume_uses_the_sessions_encoding(engine,
                                                                             manager):
    engine.create_topic("t", 1)
    produce(engine, "t", 0, 1)
    body = manager.subscribe("g", ["t", "t"], auto_offset_reset="earliest", encoding="text")
    assert body["topics"] == ["t"]
    assert manager.consume(body["consumer_id"], timeout_ms=0)[1] == "text"
    assert manager.consume(body["consumer_id"], timeout_ms=0, encoding="json")[1] == "json"


def test_latest_starts_at_the_end(engine, manager):
    engine.create_topic("t", 2)
    produce(engine, "t", 0, 5)
    produce(engine, "t", 1, 3)
    cid = manager.subscribe("g", ["t"])["consumer_id"]  # default: latest
    assert manager.positions(cid) == {("t", 0): 5, ("t", 1): 3}
    assert manager.consume(cid, timeout_ms=0)[0] == []
    produce(engine, "t", 1, 2)
    assert drain(manager, cid) == [("t", 1, 3), ("t", 1, 4)]


def test_new_member_starts_at_the_groups_committed_offset(engine, manager):
    engine.create_topic("t", 2)
    produce(engine, "t", 0, 10)
    produce(engine, "t", 1, 10)
    a = manager.subscribe("g", ["t"], auto_offset_reset="earliest")["consumer_id"]
    manager.seek(a, "t", 0, offset=0)
    chunks, _ = manager.consume(a, max_records=3, timeout_ms=0)
    assert len(offsets_of(chunks)) == 3
    manager.commit(a, {("t", 0): 6})  # p1 stays uncommitted
    manager.close(a)

    b = manager.subscribe("g", ["t"], auto_offset_reset="latest")["consumer_id"]
    # committed p0 resumes at the commit; uncommitted p1 follows auto_offset_reset
    assert manager.positions(b) == {("t", 0): 6, ("t", 1): 10}
    assert drain(manager, b) == [("t", 0, o) for o in range(6, 10)]

    manager.close(b)
    c = manager.subscribe("g", ["t"], auto_offset_reset="earliest")["consumer_id"]
    assert manager.positions(c) == {("t", 0): 6, ("t", 1): 0}


def test_two_members_split_the_partitions_and_generation_bumps(engine, manager):
    engine.create_topic("t", 5)
    for p in range(5):
        produce(engine, "t", p, 3)
    a = manager.subscribe("g", ["t"], auto_offset_reset="earliest")
    b = manager.subscribe("g", ["t"], auto_offset_reset="earliest")
    assert b["generation"] > a["generation"]
    a_now = manager.get_assignment(a["consumer_id"])
    assert a_now["generation"] == b["generation"]
    mine, theirs = owned(a_now), owned(b)
    assert mine and theirs
    assert not mine & theirs, "a partition is owned by two members"
    assert mine | theirs == {("t", p) for p in range(5)}
    assert members(manager, "g") == {a["consumer_id"]: mine, b["consumer_id"]: theirs}

    got_a = drain(manager, a["consumer_id"])
    got_b = drain(manager, b["consumer_id"])
    assert {(t, p) for t, p, _ in got_a} == mine
    assert {(t, p) for t, p, _ in got_b} == theirs
    assert sorted(got_a + got_b) == [("t", p, o) for p in range(5) for o in range(3)]


def test_subscribe_to_unknown_topic_leaves_no_session_behind(engine, manager):
    engine.create_topic("t", 2)
    with pytest.raises(TopicNotFound):
        manager.subscribe("lonely", ["missing"])
    assert manager.count() == 0
    with pytest.raises(GroupNotFound):
        manager.backend.describe_group("lonely")

    a = manager.subscribe("g", ["t"])
    with pytest.raises(TopicNotFound):
        manager.subscribe("g", ["t", "missing"])
    assert manager.count() == 1
    # the existing member was not rebalanced: same generation, still owns everything
    assert manager.get_assignment(a["consumer_id"]) == {
        "group_id": "g", "assignment": {"t": [0, 1]}, "generation": a["generation"]}
    assert list(members(manager, "g")) == [a["consumer_id"]]


def test_session_cap_gives_too_many_consumers(engine, clock):
    engine.create_topic("t", 2)
    mgr = ConsumerManager(engine, max_sessions=2, clock=clock.monotonic, now_ms=clock.now_ms)
    try:
        a = mgr.subscribe("g", ["t"])["consumer_id"]
        mgr.subscribe("g", ["t"])
        with pytest.raises(TooManyConsumers) as exc:
            mgr.subscribe("g", ["t"])
        assert exc.value.code == "too_many_consumers"
        assert STATUS[TooManyConsumers] == 429
        assert mgr.count() == 2
        assert len(mgr.backend.describe_group("g")["members"]) == 2  # the refused one never joined
        mgr.close(a)
        mgr.subscribe("g", ["t"])  # a slot is free again
        assert mgr.count() == 2
    finally:
        mgr.shutdown()


# -- consume -------------------------------------------------------------------------------

def test_max_records_caps_a_batch_across_partitions(engine, manager):
    engine.create_topic("t", 3)
    for p in range(3):
        produce(engine, "t", p, 10)
    cid = manager.subscribe("g", ["t"], auto_offset_reset="earliest")["consumer_id"]
    sizes, seen = [], []
    while True:
        chunks, _ = manager.consume(cid, max_records=7, timeout_ms=0)
        if not chunks:
            break
        sizes.append(len(offsets_of(chunks)))
        seen.extend(offsets_of(chunks))
    assert sizes == [7, 7, 7, 7, 2]  # a batch is filled from several partitions
    assert sorted(seen) == [("t", p, o) for p in range(3) for o in range(10)]


def test_max_bytes_caps_a_batch_across_partitions(engine, manager):
    engine.create_topic("t", 2)
    value = b"x" * 100
    frame = RECORD_OVERHEAD + len(value)  # what one record counts against max_bytes
    for p in range(2):
        for _ in range(10):
            produce(engine, "t", p, 1, value=value)
    cid = manager.subscribe("g", ["t"], auto_offset_reset="earliest")["consumer_id"]
    chunks, _ = manager.consume(cid, max_bytes=5 * frame + 10, timeout_ms=0)
    assert len(offsets_of(chunks)) == 5
    chunks, _ = manager.consume(cid, max_bytes=1024, timeout_ms=0)
    assert len(offsets_of(chunks)) == 1024 // frame
    rest = drain(manager, cid, max_bytes=1024)
    assert len(rest) == 20 - 5 - 1024 // frame


def test_a_record_bigger_than_max_bytes_is_returned_alone(engine, manager):
    engine.create_topic("t", 1)
    produce(engine, "t", 0, 3, value=b"s")
    produce(engine, "t", 0, 1, value=b"B" * 5000)
    produce(engine, "t", 0, 3, value=b"s")
    cid = manager.subscribe("g", ["t"], auto_offset_reset="earliest")["consumer_id"]
    batches = []
    while True:
        chunks, _ = manager.consume(cid, max_bytes=1024, timeout_ms=0)
        if not chunks:
            break
        batches.append([(rec[0], len(rec[3])) for _, _, recs in chunks for rec in recs])
    assert batches == [[(0, 1), (1, 1), (2, 1)], [(3, 5000)], [(4, 1), (5, 1), (6, 1)]]


def test_positions_advance_exactly_past_returned_records(engine, manager):
    engine.create_topic("t", 3)
    cid = manager.subscribe("g", ["t"], auto_offset_reset="earliest")["consumer_id"]
    produced, seen = [], []
    sizes = [1, 5, 17, 2, 9, 3, 30, 4]
    for round_no in range(40):
        p = round_no % 3
        n = (round_no * 7) % 11 + 1
        produced += [("t", p, o) for o in produce(engine, "t", p, n)]
        chunks, _ = manager.consume(cid, max_records=sizes[round_no % len(sizes)], timeout_ms=0)
        got = offsets_of(chunks)
        seen.extend(got)
        # the position of each partition is exactly one past the last record returned
        positions = manager.positions(cid)
        for p2 in range(3):
            mine = [o for t, q, o in seen if q == p2]
            assert positions[("t", p2)] == (max(mine) + 1 if mine else 0)
    seen += drain(manager, cid, max_records=4)
    assert len(seen) == len(set(seen)), "a record was returned twice"
    assert sorted(seen) == sorted(produced), "a record was skipped"
    for p in range(3):  # and per partition in offset order
        mine = [o for t, q, o in seen if q == p]
        assert mine == sorted(mine)
    assert manager.positions(cid) == {("t", p): engine.log_offsets("t", p)[1] for p in range(3)}


@pytest.mark.parametrize("limit", ["max_records", "max_bytes"])
def test_a_busy_partition_does_not_starve_the_others(engine, manager, limit):
    engine.create_topic("t", 2)
    value = b"x" * 100
    produce(engine, "t", 0, 1000, value=value)
    produce(engine, "t", 1, 5, value=value)
    cid = manager.subscribe("g", ["t"], auto_offset_reset="earliest")["consumer_id"]
    kwargs = ({"max_records": 10} if limit == "max_records"
              else {"max_bytes": 10 * (RECORD_OVERHEAD + len(value))})
    served = []
    for _ in range(2):
        chunks, _ = manager.consume(cid, timeout_ms=0, **kwargs)
        served.append(offsets_of(chunks))
    partitions = {p for batch in served for _, p, _ in batch}
    assert partitions == {0, 1}, "two consecutive consumes must serve both partitions"
    assert [o for batch in served for _, p, o in batch if p == 1] == [0, 1, 2, 3, 4]


def test_timeout_zero_returns_empty_at_once(engine, manager, bg):
    engine.create_topic("t", 2)
    cid = manager.subscribe("g", ["t"])["consumer_id"]
    poll = bg.consume(cid, timeout_ms=0)
    assert poll.result() == []  # the fake clock is frozen: only timeout 0 can end it
    assert manager.positions(cid) == {("t", 0): 0, ("t", 1): 0}


# -- commit --------------------------------------------------------------------------------

def test_default_commit_is_exactly_the_records_returned(engine, manager):
    engine.create_topic("t", 3)
    for p in range(3):
        produce(engine, "t", p, 10)
    cid = manager.subscribe("g", ["t"], auto_offset_reset="earliest")["consumer_id"]
    assert manager.committed(cid) == {}
    chunks, _ = manager.consume(cid, max_records=13, timeout_ms=0)
    returned = offsets_of(chunks)
    expected = {("t", p): 0 for p in range(3)}
    for t, p, o in returned:
        expected[(t, p)] = max(expected[(t, p)], o + 1)
    assert manager.commit(cid) == expected
    assert manager.committed(cid) == expected
    assert manager.backend.committed("g") == expected


def test_committed_lists_only_partitions_with_a_commit(engine, manager):
    engine.create_topic("t", 3)
    produce(engine, "t", 1, 5)
    cid = manager.subscribe("g", ["t"])["consumer_id"]
    assert manager.commit(cid, {("t", 1): 2}) == {("t", 1): 2}
    assert manager.committed(cid) == {("t", 1): 2}
    manager.commit(cid, {("t", 1): 5, ("t", 2): 0})
    assert manager.committed(cid) == {("t", 1): 5, ("t", 2): 0}


def test_commit_of_a_partition_not_owned_is_partition_not_assigned(engine, manager):
    engine.create_topic("t", 4)
    a = manager.subscribe("g", ["t"])
    b = manager.subscribe("g", ["t"])
    theirs = sorted(owned(b))
    with pytest.raises(PartitionNotAssigned) as exc:
        manager.commit(a["consumer_id"], {theirs[0]: 0})
    assert exc.value.code == "partition_not_assigned"
    assert STATUS[PartitionNotAssigned] == 409
    assert manager.backend.committed("g") == {}
    # a partition of a topic the session does not read at all
    engine.create_topic("other", 1)
    with pytest.raises(PartitionNotAssigned):
        manager.commit(a["consumer_id"], {("other", 0): 0})


def test_commit_after_a_rebalance_took_the_partition_away(engine, manager):
    engine.create_topic("t", 2)
    for p in range(2):
        produce(engine, "t", p, 10)
    a = manager.subscribe("g", ["t"], auto_offset_reset="earliest")["consumer_id"]
    drain(manager, a)
    before = manager.positions(a)
    assert before == {("t", 0): 10, ("t", 1): 10}
    b = manager.subscribe("g", ["t"])
    (lost,) = owned(b)
    with pytest.raises(PartitionNotAssigned):
        manager.commit(a, {lost: 10})
    assert manager.backend.committed("g") == {}
    # a default commit now covers only what the session still owns
    (kept,) = {("t", 0), ("t", 1)} - {lost}
    assert manager.commit(a) == {kept: 10}
    assert manager.backend.committed("g") == {kept: 10}


def test_commit_beyond_the_high_watermark_is_offset_out_of_range(engine, manager):
    engine.create_topic("t", 1)
    produce(engine, "t", 0, 5)
    cid = manager.subscribe("g", ["t"])["consumer_id"]
    with pytest.raises(OffsetOutOfRange) as exc:
        manager.commit(cid, {("t", 0): 6})
    assert exc.value.details["high_watermark"] == 5
    with pytest.raises(OffsetOutOfRange):
        manager.commit(cid, {("t", 0): -1})
    assert manager.committed(cid) == {}
    manager.commit(cid, {("t", 0): 5})  # the high watermark itself is fine
    assert manager.committed(cid) == {("t", 0): 5}


# -- seek ----------------------------------------------------------------------------------

def test_seek_to_an_offset_replays_from_there(engine, manager):
    engine.create_topic("t", 2)
    produce(engine, "t", 0, 10)
    produce(engine, "t", 1, 10)
    cid = manager.subscribe("g", ["t"], auto_offset_reset="earliest")["consumer_id"]
    drain(manager, cid)
    assert manager.seek(cid, "t", 0, offset=3) == {("t", 0): 3}
    assert manager.positions(cid) == {("t", 0): 3, ("t", 1): 10}
    assert drain(manager, cid) == [("t", 0, o) for o in range(3, 10)]
    assert manager.seek(cid, "t", 1, offset=10) == {("t", 1): 10}  # the end is valid


def test_seek_out_of_range_reports_the_valid_range(engine, manager):
    engine.create_topic("t", 1)
    produce(engine, "t", 0, 10)
    cid = manager.subscribe("g", ["t"], auto_offset_reset="earliest")["consumer_id"]
    for bad in (11, -1):
        with pytest.raises(OffsetOutOfRange) as exc:
            manager.seek(cid, "t", 0, offset=bad)
        assert exc.value.code == "offset_out_of_range"
        assert exc.value.details["log_start_offset"] == 0
        assert exc.value.details["high_watermark"] == 10
    assert manager.positions(cid) == {("t", 0): 0}


def test_seek_beginning_and_end_of_every_partition(engine, manager):
    engine.create_topic("a", 2)
    engine.create_topic("b", 1)
    for topic, p in (("a", 0), ("a", 1), ("b", 0)):
        produce(engine, topic, p, 4)
    cid = manager.subscribe("g", ["a", "b"])["consumer_id"]  # latest: at the end
    assert manager.consume(cid, timeout_ms=0)[0] == []
    assert manager.seek(cid, position="beginning") == {("a", 0): 0, ("a", 1): 0, ("b", 0): 0}
    assert sorted(drain(manager, cid)) == [(t, p, o) for t, p in (("a", 0), ("a", 1), ("b", 0))
                                           for o in range(4)]
    manager.seek(cid, position="beginning")
    assert manager.seek(cid, position="end") == {("a", 0): 4, ("a", 1): 4, ("b", 0): 4}
    assert manager.consume(cid, timeout_ms=0)[0] == []


def test_seek_beginning_of_one_topic_leaves_the_others(engine, manager):
    engine.create_topic("a", 2)
    engine.create_topic("b", 1)
    for topic, p in (("a", 0), ("a", 1), ("b", 0)):
        produce(engine, topic, p, 4)
    cid = manager.subscribe("g", ["a", "b"])["consumer_id"]
    assert manager.seek(cid, "a", position="beginning") == {("a", 0): 0, ("a", 1): 0}
    assert manager.positions(cid)[("b", 0)] == 4
    assert sorted(drain(manager, cid)) == [("a", p, o) for p in (0, 1) for o in range(4)]
    assert manager.seek(cid, "b", position="beginning") == {("b", 0): 0}
    manager.seek(cid, "a", 1, position="beginning")
    assert sorted(drain(manager, cid)) == ([("a", 1, o) for o in range(4)]
                                           + [("b", 0, o) for o in range(4)])


def test_seek_to_a_timestamp(engine, manager):
    engine.create_topic("t", 2)
    produce(engine, "t", 0, 5, timestamps=[1000, 2000, 3000, 4000, 5000])
    produce(engine, "t", 1, 3, timestamps=[2500, 2600, 9000])
    cid = manager.subscribe("g", ["t"])["consumer_id"]
    assert manager.seek(cid, "t", 0, timestamp=2500) == {("t", 0): 2}
    chunks, _ = manager.consume(cid, timeout_ms=0)
    assert [(rec[0], rec[1]) for _, _, recs in chunks for rec in recs] == [
        (2, 3000), (3, 4000), (4, 5000)]
    assert manager.seek(cid, "t", 0, timestamp=3000) == {("t", 0): 2}  # ts >= t, inclusive
    assert manager.seek(cid, timestamp=2550) == {("t", 0): 2, ("t", 1): 1}  # all partitions
    assert manager.seek(cid, timestamp=0) == {("t", 0): 0, ("t", 1): 0}
    # past the newest record: the end, and nothing to replay
    assert manager.seek(cid, timestamp=99_999) == {("t", 0): 5, ("t", 1): 3}
    assert manager.consume(cid, timeout_ms=0)[0] == []
    assert manager.seek(cid, "t", timestamp=2550) == {("t", 0): 2, ("t", 1): 1}
    assert sorted(drain(manager, cid)) == [("t", 0, 2), ("t", 0, 3), ("t", 0, 4),
                                           ("t", 1, 1), ("t", 1, 2)]


def test_seek_on_a_partition_not_owned_is_partition_not_assigned(engine, manager):
    engine.create_topic("t", 2)
    engine.create_topic("other", 1)
    produce(engine, "t", 0, 5)
    produce(engine, "t", 1, 5)
    a = manager.subscribe("g", ["t"])
    b = manager.subscribe("g", ["t"])
    (theirs,) = owned(b)
    before = manager.positions(a["consumer_id"])
    with pytest.raises(PartitionNotAssigned):
        manager.seek(a["consumer_id"], *theirs, offset=0)
    with pytest.raises(PartitionNotAssigned):
        manager.seek(a["consumer_id"], *theirs, position="beginning")
    with pytest.raises(PartitionNotAssigned):  # a topic it does not read
        manager.seek(a["consumer_id"], "other", position="beginning")
    with pytest.raises(PartitionNotFound):
        manager.seek(a["consumer_id"], "t", 7, offset=0)
    assert manager.positions(a["consumer_id"]) == before
    assert manager.positions(b["consumer_id"]) == {theirs: 5}


def test_seek_partition_without_topic_is_invalid(engine, manager):
    engine.create_topic("t", 1)
    cid = manager.subscribe("g", ["t"])["consumer_id"]
    with pytest.raises(InvalidRequest) as exc:
        manager.seek(cid, None, 0, position="beginning")
    assert "topic" in exc.value.details


# -- auto commit ---------------------------------------------------------------------------

def test_auto_commit_commits_what_the_previous_consume_returned(engine, manager):
    engine.create_topic("t", 2)
    for p in range(2):
        produce(engine, "t", p, 10)
    cid = manager.subscribe("g", ["t"], auto_offset_reset="earliest",
                            auto_commit=True)["consumer_id"]
    first, _ = manager.consume(cid, max_records=7, timeout_ms=0)
    after_first = manager.positions(cid)
    assert len(offsets_of(first)) == 7
    assert manager.committed(cid) == {}  # nothing returned before consume #1
    second, _ = manager.consume(cid, max_records=7, timeout_ms=0)
    assert len(offsets_of(second)) == 7
    advanced = {tp: o for tp, o in after_first.items() if o > 0}
    assert manager.committed(cid) == advanced
    after_second = manager.positions(cid)
    assert manager.consume(cid, max_records=7, timeout_ms=0)[0]
    assert manager.committed(cid) == {tp: o for tp, o in after_second.items() if o > 0}


def test_without_auto_commit_nothing_is_committed(engine, manager):
    engine.create_topic("t", 1)
    produce(engine, "t", 0, 10)
    cid = manager.subscribe("g", ["t"], auto_offset_reset="earliest")["consumer_id"]
    for _ in range(3):
        manager.consume(cid, max_records=3, timeout_ms=0)
    assert manager.committed(cid) == {}


# -- manual assignment ---------------------------------------------------------------------

def test_manual_assignment_leaves_the_group_and_reads_exactly_those_partitions(engine,
                                                                                manager):
    engine.create_topic("t", 4)
    for p in range(4):
        produce(engine, "t", p, 3)
    a = manager.subscribe("g", ["t"], auto_offset_reset="earliest")["consumer_id"]
    b = manager.subscribe("g", ["t"], auto_offset_reset="earliest")
    gen_before = b["generation"]

    body = manager.assign(a, {"t": [2, 1, 2]})
    assert body["assignment"] == {"t": [1, 2]}
    assert body["generation"] == -1
    assert manager.get_assignment(a)["generation"] == -1

    b_now = manager.get_assignment(b["consumer_id"])
    assert b_now["assignment"] == {"t": [0, 1, 2, 3]}  # it took everything
    assert b_now["generation"] > gen_before
    assert list(members(manager, "g")) == [b["consumer_id"]]

    assert sorted(drain(manager, a)) == [("t", p, o) for p in (1, 2) for o in range(3)]
    produce(engine, "t", 0, 1)
    produce(engine, "t", 3, 1)
    assert manager.consume(a, timeout_ms=0)[0] == []


def test_a_manually_assigned_session_commits_only_its_partitions(engine, manager):
    engine.create_topic("t", 2)
    produce(engine, "t", 0, 5)
    produce(engine, "t", 1, 5)
    a = manager.subscribe("g", ["t"], auto_offset_reset="earliest")["consumer_id"]
    manager.assign(a, {"t": [0]})
    assert drain(manager, a) == [("t", 0, o) for o in range(5)]
    assert manager.commit(a) == {("t", 0): 5}
    assert manager.committed(a) == {("t", 0): 5}
    with pytest.raises(PartitionNotAssigned):
        manager.commit(a, {("t", 1): 3})
    with pytest.raises(PartitionNotAssigned):
        manager.seek(a, "t", 1, offset=0)
    assert manager.backend.committed("g") == {("t", 0): 5}


def test_manual_assignment_of_an_unknown_partition(engine, manager):
    engine.create_topic("t", 2)
    a = manager.subscribe("g", ["t"])
    with pytest.raises(PartitionNotFound):
        manager.assign(a["consumer_id"], {"t": [0, 2]})
    with pytest.raises(TopicNotFound):
        manager.assign(a["consumer_id"], {"missing": [0]})
    # a refused assignment changes nothing: still a member with its assignment
    assert manager.get_assignment(a["consumer_id"]) == {
        "group_id": "g", "assignment": {"t": [0, 1]}, "generation": a["generation"]}
    assert list(members(manager, "g")) == [a["consumer_id"]]


# -- close ---------------------------------------------------------------------------------

REQUESTS = {
    "consume": lambda m, cid: m.consume(cid, timeout_ms=0),
    "commit": lambda m, cid: m.commit(cid),
    "seek": lambda m, cid: m.seek(cid, position="beginning"),
    "get_assignment": lambda m, cid: m.get_assignment(cid),
    "assign": lambda m, cid: m.assign(cid, {"t": [0]}),
    "positions": lambda m, cid: m.positions(cid),
    "committed": lambda m, cid: m.committed(cid),
    "close": lambda m, cid: m.close(cid),
}


@pytest.mark.parametrize("request_name", sorted(REQUESTS))
def test_close_with_commit_commits_then_leaves(engine, manager, request_name):
    engine.create_topic("t", 2)
    for p in range(2):
        produce(engine, "t", p, 10)
    a = manager.subscribe("g", ["t"], auto_offset_reset="earliest")["consumer_id"]
    manager.consume(a, max_records=13, timeout_ms=0)
    positions = manager.positions(a)
    b = manager.subscribe("g", ["t"], auto_offset_reset="latest")
    a_owned = owned(manager.get_assignment(a))
    manager.close(a, commit=True)

    assert manager.backend.committed("g") == {tp: positions[tp] for tp in a_owned}
    b_now = manager.get_assignment(b["consumer_id"])
    assert b_now["assignment"] == {"t": [0, 1]}
    assert b_now["generation"] > b["generation"]
    assert list(members(manager, "g")) == [b["consumer_id"]]
    # B resumes A's partitions at A's committed offsets
    for tp in a_owned:
        assert manager.positions(b["consumer_id"])[tp] == positions[tp]

    with pytest.raises(ConsumerNotFound):
        REQUESTS[request_name](manager, a)


def test_close_without_commit_commits_nothing(engine, manager):
    engine.create_topic("t", 1)
    produce(engine, "t", 0, 10)
    a = manager.subscribe("g", ["t"], auto_offset_reset="earliest")["consumer_id"]
    manager.consume(a, max_records=4, timeout_ms=0)
    manager.close(a)
    assert manager.backend.committed("g") == {}
    assert manager.count() == 0
    b = manager.subscribe("g", ["t"], auto_offset_reset="earliest")["consumer_id"]
    assert manager.positions(b) == {("t", 0): 0}


def test_another_owners_requests_are_consumer_not_found(engine, manager):
    engine.create_topic("t", 1)
    produce(engine, "t", 0, 3)
    cid = manager.subscribe("g", ["t"], auto_offset_reset="earliest",
                            owner="alice")["consumer_id"]
    for owner in ("bob", None):
        with pytest.raises(ConsumerNotFound):
            manager.consume(cid, timeout_ms=0, owner=owner)
        with pytest.raises(ConsumerNotFound):
            manager.commit(cid, owner=owner)
        with pytest.raises(ConsumerNotFound):
            manager.seek(cid, position="end", owner=owner)
        with pytest.raises(ConsumerNotFound):
            manager.positions(cid, owner=owner)
        with pytest.raises(ConsumerNotFound):
            manager.close(cid, commit=True, owner=owner)
    # none of that touched the session
    assert manager.count() == 1
    assert manager.positions(cid, owner="alice") == {("t", 0): 0}
    assert len(offsets_of(manager.consume(cid, timeout_ms=0, owner="alice")[0])) == 3
    manager.close(cid, owner="alice")
    assert manager.count() == 0


def test_unknown_consumer_is_consumer_not_found(manager):
    with pytest.raises(ConsumerNotFound) as exc:
        manager.consume("nope", timeout_ms=0)
    assert exc.value.code == "consumer_not_found"
    assert STATUS[ConsumerNotFound] == 404


# -- rebalance edge cases ------------------------------------------------------------------

def test_a_partition_regained_after_another_member_committed_resumes_at_the_commit(
        engine, manager, next_ids):
    engine.create_topic("t", 1)
    produce(engine, "t", 0, 10)
    next_ids.extend(["b-first", "a-second"])  # range: sorted ids, "a-..." gets p0
    first = manager.subscribe("g", ["t"], auto_offset_reset="earliest")["consumer_id"]
    chunks, _ = manager.consume(first, max_records=5, timeout_ms=0)
    assert offsets_of(chunks) == [("t", 0, o) for o in range(5)]  # position 5, no commit

    second = manager.subscribe("g", ["t"], auto_offset_reset="earliest")["consumer_id"]
    assert manager.get_assignment(second)["assignment"] == {"t": [0]}
    assert drain(manager, second) == [("t", 0, o) for o in range(10)]
    manager.commit(second)  # the group has processed everything: committed 10
    manager.close(second)

    # p0 comes back to the first member, which never heard it was gone
    assert manager.get_assignment(first)["assignment"] == {"t": [0]}
    assert manager.positions(first) == {("t", 0): 10}
    assert drain(manager, first) == []  # nothing the group already committed again


def test_auto_commit_never_moves_a_regained_partitions_commit_backwards(engine, manager,
                                                                        next_ids):
    engine.create_topic("t", 1)
    produce(engine, "t", 0, 10)
    next_ids.extend(["b-first", "a-second"])  # range: sorted ids, "a-..." gets p0
    first = manager.subscribe("g", ["t"], auto_offset_reset="earliest",
                              auto_commit=True)["consumer_id"]
    chunks, _ = manager.consume(first, max_records=5, timeout_ms=0)
    assert len(offsets_of(chunks)) == 5  # to be auto-committed (5) by the next consume

    second = manager.subscribe("g", ["t"], auto_offset_reset="earliest")["consumer_id"]
    assert len(drain(manager, second)) == 10
    manager.commit(second)
    manager.close(second)
    assert manager.backend.committed("g") == {("t", 0): 10}

    # p0 is back with the first member; its next consume auto-commits "the previous one"
    assert manager.consume(first, timeout_ms=0)[0] == []
    assert manager.backend.committed("g") == {("t", 0): 10}, \
        "a stale auto-commit moved the group's committed offset backwards"


def test_consume_after_retention_passed_the_position_serves_from_the_log_start(engine,
                                                                               manager):
    engine.create_topic("t", 1, {"segment_bytes": 1024, "retention_bytes": 0})
    value = b"x" * 200
    for _ in range(12):  # 237-byte frames: several segments
        produce(engine, "t", 0, 1, value=value)
    cid = manager.subscribe("g", ["t"], auto_offset_reset="earliest")["consumer_id"]
    assert manager.positions(cid) == {("t", 0): 0}
    engine.run_maintenance()
    start, end = engine.log_offsets("t", 0)
    assert 0 < start < end == 12  # retention deleted the oldest segments
    chunks, _ = manager.consume(cid, timeout_ms=0)
    assert offsets_of(chunks) == [("t", 0, o) for o in range(start, end)]


def test_consumer_ids_start_with_the_node_id_when_there_is_one(engine, clock):
    from consumer_api.sessions.manager import ConsumerManager
    engine.create_topic("t", 1)
    named = ConsumerManager(engine, clock=clock.monotonic, now_ms=clock.now_ms, node_id="node-b")
    plain = ConsumerManager(engine, clock=clock.monotonic, now_ms=clock.now_ms)
    try:
        node, _, rest = named.subscribe("g", ["t"])["consumer_id"].partition(".")
        assert node == "node-b" and len(rest) == 32 and int(rest, 16) >= 0
        assert "." not in plain.subscribe("h", ["t"])["consumer_id"]
    finally:
        named.shutdown()
        plain.shutdown()
