"""Topics and offsets of an Apache Kafka cluster, through one confluent-kafka AdminClient.

Every call is one or two round trips to the cluster, bounded by ``timeout_s``; Kafka's
errors become :mod:`consumer_api.errors` exceptions (a topic or partition that does not
exist, an offset out of range, a request the cluster refuses as invalid, a cluster that
does not answer: Unavailable). Topics whose names start with ``__`` are the cluster's own
and are never listed. Partition counts are cached per topic and dropped when a topic is
created or deleted through this node (another node's change is seen within
``metadata_max_age_s``).

Thread-safety: the AdminClient is thread-safe (librdkafka serialises its requests); the
partition-count cache is a dict replaced whole under ``_lock``.
"""
from __future__ import annotations

import threading
import time

from confluent_kafka import KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, OffsetSpec

from consumer_api.errors import (InvalidRequest, PartitionNotFound,
                                 TopicExists, TopicNotFound, Unavailable)
from consumer_api.offset_rules import out_of_range
from consumer_api.topic_rules import (MAX_PARTITIONS, MAX_SEGMENT_BYTES, MIN_SEGMENT_BYTES,
                                      check_topic_name)

#: our topic settings and the Kafka topic configs they are
TOPIC_CONFIGS = {"retention_ms": "retention.ms", "retention_bytes": "retention.bytes",
                 "segment_bytes": "segment.bytes"}


#: errors a cluster gives while it settles (a leader moving, a topic just created): retried
PASSING = frozenset((KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE,
                     KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError.REQUEST_TIMED_OUT))


def kafka_error(exc: BaseException) -> KafkaError | None:
    """The KafkaError inside an exception a confluent-kafka future raised, if any."""
    if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
        return exc.args[0]
    return None


def answer(future, timeout_s: float):
    """A cluster request's result, waited for at most ``timeout_s``; when it has not come
    by then, a KafkaException carrying ``_TIMED_OUT`` (not retriable), which callers turn
    into their domain error as they do the cluster's own errors."""
    try:
        return future.result(timeout_s)
    except TimeoutError:
        raise KafkaException(KafkaError(KafkaError._TIMED_OUT,
                                        f"no answer within {timeout_s:g} s")) from None


#: ListOffsets requests one call of :meth:`KafkaAdmin.offsets_for_times` keeps in flight
TIME_LOOKUPS_IN_FLIGHT = 100


