"""The one error envelope: ``{"error": sentence, "code": machine_code, "details": {...}}``.

Every failure a request can meet ends here -- domain errors, schema violations, malformed
JSON, unknown routes, wrong methods, oversized bodies and unexpected exceptions -- so a
client never sees HTML or a stack trace. Unexpected exceptions are logged with the request
id (never the body) and answered ``500 internal_error``. A ``429`` that turns a client away
to protect the others is counted and logged as a refusal (:mod:`consumer_api.refusals`),
and ``too_many_polls`` says when to come back (``Retry-After``).
"""
from __future__ import annotations

import logging

from flask import Flask, g, request
from werkzeug.exceptions import HTTPException

from consumer_api import errors as e
from consumer_api.api import security
from consumer_api.api.state import state

log = logging.getLogger(__name__)

STATUS = {
    e.InvalidRequest: 400,
    e.OffsetOutOfRange: 400,
    e.Unauthorized: 401,
    e.Forbidden: 403,
    e.ConsumerNotFound: 404,
    e.TopicNotFound: 404,
    e.PartitionNotFound: 404,
    e.GroupNotFound: 404,
    e.TopicExists: 409,
    e.PartitionNotAssigned: 409,
    e.GroupNotEmpty: 409,
    e.RecordTooLarge: 413,
    e.BodyTooLarge: 413,
    e.UnsupportedMediaType: 415,
    e.TooManyConsumers: 429,
    e.TooManyPolls: 429,
    e.Unavailable: 503,
    e.StorageFull: 507,
    e.CorruptLog: 500,
}

#: seconds a client should pause before it tries again (the ``Retry-After`` header)
RETRY_AFTER_S = {e.TooManyPolls: 1}
#: the ``reason`` of a 503 that refuses a request for want of room (the server is busy,
#: not unwell): answered with ``Retry-After`` and counted as a refusal by that reason
BUSY_REASONS = frozenset(("request_budget", "response_budget", "stats_scans"))
BUSY_RETRY_AFTER_S = 1

#: (error, the ``scope`` of its details) -> the refusal's reason in /metrics
REFUSAL_REASONS = {
    (e.TooManyPolls, "server"): "server_polls",
    (e.TooManyPolls, "client"): "client_polls",
    (e.TooManyConsumers, "client"): "client_sessions",
    (e.TooManyConsumers, "server"): "server_sessions",
}

# Werkzeug's HTTP errors, by status: (code, sentence)
HTTP_CODES = {
    400: ("invalid_request", "the request could not be understood"),
    404: ("not_found", "no such route"),
    405: ("method_not_allowed", "method not allowed on this route"),
    413: ("payload_too_large", "request body too large"),
    415: ("unsupported_media_type",
          "the request body must be JSON (Content-Type: application/json)"),
}


def error_response(status: int, code: str, message: str, details: dict | None = None):
    from flask import current_app
    resp = current_app.json.response({"error": message, "code": code, "details": details or {}})
    resp.status_code = status
    return resp


def status_of(exc: e.ConsumerApiError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def register(app: Flask) -> None:
    @app.errorhandler(e.ConsumerApiError)
    def domain_error(exc: e.ConsumerApiError):
        status = status_of(exc)
        if status >= 500 and status != 503:  # 503: starting or stopping, not a fault
            log.error("request %s: %s: %s", g.get("request_id"), exc.code, exc.text)
        resp = error_response(status, exc.code, exc.text, exc.details)
        for name, value in getattr(exc, "headers", {}).items():
            resp.headers[name] = value
        if type(exc) in RETRY_AFTER_S:
            resp.headers["Retry-After"] = str(RETRY_AFTER_S[type(exc)])
        reason = REFUSAL_REASONS.get((type(exc), exc.details.get("scope")))
        if isinstance(exc, e.Unavailable) and exc.details.get("reason") in BUSY_REASONS:
            reason = exc.details["reason"]
            resp.headers["Retry-After"] = str(BUSY_RETRY_AFTER_S)
        if reason is not None:
            state().refusals.record(reason, security.client().name, exc.text)
        return resp

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        status = exc.code or 500
        code, message = HTTP_CODES.get(status, ("http_error", exc.name.lower()))
        details = {}
        if status == 413:
            limit = app.config.get("MAX_CONTENT_LENGTH")
            message = f"request body too large (the limit is {limit} bytes)"
            details = {"max_body_bytes": limit}
        elif status == 405:
            details = {"allowed": sorted(exc.valid_methods or [])}
        elif status == 404:
            details = {"path": request.path}
        resp = error_response(status, code, message, details)
        if status == 405 and exc.valid_methods:
            resp.headers["Allow"] = ", ".join(sorted(exc.valid_methods))
        return resp

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        log.exception("request %s: unexpected error on %s %s", g.get("request_id"),
                      request.method, request.url_rule.rule if request.url_rule else "?")
        return error_response(500, "internal_error",
                              "internal error; the server log has the details under the request id",
                              {"request_id": g.get("request_id")})
