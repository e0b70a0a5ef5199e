"""Per-app objects the views use: the backend and the settings."""
from __future__ import annotations

from flask import current_app

from consumer_api.backend import Backend
from consumer_api.config import Config

BACKEND = "consumer_api.backend"
SETTINGS = "consumer_api.settings"


def backend() -> Backend:
    return current_app.extensions[BACKEND]


def settings() -> Config:
    return current_app.extensions[SETTINGS]

MANAGER = "consumer_api.sessions"
REFUSALS = "consumer_api.refusals"
REQUEST_BUDGET = "consumer_api.request_budget"
RESPONSE_BUDGET = "consumer_api.response_budget"


def refusals():
    """The server's :class:`consumer_api.refusals.Refusals` (counted and logged)."""
    return current_app.extensions[REFUSALS]


def manager():
    """The ConsumerManager (consumer_api.sessions.manager)."""
    return current_app.extensions[MANAGER]


def offsets_to_wire(offsets: dict) -> dict:
    """``{(topic, partition): offset}`` -> ``{topic: {"partition": offset}}``."""
    out: dict = {}
    for (topic, partition), offset in sorted(offsets.items()):
        out.setdefault(topic, {})[str(partition)] = offset
    return out


def offsets_from_wire(offsets: dict) -> dict:
    """``{topic: {partition: offset}}`` (partition keys already ints) -> ``{(t, p): o}``."""
    return {(topic, p): o for topic, parts in offsets.items() for p, o in parts.items()}
