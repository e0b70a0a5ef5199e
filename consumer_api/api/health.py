"""Health routes: liveness and readiness."""
from flask import Blueprint

from consumer_api.api.lifecycle import PROBES
from consumer_api.api.state import state

bp = Blueprint("health", __name__, url_prefix=PROBES)


@bp.get("")
def health():
    """Health.
    ---
    get:
      summary: Is the server up
      operationId: health
      tags: [operations]
      security: []
      responses:
        200:
          description: ok
          content: {application/json: {schema: HealthSchema, example: {status: ok}}}
    """
    return {"status": "ok"}


@bp.get("/live")
def live():
    """Liveness.
    ---
    get:
      summary: Liveness probe (the process answers)
      operationId: live
      tags: [operations]
      security: []
      responses:
        200:
          description: ok
          content: {application/json: {schema: HealthSchema, example: {status: ok}}}
    """
    return {"status": "ok"}


@bp.get("/ready")
def ready():
    """Readiness.
    ---
    get:
      summary: Readiness probe
      description: 503 while the server is recovering its logs or shutting down.
      operationId: ready
      tags: [operations]
      security: []
      responses:
        200:
          description: ready to serve
          content: {application/json: {schema: HealthSchema, example: {status: ok}}}
        503: Unavailable
    """
    state().lifecycle.check()
    return {"status": "ok"}
