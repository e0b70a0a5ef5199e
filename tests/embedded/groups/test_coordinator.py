"""GroupCoordinator: membership, rebalances, ownership.

A hypothesis state machine drives joins (random member ids, random topic subsets),
leaves, re-joins with changed subscriptions and topic changes (partition counts going up,
down, to 0, and topics deleted outright so that ``partitions_of`` raises) over two groups,
and checks every promise of the coordinator after every step. Plain tests cover the group
state transitions, ``describe``/``group_ids`` and ``forget``.
"""
from __future__ import annotations

import pytest
from hypothesis import settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from consumer_api.embedded.groups.assignors import ASSIGNORS
from consumer_api.embedded.groups.coordinator import (
    TRANSITIONS, Group, GroupCoordinator, GroupState, IllegalTransition)
from consumer_api.errors import GroupNotEmpty, PartitionNotAssigned, TopicNotFound

GROUPS = ["g1", "g2"]
TOPICS = ["t0", "t1", "t2", "t3"]
MAX_PARTITIONS = 9
#: a few fixed ids (so that members leave and re-join) and arbitrary ones
member_ids = st.one_of(st.sampled_from(["m0", "m1", "m2", "m3", "m4"]),
                       st.text(alphabet="abcxyz0123456789-_", min_size=1, max_size=8))
topic_subsets = st.lists(st.sampled_from(TOPICS), unique=True, max_size=len(TOPICS))


