"""GET /metrics: Prometheus text format; GET /api/metrics/history: the last hour, for
charts."""
from __future__ import annotations

from flask import Blueprint, Response, jsonify
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from consumer_api.api.json_io import query_args
from consumer_api.api.schemas.history import HistoryQuerySchema
from consumer_api.api.security import visible
from consumer_api.api.state import state

bp = Blueprint("metrics", __name__)
_history_query = HistoryQuerySchema()


@bp.get("/metrics")
def scrape():
    """Metrics.
    ---
    get:
      summary: Prometheus metrics
      description: >
        Requests by route and status with latencies, records produced and consumed per
        topic, live sessions, waiting polls, rebalances, bytes on disk per topic and
        consumer lag per group and partition.
      operationId: metrics
      tags: [operations]
      security: []
      responses:
        200:
          description: Prometheus text exposition format
          content:
            text/plain:
              schema: {type: string}
    """
    return Response(generate_latest(state().metrics.registry),
                    headers={"Content-Type": CONTENT_TYPE_LATEST})


@bp.get("/api/metrics/history")
def history():
    """History.
    ---
    get:
      summary: The last hour of activity, one sample every 10 s
      description: >
        Records in and out per second (server-wide and per topic), live sessions, waiting
        polls and the lag of every group, sampled by the server every ``interval_ms``
        (``CONSUMER_API_HISTORY_INTERVAL_MS``, 10 s) and kept for the last 360 samples, in
        memory: a restart starts it again. Records in count every producer; records out,
        what this node's consumes delivered. Only the topics and groups the API key may
        see are in it. What the web console draws its charts from.
      operationId: metricsHistory
      tags: [operations]
      parameters:
      - in: query
        schema: HistoryQuerySchema
      responses:
        200:
          description: the samples
          content:
            application/json:
              schema: HistorySchema
        400:
          $ref: '#/components/responses/InvalidRequest'
    """
    args = query_args(_history_query)
    found = state().history
    return jsonify({"interval_ms": found.interval_ms,
                    "samples": [_visible_part(s) for s in found.samples(args["since_ms"])]})


def _visible_part(sample: dict) -> dict:
    """The sample with only the topics and groups the API key may see (and the rates of
    those topics only)."""
    topics = {t: v for t, v in sample["topics"].items() if visible("topics", t)}
    return {**sample, "topics": topics,
            "records_in": sum(v["records_in"] for v in topics.values()),
            "records_out": sum(v["records_out"] for v in topics.values()),
            "groups": {g: v for g, v in sample["groups"].items() if visible("groups", g)}}
