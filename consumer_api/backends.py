"""The one place that builds a store from the configuration.

``CONSUMER_API_BACKEND`` names it: ``embedded`` (the default; local segment files in
``CONSUMER_API_DATA_DIR``, :mod:`consumer_api.embedded`). Everything else in the server
sees only :class:`consumer_api.backend.Backend`.
"""
from __future__ import annotations

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
    raise ValueError(f"CONSUMER_API_BACKEND: no store named {config.backend!r}")
