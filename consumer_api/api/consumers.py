"""Consumer session routes: subscribe, consume, commit, seek, assignment, position, close."""
from __future__ import annotations

import select
import socket
from functools import partial

import orjson

from flask import Blueprint, request
from werkzeug.routing import BaseConverter

from consumer_api.api import response_room
from consumer_api.api.response_room import RecordBody
from consumer_api.api.filtering import scan_fields, scan_of
from consumer_api.api.offsets_wire import offsets_from_wire, offsets_to_wire
from consumer_api.api.state import state
from consumer_api.api.consume_body import parse_consume_body
from consumer_api.api.json_io import (delivery_tracked_json_response, json_body, query_args,
                                     raw_json_body)
from consumer_api.api.security import client, owner, require, visible
from consumer_api.api.schemas.consumers import (CloseQuerySchema, CommitSchema,
                                                ManualAssignmentSchema, SeekSchema,
                                                SubscribeSchema)

bp = Blueprint("consumers", __name__, url_prefix="/api/consumers")


class ConsumerIdConverter(BaseConverter):
    """A consumer id in a path: any segment but ``subscribe`` (that path is the subscribe
    route's alone, for every method -- OPTIONS lists only its own)."""

    regex = r"(?!subscribe(?![^/]))[^/]+"


bp.record_once(lambda setup: setup.app.url_map.converters.setdefault(
    "consumer_id", ConsumerIdConverter))  # before the routes below are added
_subscribe, _commit = SubscribeSchema(), CommitSchema()
_seek, _assign, _close = SeekSchema(), ManualAssignmentSchema(), CloseQuerySchema()


def connection_closed(environ):
    """A check whether the client of this request hung up (its socket reads end-of-file),
    or None when the server does not expose the socket. Under the server (and nginx, which
    closes its upstream connection when its client aborts) a long-poll abandoned by a
    client timeout is then not answered with records nobody would receive."""
    sock = environ.get("consumer_api.socket")
    if sock is None:
        return None

    def closed() -> bool:
        try:
            poller = select.poll()  # not select.select: descriptors above 1024 are common here
            poller.register(sock, select.POLLIN)
            return bool(poller.poll(0)) and sock.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True

    return closed


@bp.post("/subscribe")
def subscribe():
    """Subscribe.
    ---
    post:
      summary: Create a consumer session in a group
      description: >
        Joins the group at once (rebalancing it) and returns the real assignment, so the
        first consume can return data. New partitions start at the group's committed
        offset, else at auto_offset_reset. 429 too_many_consumers when the server's
        sessions, or the client's share of them (an API key's, or an address's on an open
        server), are all taken; details name the limit and its scope.


        The session survives a restart of the server (SIGTERM or a crash): the same
        consumer_id goes on with its group, subscription or manual assignment, settings
        and positions, and its session_timeout_ms counts from the restart (README,
        "Sessions across restarts"; on the Kafka store only where the node has a sessions
        directory). While the server starts it answers 503 unavailable: retry.
      tags: [consumers]
      operationId: subscribe
      requestBody:
        required: true
        content:
          application/json:
            schema: SubscribeSchema
            example: {group_id: billing, topics: [orders], auto_offset_reset: earliest}
      responses:
        200:
          description: the session and its assignment
          content: {application/json: {schema: SubscriptionSchema}}
        400: InvalidRequest
        404: NotFound
        429: TooManyConsumers
        503: Unavailable
    """
    body = json_body(_subscribe)
    body.setdefault("session_timeout_ms", state().config.session_timeout_ms)
    require("groups", "read", body["group_id"])
    for topic in body["topics"]:
        require("topics", "read", topic)
    return state().manager.subscribe(body["group_id"], body["topics"], body["auto_offset_reset"],
                               body["session_timeout_ms"], body["auto_commit"],
                               body["encoding"], owner(), client(), body.get("assignor"))