class CoordinatorMachine(RuleBasedStateMachine):
    assignor = "range"

    def __init__(self):
        super().__init__()
        #: topic -> partition count; a missing topic is deleted (partitions_of raises)
        self.counts: dict[str, int] = {}
        self.coord = GroupCoordinator(self._partitions_of, self.assignor)
        #: the model: group -> {member: topics}, in join order
        self.members: dict[str, dict[str, tuple]] = {}
        self.generations: dict[str, int] = {}
        #: (group, member) -> [calls of the wake it joined with (last join)]
        self.wakes: dict[tuple, list] = {}
        #: group -> (rebalances seen) for wake bookkeeping
        self.rebalances: dict[str, int] = {}
        #: (group, member) -> rebalance count of its group when it (re-)joined
        self.joined_at: dict[tuple, int] = {}

    def _partitions_of(self, topic):
        if topic not in self.counts:
            raise TopicNotFound(f"topic {topic!r} does not exist", {"topic": topic})
        return self.counts[topic]

    def count(self, topic) -> int:
        return self.counts.get(topic, 0)

    @initialize(counts=st.fixed_dictionaries(
        {t: st.integers(0, MAX_PARTITIONS) for t in TOPICS}))
    def set_topics(self, counts):
        self.counts = dict(counts)

    # -- bookkeeping -------------------------------------------------------------------------

    def _rebalanced(self, group):
        """The model's view of a rebalance of ``group``: generation +1."""
        before = self.generations.get(group, 0)
        after = self.coord.generation(group)
        assert after == before + 1, f"{group}: generation {before} -> {after} on a rebalance"
        self.generations[group] = after
        self.rebalances[group] = self.rebalances.get(group, 0) + 1

    def _not_rebalanced(self, group):
        assert self.coord.generation(group) == self.generations.get(group, 0), \
            f"{group} rebalanced although nothing it reads changed"

    # -- rules -------------------------------------------------------------------------------

    @rule(group=st.sampled_from(GROUPS), member=member_ids, topics=topic_subsets)
    def join(self, group, member, topics):
        calls = []
        generation, assignment = self.coord.join(group, member, topics,
                                                 lambda: calls.append(1))
        self.members.setdefault(group, {})[member] = tuple(topics)
        self._rebalanced(group)
        assert generation == self.generations[group], "join returns the new generation"
        assert assignment == self.coord.assignment(group, member)[1]
        self.wakes[(group, member)] = calls
        self.joined_at[(group, member)] = self.rebalances[group] - 1

    @precondition(lambda self: any(self.members.values()))
    @rule(data=st.data())
    def rejoin_with_other_topics(self, data):
        group = data.draw(st.sampled_from([g for g in GROUPS if self.members.get(g)]))
        member = data.draw(st.sampled_from(sorted(self.members[group])))
        self.join(group, member, data.draw(topic_subsets))

    @precondition(lambda self: any(self.members.values()))
    @rule(data=st.data())
    def leave(self, data):
        group = data.draw(st.sampled_from([g for g in GROUPS if self.members.get(g)]))
        member = data.draw(st.sampled_from(sorted(self.members[group])))
        assert self.coord.leave(group, member) is True
        del self.members[group][member]
        del self.wakes[(group, member)]
        self._rebalanced(group)
        assert self.coord.assignment(group, member) is None

    @rule(group=st.sampled_from(GROUPS + ["never-joined"]), member=member_ids)
    def leave_as_a_stranger(self, group, member):
        if member in self.members.get(group, {}):
            return
        assert self.coord.leave(group, member) is False
        self._not_rebalanced(group)

    def _topic_changed(self, topic):
        readers = {g for g, ms in self.members.items() if any(topic in ts for ts in ms.values())}
        self.coord.topics_changed(topic)
        for group in GROUPS:
            if group in readers:
                self._rebalanced(group)
            else:
                self._not_rebalanced(group)

    @rule(topic=st.sampled_from(TOPICS), count=st.integers(0, MAX_PARTITIONS))
    def change_partition_count(self, topic, count):
        self.counts[topic] = count  # 0: the topic disappeared
        self._topic_changed(topic)

    @rule(topic=st.sampled_from(TOPICS))
    def delete_topic(self, topic):
        self.counts.pop(topic, None)  # partitions_of now raises TopicNotFound
        self._topic_changed(topic)

    # -- invariants --------------------------------------------------------------------------

    def _assignments(self, group):
        out = {}
        for member in self.members.get(group, {}):
            got = self.coord.assignment(group, member)
            assert got is not None, f"{member} is a member of {group}"
            assert got[0] == self.generations[group]
            out[member] = got[1]
        return out

    @invariant()
    def no_partition_has_two_owners_and_every_subscribed_partition_is_owned(self):
        for group in GROUPS:
            subs = self.members.get(group, {})
            owners = {}
            for member, assignment in self._assignments(group).items():
                for topic, ps in assignment.items():
                    assert topic in subs[member], f"{member} owns {topic} unsubscribed"
                    for p in ps:
                        assert 0 <= p < self.count(topic), f"{topic}-{p} does not exist"
                        assert (topic, p) not in owners, \
                            f"{group}: {topic}-{p} owned by {owners[(topic, p)]} and {member}"
                        owners[(topic, p)] = member
            for topic in {t for ts in subs.values() for t in ts}:
                for p in range(self.count(topic)):
                    assert (topic, p) in owners, f"{group}: {topic}-{p} has no owner"

    @invariant()
    def owner_agrees_with_assignments(self):
        for group in GROUPS + ["never-joined"]:
            assignments = self._assignments(group)
            for topic in TOPICS:
                for p in range(MAX_PARTITIONS + 1):
                    owner = self.coord.owner(group, topic, p)
                    holders = [m for m, a in assignments.items() if p in a.get(topic, [])]
                    assert holders == ([] if owner is None else [owner]), (group, topic, p)

    @invariant()
    def assignment_is_the_assignors_plan(self):
        for group in GROUPS:
            subs = self.members.get(group, {})
            plan = ASSIGNORS[self.assignor](subs, self.count)
            assert self._assignments(group) == plan

    @invariant()
    def state_is_empty_iff_no_members_else_stable(self):
        described = {g: self.coord.describe(g) for g in GROUPS}
        for group in GROUPS:
            info = described[group]
            if group not in self.members:
                assert info is None and self.coord.generation(group) == 0
                continue
            members = self.members[group]
            assert info["state"] == ("Stable" if members else "Empty")
            assert self.coord.has_members(group) == bool(members)
            assert info["generation"] == self.generations[group]
            assert [m["consumer_id"] for m in info["members"]] == list(members), \
                "members are listed in join order"
            for m in info["members"]:
                assert tuple(m["topics"]) == members[m["consumer_id"]]
        assert sorted(self.coord.group_ids()) == sorted(self.members)

    @invariant()
    def every_member_was_woken_on_every_rebalance_since_it_joined(self):
        for (group, member), calls in self.wakes.items():
            expected = self.rebalances[group] - self.joined_at[(group, member)]
            assert len(calls) == expected, \
                f"{member} of {group}: woken {len(calls)} times for {expected} rebalances"

    @invariant()
    def check_owned_raises_exactly_for_non_owners(self):
        for group in GROUPS:
            candidates = list(self.members.get(group, {})) + ["outsider", None]
            for topic in TOPICS:
                for p in range(self.count(topic) + 1):
                    owner = self.coord.owner(group, topic, p)
                    for member in candidates:
                        if member == owner:
                            self.coord.check_owned(group, member, [(topic, p)])
                        else:
                            with pytest.raises(PartitionNotAssigned) as info:
                                self.coord.check_owned(group, member, [(topic, p)])
                            assert info.value.details == {"topic": topic, "partition": p}
            for member in self.members.get(group, {}):
                mine = [(t, p) for t, ps in self.coord.assignment(group, member)[1].items()
                        for p in ps]
                self.coord.check_owned(group, member, mine)  # all at once
                if mine:
                    stranger = next(((t, p) for t in TOPICS for p in range(MAX_PARTITIONS)
                                     if self.coord.owner(group, t, p) != member), None)
                    if stranger:
                        with pytest.raises(PartitionNotAssigned):
                            self.coord.check_owned(group, member, mine + [stranger])


