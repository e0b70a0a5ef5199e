"""Server logging: where ``consumer_api.*`` loggers write when run under gunicorn.

``configure(config)`` sends them to stderr (which gunicorn captures) at INFO, as ``plain``
lines in the style of gunicorn's own, or as ``json`` objects one per line
(``CONSUMER_API_LOG_FORMAT``). Access records (logger ``consumer_api.access``) carry their
fields in ``record.access`` (see :mod:`consumer_api.api.observe`): plain lines show them as
``key=value`` pairs, JSON lines as keys of the object. Library code only calls
``logging.getLogger(__name__)``; only the server entry point calls :func:`configure`, so
tests keep pytest's handlers.
"""
from __future__ import annotations

import json
import logging

from consumer_api.config import Config

PLAIN = "[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s"
DATE = "%Y-%m-%d %H:%M:%S %z"


def access_text(fields: dict) -> str:
    """``key=value`` pairs; a value that could break the line or fake a field (spaces,
    ``=``, quotes, control characters -- a consumer id comes from the URL) is written as a
    JSON string, so one request is always exactly one line."""
    return " ".join(f"{k}={_safe(v)}" for k, v in fields.items() if v is not None)


def _safe(value) -> str:
    text = str(value)
    if text and text.isprintable() and not any(c in text for c in ' ="\\'):
        return text
    return json.dumps(text)


class PlainFormatter(logging.Formatter):
    def __init__(self):
        super().__init__(PLAIN, DATE)

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "access", None)
        if fields is not None:
            record.msg, record.args = access_text(fields), ()
        return super().format(record)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {"time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
               "level": record.levelname, "logger": record.name, "pid": record.process}
        fields = getattr(record, "access", None)
        if fields is not None:
            out.update((k, v) for k, v in fields.items() if v is not None)
        else:
            out["message"] = record.getMessage()
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, separators=(",", ":"))


def configure(config: Config) -> None:
    logger = logging.getLogger("consumer_api")
    if logger.handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if config.log_format == "json" else PlainFormatter())
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
