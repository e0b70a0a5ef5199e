"""Fixtures for the HTTP tests: ``api`` (a thin helper over the Flask test client) and
``make_api`` (an app with some settings overridden, over the same engine)."""
from __future__ import annotations

import base64
import copy
import json

import pytest

from consumer_api.api import spec
from consumer_api.config import Config


@pytest.fixture(scope="module")
def openapi_built_once():
    """``create_app`` builds the OpenAPI document from YAML docstrings (~50 ms) for every
    app; it is the same document for every app of a module that does not test Swagger, so
    such a module (``pytestmark = pytest.mark.usefixtures("openapi_built_once")``) builds
    it once. Each test still gets its own fresh app from ``create_app``. Module-scoped, so
    it never leaks into the Swagger tests."""
    real, cache = spec.build_spec, {}

    def build_once(app, secured=False):
        if secured not in cache:
            cache[secured] = real(app, secured)
        return copy.deepcopy(cache[secured])

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(spec, "build_spec", build_once)
        yield


def b64(data: bytes | str) -> str:
    if isinstance(data, str):
        data = data.encode("utf-8")
    return base64.b64encode(data).decode("ascii")


class Api:
    """The calls a client makes, returning Flask test responses."""

    def __init__(self, client):
        self.client = client

    def create_topic(self, name, partitions=1, **extra):
        return self.client.post("/api/topics", json={"name": name, "partitions": partitions, **extra})

    def produce(self, topic, records, encoding=None, **extra):
        body = {"records": records, **extra}
        if encoding is not None:
            body["encoding"] = encoding
        return self.post_text(f"/api/topics/{topic}/records", json.dumps(body))

    def post_text(self, path, text, content_type="application/json", **kwargs):
        """POST a body serialised by the caller (the standard library keeps big ints)."""
        return self.client.post(path, data=text, content_type=content_type, **kwargs)

    def read(self, topic, partition, **params):
        return self.client.get(f"/api/topics/{topic}/partitions/{partition}/records",
                               query_string=params)

    def records(self, topic, partition, **params):
        resp = self.read(topic, partition, **params)
        assert resp.status_code == 200, resp.get_data(as_text=True)
        return resp.get_json()["records"]

    def describe(self, topic):
        resp = self.client.get(f"/api/topics/{topic}")
        assert resp.status_code == 200, resp.get_data(as_text=True)
        return resp.get_json()

    def watermarks(self, topic):
        return [p["high_watermark"] for p in self.describe(topic)["partitions"]]


def assert_error(resp, status, code):
    """The error envelope of API.md, as JSON, with this status and code; returns details."""
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert resp.mimetype == "application/json"
    body = resp.get_json()
    assert set(body) == {"error", "code", "details"}, body
    assert body["code"] == code, body
    assert isinstance(body["error"], str) and body["error"]
    assert isinstance(body["details"], dict)
    return body["details"]


@pytest.fixture
def api(client):
    return Api(client)


@pytest.fixture
def make_api(request, data_dir, engine):
    """``make_api(max_records_per_produce=5)``: an app with those settings over ``engine``
    (and the test's consumer ``manager``, when the shared conftest provides one)."""
    from consumer_api.app import create_app

    try:
        extra = {"manager": request.getfixturevalue("manager")}
    except pytest.FixtureLookupError:
        extra = {}

    def make(**overrides):
        app = create_app(Config(data_dir=data_dir, **overrides), backend=engine, **extra)
        return Api(app.test_client())

    return make
