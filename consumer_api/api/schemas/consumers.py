"""Consumer sessions: requests and responses."""
from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from consumer_api.api.schemas.common import (ENCODINGS, INT64_MAX, ScanReportSchema,
                                             StrictBoolean, encoding_field, filter_field,
                                             strict_int)
from consumer_api.api.schemas.records import RecordSchema
from consumer_api.api.schemas.topics import topic_name_field
from consumer_api.config import KEYWORDS

GROUP_ID_PATTERN = r"^[^/\\\x00-\x1f\x7f]{1,249}$"


def group_id_field(**kwargs):
    return fields.String(validate=validate.Regexp(
        GROUP_ID_PATTERN, error="must be 1 to 249 printable characters without '/' or '\\'"),
        metadata={"example": "billing", "pattern": GROUP_ID_PATTERN}, **kwargs)


class PartitionKey(fields.String):
    """A partition number written as a JSON object key ("0", "1", ...)."""

    default_error_messages = {"partition": "Not a partition number."}

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        if not (text.isascii() and text.isdigit()) or len(text) > 10:
            raise self.make_error("partition")
        return int(text)


def offsets_map_field(description: str = "{topic: {\"partition\": offset}}: partition keys "
                                         "are decimal numbers (\"0\", \"1\", ...), else 400; an "
                                         "offset is the next one to read and lies within the "
                                         "partition's [log start, high watermark], else 400 "
                                         "offset_out_of_range", **kwargs):
    """``{topic: {"partition": offset}}``."""
    return fields.Dict(keys=fields.String(), values=fields.Dict(
        keys=PartitionKey(), values=strict_int(0, INT64_MAX)), metadata={
        "description": description, "example": {"orders": {"0": 42, "1": 17}}}, **kwargs)


def assignment_field(**kwargs):
    return fields.Dict(keys=fields.String(), values=fields.List(fields.Integer()), metadata={
        "description": "{topic: [partitions]}", "example": {"orders": [0, 1]}}, **kwargs)


class SubscribeSchema(Schema):
    group_id = group_id_field(required=True)
    topics = fields.List(topic_name_field(), required=True, validate=validate.Length(min=1),
                         metadata={"example": ["orders"]})
    auto_offset_reset = fields.String(validate=validate.OneOf(["earliest", "latest"]),
                                      load_default="latest", metadata={
        "description": "where a partition with no committed offset starts",
        "example": "earliest"})
    session_timeout_ms = strict_int(1000, 300000, metadata={
        "description": "the session closes after this long without a request (default: "
                       "the server's CONSUMER_API_SESSION_TIMEOUT_MS, 30000)",
        "default": 30000})
    auto_commit = StrictBoolean(load_default=False, metadata={
        "description": "each consume first commits what the previous one returned"})
    encoding = encoding_field()
    assignor = fields.String(validate=validate.OneOf(KEYWORDS["default_assignor"]), metadata={
        "description": "how the group splits its partitions; the group's first member decides "
                       "(later members' choice is ignored while it has members); default: "
                       "the server's CONSUMER_API_DEFAULT_ASSIGNOR (on Kafka: range; sticky "
                       "is Kafka's cooperative-sticky there)"})


class AssignmentSchema(Schema):
    group_id = fields.String(required=True)
    assignment = assignment_field(required=True)
    generation = fields.Integer(required=True, metadata={
        "description": "the group's generation (-1 for a manually assigned session)"})
    state = fields.String(metadata={
        "enum": ["joining"],
        "description": "present while the session's join into its group is still in "
                       "progress (a store whose joins take a while, like Kafka): it has no "
                       "partitions yet and gets them on a later request"})


class SubscriptionSchema(AssignmentSchema):
    consumer_id = fields.String(required=True)
    topics = fields.List(fields.String(), required=True)


