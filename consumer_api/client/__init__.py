"""A Python client for consumer-api, over ``requests``.

::

    from consumer_api.client import Client, Record

    client = Client("http://127.0.0.1:8080", api_key=None)
    client.create_topic("orders", partitions=3)
    client.produce("orders", [b"raw bytes", "text", {"a": 1},
                              Record({"a": 2}, key="user-1", headers={"src": "app"})])
    with client.consumer("billing", ["orders"], auto_offset_reset="earliest",
                         value_format="json", commit_each_batch=True) as consumer:
        for record in consumer:
            print(record.partition, record.offset, record.key, record.value)

Values and keys: ``bytes`` go as they are, ``str`` as UTF-8, ``None`` is a null (a
tombstone), and anything else -- a ``dict`` included -- as its compact JSON. A ``dict`` is
always a JSON value, never a record: use :class:`Record` for keys, partitions, headers or
timestamps. Everything travels base64-encoded, so any bytes survive.

One ``requests.Session`` (keep-alive) per client; not meant to be shared by threads that
use it at the same time (make a client per thread). Errors are the typed exceptions of
:mod:`consumer_api.client.errors`, carrying the server's ``code``.

Compression is on by default (``compression="zstd"``): request bodies of
:data:`COMPRESS_MIN_BYTES` or more go compressed in that coding, and responses are asked
for in zstd or gzip (urllib3 decodes them). ``compression="gzip"`` compresses request
bodies with gzip instead; ``compression=None`` sends and asks for nothing compressed (see
README, "Compression", for when to turn it off).
"""
from __future__ import annotations

import base64
import gzip
import json
from dataclasses import dataclass
from typing import Any, Iterable
from urllib.parse import quote

import requests

from consumer_api.zstd_codec import zstd
from consumer_api.client import errors
from consumer_api.client.consumer import ConsumedRecord, Consumer
from consumer_api.client.errors import (ApiError, ClientError, ConnectionFailed,
                                        why_unreachable)
from consumer_api.client.offsets import TopicPartition, offsets_from_wire, offsets_to_wire

__all__ = ["Client", "Record", "Consumer", "ConsumedRecord", "errors", "ApiError",
           "ClientError", "ConnectionFailed", "TopicPartition"]

#: records per produce request, and payload bytes per request (the server takes 16 MiB)
BATCH_RECORDS = 5000
BATCH_BYTES = 8 << 20
#: request bodies smaller than this go uncompressed
COMPRESS_MIN_BYTES = 1024
#: the codings ``compression`` may name: request body -> compressed bytes
COMPRESSORS = {"zstd": lambda data: zstd.compress(data, 1),
               "gzip": lambda data: gzip.compress(data, 1, mtime=0)}


@dataclass
class Record:
    """A record to produce with more than a value."""

    value: Any
    key: Any = None
    partition: int | None = None
    headers: dict | None = None
    timestamp: int | None = None


def to_bytes(value) -> bytes | None:
    """The bytes a value stands for (see the module docstring)."""
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _b64(value) -> str | None:
    data = to_bytes(value)
    return None if data is None else base64.b64encode(data).decode("ascii")


def _wire_record(item) -> dict:
    if not isinstance(item, Record):
        return {"value": _b64(item)}
    out = {"value": _b64(item.value)}
    if item.key is not None:
        out["key"] = _b64(item.key)
    for name in ("partition", "headers", "timestamp"):
        if getattr(item, name) is not None:
            out[name] = getattr(item, name)
    return out


