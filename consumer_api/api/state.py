"""The one per-app state object the views, hooks and server share.

``create_app`` builds one :class:`AppState` and keeps it in ``app.extensions``;
:func:`state` finds it for the current request, :func:`state_of` for a given app. Its
fields never change after creation (each object they name locks itself where it must).
"""
from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, current_app

from consumer_api.api.lifecycle import Lifecycle
from consumer_api.auth import KeyRing
from consumer_api.backend import Backend
from consumer_api.budget import ByteBudget
from consumer_api.config import Config
from consumer_api.history import History
from consumer_api.metrics import Metrics
from consumer_api.refusals import Refusals
from consumer_api.sessions.manager import ConsumerManager

KEY = "consumer_api"


@dataclass(frozen=True)
class AppState:
    """``request_budget``: request bodies being received (the worker charges it);
    ``response_budget``: record responses built and not yet sent; ``trusted_proxies``:
    what :func:`consumer_api.api.security.parse_trusted_proxies` made of the setting."""

    config: Config
    backend: Backend
    manager: ConsumerManager
    lifecycle: Lifecycle
    metrics: Metrics
    history: History
    refusals: Refusals
    request_budget: ByteBudget
    response_budget: ByteBudget
    keyring: KeyRing
    trusted_proxies: tuple = ()


def init_state(app: Flask, app_state: AppState) -> AppState:
    app.extensions[KEY] = app_state
    return app_state


def state_of(app: Flask) -> AppState:
    return app.extensions[KEY]


def state() -> AppState:
    """The state of the app handling the current request."""
    return current_app.extensions[KEY]
