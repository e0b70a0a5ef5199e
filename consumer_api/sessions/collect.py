"""Where a consume puts the records it takes: a :class:`Collector`, fed a window of records at
a time, so that whoever builds the response can encode each window and drop it before the
next is read, and can say when there is no room for more.

The manager asks ``room(stored_bytes)`` before reading a window (how many stored bytes the
window may hold: fewer, or 0 to stop the consume at once), then hands the window to
``add(topic, partition, records)`` (False: it did not fit after all; the records go back)
or calls ``unused()`` when the read brought nothing. ``begin(encoding)`` comes first, with
the encoding the response is to use.

A collector belongs to one consume (one thread); nothing here locks.
"""
from __future__ import annotations

from typing import NamedTuple, Protocol

#: stored bytes a consume reads from a partition at a time (a larger record comes alone)
WINDOW_BYTES = 256 * 1024


class Collector(Protocol):
    def begin(self, encoding: str) -> None: ...

    def room(self, stored_bytes: int) -> int: ...

    def add(self, topic: str, partition: int, records: list) -> bool: ...

    def unused(self) -> None: ...


class Span(NamedTuple):
    """Records a consume took from one partition: offsets ``first`` to ``after - 1``."""

    topic: str
    partition: int
    first: int
    after: int
    count: int


class RecordLists:
    """The plain collector: keeps every record, never short of room. ``chunks()`` gives
    ``(topic, partition, records)`` per partition, in the order they were read."""

    def __init__(self):
        self._lists: dict = {}

    def begin(self, encoding: str) -> None:
        self.encoding = encoding

    def room(self, stored_bytes: int) -> int:
        return stored_bytes

    def add(self, topic: str, partition: int, records: list) -> bool:
        self._lists.setdefault((topic, partition), []).extend(records)
        return True

    def unused(self) -> None:
        pass

    def chunks(self) -> list:
        return [(t, p, records) for (t, p), records in self._lists.items()]
