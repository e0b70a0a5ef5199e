"""Partition assignors (``range`` and ``roundrobin``): who in a group reads which partitions.

Property tests over random member ids, random subscriptions and partition counts, plus the
examples of Kafka's own documentation (RangeAssignor / RoundRobinAssignor javadoc).
"""
from __future__ import annotations

import random

import pytest
from hypothesis import given, settings, strategies as st

from consumer_api.embedded.groups.assignors import ASSIGNORS, range_assign, roundrobin_assign

TOPICS = ["t0", "t1", "t2", "t3", "orders", "a.b-c_d"]

member_ids = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABC0123456789-_.:", min_size=1,
                     max_size=12)
#: partition counts: 0 is a topic that no longer exists
counts = st.dictionaries(st.sampled_from(TOPICS), st.integers(0, 40), min_size=0,
                         max_size=len(TOPICS))


@st.composite
def groups(draw, identical: bool = False):
    """``(members, partition_counts)``: ``members`` an ordered dict ``id -> [topics]`` (join
    order, topics unique in random order); topics absent from the counts have 0 partitions."""
    ids = draw(st.lists(member_ids, min_size=1, max_size=12, unique=True))
    if identical:
        topics = draw(st.lists(st.sampled_from(TOPICS), unique=True, max_size=len(TOPICS)))
        members = {m: list(topics) for m in ids}
    else:
        members = {m: draw(st.lists(st.sampled_from(TOPICS), unique=True,
                                    max_size=len(TOPICS))) for m in ids}
    return members, draw(counts)


def partitions_of(partition_counts):
    return lambda topic: partition_counts.get(topic, 0)


def check_valid(members, partition_counts, plan):
    """The contract every assignor keeps."""
    assert set(plan) == set(members), "every member gets an entry, nobody else does"
    owners = {}
    for member, assignment in plan.items():
        for topic, ps in assignment.items():
            assert topic in members[member], f"{member} got {topic} it is not subscribed to"
            assert ps, f"{member} got an empty partition list for {topic}"
            assert ps == sorted(ps), "partitions are listed in order"
            for p in ps:
                assert 0 <= p < partition_counts.get(topic, 0), f"{topic}-{p} does not exist"
                assert (topic, p) not in owners, \
                    f"{topic}-{p} assigned to both {owners[(topic, p)]} and {member}"
                owners[(topic, p)] = member
    subscribed = {t for ts in members.values() for t in ts}
    for topic in subscribed:
        for p in range(partition_counts.get(topic, 0)):
            assert (topic, p) in owners, f"{topic}-{p} of a subscribed topic is unassigned"
    assert {t for t, _ in owners} <= subscribed, "an unsubscribed topic was assigned"
    return owners


def permuted(members, seed):
    """The same subscriptions in another join order and another topic order."""
    rng = random.Random(seed)
    ids = list(members)
    rng.shuffle(ids)
    out = {}
    for m in ids:
        ts = list(members[m])
        rng.shuffle(ts)
        out[m] = ts
    return out


@pytest.mark.parametrize("name", sorted(ASSIGNORS))
@settings(max_examples=200, deadline=None)
@given(group=groups(), seed=st.integers(0, 2**32))
def test_every_partition_goes_to_exactly_one_subscriber_and_is_deterministic(name, group, seed):
    members, partition_counts = group
    assign = ASSIGNORS[name]
    plan = assign(members, partitions_of(partition_counts))
    check_valid(members, partition_counts, plan)
    assert assign(members, partitions_of(partition_counts)) == plan, "same input, same plan"
    assert assign(permuted(members, seed), partitions_of(partition_counts)) == plan, \
        "the plan does not depend on join order or on the order topics were listed in"


@settings(max_examples=200, deadline=None)
@given(group=groups())
def test_range_is_balanced_per_topic_with_contiguous_ranges_in_member_id_order(group):
    members, partition_counts = group
    plan = range_assign(members, partitions_of(partition_counts))
    topics = {t for ts in members.values() for t in ts}
    for topic in topics:
        subs = sorted(m for m in members if topic in members[m])
        sizes = [len(plan[m].get(topic, [])) for m in subs]
        assert max(sizes) - min(sizes) <= 1, f"{topic}: unbalanced {dict(zip(subs, sizes))}"
        assert sizes == sorted(sizes, reverse=True), "the first members get the extra ones"
        dealt = [p for m in subs for p in plan[m].get(topic, [])]
        assert dealt == list(range(partition_counts.get(topic, 0))), \
            "contiguous ranges, in member id order"


@settings(max_examples=200, deadline=None)
@given(group=groups(identical=True))
def test_roundrobin_with_identical_subscriptions_balances_total_counts(group):
    members, partition_counts = group
    plan = roundrobin_assign(members, partitions_of(partition_counts))
    totals = [sum(len(ps) for ps in plan[m].values()) for m in members]
    assert max(totals) - min(totals) <= 1, dict(zip(members, totals))


@settings(max_examples=100, deadline=None)
@given(group=groups(identical=True))
def test_roundrobin_with_identical_subscriptions_deals_sorted_partitions_in_turn(group):
    """All partitions of all topics, sorted, dealt to the members sorted by id."""
    members, partition_counts = group
    plan = roundrobin_assign(members, partitions_of(partition_counts))
    ring = sorted(members)
    topics = sorted({t for ts in members.values() for t in ts})
    every = [(t, p) for t in topics for p in range(partition_counts.get(t, 0))]
    for i, (topic, p) in enumerate(every):
        assert p in plan[ring[i % len(ring)]].get(topic, []), (topic, p)


