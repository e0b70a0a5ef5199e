"""Producing to Apache Kafka: one shared confluent-kafka Producer per node.

Placement is the embedded engine's: a keyed record goes to Kafka's murmur2 partition
(:mod:`consumer_api.partitioner`), a keyless one round-robin per record, an explicit one
where it says -- computed here, then produced with an explicit partition, so a record lands
on the same partition on both backends. A request waits for its own deliveries only
(never for ``flush()``), at most ``timeout_s``.

A produce spanning partitions is not all-or-nothing (that would take transactions): every
partition is checked before anything is sent, and when some records fail to be delivered
the request fails with the first error -- the others may be stored (README, *Running on
Apache Kafka*).

Thread-safety: the Producer is thread-safe; one daemon thread serves its delivery reports
(``poll``) until :meth:`close`. A request's :class:`_Batch` is filled by that thread and read
by the request's thread after its ``done`` event.
"""
from __future__ import annotations

import threading
import time
from functools import partial

from confluent_kafka import KafkaError, KafkaException, Producer

from consumer_api.errors import (InvalidRequest, PartitionNotFound, RecordTooLarge,
                                 TopicNotFound, Unavailable)
from consumer_api.kafka.admin import kafka_error
from consumer_api.partitioner import Partitioner


#: the largest message the producer sends (librdkafka's message.max.bytes)
MAX_MESSAGE_BYTES = 64 << 20
#: what a refused record's size says, on the broker's side or the producer's
TOO_LARGE = frozenset((KafkaError.MSG_SIZE_TOO_LARGE,))


class _Batch:
    """The deliveries of one request: ``results[i]`` is ``(partition, offset, timestamp)``
    of record i once delivered; ``error`` the first failure."""

    __slots__ = ("results", "left", "error", "done", "lock")

    def __init__(self, count: int):
        self.results: list = [None] * count
        self.left = count
        self.error: KafkaError | None = None
        self.done = threading.Event()
        self.lock = threading.Lock()

    def delivered(self, i: int, err, msg) -> None:
        with self.lock:
            if err is not None:
                self.error = self.error or err
            else:
                self.results[i] = (msg.partition(), msg.offset(), msg.timestamp()[1])
            self.left -= 1
            if not self.left:
                self.done.set()


class KafkaProducer:
    """``partition_count(topic)`` gives a topic's partitions (TopicNotFound)."""

    def __init__(self, client_config: dict, partition_count, timeout_s: float = 30.0):
        # a request waits for its own deliveries: batch for a millisecond, not librdkafka's 5
        # the cluster says how large a record may be (a topic's max.message.bytes), not
        # the client's own limit (librdkafka: 1 MB)
        self._producer = Producer({"linger.ms": 1, "message.max.bytes": MAX_MESSAGE_BYTES,
                                   **client_config,
                                   "enable.idempotence": True, "partitioner": "murmur2_random"})
        self._partition_count = partition_count
        self.timeout_s = timeout_s
        self._round_robin: dict[str, Partitioner] = {}
        self._rr_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="kafka-deliveries",
                                        daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.1)

    def _partitioner(self, topic: str) -> Partitioner:
        with self._rr_lock:
            found = self._round_robin.get(topic)
            if found is None:
                found = self._round_robin[topic] = Partitioner()
            return found

    def place(self, topic: str, records: list, partitions: list) -> list[int]:
        """The partition of each record (TopicNotFound / PartitionNotFound before any is
        sent)."""
        count = self._partition_count(topic)
        chooser = self._partitioner(topic)
        placed = []
        for record, partition in zip(records, partitions):
            if partition is None:
                partition = chooser.partition(record[0], count)
            elif not 0 <= partition < count:
                raise PartitionNotFound(
                    f"topic {topic!r} has no partition {partition} (it has {count})",
                    {"topic": topic, "partition": partition, "partitions": count})
            placed.append(partition)
        return placed

    def produce(self, topic: str, records: list, partitions: list) -> list[dict]:
        placed = self.place(topic, records, partitions)
        batch = _Batch(len(records))
        for i, (record, partition) in enumerate(zip(records, placed)):
            key, value, headers, timestamp = record
            self._send(topic, i, key, value, headers, timestamp, partition, batch)
        if not batch.done.wait(self.timeout_s):
            raise Unavailable(f"the Kafka cluster did not acknowledge the records within "
                              f"{self.timeout_s:g} s (some may be stored)")
        if batch.error is not None:
            raise _delivery_error(batch.error, topic, batch.results)
        return [{"partition": p, "offset": o, "timestamp": ts} for p, o, ts in batch.results]

    def _send(self, topic, i, key, value, headers, timestamp, partition, batch) -> None:
        kwargs = {"partition": partition, "on_delivery": partial(batch.delivered, i)}
        if key is not None:
            kwargs["key"] = key
        if headers:
            kwargs["headers"] = [(name, text.encode("utf-8")) for name, text in headers.items()]
        if timestamp is not None:
            kwargs["timestamp"] = timestamp
        deadline = time.monotonic() + self.timeout_s
        while True:
            try:
                self._producer.produce(topic, value, **kwargs)
                return
            except BufferError:  # the local queue is full: let deliveries drain it
                self._producer.poll(0.05)
            except KafkaException as exc:
                self._refresh_or_fail(topic, exc, deadline)

    def _refresh_or_fail(self, topic: str, exc: KafkaException, deadline: float) -> None:
        """The producer refused a record locally. A partition or topic it does not know
        yet (the admin found them: the topic was created, re-created or grown since the
        producer last looked) means stale metadata: refresh the topic's and try again
        until ``deadline``; anything else is Unavailable."""
        error = kafka_error(exc)
        stale = error is not None and error.code() in (KafkaError._UNKNOWN_PARTITION,
                                                       KafkaError._UNKNOWN_TOPIC)
        left = deadline - time.monotonic()
        if error is not None and error.code() in TOO_LARGE:
            raise RecordTooLarge(f"a record of {topic!r} is larger than the Kafka producer "
                                 f"sends ({MAX_MESSAGE_BYTES} bytes)") from None
        if not stale or left <= 0:
            raise Unavailable(f"the Kafka producer refused a record of {topic!r}: {exc}") \
                from None
        self._producer.list_topics(topic, timeout=min(left, 1.0))

    def close(self) -> None:
        """Deliver what is queued (bounded), then stop the delivery thread."""
        self._producer.flush(self.timeout_s)
        self._stop.set()
        self._thread.join(5)


def _delivery_error(error: KafkaError, topic: str, results: list):
    """The error a request whose records the cluster did not all store answers with. When
    some were stored, ``details["stored"]`` lists, per record of the request, its
    ``{"partition", "offset"}`` or None (not stored: safe to send again)."""
    stored = [None if r is None else {"partition": r[0], "offset": r[1]} for r in results]
    extra = {"stored": stored} if any(stored) else {}
    if error.code() in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC):
        return TopicNotFound(f"topic {topic!r} does not exist", {"topic": topic, **extra})
    if error.code() in TOO_LARGE:
        return RecordTooLarge(
            "the Kafka cluster refused a record as too large: the topic's max.message.bytes "
            "(1 MiB by default) bounds a record with its key and headers", extra)
    if error.code() == KafkaError.INVALID_TIMESTAMP:
        return InvalidRequest(
            "the Kafka cluster refused a record's timestamp: it is further from its clock than "
            "the topic's message.timestamp.before.max.ms / message.timestamp.after.max.ms "
            "allow", {"timestamp": ["Refused by the Kafka cluster."], **extra})
    return Unavailable(f"the Kafka cluster did not store the records: {error.str()}", extra)
