"""GET /metrics: Prometheus text format."""
from __future__ import annotations

from flask import Blueprint, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from consumer_api.api.state import state

bp = Blueprint("metrics", __name__)


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
