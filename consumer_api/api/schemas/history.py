"""The history route: its query and its answer (see :mod:`consumer_api.history`)."""
from __future__ import annotations

from marshmallow import Schema, fields, validate

from consumer_api.api.schemas.common import INT64_MAX


class HistoryQuerySchema(Schema):
    since_ms = fields.Integer(validate=validate.Range(min=0, max=INT64_MAX), load_default=0,
                              metadata={"description": "only samples taken after this time "
                                                       "(epoch ms); default: all"})


class TopicRatesSchema(Schema):
    records_in = fields.Float(metadata={"description": "records appended per second"})
    records_out = fields.Float(metadata={
        "description": "records this node delivered to consumers per second"})
    high_watermark = fields.Integer(metadata={"description": "summed over the partitions"})
    partitions = fields.List(fields.Integer(), metadata={
        "description": "each partition's high watermark, by partition number"})
    size_bytes = fields.Integer(allow_none=True, metadata={
        "description": "record bytes stored (null where the store does not tell)"})


class GroupLagSchema(Schema):
    lag = fields.Integer(metadata={"description": "high watermark minus committed offset, "
                                                  "summed over the group's partitions"})


class SampleSchema(Schema):
    time_ms = fields.Integer(metadata={"description": "when it was taken (epoch ms)"})
    records_in = fields.Float()
    records_out = fields.Float()
    sessions = fields.Integer()
    waiting_polls = fields.Integer()
    topics = fields.Dict(keys=fields.String(), values=fields.Nested(TopicRatesSchema))
    groups = fields.Dict(keys=fields.String(), values=fields.Nested(GroupLagSchema))


class HistorySchema(Schema):
    interval_ms = fields.Integer(metadata={"description": "time between two samples"})
    samples = fields.List(fields.Nested(SampleSchema), metadata={
        "description": "oldest first; rates are per second over the interval before each"})
