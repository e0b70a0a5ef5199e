"""``kafka``: an open Kafka store on the test run's broker; on the way out it closes (its
members leave their groups) and leaves the broker as it found it: no groups or topics."""
from __future__ import annotations

import pytest

from tests.kafka.store import kafka_store

#: real seconds a call to the broker may take in these tests
BOUND_S = 20.0


@pytest.fixture
def kafka(kafka_broker):
    with kafka_store(kafka_broker, BOUND_S) as store:
        yield store
