"""Typed errors of the client: one class per error ``code`` of the server's envelope.

``ApiError`` carries what the server said: ``status`` (HTTP), ``code`` (e.g.
``topic_not_found``), ``message`` and ``details``; :class:`TooManyPolls` also how long to
pause (``retry_after_s``, from ``Retry-After``). ``ConnectionFailed`` is raised when the
server cannot be reached at all.
"""
from __future__ import annotations

import socket


class ClientError(Exception):
    """Root of everything the client raises."""


class ConnectionFailed(ClientError):
    """The server could not be reached (refused, timed out, DNS...)."""


#: what went wrong, by the low-level error found under a requests exception
_UNREACHABLE = ((ConnectionRefusedError, "connection refused"),
                (ConnectionResetError, "connection reset"),
                (TimeoutError, "timed out"),
                (socket.gaierror, "host name not resolved"))


def why_unreachable(exc: BaseException) -> str:
    """A few words for a failed connection (``connection refused``, ``timed out`` ...),
    from the chain of causes under ``exc`` -- not urllib3's paragraph."""
    seen = exc
    while seen is not None:
        for kind, words in _UNREACHABLE:
            if isinstance(seen, kind):
                return words
        for arg in getattr(seen, "args", ()):
            if isinstance(arg, BaseException):
                for kind, words in _UNREACHABLE:
                    if isinstance(arg, kind):
                        return words
        seen = seen.__cause__ or seen.__context__
    if "timed out" in str(exc).lower() or "timeout" in type(exc).__name__.lower():
        return "timed out"
    return type(exc).__name__


class ApiError(ClientError):
    code = "error"

    def __init__(self, message: str, status: int = 0, code: str | None = None,
                 details: dict | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code or self.code
        self.details = details or {}

    def __str__(self) -> str:
        return f"{self.message} ({self.code}, HTTP {self.status})" if self.status else self.message


def _error(name: str, code: str, doc: str) -> type:
    return type(name, (ApiError,), {"code": code, "__doc__": doc})


InvalidRequest = _error("InvalidRequest", "invalid_request", "400: the request was refused")
OffsetOutOfRange = _error("OffsetOutOfRange", "offset_out_of_range",
                          "400: details give log_start_offset and high_watermark")
Unauthorized = _error("Unauthorized", "unauthorized", "401: API key missing or wrong")
Forbidden = _error("Forbidden", "forbidden", "403: the key lacks the right")
NotFound = _error("NotFound", "not_found", "404: no such route")
ConsumerNotFound = _error("ConsumerNotFound", "consumer_not_found",
                          "404: the session is unknown, closed or expired")
TopicNotFound = _error("TopicNotFound", "topic_not_found", "404")
PartitionNotFound = _error("PartitionNotFound", "partition_not_found", "404")
GroupNotFound = _error("GroupNotFound", "group_not_found", "404")
TopicExists = _error("TopicExists", "topic_exists", "409")
PartitionNotAssigned = _error("PartitionNotAssigned", "partition_not_assigned",
                              "409: the partition belongs to another member now")
GroupNotEmpty = _error("GroupNotEmpty", "group_not_empty", "409")
PayloadTooLarge = _error("PayloadTooLarge", "payload_too_large", "413")
UnsupportedMediaType = _error("UnsupportedMediaType", "unsupported_media_type",
                              "415: the body's media type or content coding is not taken")
TooManyConsumers = _error("TooManyConsumers", "too_many_consumers", "429")


class TooManyPolls(ApiError):
    """429: the consume would have waited, but the server has no waiting slot free (its
    own, or this client's share). Nothing was taken; retry after ``retry_after_s``."""

    code = "too_many_polls"
    #: the pause the server asked for (seconds), when it sent none or an unusable one
    DEFAULT_RETRY_AFTER_S = 1.0

    def __init__(self, *args, retry_after_s: float | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.retry_after_s = self.DEFAULT_RETRY_AFTER_S if retry_after_s is None \
            else retry_after_s


Unavailable = _error("Unavailable", "unavailable", "503: starting or shutting down")
InsufficientStorage = _error("InsufficientStorage", "insufficient_storage", "507: disk full")

BY_CODE = {cls.code: cls for cls in (
    InvalidRequest, OffsetOutOfRange, Unauthorized, Forbidden, NotFound, ConsumerNotFound,
    TopicNotFound, PartitionNotFound, GroupNotFound, TopicExists, PartitionNotAssigned,
    GroupNotEmpty, PayloadTooLarge, UnsupportedMediaType, TooManyConsumers, TooManyPolls,
    Unavailable, InsufficientStorage)}


def from_response(status: int, body, headers=None) -> ApiError:
    """The typed error for an error response (its JSON body, or None if it had none; its
    headers, a mapping, for ``Retry-After``)."""
    if isinstance(body, dict) and isinstance(body.get("code"), str):
        cls = BY_CODE.get(body["code"], ApiError)
        args = (str(body.get("error") or body["code"]), status, body["code"],
                body.get("details") if isinstance(body.get("details"), dict) else {})
        if cls is TooManyPolls:
            return cls(*args, retry_after_s=retry_after_s((headers or {}).get("Retry-After")))
        return cls(*args)
    return ApiError(f"HTTP {status} without an error body", status)


def retry_after_s(value) -> float | None:
    """Seconds from a ``Retry-After`` header in seconds (the server's form); None when it
    is missing, a date or nonsense."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return seconds if seconds >= 0 else None
