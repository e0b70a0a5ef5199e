"""Consumer group administration: requests and responses."""
from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from consumer_api.api.schemas.consumers import assignment_field, offsets_map_field
from consumer_api.api.schemas.topics import topic_name_field


class GroupSummarySchema(Schema):
    group_id = fields.String(required=True)
    state = fields.String(required=True, metadata={"enum": ["Empty", "Stable"]})
    generation = fields.Integer(required=True)
    members = fields.List(fields.String(), required=True, metadata={
        "description": "consumer ids of the live members"})


class GroupListSchema(Schema):
    groups = fields.List(fields.Nested(GroupSummarySchema), required=True)


class GroupMemberSchema(Schema):
    consumer_id = fields.String(required=True)
    topics = fields.List(fields.String(), required=True)
    assignment = assignment_field(required=True)
    last_heartbeat_ms_ago = fields.Integer(required=True)


class GroupOffsetSchema(Schema):
    topic = fields.String(required=True)
    partition = fields.Integer(required=True)
    committed_offset = fields.Integer(required=True, allow_none=True)
    high_watermark = fields.Integer(required=True)
    lag = fields.Integer(required=True, allow_none=True, metadata={
        "description": "high_watermark - committed_offset (null without a commit)"})


class GroupDescriptionSchema(Schema):
    group_id = fields.String(required=True)
    state = fields.String(required=True, metadata={"enum": ["Empty", "Stable"]})
    generation = fields.Integer(required=True)
    assignor = fields.String(required=True)
    members = fields.List(fields.Nested(GroupMemberSchema), required=True)
    offsets = fields.List(fields.Nested(GroupOffsetSchema), required=True)


class GroupOffsetsRequestSchema(Schema):
    #: offsets or reset, not both; topics only with reset
    OPENAPI_RULES = {
        "oneOf": [{"required": ["offsets"]}, {"required": ["reset"]}],
        "anyOf": [{"not": {"required": ["topics"]}}, {"required": ["reset"]}],
    }
    offsets = offsets_map_field()
    reset = fields.String(validate=validate.OneOf(["earliest", "latest"]))
    topics = fields.List(topic_name_field(), metadata={
        "description": "with reset: the topics to reset (default: those with commits; a "
                       "group without commits must name them, else 400)"})

    @validates_schema
    def _one_way(self, data, **kwargs):
        if ("offsets" in data) == ("reset" in data):
            raise ValidationError("give either offsets or reset", "_schema")
        if "topics" in data and "reset" not in data:
            raise ValidationError("topics go with reset", "topics")