@bp.post("/<consumer_id:consumer_id>/consume")
def consume(consumer_id):
    """Consume.
    ---
    post:
      summary: Long-poll for records
      description: >
        Returns as soon as at least one record is available on the session's partitions,
        or after timeout_ms with no records. Positions advance past every returned record;
        if the response cannot be written to the client (the connection broke), they move
        back and the records are consumed again. An empty body means the defaults.


        At most one consume waits per session: a newer consume on the session ends the
        one waiting there, which answers at once with no records, and runs with its own
        timeout_ms (a client retrying a poll it gave up on is served, not queued).


        A consume that finds no records and would wait (timeout_ms > 0) takes one of a
        limited number of waiting slots -- the server's, and the client's share of them.
        When none is free it is answered at once with 429 too_many_polls and a
        Retry-After header (seconds): nothing was taken; retry after that pause. A consume
        that returns records, or has timeout_ms 0, is never refused so.


        With a filter (RecordFilter) only matching records are returned; the positions move
        past the others too, so a commit covers records the consumer never saw. A filtered
        consume examines at most the server's max_filter_scan_records records, then answers
        with what matched (scan_limit_reached true); its answer adds scanned and positions.


        Across a restart of the server the session goes on from its positions: after
        SIGTERM exactly after the last record delivered; after a crash nothing is lost and
        at most the records delivered, and not committed, in the last
        CONSUMER_API_SESSIONS_SAVE_INTERVAL_MS before it come again.


        The response is compressed when the request's Accept-Encoding asks for zstd or
        gzip (q-values honoured) and it has 1 KiB or more; Content-Encoding says how.
      tags: [consumers]
      operationId: consume
      parameters: [consumer_id]
      requestBody:
        required: false
        content:
          application/json:
            schema: ConsumeSchema
            example: {max_records: 500, timeout_ms: 5000}
      responses:
        200:
          description: records (possibly none) and the server time
          headers:
            Content-Encoding: {$ref: "#/components/headers/ContentEncoding"}
            Vary: {$ref: "#/components/headers/Vary"}
          content: {application/json: {schema: ConsumeResponseSchema}}
        400: InvalidRequest
        404: NotFound
        429: TooManyPolls
        503: NoRoom
    """
    body = parse_consume_body(raw_json_body(empty_ok=True))
    scan = scan_of(body.get("filter"))
    records = RecordBody()
    try:
        spans, _encoding = state().manager.consume(
            consumer_id, body["max_records"], body["timeout_ms"], body["max_bytes_total"],
            body.get("encoding"), owner(), connection_closed(request.environ), client(),
            records, scan, body["min_records"])
        if records.refused:
            raise response_room.too_busy()
        tail = b'],"timestamp":%d%s}' % (state().manager.now_ms(),
                                          _scan_report(consumer_id, scan))
    except BaseException:
        records.release()
        raise
    pieces = [b'{"records":[', *records.take_pieces(), tail]
    if not spans:
        return delivery_tracked_json_response(pieces, records.release, records.release)
    return delivery_tracked_json_response(
        pieces, partial(_delivered, state().manager, state().metrics, consumer_id, spans,
                        records.release),
        partial(_undelivered, state().manager, consumer_id, spans, records.release))


def _scan_report(consumer_id: str, scan) -> bytes:
    """What a filtered consume's response adds: the scan's figures and the positions it
    reached (nothing without a filter)."""
    if not scan.filtered:
        return b""
    positions = offsets_to_wire(state().manager.positions(consumer_id, owner()))
    return scan_fields(scan) + b',"positions":' + orjson.dumps(positions)


def _delivered(manager_, metrics_, consumer_id, spans, release) -> None:
    release()
    manager_.delivered(consumer_id, spans)
    consumed = metrics_.consumed
    for span in spans:
        consumed.labels(span.topic).inc(span.count)


def _undelivered(manager_, consumer_id, spans, release) -> None:
    release()
    manager_.give_back(consumer_id, spans)


@bp.post("/<consumer_id:consumer_id>/commit")
def commit(consumer_id):
    """Commit.
    ---
    post:
      summary: Commit offsets (by default the current positions)
      tags: [consumers]
      operationId: commit
      parameters: [consumer_id]
      requestBody:
        required: false
        content:
          application/json:
            schema: CommitSchema
            examples:
              positions:
                summary: the current positions (what was returned so far)
                value: {}
              offsets:
                summary: chosen offsets (each owned, within [log start, high watermark])
                value: {offsets: {orders: {"0": 1}}}
      responses:
        200:
          description: what was committed
          content: {application/json: {schema: OffsetsResultSchema}}
        400: InvalidRequest
        404: NotFound
        409: Conflict
    """
    body = json_body(_commit, empty_ok=True)
    offsets = offsets_from_wire(body["offsets"]) if "offsets" in body else None
    done = state().manager.commit(consumer_id, offsets, owner())
    return {"success": True, "message": "offsets committed", "offsets": offsets_to_wire(done)}


