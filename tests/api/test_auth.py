"""Authentication and authorisation over HTTP (API.md: 401 ``unauthorized``, 403 ``forbidden``,
404 ``consumer_not_found`` for another key's session), through the Flask test client.

Apps come from ``make_api`` (tests/api/conftest.py) over the test's engine and the consumer
manager on the fake clock: nothing sleeps, and a consume that may find nothing is sent with
``timeout_ms: 0``. The keys file is written to ``tmp_path``:

* ``reader`` / ``other-reader``: read on topics ``orders`` and ``billing.*``, read on groups
  ``billing-*``; ``other-reader`` may hold 2 consumer sessions at once, and have 1 consume
  waiting for records (the others have the server's per-client defaults);
* ``writer``: write on ``orders`` and ``billing.*`` (hashed key);
* ``admin``: admin on topics ``billing.*`` and groups ``billing-*``;
* ``nobody``: a valid key with no grant;

plus one ``CONSUMER_API_API_KEYS`` key (every right). Topics ``orders`` (2 partitions),
``billing.a`` and ``secret`` exist, each with records; groups ``billing-1``, ``billing-2`` and
``other-group`` have committed offsets and no members.
"""
from __future__ import annotations

import base64
import hashlib
import logging
import re
import threading

import pytest

from consumer_api.auth import KeysFileError
from tests.api.conftest import Api, assert_error, b64
from tests.waiting import wait_until

pytestmark = pytest.mark.usefixtures("openapi_built_once")

ENV_KEY = "env-superuser-key-7f3a"
KEYS = {
    "reader": "reader-key-1b2c3d4e",
    "other-reader": "other-reader-key-5f6a7b",
    "writer": "writer-key-8c9d0e1f",
    "admin": "admin-key-2a3b4c5d",
    "nobody": "nobody-key-6e7f8a9b",
    "env": ENV_KEY,
}
OTHER_READER_MAX_SESSIONS = 2
OTHER_READER_MAX_POLLS = 1
READER_GRANTS = """\
    grants:
      - {topics: orders, rights: [read]}
      - {topics: "billing.*", rights: [read]}
      - {groups: "billing-*", rights: [read]}
"""
KEYS_YAML = f"""\
keys:
  - name: reader
    key: {KEYS["reader"]}
{READER_GRANTS}\
  - name: other-reader
    key: {KEYS["other-reader"]}
    max_sessions: {OTHER_READER_MAX_SESSIONS}
    max_waiting_polls: {OTHER_READER_MAX_POLLS}
{READER_GRANTS}\
  - name: writer
    key_sha256: {hashlib.sha256(KEYS["writer"].encode()).hexdigest()}
    grants:
      - {{topics: orders, rights: [write]}}
      - {{topics: "billing.*", rights: [write]}}
  - name: admin
    key: {KEYS["admin"]}
    grants:
      - {{topics: "billing.*", rights: [admin]}}
      - {{groups: "billing-*", rights: [admin]}}
  - name: nobody
    key: {KEYS["nobody"]}
"""

TOPICS = ["billing.a", "orders", "secret"]
GROUPS = ["billing-1", "billing-2", "other-group"]
OPEN_PATHS = ["/api/health", "/api/health/live", "/api/health/ready", "/metrics",
              "/swagger.json", "/swagger/"]


def ok(resp, status=200):
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert resp.mimetype == "application/json"
    return resp.get_json()


class Server:
    """One app with keys; ``as_(who)`` is an :class:`Api` whose client sends that key."""

    def __init__(self, api: Api):
        self.app = api.client.application

    def client(self, authorization: str | None = None):
        client = self.app.test_client()
        if authorization is not None:
            client.environ_base["HTTP_AUTHORIZATION"] = authorization
        return client

    def as_(self, who: str | None) -> Api:
        return Api(self.client(None if who is None else f"Bearer {KEYS[who]}"))


@pytest.fixture
def keys_file(tmp_path):
    path = tmp_path / "api-keys.yml"
    path.write_text(KEYS_YAML, encoding="utf-8")
    return str(path)


@pytest.fixture
def server(make_api, keys_file):
    srv = Server(make_api(api_keys=f" {ENV_KEY} ", api_keys_file=keys_file))
    env = srv.as_("env")
    ok(env.create_topic("orders", 2), 201)
    ok(env.create_topic("billing.a", 1), 201)
    ok(env.create_topic("secret", 1), 201)
    ok(env.produce("orders", [{"value": b64("o0"), "partition": 0},
                              {"value": b64("o1"), "partition": 0}]))
    ok(env.produce("billing.a", [{"value": b64("b0")}]))
    ok(env.produce("secret", [{"value": b64("s0")}]))
    for group in GROUPS:
        ok(env.client.post(f"/api/consumer-groups/{group}/offsets",
                           json={"offsets": {"billing.a": {"0": 0}}}))
    return srv


def forbidden(resp, kind, name, right, key=None):
    """403 ``forbidden`` whose details name the topic/group and the right."""
    details = assert_error(resp, 403, "forbidden")
    assert details.get(kind) == name and details.get("right") == right, details
    if key is not None:
        assert key not in resp.get_data(as_text=True)
    return details


