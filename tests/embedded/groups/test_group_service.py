"""GroupService through the engine: commits checked against topics and ownership, group
admin (list, describe, set offsets, delete) and topic deletion."""
from __future__ import annotations

import os
import threading

import pytest

from consumer_api.config import Config
from consumer_api.embedded.engine import Engine
from consumer_api.records import NewRecord
from consumer_api.errors import (
    GroupNotEmpty, GroupNotFound, InvalidRequest, OffsetOutOfRange, PartitionNotAssigned,
    PartitionNotFound, TopicNotFound)


class Waker:
    def __init__(self):
        self.calls = 0

    def __call__(self):
        self.calls += 1


def produce(engine, topic, partition, n):
    engine.produce(topic, [NewRecord(None, b"x%d" % i) for i in range(n)], [partition] * n)


@pytest.fixture
def eng(engine):
    """The engine with topic ``t`` (3 partitions: 5, 0 and 2 records) and ``u`` (1: 4)."""
    engine.create_topic("t", 3)
    engine.create_topic("u", 1)
    produce(engine, "t", 0, 5)
    produce(engine, "t", 2, 2)
    produce(engine, "u", 0, 4)
    return engine


def reopen(engine, clock):
    """Close the engine and open the same data directory again (the caller closes it)."""
    engine.close()
    return Engine(engine.config, now_ms=clock.now_ms)


# -- commit -----------------------------------------------------------------------------------


def test_commit_by_the_owner_is_stored(eng):
    groups = eng.groups
    groups.join("g", "m1", ["t", "u"], Waker())
    groups.commit("g", "m1", {("t", 0): 5, ("t", 2): 1, ("u", 0): 0})
    assert groups.committed("g") == {("t", 0): 5, ("t", 2): 1, ("u", 0): 0}
    groups.commit("g", "m1", {("t", 0): 3})  # going back is allowed
    assert groups.committed("g")[("t", 0)] == 3


@pytest.mark.parametrize("offset", [6, 1000, -1, -(2**63)])
def test_commit_outside_0_to_high_watermark_is_offset_out_of_range(eng, offset):
    eng.groups.join("g", "m1", ["t"], Waker())
    with pytest.raises(OffsetOutOfRange) as info:
        eng.groups.commit("g", "m1", {("t", 0): offset})
    assert info.value.details["log_start_offset"] == 0
    assert info.value.details["high_watermark"] == 5
    assert info.value.details["topic"] == "t" and info.value.details["partition"] == 0
    assert eng.groups.committed("g") == {}


def test_commit_at_the_high_watermark_and_at_zero_are_fine(eng):
    eng.groups.join("g", "m1", ["t"], Waker())
    eng.groups.commit("g", "m1", {("t", 0): 5, ("t", 1): 0})
    assert eng.groups.committed("g") == {("t", 0): 5, ("t", 1): 0}


def test_out_of_range_details_carry_the_log_start_after_retention(engine):
    engine.create_topic("r", 1, {"segment_bytes": 1024, "retention_bytes": 0})
    for _ in range(40):
        produce(engine, "r", 0, 1)
    plog = engine.topics.get("r").partition(0)
    plog.enforce_retention()
    start, end = plog.offsets()
    assert 0 < start < end == 40
    with pytest.raises(OffsetOutOfRange) as info:
        engine.groups.commit("g", None, {("r", 0): 41})
    assert (info.value.details["log_start_offset"], info.value.details["high_watermark"]) \
        == (start, 40)


def test_one_bad_offset_rejects_the_whole_commit(eng):
    eng.groups.join("g", "m1", ["t", "u"], Waker())
    with pytest.raises(OffsetOutOfRange):
        eng.groups.commit("g", "m1", {("t", 0): 1, ("u", 0): 99})
    assert eng.groups.committed("g") == {}


def test_commit_to_an_unknown_topic_or_partition(eng):
    eng.groups.join("g", "m1", ["t"], Waker())
    with pytest.raises(TopicNotFound):
        eng.groups.commit("g", "m1", {("nope", 0): 0})
    with pytest.raises(PartitionNotFound):
        eng.groups.commit("g", "m1", {("t", 3): 0})
    with pytest.raises(PartitionNotFound):
        eng.groups.commit("g", "m1", {("t", -1): 0})
    assert eng.groups.committed("g") == {}