class KafkaAdmin:
    def __init__(self, client_config: dict, timeout_s: float = 30.0,
                 replication_factor: int = -1, metadata_max_age_s: float = 30.0):
        self._client = AdminClient(dict(client_config))
        self.timeout_s = timeout_s
        self._replication = replication_factor
        self._max_age = metadata_max_age_s
        self._lock = threading.Lock()
        self._counts: dict[str, tuple[int, float]] = {}  # topic -> (partitions, when)

    # -- topics ----------------------------------------------------------------------------

    def create_topic(self, name: str, partitions: int, config: dict | None = None) -> dict:
        check_topic_name(name)
        settings = _topic_settings(partitions, config or {})
        topic = NewTopic(name, partitions, self._replication, config=settings)
        try:
            answer(self._client.create_topics([topic])[name], self.timeout_s)
        except KafkaException as exc:
            error = kafka_error(exc)
            if error is not None and error.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                raise TopicExists(f"topic {name!r} already exists", {"topic": name}) from None
            raise _refused(exc, "create the topic") from None
        self._forget(name)
        self._await_leaders(name, partitions)
        with self._lock:  # what was just created, whatever an older metadata answer says
            self._counts = {**self._counts, name: (partitions, time.monotonic())}
        return {"name": name, "partitions": partitions, "config": self.topic_config(name)}

    def _await_leaders(self, name: str, partitions: int) -> None:
        """Wait (at most ``timeout_s``) until every partition of a new topic has a leader:
        Kafka answers a create before it has elected them."""
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            meta = self._metadata(name).topics.get(name)
            if meta is not None and meta.error is None and len(meta.partitions) == partitions \
                    and all(p.leader >= 0 for p in meta.partitions.values()):
                return
            time.sleep(0.02)  # metadata polling: the cluster offers nothing to wait on
        raise Unavailable(f"topic {name!r} was created but its partitions have no leader "
                          f"after {self.timeout_s:g} s")

    def delete_topic(self, name: str) -> None:
        """Delete a topic and wait (at most ``timeout_s``) until the cluster no longer lists
        it: Kafka answers a delete before every broker has dropped the topic."""
        try:
            answer(self._client.delete_topics([name])[name], self.timeout_s)
        except KafkaException as exc:
            raise _refused(exc, "delete the topic", name) from None
        finally:
            self._forget(name)
        deadline = time.monotonic() + self.timeout_s
        while (found := self._metadata(name).topics.get(name)) is not None \
                and found.error is None:
            if time.monotonic() > deadline:
                raise Unavailable(f"topic {name!r} is still listed {self.timeout_s:g} s after "
                                  "its deletion")
            time.sleep(0.02)  # metadata polling: the cluster offers nothing to wait on

    def topics(self) -> dict[str, int]:
        """``{name: partition count}`` of every topic but the cluster's own, fresh."""
        metadata = self._metadata()
        counts = {name: len(meta.partitions) for name, meta in metadata.topics.items()
                  if not name.startswith("__") and meta.error is None}
        now = time.monotonic()
        with self._lock:
            self._counts = {**self._counts, **{n: (c, now) for n, c in counts.items()}}
        return dict(sorted(counts.items()))

    def partition_count(self, topic: str) -> int:
        """TopicNotFound; cached for ``metadata_max_age_s``."""
        found = self._counts.get(topic)
        if found is not None and time.monotonic() - found[1] < self._max_age:
            return found[0]
        meta = self._metadata(topic).topics.get(topic)
        if meta is None or meta.error is not None or not meta.partitions:
            self._forget(topic)
            raise TopicNotFound(f"topic {topic!r} does not exist", {"topic": topic})
        count = len(meta.partitions)
        with self._lock:
            self._counts = {**self._counts, topic: (count, time.monotonic())}
        return count

    def check_partition(self, topic: str, partition: int) -> None:
        count = self.partition_count(topic)
        if not isinstance(partition, int) or not 0 <= partition < count:
            raise PartitionNotFound(
                f"topic {topic!r} has no partition {partition} (it has {count})",
                {"topic": topic, "partition": partition, "partitions": count})

    def topic_config(self, name: str) -> dict:
        """Our settings of a topic, read back from the cluster's configs."""
        resource = ConfigResource(ConfigResource.Type.TOPIC, name)
        try:
            entries = answer(self._client.describe_configs([resource])[resource], self.timeout_s)
        except KafkaException as exc:
            raise _refused(exc, "describe the topic", name) from None
        return {ours: int(entries[theirs].value) for ours, theirs in TOPIC_CONFIGS.items()
                if theirs in entries and entries[theirs].value is not None}

    # -- offsets ---------------------------------------------------------------------------

    def log_offsets(self, topic: str, partition: int) -> tuple[int, int]:
        """``(log_start_offset, high_watermark)``."""
        return self.offsets_of(topic, [partition])[partition]

    def offsets_of(self, topic: str, partitions) -> dict[int, tuple[int, int]]:
        """``{partition: (log_start_offset, high_watermark)}`` in one round trip per end."""
        for p in partitions:
            self.check_partition(topic, p)
        earliest = self._list_offsets(topic, partitions, OffsetSpec.earliest())
        latest = self._list_offsets(topic, partitions, OffsetSpec.latest())
        return {p: (earliest[p], latest[p]) for p in partitions}

    def offset_for_timestamp(self, topic: str, partition: int, timestamp: int) -> int:
        self.check_partition(topic, partition)
        found = self._list_offsets(topic, [partition], OffsetSpec.for_timestamp(timestamp))
        offset = found[partition]
        return self.log_offsets(topic, partition)[1] if offset < 0 else offset

    def offsets_for_times(self, topic: str, partitions, timestamps) -> dict[int, list[int]]:
        """``{partition: [offset per timestamp]}``, each as :meth:`offset_for_timestamp`
        answers, all as of one moment: the high watermarks are read first and bound every
        answer. Kafka takes a partition once per ListOffsets request, so there is one
        request per timestamp (for every partition), TIME_LOOKUPS_IN_FLIGHT of them in
        flight at a time."""
        for p in partitions:
            self.check_partition(topic, p)
        ends = self._list_offsets(topic, partitions, OffsetSpec.latest())
        out: dict[int, list[int]] = {p: [] for p in partitions}
        for first in range(0, len(timestamps), TIME_LOOKUPS_IN_FLIGHT):
            specs = [OffsetSpec.for_timestamp(t)
                     for t in timestamps[first:first + TIME_LOOKUPS_IN_FLIGHT]]
            for found in self._list_offsets_at_once(topic, partitions, specs):
                for p in partitions:
                    out[p].append(found[p] if 0 <= found[p] <= ends[p] else ends[p])
        return out

    def check_offset(self, topic: str, partition: int, offset: int) -> tuple[int, int]:
        """OffsetOutOfRange unless ``offset`` is in ``[log start, high watermark]``;
        returns those two."""
        start, end = self.log_offsets(topic, partition)
        if not start <= offset <= end:
            raise out_of_range(topic, partition, offset, start, end)
        return start, end

    def _list_offsets(self, topic: str, partitions, spec) -> dict[int, int]:
        """One ListOffsets round trip; retried (within ``timeout_s``) while the cluster
        says the error is retriable (a leader moving, a topic just created)."""
        request = {TopicPartition(topic, p): spec for p in partitions}
        deadline = time.monotonic() + self.timeout_s
        while True:
            try:
                futures = self._client.list_offsets(request, request_timeout=self.timeout_s)
                return {tp.partition: answer(future, self.timeout_s).offset
                        for tp, future in futures.items()}
            except KafkaException as exc:
                error = kafka_error(exc)
                if error is None or time.monotonic() > deadline or not (
                        error.retriable() or error.code() in PASSING):
                    raise _refused(exc, "list offsets", topic) from None
            time.sleep(0.02)

    def _list_offsets_at_once(self, topic: str, partitions, specs) -> list[dict[int, int]]:
        """:meth:`_list_offsets` for each of ``specs``, every request sent before any
        answer is awaited; one that fails is asked again alone (with its retries)."""
        sent = [(spec, self._client.list_offsets(
                    {TopicPartition(topic, p): spec for p in partitions},
                    request_timeout=self.timeout_s)) for spec in specs]
        out = []
        for spec, futures in sent:
            try:
                out.append({tp.partition: answer(future, self.timeout_s).offset
                            for tp, future in futures.items()})
            except KafkaException:
                out.append(self._list_offsets(topic, partitions, spec))
        return out

    # -- internals -------------------------------------------------------------------------

    def _metadata(self, topic: str | None = None):
        try:
            return self._client.list_topics(topic, timeout=self.timeout_s)
        except KafkaException as exc:
            raise Unavailable(f"the Kafka cluster did not answer: {exc}") from None

    def _forget(self, topic: str) -> None:
        with self._lock:
            self._counts = {t: v for t, v in self._counts.items() if t != topic}

    @property
    def client(self) -> AdminClient:
        return self._client


