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