def test_commit_by_a_non_owner_is_refused_and_stores_nothing(eng):
    groups = eng.groups
    groups.join("g", "m1", ["t"], Waker())
    groups.join("g", "m2", ["t"], Waker())  # range: m1 t-0, t-1; m2 t-2
    assert groups.assignment("g", "m2")[1] == {"t": [2]}
    with pytest.raises(PartitionNotAssigned) as info:
        groups.commit("g", "m2", {("t", 2): 1, ("t", 0): 3})
    assert info.value.details == {"topic": "t", "partition": 0}
    with pytest.raises(PartitionNotAssigned):
        groups.commit("g", "stranger", {("t", 2): 1})
    with pytest.raises(PartitionNotAssigned):
        groups.commit("g", None, {("t", 2): 1})  # a manual session: the group owns it
    with pytest.raises(PartitionNotAssigned):
        groups.commit("g", "m1", {("u", 0): 1})  # nobody in g reads u
    assert groups.committed("g") == {}


def test_a_member_that_lost_a_partition_in_a_rebalance_cannot_commit_it(eng):
    groups = eng.groups
    groups.join("g", "m1", ["t"], Waker())
    groups.commit("g", "m1", {("t", 2): 1})
    groups.join("g", "m0", ["t"], Waker())  # range: m0 t-0, t-1; m1 t-2
    with pytest.raises(PartitionNotAssigned, match="rebalance"):
        groups.commit("g", "m1", {("t", 0): 4})
    groups.commit("g", "m0", {("t", 0): 4})
    groups.commit("g", "m1", {("t", 2): 2})
    assert groups.committed("g") == {("t", 0): 4, ("t", 2): 2}


def test_a_manual_session_commits_partitions_no_member_owns(eng):
    eng.groups.join("g", "m1", ["u"], Waker())
    eng.groups.commit("g", None, {("t", 0): 2})
    eng.groups.commit("lonely", None, {("t", 0): 3})
    assert eng.groups.committed("g") == {("t", 0): 2}
    assert eng.groups.committed("lonely") == {("t", 0): 3}


def test_commits_survive_an_engine_restart(eng, clock):
    eng.groups.join("g", "m1", ["t"], Waker())
    eng.groups.commit("g", "m1", {("t", 0): 4, ("t", 2): 2})
    engine = reopen(eng, clock)
    try:
        assert engine.groups.committed("g") == {("t", 0): 4, ("t", 2): 2}
        assert [g["group_id"] for g in engine.groups.list_groups()] == ["g"]
    finally:
        engine.close()


# -- describe and list ------------------------------------------------------------------------


def test_describe_gives_lag_and_none_where_nothing_is_committed(eng):
    groups = eng.groups
    groups.join("g", "m1", ["t"], Waker())
    groups.commit("g", "m1", {("t", 0): 2, ("t", 2): 2})
    info = groups.describe("g")
    assert (info["group_id"], info["state"], info["generation"], info["assignor"]) == \
        ("g", "Stable", 1, "range")
    assert [(m["consumer_id"], m["assignment"]) for m in info["members"]] == \
        [("m1", {"t": [0, 1, 2]})]
    assert info["offsets"] == [
        {"topic": "t", "partition": 0, "committed_offset": 2, "high_watermark": 5, "lag": 3},
        {"topic": "t", "partition": 1, "committed_offset": None, "high_watermark": 0,
         "lag": None},
        {"topic": "t", "partition": 2, "committed_offset": 2, "high_watermark": 2, "lag": 0},
    ]
    produce(eng, "t", 2, 3)  # lag follows the high watermark
    assert groups.describe("g")["offsets"][2]["lag"] == 3


def test_describe_covers_committed_topics_nobody_reads_and_unknown_groups(eng):
    groups = eng.groups
    groups.set_offsets("g", {("u", 0): 1})
    info = groups.describe("g")
    assert (info["state"], info["members"]) == ("Empty", [])
    assert info["offsets"] == [{"topic": "u", "partition": 0, "committed_offset": 1,
                                "high_watermark": 4, "lag": 3}]
    with pytest.raises(GroupNotFound):
        groups.describe("never")