class Client:
    def __init__(self, base_url: str = "http://127.0.0.1:8080", api_key: str | None = None,
                 timeout: float = 30.0, connect_timeout: float = 5.0,
                 compression: str | None = "zstd"):
        if compression is not None and compression not in COMPRESSORS:
            raise ValueError(f"compression must be one of {', '.join(COMPRESSORS)} or None, "
                             f"not {compression!r}")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.compression = compression
        self.session = requests.Session()
        self.session.headers["Accept"] = "application/json"
        self.session.headers["Accept-Encoding"] = "zstd, gzip" if compression else "identity"
        if api_key:
            self.session.headers["Authorization"] = f"Bearer {api_key}"

    # -- plumbing --------------------------------------------------------------------------

    def request(self, method: str, path: str, json_body=None, params=None,
                read_timeout: float | None = None):
        """Send a request; return the parsed JSON body, raise a typed error otherwise."""
        data, headers = self._body(json_body)
        try:
            resp = self.session.request(
                method, self.base_url + path, data=data, headers=headers, params=params,
                timeout=(self.connect_timeout, read_timeout or self.timeout))
        except requests.RequestException as exc:
            raise ConnectionFailed(f"cannot reach {self.base_url}: {why_unreachable(exc)}") \
                from exc
        try:
            body = resp.json()
        except ValueError:
            body = None
        if resp.status_code >= 400:
            raise errors.from_response(resp.status_code, body, resp.headers)
        return body

    def _body(self, json_body) -> tuple:
        """``(data, headers)`` of a request with ``json_body`` (None: no body), compressed
        when it is large enough and compression is on."""
        if json_body is None:
            return None, None
        data = json.dumps(json_body, separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        if self.compression and len(data) >= COMPRESS_MIN_BYTES:
            data = COMPRESSORS[self.compression](data)
            headers["Content-Encoding"] = self.compression
        return data, headers

    def close(self) -> None:
        self.session.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- topics ----------------------------------------------------------------------------

    def create_topic(self, name: str, partitions: int = 1, config: dict | None = None) -> dict:
        body = {"name": name, "partitions": partitions}
        if config:
            body["config"] = config
        return self.request("POST", "/api/topics", body)

    def list_topics(self) -> list[dict]:
        return self.request("GET", "/api/topics")["topics"]

    def describe_topic(self, name: str) -> dict:
        return self.request("GET", f"/api/topics/{_quote(name)}")

    def delete_topic(self, name: str) -> None:
        self.request("DELETE", f"/api/topics/{_quote(name)}")

    def topic_stats(self, topic: str, from_ms: int | None = None, to_ms: int | None = None,
                    bucket_ms: int | None = None, partition: int | None = None) -> dict:
        """Records and bytes per time bucket: the server's answer, ``{from_ms, to_ms,
        bucket_ms, records, bytes, partitions: [{partition, records, bytes}], buckets:
        [{start_ms, records, bytes}]}`` (bytes None on the Kafka store). What is not given
        is the server's default: the last hour in 1-minute buckets, every partition."""
        params = _given(from_ms=from_ms, to_ms=to_ms, bucket_ms=bucket_ms, partition=partition)
        return self.request("GET", f"/api/topics/{_quote(topic)}/stats", params=params)

    def top_keys(self, topic: str, from_ms: int | None = None, to_ms: int | None = None,
                 partition: int | None = None, top: int = 10) -> dict:
        """The keys with the most records in ``[from_ms, to_ms)`` (default: the last hour):
        the server's answer with each key as bytes (None for records without one). When
        ``complete`` is False the server's bound stopped the count at ``scanned_to_ms``:
        every record before it was counted; ask again from there."""
        params = _given(from_ms=from_ms, to_ms=to_ms, partition=partition, top=top)
        answer = self.request("GET", f"/api/topics/{_quote(topic)}/stats/keys", params=params)
        for row in answer["keys"]:
            row["key"] = None if row["key"] is None else base64.b64decode(row["key"])
        return answer

    # -- records ---------------------------------------------------------------------------

    def produce(self, topic: str, records: Iterable) -> list[dict]:
        """Append records (values or :class:`Record`); returns ``{partition, offset,
        timestamp}`` per record, in order. Large inputs go in several requests (each one is
        stored whole or not at all)."""
        offsets: list[dict] = []
        for batch in self._batches(records):
            offsets.extend(self.request("POST", f"/api/topics/{_quote(topic)}/records",
                                        {"records": batch})["offsets"])
        return offsets

    @staticmethod
    def _batches(records: Iterable):
        batch, size = [], 0
        for item in records:
            wire = _wire_record(item)
            weight = len(wire.get("value") or "") + len(wire.get("key") or "") + 64
            if batch and (len(batch) >= BATCH_RECORDS or size + weight > BATCH_BYTES):
                yield batch
                batch, size = [], 0
            batch.append(wire)
            size += weight
        if batch:
            yield batch

    def read(self, topic: str, partition: int, offset: int | None = None,
             max_records: int = 500, value_format: str = "bytes",
             filter: dict | None = None) -> list[ConsumedRecord]:
        """Stateless read of one partition (no consumer group); with ``filter`` (see
        README, "Filtering records") only the records it matches."""
        return self.read_page(topic, partition, offset, max_records=max_records,
                              value_format=value_format, filter=filter)["records"]

    def read_page(self, topic: str, partition: int, offset: int | None = None, *,
                  timestamp: int | None = None, max_records: int = 500,
                  value_format: str = "bytes", filter: dict | None = None) -> dict:
        """One page of a stateless read, from ``offset`` (default: the log start) or the
        first record at or after ``timestamp`` (epoch ms): ``{"records": [ConsumedRecord],
        "next_offset": where the next page starts, "high_watermark": the partition's end}``
        -- read on from ``next_offset`` until it reaches ``high_watermark``."""
        params = {"max_records": max_records}
        for name, value in (("offset", offset), ("timestamp", timestamp)):
            if value is not None:
                params[name] = value
        if filter is not None:
            params["filter"] = json.dumps(filter)
        body = self.request("GET", f"/api/topics/{_quote(topic)}/partitions/{partition}/records",
                            params=params)
        return {**body, "records": [ConsumedRecord.from_wire(r, value_format, "bytes")
                                    for r in body["records"]]}

    # -- consumers -------------------------------------------------------------------------

    def consumer(self, group_id: str, topics, **options) -> Consumer:
        """A :class:`Consumer` (a context manager: subscribes on enter, unsubscribes on
        exit). Options: auto_offset_reset, value_format, key_format, session_timeout_ms,
        auto_commit, commit_each_batch, max_records, timeout_ms, max_bytes_total,
        recreate_on_expiry, assignor (the group's, when this is its first member), filter
        (only the records it matches are returned; commits cover the skipped ones),
        restart_wait_s (how long session calls wait out a restarting server), min_records
        (each poll waits, up to timeout_ms, until that many records are ready: fewer,
        larger batches)."""
        return Consumer(self, group_id, [topics] if isinstance(topics, str) else list(topics),
                        **options)

    # -- groups ----------------------------------------------------------------------------

    def list_groups(self) -> list[dict]:
        return self.request("GET", "/api/consumer-groups")["groups"]

    def describe_group(self, group_id: str) -> dict:
        return self.request("GET", f"/api/consumer-groups/{_quote(group_id)}")

    def reset_group(self, group_id: str, to: str, topics=None) -> dict:
        """Move an empty group's committed offsets to ``earliest`` or ``latest``; the
        offsets now committed, ``{TopicPartition: offset}``."""
        body = {"reset": to}
        if topics:
            body["topics"] = list(topics)
        return offsets_from_wire(self.request(
            "POST", f"/api/consumer-groups/{_quote(group_id)}/offsets", body)["offsets"])

    def set_group_offsets(self, group_id: str, offsets: dict) -> dict:
        """Commit ``offsets`` for an empty group (``{(topic, partition): offset}`` or
        ``{topic: {partition: offset}}``); the offsets now committed, as
        :meth:`reset_group`."""
        return offsets_from_wire(self.request(
            "POST", f"/api/consumer-groups/{_quote(group_id)}/offsets",
            {"offsets": offsets_to_wire(offsets)})["offsets"])

    def delete_group(self, group_id: str) -> None:
        self.request("DELETE", f"/api/consumer-groups/{_quote(group_id)}")


def _given(**params) -> dict:
    """The query parameters that have a value."""
    return {name: value for name, value in params.items() if value is not None}


def _quote(text: str) -> str:
    return quote(text, safe="")
