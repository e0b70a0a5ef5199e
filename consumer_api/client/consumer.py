"""A consumer session as a Python object: subscribe on enter, long-poll while iterating,
unsubscribe on exit (also on exceptions and Ctrl-C).

Delivery is at least once: with ``commit_each_batch`` each poll first commits exactly the
records handed out before it (the loop received them), so a crash or a break in the middle
of a batch makes the records not yet handed out come again to the next member, never lost.

A poll the server refuses for want of a waiting slot (``429 too_many_polls``) is not an
error: the poll pauses as ``Retry-After`` says (doubling on each refusal, at most
:data:`MAX_BACKOFF_S`, with jitter) and asks again, within its own ``timeout_ms``; once that
has passed it asks one last time without waiting (which is never refused).

A server restart does not end a session (the server saves its sessions): while the server
cannot be reached or answers ``503 unavailable`` (starting, shutting down), every session
call -- poll, commit, seek... -- asks again with the same pauses, for up to
``restart_wait_s`` (30 s by default; 0 fails at once), and then goes on with the same
consumer id. A poll whose response was lost is answered again with the same records.
"""
from __future__ import annotations

import base64
import json
import logging
import random
import time
from dataclasses import dataclass
from urllib.parse import quote

from consumer_api.client.errors import (ClientError, ConnectionFailed, ConsumerNotFound,
                                        PartitionNotAssigned, TooManyPolls, Unavailable)
from consumer_api.client.offsets import (TopicPartition, assignment_from_wire,
                                         offsets_from_wire, offsets_to_wire)

log = logging.getLogger(__name__)
FORMATS = ("bytes", "text", "json")
#: the longest pause (seconds) before asking again after a refused poll
MAX_BACKOFF_S = 5.0
#: the shortest, whatever the server says: a refused client never spins
MIN_BACKOFF_S = 0.1


def backoff_s(retry_after_s: float, attempt: int, rand=random.random) -> float:
    """The pause before asking again after refusal number ``attempt`` (0 for the first) of
    one poll: the server's ``Retry-After`` doubled per refusal, plus up to a quarter at
    random (clients refused together do not all come back together), within
    [:data:`MIN_BACKOFF_S`, :data:`MAX_BACKOFF_S`]."""
    base = max(retry_after_s, MIN_BACKOFF_S) * 2 ** min(attempt, 16)
    return min(MAX_BACKOFF_S, base * (1 + rand() / 4))


@dataclass(frozen=True)
class ConsumedRecord:
    topic: str
    partition: int
    offset: int
    timestamp: int
    key: object
    value: object
    headers: dict

    @classmethod
    def from_wire(cls, rec: dict, value_format: str, key_format: str) -> "ConsumedRecord":
        return cls(rec["topic"], rec["partition"], rec["offset"], rec["timestamp"],
                   _decode(rec["key"], key_format), _decode(rec["value"], value_format),
                   rec.get("headers") or {})


def _decode(wire, fmt: str):
    """Bytes in the asked format; bytes that are not UTF-8 (text) or not JSON (json) come
    back as bytes, like the server's own encodings fall back to base64: one odd record must
    not stop a consumer, or its whole group, on the batch that holds it."""
    if wire is None:
        return None
    data = base64.b64decode(wire)
    if fmt == "bytes":
        return data
    try:
        return data.decode("utf-8") if fmt == "text" else json.loads(data)
    except ValueError:
        log.debug("a %d-byte value is not %s: it is handed out as bytes", len(data), fmt)
        return data


