"""The Flask application factory.

``create_app(config)`` builds the app: the store ``config.backend`` names (unless one is
passed in; :mod:`consumer_api.backends`), consumer sessions, blueprints, the error envelope, the JSON provider, request
ids, authentication, metrics and access logs, CORS and Swagger. It starts no threads:
:func:`start_background` does -- called by gunicorn's ``post_worker_init`` hook (after the
fork) or by whoever embeds the app. With ``defer_open`` the store is only built at
creation and opened (its logs recovered) by :func:`start_background` in the background, the
health probes answering meanwhile; :func:`begin_shutdown` (SIGTERM) and :func:`shutdown`
(worker exit) end it.
"""
from __future__ import annotations

import gc
import logging
import threading

from flask import Flask
from flask_cors import CORS

from consumer_api import console
from consumer_api.api import consumers, errors, groups, health, metrics, records, topics
from consumer_api.api import topic_stats
from consumer_api.api.json_io import OrjsonProvider
from consumer_api.api.lifecycle import DRAINING, READY, STARTING, Lifecycle
from consumer_api.api.pipeline import REQUEST_ID_HEADER, init_pipeline
from consumer_api.api.security import parse_trusted_proxies, warn_if_open
from consumer_api.api.spec import init_swagger
from consumer_api.api.state import AppState, init_state, state_of
from consumer_api.auth import KeyRing
from consumer_api.backend import Backend
from consumer_api.backends import build_backend, check_store_settings, session_cap, sessions_path
from consumer_api.budget import ByteBudget
from consumer_api.config import Config
from consumer_api.history import History
from consumer_api.metrics import Metrics
from consumer_api.refusals import Refusals
from consumer_api.sessions.manager import ConsumerManager
from consumer_api.sessions.saved import SessionLog

log = logging.getLogger(__name__)


def create_app(config: Config | None = None, backend: Backend | None = None,
               manager: ConsumerManager | None = None, defer_open: bool = False) -> Flask:
    config = config or Config.from_env()
    keyring = KeyRing.from_config(config.api_keys, config.api_keys_file)
    trusted_proxies = parse_trusted_proxies(config.trusted_proxies)
    app = Flask(__name__)
    app.json = OrjsonProvider(app)
    app.config["MAX_CONTENT_LENGTH"] = config.max_body_bytes
    app.url_map.strict_slashes = False
    app.url_map.merge_slashes = False  # "a//b" is no resource (a topic "x/" is not "x")
    backend = backend or build_backend(config, defer_open)
    manager = manager or _manager(config, backend)
    refusals = Refusals()
    buffered = ByteBudget(config.request_buffer_bytes)
    in_flight = ByteBudget(config.response_buffer_bytes)
    meters = Metrics(backend, manager, refusals, (buffered, in_flight))
    init_state(app, AppState(
        config=config, backend=backend, manager=manager,
        lifecycle=Lifecycle(READY if backend.is_open else STARTING),
        metrics=meters, history=History(backend, manager, meters.consumed_by_topic,
                                        config.history_interval_ms),
        refusals=refusals, request_budget=buffered, response_budget=in_flight,
        keyring=keyring, trusted_proxies=tuple(trusted_proxies)))
    warn_if_open(app, keyring)
    init_pipeline(app)
    for blueprint in (health.bp, topics.bp, records.bp, consumers.bp, groups.bp, metrics.bp,
                      console.bp):
        app.register_blueprint(blueprint)
    app.register_blueprint(topic_stats.bp)
    errors.register(app)
    _cors(app, config.cors_origins)
    init_swagger(app, secured=keyring.enabled)
    return app


def _manager(config: Config, backend: Backend) -> ConsumerManager:
    path = sessions_path(config)
    return ConsumerManager(backend, session_cap(config), node_id=config.node_id,
                           join_wait_s=config.join_wait_ms / 1000,
                           sessions_log=None if path is None else SessionLog(
                               path, sync_each_append=config.flush_policy == "always"),
                           save_interval_s=config.sessions_save_interval_ms / 1000)


