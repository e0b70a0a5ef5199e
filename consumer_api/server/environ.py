"""The WSGI environ (PEP 3333) of one complete request.

The body is whole already (de-chunked, its length known): ``wsgi.input`` is a ``BytesIO``
over it, ``CONTENT_LENGTH`` is its length and ``wsgi.input_terminated`` is True. Headers
whose names hold an underscore are dropped (``X_Forwarded_For`` would otherwise pose as
``X-Forwarded-For``: both become ``HTTP_X_FORWARDED_FOR``); repeated headers are joined
with ``,``. Extra keys: ``consumer_api.socket`` (the client socket, to check whether the
client hung up; do not read or write it).
"""
from __future__ import annotations

import io
import sys
from urllib.parse import unquote_to_bytes

import httptools

from consumer_api.server.http11 import ProtocolError, Request

_BASE = {
    "wsgi.version": (1, 0),
    "wsgi.url_scheme": "http",
    "wsgi.errors": sys.stderr,
    "wsgi.multithread": True,
    "wsgi.multiprocess": False,
    "wsgi.run_once": False,
    "wsgi.input_terminated": True,
    "SCRIPT_NAME": "",
}
_SPECIAL = {b"CONTENT_TYPE": "CONTENT_TYPE", b"CONTENT_LENGTH": None,
            b"TRANSFER_ENCODING": None}


def build_environ(request: Request, sock, peer, server) -> dict:
    """``peer`` and ``server`` are socket addresses (``(host, port)``, or a path string
    for a Unix socket). ProtocolError (400) for a target that is not a path."""
    try:
        url = httptools.parse_url(request.target)
    except httptools.HttpParserInvalidURLError:
        raise ProtocolError(400, "invalid_request", "the request target is not a URL path") \
            from None
    path = url.path or b"/"
    environ = dict(_BASE)
    environ.update({
        "REQUEST_METHOD": request.method,
        "PATH_INFO": unquote_to_bytes(path).decode("latin-1"),
        "QUERY_STRING": (url.query or b"").decode("latin-1"),
        "RAW_URI": request.target.decode("latin-1"),
        "SERVER_PROTOCOL": "HTTP/" + request.version,
        "CONTENT_LENGTH": str(len(request.body)),
        "wsgi.input": io.BytesIO(request.body),
        "consumer_api.socket": sock,
    })
    _addresses(environ, peer, server)
    _headers(environ, request.headers)
    return environ


def _addresses(environ: dict, peer, server) -> None:
    if isinstance(peer, tuple):
        environ["REMOTE_ADDR"], environ["REMOTE_PORT"] = peer[0], str(peer[1])
    else:
        environ["REMOTE_ADDR"], environ["REMOTE_PORT"] = "", "0"
    if isinstance(server, tuple):
        environ["SERVER_NAME"], environ["SERVER_PORT"] = server[0], str(server[1])
    else:
        environ["SERVER_NAME"], environ["SERVER_PORT"] = "localhost", "0"


def _headers(environ: dict, headers: list) -> None:
    for name, value in headers:
        if b"_" in name:
            continue
        key = name.upper().replace(b"-", b"_")
        special = _SPECIAL.get(key, "")
        if special is None:
            continue  # the body is whole: its length is set above, its framing is gone
        wsgi_key = special or "HTTP_" + key.decode("latin-1")
        text = value.decode("latin-1")
        if wsgi_key in environ and special == "":
            environ[wsgi_key] += "," + text
        else:
            environ[wsgi_key] = text