def _topic_settings(partitions, config: dict) -> dict:
    """Kafka topic configs for our settings; InvalidRequest naming what is wrong."""
    problems = {}
    if isinstance(partitions, bool) or not isinstance(partitions, int) \
            or not 1 <= partitions <= MAX_PARTITIONS:
        problems["partitions"] = [f"must be between 1 and {MAX_PARTITIONS}"]
    unknown = sorted(set(config) - set(TOPIC_CONFIGS))
    for name in unknown:
        problems[name] = ["Unknown field."]
    for name in ("retention_ms", "retention_bytes"):
        value = config.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < -1):
            problems[name] = ["must be -1 (no limit) or a number >= 0"]
    segment = config.get("segment_bytes")
    if segment is not None and (isinstance(segment, bool) or not isinstance(segment, int)
                                or not MIN_SEGMENT_BYTES <= segment <= MAX_SEGMENT_BYTES):
        problems["segment_bytes"] = [f"must be between {MIN_SEGMENT_BYTES} and "
                                     f"{MAX_SEGMENT_BYTES}"]
    if problems:
        raise InvalidRequest("invalid topic", problems)
    return {TOPIC_CONFIGS[k]: str(v) for k, v in config.items() if v is not None}


def _refused(exc: KafkaException, doing: str, topic: str | None = None):
    """The domain error for a Kafka error met while ``doing`` something."""
    error = kafka_error(exc)
    code = error.code() if error is not None else None
    if topic is not None and code in (KafkaError.UNKNOWN_TOPIC_OR_PART,
                                      KafkaError._UNKNOWN_TOPIC, KafkaError._UNKNOWN_PARTITION):
        return TopicNotFound(f"topic {topic!r} does not exist", {"topic": topic})
    if code in (KafkaError.INVALID_CONFIG, KafkaError.INVALID_PARTITIONS,
                KafkaError.INVALID_REPLICATION_FACTOR, KafkaError.TOPIC_EXCEPTION,
                KafkaError.POLICY_VIOLATION):
        named = [ours for ours, theirs in TOPIC_CONFIGS.items() if theirs in error.str()]
        return InvalidRequest(f"the Kafka cluster refused to {doing}: {error.str()}",
                              {"config": {field: [error.str()] for field in named}}
                              if named else {"kafka": [error.name()]})
    return Unavailable(f"the Kafka cluster could not {doing}: {exc}")