class Consumer:
    #: how a refused poll pauses and tells the time (seconds); replaceable for tests
    sleep = staticmethod(time.sleep)
    clock = staticmethod(time.monotonic)

    def __init__(self, client, group_id: str, topics: list, *, auto_offset_reset: str = "latest",
                 value_format: str = "bytes", key_format: str | None = None,
                 session_timeout_ms: int | None = None, auto_commit: bool = False,
                 commit_each_batch: bool = False, max_records: int = 500,
                 timeout_ms: int = 30000, max_bytes_total: int | None = None,
                 recreate_on_expiry: bool = False, assignor: str | None = None,
                 filter: dict | None = None, restart_wait_s: float = 30.0,
                 min_records: int = 1):
        if value_format not in FORMATS or (key_format or "bytes") not in FORMATS:
            raise ValueError(f"formats are one of {', '.join(FORMATS)}")
        self.client = client
        self.group_id = group_id
        self.topics = topics
        self.value_format = value_format
        self.key_format = key_format or ("bytes" if value_format == "bytes" else "text")
        self.commit_each_batch = commit_each_batch
        self.recreate_on_expiry = recreate_on_expiry
        self.restart_wait_s = restart_wait_s
        self.max_records = max_records
        self.min_records = min_records
        self.timeout_ms = timeout_ms
        self.max_bytes_total = max_bytes_total
        self.filter = filter
        self._subscription = {"group_id": group_id, "topics": topics,
                              "auto_offset_reset": auto_offset_reset, "auto_commit": auto_commit}
        if session_timeout_ms is not None:
            self._subscription["session_timeout_ms"] = session_timeout_ms
        if assignor is not None:
            self._subscription["assignor"] = assignor
        self.consumer_id: str | None = None
        self._handed_out: dict = {}  # (topic, partition) -> offset after the last record given
        self._skipped_to: dict = {}  # with a filter: the positions past the last batch's skips
        #: with a filter: the last poll stopped at the server's bound on records examined
        self.scan_limit_reached = False

    # -- lifecycle -------------------------------------------------------------------------

    def subscribe(self) -> dict:
        body = self.client.request("POST", "/api/consumers/subscribe", self._subscription)
        self.consumer_id = body["consumer_id"]
        return body

    def close(self, commit: bool = False) -> None:
        """Leave the group (optionally committing the positions first). Idempotent."""
        if self.consumer_id is None:
            return
        consumer_id, self.consumer_id = self.consumer_id, None
        try:
            self.client.request("DELETE", f"/api/consumers/{consumer_id}",
                                params={"commit": "true"} if commit else None)
        except ConsumerNotFound:
            pass  # expired already: nothing to leave

    def __enter__(self) -> "Consumer":
        self.subscribe()
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            self.close()
        except ClientError:
            if exc_type is None:
                raise
            log.warning("closing consumer %s failed while handling %s", self.group_id,
                        exc_type.__name__)

    # -- session calls ---------------------------------------------------------------------

    def _call(self, method: str, action: str, body=None, read_timeout: float | None = None):
        if self.consumer_id is None:
            self.subscribe()
        try:
            return self._send(method, action, body, read_timeout)
        except ConsumerNotFound:
            if not self.recreate_on_expiry:
                raise
            log.info("consumer session of group %s expired: subscribing again", self.group_id)
            self.subscribe()
            return self._send(method, action, body, read_timeout)

    def _send(self, method: str, action: str, body, read_timeout: float | None):
        """One call on the session; while the server is unreachable or unavailable (a
        restart), asked again after :func:`backoff_s` pauses for up to ``restart_wait_s``."""
        path = f"/api/consumers/{quote(self.consumer_id, safe='')}/{action}".rstrip("/")
        deadline = self.clock() + self.restart_wait_s
        attempt = 0
        while True:
            try:
                return self.client.request(method, path, body, read_timeout=read_timeout)
            except (ConnectionFailed, Unavailable) as exc:
                left = deadline - self.clock()
                if left <= 0:
                    raise
                pause = min(backoff_s(0, attempt), left)
                log.info("consumer session of group %s: %s; asking again in %.1f s",
                         self.group_id, exc, pause)
                self.sleep(pause)
                attempt += 1

    def poll(self, timeout_ms: int | None = None, max_records: int | None = None) -> list:
        """One long-poll: records as soon as there are any, [] after ``timeout_ms``. With
        ``commit_each_batch`` it first commits what earlier polls handed out."""
        records = self._next_batch(timeout_ms, max_records)
        for rec in records:
            self._handed_out[TopicPartition(rec.topic, rec.partition)] = rec.offset + 1
        self._handed_out.update(self._skipped_to)
        return records

    def __iter__(self):
        """Records forever (until the loop is left), long-polling as needed. With
        ``commit_each_batch`` each poll first commits the records handed out so far -- a
        record counts as handed out once the loop has received it, so leaving the loop in
        the middle of a batch never commits the records after the last one received."""
        while True:
            for rec in self._next_batch(None, None):
                self._handed_out[TopicPartition(rec.topic, rec.partition)] = rec.offset + 1
                yield rec
            self._handed_out.update(self._skipped_to)  # the batch's skipped records too

    def _next_batch(self, timeout_ms, max_records) -> list:
        if self.commit_each_batch and self._handed_out:
            self.commit_handed_out()
        timeout_ms = self.timeout_ms if timeout_ms is None else timeout_ms
        body = {"timeout_ms": timeout_ms, "max_records": max_records or self.max_records}
        if self.max_bytes_total:
            body["max_bytes_total"] = self.max_bytes_total
        if self.min_records > 1:
            body["min_records"] = self.min_records
        if self.filter is not None:
            body["filter"] = self.filter
        got = self._consume(body)
        self._skipped_to = offsets_from_wire(got.get("positions") or {})
        self.scan_limit_reached = got.get("scan_limit_reached", False)
        return [ConsumedRecord.from_wire(r, self.value_format, self.key_format)
                for r in got["records"]]

    def _consume(self, body: dict) -> dict:
        """POST consume; on ``too_many_polls`` pause (:func:`backoff_s`) and ask again with
        what is left of ``timeout_ms`` -- at last with 0, which the server never refuses."""
        deadline = self.clock() + body["timeout_ms"] / 1000
        attempt = 0
        while True:
            try:
                return self._call("POST", "consume", body,
                                  read_timeout=body["timeout_ms"] / 1000 + 30)
            except TooManyPolls as exc:
                if body["timeout_ms"] == 0:
                    raise  # a server that refuses even a poll that does not wait
                pause = min(backoff_s(exc.retry_after_s, attempt),
                            max(0.0, deadline - self.clock()))
                log.info("consume of group %s refused (%s): asking again in %.1f s",
                         self.group_id, exc.message, pause)
                self.sleep(pause)
                attempt += 1
                body = {**body, "timeout_ms": max(0, int((deadline - self.clock()) * 1000))}

    def commit_handed_out(self) -> None:
        """Commit the records handed out (with a filter: and the records the server
        skipped before and among them); those of partitions a rebalance moved away are
        left to their new owner (it resumes at the group's last commit: at least once)."""
        if not self._handed_out:
            return
        try:
            self.commit(self._handed_out)
        except PartitionNotAssigned:
            owned = set(self.assignment())
            mine = {tp: o for tp, o in self._handed_out.items() if tp in owned}
            self._handed_out = {}
            if mine:
                try:
                    self.commit(mine)
                except PartitionNotAssigned:
                    pass  # another rebalance meanwhile: the new owners resume

    def commit(self, offsets: dict | None = None) -> dict:
        """Commit the positions (exactly the records handed out so far), or ``offsets``
        (``{topic: {partition: offset}}`` or ``{(topic, partition): offset}``)."""
        body = {} if offsets is None else {"offsets": offsets_to_wire(offsets)}
        done = offsets_from_wire(self._call("POST", "commit", body)["offsets"])
        for tp, offset in done.items():  # handed-out records now committed
            if self._handed_out.get(tp, -1) <= offset:
                self._handed_out.pop(tp, None)
        return done

    def seek(self, topic: str | None = None, partition: int | None = None, *,
             offset: int | None = None, position: str | None = None,
             timestamp: int | None = None) -> dict:
        """Move positions: ``offset`` (one partition), ``position`` "beginning"/"end", or
        ``timestamp`` (epoch ms); without topic/partition, every assigned partition."""
        body = {k: v for k, v in (("topic", topic), ("partition", partition),
                                  ("offset", offset), ("position", position),
                                  ("timestamp", timestamp)) if v is not None}
        return offsets_from_wire(self._call("POST", "seek", body)["offsets"])

    def seek_to_beginning(self, topic: str | None = None) -> dict:
        return self.seek(topic, position="beginning")

    def seek_to_end(self, topic: str | None = None) -> dict:
        return self.seek(topic, position="end")

    def position(self) -> dict:
        return offsets_from_wire(self._call("GET", "position")["offsets"])

    def committed(self) -> dict:
        return offsets_from_wire(self._call("GET", "committed")["offsets"])

    def assignment(self) -> list:
        """The partitions this session reads now: sorted ``[TopicPartition]``."""
        return assignment_from_wire(self._call("GET", "assignment")["assignment"])

    def assign(self, topics: dict) -> list:
        """Manual assignment ``{topic: [partitions]}`` (leaves group management); the
        partitions now read, as :meth:`assignment`."""
        return assignment_from_wire(
            self._call("PUT", "assignment", {"topics": topics})["assignment"])
