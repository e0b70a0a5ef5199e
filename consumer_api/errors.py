"""The one root of domain errors.

Every error a caller can cause or meet derives from :class:`ConsumerApiError` and carries a
stable machine ``code`` (the ``code`` of the HTTP error envelope in ``API.md``), a human
message and optional ``details``. Only ``consumer_api.api.errors`` knows HTTP statuses.
"""
from __future__ import annotations


class ConsumerApiError(Exception):
    """Base of all domain errors."""

    code = "internal_error"
    message = "internal error"

    def __init__(self, message: str | None = None, details: dict | None = None):
        super().__init__(message or self.message)
        self.details = details or {}

    @property
    def text(self) -> str:
        return self.args[0]


class InvalidRequest(ConsumerApiError):
    code, message = "invalid_request", "invalid request"


class OffsetOutOfRange(ConsumerApiError):
    code, message = "offset_out_of_range", "offset out of range"


class TopicNotFound(ConsumerApiError):
    code, message = "topic_not_found", "topic not found"


class PartitionNotFound(ConsumerApiError):
    code, message = "partition_not_found", "partition not found"


class TopicExists(ConsumerApiError):
    code, message = "topic_exists", "topic already exists"


class ConsumerNotFound(ConsumerApiError):
    code, message = "consumer_not_found", "consumer not found"


class GroupNotFound(ConsumerApiError):
    code, message = "group_not_found", "group not found"


class PartitionNotAssigned(ConsumerApiError):
    code, message = "partition_not_assigned", "partition not assigned to this consumer"


class GroupNotEmpty(ConsumerApiError):
    code, message = "group_not_empty", "group has active members"


class TooManyConsumers(ConsumerApiError):
    code, message = "too_many_consumers", "too many consumers"


class TooManyPolls(ConsumerApiError):
    """A consume would wait, but every waiting-poll slot (of the server, or of the client)
    is taken: the client should retry after a pause (the response says how long)."""

    code, message = "too_many_polls", "too many waiting polls"


class BodyTooLarge(ConsumerApiError):
    """A request body is larger than the server takes (after decompression, for a body that
    came compressed)."""

    code, message = "payload_too_large", "request body too large"


class UnsupportedMediaType(ConsumerApiError):
    """A request body in a media type or content coding the server does not take; the
    details name what it takes."""

    code, message = "unsupported_media_type", "unsupported media type"


class RecordTooLarge(ConsumerApiError):
    """A record is larger than the store takes (a Kafka cluster's ``max.message.bytes``)."""

    code, message = "payload_too_large", "a record is too large for the store"


class Unavailable(ConsumerApiError):
    code, message = "unavailable", "service unavailable"


class StorageFull(ConsumerApiError):
    """The disk has no room for a new segment or its growth (ENOSPC). Nothing was written."""

    code, message = "insufficient_storage", "no space left on the data volume"


class CorruptLog(ConsumerApiError):
    """A stored record failed its CRC on read: the file was damaged after it was written."""

    code, message = "corrupt_log", "a stored record is corrupt"


class DataDirLocked(ConsumerApiError):
    """Another process holds the data directory."""

    code, message = "data_dir_locked", "the data directory is in use by another process"


class Unauthorized(ConsumerApiError):
    code, message = "unauthorized", "missing or invalid API key"


class Forbidden(ConsumerApiError):
    code, message = "forbidden", "this API key may not do that"
