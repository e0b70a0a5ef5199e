"""CORS for browser clients (``Config.cors_origins``: comma-separated origins or ``*``;
none by default): preflights answered, actual responses marked for allowed origins only,
X-Request-ID exposed, and preflights passing without credentials when API keys are on."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.usefixtures("openapi_built_once")

UI = "https://ui.example"
EVIL = "https://evil.example"
KEY = "cors-test-key"

ACAO = "Access-Control-Allow-Origin"
CORS_HEADERS = ("Access-Control-Allow-Origin", "Access-Control-Allow-Methods",
                "Access-Control-Allow-Headers", "Access-Control-Expose-Headers",
                "Access-Control-Allow-Credentials", "Access-Control-Max-Age")


def preflight(client, origin, path="/api/topics", method="POST",
              headers="authorization,content-type"):
    return client.options(path, headers={"Origin": origin,
                                         "Access-Control-Request-Method": method,
                                         "Access-Control-Request-Headers": headers})


def header_set(resp, name) -> set:
    return {h.strip().lower() for h in resp.headers.get(name, "").split(",") if h.strip()}


def assert_no_cors(resp):
    present = [h for h in CORS_HEADERS if h in resp.headers]
    assert not present, (present, dict(resp.headers))


def test_preflight_from_an_allowed_origin(make_api):
    api = make_api(cors_origins=UI)
    resp = preflight(api.client, UI)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.headers[ACAO] == UI
    assert {"authorization", "content-type"} <= header_set(resp, "Access-Control-Allow-Headers")
    assert "post" in header_set(resp, "Access-Control-Allow-Methods")
    assert "X-Request-ID" in resp.headers  # the preflight is a request too
    # a preflight creates nothing
    assert api.client.get("/api/topics").get_json() == {"topics": []}


def test_preflight_allows_a_compressed_body(make_api):
    api = make_api(cors_origins=UI)
    resp = preflight(api.client, UI, path="/api/topics/t/records",
                     headers="authorization,content-type,content-encoding")
    assert resp.status_code == 200 and resp.headers[ACAO] == UI
    assert "content-encoding" in header_set(resp, "Access-Control-Allow-Headers")


def test_preflight_for_a_consumer_route_and_a_delete(make_api):
    api = make_api(cors_origins=UI)
    resp = preflight(api.client, UI, path="/api/consumers/abc/consume")
    assert resp.status_code == 200 and resp.headers[ACAO] == UI
    resp = preflight(api.client, UI, path="/api/topics/t", method="DELETE",
                     headers="authorization")
    assert resp.status_code == 200 and resp.headers[ACAO] == UI
    assert "delete" in header_set(resp, "Access-Control-Allow-Methods")
    assert "authorization" in header_set(resp, "Access-Control-Allow-Headers")


def test_actual_request_from_an_allowed_origin_exposes_the_request_id(make_api):
    api = make_api(cors_origins=f"https://other.example, {UI}")
    resp = api.client.post("/api/topics", json={"name": "t", "partitions": 1},
                           headers={"Origin": UI})
    assert resp.status_code == 201
    assert resp.headers[ACAO] == UI
    assert "x-request-id" in header_set(resp, "Access-Control-Expose-Headers")
    assert resp.headers["X-Request-ID"]
    assert "origin" in header_set(resp, "Vary"), "caches must key the answer on the origin"
    # error responses carry it too: the browser must be able to read the envelope
    resp = api.client.get("/api/topics/missing", headers={"Origin": UI})
    assert resp.status_code == 404 and resp.headers[ACAO] == UI
    assert "x-request-id" in header_set(resp, "Access-Control-Expose-Headers")
    # the other listed origin too
    resp = api.client.get("/api/topics", headers={"Origin": "https://other.example"})
    assert resp.headers[ACAO] == "https://other.example"


def test_an_origin_not_in_the_list_gets_no_allow_origin(make_api):
    api = make_api(cors_origins=UI)
    for origin in (EVIL, "https://ui.example.evil.example", "http://ui.example",
                   "https://ui.example:8443"):
        resp = preflight(api.client, origin)
        assert ACAO not in resp.headers, (origin, dict(resp.headers))
        resp = api.client.get("/api/topics", headers={"Origin": origin})
        assert resp.status_code == 200
        assert ACAO not in resp.headers, (origin, dict(resp.headers))


def test_default_config_sends_no_cors_headers(api, client):
    assert api.create_topic("t", 1).status_code == 201
    resp = preflight(client, UI)
    assert_no_cors(resp)
    for resp in (client.get("/api/topics", headers={"Origin": UI}),
                 client.get("/api/topics/missing", headers={"Origin": UI}),
                 client.get("/api/health", headers={"Origin": UI})):
        assert_no_cors(resp)


def test_star_allows_any_origin(make_api):
    api = make_api(cors_origins="*")
    for origin in (UI, EVIL, "http://localhost:3000"):
        resp = preflight(api.client, origin)
        assert resp.status_code == 200
        assert resp.headers[ACAO] in ("*", origin), dict(resp.headers)
        resp = api.client.get("/api/topics", headers={"Origin": origin})
        assert resp.headers[ACAO] in ("*", origin), dict(resp.headers)
        assert "x-request-id" in header_set(resp, "Access-Control-Expose-Headers")


def test_preflight_needs_no_key_when_api_keys_are_configured(make_api):
    api = make_api(cors_origins=UI, api_keys=KEY)
    resp = preflight(api.client, UI)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.headers[ACAO] == UI
    assert "authorization" in header_set(resp, "Access-Control-Allow-Headers")
    resp = preflight(api.client, UI, path="/api/consumers/abc/consume")
    assert resp.status_code == 200 and resp.headers[ACAO] == UI
    # the actual request still needs the key, and its 401 is readable by the page
    resp = api.client.get("/api/topics", headers={"Origin": UI})
    assert resp.status_code == 401
    assert resp.headers[ACAO] == UI
    resp = api.client.get("/api/topics", headers={"Origin": UI,
                                                  "Authorization": f"Bearer {KEY}"})
    assert resp.status_code == 200 and resp.headers[ACAO] == UI


def test_cors_while_the_server_is_starting(tmp_path):
    """Before the logs are open, a preflight is still answered and the 503 envelope is
    readable by the page (it carries the CORS headers)."""
    from consumer_api.app import create_app, shutdown
    from consumer_api.config import Config
    app = create_app(Config(data_dir=str(tmp_path / "d"), cors_origins=UI), defer_open=True)
    try:
        client = app.test_client()
        resp = preflight(client, UI)
        assert resp.status_code == 200 and resp.headers[ACAO] == UI
        resp = client.get("/api/topics", headers={"Origin": UI})
        assert resp.status_code == 503 and resp.get_json()["code"] == "unavailable"
        assert resp.headers[ACAO] == UI
        assert ACAO not in client.get("/api/topics", headers={"Origin": EVIL}).headers
    finally:
        shutdown(app)
