"""The bytes of response heads, and of the error envelope the server answers with by itself
(for requests that never reach the application: protocol errors, timeouts, refusals).

Every response carries ``Content-Length`` (bodies are whole before they are sent, never
chunked), ``Date`` and ``Connection: keep-alive`` or ``close``. Thread-safe (the date cache is
one attribute, replaced whole).
"""
from __future__ import annotations

import time
from email.utils import formatdate
from http import HTTPStatus

import orjson

#: headers the server sets itself; an application's are dropped
_OWN = frozenset(("connection", "content-length", "transfer-encoding", "keep-alive", "date"))
_date_cache = (0, b"")


def reason_phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def http_date() -> bytes:
    """The ``Date`` header line for the current second."""
    global _date_cache
    now = int(time.time())
    second, line = _date_cache
    if second != now:
        line = b"Date: " + formatdate(now, usegmt=True).encode("ascii") + b"\r\n"
        _date_cache = (now, line)
    return line


def head(status: str, headers: list, keep_alive: bool, length: int | None) -> bytes:
    """The status line and headers of a response: ``status`` is WSGI's (``"200 OK"``),
    ``headers`` WSGI's list of (name, value) str pairs; ``length`` is the body's length, or
    None for a response that has no body by its nature (HEAD, 204, 304) and keeps the
    application's ``Content-Length``."""
    lines = ["HTTP/1.1 ", status, "\r\n"]
    for name, value in headers:
        lowered = name.lower()
        if lowered in _OWN and not (length is None and lowered == "content-length"):
            continue
        lines += (name, ": ", value, "\r\n")
    if length is not None:
        lines += ("Content-Length: ", str(length), "\r\n")
    lines.append("Connection: keep-alive\r\n" if keep_alive else "Connection: close\r\n")
    return "".join(lines).encode("latin-1") + http_date() + b"\r\n"


def error_response(status: int, code: str, message: str, details: dict | None = None,
                   headers: tuple = (), keep_alive: bool = False) -> bytes:
    """A whole response carrying the API's error envelope."""
    body = orjson.dumps({"error": message, "code": code, "details": details or {}})
    all_headers = [("Content-Type", "application/json"), *headers]
    return head(f"{status} {reason_phrase(status)}", all_headers, keep_alive, len(body)) + body
