"""A Kafka store for one test on the run's broker, left the way it was found.

``kafka_store(broker, timeout_s)`` is a context manager: an open, started
:class:`~consumer_api.kafka.backend.KafkaBackend`; on the way out it closes (its members
leave their groups) and deletes every group and topic, waiting until the broker has
forgotten the topics (Kafka deletes asynchronously), so the next test may re-create a name.
``leave_clean(store)`` does the same to a store that stays open (one shared by many tests):
its members leave, its groups and topics go.
"""
from __future__ import annotations

import contextlib
import time

from consumer_api.errors import TopicNotFound
from consumer_api.kafka.backend import KafkaBackend


@contextlib.contextmanager
def kafka_store(broker, timeout_s: float):
    store = KafkaBackend({"bootstrap.servers": broker.bootstrap}, timeout_s=timeout_s)
    store.open()
    store.start()
    try:
        yield store
    finally:
        store.close()
        leave_clean(store, timeout_s)


def leave_clean(store: KafkaBackend, timeout_s: float) -> None:
    """Make every member of the store leave (a test may leave sessions open), delete every
    group and topic of the broker; wait until no topic is listed."""
    for member in list(store._members):  # what close() does, for a store that stays open
        member.leave()
    for group in store.groups.group_ids():
        store.groups.delete(group)
    for name in store.admin.topics():
        with contextlib.suppress(TopicNotFound):
            store.delete_topic(name)
    deadline = time.monotonic() + timeout_s
    while store.admin.topics():
        assert time.monotonic() < deadline, "the broker kept deleted topics"
        time.sleep(0.05)  # deletion is asynchronous in Kafka: nothing to wait on
