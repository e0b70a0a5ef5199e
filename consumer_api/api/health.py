"""Health routes: liveness and readiness."""
from flask import Blueprint

bp = Blueprint("health", __name__, url_prefix="/api/health")


@bp.get("")
@bp.get("/live")
@bp.get("/ready")
def health():
    return {"status": "ok"}
