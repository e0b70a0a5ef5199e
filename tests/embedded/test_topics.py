import errno
import json
import os

import pytest

from consumer_api.embedded.storage.partition_log import LogConfig
from consumer_api.records import NewRecord
from consumer_api.embedded.topics import TopicRegistry
from consumer_api.topic_rules import MAX_PARTITIONS
from consumer_api.errors import (InvalidRequest, PartitionNotFound, StorageFull, TopicExists,
                                 TopicNotFound)


@pytest.fixture
def registry(data_dir, clock):
    reg = TopicRegistry(data_dir, LogConfig(segment_bytes=64 * 1024), clock.now_ms)
    yield reg
    reg.close()


def reopen(reg, data_dir, clock):
    reg.close()
    return TopicRegistry(data_dir, LogConfig(segment_bytes=64 * 1024), clock.now_ms)


def tree(data_dir):
    return sorted(os.path.relpath(os.path.join(d, f), data_dir)
                  for d, _, files in os.walk(data_dir) for f in files)


@pytest.mark.parametrize("name", ["../x", "a/b", "__offsets", "x" * 250, "", ".", "..",
                                  "sp ace", "tab\t", "nul\x00", "ünï", "../../etc/passwd",
                                  "/abs", "a\\b", None, 7])
def test_hostile_names_are_rejected_before_touching_the_filesystem(registry, data_dir, name):
    before = tree(data_dir)
    with pytest.raises(InvalidRequest) as err:
        registry.create(name, 1)
    assert "name" in err.value.details
    assert tree(data_dir) == before
    assert not os.path.exists(os.path.join(os.path.dirname(data_dir), "x"))


@pytest.mark.parametrize("name", ["a", "orders.v1", "A-b_c.9", "x" * 249, "_single"])
def test_valid_names_are_accepted(registry, name):
    assert registry.create(name, 1).name == name


@pytest.mark.parametrize("partitions", [0, -1, MAX_PARTITIONS + 1, "3", 1.5, True, None])
def test_partition_count_must_be_1_to_1024(registry, partitions):
    with pytest.raises(InvalidRequest) as err:
        registry.create("t", partitions)
    assert "partitions" in err.value.details
    assert not registry.exists("t")


@pytest.mark.parametrize("config,field", [
    ({"retention_ms": -2}, "retention_ms"),
    ({"retention_bytes": -5}, "retention_bytes"),
    ({"segment_bytes": 10}, "segment_bytes"),
    ({"segment_bytes": 1 << 31}, "segment_bytes"),
    ({"colour": "red"}, "config"),
])
def test_bad_config_is_rejected_naming_the_field(registry, config, field):
    with pytest.raises(InvalidRequest) as err:
        registry.create("t", 1, config)
    assert field in err.value.details


def test_create_describe_list_delete_and_reopen(registry, data_dir, clock):
    t = registry.create("orders", 3, {"retention_ms": 1000, "segment_bytes": 4096})
    assert len(t.partitions) == 3
    assert t.config.retention_ms == 1000 and t.config.segment_bytes == 4096
    assert t.config.retention_bytes == -1  # from the defaults
    registry.create("events", 1)
    with pytest.raises(TopicExists):
        registry.create("orders", 1)
    assert [x.name for x in registry.list()] == ["events", "orders"]
    t.partition(2).append([NewRecord(b"k", b"v", {"h": "1"}, 123)])
    with pytest.raises(PartitionNotFound):
        t.partition(3)

    meta = json.load(open(os.path.join(data_dir, "topics", "orders", "topic.json")))
    assert meta["partitions"] == 3 and meta["config"]["segment_bytes"] == 4096

    registry = reopen(registry, data_dir, clock)
    t = registry.get("orders")
    assert t.config.retention_ms == 1000 and len(t.partitions) == 3
    assert t.partition(2).read(0) == [(0, 123, b"k", b"v", {"h": "1"})]

    registry.delete("orders")
    assert not os.path.exists(os.path.join(data_dir, "topics", "orders"))
    assert os.listdir(os.path.join(data_dir, "trash")) == []
    with pytest.raises(TopicNotFound):
        registry.get("orders")
    with pytest.raises(TopicNotFound):
        registry.delete("orders")
    registry = reopen(registry, data_dir, clock)
    assert [x.name for x in registry.list()] == ["events"]
    # the name is free again, with fresh (empty) partitions
    assert registry.create("orders", 1).partition(0).high_watermark == 0
    registry.close()