def subscribe(api, group, topics, **extra):
    return api.client.post("/api/consumers/subscribe",
                           json={"group_id": group, "topics": list(topics), **extra})


def consume(api, cid, **body):
    body.setdefault("timeout_ms", 0)
    return api.client.post(f"/api/consumers/{cid}/consume", json=body)


def values(records):
    return [base64.b64decode(r["value"]).decode() for r in records]


# -- routes ------------------------------------------------------------------------------------

ARG_VALUES = {"topic": "orders", "partition": "0", "consumer_id": "0123abcd", "group": "billing-1"}


def api_routes(app):
    """(method, concrete path) of every /api route but the health probes."""
    out = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/") or rule.rule.startswith("/api/health"):
            continue
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", lambda m: ARG_VALUES[m.group(1)], rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            out.append((method, path))
    return sorted(out)


def send(client, method, path):
    kwargs = {"json": {}} if method in ("POST", "PUT") else {}
    return client.open(path, method=method, **kwargs)


def test_api_routes_cover_the_contract(server):
    """The route list the 401 tests walk is the whole API (so they cannot silently test less)."""
    routes = set(api_routes(server.app))
    assert len(routes) >= 19, routes
    for expected in [("POST", "/api/topics"), ("GET", "/api/topics"),
                     ("DELETE", "/api/topics/orders"), ("POST", "/api/topics/orders/records"),
                     ("GET", "/api/topics/orders/partitions/0/records"),
                     ("POST", "/api/consumers/subscribe"),
                     ("PUT", "/api/consumers/0123abcd/assignment"),
                     ("DELETE", "/api/consumers/0123abcd"),
                     ("POST", "/api/consumer-groups/billing-1/offsets"),
                     ("DELETE", "/api/consumer-groups/billing-1")]:
        assert expected in routes


def test_every_route_naming_a_topic_or_group_in_its_path_declares_its_right(server):
    """A new route with ``<topic>`` or ``<group>`` in its path fails here until its view
    says (``@path_right``) which right on that name a key needs."""
    app = server.app
    missing = []
    for rule in app.url_map.iter_rules():
        named = {"topic", "group"} & set(rule.arguments)
        if not named:
            continue
        declared = getattr(app.view_functions[rule.endpoint], "path_right", None)
        if declared is None or declared[2] not in named:
            missing.append(rule.rule)
    assert missing == []
    assert sum(1 for rule in app.url_map.iter_rules()
               if {"topic", "group"} & set(rule.arguments)) >= 7


# -- no keys: open ---------------------------------------------------------------------------

def test_no_keys_logs_a_warning_and_everything_is_open(make_api, caplog):
    with caplog.at_level(logging.WARNING):
        api = make_api()
    warnings = [r for r in caplog.records
                if r.levelno == logging.WARNING and "no API keys" in r.getMessage()]
    assert len(warnings) == 1, caplog.text

    client = api.client
    ok(api.create_topic("t", 1), 201)
    ok(api.produce("t", [{"value": b64("v")}]))
    assert values(api.records("t", 0)) == ["v"]
    assert [t["name"] for t in ok(client.get("/api/topics"))["topics"]] == ["t"]
    ok(client.get("/api/topics/t"))
    sub = ok(subscribe(api, "g", ["t"], auto_offset_reset="earliest"))
    cid = sub["consumer_id"]
    assert values(ok(consume(api, cid))["records"]) == ["v"]
    ok(client.post(f"/api/consumers/{cid}/commit", json={}))
    # a bogus Authorization header is ignored when the server is open
    other = Api(api.client.application.test_client())
    other.client.environ_base["HTTP_AUTHORIZATION"] = "Bearer whatever"
    ok(other.client.get(f"/api/consumers/{cid}/position"))
    ok(other.client.get(f"/api/consumers/{cid}/committed"))
    ok(client.delete(f"/api/consumers/{cid}"))
    assert [g["group_id"] for g in ok(client.get("/api/consumer-groups"))["groups"]] == ["g"]
    ok(client.get("/api/consumer-groups/g"))
    ok(client.post("/api/consumer-groups/g/offsets", json={"reset": "earliest"}))
    ok(other.client.delete("/api/consumer-groups/g"))
    ok(other.client.delete("/api/topics/t"))


def test_no_warning_when_keys_are_configured(make_api, keys_file, caplog):
    with caplog.at_level(logging.WARNING):
        make_api(api_keys_file=keys_file)
        make_api(api_keys="k")
    assert not [r for r in caplog.records if "no API keys" in r.getMessage()], caplog.text


@pytest.mark.parametrize("text", [
    None, "keys: [{name: a}]\n", "keys:\n  - {name: a, key: k, grants: [{topics: t}]}\n",
], ids=["missing", "no-key", "grant-without-rights"])
def test_an_unusable_keys_file_stops_the_app_instead_of_opening_it(make_api, tmp_path, text):
    path = tmp_path / "keys.yml"
    if text is not None:
        path.write_text(text, encoding="utf-8")
    with pytest.raises(KeysFileError) as info:
        make_api(api_keys="env-key", api_keys_file=str(path))
    assert str(path) in str(info.value)


