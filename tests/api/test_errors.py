"""The one error envelope (API.md, "Errors"): every failure is JSON
``{"error", "code", "details"}``, never HTML nor a stack trace; request ids."""
from __future__ import annotations

import logging
import re

import pytest

from tests.api.conftest import assert_error, b64

pytestmark = pytest.mark.usefixtures("openapi_built_once")


def assert_envelope(resp, status, code):
    raw = resp.get_data()
    assert not raw.lstrip().startswith(b"<"), raw[:200]
    assert b"Traceback" not in raw
    assert resp.headers["Content-Type"] == "application/json"
    return assert_error(resp, status, code)


@pytest.fixture
def topic(api):
    assert api.create_topic("t", 2).status_code == 201
    return "t"


# -- routing -----------------------------------------------------------------------------

def test_unknown_route_is_404_not_found(api, topic):
    for path in ("/nope", "/api", "/api/topic", "/api/topics/t/nope",
                 "/api/topics/t/partitions/0", "/api/health/dead"):
        details = assert_envelope(api.client.get(path), 404, "not_found")
        assert details == {"path": path}


def test_wrong_method_is_405_with_an_allow_header(api, topic):
    for method, path, allowed in (
            ("put", "/api/topics", {"GET", "POST"}),
            ("delete", "/api/topics", {"GET", "POST"}),
            ("patch", "/api/topics/t", {"GET", "DELETE"}),
            ("post", "/api/topics/t", {"GET", "DELETE"}),
            ("get", "/api/topics/t/records", {"POST"}),
            ("post", "/api/topics/t/partitions/0/records", {"GET"}),
            ("post", "/api/health", {"GET"})):
        resp = getattr(api.client, method)(path)
        details = assert_envelope(resp, 405, "method_not_allowed")
        allow = {m.strip() for m in resp.headers["Allow"].split(",")}
        assert allowed <= allow, (method, path)
        assert method.upper() not in allow, (method, path)
        assert set(details["allowed"]) == allow, (method, path)


# -- bodies ------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/api/topics", "/api/topics/t/records"])
def test_malformed_json_is_400_invalid_request_naming_body(api, topic, path):
    for text in ('{"name": "x", ', "{'name': 'x'}", "not json", '{"a": 1}}',
                 '{"name": "x", "partitions": 1,}', "\xff", '{"records": [}'):
        details = assert_envelope(api.post_text(path, text), 400, "invalid_request")
        assert list(details) == ["body"], text
    assert [t["name"] for t in api.client.get("/api/topics").get_json()["topics"]] == ["t"]
    assert api.watermarks("t") == [0, 0]


@pytest.mark.parametrize("path, body", [
    ("/api/topics", '{"name": "x", "partitions": 1}'),
    ("/api/topics/t/records", '{"records": [{"value": "aGk="}]}'),
])
def test_wrong_content_type_is_415_naming_what_is_accepted(api, topic, path, body):
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "application/xml",
                         "", "multipart/form-data", "text/json",
                         "application/vnd.kafka.json.v2+json", "application/vnd.kafka.v2+json"):
        resp = api.client.post(path, data=body, headers={"Content-Type": content_type})
        details = assert_envelope(resp, 415, "unsupported_media_type")
        assert details == {"content_type": content_type or "empty",
                           "accepted_media_types": ["application/json"]}, content_type
    assert api.client.get("/api/topics/x").status_code == 404
    assert api.watermarks("t") == [0, 0]


def test_json_with_charset_is_accepted(api):
    resp = api.post_text("/api/topics", '{"name": "x", "partitions": 1}',
                         content_type="application/json; charset=utf-8")
    assert resp.status_code == 201


@pytest.mark.parametrize("path", ["/api/topics", "/api/topics/t/records"])
def test_empty_body_is_400_invalid_request(api, topic, path):
    for body in ("", "   ", "\n"):
        details = assert_envelope(api.post_text(path, body), 400, "invalid_request")
        assert list(details) == ["body"], repr(body)
    assert api.watermarks("t") == [0, 0]


@pytest.mark.parametrize("path", ["/api/topics", "/api/topics/t/records"])
def test_body_over_the_limit_is_413_payload_too_large(make_api, path):
    small = make_api(max_body_bytes=1024)
    assert small.create_topic("t", 1).status_code == 201
    big = '{"records": [{"value": "%s"}], "name": "x"}' % b64(b"z" * 2000)
    details = assert_envelope(small.post_text(path, big), 413, "payload_too_large")
    assert details == {"max_body_bytes": 1024}
    assert small.watermarks("t") == [0]
    assert small.client.get("/api/topics/x").status_code == 404


