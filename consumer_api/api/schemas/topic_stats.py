"""Topic statistics: the queries and answers of ``/api/topics/{topic}/stats`` and
``/stats/keys`` (see :mod:`consumer_api.topic_stats`)."""
from __future__ import annotations

from marshmallow import Schema, fields, validate

from consumer_api.api.schemas.common import INT64_MAX
from consumer_api.topic_stats.buckets import MAX_LOOKUPS
from consumer_api.topic_stats.window import DEFAULT_BUCKET_MS, MAX_BUCKETS

#: most keys one answer lists
MAX_TOP = 1000

_COUNTS_AT = ("A record counts at the largest timestamp among it and the records before it "
              "in its partition (its own, unless a producer stamped it earlier than one "
              "before it).")


def _time(description: str) -> fields.Integer:
    return fields.Integer(validate=validate.Range(min=0, max=INT64_MAX), metadata={
        "description": description, "example": 1733400000000})


def _partition() -> fields.Integer:
    return fields.Integer(validate=validate.Range(min=0, max=INT64_MAX), metadata={
        "description": "only this partition; default: every partition of the topic"})


class StatsQuerySchema(Schema):
    from_ms = _time("start of the range, epoch ms (included); default: the whole buckets "
                    "that cover an hour before to_ms")
    to_ms = _time("end of the range, epoch ms (excluded), after from_ms; default: the end of "
                  "the bucket holding now")
    bucket_ms = fields.Integer(validate=validate.Range(min=1, max=INT64_MAX), metadata={
        "description": f"bucket width in ms, buckets laid from from_ms; at most {MAX_BUCKETS} "
                       f"buckets, and at most {MAX_LOOKUPS} bucket boundaries x partitions",
        "default": DEFAULT_BUCKET_MS, "example": DEFAULT_BUCKET_MS})
    partition = _partition()


class KeyStatsQuerySchema(Schema):
    from_ms = _time("start of the range, epoch ms (included); default: an hour before to_ms")
    to_ms = _time("end of the range, epoch ms (excluded), after from_ms; default: now")
    partition = _partition()
    top = fields.Integer(validate=validate.Range(min=1, max=MAX_TOP), load_default=10,
                         metadata={"description": "how many keys to list, most records first"})


def _bytes(description: str) -> fields.Integer:
    return fields.Integer(required=True, allow_none=True, metadata={
        "description": description + "; null where the store does not tell (Kafka)"})


class StatsBucketSchema(Schema):
    start_ms = fields.Integer(required=True, metadata={
        "description": "the bucket is [start_ms, start_ms + bucket_ms), the last one ending "
                       "at to_ms"})
    records = fields.Integer(required=True)
    bytes = _bytes("the records' stored size")


class PartitionTotalSchema(Schema):
    partition = fields.Integer(required=True)
    records = fields.Integer(required=True, metadata={"description": "over the whole range"})
    bytes = _bytes("the records' stored size over the whole range")


class TopicStatsSchema(Schema):
    topic = fields.String(required=True)
    from_ms = fields.Integer(required=True)
    to_ms = fields.Integer(required=True)
    bucket_ms = fields.Integer(required=True)
    records = fields.Integer(required=True, metadata={"description": "in the whole range"})
    bytes = _bytes("the records' stored size in the whole range")
    partitions = fields.List(fields.Nested(PartitionTotalSchema), required=True, metadata={
        "description": "each partition counted, with its totals"})
    buckets = fields.List(fields.Nested(StatsBucketSchema), required=True, metadata={
        "description": "summed over the partitions, oldest first. " + _COUNTS_AT})


class KeyCountSchema(Schema):
    key = fields.String(required=True, allow_none=True, metadata={
        "description": "base64; null for records without a key", "example": "dXNlci0x"})
    records = fields.Integer(required=True)


class KeyStatsSchema(Schema):
    topic = fields.String(required=True)
    from_ms = fields.Integer(required=True)
    to_ms = fields.Integer(required=True)
    partitions = fields.List(fields.Integer(), required=True)
    keys = fields.List(fields.Nested(KeyCountSchema), required=True, metadata={
        "description": "most records first; ties by key, null first"})
    distinct_keys = fields.Integer(required=True, metadata={
        "description": "different keys among the records counted"})
    scanned_records = fields.Integer(required=True, metadata={"description": "records counted"})
    scanned_bytes = fields.Integer(required=True, metadata={
        "description": "their size (key, value, headers and 37 bytes each)"})
    complete = fields.Boolean(required=True, metadata={
        "description": "whether every record of the range was counted"})
    scanned_to_ms = fields.Integer(required=True, metadata={
        "description": "every record before this time was counted, none at or after it "
                       "(to_ms when complete): continue with from_ms set to it, or narrow "
                       "the range. " + _COUNTS_AT})
    stopped_by = fields.String(required=True, allow_none=True,
                               validate=validate.OneOf(["records", "bytes"]), metadata={
                                   "description": "the bound that stopped the count (the "
                                                  "server's max_stats_scan_records or _bytes)"})