# -- keys configured: 401 --------------------------------------------------------------------

def assert_unauthorized(resp, invalid_token: bool | None, presented: str | None = None):
    assert_error(resp, 401, "unauthorized")
    header = resp.headers.get("WWW-Authenticate", "")
    assert header.startswith('Bearer realm="consumer-api"'), header
    if invalid_token is True:
        assert 'error="invalid_token"' in header, header
    elif invalid_token is False:
        assert "error=" not in header, header
    if presented:
        assert presented not in resp.get_data(as_text=True)
        assert all(presented not in v for _, v in resp.headers.items())


UNAUTHORIZED_CASES = {
    "no header": (None, False),
    "wrong key": ("Bearer sk-not-a-configured-key", True),
    "wrong key, lowercase scheme": ("bearer sk-not-a-configured-key", True),
    "right key, basic scheme": (f"Basic {KEYS['reader']}", None),
    "right key, basic base64": ("Basic " + b64(f"reader:{KEYS['reader']}"), None),
    "right key, token scheme": (f"Token {ENV_KEY}", None),
    "right key, no scheme": (ENV_KEY, None),
    "bearer without key": ("Bearer", False),
    "bearer and spaces": ("Bearer    ", None),
    "key prefix": ("Bearer " + ENV_KEY[:-1], True),
    "key with suffix": ("Bearer " + ENV_KEY + "x", True),
    "two keys": (f"Bearer {ENV_KEY},{KEYS['reader']}", True),
    "hash of a key": ("Bearer " + hashlib.sha256(ENV_KEY.encode()).hexdigest(), True),
    "a key's name": ("Bearer reader", True),
}


@pytest.mark.parametrize("authorization,invalid_token", list(UNAUTHORIZED_CASES.values()),
                         ids=list(UNAUTHORIZED_CASES))
def test_every_api_route_needs_a_valid_bearer_key(server, authorization, invalid_token):
    client = server.client(authorization)
    # the secret part of the header (a key, or what may be one) must not come back
    presented = None
    if authorization:
        presented = authorization.partition(" ")[2].strip() or authorization.strip()
        if presented.lower() == "bearer":
            presented = None
    failures = []
    for method, path in api_routes(server.app):
        resp = send(client, method, path)
        try:
            assert_unauthorized(resp, invalid_token, presented)
        except AssertionError as exc:
            failures.append(f"{method} {path}: {exc}")
    assert not failures, "\n".join(failures)


def test_a_key_elsewhere_than_the_authorization_header_is_not_accepted(server):
    client = server.client()
    for resp in (client.get("/api/topics", query_string={"access_token": ENV_KEY}),
                 client.get("/api/topics", query_string={"api_key": ENV_KEY}),
                 client.get("/api/topics", headers={"X-API-Key": ENV_KEY}),
                 client.get("/api/topics", headers={"Cookie": f"api_key={ENV_KEY}"})):
        assert_unauthorized(resp, False, ENV_KEY)


def test_unauthenticated_requests_change_nothing(server):
    anon = server.client("Bearer wrong")
    assert_unauthorized(anon.post("/api/topics", json={"name": "x", "partitions": 1}), True)
    assert_unauthorized(anon.delete("/api/topics/orders"), True)
    assert_unauthorized(anon.post("/api/topics/orders/records",
                                  json={"records": [{"value": b64("evil")}]}), True)
    env = server.as_("env")
    assert [t["name"] for t in ok(env.client.get("/api/topics"))["topics"]] == TOPICS
    assert values(env.records("orders", 0)) == ["o0", "o1"]


def test_a_valid_key_is_never_answered_401_on_any_route(server):
    """The contrast of the 401 tests: the same requests with a valid key get past auth."""
    for who in ("env", "nobody"):
        client = server.as_(who).client
        for method, path in api_routes(server.app):
            resp = send(client, method, path)
            assert resp.status_code != 401, (who, method, path, resp.get_data(as_text=True))
            assert "WWW-Authenticate" not in resp.headers


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", "Basic abc"])
def test_health_metrics_and_swagger_need_no_key(server, authorization):
    client = server.client(authorization)
    for path in OPEN_PATHS:
        resp = client.get(path)
        assert resp.status_code == 200, (path, resp.get_data(as_text=True)[:300])
    assert ok(client.get("/api/health/ready")) == {"status": "ok"}
    assert "openapi" in ok(client.get("/swagger.json"))


def test_options_needs_no_key_on_any_route(server):
    client = server.client()
    for method, path in api_routes(server.app):
        resp = client.open(path, method="OPTIONS")
        assert resp.status_code == 200, (path, resp.get_data(as_text=True))
        assert method in resp.headers.get("Allow", ""), (method, path, resp.headers)


