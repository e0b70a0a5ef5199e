"""The pump of a Kafka member (consumer_api/kafka/member.py) on a real broker: bounded
per-partition buffers with pause and resume, a revoked partition's buffer dropped, and a
closing store leaving its groups at once."""
from __future__ import annotations

from consumer_api.records import NewRecord
from tests.backend_contract.conftest import Wakes, await_assignment, joined
from tests.kafka.conftest import BOUND_S
from tests.waiting import wait_until

VALUE = b"v" * 1000


def small_member(kafka, name: str, buffer_bytes: int):
    """A member of group ``g`` whose buffers hold ``buffer_bytes`` per partition."""
    wakes = Wakes()
    member = kafka.member("g", name, wakes)
    member._buffer_bytes = buffer_bytes  # before its pump starts (at join)
    return member, wakes


def buffered(member, tp) -> tuple:
    buffer = member._buffers.get(tp)
    return (0, False) if buffer is None else (buffer.bytes, buffer.paused)


def test_a_partition_buffers_at_most_its_bound_then_pauses_and_resumes_when_read(kafka):
    kafka.create_topic("t", 1)
    kafka.produce("t", [NewRecord(None, VALUE)] * 200, [0] * 200)
    member, wakes = small_member(kafka, "a", buffer_bytes=8 * 1024)
    try:
        joined(member, ["t"], wakes)
        member.reposition("t", 0, 0)
        wait_until(lambda: buffered(member, ("t", 0))[0] > 8 * 1024, "the buffer filled",
                   BOUND_S)
        size, paused = buffered(member, ("t", 0))
        assert paused
        one = len(VALUE) + 37
        assert 8 * 1024 < size <= 8 * 1024 + one  # stopped one record past the bound
        before = member.high_watermark("t", 0)
        records, _ = member.fetch("t", 0, 0, 1000, 1 << 30, 0)
        assert [r[0] for r in records] == list(range(before))
        wait_until(lambda: member.high_watermark("t", 0) > before, "reading resumed", BOUND_S)
    finally:
        member.leave()


def test_a_partition_taken_away_by_a_rebalance_loses_its_buffer(kafka):
    kafka.create_topic("t", 2)
    kafka.produce("t", [NewRecord(None, VALUE)] * 10, [0] * 10)
    kafka.produce("t", [NewRecord(None, VALUE)] * 10, [1] * 10)
    a, a_wakes = small_member(kafka, "a", 1 << 20)
    b, b_wakes = small_member(kafka, "b", 1 << 20)
    try:
        first = joined(a, ["t"], a_wakes)
        for p in (0, 1):
            a.reposition("t", p, 0)
        wait_until(lambda: a.high_watermark("t", 0) == 10 and a.high_watermark("t", 1) == 10,
                   "both partitions buffered", BOUND_S)
        joined(b, ["t"], b_wakes)
        now = await_assignment(a, a_wakes, lambda x: x.generation > first.generation
                               and len(x.pairs()) == 1, "a keeps one partition")
        [(_, kept)] = now.pairs()
        lost = 1 - kept
        assert a.high_watermark("t", lost) == -1
        assert a.fetch("t", lost, 0, 100, 1 << 30, 0) == ([], 0)
        assert len(a.fetch("t", kept, 0, 100, 1 << 30, 0)[0]) == 10  # the kept one reads on
    finally:
        a.leave()
        b.leave()


def test_closing_the_store_leaves_its_groups_at_once(kafka):
    kafka.create_topic("t", 1)
    wakes = Wakes()
    member = kafka.member("g", "a", wakes)
    joined(member, ["t"], wakes)
    assert [m["consumer_id"] for m in kafka.describe_group("g")["members"]] == ["a"]
    kafka.close()  # no session timeout to wait out: the members leave as it closes
    assert kafka.groups.list_groups()[0]["members"] == []
