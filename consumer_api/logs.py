"""Server logging: where ``consumer_api.*`` loggers write when run under gunicorn.

``configure(config)`` sends them to stderr (which gunicorn captures) at INFO, as ``plain``
lines in the style of gunicorn's own, or as ``json`` objects one per line
(``CONSUMER_API_LOG_FORMAT``); ``CONSUMER_API_ACCESS_LOG=false`` leaves out the access lines. Access records (logger ``consumer_api.access``) carry their
fields in ``record.access`` (see :mod:`consumer_api.api.observe`): plain lines show them as
``key=value`` pairs, JSON lines as keys of the object. Library code only calls
``logging.getLogger(__name__)``; only the server entry point calls :func:`configure`, so
tests keep pytest's handlers.
"""
from __future__ import annotations

import json
import logging
import os
import threading

from consumer_api.config import Config

PLAIN = "[%(asctime)s] [{pid}] [%(levelname)s] %(name)s: %(message)s"
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
        super().__init__(PLAIN.format(pid=os.getpid()), DATE)

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "access", None)
        if fields is not None:
            record.msg, record.args = access_text(fields), ()
        return super().format(record)


class JsonFormatter(logging.Formatter):
    def __init__(self):
        super().__init__()
        self.pid = os.getpid()

    def format(self, record: logging.LogRecord) -> str:
        out = {"time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
               "level": record.levelname, "logger": record.name, "pid": self.pid}
        fields = getattr(record, "access", None)
        if fields is not None:
            out.update((k, v) for k, v in fields.items() if v is not None)
        else:
            out["message"] = record.getMessage()
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, separators=(",", ":"))


class BufferedStderrHandler(logging.StreamHandler):
    """Writes to stderr through a 64 KiB buffer: warnings and errors are flushed at once,
    INFO lines (the access log) at least every ``interval_s`` and at exit (a write per line
    costs more server CPU than the rest of a trivial request)."""

    def __init__(self, interval_s: float = 1.0):
        stream = os.fdopen(os.dup(2), "w", buffering=1 << 16, encoding="utf-8",
                           errors="backslashreplace")
        super().__init__(stream)
        self._urgent = False
        self._stop = threading.Event()
        self._flusher = threading.Thread(target=self._flush_every, args=(interval_s,),
                                         name="log-flusher", daemon=True)
        self._flusher.start()

    def emit(self, record: logging.LogRecord) -> None:
        self._urgent = record.levelno >= logging.WARNING
        super().emit(record)  # ends with self.flush()

    def flush(self) -> None:
        if self._urgent:
            self.flush_now()

    def flush_now(self) -> None:
        logging.StreamHandler.flush(self)

    def _flush_every(self, interval_s: float) -> None:
        while not self._stop.wait(interval_s):
            self.flush_now()

    def close(self) -> None:
        self._stop.set()
        self.flush_now()
        super().close()


def _lean_records() -> None:
    """Skip what no line of this process shows (the logging manual's "Optimization"
    section): the caller's file and line (a stack walk per record) and thread names; and
    stamp every record with the pid saved once instead of a ``getpid`` system call per
    record (gunicorn's own lines print %(process)d, so it must stay right)."""
    logging._srcfile = None
    logging.logThreads = False
    logging.logMultiprocessing = False
    logging.logProcesses = False
    make, pid = logging.getLogRecordFactory(), os.getpid()

    def record(*args, **kwargs):
        rec = make(*args, **kwargs)
        rec.process = pid
        return rec

    logging.setLogRecordFactory(record)


def configure(config: Config) -> None:
    logger = logging.getLogger("consumer_api")
    if logger.handlers:
        return
    _lean_records()
    handler = BufferedStderrHandler()
    handler.setFormatter(JsonFormatter() if config.log_format == "json" else PlainFormatter())
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    if not config.access_log:
        logging.getLogger("consumer_api.access").setLevel(logging.WARNING)
