"""What makes a topic name and a topic's settings valid, on every backend.

A name is 1 to 249 characters of ``A-Z a-z 0-9 . _ -``, not ``.`` or ``..``, and does not
start with ``__`` (reserved for a store's internal topics) -- Kafka's own rule, which also
keeps a name from ever being a path outside a data directory. Partition counts and
segment sizes have the limits below.
"""
from __future__ import annotations

import re

from consumer_api.errors import InvalidRequest

#: the characters and length of a topic name (as a regular expression, for ``fullmatch``)
TOPIC_NAME_PATTERN = r"[A-Za-z0-9._-]{1,249}"
TOPIC_NAME_RE = re.compile(TOPIC_NAME_PATTERN)
#: the whole rule as one anchored pattern (ECMA 262 and Python alike), for the OpenAPI document
TOPIC_NAME_DOCUMENTED = rf"^(?!\.\.?$)(?!__){TOPIC_NAME_PATTERN}$"
#: most partitions a topic may have
MAX_PARTITIONS = 1024
#: smallest and largest segment size a topic may set (bytes)
MIN_SEGMENT_BYTES = 1024
MAX_SEGMENT_BYTES = 1 << 30


def topic_name_problem(name, internal: bool = False) -> str | None:
    """Why ``name`` is not a valid topic name, or None if it is. ``internal`` admits the
    ``__`` prefix (a store's own topics)."""
    if not isinstance(name, str) or not TOPIC_NAME_RE.fullmatch(name):
        return "must be 1 to 249 characters of A-Z, a-z, 0-9, '.', '_' and '-'"
    if name in (".", ".."):
        return "must not be '.' or '..'"
    if name.startswith("__") and not internal:
        return "must not start with '__' (reserved for internal topics)"
    return None


def check_topic_name(name, internal: bool = False) -> str:
    """``name`` if valid, else InvalidRequest naming the problem."""
    problem = topic_name_problem(name, internal)
    if problem:
        raise InvalidRequest(f"invalid topic name: {problem}", {"name": [problem]})
    return name
