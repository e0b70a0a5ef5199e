"""The Flask application factory.

``create_app(config)`` opens the engine over ``config.data_dir`` and registers the
blueprints. It starts no threads: :func:`start_background` does, called by gunicorn's
``post_worker_init`` hook (after the fork) or by whoever embeds the app.
"""
from __future__ import annotations

from flask import Flask

from consumer_api.config import Config
from consumer_api.embedded.engine import Engine

EXTENSION = "consumer_api"


def create_app(config: Config | None = None, engine: Engine | None = None) -> Flask:
    config = config or Config.from_env()
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = config.max_body_bytes
    app.extensions[EXTENSION] = engine or Engine(config)
    from consumer_api.api import health
    app.register_blueprint(health.bp)
    return app


def engine_of(app: Flask) -> Engine:
    return app.extensions[EXTENSION]


def start_background(app: Flask) -> None:
    engine_of(app).start()


def shutdown(app: Flask) -> None:
    engine_of(app).close()
