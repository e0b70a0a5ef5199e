"""A cluster that does not answer: every admin and group call gives the store's
Unavailable (503 on the wire) once its timeout has passed, never an unexpected error (500).

The admin client's requests are stubbed with futures that never complete; no broker is
involved."""
from __future__ import annotations

from concurrent.futures import Future

import pytest

from consumer_api.errors import Unavailable
from consumer_api.kafka.admin import KafkaAdmin
from consumer_api.kafka.groups import KafkaGroups


class Pending(dict):
    """A request's futures, by whatever key the caller looks up: none ever completes."""

    def __missing__(self, key):
        return self.setdefault(key, Future())


class Silent:
    """An AdminClient whose every request is answered by futures that never complete."""

    def __getattr__(self, name):
        def request(what=None, **_kwargs):
            if name == "list_consumer_groups":
                return Future()
            if name == "list_offsets":
                return Pending((key, Future()) for key in what)
            return Pending()
        return request


@pytest.fixture
def admin():
    admin = KafkaAdmin({"bootstrap.servers": "127.0.0.1:9"}, timeout_s=0.05)
    admin._client = Silent()
    admin.check_partition = lambda topic, partition: None  # no metadata round trip
    admin.log_offsets = lambda topic, partition: (0, 10)
    return admin


@pytest.mark.parametrize("call", [
    lambda a: a.offsets_of("t", [0, 1]),
    lambda a: a.offset_for_timestamp("t", 0, 1_700_000_000_000),
    lambda a: a.topic_config("t"),
    lambda a: a.create_topic("t", 1),
], ids=["list offsets", "offset for a time", "topic config", "create topic"])
def test_an_admin_call_the_cluster_does_not_answer_is_unavailable(admin, call):
    with pytest.raises(Unavailable) as caught:
        call(admin)
    assert "no answer within 0.05 s" in str(caught.value)


@pytest.mark.parametrize("call", [
    lambda g: g.group_ids(),
    lambda g: g.committed("g"),
    lambda g: g.describe("g"),
], ids=["list groups", "committed offsets", "describe a group"])
def test_a_group_call_the_cluster_does_not_answer_is_unavailable(admin, call):
    with pytest.raises(Unavailable):
        call(KafkaGroups(admin))
