"""OffsetStore: committed offsets, durable across restarts and crashes.

In-process tests cover the round trip, durability across close + reopen, deletions,
snapshots (which files exist, which log segments go, what a reopen replays) and corrupt
snapshots. Crashes are real: a writer subprocess commits in a loop and is SIGKILLed (from
here at a random acknowledgement, or by itself at an exact point, including inside a
snapshot); the store is then reopened here and must hold every acknowledged commit.
"""
from __future__ import annotations

import glob
import json
import os
import random
import signal
import subprocess
import sys
import threading

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from consumer_api.embedded.groups.offsets import (OFFSETS_LOG, OffsetStore,
                                                 offsets_log_config)
from consumer_api.embedded.storage.partition_log import LogConfig

PROJECT_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
#: small segments (a dozen records each) so that snapshots really delete some
SMALL_SEGMENTS = LogConfig(segment_bytes=1024, retention_ms=-1, retention_bytes=-1)
EVERY = 50
GROUPS = ["g0", "g1", "g2"]


def open_store(directory, every=EVERY, log_config=SMALL_SEGMENTS):
    return OffsetStore(str(directory), log_config, now_ms=lambda: 1_700_000_000_000,
                       snapshot_every_records=every)


def snapshot_offsets(directory) -> list[int]:
    names = sorted(os.path.basename(p) for p in glob.glob(os.path.join(directory, "snapshot-*")))
    assert all(n.endswith(".json") and len(n) == len("snapshot-") + 20 + 5 for n in names), names
    return [int(n[len("snapshot-"):-5]) for n in names]


def segment_bases(directory) -> list[int]:
    return sorted(int(os.path.basename(p)[:-4])
                  for p in glob.glob(os.path.join(directory, "log", "*.log")))


def table(store) -> dict:
    """Everything the store holds, group by group (empty groups absent)."""
    out = {g: store.committed(g) for g in store.group_ids()}
    assert all(out.values()), f"a group without commits is listed: {out}"
    return out


# -- the basics -------------------------------------------------------------------------------


def test_commit_committed_get_round_trip(tmp_path):
    store = open_store(tmp_path)
    try:
        assert store.committed("g") == {} and store.get("g", "t", 0) is None
        store.commit("g", {("t", 0): 5, ("t", 1): 7})
        store.commit("g", {("t", 0): 9, ("u", 3): 0})
        store.commit("h", {("t", 0): 1})
        store.commit("h", {})  # nothing to commit: nothing changes
        assert store.committed("g") == {("t", 0): 9, ("t", 1): 7, ("u", 3): 0}
        assert store.get("g", "t", 0) == 9 and store.get("g", "u", 3) == 0
        assert store.get("g", "t", 2) is None and store.get("nobody", "t", 0) is None
        assert sorted(store.group_ids()) == ["g", "h"]
        copy = store.committed("g")
        copy[("t", 0)] = 1000
        assert store.get("g", "t", 0) == 9, "committed() returns a copy"
        store.commit("g", {("t", 0): 2})  # going back is allowed (a reset)
        assert store.get("g", "t", 0) == 2
    finally:
        store.close()


def test_commits_survive_close_and_reopen(tmp_path):
    store = open_store(tmp_path, log_config=LogConfig(retention_ms=-1, retention_bytes=-1))
    store.commit("g", {("t", 0): 5, ("t", 1): 7})
    store.commit("g", {("t", 1): 8})
    store.commit("other", {("x", 0): 42})
    store.close()
    store = open_store(tmp_path)
    try:
        assert table(store) == {"g": {("t", 0): 5, ("t", 1): 8}, "other": {("x", 0): 42}}
        store.commit("g", {("t", 0): 6})
    finally:
        store.close()
    store = open_store(tmp_path)
    try:
        assert store.get("g", "t", 0) == 6 and store.get("other", "x", 0) == 42
    finally:
        store.close()


def test_delete_group_is_durable(tmp_path):
    store = open_store(tmp_path)
    store.commit("g", {("t", 0): 5})
    store.commit("h", {("t", 0): 6})
    assert store.delete_group("g") is True
    assert store.delete_group("g") is False and store.delete_group("never") is False
    assert table(store) == {"h": {("t", 0): 6}}
    store.close()
    store = open_store(tmp_path)
    try:
        assert table(store) == {"h": {("t", 0): 6}}
        store.commit("g", {("u", 1): 1})  # a deleted group can start over
        assert store.committed("g") == {("u", 1): 1}
    finally:
        store.close()


