"""Consumer group routes: list, describe (with lag), set/reset offsets, delete."""
from __future__ import annotations

from flask import Blueprint

from consumer_api.api.offsets_wire import offsets_from_wire, offsets_to_wire
from consumer_api.api.state import state
from consumer_api.api.json_io import json_body
from consumer_api.api.security import path_right, require, visible
from consumer_api.api.schemas.groups import GroupOffsetsRequestSchema

bp = Blueprint("groups", __name__, url_prefix="/api/consumer-groups")
_offsets = GroupOffsetsRequestSchema()


@bp.get("")
def list_groups():
    """List groups.
    ---
    get:
      summary: Every group with members or committed offsets
      description: With API keys, only the groups the key has a right on.
      tags: [consumer-groups]
      operationId: listGroups
      responses:
        200:
          description: groups, sorted by id
          content: {application/json: {schema: GroupListSchema}}
    """
    return {"groups": [g for g in state().backend.list_groups()
                       if visible("groups", g["group_id"])]}


@bp.get("/<group>")
@path_right("groups", "read", "group")
def describe_group(group):
    """Describe a group.
    ---
    get:
      summary: Members, assignments, committed offsets and lag
      description: With API keys, rows of topics the key has no right on are left out.
      tags: [consumer-groups]
      operationId: describeGroup
      parameters: [group]
      responses:
        200:
          description: the group
          content: {application/json: {schema: GroupDescriptionSchema}}
        404: NotFound
    """
    info = state().backend.describe_group(group)
    ages = state().manager.heartbeat_ages_ms([m["consumer_id"] for m in info["members"]])
    info["offsets"] = [row for row in info["offsets"] if visible("topics", row["topic"])]
    for member in info["members"]:  # topics the key has no right on stay hidden
        member["last_heartbeat_ms_ago"] = ages[member["consumer_id"]]
        member["topics"] = [t for t in member["topics"] if visible("topics", t)]
        member["assignment"] = {t: ps for t, ps in member["assignment"].items()
                                if visible("topics", t)}
    return info


@bp.post("/<group>/offsets")
@path_right("groups", "admin", "group")
def set_offsets(group):
    """Set offsets.
    ---
    post:
      summary: Set or reset a group's committed offsets (only while it has no members)
      tags: [consumer-groups]
      operationId: setGroupOffsets
      parameters: [group]
      requestBody:
        required: true
        content:
          application/json:
            schema: GroupOffsetsRequestSchema
            example: {reset: earliest, topics: [orders]}
      responses:
        200:
          description: the offsets now committed
          content: {application/json: {schema: OffsetsResultSchema}}
        400: InvalidRequest
        404: NotFound
        409: Conflict
    """
    body = json_body(_offsets)
    topics = list(body.get("offsets", {})) + list(body.get("topics") or ())
    if "reset" in body and not body.get("topics"):  # every topic the group has committed
        topics = sorted({t for t, _p in state().backend.committed(group)})
    for topic in topics:
        require("topics", "read", topic)
    done = state().backend.set_offsets(
        group, offsets_from_wire(body["offsets"]) if "offsets" in body else None,
        body.get("reset"), body.get("topics"))
    return {"success": True, "message": "offsets committed", "offsets": offsets_to_wire(done)}


@bp.delete("/<group>")
@path_right("groups", "admin", "group")
def delete_group(group):
    """Delete a group.
    ---
    delete:
      summary: Delete a group and its committed offsets (only while it has no members)
      tags: [consumer-groups]
      operationId: deleteGroup
      parameters: [group]
      responses:
        200:
          description: deleted
          content:
            application/json:
              schema: MessageSchema
              example: {message: group deleted}
        404: NotFound
        409: Conflict
    """
    state().backend.delete_group(group)
    return {"message": "group deleted"}