def test_body_just_under_the_limit_is_accepted(make_api):
    small = make_api(max_body_bytes=1024)
    assert small.create_topic("t", 1).status_code == 201
    body = '{"records": [{"value": "%s"}]}' % ("A" * 800)
    assert len(body) < 1024
    assert small.post_text("/api/topics/t/records", body).status_code == 200


def test_domain_errors_use_the_envelope_too(api, topic):
    assert_envelope(api.client.get("/api/topics/nope"), 404, "topic_not_found")
    assert_envelope(api.create_topic("t", 1), 409, "topic_exists")
    assert_envelope(api.read("t", 9), 404, "partition_not_found")
    assert_envelope(api.read("t", 0, offset=5), 400, "offset_out_of_range")
    assert_envelope(api.create_topic("../x", 1), 400, "invalid_request")


# -- unexpected exceptions -----------------------------------------------------------------

def boom(*args, **kwargs):
    raise RuntimeError("secret-payload")


def test_unexpected_exception_is_500_internal_error_without_the_exception_text(
        api, topic, engine, monkeypatch, caplog):
    monkeypatch.setattr(engine, "produce", boom)
    with caplog.at_level(logging.ERROR):
        resp = api.produce(topic, [{"value": b64("v")}])
    details = assert_envelope(resp, 500, "internal_error")
    raw = resp.get_data(as_text=True)
    assert "secret-payload" not in raw
    assert "RuntimeError" not in raw
    assert "Traceback" not in raw and "engine.py" not in raw
    request_id = details["request_id"]
    assert request_id and request_id == resp.headers["X-Request-ID"]
    assert request_id in caplog.text
    # the server log has the details under that id
    logged = [r for r in caplog.records if request_id in r.getMessage()]
    assert logged and logged[0].levelno >= logging.ERROR
    assert logged[0].exc_info and "secret-payload" in str(logged[0].exc_info[1])


def test_unexpected_exception_keeps_the_callers_request_id(api, topic, engine, monkeypatch,
                                                           caplog):
    monkeypatch.setattr(engine, "describe_topic", boom)
    with caplog.at_level(logging.ERROR):
        resp = api.client.get("/api/topics/t", headers={"X-Request-ID": "req-42-abc"})
    details = assert_envelope(resp, 500, "internal_error")
    assert details == {"request_id": "req-42-abc"}
    assert resp.headers["X-Request-ID"] == "req-42-abc"
    assert "req-42-abc" in caplog.text
    assert "secret-payload" not in resp.get_data(as_text=True)


def test_the_server_still_answers_after_an_unexpected_exception(api, topic, engine, monkeypatch):
    with monkeypatch.context() as m:
        m.setattr(engine, "list_topics", boom)
        assert_envelope(api.client.get("/api/topics"), 500, "internal_error")
    resp = api.client.get("/api/topics")
    assert resp.status_code == 200
    assert [t["name"] for t in resp.get_json()["topics"]] == ["t"]


# -- request ids -------------------------------------------------------------------------

@pytest.mark.parametrize("path, status", [("/api/health", 200), ("/api/topics/nope", 404),
                                          ("/nope", 404)])
def test_a_given_request_id_is_echoed(api, path, status):
    resp = api.client.get(path, headers={"X-Request-ID": "abc-123.XYZ"})
    assert resp.status_code == status
    assert resp.headers["X-Request-ID"] == "abc-123.XYZ"


def test_a_request_id_is_generated_when_none_is_given(api):
    ids = set()
    for path in ("/api/health", "/api/topics", "/nope", "/api/topics/nope"):
        resp = api.client.get(path)
        rid = resp.headers.get("X-Request-ID", "")
        assert re.fullmatch(r"[0-9a-f]{16,64}", rid), rid
        ids.add(rid)
    assert len(ids) == 4
    resp = api.client.put("/api/topics")
    assert resp.headers.get("X-Request-ID")
    resp = api.post_text("/api/topics", "{")
    assert resp.headers.get("X-Request-ID")


def test_an_unprintable_request_id_is_replaced(api):
    resp = api.client.get("/api/health", headers={"X-Request-ID": "bad\x01id"})
    rid = resp.headers["X-Request-ID"]
    assert rid and "\x01" not in rid and rid != "bad\x01id"
