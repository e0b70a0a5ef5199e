"""Stateless reads from Apache Kafka: records of one partition from an offset.

A confluent-kafka Consumer may be touched by one thread only (calls into one from another
thread while it polls were seen to hang the interpreter), so each :class:`Reader` owns one
Consumer and one thread; requests hand it a read through a queue and wait for the answer,
at most ``timeout_s``. A read assigns the partition at the offset and consumes until it
has ``max_records``, or ``max_bytes`` (counted as :func:`stored_size`), or the high
watermark it saw when it started. The consumer joins no group and commits nothing.

Thread-safety: :meth:`Reader.fetch` may be called from any thread; everything else runs on
the reader's own thread.
"""
from __future__ import annotations

import queue
import threading
from concurrent.futures import Future

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from consumer_api.errors import Unavailable
from consumer_api.records import RECORD_OVERHEAD, FrozenHeaders



def stored_size(key, value, headers) -> int:
    """What a record counts against ``max_bytes`` (as on the embedded engine:
    ``storage.batches.RECORD_OVERHEAD`` plus key, value and encoded headers)."""
    size = RECORD_OVERHEAD + len(key or b"") + len(value or b"")
    for name, raw in headers or ():
        size += 6 + len(name.encode("utf-8")) + len(raw or b"")
    return size


def to_record(message) -> tuple:
    """A Kafka message as a record tuple ``(offset, timestamp, key, value, headers)``.
    Header values are text here: bytes that are not UTF-8 are decoded with replacement
    characters, and of a repeated header name the last value is kept."""
    raw = message.headers()
    headers = None
    if raw:
        headers = FrozenHeaders({name: _text(value) for name, value in raw})
    return (message.offset(), message.timestamp()[1], message.key(), message.value(),
            headers)


def _text(value) -> str:
    return "" if value is None else value.decode("utf-8", "replace")


class Reader:
    def __init__(self, client_config: dict, timeout_s: float = 30.0, name: str = "reader"):
        self._config = {**client_config, "group.id": "consumer-api-reader",
                        "enable.auto.commit": False, "enable.auto.offset.store": False,
                        "enable.partition.eof": True}
        self.timeout_s = timeout_s
        self._requests: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=f"kafka-{name}", daemon=True)
        self._thread.start()

    def fetch(self, topic: str, partition: int, offset: int, end: int, max_records: int,
              max_bytes: int, taken: int) -> tuple[list, int]:
        """Records ``[offset, end)`` of a partition (``end``: its high watermark, which the
        caller checked ``offset`` against), at most ``max_records``, within ``max_bytes``
        counting from ``taken`` (the first record comes whatever its size when ``taken`` is
        0). ``(records, taken)``."""
        if offset >= end or max_records <= 0:
            return [], taken
        done: Future = Future()
        self._requests.put((topic, partition, offset, end, max_records, max_bytes, taken,
                            done))
        try:
            return done.result(self.timeout_s)
        except TimeoutError:
            raise Unavailable(f"the Kafka cluster did not give partition {partition} of "
                              f"{topic!r} within {self.timeout_s:g} s") from None

    def close(self) -> None:
        self._requests.put(None)
        self._thread.join(self.timeout_s)

    # -- the reader's thread ---------------------------------------------------------------

    def _run(self) -> None:
        consumer = Consumer(self._config)
        try:
            while (request := self._requests.get()) is not None:
                *args, done = request
                if not done.set_running_or_notify_cancel():
                    continue
                try:
                    done.set_result(self._read(consumer, *args))
                except BaseException as exc:  # handed to the waiting request
                    done.set_exception(exc)
        finally:
            consumer.close()

    def _read(self, consumer, topic, partition, offset, end, max_records, max_bytes,
              taken) -> tuple[list, int]:
        consumer.assign([TopicPartition(topic, partition, offset)])
        records: list = []
        want = min(max_records, end - offset)
        try:
            while len(records) < want:
                batch = consumer.consume(min(500, want - len(records)), self.timeout_s)
                if not batch:
                    raise Unavailable(f"the Kafka cluster gave nothing of partition "
                                      f"{partition} of {topic!r} within {self.timeout_s:g} s")
                for message in batch:
                    error = message.error()
                    if error is not None:
                        if error.code() == KafkaError._PARTITION_EOF:
                            return records, taken
                        raise KafkaException(error)
                    size = stored_size(message.key(), message.value(), message.headers())
                    if taken and taken + size > max_bytes:
                        return records, taken
                    records.append(to_record(message))
                    taken += size
                    if len(records) >= want or message.offset() + 1 >= end:
                        return records, taken
            return records, taken
        finally:
            consumer.unassign()
