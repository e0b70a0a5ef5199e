"""Times and durations on the command line: parameter types for click, and how times are
printed. Times are UTC throughout: an ISO 8601 time without an offset is read as UTC, and
times print as ``2024-12-05T10:00:00Z``."""
from __future__ import annotations

import datetime as dt
import re

import click

#: milliseconds per duration unit
UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_DURATION = re.compile(r"(\d+)(ms|s|m|h|d)?")


class Duration(click.ParamType):
    """``500ms``, ``10s``, ``1m``, ``2h``, ``1d`` or a number of milliseconds, as ms."""

    name = "duration"

    def convert(self, value, param, ctx) -> int:
        if isinstance(value, int):
            return value
        found = _DURATION.fullmatch(str(value).strip())
        if found is None or int(found.group(1)) < 1:
            self.fail(f"{value!r} is not a duration (500ms, 10s, 1m, 2h, 1d or milliseconds)",
                      param, ctx)
        return int(found.group(1)) * UNITS_MS[found.group(2) or "ms"]


class Time(click.ParamType):
    """An ISO 8601 time (UTC unless it says otherwise) or epoch milliseconds, as epoch ms."""

    name = "time"

    def convert(self, value, param, ctx) -> int:
        if isinstance(value, int):
            return value
        text = str(value).strip()
        if text.isdigit():
            return int(text)
        try:
            when = dt.datetime.fromisoformat(text)
        except ValueError:
            self.fail(f"{value!r} is not a time (ISO 8601 like 2024-12-05T10:00, or epoch "
                      "milliseconds)", param, ctx)
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.timezone.utc)
        millis = int(when.timestamp() * 1000)
        if millis < 0:
            self.fail(f"{value!r} is before 1970", param, ctx)
        return millis


def show_time(epoch_ms: int) -> str:
    """``2024-12-05T10:00:00Z`` (milliseconds shown when there are some)."""
    try:
        when = dt.datetime.fromtimestamp(epoch_ms / 1000, dt.timezone.utc)
    except (OverflowError, ValueError, OSError):  # past year 9999
        return str(epoch_ms)
    spec = "milliseconds" if epoch_ms % 1000 else "seconds"
    return when.replace(tzinfo=None).isoformat(timespec=spec) + "Z"


def show_duration(ms: int) -> str:
    """The largest unit that divides ``ms``: ``1m``, ``90s``, ``250ms``."""
    for unit in ("d", "h", "m", "s"):
        if ms % UNITS_MS[unit] == 0:
            return f"{ms // UNITS_MS[unit]}{unit}"
    return f"{ms}ms"