class RoundRobinCoordinatorMachine(CoordinatorMachine):
    assignor = "roundrobin"


TestRangeCoordinator = CoordinatorMachine.TestCase
TestRangeCoordinator.settings = settings(max_examples=60, stateful_step_count=30,
                                         deadline=None)
TestRoundRobinCoordinator = RoundRobinCoordinatorMachine.TestCase
TestRoundRobinCoordinator.settings = settings(max_examples=60, stateful_step_count=30,
                                              deadline=None)


# -- plain tests ------------------------------------------------------------------------------


def never_woken():
    pass


@pytest.fixture
def coord():
    counts = {"t": 4, "u": 2}
    return GroupCoordinator(lambda topic: counts[topic])


@pytest.mark.parametrize("old,new", [
    (GroupState.EMPTY, GroupState.STABLE), (GroupState.EMPTY, GroupState.DEAD),
    (GroupState.STABLE, GroupState.STABLE), (GroupState.STABLE, GroupState.EMPTY)])
def test_legal_transitions(old, new):
    group = Group("g", "range")
    group.state = old
    group.transition(new)
    assert group.state is new


@pytest.mark.parametrize("old,new", [
    (GroupState.EMPTY, GroupState.EMPTY), (GroupState.STABLE, GroupState.DEAD),
    (GroupState.DEAD, GroupState.EMPTY), (GroupState.DEAD, GroupState.STABLE),
    (GroupState.DEAD, GroupState.DEAD)])
def test_illegal_transitions_raise_and_change_nothing(old, new):
    group = Group("g", "range")
    group.state = old
    with pytest.raises(IllegalTransition):
        group.transition(new)
    assert group.state is old


def test_transition_table_covers_every_state():
    assert set(TRANSITIONS) == set(GroupState)


def test_a_new_group_is_empty_with_generation_zero():
    group = Group("g", "roundrobin")
    assert (group.state, group.generation, group.assignor) == (GroupState.EMPTY, 0, "roundrobin")


def test_unknown_default_assignor_is_refused():
    with pytest.raises(ValueError, match="cooperative"):
        GroupCoordinator(lambda t: 1, "cooperative")


def test_group_lifecycle_empty_stable_empty(coord):
    assert coord.describe("g") is None and coord.group_ids() == []
    assert coord.join("g", "a", ["t"], never_woken) == (1, {"t": [0, 1, 2, 3]})
    assert coord.describe("g")["state"] == "Stable"
    assert coord.join("g", "b", ["t"], never_woken) == (2, {"t": [2, 3]})
    assert coord.assignment("g", "a") == (2, {"t": [0, 1]})
    assert coord.leave("g", "a") and coord.leave("g", "b")
    info = coord.describe("g")
    assert (info["state"], info["generation"], info["members"]) == ("Empty", 4, [])
    assert coord.group_ids() == ["g"], "an empty group is still known until forgotten"
    assert coord.join("g", "c", ["t"], never_woken) == (5, {"t": [0, 1, 2, 3]})


def test_describe_lists_members_in_join_order_with_topics_and_assignment(coord):
    coord.join("g", "zed", ["u", "t"], never_woken)
    coord.join("g", "amy", ["t"], never_woken)
    coord.join("h", "solo", ["u"], never_woken)
    info = coord.describe("g")
    assert info == {"group_id": "g", "state": "Stable", "generation": 2, "assignor": "range",
                    "members": [
                        {"consumer_id": "zed", "topics": ["u", "t"],
                         "assignment": {"t": [2, 3], "u": [0, 1]}},
                        {"consumer_id": "amy", "topics": ["t"], "assignment": {"t": [0, 1]}}]}
    assert sorted(coord.group_ids()) == ["g", "h"]
    info["members"][0]["assignment"]["t"].append(99)  # a copy: changing it changes nothing
    assert coord.assignment("g", "zed") == (2, {"t": [2, 3], "u": [0, 1]})


