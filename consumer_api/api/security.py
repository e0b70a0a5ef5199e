"""Authentication and authorisation of requests (see :mod:`consumer_api.auth`).

Every ``/api`` route except the health probes needs ``Authorization: Bearer <key>`` when
keys are configured: a missing or wrong key is ``401 unauthorized`` with a
``WWW-Authenticate`` header. Rights on names in the path are declared on the view with
:func:`path_right` and checked here, before the view runs (``403 forbidden``); views check the names that come in a body with
:func:`require` and filter lists with :func:`visible`. CORS preflight requests carry no
credentials and pass (flask-cors answers them).

Who the *client* is, for the fair shares of consumer sessions and waiting polls
(:func:`client`), is a separate question from whose sessions are whose (:func:`owner`): an
API key (``"key billing"``) when keys are configured, else the peer address
(``"address 10.0.0.7"``). ``X-Forwarded-For`` is believed only from the trusted proxies
(``CONSUMER_API_TRUSTED_PROXIES``): see :func:`client_address`.
"""
from __future__ import annotations

import ipaddress

from flask import Flask, current_app, g, request

from consumer_api.api.lifecycle import PROBES
from consumer_api.api.state import state
from consumer_api.auth import ANONYMOUS, KeyRing, Principal
from consumer_api.errors import Forbidden, Unauthorized
from consumer_api.sessions.quota import ClientQuota




def path_right(kind: str, right: str, arg: str):
    """Decorate a view (under its route decorator): a key needs ``right`` on the
    ``kind`` (``topics``/``groups``) named by the path's ``arg``, checked before the view
    runs."""
    def mark(view):
        view.path_right = (kind, right, arg)
        return view
    return mark


def warn_if_open(app: Flask, keyring: KeyRing) -> None:
    """Say at start-up when the API is open to anyone."""
    if not keyring.enabled:
        app.logger.warning("no API keys configured: the API is open to anyone who can reach "
                           "it (set CONSUMER_API_API_KEYS or CONSUMER_API_API_KEYS_FILE)")


def authenticate(keyring: KeyRing, method: str, path: str) -> None:
    """Before the request (see :mod:`consumer_api.api.pipeline`)."""
    g.principal = ANONYMOUS
    if not keyring.enabled or method == "OPTIONS" or not path.startswith("/api/") \
            or path.startswith(PROBES):
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
    view = current_app.view_functions.get(request.endpoint or "")
    rule = getattr(view, "path_right", None)
    if rule is not None:
        kind, right, arg = rule
        require(kind, right, (request.view_args or {}).get(arg, ""))


def current() -> Principal:
    return g.get("principal", ANONYMOUS)


def owner() -> str | None:
    """Whom a consumer session created now belongs to (None on an open server)."""
    principal = current()
    return None if principal is ANONYMOUS else principal.name


def client() -> ClientQuota:
    """Who this request comes from, with its share of sessions and waiting polls: the API
    key (its own caps from the keys file, else the defaults), or on an open server the
    client's address. Worked out once per request."""
    found = g.get("client")
    if found is None:
        found = g.client = _client_of(current())
    return found


def _client_of(principal: Principal) -> ClientQuota:
    app_state = state()
    config = app_state.config
    if principal is ANONYMOUS:
        address = client_address(request.environ.get("REMOTE_ADDR", ""),
                                 request.environ.get("HTTP_X_FORWARDED_FOR"),
                                 app_state.trusted_proxies)
        return ClientQuota(f"address {address}", config.max_sessions_per_client,
                           config.max_polls_per_client)
    return ClientQuota(f"key {principal.name}",
                       principal.max_sessions or config.max_sessions_per_client,
                       principal.max_waiting_polls or config.max_polls_per_client)


def parse_trusted_proxies(text: str) -> tuple:
    """``CONSUMER_API_TRUSTED_PROXIES`` (comma-separated addresses or CIDR networks) as
    networks. ValueError naming the first entry that is neither."""
    networks = []
    for entry in (e.strip() for e in text.split(",")):
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry))
        except ValueError as exc:
            raise ValueError(f"CONSUMER_API_TRUSTED_PROXIES: {entry!r} is not an IP address "
                             f"or network such as 10.0.0.1 or 10.0.0.0/8 ({exc})") from None
    return tuple(networks)


def client_address(peer: str, forwarded_for: str | None, trusted: tuple) -> str:
    """The client's address: the peer's, unless the peer is a trusted proxy -- then the
    rightmost ``X-Forwarded-For`` entry that is not itself a trusted proxy (each proxy
    appends the address it got the request from; entries further left are whatever the
    client sent). Empty entries are skipped; at an entry that is not an address the walk
    stops and the proxy that passed it on is the client: nothing left of it is believed."""
    hop = _address(peer)
    if hop is None:
        return peer or "unknown"
    if not forwarded_for or not _trusted(hop, trusted):
        return str(hop)
    for entry in reversed(forwarded_for.split(",")):
        if not entry.strip():
            continue
        address = _address(entry)
        if address is None:
            break
        hop = address
        if not _trusted(hop, trusted):
            break
    return str(hop)


def _address(text: str):
    """An IP address from ``1.2.3.4``, ``1.2.3.4:port``, ``::1`` or ``[::1]:port``; None
    for anything else. An IPv4-mapped IPv6 address is its IPv4 address."""
    text = text.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    return getattr(address, "ipv4_mapped", None) or address


def _trusted(address, trusted: tuple) -> bool:
    return any(address in network for network in trusted)


def require(kind: str, right: str, name: str) -> None:
    principal = current()
    if not principal.allows(kind, right, name):
        raise Forbidden(f"the API key {principal.name!r} may not {right} {kind[:-1]} {name!r}",
                        {kind[:-1]: name, "right": right})


def visible(kind: str, name: str) -> bool:
    return current().sees(kind, name)
