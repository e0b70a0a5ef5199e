"""The one place that builds a store from the configuration.

``CONSUMER_API_BACKEND`` names it: ``embedded`` (the default; local segment files in
``CONSUMER_API_DATA_DIR``, :mod:`consumer_api.embedded`) or ``kafka`` (an Apache Kafka
cluster at ``CONSUMER_API_KAFKA_BOOTSTRAP_SERVERS``, :mod:`consumer_api.kafka`). Everything
else in the server sees only :class:`consumer_api.backend.Backend`.
"""
from __future__ import annotations

import json
import os

from consumer_api.backend import Backend
from consumer_api.config import Config

#: how long a reloaded worker waits for its predecessor to release the data directory (the
#: predecessor finishes its requests first: gunicorn's graceful_timeout is 30 s)
SIBLING_WAIT_S = 40.0


def build_backend(config: Config, defer_open: bool = False) -> Backend:
    """The store ``config.backend`` names. With ``defer_open`` it is not opened yet (the
    server opens it in the background, see :func:`consumer_api.app.start_background`); a
    store that guards its data against a second process takes that guard at once (and a
    deferred one waits up to SIBLING_WAIT_S for the worker a reload replaces)."""
    if config.backend == "embedded":
        from consumer_api.embedded.engine import Engine
        return Engine(config, open_now=not defer_open,
                      sibling_wait_s=SIBLING_WAIT_S if defer_open else 0)
    if config.backend == "kafka":
        from consumer_api.kafka.backend import KafkaBackend
        store = KafkaBackend(kafka_client_config(config), config.kafka_timeout_ms / 1000)
        if not defer_open:
            store.open()
        return store
    raise ValueError(f"CONSUMER_API_BACKEND: no store named {config.backend!r}")


def kafka_client_config(config: Config) -> dict:
    """librdkafka settings from ``CONSUMER_API_KAFKA_CONFIG`` (a JSON object) and the
    bootstrap servers; ValueError naming the setting when it is not a JSON object."""
    extra = {}
    if config.kafka_config.strip():
        try:
            extra = json.loads(config.kafka_config)
        except ValueError as exc:
            raise ValueError(f"CONSUMER_API_KAFKA_CONFIG is not JSON: {exc}") from None
        if not isinstance(extra, dict):
            raise ValueError("CONSUMER_API_KAFKA_CONFIG must be a JSON object of librdkafka "
                             "settings")
    return {**extra, "bootstrap.servers": config.kafka_bootstrap_servers}


def check_store_settings(config: Config) -> None:
    """The chosen store's own settings, checked without connecting to anything."""
    if config.backend == "kafka":
        kafka_client_config(config)


def session_cap(config: Config) -> int:
    """Consumer sessions one node may hold: a Kafka session is a Kafka consumer (threads
    and buffers of its own), so that store has a cap of its own too."""
    if config.backend == "kafka":
        return min(config.max_sessions, config.kafka_max_sessions)
    return config.max_sessions


def sessions_path(config: Config) -> str | None:
    """Where this node saves its consumer sessions (None: they end with the process):
    ``sessions.jsonl`` -- ``sessions.<node_id>.jsonl`` on a named node -- in
    ``CONSUMER_API_SESSIONS_DIR``, by default ``<data_dir>/internal`` on the embedded store;
    on Kafka, whose nodes need no data directory, only when the directory is set."""
    if not config.persist_sessions:
        return None
    directory = config.sessions_dir
    if not directory:
        if config.backend != "embedded":
            return None
        directory = os.path.join(config.data_dir, "internal")
    name = f"sessions.{config.node_id}.jsonl" if config.node_id else "sessions.jsonl"
    return os.path.join(directory, name)
