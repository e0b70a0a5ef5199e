"""Group offsets administered through the seam, with no member in the group: set, reset,
read back, delete, and what ``stats()`` shows of them."""
from __future__ import annotations

import pytest

from consumer_api.errors import (GroupNotFound, InvalidRequest, OffsetOutOfRange,
                                 TopicNotFound)
from consumer_api.records import NewRecord

NEEDS = "admin"


def test_offsets_of_an_empty_group_are_set_reset_and_listed(store):
    store.create_topic("t", 2)
    store.produce("t", [NewRecord(None, b"x")] * 3, [1] * 3)
    assert store.set_offsets("g", {("t", 1): 1}) == {("t", 1): 1}
    assert store.committed("g") == {("t", 1): 1}
    assert store.set_offsets("g", reset="latest") == {("t", 0): 0, ("t", 1): 3}
    assert store.set_offsets("g", reset="earliest", topics=["t"]) == {("t", 0): 0, ("t", 1): 0}
    assert store.committed("g") == {("t", 0): 0, ("t", 1): 0}
    listed = {g["group_id"]: g for g in store.list_groups()}
    assert listed["g"]["members"] == [] and listed["g"]["state"] == "Empty"
    rows = {(r["topic"], r["partition"]): r for r in store.describe_group("g")["offsets"]}
    assert rows[("t", 1)]["committed_offset"] == 0 and rows[("t", 1)]["lag"] == 3


def test_an_unknown_group_is_group_not_found(store):
    with pytest.raises(GroupNotFound):
        store.describe_group("nope")
    with pytest.raises(GroupNotFound):
        store.delete_group("nope")
    assert store.committed("nope") == {}


def test_bad_offsets_commit_nothing(store):
    store.create_topic("t", 1)
    with pytest.raises(OffsetOutOfRange):
        store.set_offsets("g", {("t", 0): 1})
    with pytest.raises(TopicNotFound):
        store.set_offsets("g", {("nope", 0): 0})
    with pytest.raises(InvalidRequest):
        store.set_offsets("g", reset="latest")  # nothing committed: which topics?
    assert store.committed("g") == {}


def test_a_deleted_group_forgets_its_offsets(store):
    store.create_topic("t", 1)
    store.set_offsets("g", {("t", 0): 0})
    store.delete_group("g")
    assert store.committed("g") == {}
    assert store.list_groups() == []


def test_stats_show_the_groups_commits(store):
    store.create_topic("t", 2)
    store.produce("t", [NewRecord(None, b"abc")] * 3, [1] * 3)
    store.set_offsets("g", {("t", 1): 2})
    assert store.stats().committed == {"g": {("t", 1): 2}}
