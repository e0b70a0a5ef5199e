"""Access logs: one record per request on the logger ``consumer_api.access`` with its fields
in ``record.access``; both formatters of :mod:`consumer_api.logs`; and no secret (API key,
Authorization header, record payload) in any log output, whatever the level.
"""
from __future__ import annotations

import io
import json
import logging
import re

import pytest

from consumer_api.logs import JsonFormatter, PlainFormatter
from tests.api.conftest import b64

pytestmark = pytest.mark.usefixtures("openapi_built_once")

ACCESS = "consumer_api.access"
FIELDS = {"method", "route", "status", "duration_ms", "consumer_id", "request_id"}
CONSUME_ROUTE = "/api/consumers/<consumer_id>/consume"


def access_records(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == ACCESS]


def only_access(caplog, before: int) -> logging.LogRecord:
    """The one access record logged since ``before`` records were there."""
    new = access_records(caplog)[before:]
    assert len(new) == 1, [r.__dict__.get("access") for r in new]
    return new[0]


@pytest.fixture
def access_caplog(caplog):
    caplog.set_level(logging.DEBUG)
    return caplog


def check_fields(record, method, route, status, consumer_id=None, request_id=None):
    fields = record.access
    assert FIELDS <= set(fields), fields
    assert record.levelno == logging.INFO
    assert fields["method"] == method
    assert fields["route"] == route
    assert fields["status"] == status
    assert isinstance(fields["duration_ms"], (int, float)) and 0 <= fields["duration_ms"] < 10_000
    assert fields["consumer_id"] == consumer_id
    if request_id is not None:
        assert fields["request_id"] == request_id
    return fields


# -- one record per request -----------------------------------------------------------------

def test_one_access_record_per_request_with_its_fields(api, client, access_caplog):
    n = len(access_records(access_caplog))
    resp = api.create_topic("t", 2)
    assert resp.status_code == 201
    rec = only_access(access_caplog, n)
    check_fields(rec, "POST", "/api/topics", 201, request_id=resp.headers["X-Request-ID"])
    assert rec.access["request_id"]

    n = len(access_records(access_caplog))
    resp = api.produce("t", [{"value": b64("hello")}])
    assert resp.status_code == 200
    check_fields(only_access(access_caplog, n), "POST", "/api/topics/<topic>/records", 200,
                 request_id=resp.headers["X-Request-ID"])

    n = len(access_records(access_caplog))
    resp = client.post("/api/consumers/subscribe",
                       json={"group_id": "g", "topics": ["t"], "auto_offset_reset": "earliest"})
    assert resp.status_code == 200
    cid = resp.get_json()["consumer_id"]
    check_fields(only_access(access_caplog, n), "POST", "/api/consumers/subscribe", 200,
                 request_id=resp.headers["X-Request-ID"])

    n = len(access_records(access_caplog))
    resp = client.post(f"/api/consumers/{cid}/consume", json={"timeout_ms": 0})
    assert resp.status_code == 200 and len(resp.get_json()["records"]) == 1
    rec = only_access(access_caplog, n)
    check_fields(rec, "POST", CONSUME_ROUTE, 200, consumer_id=cid,
                 request_id=resp.headers["X-Request-ID"])
    assert cid not in rec.access["route"], "the id goes in its own field, not in the route"

    for method, path, route in [("GET", f"/api/consumers/{cid}/position",
                                 "/api/consumers/<consumer_id>/position"),
                                ("POST", f"/api/consumers/{cid}/commit",
                                 "/api/consumers/<consumer_id>/commit"),
                                ("DELETE", f"/api/consumers/{cid}", "/api/consumers/<consumer_id>")]:
        n = len(access_records(access_caplog))
        resp = client.open(path, method=method, json={} if method == "POST" else None)
        assert resp.status_code == 200, resp.get_data(as_text=True)
        check_fields(only_access(access_caplog, n), method, route, 200, consumer_id=cid,
                     request_id=resp.headers["X-Request-ID"])

    # request ids: distinct when the server makes them, the caller's when given
    ids = [r.access["request_id"] for r in access_records(access_caplog)]
    assert len(set(ids)) == len(ids), ids
    n = len(access_records(access_caplog))
    resp = client.get("/api/topics", headers={"X-Request-ID": "trace-me-42"})
    assert resp.headers["X-Request-ID"] == "trace-me-42"
    check_fields(only_access(access_caplog, n), "GET", "/api/topics", 200,
                 request_id="trace-me-42")


