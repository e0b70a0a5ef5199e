"""Produce and read: requests and responses."""
from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from consumer_api.api.encodings import DECODERS, MAX_HEADER_NAME_BYTES, Invalid
from consumer_api.api.schemas.common import (INT64_MAX, ScanReportSchema, encoding_field,
                                             filter_query_field, strict_int)


class Utf8String(fields.String):
    """A string that can be stored as UTF-8 (no lone surrogates)."""

    default_error_messages = {"utf8": "Not encodable as UTF-8."}

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise self.make_error("utf8") from None
        return text


class HeaderName(Utf8String):
    default_error_messages = {"long": f"Longer than {MAX_HEADER_NAME_BYTES} UTF-8 bytes."}

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        if len(text.encode("utf-8")) > MAX_HEADER_NAME_BYTES:
            raise self.make_error("long")
        return text


def headers_field(**kwargs):
    return fields.Dict(keys=HeaderName(), values=Utf8String(), metadata={
        "description": "string to string", "example": {"source": "web"}}, **kwargs)


def bytes_field(example="aGVsbG8=", **kwargs):
    return fields.Raw(allow_none=True, metadata={
        "description": "base64 string (default), UTF-8 string (encoding text) or any JSON "
                       "value (encoding json); null for none",
        "example": example}, **kwargs)


class ProduceRecordSchema(Schema):
    key = bytes_field(example="dXNlci0x")
    value = bytes_field(required=True)
    partition = strict_int(0, allow_none=True, metadata={
        "description": "explicit partition; default: murmur2(key) % partitions when keyed, "
                       "else round-robin"})
    headers = headers_field(allow_none=True)
    timestamp = strict_int(0, allow_none=True, metadata={
        "description": "epoch ms; default: the server's time of append"})


#: how keys and values are stated per encoding in the document (api/spec.py makes the
#: produce body one of three shapes): standard, padded base64 or null; text or null; any JSON
VALUE_RULES = {
    "base64": {"type": "string", "nullable": True,
               "pattern": "^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"},
    "text": {"type": "string", "nullable": True},
    "json": None,
}


class ProduceRequestSchema(Schema):
    records = fields.List(fields.Nested(ProduceRecordSchema), required=True,
                          validate=validate.Length(min=1), metadata={
                              "example": [{"key": "dXNlci0x", "value": "aGVsbG8=",
                                           "headers": {"source": "web"}}]})
    encoding = encoding_field()

    @validates_schema
    def _keys_and_values_match_the_encoding(self, data, **kwargs):
        decode = DECODERS[data.get("encoding", "base64")]
        errors = {}
        for i, record in enumerate(data.get("records") or ()):
            for name in ("key", "value"):
                try:
                    decode(record.get(name))
                except Invalid as exc:
                    errors.setdefault(i, {})[name] = [
                        f"Not valid for encoding {data.get('encoding', 'base64')!r}: {exc}."]
        if errors:
            raise ValidationError({"records": errors})


class ProducedOffsetSchema(Schema):
    partition = fields.Integer(required=True)
    offset = fields.Integer(required=True)
    timestamp = fields.Integer(required=True)


class ProduceResponseSchema(Schema):
    offsets = fields.List(fields.Nested(ProducedOffsetSchema), required=True, metadata={
        "description": "one per record, in request order"})


class RecordSchema(Schema):
    topic = fields.String(required=True)
    partition = fields.Integer(required=True)
    offset = fields.Integer(required=True)
    timestamp = fields.Integer(required=True)
    key = bytes_field(required=True)
    value = bytes_field(required=True)
    headers = fields.Dict(keys=fields.String(), values=fields.String(), required=True)
    encoding = fields.String(validate=validate.OneOf(["base64"]), metadata={
        "description": "present (always base64) only when this record's key or value could "
                       "not be shown in the requested encoding"})


class RecordListSchema(ScanReportSchema):
    records = fields.List(fields.Nested(RecordSchema), required=True)
    next_offset = fields.Integer(required=True, metadata={
        "description": "the offset to ask for next: after the last record returned (with a "
                       "filter: after the last record examined), else where the read "
                       "started"})
    high_watermark = fields.Integer(required=True, metadata={
        "description": "the partition's high watermark after the read: the read is at the "
                       "end when next_offset reaches it"})


class ReadQuerySchema(Schema):
    offset = fields.Integer(validate=validate.Range(min=0, max=INT64_MAX), metadata={
        "description": "first offset to read (not with timestamp: 400); default: the log "
                       "start; beyond the high watermark: 400 offset_out_of_range"})
    timestamp = fields.Integer(validate=validate.Range(min=0, max=INT64_MAX), metadata={
        "description": "instead of offset: read from the first record stored at or after "
                       "this time (epoch ms); the end when there is none. Not with offset: "
                       "400"})
    max_records = fields.Integer(validate=validate.Range(min=1, max=10000), load_default=500)
    max_bytes_total = fields.Integer(validate=validate.Range(min=1024, max=104857600),
                                     load_default=1048576)
    encoding = encoding_field()
    filter = filter_query_field()

    @validates_schema
    def one_start(self, data, **_kwargs):
        if "offset" in data and "timestamp" in data:
            raise ValidationError("Give offset or timestamp, not both.", "timestamp")
