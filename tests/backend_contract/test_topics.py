"""Topic lifecycle through the seam: create, list, describe, count, offsets, delete."""
from __future__ import annotations

import pytest

from consumer_api.errors import InvalidRequest, PartitionNotFound, TopicExists, TopicNotFound

NEEDS = "topics"


def test_a_created_topic_is_listed_described_and_counted(store, knows_sizes):
    made = store.create_topic("orders", 3)
    assert made["name"] == "orders" and made["partitions"] == 3
    assert [t["name"] for t in store.list_topics()] == ["orders"]
    listed = store.list_topics()[0]["partitions"]
    assert listed == [{"partition": p, "log_start_offset": 0, "high_watermark": 0}
                      for p in range(3)]
    described = store.describe_topic("orders")
    assert [p["partition"] for p in described["partitions"]] == [0, 1, 2]
    assert [p["size_bytes"] for p in described["partitions"]] == [0 if knows_sizes else None] * 3
    assert store.partition_count("orders") == 3
    assert store.log_offsets("orders", 2) == (0, 0)


def test_topics_are_listed_by_name(store):
    for name in ("b", "c", "a"):
        store.create_topic(name, 1)
    assert [t["name"] for t in store.list_topics()] == ["a", "b", "c"]


def test_creating_a_topic_twice_is_topic_exists(store):
    store.create_topic("orders", 1)
    with pytest.raises(TopicExists):
        store.create_topic("orders", 2)
    assert store.partition_count("orders") == 1


@pytest.mark.parametrize("name", ["", "..", "a/b", "__internal", "x" * 250])
def test_an_invalid_name_is_invalid_request_and_creates_nothing(store, name):
    with pytest.raises(InvalidRequest):
        store.create_topic(name, 1)
    assert store.list_topics() == []


def test_a_deleted_topic_is_gone_everywhere(store):
    store.create_topic("orders", 2)
    store.delete_topic("orders")
    assert store.list_topics() == []
    for call in (lambda: store.describe_topic("orders"), lambda: store.partition_count("orders"),
                 lambda: store.log_offsets("orders", 0), lambda: store.delete_topic("orders")):
        with pytest.raises(TopicNotFound):
            call()


def test_a_partition_past_the_count_is_partition_not_found(store):
    store.create_topic("orders", 2)
    with pytest.raises(PartitionNotFound):
        store.log_offsets("orders", 2)
