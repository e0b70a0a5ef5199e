"""Topics over HTTP: create, list, describe, delete (API.md, "Topics and records")."""
from __future__ import annotations

import errno
import json
import os

import pytest

from tests.api.conftest import assert_error, b64

pytestmark = pytest.mark.usefixtures("openapi_built_once")
ON_STORES = ("embedded", "kafka")

MiB = 1 << 20


def snapshot(root) -> set:
    """Every path under ``root`` (relative), directories included."""
    out = set()
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            out.add(os.path.relpath(os.path.join(dirpath, name), root))
    return out


# -- create ------------------------------------------------------------------------------

#: a new topic's settings on Kafka are the cluster's defaults (Apache Kafka's own here)
KAFKA_DEFAULTS = {"retention_ms": 604_800_000, "retention_bytes": -1, "segment_bytes": 1 << 30}


def test_create_returns_201_with_the_store_defaults_filled_in(api, config, store_name):
    resp = api.create_topic("orders", 3)
    assert resp.status_code == 201
    assert resp.mimetype == "application/json"
    defaults = KAFKA_DEFAULTS if store_name == "kafka" else {
        "retention_ms": config.retention_ms, "retention_bytes": config.retention_bytes,
        "segment_bytes": config.segment_bytes}
    assert resp.get_json() == {"name": "orders", "partitions": 3, "config": defaults}


def test_create_with_partial_config_keeps_the_given_values_and_defaults_the_rest(api, config):
    resp = api.create_topic("orders", 2, config={"retention_ms": 86_400_000, "segment_bytes": 1 << 20})
    assert resp.status_code == 201
    expected = {"retention_ms": 86_400_000, "retention_bytes": config.retention_bytes,
                "segment_bytes": 1 << 20}
    assert resp.get_json()["config"] == expected
    assert api.describe("orders")["config"] == expected


def test_create_accepts_boundary_names_and_partition_counts(api):
    # (1024 partitions is the documented maximum, but opening 1024 logs takes seconds:
    # the upper bound is covered by 1025 being refused)
    for name, partitions in (("a" * 249, 1), ("A.b-c_9", 7), ("x", 1), ("..a", 1), ("_a", 1),
                             ("a__b", 2)):
        resp = api.create_topic(name, partitions)
        assert resp.status_code == 201, (name, resp.get_json())
        assert resp.get_json()["name"] == name
        assert resp.get_json()["partitions"] == partitions
    assert len(api.describe("A.b-c_9")["partitions"]) == 7


def test_create_twice_is_409_topic_exists_and_keeps_the_first(api):
    assert api.create_topic("orders", 3).status_code == 201
    details = assert_error(api.create_topic("orders", 5), 409, "topic_exists")
    assert details == {"topic": "orders"}
    assert len(api.describe("orders")["partitions"]) == 3


HOSTILE_NAMES = ["../x", "a/b", "__offsets", "a" * 250, "", ".", "..", "../../etc", "/abs",
                 "a\\b", "a b", "tópico", "x\x00y", "ok\n"]


def test_hostile_names_are_400_naming_name_and_touch_no_file(api, tmp_path):
    before = snapshot(tmp_path)
    for name in HOSTILE_NAMES:
        details = assert_error(api.create_topic(name, 1), 400, "invalid_request")
        assert list(details) == ["name"], name
        assert details["name"] and all(isinstance(m, str) for m in details["name"]), name
        assert snapshot(tmp_path) == before, name  # nothing inside nor outside the data dir
    assert api.client.get("/api/topics").get_json() == {"topics": []}


def test_name_that_is_not_a_string_is_400_naming_name(api):
    for name in (5, None, ["a"], {"a": 1}, True):
        details = assert_error(api.create_topic(name, 1), 400, "invalid_request")
        assert "name" in details, name


def test_bad_partition_counts_are_400_naming_partitions(api, data_dir, store_name):
    for partitions in (0, 1025, -1, "3", True, False, 1.5, 3.0, None, [3], 2**64):
        body = json.dumps({"name": "orders", "partitions": partitions})  # stdlib: 2**64 too
        details = assert_error(api.post_text("/api/topics", body), 400, "invalid_request")
        assert list(details) == ["partitions"], partitions
    assert api.client.get("/api/topics").get_json() == {"topics": []}
    if store_name == "embedded":
        assert os.listdir(os.path.join(data_dir, "topics")) == []


