"""Authentication and authorisation of requests (see :mod:`consumer_api.auth`).

Every ``/api`` route except the health probes needs ``Authorization: Bearer <key>`` when
keys are configured: a missing or wrong key is ``401 unauthorized`` with a
``WWW-Authenticate`` header. Rights on names in the path are checked here, before the
view runs (``403 forbidden``); views check the names that come in a body with
:func:`require` and filter lists with :func:`visible`. CORS preflight requests carry no
credentials and pass (flask-cors answers them).
"""
from __future__ import annotations

from flask import Flask, g, request

from consumer_api.auth import ANONYMOUS, KeyRing, Principal
from consumer_api.errors import Forbidden, Unauthorized

KEYRING = "consumer_api.keyring"
OPEN_PREFIXES = ("/api/health",)

#: endpoint -> (kind, right, view argument naming the resource)
PATH_RIGHTS = {
    "topics.describe_topic": ("topics", "read", "topic"),
    "topics.delete_topic": ("topics", "admin", "topic"),
    "records.produce": ("topics", "write", "topic"),
    "records.read": ("topics", "read", "topic"),
    "groups.describe_group": ("groups", "read", "group"),
    "groups.set_offsets": ("groups", "admin", "group"),
    "groups.delete_group": ("groups", "admin", "group"),
}


def init_security(app: Flask, keyring: KeyRing) -> None:
    app.extensions[KEYRING] = keyring
    if not keyring.enabled:
        app.logger.warning("no API keys configured: the API is open to anyone who can reach "
                           "it (set CONSUMER_API_API_KEYS or CONSUMER_API_API_KEYS_FILE)")


def authenticate(keyring: KeyRing, method: str, path: str) -> None:
    """Before the request (see :mod:`consumer_api.api.pipeline`)."""
    g.principal = ANONYMOUS
    if not keyring.enabled or method == "OPTIONS" or not path.startswith("/api/") \
            or path.startswith(OPEN_PREFIXES):
        return
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    principal = keyring.authenticate(token.strip()) if scheme.lower() == "bearer" else None
    if principal is None:
        exc = Unauthorized("missing or invalid API key: send 'Authorization: Bearer <key>'"
                           if token else "this API needs a key: send 'Authorization: Bearer <key>'")
        exc.headers = {"WWW-Authenticate": 'Bearer realm="consumer-api"'
                       + (', error="invalid_token"' if token else "")}
        raise exc
    g.principal = principal
    rule = PATH_RIGHTS.get(request.endpoint or "")
    if rule is not None:
        kind, right, arg = rule
        require(kind, right, (request.view_args or {}).get(arg, ""))


def current() -> Principal:
    return g.get("principal", ANONYMOUS)


def owner() -> str | None:
    """Whom a consumer session created now belongs to (None on an open server)."""
    principal = current()
    return None if principal is ANONYMOUS else principal.name


def session_quota() -> int | None:
    """How many consumer sessions the caller's key may hold at once (None: no cap of its
    own; the server-wide one applies)."""
    return current().max_sessions


def require(kind: str, right: str, name: str) -> None:
    principal = current()
    if not principal.allows(kind, right, name):
        raise Forbidden(f"the API key {principal.name!r} may not {right} {kind[:-1]} {name!r}",
                        {kind[:-1]: name, "right": right})


def visible(kind: str, name: str) -> bool:
    return current().sees(kind, name)