def test_delete_wakes_the_listeners_of_its_partitions(registry):
    t = registry.create("t", 2)
    woken = []
    for plog in t.partitions:
        plog.add_listener(lambda log: woken.append((log.directory, log.closed)))
    registry.delete("t")
    assert sorted(closed for _d, closed in woken) == [True, True]
    assert len({d for d, _c in woken}) == 2


def test_half_created_and_half_deleted_topics_vanish_on_restart(registry, data_dir, clock):
    registry.create("kept", 1)
    os.makedirs(os.path.join(data_dir, "staging", "abc", "0"))
    os.makedirs(os.path.join(data_dir, "trash", "def", "0"))
    os.makedirs(os.path.join(data_dir, "topics", "no-meta", "0"))
    registry = reopen(registry, data_dir, clock)
    assert [x.name for x in registry.list()] == ["kept"]
    assert os.listdir(os.path.join(data_dir, "staging")) == []
    assert os.listdir(os.path.join(data_dir, "trash")) == []
    registry.close()


# -- a full disk ----------------------------------------------------------------------------


class CreateFault:
    """Makes one step of creating topic ``t`` fail with ``err`` while ``on``: ``mkdir`` of
    its partition directory ``2``, the fsync of its staged ``topic.json``, or the
    reservation of partition ``0``'s or ``2``'s first segment (after it is published)."""

    def __init__(self, monkeypatch, where, err=errno.ENOSPC):
        self.on, self.where, self.err, self.failures = True, where, err, 0
        real_mkdir, real_fsync, real_fallocate = os.mkdir, os.fsync, os.posix_fallocate

        def fail_if(hit):
            if self.on and hit:
                self.failures += 1
                raise OSError(self.err, os.strerror(self.err))

        def fd_path(fd):
            return os.readlink(f"/proc/self/fd/{fd}")

        def mkdir(path, *args, **kwargs):
            fail_if(where == "mkdir" and os.path.basename(path) == "2")
            return real_mkdir(path, *args, **kwargs)

        def fsync(fd):
            fail_if(where == "metadata" and fd_path(fd).endswith("topic.json.tmp"))
            return real_fsync(fd)

        def fallocate(fd, offset, length):
            part = where.partition("segment-")[2]
            fail_if(part != "" and f"/topics/t/{part}/" in fd_path(fd))
            return real_fallocate(fd, offset, length)

        monkeypatch.setattr(os, "mkdir", mkdir)
        monkeypatch.setattr(os, "fsync", fsync)
        monkeypatch.setattr(os, "posix_fallocate", fallocate)


def every_path(data_dir):
    return sorted(os.path.relpath(os.path.join(d, n), data_dir)
                  for d, dirs, files in os.walk(data_dir) for n in dirs + files)


@pytest.mark.parametrize("where", ["mkdir", "metadata", "segment-0", "segment-2"])
def test_create_on_a_full_disk_is_storage_full_and_leaves_nothing(registry, data_dir, clock,
                                                                    monkeypatch, where):
    registry.create("kept", 1)
    before = every_path(data_dir)
    fault = CreateFault(monkeypatch, where)
    with pytest.raises(StorageFull) as err:
        registry.create("t", 3)
    assert err.value.code == "insufficient_storage"
    assert fault.failures > 0
    assert every_path(data_dir) == before  # no staging directory, no half-published topic
    assert [t.name for t in registry.list()] == ["kept"] and not registry.exists("t")
    fault.on = False
    topic = registry.create("t", 3)
    assert topic.partition(2).append([NewRecord(None, b"v")]) == 0
    registry = reopen(registry, data_dir, clock)
    assert [t.name for t in registry.list()] == ["kept", "t"]
    registry.close()


def test_create_failing_with_another_io_error_raises_it_and_leaves_nothing(registry, data_dir,
                                                                             monkeypatch):
    before = every_path(data_dir)
    CreateFault(monkeypatch, "metadata", errno.EIO)
    with pytest.raises(OSError) as err:
        registry.create("t", 3)
    assert not isinstance(err.value, StorageFull) and err.value.errno == errno.EIO
    assert every_path(data_dir) == before
    assert registry.list() == []
