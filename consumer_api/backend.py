"""The seam between the HTTP layer (and sessions) and a message store.

:class:`Backend` is what ``consumer_api.api`` and ``consumer_api.sessions`` may ask of a
store. The embedded engine (:class:`consumer_api.embedded.engine.Engine`) implements it
over local segment files; a store over an Apache Kafka cluster would implement the same
methods. Results are plain dicts and tuples shaped like the API's responses; failures are
:mod:`consumer_api.errors` exceptions.
"""
from __future__ import annotations

from typing import Protocol


class Backend(Protocol):
    def create_topic(self, name: str, partitions: int, config: dict | None = None) -> dict:
        """``{name, partitions, config}``; TopicExists / InvalidRequest."""

    def list_topics(self) -> list[dict]:
        """``[{name, partitions: [{partition, log_start_offset, high_watermark}]}]``."""

    def describe_topic(self, name: str) -> dict:
        """``{name, config, partitions: [{partition, log_start_offset, high_watermark,
        size_bytes}]}``; TopicNotFound."""

    def delete_topic(self, name: str) -> None:
        """TopicNotFound."""

    def produce(self, topic: str, records: list, partitions: list) -> list[dict]:
        """Append records (``NewRecord``: key, value, headers, timestamp) with their
        explicit partitions (or None); ``[{partition, offset, timestamp}]`` in request
        order. TopicNotFound / PartitionNotFound (nothing appended) / StorageFull."""

    def read(self, topic: str, partition: int, offset: int | None, max_records: int,
             max_bytes: int) -> list:
        """``[(offset, timestamp, key, value, headers)]``; OffsetOutOfRange."""