@bp.post("/<consumer_id:consumer_id>/seek")
def seek(consumer_id):
    """Seek.
    ---
    post:
      summary: Move positions to an offset, the beginning or end, or a timestamp
      description: >
        {topic, partition, offset} moves one partition; {position: beginning|end} or
        {timestamp} move the named topic/partition, or every assigned partition when
        omitted.
      tags: [consumers]
      operationId: seek
      parameters: [consumer_id]
      requestBody:
        required: true
        content:
          application/json:
            schema: SeekSchema
            example: {position: beginning}
      responses:
        200:
          description: the new positions
          content: {application/json: {schema: OffsetsResultSchema}}
        400: InvalidRequest
        404: NotFound
        409: Conflict
    """
    body = json_body(_seek)
    moved = state().manager.seek(consumer_id, body.get("topic"), body.get("partition"),
                           body.get("offset"), body.get("position"), body.get("timestamp"),
                           owner())
    return {"success": True, "message": "offset updated", "offsets": offsets_to_wire(moved)}


@bp.get("")
def list_sessions():
    """Sessions.
    ---
    get:
      summary: The live consumer sessions of this node
      description: >
        Every session whose group the API key may see, by consumer id, as of its last
        request: group, topics, assignment, owner (the key's name), time since its last
        request and whether a consume is waiting. Sessions of other nodes are not listed.
      tags: [consumers]
      operationId: listSessions
      responses:
        200:
          description: the sessions
          content: {application/json: {schema: SessionListSchema}}
    """
    found = state().manager.describe_sessions(lambda group: visible("groups", group))
    return {"sessions": found}


@bp.get("/<consumer_id:consumer_id>/assignment")
def get_assignment(consumer_id):
    """Assignment.
    ---
    get:
      summary: The session's partitions and group generation
      tags: [consumers]
      operationId: getAssignment
      parameters: [consumer_id]
      responses:
        200:
          description: the current assignment
          content: {application/json: {schema: AssignmentSchema}}
        404: NotFound
    """
    return state().manager.get_assignment(consumer_id, owner())


@bp.put("/<consumer_id:consumer_id>/assignment")
def put_assignment(consumer_id):
    """Manual assignment.
    ---
    put:
      summary: Assign partitions by hand (the session leaves group management)
      tags: [consumers]
      operationId: assign
      parameters: [consumer_id]
      requestBody:
        required: true
        content:
          application/json:
            schema: ManualAssignmentSchema
            example: {topics: {orders: [0, 1]}}
      responses:
        200:
          description: the session and its new assignment
          content: {application/json: {schema: SubscriptionSchema}}
        400: InvalidRequest
        404: NotFound
    """
    body = json_body(_assign)
    for topic in body["topics"]:
        require("topics", "read", topic)
    return state().manager.assign(consumer_id, body["topics"], owner())


@bp.get("/<consumer_id:consumer_id>/position")
def position(consumer_id):
    """Position.
    ---
    get:
      summary: The next offset the session will read, per assigned partition
      tags: [consumers]
      operationId: position
      parameters: [consumer_id]
      responses:
        200:
          description: positions
          content: {application/json: {schema: PositionsSchema}}
        404: NotFound
    """
    return {"offsets": offsets_to_wire(state().manager.positions(consumer_id, owner()))}


@bp.get("/<consumer_id:consumer_id>/committed")
def committed(consumer_id):
    """Committed.
    ---
    get:
      summary: The group's committed offsets for the session's partitions
      description: Partitions with no commit are absent.
      tags: [consumers]
      operationId: committed
      parameters: [consumer_id]
      responses:
        200:
          description: committed offsets
          content: {application/json: {schema: PositionsSchema}}
        404: NotFound
    """
    return {"offsets": offsets_to_wire(state().manager.committed(consumer_id, owner()))}


@bp.delete("/<consumer_id:consumer_id>")
def close(consumer_id):
    """Close.
    ---
    delete:
      summary: Close the session (optionally committing its positions first)
      tags: [consumers]
      operationId: closeConsumer
      parameters:
        - consumer_id
        - in: query
          schema: CloseQuerySchema
      responses:
        200:
          description: closed; the group rebalances
          content:
            application/json:
              schema: MessageSchema
              example: {message: consumer closed}
        400: InvalidRequest
        404: NotFound
        409: Conflict
    """
    args = query_args(_close)
    state().manager.close(consumer_id, args["commit"], owner())
    return {"message": "consumer closed"}