def test_error_responses_are_logged_too(api, client, engine, monkeypatch, access_caplog):
    api.create_topic("t", 1)
    cases = [
        (lambda: client.get("/api/topics/missing"), "GET", "/api/topics/<topic>", 404, None),
        (lambda: api.post_text("/api/topics", "{not json"), "POST", "/api/topics", 400, None),
        (lambda: client.post("/api/consumers/nobody/consume", json={"timeout_ms": 0}),
         "POST", CONSUME_ROUTE, 404, "nobody"),
        (lambda: client.put("/api/topics"), "PUT", "<unmatched>", 405, None),
    ]
    for call, method, route, status, consumer_id in cases:
        n = len(access_records(access_caplog))
        resp = call()
        assert resp.status_code == status, resp.get_data(as_text=True)
        rec = only_access(access_caplog, n)
        assert rec.access["method"] == method and rec.access["status"] == status
        assert rec.access["request_id"] == resp.headers["X-Request-ID"]
        if route != "<unmatched>":
            assert rec.access["route"] == route
        else:  # no route matched the method: never the raw path
            assert rec.access["route"] in ("<unmatched>", "/api/topics"), rec.access
        assert rec.access["consumer_id"] == consumer_id

    # an unknown path: logged, and not under its raw path
    n = len(access_records(access_caplog))
    resp = client.get("/api/no/such/thing-123")
    assert resp.status_code == 404
    rec = only_access(access_caplog, n)
    assert rec.access["status"] == 404 and "thing-123" not in rec.access["route"]

    # an unexpected exception: 500, logged with its request id
    def boom(*args, **kwargs):
        raise RuntimeError("kaboom")

    monkeypatch.setattr(engine, "describe_topic", boom)
    n = len(access_records(access_caplog))
    resp = client.get("/api/topics/t")
    assert resp.status_code == 500
    rec = only_access(access_caplog, n)
    check_fields(rec, "GET", "/api/topics/<topic>", 500, request_id=resp.headers["X-Request-ID"])


def test_no_access_record_when_the_access_logger_is_off(api, caplog):
    caplog.set_level(logging.WARNING, logger=ACCESS)
    n = len(access_records(caplog))
    assert api.client.get("/api/topics").status_code == 200
    assert access_records(caplog)[n:] == []


# -- formatters -----------------------------------------------------------------------------

def access_record(**fields) -> logging.LogRecord:
    record = logging.LogRecord(ACCESS, logging.INFO, __file__, 1, "%s %s %s",
                               ("POST", CONSUME_ROUTE, 200), None)
    record.access = fields
    return record


SAMPLE = {"method": "POST", "route": CONSUME_ROUTE, "status": 200, "duration_ms": 12.34,
          "consumer_id": "c0ffee", "request_id": "req-1", "principal": "billing"}


def test_plain_formatter_renders_key_value_pairs():
    line = PlainFormatter().format(access_record(**SAMPLE))
    assert "\n" not in line
    pairs = dict(re.findall(r"(\w+)=(\S+)", line))
    assert pairs == {"method": "POST", "route": CONSUME_ROUTE, "status": "200",
                     "duration_ms": "12.34", "consumer_id": "c0ffee", "request_id": "req-1",
                     "principal": "billing"}, line
    assert ACCESS in line and "INFO" in line
    # absent values are left out, not written as None
    line = PlainFormatter().format(access_record(**{**SAMPLE, "consumer_id": None}))
    assert "consumer_id=" not in line and "None" not in line