def test_list_groups_includes_groups_with_only_offsets_and_groups_with_members(eng):
    groups = eng.groups
    assert groups.list_groups() == []
    groups.set_offsets("offsets-only", {("t", 0): 1})
    groups.join("live", "m2", ["t"], Waker())
    groups.join("live", "m1", ["u"], Waker())
    groups.join("left", "m9", ["u"], Waker())
    groups.leave("left", "m9")
    listed = {g["group_id"]: g for g in groups.list_groups()}
    assert listed["offsets-only"]["state"] == "Empty"
    assert listed["offsets-only"]["members"] == []
    assert listed["live"] == {"group_id": "live", "state": "Stable", "generation": 2,
                              "members": ["m2", "m1"]}
    assert (listed["left"]["state"], listed["left"]["members"]) == ("Empty", [])
    assert [g["group_id"] for g in groups.list_groups()] == ["left", "live", "offsets-only"]


# -- flush policy -----------------------------------------------------------------------------


@pytest.mark.parametrize("change", ["member-commit", "set-offsets", "reset", "delete-group"])
def test_flush_policy_always_syncs_the_offsets_log_before_an_offset_change_returns(
        data_dir, clock, monkeypatch, change):
    engine = Engine(Config(data_dir=data_dir, flush_policy="always"), now_ms=clock.now_ms)
    try:
        engine.create_topic("t", 1)
        produce(engine, "t", 0, 3)
        engine.groups.set_offsets("gone", {("t", 0): 1})
        synced = []
        real = os.fdatasync

        def fdatasync(fd):
            synced.append(os.readlink(f"/proc/self/fd/{fd}"))
            return real(fd)

        monkeypatch.setattr(os, "fdatasync", fdatasync)
        groups = engine.groups
        if change == "member-commit":
            groups.join("g", "m1", ["t"], Waker())
            groups.commit("g", "m1", {("t", 0): 2})
        elif change == "set-offsets":
            groups.set_offsets("g", {("t", 0): 2})
        elif change == "reset":
            groups.set_offsets("g", reset="latest", topics=["t"])
        else:
            groups.delete("gone")
        offsets_log = os.path.join(data_dir, "internal", "offsets", "log", "")
        assert [p for p in synced if p.startswith(offsets_log)], synced
    finally:
        engine.close()


# -- set offsets ------------------------------------------------------------------------------


def test_set_offsets_explicit(eng):
    groups = eng.groups
    assert groups.set_offsets("g", {("t", 0): 3, ("u", 0): 4}) == {("t", 0): 3, ("u", 0): 4}
    assert groups.committed("g") == {("t", 0): 3, ("u", 0): 4}
    with pytest.raises(OffsetOutOfRange):
        groups.set_offsets("g", {("t", 0): 6})
    with pytest.raises(TopicNotFound):
        groups.set_offsets("g", {("nope", 0): 0})
    assert groups.committed("g") == {("t", 0): 3, ("u", 0): 4}


def test_reset_latest_and_earliest_for_named_topics(eng):
    groups = eng.groups
    assert groups.set_offsets("g", reset="latest", topics=["t"]) == \
        {("t", 0): 5, ("t", 1): 0, ("t", 2): 2}
    assert groups.set_offsets("g", reset="earliest", topics=["u"]) == {("u", 0): 0}
    assert groups.committed("g") == {("t", 0): 5, ("t", 1): 0, ("t", 2): 2, ("u", 0): 0}
    with pytest.raises(TopicNotFound):
        groups.set_offsets("g", reset="earliest", topics=["nope"])


def test_reset_without_topics_resets_every_committed_topic(eng):
    groups = eng.groups
    groups.set_offsets("g", {("t", 0): 1})
    assert groups.set_offsets("g", reset="latest") == {("t", 0): 5, ("t", 1): 0, ("t", 2): 2}
    assert groups.set_offsets("g", reset="earliest") == {("t", 0): 0, ("t", 1): 0,
                                                         ("t", 2): 0}
    assert "u" not in {t for t, _ in groups.committed("g")}


def test_reset_without_topics_or_commits_is_invalid(eng):
    with pytest.raises(InvalidRequest) as info:
        eng.groups.set_offsets("g", reset="earliest")
    assert "topics" in info.value.details
    assert eng.groups.committed("g") == {}