def test_delete_topic_is_durable_and_only_touches_that_topic(tmp_path):
    store = open_store(tmp_path)
    store.commit("g", {("t", 0): 5, ("t", 1): 6, ("u", 0): 7})
    store.commit("only-t", {("t", 2): 1})
    store.commit("only-u", {("u", 0): 2})
    store.delete_topic("t")
    store.delete_topic("never-committed")
    expected = {"g": {("u", 0): 7}, "only-u": {("u", 0): 2}}
    assert table(store) == expected
    assert "only-t" not in store.group_ids()
    store.close()
    store = open_store(tmp_path)
    try:
        assert table(store) == expected
        store.commit("g", {("t", 0): 0})  # the topic re-created: fresh offsets
        assert store.committed("g") == {("t", 0): 0, ("u", 0): 7}
    finally:
        store.close()


OPS = st.lists(st.one_of(
    st.tuples(st.just("commit"), st.sampled_from(GROUPS),
              st.dictionaries(st.tuples(st.sampled_from(["t", "u", "v"]), st.integers(0, 3)),
                              st.integers(0, 2**62), max_size=4)),
    st.tuples(st.just("delete_group"), st.sampled_from(GROUPS)),
    st.tuples(st.just("delete_topic"), st.sampled_from(["t", "u", "v"])),
    st.tuples(st.just("reopen")),
    st.tuples(st.just("maybe_snapshot")),
), max_size=60)


def apply_to_model(model: dict, op) -> None:
    if op[0] == "commit":
        if op[2]:
            model.setdefault(op[1], {}).update(op[2])
    elif op[0] == "delete_group":
        model.pop(op[1], None)
    elif op[0] == "delete_topic":
        for group in list(model):
            model[group] = {k: v for k, v in model[group].items() if k[0] != op[1]}
            if not model[group]:
                del model[group]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS)
def test_random_changes_and_reopens_match_a_dict(tmp_path_factory, ops):
    directory = tmp_path_factory.mktemp("offsets")
    model: dict = {}
    store = open_store(directory, every=7)
    try:
        for op in ops:
            if op[0] == "reopen":
                store.close()
                store = open_store(directory, every=7)
            elif op[0] == "maybe_snapshot":
                store.maybe_snapshot()
            else:
                getattr(store, op[0])(*op[1:])
                apply_to_model(model, op)
            assert table(store) == model
        store.close()
        store = open_store(directory, every=7)
        assert table(store) == model
    finally:
        store.close()


# -- flush policy -----------------------------------------------------------------------------


@pytest.fixture
def offsets_log_syncs(monkeypatch):
    """Paths of the offsets log files fdatasync'd (the storage engine's durability point)."""
    calls = []
    real = os.fdatasync

    def counting(fd):
        path = os.readlink(f"/proc/self/fd/{fd}")
        if f"{os.sep}log{os.sep}" in path:
            calls.append(path)
        return real(fd)

    monkeypatch.setattr(os, "fdatasync", counting)
    return calls


def test_flush_policy_always_syncs_every_change_before_it_returns(tmp_path, offsets_log_syncs):
    store = open_store(tmp_path, log_config=LogConfig(flush_policy="always", retention_ms=-1,
                                                      retention_bytes=-1))
    try:
        for change in (lambda: store.commit("g", {("t", 0): 5}),
                       lambda: store.commit("h", {("t", 0): 1, ("u", 0): 2}),
                       lambda: store.delete_topic("u"),
                       lambda: store.delete_group("h")):
            before = len(offsets_log_syncs)
            change()
            assert len(offsets_log_syncs) == before + 1, "a change returned without a sync"
        assert store.flush_if_due(1_700_000_000_000 + 10**6) is False  # nothing left unsynced
    finally:
        store.close()


def test_flush_policy_interval_leaves_commits_to_flush_if_due(tmp_path, offsets_log_syncs):
    store = open_store(tmp_path, log_config=LogConfig(flush_interval_ms=1000, retention_ms=-1,
                                                      retention_bytes=-1))
    try:
        store.commit("g", {("t", 0): 5})
        assert offsets_log_syncs == []
        assert store.flush_if_due(1_700_000_000_000 + 1000) is True
        assert len(offsets_log_syncs) == 1
    finally:
        store.close()


