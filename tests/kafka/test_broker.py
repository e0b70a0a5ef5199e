"""The test broker itself: a real Apache Kafka that topics, records and consumer groups go
through (what the Kafka backend's tests stand on)."""
from __future__ import annotations

import uuid

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

#: real seconds a step against the broker may take
BOUND_S = 30.0


def test_records_go_through_a_topic_and_a_consumer_group(kafka_broker):
    topic, group = f"smoke-{uuid.uuid4().hex[:8]}", f"g-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": kafka_broker.bootstrap})
    for future in admin.create_topics([NewTopic(topic, 3, 1)]).values():
        future.result(BOUND_S)
    producer = Producer({"bootstrap.servers": kafka_broker.bootstrap})
    for i in range(9):
        producer.produce(topic, value=b"v%d" % i, partition=i % 3)
    assert producer.flush(BOUND_S) == 0
    consumer = Consumer({"bootstrap.servers": kafka_broker.bootstrap, "group.id": group,
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    try:
        consumer.subscribe([topic])
        got = []
        for _ in range(int(BOUND_S / 0.5)):
            if len(got) == 9:
                break
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                got.append((message.partition(), message.value()))
        assert sorted(got) == sorted((i % 3, b"v%d" % i) for i in range(9))
        consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    listed = admin.list_consumer_groups().result(BOUND_S)
    assert group in {g.group_id for g in listed.valid}