def test_cors_preflight_needs_no_key(make_api, keys_file):
    api = make_api(api_keys_file=keys_file, cors_origins="https://ui.example")
    client = api.client
    for method, path in api_routes(client.application):
        resp = client.open(path, method="OPTIONS", headers={
            "Origin": "https://ui.example", "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization, content-type"})
        assert resp.status_code == 200, (method, path, resp.get_data(as_text=True))
        assert resp.headers.get("Access-Control-Allow-Origin") == "https://ui.example"
        assert "authorization" in resp.headers.get("Access-Control-Allow-Headers", "").lower()
    # the actual request after the preflight still needs the key
    resp = client.get("/api/topics", headers={"Origin": "https://ui.example"})
    assert_unauthorized(resp, False)


# -- rights ------------------------------------------------------------------------------------

def test_read_only_key_reads_records_and_describes_what_it_may_read(server):
    reader = server.as_("reader")
    assert values(reader.records("orders", 0)) == ["o0", "o1"]
    assert values(reader.records("billing.a", 0)) == ["b0"]
    assert reader.describe("orders")["name"] == "orders"
    assert ok(reader.client.get("/api/consumer-groups/billing-1"))["group_id"] == "billing-1"


def test_read_only_key_subscribes_consumes_and_commits_in_its_group(server):
    reader = server.as_("reader")
    sub = ok(subscribe(reader, "billing-1", ["orders", "billing.a"],
                       auto_offset_reset="earliest"))
    cid = sub["consumer_id"]
    assert sub["assignment"] == {"billing.a": [0], "orders": [0, 1]}
    got = []
    while batch := ok(consume(reader, cid))["records"]:
        got += values(batch)
    assert sorted(got) == ["b0", "o0", "o1"]
    ok(reader.client.post(f"/api/consumers/{cid}/commit", json={}))
    ok(reader.client.post(f"/api/consumers/{cid}/commit",
                          json={"offsets": {"orders": {"0": 1}}}))
    assert ok(reader.client.get(f"/api/consumers/{cid}/committed"))["offsets"] == {
        "billing.a": {"0": 1}, "orders": {"0": 1, "1": 0}}
    ok(reader.client.post(f"/api/consumers/{cid}/seek", json={"position": "beginning"}))
    ok(reader.client.put(f"/api/consumers/{cid}/assignment", json={"topics": {"orders": [1]}}))
    ok(reader.client.delete(f"/api/consumers/{cid}"))


def test_read_only_key_is_forbidden_to_write_or_administer(server):
    reader = server.as_("reader")
    c, key = reader.client, KEYS["reader"]
    forbidden(reader.produce("orders", [{"value": b64("x")}]), "topic", "orders", "write", key)
    forbidden(reader.produce("billing.a", [{"value": b64("x")}]), "topic", "billing.a", "write")
    forbidden(reader.create_topic("billing.new", 1), "topic", "billing.new", "admin", key)
    forbidden(c.delete("/api/topics/orders"), "topic", "orders", "admin", key)
    forbidden(c.delete("/api/topics/billing.a"), "topic", "billing.a", "admin")
    forbidden(c.post("/api/consumer-groups/billing-1/offsets", json={"reset": "earliest"}),
              "group", "billing-1", "admin", key)
    forbidden(c.post("/api/consumer-groups/billing-1/offsets",
                     json={"offsets": {"orders": {"0": 0}}}), "group", "billing-1", "admin")
    forbidden(c.delete("/api/consumer-groups/billing-1"), "group", "billing-1", "admin", key)
    # nothing changed
    env = server.as_("env")
    assert values(env.records("orders", 0)) == ["o0", "o1"]
    assert [t["name"] for t in ok(env.client.get("/api/topics"))["topics"]] == TOPICS
    assert [g["group_id"] for g in ok(env.client.get("/api/consumer-groups"))["groups"]] == GROUPS


def test_read_only_key_is_forbidden_outside_its_patterns(server):
    reader = server.as_("reader")
    c = reader.client
    forbidden(reader.read("secret", 0), "topic", "secret", "read")
    forbidden(c.get("/api/topics/secret"), "topic", "secret", "read")
    forbidden(c.get("/api/topics/orders2"), "topic", "orders2", "read")
    forbidden(c.get("/api/consumer-groups/other-group"), "group", "other-group", "read")
    forbidden(subscribe(reader, "other-group", ["orders"]), "group", "other-group", "read")
    forbidden(subscribe(reader, "billing-1", ["secret"]), "topic", "secret", "read")
    forbidden(subscribe(reader, "billing-1", ["orders", "secret"]), "topic", "secret", "read")
    # and a session of its own cannot be pointed at another topic
    cid = ok(subscribe(reader, "billing-1", ["orders"]))["consumer_id"]
    forbidden(c.put(f"/api/consumers/{cid}/assignment", json={"topics": {"secret": [0]}}),
              "topic", "secret", "read")
    assert ok(c.get(f"/api/consumers/{cid}/assignment"))["assignment"] == {"orders": [0, 1]}
    # no group was joined by the refused subscriptions
    env = server.as_("env")
    members = ok(env.client.get("/api/consumer-groups/other-group"))["members"]
    assert members == []
    assert [m["consumer_id"] for m in
            ok(env.client.get("/api/consumer-groups/billing-1"))["members"]] == [cid]


