"""Record responses (reads and consumes), built a window at a time against the server-wide
budget of response bytes in flight (``CONSUMER_API_RESPONSE_BUFFER_BYTES``). A
:class:`RecordBody` is the collector a consume fills (see
:mod:`consumer_api.sessions.collect`).

Before each window of records is fetched, :meth:`RecordBody.room` takes room from the
budget for it (stored bytes in base64 make 4 bytes of 3, and JSON goes around each record:
1.5 bytes of response per stored byte are reserved) and says how many stored bytes the
window may hold -- fewer when the budget runs short, none when it is spent. The window is
encoded at once (:meth:`RecordBody.add`) and its records dropped, so a response never holds
its records and their JSON whole at once; its exact size stays reserved until the server
has sent the response or given up on it (:meth:`RecordBody.release`, which the response
body's close calls) -- a response sent compressed keeps the room of its JSON, the larger
size, while it is built and sent. A response that would carry no record because the budget is spent --
no room at all, or the one record that comes alone does not fit -- is ``503 unavailable``
with ``Retry-After`` instead (:func:`too_busy`).

Thread-safe: the budget locks itself; a RecordBody belongs to one request.
"""
from __future__ import annotations


from consumer_api.api.records_wire import window_json
from consumer_api.api.state import state
from consumer_api.errors import Unavailable


class RecordBody:
    """The JSON pieces of a record list being built (``pieces``: the array's elements and
    commas, no brackets), ``count`` records in them, and the budget they hold."""

    def __init__(self, encoding: str | None = None, budget=None):
        self.encoding = encoding
        self.pieces: list = []
        self.count = 0
        self.refused = False  # the budget kept every record out
        self._budget = budget if budget is not None else state().response_budget
        self._held = 0
        self._granted = 0  # taken by room() for the window on its way

    def begin(self, encoding: str) -> None:
        """The encoding of the records (a consume learns it from its session)."""
        self.encoding = encoding

    def room(self, stored_bytes: int) -> int:
        """Take room for a window of up to ``stored_bytes`` stored bytes; returns how many
        it may hold (0: the budget is spent; stop)."""
        self._granted = self._budget.take_up_to(stored_bytes * 3 // 2)
        if not self._granted:
            self.refused = not self.count
        return self._granted * 2 // 3

    def add(self, topic: str, partition: int, records) -> bool:
        """Encode a window fetched within :meth:`room`'s answer (its records list may be
        dropped after). False when it does not fit: a window of one record, larger than its
        room, with the budget spent (``refused`` if it was the first)."""
        piece = window_json(topic, partition, records, self.encoding)
        size = len(piece) + (1 if self.pieces else 0)
        granted, self._granted = self._granted, 0
        extra = size - granted
        if extra <= 0:
            self._budget.give(-extra)
        elif len(records) > 1:
            self._budget.force(extra)  # the JSON around small records passed the estimate
        elif not self._budget.take(extra):
            self._budget.give(granted)
            self.refused = not self.count
            return False
        self._held += size
        if self.pieces:
            self.pieces.append(b",")
        self.pieces.append(piece)
        self.count += len(records)
        return True

    def take_pieces(self) -> list:
        """The pieces, handed over: this body keeps no reference to them (a server that
        frees each chunk once sent, or a response compressed at once, is not held back)."""
        pieces, self.pieces = self.pieces, []
        return pieces

    def unused(self) -> None:
        """Give back room taken for a window that brought nothing."""
        granted, self._granted = self._granted, 0
        if granted:
            self._budget.give(granted)

    def release(self) -> None:
        """Give back everything held (idempotent): the response was sent, or never will be."""
        self.unused()
        held, self._held = self._held, 0
        if held:
            self._budget.give(held)


def too_busy() -> Unavailable:
    """The 503 of a spent budget (a ``response_budget`` refusal: see api/errors.py)."""
    return Unavailable("the server is sending as many records as it may at once; retry "
                       "shortly", {"reason": "response_budget"})
