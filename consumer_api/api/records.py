"""Record routes: produce to a topic, stateless read of one partition."""
from __future__ import annotations

from flask import Blueprint

from consumer_api.api import response_room
from consumer_api.api.filtering import scan_fields, scan_of_query
from consumer_api.api.json_io import delivery_tracked_json_response, query_args, raw_json_body
from consumer_api.api.produce_body import parse_produce_body
from consumer_api.api.response_room import RecordBody
from consumer_api.api.schemas.records import ReadQuerySchema
from consumer_api.api.security import path_right
from consumer_api.api.state import state
from consumer_api.errors import PartitionNotFound
from consumer_api.sessions.collect import WINDOW_BYTES
from consumer_api.sessions.scan import Scan

bp = Blueprint("records", __name__, url_prefix="/api/topics")
_read = ReadQuerySchema()


def partition_number(topic: str, text: str) -> int:
    """A partition path segment as a number; anything else names no partition."""
    if not (text.isascii() and text.isdigit()) or len(text) > 10:
        raise PartitionNotFound(f"topic {topic!r} has no partition {text!r}",
                                {"topic": topic, "partition": text})
    return int(text)


@bp.post("/<topic>/records")
@path_right("topics", "write", "topic")
def produce(topic):
    """Produce records.
    ---
    post:
      summary: Append records to a topic
      description: >
        The request is validated whole before anything is appended. Keyed records without a
        partition go to murmur2(key) % partitions (Kafka's default partitioner); keyless
        ones round-robin. The response comes once the records are readable, with one
        offset per record in request order.
      tags: [records]
      operationId: produce
      parameters: [topic]
      requestBody:
        required: true
        description: >
          JSON; it may come compressed (Content-Encoding gzip or zstd), the body limit
          applying to its decompressed size too.
        content:
          application/json:
            schema: ProduceRequestSchema
            example:
              records:
                - {key: dXNlci0x, value: aGVsbG8=, headers: {source: web}}
                - {value: d29ybGQ=, partition: 0}
      responses:
        200:
          description: where each record went
          content:
            application/json:
              schema: ProduceResponseSchema
        400: InvalidRequest
        404: NotFound
        413: PayloadTooLarge
        507: InsufficientStorage
    """
    records, partitions = parse_produce_body(raw_json_body(), state().config.max_records_per_produce)
    offsets = state().backend.produce(topic, records, partitions)
    state().metrics.produced.labels(topic).inc(len(offsets))
    return {"offsets": offsets}


@bp.get("/<topic>/partitions/<partition>/records")
@path_right("topics", "read", "topic")
def read(topic, partition):
    """Read one partition.
    ---
    get:
      summary: Read records of one partition from an offset (no consumer group)
      description: >
        The response is compressed when the request's Accept-Encoding asks for zstd or
        gzip (q-values honoured) and it has 1 KiB or more; Content-Encoding says how.
      tags: [records]
      operationId: readPartition
      parameters:
        - topic
        - partition
        - in: query
          schema: ReadQuerySchema
      responses:
        200:
          description: up to max_records records from the offset on (empty at the end)
          headers:
            Content-Encoding: {$ref: "#/components/headers/ContentEncoding"}
            Vary: {$ref: "#/components/headers/Vary"}
          content:
            application/json:
              schema: RecordListSchema
        400: InvalidRequest
        404: NotFound
        503: NoRoom
    """
    args = query_args(_read)
    partition = partition_number(topic, partition)
    scan = scan_of_query(args.get("filter"))
    store = state().backend
    offset = args.get("offset")
    if "timestamp" in args:
        offset = store.offset_for_timestamp(topic, partition, args["timestamp"])
    body = RecordBody(args["encoding"])
    try:
        after = _fill(body, topic, partition, offset, args["max_records"],
                      args["max_bytes_total"], scan)
        if body.refused:
            raise response_room.too_busy()
        end = store.log_offsets(topic, partition)[1]
    except BaseException:
        body.release()
        raise
    tail = b'],"next_offset":%d,"high_watermark":%d%s}' % (after, end, scan_fields(scan))
    return delivery_tracked_json_response([b'{"records":[', *body.take_pieces(), tail],
                                          body.release, body.release)


def _fill(body: RecordBody, topic: str, partition: int, offset, max_records: int,
          max_bytes: int, scan: Scan) -> int:
    """Read into ``body`` a window of about WINDOW_BYTES at a time: the same records as
    one ``read(offset, max_records, max_bytes)`` (the first record comes even when larger
    than ``max_bytes``; no later one passes it), or fewer when the response budget runs
    short -- of them, those ``scan`` keeps. Returns the offset after the last record
    taken or skipped (where it started if none)."""
    store = state().backend
    if offset is None:
        offset = store.log_offsets(topic, partition)[0]
    taken = 0
    while body.count < max_records and (taken < max_bytes or not body.count) \
            and not scan.exhausted:
        remaining = max_bytes - taken
        for ask in dict.fromkeys((min(WINDOW_BYTES, remaining), remaining)):
            allowed = body.room(ask)
            if not allowed:
                return offset
            records, now_taken = store.fetch(topic, partition, offset,
                                             scan.fetch_count(max_records - body.count),
                                             taken + allowed, taken)
            if records:
                break
            body.unused()
            if not taken:
                return offset
        else:
            return offset  # the next record passes max_bytes, or there is none
        records, after, skipped = scan.keep(records, max_records - body.count)
        taken = now_taken - skipped
        if not records:
            body.unused()
        elif not body.add(topic, partition, records):
            return offset
        offset = after
    return offset