def test_write_only_key_produces_but_cannot_read(server):
    writer = server.as_("writer")
    c = writer.client
    ok(writer.produce("orders", [{"value": b64("w0"), "partition": 1}]))
    ok(writer.produce("billing.a", [{"value": b64("w1")}]))
    forbidden(writer.read("orders", 0), "topic", "orders", "read", KEYS["writer"])
    forbidden(c.get("/api/topics/orders"), "topic", "orders", "read")
    forbidden(subscribe(writer, "billing-1", ["orders"]), "group", "billing-1", "read")
    forbidden(writer.produce("secret", [{"value": b64("x")}]), "topic", "secret", "write")
    forbidden(writer.create_topic("billing.new", 1), "topic", "billing.new", "admin")
    forbidden(c.delete("/api/topics/orders"), "topic", "orders", "admin")
    env = server.as_("env")
    assert values(env.records("orders", 1)) == ["w0"]
    assert values(env.records("billing.a", 0)) == ["b0", "w1"]


def test_admin_key_creates_and_deletes_topics_matching_its_pattern_only(server):
    admin = server.as_("admin")
    c = admin.client
    ok(admin.create_topic("billing.new", 2), 201)
    assert admin.describe("billing.new")["name"] == "billing.new"
    ok(admin.produce("billing.new", [{"value": b64("n")}]))  # admin includes write
    assert values(admin.records("billing.new", 0) + admin.records("billing.new", 1)) == ["n"]
    ok(c.delete("/api/topics/billing.new"))
    forbidden(admin.create_topic("orders2", 1), "topic", "orders2", "admin", KEYS["admin"])
    forbidden(admin.create_topic("billing", 1), "topic", "billing", "admin")
    forbidden(c.delete("/api/topics/orders"), "topic", "orders", "admin")
    forbidden(c.delete("/api/topics/secret"), "topic", "secret", "admin")
    forbidden(admin.read("orders", 0), "topic", "orders", "read")
    env = server.as_("env")
    assert [t["name"] for t in ok(env.client.get("/api/topics"))["topics"]] == TOPICS


def test_admin_key_administers_groups_matching_its_pattern_only(server):
    admin = server.as_("admin")
    c = admin.client
    done = ok(c.post("/api/consumer-groups/billing-1/offsets",
                     json={"offsets": {"billing.a": {"0": 1}}}))
    assert done["offsets"] == {"billing.a": {"0": 1}}
    ok(c.delete("/api/consumer-groups/billing-2"))
    forbidden(c.post("/api/consumer-groups/other-group/offsets", json={"reset": "latest"}),
              "group", "other-group", "admin")
    forbidden(c.delete("/api/consumer-groups/other-group"), "group", "other-group", "admin")
    env = server.as_("env")
    assert [g["group_id"] for g in ok(env.client.get("/api/consumer-groups"))["groups"]] == [
        "billing-1", "other-group"]


def test_a_key_without_grants_may_do_nothing(server):
    nobody = server.as_("nobody")
    c = nobody.client
    assert ok(c.get("/api/topics")) == {"topics": []}
    assert ok(c.get("/api/consumer-groups")) == {"groups": []}
    forbidden(nobody.read("orders", 0), "topic", "orders", "read")
    forbidden(nobody.produce("orders", [{"value": b64("x")}]), "topic", "orders", "write")
    forbidden(subscribe(nobody, "billing-1", ["orders"]), "group", "billing-1", "read")


@pytest.mark.parametrize("who,topics,groups", [
    ("reader", ["billing.a", "orders"], ["billing-1", "billing-2"]),
    ("writer", ["billing.a", "orders"], []),
    ("admin", ["billing.a"], ["billing-1", "billing-2"]),
    ("nobody", [], []),
    ("env", TOPICS, GROUPS),
])
def test_lists_show_only_what_the_key_has_a_right_on(server, who, topics, groups):
    c = server.as_(who).client
    listed = ok(c.get("/api/topics"))["topics"]
    assert [t["name"] for t in listed] == topics
    assert [g["group_id"] for g in ok(c.get("/api/consumer-groups"))["groups"]] == groups


def test_env_key_can_do_everything(server):
    env = server.as_("env")
    c = env.client
    ok(env.create_topic("anything.at-all", 1), 201)
    ok(env.produce("secret", [{"value": b64("s1")}]))
    assert values(env.records("secret", 0)) == ["s0", "s1"]
    sub = ok(subscribe(env, "other-group", ["secret", "orders"], auto_offset_reset="earliest"))
    cid = sub["consumer_id"]
    assert ok(consume(env, cid, max_records=100))["records"]
    ok(c.post(f"/api/consumers/{cid}/commit", json={}))
    ok(c.delete(f"/api/consumers/{cid}"))
    ok(c.post("/api/consumer-groups/other-group/offsets", json={"reset": "earliest"}))
    ok(c.delete("/api/consumer-groups/other-group"))
    ok(c.delete("/api/topics/anything.at-all"))
    ok(c.delete("/api/topics/secret"))