def test_the_offsets_log_takes_the_topics_flush_settings():
    topics = LogConfig(segment_bytes=1 << 20, retention_ms=5, flush_policy="always",
                       flush_interval_messages=7, flush_interval_ms=9)
    config = offsets_log_config(topics)
    assert (config.flush_policy, config.flush_interval_messages, config.flush_interval_ms) \
        == ("always", 7, 9)
    assert (config.segment_bytes, config.retention_ms, config.retention_bytes) \
        == (OFFSETS_LOG.segment_bytes, -1, -1)


# -- snapshots --------------------------------------------------------------------------------


def commit_n(store, start, n, snapshot=True):
    """Commits ``start .. start+n-1`` (commit i: group ``g{i%3}``, ``(t{i%2}, i%4) -> i``),
    with ``maybe_snapshot`` after each; returns the model and the indexes after which a
    snapshot was written."""
    snapped = []
    for i in range(start, start + n):
        store.commit(GROUPS[i % 3], {(f"t{i % 2}", i % 4): i})
        if snapshot and store.maybe_snapshot():
            snapped.append(i + 1)
    return snapped


def model_of(n):
    model: dict = {}
    for i in range(n):
        model.setdefault(GROUPS[i % 3], {})[(f"t{i % 2}", i % 4)] = i
    return model


def test_maybe_snapshot_writes_every_n_records_and_keeps_the_newest_two(tmp_path):
    store = open_store(tmp_path)
    try:
        assert store.maybe_snapshot() is False, "nothing to snapshot yet"
        assert commit_n(store, 0, 49) == []
        assert snapshot_offsets(tmp_path) == []
        assert commit_n(store, 49, 1) == [50]
        assert snapshot_offsets(tmp_path) == [50]
        assert store.maybe_snapshot() is False
        assert commit_n(store, 50, 120) == [100, 150]
        assert snapshot_offsets(tmp_path) == [100, 150]
        with open(os.path.join(tmp_path, f"snapshot-{150:020d}.json"), encoding="utf-8") as f:
            data = json.load(f)
        assert data["log_offset"] == 150
        assert {g: {(t, p): o for t, p, o in rows} for g, rows in data["groups"].items()} \
            == model_of(150)
        assert not glob.glob(os.path.join(tmp_path, "*.tmp")), "no temporary file left"
    finally:
        store.close()


def test_snapshots_delete_log_segments_below_the_older_kept_snapshot(tmp_path):
    store = open_store(tmp_path)
    try:
        commit_n(store, 0, 1000)
        older, newer = snapshot_offsets(tmp_path)
        assert (older, newer) == (950, 1000)
        bases = segment_bases(tmp_path)
        assert bases[0] <= older, "the log still holds everything after the older snapshot"
        assert len(bases) == 1 or bases[1] > older, \
            f"a segment wholly below the older snapshot ({older}) was kept: {bases}"
        assert len(bases) <= 12, f"disk use is not bounded by the snapshot interval: {bases}"
        for base in bases:  # each segment's files, and no orphans
            for ext in (".log", ".index", ".timeindex"):
                assert os.path.exists(os.path.join(tmp_path, "log", f"{base:020d}{ext}"))
        assert len(os.listdir(os.path.join(tmp_path, "log"))) == 3 * len(bases)
    finally:
        store.close()
    store = open_store(tmp_path)
    try:
        assert table(store) == model_of(1000)
    finally:
        store.close()


def test_close_snapshots_so_that_reopen_replays_nothing(tmp_path):
    store = open_store(tmp_path)
    commit_n(store, 0, 130)
    store.close()
    assert snapshot_offsets(tmp_path) == [100, 130]
    store = open_store(tmp_path)
    try:
        assert store.replayed_records == 0
        assert table(store) == model_of(130)
    finally:
        store.close()