class SessionSchema(SubscriptionSchema):
    manual = fields.Boolean(required=True, metadata={
        "description": "assigned by hand (PUT .../assignment), not by its group"})
    owner = fields.String(allow_none=True, required=True, metadata={
        "description": "the name of the API key that made it (null on an open server)"})
    last_heartbeat_ms_ago = fields.Integer(required=True, metadata={
        "description": "since the session's last request"})
    waiting = fields.Boolean(required=True, metadata={
        "description": "a consume of this session is waiting for records"})


class SessionListSchema(Schema):
    sessions = fields.List(fields.Nested(SessionSchema), required=True)


class ConsumeSchema(Schema):
    max_records = strict_int(1, 10000, load_default=500)
    timeout_ms = strict_int(0, 300000, load_default=30000, metadata={
        "description": "longest wait for the first record (for min_records of them); "
                       "returns as soon as they exist"})
    min_records = strict_int(1, 10000, load_default=1, metadata={
        "description": "wait until this many records (at most max_records) are ready in "
                       "the owned partitions, counted before any filter, or until "
                       "timeout_ms, then return what there is: fewer, larger answers "
                       "(Kafka's fetch.min.bytes, in records)"})
    max_bytes_total = strict_int(1024, 104857600, load_default=1048576, metadata={
        "description": "truncates the batch (a single larger record still comes alone)"})
    encoding = fields.String(validate=validate.OneOf(ENCODINGS), metadata={
        "description": "default: the session's encoding", "enum": list(ENCODINGS)})
    filter = filter_field()


class ConsumeResponseSchema(ScanReportSchema):
    records = fields.List(fields.Nested(RecordSchema), required=True)
    timestamp = fields.Integer(required=True, metadata={"description": "server time, epoch ms"})
    positions = offsets_map_field("with a filter: the session's positions after the consume "
                                  "(past the records it skipped)")


class CommitSchema(Schema):
    offsets = offsets_map_field("omit to commit the current positions (exactly the records "
                                "returned so far)")


class OffsetsResultSchema(Schema):
    success = fields.Boolean(required=True)
    message = fields.String(required=True)
    offsets = offsets_map_field(required=True)


class SeekSchema(Schema):
    #: exactly one target; an offset names its topic and partition; a partition its topic
    OPENAPI_RULES = {
        "oneOf": [{"required": ["offset"]}, {"required": ["position"]},
                  {"required": ["timestamp"]}],
        "allOf": [{"anyOf": [{"not": {"required": ["offset"]}},
                             {"required": ["topic", "partition"]}]},
                  {"anyOf": [{"not": {"required": ["partition"]}}, {"required": ["topic"]}]}],
    }
    topic = topic_name_field()
    partition = strict_int(0, 2 ** 31 - 1)
    offset = strict_int(0, INT64_MAX, metadata={
        "description": "within the partition's [log start, high watermark], else 400 "
                       "offset_out_of_range"})
    position = fields.String(validate=validate.OneOf(["beginning", "end"]))
    timestamp = strict_int(0, INT64_MAX, metadata={"description": "epoch ms"})

    @validates_schema
    def _one_target(self, data, **kwargs):
        given = [k for k in ("offset", "position", "timestamp") if k in data]
        if len(given) != 1:
            raise ValidationError("give exactly one of offset, position or timestamp",
                                  "_schema")
        if "offset" in data and ("topic" not in data or "partition" not in data):
            raise ValidationError("an offset needs its topic and partition", "_schema")
        if "partition" in data and "topic" not in data:
            raise ValidationError("a partition needs its topic", "topic")


class ManualAssignmentSchema(Schema):
    topics = fields.Dict(keys=topic_name_field(), values=fields.List(
        strict_int(0, 2 ** 31 - 1)), required=True, metadata={"example": {"orders": [0, 1]}})


class PositionsSchema(Schema):
    offsets = offsets_map_field(required=True)


class CloseQuerySchema(Schema):
    commit = fields.Boolean(load_default=False, metadata={
        "description": "commit the current positions before closing"})
