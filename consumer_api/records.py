"""Records as every layer sees them: the one to append and the one read back.

Keys and values are bytes or None; headers map a name (str) to a value (str). Records read back are
plain tuples in :class:`Record`'s field order (cheap to build, and never tracked by the
garbage collector); their headers are a shared, read-only dict.
"""
from __future__ import annotations

from typing import NamedTuple


class Record(NamedTuple):
    """A stored record, as read back. ``key``/``value`` are bytes or None; ``headers`` a
    read-only dict, or None when the record has none. reads return plain tuples of these
    fields, in this order."""

    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: dict | None


class NewRecord(NamedTuple):
    """A record to append. ``timestamp`` None means "the log's clock at append"."""

    key: bytes | None = None
    value: bytes | None = None
    headers: dict | None = None
    timestamp: int | None = None


class FrozenHeaders(dict):
    """The headers of a stored record: a dict that refuses changes (records read back are
    shared values)."""

    def _read_only(self, *args, **kwargs):
        raise TypeError("record headers are read-only")

    __setitem__ = __delitem__ = __ior__ = _read_only
    clear = pop = popitem = setdefault = update = _read_only

    def __reduce__(self):  # copy, deepcopy and pickle rebuild through the constructor
        return (FrozenHeaders, (dict(self),))

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self


NO_HEADERS = FrozenHeaders()


#: what a record costs against ``max_bytes`` besides its key, value and headers (the
#: embedded store's format-1 frame: every store counts records alike)
RECORD_OVERHEAD = 37


def record_size(record) -> int:
    """A record tuple ``(offset, timestamp, key, value, headers)``'s size as ``max_bytes``
    counts it: RECORD_OVERHEAD, key, value, and per header 6 + its UTF-8 name and value."""
    _offset, _ts, key, value, headers = record
    size = RECORD_OVERHEAD + len(key or b"") + len(value or b"")
    for name, text in (headers or {}).items():
        size += 6 + len(name.encode("utf-8")) + len(text.encode("utf-8"))
    return size