def test_missing_fields_are_400_naming_each(api):
    resp = api.client.post("/api/topics", json={})
    details = assert_error(resp, 400, "invalid_request")
    assert set(details) == {"name", "partitions"}


BAD_CONFIGS = [
    ({"retention_ms": -2}, "retention_ms"),
    ({"retention_ms": "1000"}, "retention_ms"),
    ({"retention_ms": True}, "retention_ms"),
    ({"retention_ms": 1.5}, "retention_ms"),
    ({"retention_bytes": -5}, "retention_bytes"),
    ({"retention_bytes": None}, "retention_bytes"),
    ({"segment_bytes": 1023}, "segment_bytes"),
    ({"segment_bytes": (1 << 30) + 1}, "segment_bytes"),
    ({"segment_bytes": 0}, "segment_bytes"),
    ({"colour": "red"}, "colour"),
]


def test_bad_config_values_are_400_naming_the_setting(api, data_dir, store_name):
    for topic_config, field in BAD_CONFIGS:
        details = assert_error(api.create_topic("orders", 1, config=topic_config),
                               400, "invalid_request")
        assert list(details) == ["config"], topic_config
        assert list(details["config"]) == [field], topic_config
    for topic_config in ("x", [], 5, None):
        details = assert_error(api.create_topic("orders", 1, config=topic_config),
                               400, "invalid_request")
        assert list(details) == ["config"], topic_config
    assert api.client.get("/api/topics").get_json() == {"topics": []}
    if store_name == "embedded":
        assert os.listdir(os.path.join(data_dir, "topics")) == []


def test_every_bad_field_is_named_at_once(api):
    resp = api.client.post("/api/topics", json={
        "name": "../x", "partitions": 0, "config": {"segment_bytes": 1}, "replicas": 3})
    details = assert_error(resp, 400, "invalid_request")
    assert set(details) == {"name", "partitions", "config", "replicas"}
    assert "segment_bytes" in details["config"]


def test_unknown_top_level_field_is_400_naming_it(api):
    details = assert_error(api.create_topic("orders", 1, replication_factor=3), 400, "invalid_request")
    assert list(details) == ["replication_factor"]
    assert api.client.get("/api/topics/orders").status_code == 404


@pytest.mark.parametrize("step", ["metadata", "segment"])
@pytest.mark.embedded_only
def test_create_on_a_full_disk_is_507_and_leaves_no_topic_behind(api, data_dir, monkeypatch,
                                                                 step):
    """ENOSPC while writing the staged ``topic.json`` (fsync) or reserving the last
    partition's first segment (after the topic was published)."""
    real_fsync, real_fallocate = os.fsync, os.posix_fallocate
    full = {"on": True}

    def no_space_if(hit):
        if full["on"] and hit:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def fsync(fd):
        no_space_if(step == "metadata"
                    and os.readlink(f"/proc/self/fd/{fd}").endswith("topic.json.tmp"))
        return real_fsync(fd)

    def fallocate(fd, offset, length):
        no_space_if(step == "segment"
                    and "/topics/orders/2/" in os.readlink(f"/proc/self/fd/{fd}"))
        return real_fallocate(fd, offset, length)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "posix_fallocate", fallocate)
    before = snapshot(data_dir)
    assert_error(api.create_topic("orders", 3), 507, "insufficient_storage")
    assert snapshot(data_dir) == before
    assert os.listdir(os.path.join(data_dir, "staging")) == []
    assert api.client.get("/api/topics").get_json() == {"topics": []}
    assert_error(api.client.get("/api/topics/orders"), 404, "topic_not_found")
    full["on"] = False
    assert api.create_topic("orders", 3).status_code == 201
    assert api.produce("orders", [{"value": b64("a")}]).status_code == 200


# -- list and describe -------------------------------------------------------------------