def check_settings(environ=None) -> Config:
    """Every setting, read and checked the way :func:`create_app` will (the config file,
    the environment, the keys file, the trusted proxies) without opening anything: the
    server calls it before it listens. ValueError naming the setting that is wrong."""
    config = Config.from_env(environ)
    KeyRing.from_config(config.api_keys, config.api_keys_file)
    parse_trusted_proxies(config.trusted_proxies)
    check_store_settings(config)
    return config


def _cors(app: Flask, origins: str) -> None:
    """Cross-origin access for browser clients from ``CONSUMER_API_CORS_ORIGINS``
    (comma-separated origins, or ``*``); none by default. Preflights are answered."""
    allowed = [o.strip() for o in origins.split(",") if o.strip()]
    if allowed:
        CORS(app, resources={r"/api/*": {"origins": "*" if "*" in allowed else allowed}},
             allow_headers=["Authorization", "Content-Type", "Content-Encoding",
                            REQUEST_ID_HEADER],
             expose_headers=[REQUEST_ID_HEADER, "WWW-Authenticate"], max_age=600)


def configure_threads(app: Flask, threads: int) -> None:
    """The server runs the app on ``threads`` threads: consumes waiting for records may
    hold all but ``reserved_threads`` of them (at least one), so produces, commits and the
    probes always find a thread. Without this call waiting polls have no server-wide cap."""
    app_state = state_of(app)
    reserved = app_state.config.reserved_threads
    app_state.manager.limit_waiting_polls(max(1, threads - reserved))


def backend_of(app: Flask) -> Backend:
    return state_of(app).backend


def start_background(app: Flask) -> None:
    """After the fork: tune the garbage collector, open the logs if that was deferred (in a
    thread: the probes answer meanwhile), then start log maintenance and the session reaper
    and declare the app ready."""
    _tune_gc()
    if backend_of(app).is_open:
        _run(app)
    else:
        threading.Thread(target=_open_then_run, args=(app,), name="open-logs",
                         daemon=True).start()


def _open_then_run(app: Flask) -> None:
    try:
        backend_of(app).open()
    except BaseException:
        log.exception("cannot open the data directory; the server stays unavailable")
        raise
    _run(app)


def _run(app: Flask) -> None:
    backend_of(app).start()
    app_state = state_of(app)
    _restore_sessions(app_state)
    app_state.manager.start()
    app_state.history.start()
    lifecycle = app_state.lifecycle
    if lifecycle.state == STARTING:
        lifecycle.state = READY


def _restore_sessions(app_state: AppState) -> None:
    """Bring back the consumer sessions saved before the restart (never stops the start:
    what cannot be restored is logged and dropped)."""
    keyring = app_state.keyring
    try:
        app_state.manager.restore(keyring.owns_sessions)
    except Exception:
        log.exception("the saved consumer sessions could not be restored")


def _tune_gc() -> None:
    """A produce or consume request allocates thousands of short-lived containers, so the
    default threshold (700) runs a collection every few hundred records. Freeze what start-up
    built (it lives forever) and collect the young generation every 50,000 allocations
    instead."""
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def begin_shutdown(app: Flask) -> None:
    """SIGTERM: take no new work (503), answer every waiting poll now (empty: nothing is
    committed on the clients' behalf). The logs are closed by :func:`shutdown` once the
    requests in flight are done."""
    state_of(app).lifecycle.state = DRAINING
    state_of(app).manager.shutdown()


def shutdown(app: Flask) -> None:
    """Answer waiting polls, stop the reaper, save the sessions a last time, then flush and
    close the logs."""
    state_of(app).lifecycle.state = DRAINING
    state_of(app).history.stop()
    try:
        state_of(app).manager.shutdown()
        state_of(app).manager.stop_saving()
    finally:
        backend_of(app).close()