@pytest.mark.parametrize("name", sorted(ASSIGNORS))
def test_members_subscribed_to_nothing_that_exists_get_nothing(name):
    plan = ASSIGNORS[name]({"b": ["gone"], "a": [], "c": ["t0"]}, partitions_of({"t0": 2}))
    assert plan == {"a": {}, "b": {}, "c": {"t0": [0, 1]}}


@pytest.mark.parametrize("name", sorted(ASSIGNORS))
def test_no_members_no_plan(name):
    assert ASSIGNORS[name]({}, lambda t: 3) == {}


# -- Kafka's documented examples ------------------------------------------------------------

KAFKA_TWO_TOPICS = {"t0": 3, "t1": 3}


def test_range_kafka_documented_example():
    members = {"C0": ["t0", "t1"], "C1": ["t0", "t1"]}
    assert range_assign(members, KAFKA_TWO_TOPICS.get) == {
        "C0": {"t0": [0, 1], "t1": [0, 1]},
        "C1": {"t0": [2], "t1": [2]},
    }


def test_range_kafka_example_members_sorted_by_id_not_join_order():
    members = {"C1": ["t1", "t0"], "C0": ["t0", "t1"]}
    assert range_assign(members, KAFKA_TWO_TOPICS.get) == {
        "C0": {"t0": [0, 1], "t1": [0, 1]},
        "C1": {"t0": [2], "t1": [2]},
    }


def test_roundrobin_kafka_documented_example():
    members = {"C0": ["t0", "t1"], "C1": ["t0", "t1"]}
    assert roundrobin_assign(members, KAFKA_TWO_TOPICS.get) == {
        "C0": {"t0": [0, 2], "t1": [1]},
        "C1": {"t0": [1], "t1": [0, 2]},
    }


def test_roundrobin_kafka_documented_example_with_different_subscriptions():
    """C0 reads t0; C1 t0, t1; C2 t0, t1, t2 (1, 2 and 3 partitions) -> C0: t0p0;
    C1: t1p0; C2: t1p1, t2p0, t2p1, t2p2 (the RoundRobinAssignor javadoc)."""
    members = {"C0": ["t0"], "C1": ["t0", "t1"], "C2": ["t0", "t1", "t2"]}
    assert roundrobin_assign(members, {"t0": 1, "t1": 2, "t2": 3}.get) == {
        "C0": {"t0": [0]},
        "C1": {"t1": [0]},
        "C2": {"t1": [1], "t2": [0, 1, 2]},
    }


def test_range_gives_the_extra_partitions_to_the_first_members():
    members = {m: ["t"] for m in ("c", "a", "b")}
    assert range_assign(members, {"t": 7}.get) == {
        "a": {"t": [0, 1, 2]}, "b": {"t": [3, 4]}, "c": {"t": [5, 6]}}


def test_range_more_members_than_partitions_leaves_the_last_ones_idle():
    members = {m: ["t"] for m in ("m1", "m2", "m3")}
    assert range_assign(members, {"t": 2}.get) == {
        "m1": {"t": [0]}, "m2": {"t": [1]}, "m3": {}}


# -- sticky: only what must move moves -------------------------------------------------------

def owners_of(plan) -> dict:
    return {(t, p): m for m, assignment in plan.items() for t, ps in assignment.items()
            for p in ps}


@settings(max_examples=150, deadline=None)
@given(counts_=st.dictionaries(st.sampled_from(TOPICS), st.integers(1, 30), min_size=1,
                               max_size=3),
       steps=st.lists(st.one_of(st.tuples(st.just("join"), member_ids),
                                st.tuples(st.just("leave"), st.integers(0, 20))),
                      min_size=1, max_size=25))
def test_sticky_keeps_balance_and_moves_only_what_must_move(counts_, steps):
    topics = sorted(counts_)
    members: dict = {}
    owners: dict = {}
    for action, arg in steps:
        if action == "join":
            members.setdefault(arg, list(topics))
        elif members:
            members.pop(sorted(members)[arg % len(members)])
        plan = ASSIGNORS["sticky"](members, partitions_of(counts_), owners)
        new_owners = check_valid(members, counts_, plan)
        loads = {m: sum(len(ps) for ps in plan[m].values()) for m in members}
        if loads:
            assert max(loads.values()) - min(loads.values()) <= 1, loads
        for member in members:
            had = {tp for tp, m in owners.items() if m == member}
            has = {tp for tp, m in new_owners.items() if m == member}
            lost, gained = had - has, has - had
            assert not (lost and gained), f"{member} gave and took: {lost}, {gained}"
            if lost:  # it gave only what put it above the others, never below them
                assert loads[member] >= min(loads.values()), (member, loads)
                assert len(had) - len(lost) == loads[member]
        owners = new_owners


def test_sticky_moves_no_partition_of_the_members_that_stay():
    members = {"a": ["t"], "b": ["t"], "c": ["t"]}
    three = ASSIGNORS["sticky"](members, lambda t: 12, {})
    owners = owners_of(three)
    two = ASSIGNORS["sticky"]({"a": ["t"], "c": ["t"]}, lambda t: 12, owners)
    for member in ("a", "c"):
        assert set(three[member]["t"]) <= set(two[member]["t"])  # b's 4 were dealt out
    assert sorted(len(two[m]["t"]) for m in two) == [6, 6]
