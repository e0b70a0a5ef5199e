"""What every request leaves behind: a metrics sample and one access-log line.

The access line (logger ``consumer_api.access``, INFO) holds the method, the route template
(never the raw path: it can carry a consumer id, which goes in its own field), the status,
the duration, the consumer id, the request id and the API key's *name* -- never a key, a
header or a body. The fields travel in ``record.access``; :mod:`consumer_api.logs` writes
them as ``key=value`` pairs or as JSON (``CONSUMER_API_LOG_FORMAT``).
"""
from __future__ import annotations

import logging
import time

from flask import Flask, g, request

from consumer_api.metrics import Metrics

METRICS = "consumer_api.metrics"
access_log = logging.getLogger("consumer_api.access")


def init_observe(app: Flask, metrics: Metrics) -> None:
    app.extensions[METRICS] = metrics

    @app.before_request
    def start():
        g.started = time.perf_counter()

    @app.after_request
    def finish(resp):
        seconds = time.perf_counter() - g.get("started", time.perf_counter())
        route = request.url_rule.rule if request.url_rule else "<unmatched>"
        metrics.observe_request(request.method, route, resp.status_code, seconds)
        if access_log.isEnabledFor(logging.INFO):
            fields = {
                "method": request.method, "route": route, "status": resp.status_code,
                "duration_ms": round(seconds * 1000, 2),
                "consumer_id": (request.view_args or {}).get("consumer_id"),
                "request_id": g.get("request_id"),
                "principal": getattr(g.get("principal"), "name", None)}
            access_log.info("%s %s %s", request.method, route, resp.status_code,
                            extra={"access": fields})
        return resp


def metrics() -> Metrics:
    from flask import current_app
    return current_app.extensions[METRICS]