# -- sessions belong to their key ----------------------------------------------------------------

def test_the_history_shows_a_key_only_its_topics_and_groups(server):
    from consumer_api.api.state import state_of
    state_of(server.app).history.take()
    [sample] = ok(server.as_("reader").client.get("/api/metrics/history"))["samples"]
    assert sorted(sample["topics"]) == ["billing.a", "orders"]
    assert sorted(sample["groups"]) == ["billing-1", "billing-2"]
    [whole] = ok(server.as_("env").client.get("/api/metrics/history"))["samples"]
    assert sorted(whole["topics"]) == TOPICS and sorted(whole["groups"]) == GROUPS


def test_a_key_lists_the_sessions_of_the_groups_it_may_see(server):
    mine = ok(subscribe(server.as_("reader"), "billing-1", ["orders"]))["consumer_id"]
    ok(subscribe(server.as_("env"), "other-group", ["orders"]))
    [row] = ok(server.as_("reader").client.get("/api/consumers"))["sessions"]
    assert row["consumer_id"] == mine and row["owner"] == "reader"
    assert len(ok(server.as_("env").client.get("/api/consumers"))["sessions"]) == 2
    assert ok(server.as_("nobody").client.get("/api/consumers"))["sessions"] == []


@pytest.mark.parametrize("other", ["other-reader", "env"])
def test_a_session_is_invisible_to_other_keys(server, other):
    owner, intruder = server.as_("reader").client, server.as_(other).client
    sub = ok(subscribe(server.as_("reader"), "billing-1", ["orders"],
                       auto_offset_reset="earliest"))
    cid = sub["consumer_id"]
    base = f"/api/consumers/{cid}"
    attempts = [
        ("consume", intruder.post(f"{base}/consume", json={"timeout_ms": 0})),
        ("commit", intruder.post(f"{base}/commit", json={"offsets": {"orders": {"0": 2}}})),
        ("commit positions", intruder.post(f"{base}/commit", json={})),
        ("seek", intruder.post(f"{base}/seek", json={"position": "end"})),
        ("get assignment", intruder.get(f"{base}/assignment")),
        ("put assignment", intruder.put(f"{base}/assignment", json={"topics": {"orders": [1]}})),
        ("position", intruder.get(f"{base}/position")),
        ("committed", intruder.get(f"{base}/committed")),
        ("close", intruder.delete(base)),
        ("close with commit", intruder.delete(base, query_string={"commit": "true"})),
    ]
    for what, resp in attempts:
        details = assert_error(resp, 404, "consumer_not_found")
        assert details.get("consumer_id", cid) == cid, (what, details)
    # the owner's session is untouched: not closed, not moved, not re-assigned, nothing committed
    assert ok(owner.get(f"{base}/assignment"))["assignment"] == {"orders": [0, 1]}
    assert ok(owner.get(f"{base}/position"))["offsets"] == {"orders": {"0": 0, "1": 0}}
    assert ok(owner.get(f"{base}/committed"))["offsets"] == {}
    assert values(ok(owner.post(f"{base}/consume", json={"timeout_ms": 0}))["records"]) == [
        "o0", "o1"]
    ok(owner.post(f"{base}/commit", json={}))
    assert ok(owner.get(f"{base}/committed"))["offsets"] == {"orders": {"0": 2, "1": 0}}
    ok(owner.post(f"{base}/seek", json={"position": "beginning"}))
    ok(owner.put(f"{base}/assignment", json={"topics": {"orders": [0]}}))
    ok(owner.delete(base))
    assert_error(owner.get(f"{base}/position"), 404, "consumer_not_found")


# -- nothing sensitive in the logs -------------------------------------------------------------

SECRET_KEY = "sk_live_4eC39HqLyjWDarjtT1zdp7dc"
PAYLOAD = "card=4111111111111111;cvv=737"
PAYLOAD_KEY = "customer-8472-ssn-078051120"


