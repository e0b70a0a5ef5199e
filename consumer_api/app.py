"""The Flask application factory.

``create_app(config)`` opens the engine over ``config.data_dir`` (unless one is passed in)
and registers the blueprints, the error envelope, the JSON provider, request ids and
Swagger. It starts no threads: :func:`start_background` does, called by gunicorn's
``post_worker_init`` hook (after the fork) or by whoever embeds the app.
"""
from __future__ import annotations

import gc
import itertools
import os

from flask import Flask, g, request

from consumer_api.api import consumers, errors, groups, health, records, topics
from consumer_api.api.context import BACKEND, MANAGER, SETTINGS
from consumer_api.api.json_io import OrjsonProvider
from consumer_api.api.spec import init_swagger
from consumer_api.config import Config
from consumer_api.embedded.engine import Engine
from consumer_api.sessions.manager import ConsumerManager

REQUEST_ID_HEADER = "X-Request-ID"


def create_app(config: Config | None = None, engine: Engine | None = None,
               manager: ConsumerManager | None = None) -> Flask:
    config = config or Config.from_env()
    app = Flask(__name__)
    app.json_provider_class = OrjsonProvider
    app.json = OrjsonProvider(app)
    app.config["MAX_CONTENT_LENGTH"] = config.max_body_bytes
    app.url_map.strict_slashes = False
    app.extensions[SETTINGS] = config
    engine = app.extensions[BACKEND] = engine or Engine(config)
    app.extensions[MANAGER] = manager or ConsumerManager(engine, config.max_sessions)
    for blueprint in (health.bp, topics.bp, records.bp, consumers.bp, groups.bp):
        app.register_blueprint(blueprint)
    errors.register(app)
    _request_ids(app)
    init_swagger(app)
    return app


def _request_ids(app: Flask) -> None:
    """Every request gets an id: the caller's ``X-Request-ID`` (nginx passes one) or a new
    one; it is echoed in the response and names the request in the logs."""

    prefix = os.urandom(6).hex()  # new ids: unique per process start, then a counter
    counter = itertools.count(1)

    @app.before_request
    def assign():
        given = request.headers.get(REQUEST_ID_HEADER, "")
        g.request_id = given[:64] if given.isprintable() and given else \
            f"{prefix}{next(counter):08x}"

    @app.after_request
    def echo(resp):
        resp.headers[REQUEST_ID_HEADER] = g.get("request_id", "")
        return resp


def engine_of(app: Flask) -> Engine:
    return app.extensions[BACKEND]


def start_background(app: Flask) -> None:
    """Start the log maintenance and session reaper threads (after the fork), and tune
    the garbage collector for a long-running server."""
    _tune_gc()
    engine_of(app).start()
    app.extensions[MANAGER].start()


def _tune_gc() -> None:
    """A produce or consume request allocates thousands of short-lived containers, so the
    default threshold (700) runs a collection every few hundred records. Freeze what start-up
    built (it lives forever) and collect the young generation every 50,000 allocations
    instead: measured 6-7% less time per 500-record produce."""
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def shutdown(app: Flask) -> None:
    """Answer waiting polls, stop the reaper, then flush and close the logs."""
    try:
        app.extensions[MANAGER].shutdown()
    finally:
        engine_of(app).close()
