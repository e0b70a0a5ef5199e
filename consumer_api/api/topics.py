"""Topic routes: create, list, describe, delete."""
from __future__ import annotations

from flask import Blueprint

from consumer_api.api.state import state
from consumer_api.api.json_io import json_body
from consumer_api.api.security import path_right, require, visible
from consumer_api.api.schemas.topics import TopicCreateSchema

bp = Blueprint("topics", __name__, url_prefix="/api/topics")
_create = TopicCreateSchema()


@bp.post("")
def create_topic():
    """Create a topic.
    ---
    post:
      summary: Create a topic
      description: Partitions 1..1024; config defaults come from the server's settings.
      tags: [topics]
      operationId: createTopic
      requestBody:
        required: true
        content:
          application/json:
            schema: TopicCreateSchema
            example: {name: orders, partitions: 3, config: {retention_ms: 86400000}}
      responses:
        201:
          description: the topic as created
          content:
            application/json:
              schema: TopicSchema
        400: InvalidRequest
        409: Conflict
    """
    body = json_body(_create)
    require("topics", "admin", body["name"])
    return state().backend.create_topic(body["name"], body["partitions"], body.get("config")), 201


@bp.get("")
def list_topics():
    """List topics.
    ---
    get:
      summary: List topics with their partitions' offsets
      description: With API keys, only the topics the key has a right on.
      tags: [topics]
      operationId: listTopics
      responses:
        200:
          description: every topic, sorted by name
          content:
            application/json:
              schema: TopicListSchema
    """
    return {"topics": [t for t in state().backend.list_topics() if visible("topics", t["name"])]}


@bp.get("/<topic>")
@path_right("topics", "read", "topic")
def describe_topic(topic):
    """Describe a topic.
    ---
    get:
      summary: Describe a topic (config, offsets and size of each partition)
      tags: [topics]
      operationId: describeTopic
      parameters: [topic]
      responses:
        200:
          description: the topic
          content:
            application/json:
              schema: TopicDescriptionSchema
        404: NotFound
    """
    return state().backend.describe_topic(topic)


@bp.delete("/<topic>")
@path_right("topics", "admin", "topic")
def delete_topic(topic):
    """Delete a topic.
    ---
    delete:
      summary: Delete a topic and all its records
      tags: [topics]
      operationId: deleteTopic
      parameters: [topic]
      responses:
        200:
          description: deleted
          content:
            application/json:
              schema: MessageSchema
              example: {message: topic deleted}
        404: NotFound
    """
    state().backend.delete_topic(topic)
    return {"message": "topic deleted"}
