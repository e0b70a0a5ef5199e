"""The saved session table: a log that lets consumer sessions outlive a restart.

The log (``sessions.jsonl``, or ``sessions.<node_id>.jsonl``, in the sessions directory) is
JSON lines: ``{"format": 1}`` first (once it has been rewritten), then ``{"put": record}``
(a session's whole state, newer lines replacing older ones) and ``{"drop": id}`` (a session
closed or expired). A record::

    {"id": "<node>.<32 hex>", "owner": "billing" | null, "client": "key billing" | null,
     "group": "g", "topics": ["orders"], "manual": false, "assignment": {"orders": [0]},
     "positions": [["orders", 0, 42]], "acked": [["orders", 0, 40]],
     "auto_offset_reset": "earliest", "session_timeout_ms": 30000, "auto_commit": false,
     "encoding": "base64", "assignor": "range" | null}

``assignment`` is the manual assignment (``{}`` for a group member); ``positions`` the next
offset to read of each partition the session held; ``acked`` the last offset the session
itself committed on each of them. A change appends a line (one small write, whatever the
number of sessions), synced to disk as records are (``CONSUMER_API_FLUSH_POLICY``: at once
with ``always``, else by :meth:`SessionLog.sync` at the saver's next turn -- a line written
is safe from ``kill -9`` either way); once the appends outgrow the log's last rewrite, the log
is rewritten whole -- to a temporary file that is fsynced and renamed over it, then the
directory is fsynced -- so a crash leaves the old log or the new one, and at most a torn
last line, which is not read. The file is readable by the server's user only: it holds
consumer ids, which are as good as the session to whoever knows one on a server without
keys. Reading drops, with a log line, every record that does not check out; a log of
another format is set aside as ``<name>.corrupt`` and nothing is restored.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import orjson
from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_load, validate

from consumer_api.backend import TopicPartition
from consumer_api.durable import fsync_dir
from consumer_api.sessions.session import Session

log = logging.getLogger(__name__)

FORMAT = 1
#: appended bytes that never make a rewrite due (see SessionLog.due_for_rewrite)
COMPACT_MIN_BYTES = 1 << 20
#: a consumer id: the node's prefix, if any, and 32 hex digits (see ConsumerManager)
CONSUMER_ID = r"^([A-Za-z0-9_-]{1,32}\.)?[0-9a-f]{32}$"
#: what subscribe accepts (consumer_api.api.schemas)
ENCODINGS = ("base64", "text", "json")
OFFSET = validate.Range(min=0, max=(1 << 63) - 1)


@dataclass(frozen=True)
class SavedSession:
    """One session as the file keeps it (see the module docstring)."""

    consumer_id: str
    owner: str | None
    client: str | None
    group_id: str
    topics: list
    manual: bool
    assignment: dict
    positions: dict  # {(topic, partition): offset}
    acked: dict  # {(topic, partition): offset}
    auto_offset_reset: str
    session_timeout_ms: int
    auto_commit: bool
    encoding: str
    assignor: str | None


def _triples(**kwargs):
    return fields.List(fields.Tuple((fields.String(validate=validate.Length(1, 249)),
                                     fields.Integer(strict=True, validate=OFFSET),
                                     fields.Integer(strict=True, validate=OFFSET))),
                       load_default=list, **kwargs)


def _flag():
    return fields.Boolean(required=True, truthy={True}, falsy={False})


class SavedSessionSchema(Schema):
    class Meta:
        unknown = EXCLUDE  # a field a later version adds is not a reason to drop a session

    id = fields.String(required=True, validate=validate.Regexp(CONSUMER_ID))
    owner = fields.String(allow_none=True, load_default=None)
    client = fields.String(allow_none=True, load_default=None)
    group = fields.String(required=True, validate=validate.Length(1, 249))
    topics = fields.List(fields.String(validate=validate.Length(1, 249)), required=True)
    manual = _flag()
    assignment = fields.Dict(keys=fields.String(validate=validate.Length(1, 249)),
                             values=fields.List(fields.Integer(strict=True, validate=OFFSET)),
                             load_default=dict)
    positions = _triples()
    acked = _triples()
    auto_offset_reset = fields.String(required=True,
                                      validate=validate.OneOf(("earliest", "latest")))
    session_timeout_ms = fields.Integer(strict=True, required=True,
                                        validate=validate.Range(min=1))
    auto_commit = _flag()
    encoding = fields.String(required=True, validate=validate.OneOf(ENCODINGS))
    assignor = fields.String(allow_none=True, load_default=None)

    @post_load
    def _make(self, data, **_kwargs) -> SavedSession:
        return SavedSession(
            data["id"], data["owner"], data["client"], data["group"], data["topics"],
            data["manual"], data["assignment"], {(t, p): o for t, p, o in data["positions"]},
            {(t, p): o for t, p, o in data["acked"]}, data["auto_offset_reset"],
            data["session_timeout_ms"], data["auto_commit"], data["encoding"],
            data["assignor"])


_schema = SavedSessionSchema()


def record_of(session: Session) -> dict:
    """A live session as a record of the log, a partition's position no further than the
    records consumes took whose responses are not known to be delivered (``unsent``: after
    a crash they are consumed again, never skipped). Reads the session without its lock: each
    field is one attribute read and each dict is copied whole, atomically under the GIL (a
    copy may be a moment older than another; the session's next line brings it up to
    date)."""
    unsent = dict(session.unsent)
    positions = {tp: min(o, unsent.get(tp, o)) for tp, o in dict(session.positions).items()}
    acked = dict(session.acked)
    return {"id": session.consumer_id, "owner": session.owner, "client": session.client,
            "group": session.group_id, "topics": list(session.topics),
            "manual": session.manual,
            "assignment": ({t: list(ps) for t, ps in dict(session.assignment).items()}
                           if session.manual else {}),
            "positions": _to_triples(positions),
            "acked": _to_triples({tp: o for tp, o in acked.items() if tp in positions}),
            "auto_offset_reset": session.auto_offset_reset,
            "session_timeout_ms": session.session_timeout_ms,
            "auto_commit": session.auto_commit, "encoding": session.encoding,
            "assignor": session.assignor}


def _to_triples(offsets: dict[TopicPartition, int]) -> list:
    return [[t, p, o] for (t, p), o in sorted(offsets.items())]


class SessionLog:
    """The log at ``path`` (its directory is made when first written). Not thread-safe:
    its owner (the :class:`~consumer_api.sessions.saver.SessionSaver`) serialises every
    call. OSError from the file system as raised."""

    def __init__(self, path: str, sync_each_append: bool = True):
        self.path = path
        self.sync_each_append = sync_each_append
        self._unsynced = False  # appended since the last sync
        self._fd: int | None = None
        self._appended = 0  # bytes appended since the last rewrite
        self._rewritten = 0  # the size of the last rewrite

    @property
    def due_for_rewrite(self) -> bool:
        """Whether the appends since the last rewrite outgrew it (and 1 MiB): a rewrite
        then keeps the log within about twice its live size, at a cost amortised over as
        many appended bytes as it writes."""
        return self._appended > max(COMPACT_MIN_BYTES, self._rewritten)

    def append(self, lines: list[dict]) -> None:
        """Append ``lines`` (``{"put": record}`` / ``{"drop": id}``), synced at once when
        ``sync_each_append``, else at the next :meth:`sync`."""
        if self._fd is None:
            os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        data = b"".join(orjson.dumps(line) + b"\n" for line in lines)
        _write_all(self._fd, data)
        self._appended += len(data)
        self._unsynced = True
        if self.sync_each_append:
            self.sync()

    def sync(self) -> None:
        """Sync what was appended since the last sync to disk (nothing to do: no call)."""
        if self._unsynced and self._fd is not None:
            os.fdatasync(self._fd)
        self._unsynced = False

    def rewrite(self, records: list[dict]) -> None:
        """Replace the log with one ``put`` per record, atomically and durably."""
        directory = os.path.dirname(self.path) or "."
        os.makedirs(directory, exist_ok=True)
        data = b"".join([orjson.dumps({"format": FORMAT}) + b"\n",
                         *(orjson.dumps({"put": r}) + b"\n" for r in records)])
        tmp = self.path + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        fsync_dir(directory)
        self.close()
        self._appended, self._rewritten = 0, len(data)
        self._unsynced = False

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def read(self) -> list[SavedSession]:
        """The sessions the log leaves live (none when there is no log), in the order they
        were first saved. A torn last line (a crash in the middle of an append) is not
        read; a record that does not check out is dropped with a log line, as is a line
        that is not one. A log of another format is set aside (``.corrupt``)."""
        try:
            with open(self.path, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            return []
        lines = raw.split(b"\n")[:-1]  # after the last newline: nothing, or a torn line
        if lines and _format_of(lines[0]) not in (FORMAT, None):
            self._set_aside(f"not a format-{FORMAT} session log")
            return []
        table: dict = {}
        for number, line in enumerate(lines, 1):
            _replay(table, line, number)
        return _checked(list(table.values()))

    def _set_aside(self, why: str) -> None:
        kept = self.path + ".corrupt"
        log.warning("the saved consumer sessions in %s cannot be read (%s): no session is "
                    "restored; the file is kept as %s", self.path, why, kept)
        try:
            os.replace(self.path, kept)
        except OSError as exc:
            log.warning("cannot set %s aside: %s", self.path, exc)


def _format_of(line: bytes):
    """The format a log's first line names; None when it names none (a log that was
    never rewritten starts with a record)."""
    try:
        first = orjson.loads(line)
    except orjson.JSONDecodeError:
        return -1
    if not isinstance(first, dict):
        return -1
    return first.get("format")


def _replay(table: dict, line: bytes, number: int) -> None:
    """Apply one line of the log to ``table`` (id -> the record last put)."""
    try:
        entry = orjson.loads(line)
    except orjson.JSONDecodeError:
        entry = None
    if isinstance(entry, dict) and "format" in entry:
        return
    if isinstance(entry, dict) and isinstance(entry.get("drop"), str):
        table.pop(entry["drop"], None)
    elif isinstance(entry, dict) and isinstance(entry.get("put"), dict) \
            and isinstance(entry["put"].get("id"), str):
        table[entry["put"]["id"]] = entry["put"]  # in the place it was first saved at
    else:
        log.warning("line %d of the saved consumer sessions is not a record; skipped",
                    number)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _checked(items: list) -> list[SavedSession]:
    out = []
    for i, item in enumerate(items):
        try:
            saved = _schema.load(item)
        except ValidationError as exc:
            log.warning("saved consumer session #%d is not restored: %s", i,
                        _fields_of(exc.messages))
            continue
        out.append(saved)
    return out


def _fields_of(messages) -> str:
    """Which fields were wrong -- their names only: values may be anything."""
    return "invalid " + ", ".join(sorted(str(k) for k in messages))
