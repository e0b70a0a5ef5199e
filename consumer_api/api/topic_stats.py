"""Topic statistics routes: records and bytes per time bucket, records by key
(:mod:`consumer_api.topic_stats`).

A count by key reads up to the server's bound of records (a fraction of a second to a few
seconds of CPU): at most MAX_SCANS run at once in a worker, the others are ``503
unavailable`` with ``Retry-After`` (a ``stats_scans`` refusal), so a flood of them cannot
take the threads every other request needs. ``_scans`` is that count's lock.
"""
from __future__ import annotations

import threading

from flask import Blueprint

from consumer_api.api.encodings import encode_base64
from consumer_api.api.json_io import query_args
from consumer_api.api.schemas.topic_stats import KeyStatsQuerySchema, StatsQuerySchema
from consumer_api.api.security import path_right
from consumer_api.api.state import state
from consumer_api.errors import Unavailable
from consumer_api.topic_stats.buckets import time_buckets
from consumer_api.topic_stats.top_keys import Bound, top_keys
from consumer_api.topic_stats.window import bucket_window, time_range

bp = Blueprint("topic_stats", __name__, url_prefix="/api/topics")
MAX_SCANS = 2
_scans = threading.BoundedSemaphore(MAX_SCANS)
_buckets = StatsQuerySchema()
_keys = KeyStatsQuerySchema()


@bp.get("/<topic>/stats")
@path_right("topics", "read", "topic")
def topic_stats(topic):
    """Records and bytes per time bucket.
    ---
    get:
      summary: Records and bytes of a topic per time bucket
      description: >
        Counted from the log's time index, without reading the records: the work grows
        with buckets x partitions, not with the records. A record counts at the largest
        timestamp among it and the records before it in its partition -- its own, unless a
        producer stamped it earlier than one before it -- as a read by `timestamp` sees the
        log. Summed over every partition unless `partition` names one; `partitions` gives
        each partition's totals. Bytes are the records' stored size (null on the Kafka
        store).
      tags: [topics]
      operationId: topicStats
      parameters:
        - topic
        - in: query
          schema: StatsQuerySchema
      responses:
        200:
          description: the buckets, oldest first
          content:
            application/json:
              schema: TopicStatsSchema
              example:
                topic: orders
                from_ms: 1733400000000
                to_ms: 1733400120000
                bucket_ms: 60000
                records: 1500
                bytes: 205500
                partitions: [{partition: 0, records: 1500, bytes: 205500}]
                buckets:
                  - {start_ms: 1733400000000, records: 1000, bytes: 137000}
                  - {start_ms: 1733400060000, records: 500, bytes: 68500}
        400: InvalidRequest
        404: NotFound
    """
    args = query_args(_buckets)
    window = bucket_window(state().manager.now_ms(), args.get("from_ms"), args.get("to_ms"),
                           args.get("bucket_ms"))
    return time_buckets(state().backend, topic, _partitions(topic, args), window)


@bp.get("/<topic>/stats/keys")
@path_right("topics", "read", "topic")
def key_stats(topic):
    """Records by key.
    ---
    get:
      summary: The keys with the most records in a time range
      description: >
        Reads the range's records in time order, across partitions, and counts them by
        key, reading at most the server's `CONSUMER_API_MAX_STATS_SCAN_RECORDS` records and
        `CONSUMER_API_MAX_STATS_SCAN_BYTES` bytes. When a bound stops it, `complete` is
        false and every record before `scanned_to_ms` was counted, none after: ask again
        from there, or narrow the range. Keys are base64; records without a key count
        under `null`.
      tags: [topics]
      operationId: topicKeyStats
      parameters:
        - topic
        - in: query
          schema: KeyStatsQuerySchema
      responses:
        200:
          description: the top keys and what was counted
          content:
            application/json:
              schema: KeyStatsSchema
              example:
                topic: orders
                from_ms: 1733400000000
                to_ms: 1733403600000
                partitions: [0, 1, 2]
                keys: [{key: dXNlci0x, records: 120}, {key: null, records: 7}]
                distinct_keys: 2
                scanned_records: 127
                scanned_bytes: 17399
                complete: true
                scanned_to_ms: 1733403600000
                stopped_by: null
        400: InvalidRequest
        404: NotFound
    """
    args = query_args(_keys)
    start, end = time_range(state().manager.now_ms(), args.get("from_ms"), args.get("to_ms"))
    config = state().config
    if not _scans.acquire(blocking=False):
        raise _too_many_scans()
    try:
        answer = top_keys(state().backend, topic, _partitions(topic, args), start, end,
                          args["top"], Bound(config.max_stats_scan_records,
                                             config.max_stats_scan_bytes))
    finally:
        _scans.release()
    for row in answer["keys"]:
        row["key"] = encode_base64(row["key"])
    return answer


def _partitions(topic: str, args: dict) -> list[int]:
    """The partition the query names (the store checks it exists), else every one."""
    if "partition" in args:
        return [args["partition"]]
    return list(range(state().backend.partition_count(topic)))


def _too_many_scans() -> Unavailable:
    """The 503 of a count by key when MAX_SCANS are running (a ``stats_scans`` refusal:
    see api/errors.py)."""
    return Unavailable(f"{MAX_SCANS} counts by key are running; retry shortly",
                       {"reason": "stats_scans"})