def test_json_formatter_renders_one_object_per_line():
    line = JsonFormatter().format(access_record(**SAMPLE))
    assert "\n" not in line
    obj = json.loads(line)
    for key in ("method", "route", "status", "duration_ms", "consumer_id", "request_id"):
        assert obj[key] == SAMPLE[key], (key, obj)
    assert obj["logger"] == ACCESS and obj["level"] == "INFO"
    obj = json.loads(JsonFormatter().format(access_record(**{**SAMPLE, "consumer_id": None})))
    assert "consumer_id" not in obj or obj["consumer_id"] is None
    # other records: their message
    other = logging.LogRecord("consumer_api.x", logging.WARNING, __file__, 1, "a %s", ("b",),
                              None)
    assert json.loads(JsonFormatter().format(other))["message"] == "a b"


def capture(formatter) -> tuple[logging.Handler, io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    handler.setLevel(logging.DEBUG)
    return handler, out


def test_real_requests_through_both_formatters(api, client):
    logger = logging.getLogger(ACCESS)
    plain, plain_out = capture(PlainFormatter())
    js, json_out = capture(JsonFormatter())
    logger.addHandler(plain)
    logger.addHandler(js)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    try:
        api.create_topic("t", 1)
        cid = client.post("/api/consumers/subscribe",
                          json={"group_id": "g", "topics": ["t"]}).get_json()["consumer_id"]
        resp = client.post(f"/api/consumers/{cid}/consume", json={"timeout_ms": 0})
        missing = client.get("/api/topics/missing")
    finally:
        logger.removeHandler(plain)
        logger.removeHandler(js)
        logger.setLevel(old_level)
    lines = plain_out.getvalue().splitlines()
    objs = [json.loads(line) for line in json_out.getvalue().splitlines()]
    assert len(lines) == len(objs) == 4, (lines, objs)
    consume_line = lines[2]
    assert f"route={CONSUME_ROUTE}" in consume_line
    assert f"consumer_id={cid}" in consume_line
    assert f"request_id={resp.headers['X-Request-ID']}" in consume_line
    assert "status=200" in consume_line and "method=POST" in consume_line
    assert re.search(r"duration_ms=\d+(\.\d+)?", consume_line)
    assert objs[2]["route"] == CONSUME_ROUTE and objs[2]["consumer_id"] == cid
    assert objs[2]["request_id"] == resp.headers["X-Request-ID"]
    assert objs[2]["status"] == 200 and objs[2]["method"] == "POST"
    assert isinstance(objs[2]["duration_ms"], (int, float))
    assert objs[3]["status"] == 404 and objs[3]["route"] == "/api/topics/<topic>"
    assert objs[3]["request_id"] == missing.headers["X-Request-ID"]
    assert "status=404" in lines[3]


# -- secrets ---------------------------------------------------------------------------------

KEY = "sk-live-7f3a9b1c2d4e5f60718293a4b5c6d7e8"
WRONG_KEY = "sk-wrong-00112233445566778899aabbccdd"
PAYLOAD = "card-number-4111111111111111-secret-payload"
PAYLOAD_KEY = "record-key-6ff0a1-secret"


def test_no_key_header_or_payload_in_any_log_output(make_api, engine, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    root = logging.getLogger()
    plain, plain_out = capture(PlainFormatter())
    js, json_out = capture(JsonFormatter())
    root.addHandler(plain)
    root.addHandler(js)
    try:
        api = make_api(api_keys=KEY)
        auth = {"Authorization": f"Bearer {KEY}"}
        c = api.client
        assert c.post("/api/topics", json={"name": "t", "partitions": 1},
                      headers=auth).status_code == 201
        resp = c.post("/api/topics/t/records", headers=auth, json={
            "encoding": "text", "records": [{"key": PAYLOAD_KEY, "value": PAYLOAD,
                                             "headers": {"h": PAYLOAD}}]})
        assert resp.status_code == 200, resp.get_data(as_text=True)
        # a bad produce: the error names the field, the log must not hold the body
        bad = c.post("/api/topics/t/records", headers=auth,
                     json={"records": [{"key": PAYLOAD_KEY, "value": PAYLOAD}]})
        assert bad.status_code == 400
        # wrong and missing keys
        assert c.get("/api/topics", headers={"Authorization": f"Bearer {WRONG_KEY}"}
                     ).status_code == 401
        assert c.get("/api/topics", headers={"Authorization": KEY}).status_code == 401
        assert c.get("/api/topics").status_code == 401
        sub = c.post("/api/consumers/subscribe", headers=auth, json={
            "group_id": "g", "topics": ["t"], "auto_offset_reset": "earliest",
            "encoding": "text"})
        cid = sub.get_json()["consumer_id"]
        got = c.post(f"/api/consumers/{cid}/consume", headers=auth, json={"timeout_ms": 0})
        assert got.get_json()["records"][0]["value"] == PAYLOAD
        assert c.get("/api/topics/t/partitions/0/records", headers=auth,
                     query_string={"encoding": "text"}).status_code == 200
        # an unexpected exception while producing that payload
        monkeypatch.setattr(engine, "produce",
                            lambda *a, **k: (_ for _ in ()).throw(RuntimeError("disk on fire")))
        boom = c.post("/api/topics/t/records", headers=auth,
                      json={"encoding": "text", "records": [{"value": PAYLOAD}]})
        assert boom.status_code == 500
        assert c.delete(f"/api/consumers/{cid}", headers=auth).status_code == 200
    finally:
        root.removeHandler(plain)
        root.removeHandler(js)

    access = access_records(caplog)
    assert len(access) >= 11, "every request was logged"
    assert {r.access.get("principal") for r in access if r.access["status"] != 401} == {"key-1"}
    outputs = {"plain": plain_out.getvalue(), "json": json_out.getvalue(),
               "caplog": caplog.text,
               "records": "\n".join(repr(r.__dict__) for r in caplog.records)}
    assert "disk on fire" in outputs["plain"], "the 500 was logged with its exception"
    for name, text in outputs.items():
        for secret in (KEY, WRONG_KEY, "Bearer", PAYLOAD, PAYLOAD_KEY,
                       b64(PAYLOAD), b64(PAYLOAD_KEY), "4111111111111111"):
            assert secret not in text, f"{secret!r} in the {name} log output"


# -- plain lines cannot be forged -----------------------------------------------------------

def test_a_consumer_id_in_the_path_cannot_forge_plain_log_lines(make_api):
    api = make_api(api_keys=KEY)
    logger = logging.getLogger(ACCESS)
    handler, out = capture(PlainFormatter())
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    forged = "[2026-01-01 00:00:00 +0000] [1] [INFO] consumer_api.access: method=DELETE status=200"
    try:
        resp = api.client.post(
            "/api/consumers/abc%0D%0A" + forged.replace(" ", "%20") + "/consume",
            json={"timeout_ms": 0})
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    assert resp.status_code == 401
    text = out.getvalue()
    assert text.count("consumer_api.access") >= 1
    lines = text.splitlines()
    assert len(lines) == 1, lines  # one request, one line
    assert not any(line.startswith("[2026-01-01") for line in lines), lines


def test_plain_key_value_fields_cannot_be_injected(api, client):
    logger = logging.getLogger(ACCESS)
    handler, out = capture(PlainFormatter())
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    try:
        resp = client.get("/api/topics/missing", headers={"X-Request-ID": "r1 status=200"})
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    assert resp.status_code == 404
    (line,) = out.getvalue().splitlines()
    statuses = re.findall(r"(?:^|\s)status=(\S+)", line)
    assert statuses == ["404"], line