def test_keys_and_payloads_are_never_logged(make_api, tmp_path, caplog):
    keys = tmp_path / "secret-keys.yml"
    keys.write_text(f"keys:\n  - name: producer\n    key: {SECRET_KEY}\n    grants:\n"
                    "      - {topics: '*', rights: [read, write, admin]}\n"
                    "      - {groups: '*', rights: [read]}\n", encoding="utf-8")
    wrong_key = SECRET_KEY[:-4] + "XXXX"
    with caplog.at_level(logging.DEBUG):
        srv = Server(make_api(api_keys_file=str(keys)))
        api = Api(srv.client(f"Bearer {SECRET_KEY}"))
        ok(api.create_topic("payments", 1), 201)
        ok(api.produce("payments", [{"key": b64(PAYLOAD_KEY), "value": b64(PAYLOAD),
                                     "headers": {"h": PAYLOAD}}]))
        ok(api.produce("payments", [{"key": PAYLOAD_KEY, "value": PAYLOAD}], encoding="text"))
        assert values(api.records("payments", 0)) == [PAYLOAD, PAYLOAD]
        cid = ok(subscribe(api, "g", ["payments"], auto_offset_reset="earliest"))["consumer_id"]
        assert len(ok(consume(api, cid))["records"]) == 2
        ok(api.client.delete(f"/api/consumers/{cid}"))
        # failures too: a wrong key (401), a produce that is refused (400)
        assert_unauthorized(Api(srv.client(f"Bearer {wrong_key}")).produce(
            "payments", [{"value": b64(PAYLOAD)}]), True, wrong_key)
        assert_error(api.produce("payments", [{"value": b64(PAYLOAD), "partition": 7}]),
                     404, "partition_not_found")
        assert_error(api.produce("payments", [{"value": b64(PAYLOAD), "bogus": PAYLOAD}]),
                     400, "invalid_request")

    needles = {SECRET_KEY, wrong_key, hashlib.sha256(SECRET_KEY.encode()).hexdigest(),
               PAYLOAD, b64(PAYLOAD), PAYLOAD_KEY, b64(PAYLOAD_KEY)}
    leaks = []
    for record in caplog.records:
        texts = [record.getMessage(), repr(record.args), repr(vars(record)),
                 record.exc_text or ""]
        for needle in needles:
            if any(needle in t for t in texts):
                leaks.append(f"{record.name} {record.levelname}: {record.getMessage()!r} "
                             f"contains {needle!r}")
    assert not leaks, "\n".join(leaks)
    for needle in needles:
        assert needle not in caplog.text
    # the requests were logged, by the key's name
    access = [r for r in caplog.records if r.name == "consumer_api.access"]
    assert len(access) >= 8, [r.getMessage() for r in access]
    assert {r.access["principal"] for r in access} >= {"producer"}


# -- the OpenAPI document ----------------------------------------------------------------------

def operations(document):
    for path, ops in document["paths"].items():
        for method, op in ops.items():
            if method in ("get", "put", "post", "delete", "patch", "head", "options"):
                yield path, method, op


def test_openapi_declares_bearer_security_and_401_403_when_keys_are_configured(server):
    doc = ok(server.client().get("/swagger.json"))
    assert doc["security"] == [{"apiKey": []}]
    assert doc["components"]["securitySchemes"]["apiKey"]["type"] == "http"
    assert doc["components"]["securitySchemes"]["apiKey"]["scheme"].lower() == "bearer"
    assert {"Unauthorized", "Forbidden"} <= set(doc["components"]["responses"])
    api_ops = open_ops = 0
    for path, method, op in operations(doc):
        if path.startswith("/api/health") or path == "/metrics":
            open_ops += 1
            assert op.get("security") == [], (method, path)
            assert "401" not in op["responses"] and "403" not in op["responses"], (method, path)
        else:
            api_ops += 1
            assert path.startswith("/api/"), path
            assert op.get("security") != [], (method, path)
            assert op["responses"].get("401") == {"$ref": "#/components/responses/Unauthorized"}
            assert op["responses"].get("403") == {"$ref": "#/components/responses/Forbidden"}
    assert open_ops == 4 and api_ops == len(api_routes(server.app))


def test_openapi_of_an_open_server_requires_no_key(make_api):
    doc = ok(make_api().client.get("/swagger.json"))
    assert not doc.get("security")
    for path, method, op in operations(doc):
        assert "401" not in op["responses"], (method, path)


def test_a_group_shows_only_the_topics_the_key_has_a_right_on(server):
    env = server.as_("env")
    ok(env.client.post("/api/consumer-groups/billing-1/offsets",
                       json={"offsets": {"secret": {"0": 1}, "billing.a": {"0": 1}}}))
    seen = ok(env.client.get("/api/consumer-groups/billing-1"))
    assert {row["topic"] for row in seen["offsets"]} == {"billing.a", "secret"}
    reader = server.as_("reader")
    shown = ok(reader.client.get("/api/consumer-groups/billing-1"))
    assert {row["topic"] for row in shown["offsets"]} == {"billing.a"}
    assert "secret" not in reader.client.get("/api/consumer-groups/billing-1").get_data(as_text=True)


def test_setting_a_groups_offsets_needs_read_on_the_topics_too(server):
    admin = server.as_("admin")  # admin on groups billing-*, topics billing.* only
    forbidden(admin.client.post("/api/consumer-groups/billing-1/offsets",
                                json={"offsets": {"secret": {"0": 0}}}),
              "topic", "secret", "read")
    forbidden(admin.client.post("/api/consumer-groups/billing-1/offsets",
                                json={"reset": "earliest", "topics": ["orders"]}),
              "topic", "orders", "read")
    ok(admin.client.post("/api/consumer-groups/billing-1/offsets",
                         json={"reset": "earliest", "topics": ["billing.a"]}))


def test_a_keys_file_without_keys_is_refused_rather_than_leaving_the_server_open(
        make_api, tmp_path):
    path = tmp_path / "empty.yml"
    path.write_text("keys: []\n", encoding="utf-8")
    with pytest.raises(KeysFileError, match="defines no keys"):
        make_api(api_keys_file=str(path))


