"""What every request leaves behind: a metrics sample and one access-log line.

The access line (logger ``consumer_api.access``, INFO) holds the method, the route template
(never the raw path: it can carry a consumer id, which goes in its own field), the status,
the duration, the consumer id, the request id and the API key's *name* -- never a key, a
header or a body. The fields travel in ``record.access``; :mod:`consumer_api.logs` writes
them as ``key=value`` pairs or as JSON (``CONSUMER_API_LOG_FORMAT``).
"""
from __future__ import annotations

import logging
import re
import time
from functools import lru_cache

from flask import g, request

from consumer_api.metrics import Metrics

access_log = logging.getLogger("consumer_api.access")


#: a converter in a route template (``<consumer_id:consumer_id>``): logged as ``<consumer_id>``
CONVERTER = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")


@lru_cache(maxsize=None)  # one entry per route of the app
def route_template(rule: str) -> str:
    """A route rule as logged: converters named only (``<consumer_id>``)."""
    return CONVERTER.sub(r"<\1>", rule)


def start() -> None:
    """Before the request (see :mod:`consumer_api.api.pipeline`)."""
    g.started = time.perf_counter()


def finish(resp, metrics: Metrics):
    """After the request: a metrics sample and the access line."""
    seconds = time.perf_counter() - g.get("started", time.perf_counter())
    method, rule = request.method, request.url_rule
    route = route_template(rule.rule) if rule is not None else "<unmatched>"
    status = resp.status_code
    metrics.observe_request(method, route, status, seconds)
    if access_log.isEnabledFor(logging.INFO):
        fields = {
            "method": method, "route": route, "status": status,
            "duration_ms": round(seconds * 1000, 2),
            "consumer_id": (request.view_args or {}).get("consumer_id"),
            "request_id": g.get("request_id"),
            "principal": getattr(g.get("principal"), "name", None)}
        access_log.info("%s %s %s", method, route, status, extra={"access": fields})
    return resp