@pytest.mark.parametrize("damage", ["garbage", "empty", "truncated", "missing-key"])
def test_a_corrupt_newest_snapshot_falls_back_to_the_older_one_losing_nothing(tmp_path, damage):
    store = open_store(tmp_path)
    commit_n(store, 0, 130)
    store.close()  # snapshots at 100 and 130
    newest = os.path.join(tmp_path, f"snapshot-{130:020d}.json")
    with open(newest, "rb") as f:
        good = f.read()
    bad = {"garbage": b"\x00\xffnot json at all", "empty": b"",
           "truncated": good[:len(good) // 2],
           "missing-key": json.dumps({"groups": {}}).encode()}[damage]
    with open(newest, "wb") as f:
        f.write(bad)
    store = open_store(tmp_path)
    try:
        assert table(store) == model_of(130)
        assert store.replayed_records == 30, "replays the records after the older snapshot"
        commit_n(store, 130, 5, snapshot=False)
    finally:
        store.close()
    store = open_store(tmp_path)
    try:
        assert table(store) == model_of(135)
    finally:
        store.close()


def test_a_corrupt_first_snapshot_loses_nothing(tmp_path):
    store = open_store(tmp_path)
    store.commit("g", {("t", 0): 5})
    store.commit("g", {("t", 1): 6})
    store.close()  # the first snapshot
    (only,) = glob.glob(os.path.join(tmp_path, "snapshot-*.json"))
    with open(only, "wb") as f:
        f.write(b"{garbage")
    store = open_store(tmp_path)
    try:
        assert store.committed("g") == {("t", 0): 5, ("t", 1): 6}
    finally:
        store.close()


# -- crashes (a writer process, SIGKILLed) ----------------------------------------------------

#: the ops of the writer, a pure function of the op number (both sides exec this)
OPS_SRC = '''
def op(i):
    if i % 29 == 28:
        return ("delete_group", "g%d" % ((i // 29) % 3))
    if i % 41 == 40:
        return ("delete_topic", "t%d" % ((i // 41) % 3))
    return ("commit", "g%d" % (i % 3),
            {("t%d" % ((i // 3) % 3), i % 5): i, ("t%d" % ((i + 1) % 3), (i * 7) % 5): i + 1})
'''
_ns: dict = {}
exec(OPS_SRC, _ns)
op = _ns["op"]

WRITER = OPS_SRC + '''
import os, signal, sys
sys.path.insert(0, sys.argv[1])
from consumer_api.embedded.groups import offsets as offsets_module
from consumer_api.embedded.groups.offsets import (OFFSETS_LOG, OffsetStore,
                                                 offsets_log_config)
from consumer_api.embedded.storage.partition_log import LogConfig, PartitionLog

directory, start, stop_after, fault = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
out = sys.stdout

def die(what):
    out.write("fault %s\\n" % what)
    out.flush()
    os.kill(os.getpid(), signal.SIGKILL)

snapshots = [0]
if fault != "none":
    # fault = "<point>:<n>": SIGKILL at <point> of the n-th snapshot of this run
    point, nth = fault.split(":")
    nth = int(nth)
    real_replace, real_delete = os.replace, PartitionLog.delete_segments_before
    real_snapshot = OffsetStore.snapshot

    def counting_snapshot(self):
        snapshots[0] += 1
        if point == "snapshot-start" and snapshots[0] == nth:
            die(fault)
        return real_snapshot(self)

    def replace(src, dst):
        if snapshots[0] == nth and point == "before-rename":
            die(fault)
        real_replace(src, dst)
        if snapshots[0] == nth and point == "after-rename":
            die(fault)

    def delete_segments_before(self, offset):
        if snapshots[0] == nth and point == "before-segment-delete":
            die(fault)
        n = real_delete(self, offset)
        if snapshots[0] == nth and point == "after-segment-delete":
            die(fault)
        return n

    OffsetStore.snapshot = counting_snapshot
    offsets_module.os.replace = replace
    PartitionLog.delete_segments_before = delete_segments_before

store = OffsetStore(directory, LogConfig(segment_bytes=1024, retention_ms=-1,
                                         retention_bytes=-1),
                    now_ms=lambda: 1_700_000_000_000, snapshot_every_records=EVERY_VALUE)
out.write("open %d\\n" % store.replayed_records)
out.flush()
i = start
while True:
    kind, *args = op(i)
    getattr(store, kind)(*args)
    out.write("ack %d\\n" % i)
    out.flush()
    i += 1
    store.maybe_snapshot()
    if i - start == stop_after:
        die("stop")
'''.replace("EVERY_VALUE", str(EVERY))


def run_writer(directory, start, stop_after=0, fault="none", kill_after=None):
    """Run the writer from op ``start``; it dies by itself (``stop_after`` ops, or
    ``fault``), or is SIGKILLed from here after ``kill_after`` acknowledgements.
    Returns ``(replayed_records_at_open, [acknowledged op numbers], fault_line)``."""
    proc = subprocess.Popen([sys.executable, "-c", WRITER, PROJECT_ROOT, str(directory),
                             str(start), str(stop_after), fault],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    watchdog = threading.Timer(20, proc.kill)
    watchdog.start()
    acks, tail = [], None
    try:
        first = proc.stdout.readline().split()
        assert first and first[0] == b"open", proc.stderr.read().decode()
        if kill_after is not None:
            while len(acks) < kill_after:
                words = proc.stdout.readline().split()
                assert words and words[0] == b"ack", proc.stderr.read().decode()
                acks.append(int(words[1]))
            os.kill(proc.pid, signal.SIGKILL)
        for line in proc.stdout.read().splitlines():
            words = line.split()
            if words[0] == b"fault":
                tail = words[1].decode()
            else:
                assert tail is None, f"acknowledgement after the fault: {line!r}"
                acks.append(int(words[1]))
        err = proc.stderr.read().decode()
        assert proc.wait() == -signal.SIGKILL, err
    finally:
        watchdog.cancel()
        proc.stdout.close()
        proc.stderr.close()
    assert acks == list(range(start, start + len(acks)))
    return int(first[1]), acks, tail


def model_after(n_ops: int) -> dict:
    model: dict = {}
    for i in range(n_ops):
        apply_to_model(model, op(i))
    return model


def records_after(n_ops: int) -> int:
    """How many records the first ``n_ops`` ops appended to the internal log: a deletion
    that finds nothing to delete appends nothing."""
    model: dict = {}
    count = 0
    for i in range(n_ops):
        kind, arg, *_ = op(i)
        if kind == "commit" or (kind == "delete_group" and arg in model) or (
                kind == "delete_topic" and any(t == arg for g in model.values() for t, _ in g)):
            count += 1
        apply_to_model(model, op(i))
    return count


def test_a_crash_loses_no_commit_and_reopen_replays_only_after_the_snapshot(tmp_path):
    replayed, acks, tail = run_writer(tmp_path, 0, stop_after=137)
    assert (replayed, len(acks), tail) == (0, 137, "stop")
    snaps = snapshot_offsets(tmp_path)
    assert len(snaps) == 2, snaps
    store = open_store(tmp_path)
    try:
        assert table(store) == model_after(137)
        assert store.replayed_records == records_after(137) - snaps[-1], \
            "a reopen replays exactly the records after the newest snapshot"
        assert 0 < store.replayed_records < EVERY
    finally:
        store.close()


def test_sigkill_at_random_points_never_loses_an_acknowledged_commit(tmp_path):
    rng = random.Random(20240501)
    done = 0  # ops known to be in the store
    for _round in range(4):
        replayed, acks, _ = run_writer(tmp_path, done, kill_after=rng.randint(1, 400))
        assert replayed < EVERY, "reopening replays at most one snapshot interval"
        done += len(acks)
        store = open_store(tmp_path)
        try:
            got = table(store)
        finally:
            store.close()
        # the op in flight when the writer died may or may not have made it
        if got != model_after(done):
            assert got == model_after(done + 1), f"round {_round}: acknowledged commits lost"
            done += 1


@pytest.mark.parametrize("fault", [
    "snapshot-start:2", "before-rename:1", "after-rename:1", "before-rename:3",
    "after-rename:3", "before-segment-delete:3", "after-segment-delete:3"])
def test_sigkill_inside_a_snapshot_loses_nothing(tmp_path, fault):
    _, acks, tail = run_writer(tmp_path, 0, stop_after=80)  # a first snapshot (at 50)
    _, more, tail = run_writer(tmp_path, len(acks), fault=fault)
    assert tail == fault, "the fault fired"
    done = len(acks) + len(more)
    store = open_store(tmp_path)
    try:
        assert table(store) == model_after(done)
        store.commit("g0", {("t9", 0): 1})
    finally:
        store.close()
    store = open_store(tmp_path)
    try:
        expected = model_after(done)
        expected.setdefault("g0", {})[("t9", 0)] = 1
        assert table(store) == expected
    finally:
        store.close()