def test_reset_earliest_is_the_log_start_after_retention(engine):
    engine.create_topic("r", 1, {"segment_bytes": 1024, "retention_bytes": 0})
    for _ in range(40):
        produce(engine, "r", 0, 1)
    plog = engine.topics.get("r").partition(0)
    plog.enforce_retention()
    assert engine.groups.set_offsets("g", reset="earliest", topics=["r"]) == \
        {("r", 0): plog.log_start_offset}
    assert plog.log_start_offset > 0


@pytest.mark.parametrize("kwargs", [
    {"offsets": {("t", 0): 1}}, {"reset": "earliest", "topics": ["t"]},
    {"reset": "latest"}])
def test_set_offsets_is_refused_while_the_group_has_members(eng, kwargs):
    groups = eng.groups
    groups.set_offsets("g", {("t", 0): 2})
    groups.join("g", "m1", ["u"], Waker())
    with pytest.raises(GroupNotEmpty) as info:
        groups.set_offsets("g", **kwargs)
    assert info.value.details == {"group_id": "g"}
    assert groups.committed("g") == {("t", 0): 2}
    groups.leave("g", "m1")
    groups.set_offsets("g", **kwargs)  # allowed once the members are gone


def test_set_offsets_survive_a_restart(eng, clock):
    eng.groups.set_offsets("g", reset="latest", topics=["t", "u"])
    engine = reopen(eng, clock)
    try:
        assert engine.groups.committed("g") == {("t", 0): 5, ("t", 1): 0, ("t", 2): 2,
                                                ("u", 0): 4}
    finally:
        engine.close()


# -- delete -----------------------------------------------------------------------------------


def test_delete_is_refused_while_the_group_has_members(eng):
    groups = eng.groups
    groups.join("g", "m1", ["t"], Waker())
    groups.commit("g", "m1", {("t", 0): 3})
    with pytest.raises(GroupNotEmpty):
        groups.delete("g")
    assert groups.committed("g") == {("t", 0): 3}
    assert groups.describe("g")["state"] == "Stable"
    assert groups.assignment("g", "m1")[1] == {"t": [0, 1, 2]}


def test_delete_unknown_group_is_group_not_found(eng):
    with pytest.raises(GroupNotFound) as info:
        eng.groups.delete("never")
    assert info.value.details == {"group_id": "never"}


def test_delete_removes_the_group_and_its_offsets_durably(eng, clock):
    groups = eng.groups
    groups.join("g", "m1", ["t"], Waker())
    groups.commit("g", "m1", {("t", 0): 3})
    groups.set_offsets("keep", {("t", 0): 1})
    groups.leave("g", "m1")
    groups.delete("g")
    assert [g["group_id"] for g in groups.list_groups()] == ["keep"]
    assert groups.committed("g") == {}
    with pytest.raises(GroupNotFound):
        groups.describe("g")
    with pytest.raises(GroupNotFound):
        groups.delete("g")
    engine = reopen(eng, clock)
    try:
        assert [g["group_id"] for g in engine.groups.list_groups()] == ["keep"]
        assert engine.groups.committed("g") == {}
        assert engine.groups.committed("keep") == {("t", 0): 1}
    finally:
        engine.close()


def test_delete_a_group_with_only_offsets(eng):
    eng.groups.set_offsets("g", {("t", 0): 1})
    eng.groups.delete("g")
    assert eng.groups.list_groups() == []


def test_a_deleted_group_can_be_joined_again_from_scratch(eng):
    groups = eng.groups
    groups.join("g", "m1", ["t"], Waker())
    groups.commit("g", "m1", {("t", 0): 3})
    groups.leave("g", "m1")
    groups.delete("g")
    generation, assignment = groups.join("g", "m1", ["t"], Waker())
    assert assignment == {"t": [0, 1, 2]}
    assert groups.committed("g") == {}
    assert groups.describe("g")["offsets"][0]["committed_offset"] is None


# -- topic deletion ---------------------------------------------------------------------------


