"""Topic requests and responses."""
from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validates

from consumer_api.api.schemas.common import strict_int
from consumer_api.topic_rules import (MAX_PARTITIONS, MAX_SEGMENT_BYTES, MIN_SEGMENT_BYTES,
                                      TOPIC_NAME_DOCUMENTED, topic_name_problem)


def topic_name_field(**kwargs):
    return fields.String(metadata={
        "description": "1-249 characters of A-Z a-z 0-9 . _ -; not '.' or '..'; "
                       "not starting with '__'",
        "pattern": TOPIC_NAME_DOCUMENTED, "example": "orders"}, **kwargs)


class TopicConfigSchema(Schema):
    retention_ms = strict_int(-1, metadata={
        "description": "delete segments whose newest record is older (ms); -1 keeps forever",
        "example": 604800000})
    retention_bytes = strict_int(-1, metadata={
        "description": "keep about this many bytes per partition; -1 = no limit", "example": -1})
    segment_bytes = strict_int(MIN_SEGMENT_BYTES, MAX_SEGMENT_BYTES, metadata={
        "description": "roll a partition's segment file at this size", "example": 67108864})


class TopicCreateSchema(Schema):
    name = topic_name_field(required=True)
    partitions = strict_int(1, MAX_PARTITIONS, required=True, metadata={"example": 3})
    config = fields.Nested(TopicConfigSchema, metadata={"example": {"retention_ms": 86400000}})

    @validates("name")
    def _name(self, value, **_):
        problem = topic_name_problem(value)
        if problem:
            raise ValidationError(problem)


class TopicSchema(Schema):
    name = topic_name_field(required=True)
    partitions = fields.Integer(required=True)
    config = fields.Nested(TopicConfigSchema, required=True)


class PartitionOffsetsSchema(Schema):
    partition = fields.Integer(required=True)
    log_start_offset = fields.Integer(required=True)
    high_watermark = fields.Integer(required=True, metadata={
        "description": "the offset the next record will get"})


class PartitionDescriptionSchema(PartitionOffsetsSchema):
    size_bytes = fields.Integer(required=True, allow_none=True, metadata={
        "description": "bytes of records on disk (null on the Kafka store, which does not "
                       "tell)"})


class TopicSummarySchema(Schema):
    name = topic_name_field(required=True)
    partitions = fields.List(fields.Nested(PartitionOffsetsSchema), required=True)


class TopicListSchema(Schema):
    topics = fields.List(fields.Nested(TopicSummarySchema), required=True)


class TopicDescriptionSchema(Schema):
    name = topic_name_field(required=True)
    config = fields.Nested(TopicConfigSchema, required=True)
    partitions = fields.List(fields.Nested(PartitionDescriptionSchema), required=True)
