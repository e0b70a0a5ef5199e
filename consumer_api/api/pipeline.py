"""What runs around every request, in order -- one before and one after hook (each hook
Flask calls costs a few microseconds of dispatch, so there are exactly two):

before: start the clock (:mod:`.observe`); give the request its id; refuse API work unless
the server is ready (:mod:`.lifecycle`); authenticate and check path rights
(:mod:`.security`).
after: echo the request id; count the request and write its access line (:mod:`.observe`).

Request ids: the caller's ``X-Request-ID`` (nginx passes one) when it is 1-64 characters
of letters, digits and ``._:-``, else a new one; echoed in the response, and the id of the
request in every log line.
"""
from __future__ import annotations

import itertools
import os
import re

from flask import Flask, g, request

from consumer_api.api import lifecycle, observe, security
from consumer_api.api.state import state_of

REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def init_pipeline(app: Flask) -> None:
    app_state = state_of(app)
    life, keyring, metrics = app_state.lifecycle, app_state.keyring, app_state.metrics
    prefix = os.urandom(6).hex()  # new ids: unique per process start, then a counter
    counter = itertools.count(1)

    @app.before_request
    def before():
        observe.start()
        given = request.headers.get(REQUEST_ID_HEADER, "")
        g.request_id = given if _REQUEST_ID.fullmatch(given) else f"{prefix}{next(counter):08x}"
        method, path = request.method, request.path
        lifecycle.gate(life, method, path)
        security.authenticate(keyring, method, path)

    @app.after_request
    def after(resp):
        resp.headers[REQUEST_ID_HEADER] = g.get("request_id", "")
        return observe.finish(resp, metrics)
