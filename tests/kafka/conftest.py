"""``kafka``: an open Kafka store on the test run's broker; on the way out it closes (its
members leave their groups) and leaves the broker as it found it: no groups or topics."""
from __future__ import annotations

import pytest

from consumer_api.kafka.backend import KafkaBackend

#: real seconds a call to the broker may take in these tests
BOUND_S = 20.0


@pytest.fixture
def kafka(kafka_broker):
    store = KafkaBackend({"bootstrap.servers": kafka_broker.bootstrap}, timeout_s=BOUND_S)
    store.open()
    yield store
    store.close()
    for group in store.groups.group_ids():
        store.groups.delete(group)
    for name in store.admin.topics():
        store.admin.delete_topic(name)