def test_duplicate_topics_in_a_subscription_count_once(coord):
    assert coord.join("g", "a", ["t", "t", "u"], never_woken)[1] == {"t": [0, 1, 2, 3],
                                                                     "u": [0, 1]}
    assert coord.describe("g")["members"][0]["topics"] == ["t", "u"]


def test_forget_refuses_a_group_with_members(coord):
    coord.join("g", "a", ["t"], never_woken)
    with pytest.raises(GroupNotEmpty) as info:
        coord.forget("g")
    assert info.value.details == {"group_id": "g"}
    assert coord.describe("g")["state"] == "Stable"
    assert coord.assignment("g", "a") == (1, {"t": [0, 1, 2, 3]})
    assert coord.owner("g", "t", 0) == "a"


def test_forget_removes_an_empty_group(coord):
    coord.join("g", "a", ["t"], never_woken)
    coord.join("h", "b", ["t"], never_woken)
    coord.leave("g", "a")
    coord.forget("g")
    assert coord.describe("g") is None
    assert coord.group_ids() == ["h"]
    assert coord.generation("g") == 0
    coord.forget("g")  # forgetting an unknown group is a no-op
    coord.forget("never")
    assert coord.group_ids() == ["h"]


def test_wake_is_called_on_rebalances_and_not_for_other_groups(coord):
    woken = {"a": 0, "b": 0, "other": 0}

    def waker(name):
        def wake():
            woken[name] += 1
        return wake

    coord.join("g", "a", ["t"], waker("a"))
    coord.join("h", "other", ["t"], waker("other"))
    coord.join("g", "b", ["u"], waker("b"))
    assert woken == {"a": 2, "b": 1, "other": 1}
    coord.topics_changed("u")  # only g reads u
    assert woken == {"a": 3, "b": 2, "other": 1}
    coord.leave("g", "b")
    assert woken == {"a": 4, "b": 2, "other": 1}


def test_a_topic_nobody_reads_changes_nothing(coord):
    coord.join("g", "a", ["t"], never_woken)
    coord.topics_changed("u")
    coord.topics_changed("never-heard-of")
    assert coord.generation("g") == 1


def test_deleted_topic_loses_its_partitions_and_regains_them_when_recreated():
    counts = {"t": 3, "u": 1}

    def partitions_of(topic):
        if topic not in counts:
            raise TopicNotFound("gone")
        return counts[topic]

    coord = GroupCoordinator(partitions_of)
    coord.join("g", "a", ["t", "u"], never_woken)
    del counts["t"]
    coord.topics_changed("t")
    assert coord.assignment("g", "a") == (2, {"u": [0]})
    assert coord.owner("g", "t", 0) is None
    with pytest.raises(PartitionNotAssigned):
        coord.check_owned("g", "a", [("t", 0)])
    coord.check_owned("g", None, [("t", 0)])  # nobody owns it any more
    counts["t"] = 5
    coord.topics_changed("t")
    assert coord.assignment("g", "a") == (3, {"t": [0, 1, 2, 3, 4], "u": [0]})


def test_check_owned_message_mentions_a_rebalance_when_another_member_owns_it(coord):
    coord.join("g", "a", ["t"], never_woken)
    coord.join("g", "b", ["t"], never_woken)  # b takes t-2, t-3
    with pytest.raises(PartitionNotAssigned, match="rebalance") as info:
        coord.check_owned("g", "a", [("t", 3)])
    assert info.value.details == {"topic": "t", "partition": 3}
    with pytest.raises(PartitionNotAssigned):
        coord.check_owned("g", None, [("t", 3)])
    coord.check_owned("g", None, [("u", 0)])
    coord.check_owned("unknown-group", None, [("t", 0)])
    with pytest.raises(PartitionNotAssigned):
        coord.check_owned("unknown-group", "a", [("t", 0)])


def test_rebalance_counter_counts_every_rebalance(coord):
    coord.join("g", "a", ["t"], never_woken)
    coord.join("h", "b", ["t"], never_woken)
    coord.topics_changed("t")
    coord.leave("g", "a")
    coord.leave("g", "a")  # not a member any more: no rebalance
    assert coord.rebalances == 5


def test_the_assignors_are_the_ones_the_configuration_accepts():
    from consumer_api.config import KEYWORDS
    from consumer_api.embedded.groups.assignors import ASSIGNORS
    assert set(ASSIGNORS) == set(KEYWORDS["default_assignor"])