def test_list_is_sorted_by_name_with_offsets_of_every_partition(api):
    for name, n in (("zeta", 1), ("alpha", 2), ("Mid", 1), ("beta", 3)):
        assert api.create_topic(name, n).status_code == 201
    resp = api.produce("alpha", [{"value": b64("x"), "partition": 1}] * 3)
    assert resp.status_code == 200
    resp = api.client.get("/api/topics")
    assert resp.status_code == 200
    topics = resp.get_json()["topics"]
    assert [t["name"] for t in topics] == sorted(["zeta", "alpha", "Mid", "beta"])
    alpha = next(t for t in topics if t["name"] == "alpha")
    assert alpha == {"name": "alpha", "partitions": [
        {"partition": 0, "log_start_offset": 0, "high_watermark": 0},
        {"partition": 1, "log_start_offset": 0, "high_watermark": 3}]}
    beta = next(t for t in topics if t["name"] == "beta")
    assert [p["partition"] for p in beta["partitions"]] == [0, 1, 2]


def test_list_is_empty_without_topics(api):
    resp = api.client.get("/api/topics")
    assert resp.status_code == 200
    assert resp.get_json() == {"topics": []}


@pytest.mark.embedded_only  # Kafka does not tell sizes (tests/backend_contract)
def test_describe_shows_config_and_size_bytes_grows_with_produce(api, config):
    api.create_topic("orders", 2, config={"retention_bytes": 10 * MiB})
    first = api.describe("orders")
    assert first["name"] == "orders"
    assert first["config"] == {"retention_ms": config.retention_ms, "retention_bytes": 10 * MiB,
                               "segment_bytes": config.segment_bytes}
    assert first["partitions"] == [
        {"partition": p, "log_start_offset": 0, "high_watermark": 0, "size_bytes": 0}
        for p in (0, 1)]
    assert api.produce("orders", [{"value": b64(b"x" * 100), "partition": 1}]).status_code == 200
    second = api.describe("orders")["partitions"]
    assert second[0]["size_bytes"] == 0
    assert second[1]["size_bytes"] > 100
    assert second[1]["high_watermark"] == 1
    assert api.produce("orders", [{"value": b64(b"y" * 100), "partition": 1}]).status_code == 200
    third = api.describe("orders")["partitions"]
    assert third[1]["size_bytes"] > second[1]["size_bytes"] + 100
    assert third[1]["high_watermark"] == 2


def test_describe_unknown_topic_is_404(api):
    details = assert_error(api.client.get("/api/topics/nope"), 404, "topic_not_found")
    assert details == {"topic": "nope"}


# -- delete ------------------------------------------------------------------------------

def test_delete_then_404_then_the_name_can_be_recreated_empty(api, data_dir, store_name):
    api.create_topic("orders", 2)
    assert api.produce("orders", [{"value": b64("a")}, {"value": b64("b")}]).status_code == 200
    assert sum(api.watermarks("orders")) == 2

    resp = api.client.delete("/api/topics/orders")
    assert resp.status_code == 200
    assert resp.get_json() == {"message": "topic deleted"}
    if store_name == "embedded":
        assert not os.path.exists(os.path.join(data_dir, "topics", "orders"))

    assert_error(api.client.get("/api/topics/orders"), 404, "topic_not_found")
    assert_error(api.client.delete("/api/topics/orders"), 404, "topic_not_found")
    assert_error(api.read("orders", 0), 404, "topic_not_found")
    assert_error(api.produce("orders", [{"value": b64("c")}]), 404, "topic_not_found")
    assert api.client.get("/api/topics").get_json() == {"topics": []}

    assert api.create_topic("orders", 3).status_code == 201
    assert api.watermarks("orders") == [0, 0, 0]
    empty = 0 if store_name == "embedded" else None  # Kafka does not tell sizes
    assert all(p["size_bytes"] == empty for p in api.describe("orders")["partitions"])
    for p in range(3):
        assert api.records("orders", p) == []


def test_delete_unknown_or_hostile_name_is_404_and_deletes_nothing(api, tmp_path):
    api.create_topic("orders", 1)
    before = snapshot(tmp_path)
    for name in ("nope", "..", ".", "__offsets", "%2e%2e", "orders..", "ORDERS"):
        assert_error(api.client.delete(f"/api/topics/{name}"), 404, "topic_not_found")
    assert_error(api.client.delete("/api/topics/..%2F..%2Fetc"), 404, "not_found")
    assert snapshot(tmp_path) == before
    assert [t["name"] for t in api.client.get("/api/topics").get_json()["topics"]] == ["orders"]
