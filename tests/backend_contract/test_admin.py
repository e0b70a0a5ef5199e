"""Group administration through the seam while groups have members: listing and describing
them, and refusing to change their offsets (see test_group_offsets.py for empty groups)."""
from __future__ import annotations

import pytest

from consumer_api.errors import GroupNotEmpty
from consumer_api.records import NewRecord
from tests.backend_contract.conftest import Wakes, joined


def test_groups_with_members_or_commits_are_listed_by_id(store):
    store.create_topic("t", 2)
    wakes = Wakes()
    joined(store.member("live", "a", wakes), ["t"], wakes)
    store.set_offsets("committed-only", {("t", 0): 0})
    listed = {g["group_id"]: g for g in store.list_groups()}
    assert list(listed) == ["committed-only", "live"]
    assert listed["live"]["members"] == ["a"] and listed["live"]["state"] == "Stable"
    assert listed["committed-only"]["members"] == [] and listed["committed-only"]["state"] == "Empty"


def test_describe_shows_members_and_lag_per_partition(store):
    store.create_topic("t", 2)
    store.produce("t", [NewRecord(None, b"x")] * 5, [0] * 5)
    wakes = Wakes()
    m = store.member("g", "a", wakes)
    joined(m, ["t"], wakes)
    m.commit({("t", 0): 2})
    info = store.describe_group("g")
    assert info["group_id"] == "g" and info["state"] == "Stable"
    assert [x["consumer_id"] for x in info["members"]] == ["a"]
    assert info["members"][0]["topics"] == ["t"]
    assert info["members"][0]["assignment"] == {"t": [0, 1]}
    rows = {(r["topic"], r["partition"]): r for r in info["offsets"]}
    assert rows[("t", 0)]["committed_offset"] == 2 and rows[("t", 0)]["lag"] == 3
    assert rows[("t", 0)]["high_watermark"] == 5
    assert rows[("t", 1)]["committed_offset"] is None and rows[("t", 1)]["lag"] is None


def test_offsets_are_set_and_reset_only_while_the_group_is_empty(store):
    store.create_topic("t", 2)
    store.produce("t", [NewRecord(None, b"x")] * 3, [1] * 3)
    assert store.set_offsets("g", {("t", 1): 1}) == {("t", 1): 1}
    assert store.set_offsets("g", reset="latest") == {("t", 0): 0, ("t", 1): 3}
    assert store.set_offsets("g", reset="earliest", topics=["t"]) == {("t", 0): 0, ("t", 1): 0}
    assert store.committed("g") == {("t", 0): 0, ("t", 1): 0}
    wakes = Wakes()
    m = store.member("g", "a", wakes)
    joined(m, ["t"], wakes)
    with pytest.raises(GroupNotEmpty):
        store.set_offsets("g", {("t", 1): 2})
    with pytest.raises(GroupNotEmpty):
        store.delete_group("g")
    m.leave()
    store.set_offsets("g", {("t", 1): 2})
    assert store.committed("g")[("t", 1)] == 2