def test_deleting_a_topic_removes_its_offsets_and_rebalances_its_readers(eng, clock):
    groups = eng.groups
    reader, other = Waker(), Waker()
    groups.join("g", "m1", ["t", "u"], reader)
    groups.join("h", "m2", ["u"], other)
    groups.commit("g", "m1", {("t", 0): 5, ("u", 0): 2})
    groups.set_offsets("only-t", {("t", 2): 1})
    woken, generation = reader.calls, groups.assignment("g", "m1")[0]

    eng.delete_topic("t")
    assert groups.committed("g") == {("u", 0): 2}
    assert groups.committed("only-t") == {}
    assert "only-t" not in [g["group_id"] for g in groups.list_groups()]
    assert groups.assignment("g", "m1") == (generation + 1, {"u": [0]})
    assert reader.calls == woken + 1, "the reader is told about the rebalance"
    assert groups.assignment("h", "m2")[0] == 1 and other.calls == 1, "h reads no t"
    assert [r["topic"] for r in groups.describe("g")["offsets"]] == ["u"]
    with pytest.raises(TopicNotFound):
        groups.commit("g", "m1", {("t", 0): 0})

    eng.create_topic("t", 2)  # re-created: fresh offsets, and the reader gets it back
    assert groups.assignment("g", "m1") == (generation + 2, {"t": [0, 1], "u": [0]})
    assert reader.calls == woken + 2
    assert groups.committed("g") == {("u", 0): 2}
    rows = groups.describe("g")["offsets"]
    assert [(r["topic"], r["partition"], r["committed_offset"]) for r in rows] == \
        [("t", 0, None), ("t", 1, None), ("u", 0, 2)]

    engine = reopen(eng, clock)
    try:
        assert engine.groups.committed("g") == {("u", 0): 2}
        assert engine.groups.committed("only-t") == {}
    finally:
        engine.close()


def test_deleting_a_topic_leaves_other_groups_partitions_alone(eng):
    groups = eng.groups
    groups.join("g", "a", ["t"], Waker())
    groups.join("g", "b", ["u"], Waker())
    eng.delete_topic("t")
    assert groups.assignment("g", "a")[1] == {}
    assert groups.assignment("g", "b")[1] == {"u": [0]}
    groups.commit("g", "b", {("u", 0): 4})
    assert groups.committed("g") == {("u", 0): 4}


def test_a_commit_racing_with_topic_deletion_leaves_no_offset_behind(eng):
    """Deterministic interleaving: the owner's commit has passed the offset check and
    holds the coordinator lock when another thread deletes the topic (its log is gone and
    it is about to take the lock to drop the group's offsets)."""
    groups = eng.groups
    groups.join("g", "m1", ["t"], Waker())
    deleter_at_the_lock = threading.Event()
    real_topics_changed = groups.coordinator.topics_changed
    real_check_owned = groups.coordinator.check_owned

    def topics_changed(*args, **kwargs):
        deleter_at_the_lock.set()
        return real_topics_changed(*args, **kwargs)

    deleter = threading.Thread(target=eng.delete_topic, args=("t",))

    def check_owned(*args):
        deleter.start()  # the topic is deleted while this commit is in progress
        assert deleter_at_the_lock.wait(10)
        return real_check_owned(*args)

    groups.coordinator.topics_changed = topics_changed
    groups.coordinator.check_owned = check_owned
    try:
        try:
            groups.commit("g", "m1", {("t", 0): 5})
        except TopicNotFound:
            pass  # refusing the commit is fine too
    finally:
        groups.coordinator.check_owned = real_check_owned
        deleter.join(10)
    assert deleter_at_the_lock.is_set() and not deleter.is_alive()
    eng.create_topic("t", 3)
    assert groups.committed("g") == {}, \
        "the re-created topic starts with fresh offsets (here: 5 on an empty partition)"


def test_join_unknown_topic_is_topic_not_found_and_joins_nothing(eng):
    with pytest.raises(TopicNotFound):
        eng.groups.join("g", "m1", ["t", "nope"], Waker())
    assert eng.groups.assignment("g", "m1") is None
    assert eng.groups.list_groups() == []


def test_roundrobin_engine(data_dir, clock):
    engine = Engine(Config(data_dir=data_dir, default_assignor="roundrobin"),
                    now_ms=clock.now_ms)
    try:
        engine.create_topic("t0", 3)
        engine.create_topic("t1", 3)
        engine.groups.join("g", "C1", ["t0", "t1"], Waker())
        engine.groups.join("g", "C0", ["t0", "t1"], Waker())
        assert engine.groups.assignment("g", "C0")[1] == {"t0": [0, 2], "t1": [1]}
        assert engine.groups.assignment("g", "C1")[1] == {"t0": [1], "t1": [0, 2]}
        assert engine.groups.describe("g")["assignor"] == "roundrobin"
    finally:
        engine.close()