def test_resetting_every_topic_of_a_group_needs_read_on_each_of_them(server):
    env = server.as_("env")
    ok(env.client.post("/api/consumer-groups/billing-1/offsets",
                       json={"offsets": {"secret": {"0": 1}}}))
    admin = server.as_("admin")  # admin on billing-*, but no right on topic "secret"
    resp = admin.client.post("/api/consumer-groups/billing-1/offsets", json={"reset": "latest"})
    forbidden(resp, "topic", "secret", "read")
    after = ok(env.client.get("/api/consumer-groups/billing-1"))
    assert {(r["topic"], r["committed_offset"]) for r in after["offsets"]} >= {("secret", 1)}


# -- a key's share of sessions and waiting polls -----------------------------------------------

def test_a_key_with_max_sessions_gets_429_beyond_it_and_others_do_not(server, manager, clock):
    capped, free = server.as_("other-reader"), server.as_("reader")
    held = [ok(subscribe(capped, "billing-1", ["orders"]))["consumer_id"]
            for _ in range(OTHER_READER_MAX_SESSIONS)]
    details = assert_error(subscribe(capped, "billing-2", ["orders"]), 429, "too_many_consumers")
    assert details == {"limit": OTHER_READER_MAX_SESSIONS, "scope": "client",
                       "client": "key other-reader",
                       "max_sessions": OTHER_READER_MAX_SESSIONS, "key": "other-reader"}
    # another key (the default share, 1000) is not held back by it
    for _ in range(OTHER_READER_MAX_SESSIONS + 1):
        ok(subscribe(free, "billing-1", ["orders"]))
    # a closed session frees its place, and so does an expired one
    ok(capped.client.delete(f"/api/consumers/{held[0]}"))
    held[0] = ok(subscribe(capped, "billing-1", ["orders"]))["consumer_id"]
    assert_error(subscribe(capped, "billing-1", ["orders"]), 429, "too_many_consumers")
    clock.advance(30_001)  # default session_timeout_ms; the others' sessions expire too
    manager.expire()
    for _ in range(OTHER_READER_MAX_SESSIONS):
        ok(subscribe(capped, "billing-1", ["orders"]))
    assert refusals(server).get("client_sessions") == 2


@pytest.mark.parametrize("who,name", [("reader", "reader"), ("env", "key-1")])
def test_a_key_without_caps_of_its_own_has_the_servers_defaults(make_api, keys_file, who, name):
    srv = Server(make_api(api_keys=ENV_KEY, api_keys_file=keys_file, max_sessions_per_client=2))
    ok(srv.as_("env").create_topic("orders", 1), 201)
    api = srv.as_(who)
    for _ in range(2):
        ok(subscribe(api, "billing-1", ["orders"]))
    details = assert_error(subscribe(api, "billing-1", ["orders"]), 429, "too_many_consumers")
    assert (details["limit"], details["scope"], details["client"]) == (2, "client", f"key {name}")
    # the key's sessions count against it wherever its requests come from
    other_address = srv.client(f"Bearer {KEYS[who]}")
    other_address.environ_base["REMOTE_ADDR"] = "192.0.2.77"
    assert_error(subscribe(Api(other_address), "billing-1", ["orders"]), 429, "too_many_consumers")


def refusals(srv) -> dict:
    text = srv.client().get("/metrics").get_data(as_text=True)
    return {m.group(1): float(m.group(2)) for m in
            re.finditer(r'^consumer_api_refusals_total\{reason="(\w+)"\} (\S+)$', text, re.M)}


def test_a_key_with_max_waiting_polls_gets_429_beyond_it_and_others_do_not(server, manager):
    capped, free = server.as_("other-reader"), server.as_("reader")
    first, second = (ok(subscribe(capped, f"billing-{i}", ["orders"]))["consumer_id"]
                     for i in (1, 2))
    theirs = ok(subscribe(free, "billing-1", ["orders"]))["consumer_id"]
    answers = []

    def wait_on(api, cid):  # the fake clock never moves: it waits until its session closes
        answers.append(consume(api, cid, timeout_ms=60_000).status_code)

    threads = [threading.Thread(target=wait_on, args=(capped, first), daemon=True)]
    threads[0].start()
    wait_until(lambda: manager.waiting() == 1, "the capped key's consume to wait")
    try:
        resp = consume(capped, second, timeout_ms=60_000)
        details = assert_error(resp, 429, "too_many_polls")
        assert details == {"limit": OTHER_READER_MAX_POLLS, "scope": "client",
                           "client": "key other-reader"}
        assert resp.headers["Retry-After"] == "1"
        ok(consume(capped, second, timeout_ms=0))  # one that would not wait is served
        threads.append(threading.Thread(target=wait_on, args=(free, theirs), daemon=True))
        threads[1].start()
        wait_until(lambda: manager.waiting() == 2, "the other key's consume to wait")
    finally:
        for cid, api in ((first, capped), (theirs, free)):
            api.client.delete(f"/api/consumers/{cid}")
        for t in threads:
            t.join(5)
    assert answers == [404, 404]  # closed while waiting
    assert refusals(server).get("client_polls") == 1
