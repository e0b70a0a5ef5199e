"""The OpenAPI document is honest: it is valid, it names every route the app serves (and no
other), every operation is documented well enough for Swagger UI's "Try it out", Swagger UI
itself loads, and schemathesis finds no request that the app answers with a 5xx, an
undocumented status, an undocumented content type or a body the schema does not describe.

Everything here is generic over ``app.url_map`` and the document: a new blueprint under
``/api/`` (or ``/metrics``) is checked without touching this file. Operations are read at
collection time from a throwaway app, so every per-operation test is one pytest item.

The fuzzing runs against one app per module on its own data directory, seeded before each
test with the resources the template's path examples name (topics ``orders`` (3 partitions)
and ``events`` with records, a live consumer session in group ``billing``), so generated
requests hit existing resources as well as missing ones. Bugs this file once found are
replayed as regressions (``FIXED_BUGS``).

``pytest --hypothesis-show-statistics`` is no help here (the Hypothesis tests are inner
functions); the status codes each operation met are recorded as Hypothesis events.
"""
from __future__ import annotations

import base64
import errno
import json
import os
import re
import shutil
import tempfile
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, assume, event, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from openapi_schema_validator import OAS30Validator
from openapi_spec_validator import OpenAPIV30SpecValidator, validate as validate_spec
from schemathesis import GenerationMode
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.core import NOT_SET
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (content_type_conformance,
                                               positive_data_acceptance,
                                               response_schema_conformance,
                                               status_code_conformance)

from consumer_api.api.spec import documented_rules
from consumer_api.app import create_app
from consumer_api.config import Config
from consumer_api.embedded.engine import Engine

SPEC_URL = "/swagger.json"
UI_URL = "/swagger/"
HTTP_METHODS = ("get", "put", "post", "delete", "patch", "options", "head", "trace")
IGNORED_METHODS = {"HEAD", "OPTIONS"}  # Flask adds them to every rule
#: operations whose 2xx answer is not JSON, with the media type they must document
NON_JSON_2XX = {("GET", "/metrics"): "text/plain"}

#: schemathesis budget per operation (2 cores, the whole file < 90 s)
POSITIVE_EXAMPLES = 50
NEGATIVE_EXAMPLES = 30
#: topics created by generated requests are clamped to this many partitions: every partition
#: reserves ~1.3 MB of real disk (a 1024-partition topic is 1.3 GB) and closing one on delete
#: takes ~10 ms
MAX_GENERATED_PARTITIONS = 4

#: a generated long-poll against a live session waits at most this long (API.md allows 300 s)
MAX_GENERATED_WAIT_MS = 50

#: the resources generated requests can hit (path examples in swagger/template.yml name them)
SEED_TOPICS = {"orders": 3, "events": 1}
SEED_GROUP = "billing"
_WRITES = ("POST", "PUT", "PATCH")
#: schemathesis calls the WSGI app directly and reads bodies as they come: it asks for them
#: uncompressed (it would otherwise send requests' default Accept-Encoding, and the record
#: responses would come compressed; test_compression.py checks those)
PLAIN = {"Accept-Encoding": "identity"}


# -- regressions -------------------------------------------------------------------------------

#: bugs this file found that are fixed: name -> ((METHOD, path, body), the status wanted).
#: Partition numbers were parsed with str.isdigit() + int(); isdigit() is also true for '²'
#: (int() raised: 500) and for '١' (int() read it as 1).
FIXED_BUGS = {
    "subscribe-lenient-auto-commit": (
        ("POST", "/api/consumers/subscribe",
         {"group_id": "lenient", "topics": ["orders"], "auto_commit": 0}), 400),
    "read-partition-superscript-digit": (
        ("GET", "/api/topics/{topic}/partitions/\u00b2/records", None), 404),
    "read-partition-arabic-indic-digit": (
        ("GET", "/api/topics/{topic}/partitions/\u0661/records", None), 404),
    "commit-superscript-digit": (
        ("POST", "/api/consumers/{consumer_id}/commit", {"offsets": {"orders": {"\u00b2": 1}}}),
        400),
    "commit-arabic-indic-digit": (
        ("POST", "/api/consumers/{consumer_id}/commit", {"offsets": {"orders": {"\u0661": 0}}}),
        400),
    # Werkzeug merged "//" and redirected (308) a topic named with a slash to another one
    "read-topic-with-a-slash": (("GET", "/api/topics/orders//partitions/0/records", None), 404),
    # the {consumer_id} routes took the word "subscribe" too (DELETE .../subscribe, ...)
    "delete-subscribe": (("DELETE", "/api/consumers/subscribe", None), 405),
    "seek-two-targets": (("POST", "/api/consumers/{consumer_id}/seek",
                          {"position": "end", "offset": 5}), 400),
    "group-offsets-and-reset": (("POST", "/api/consumer-groups/nobody/offsets",
                                 {"offsets": {"orders": {"0": 0}}, "reset": "latest"}), 400),
    "produce-base64-value-as-number": (("POST", "/api/topics/{topic}/records",
                                        {"records": [{"value": 0}]}), 400),
    "group-offsets-superscript-digit": (
        ("POST", "/api/consumer-groups/nobody/offsets", {"offsets": {"orders": {"\u00b2": 1}}}),
        400),
}




# -- helpers ---------------------------------------------------------------------------------

def openapi_path(rule: str) -> str:
    """``/api/topics/<topic>`` or ``/x/<int:n>`` -> ``/api/topics/{topic}``, ``/x/{n}``."""
    return re.sub(r"<(?:[^<>:]+:)?([^<>]+)>", r"{\1}", rule)


def resolve(doc: dict, obj):
    """Follow local ``$ref`` chains."""
    seen = set()
    while isinstance(obj, dict) and "$ref" in obj:
        ref = obj["$ref"]
        assert ref.startswith("#/"), f"non-local $ref {ref!r}"
        assert ref not in seen, f"$ref cycle at {ref!r}"
        seen.add(ref)
        target = doc
        for part in ref[2:].split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        obj = target
    return obj


def operations(doc: dict):
    """``(METHOD, path, path_item, operation)`` for every operation of the document."""
    for path, item in doc.get("paths", {}).items():
        for method in HTTP_METHODS:
            if method in item:
                yield method.upper(), path, item, item[method]


def parameters_of(doc: dict, path_item: dict, operation: dict) -> list[dict]:
    """Path-level parameters overridden by operation-level ones (by name and location)."""
    merged = {}
    for raw in path_item.get("parameters", []) + operation.get("parameters", []):
        param = resolve(doc, raw)
        merged[(param["name"], param["in"])] = param
    return list(merged.values())


def is_json(media_type: str) -> bool:
    media_type = media_type.split(";")[0].strip().lower()
    return media_type == "application/json" or media_type.endswith("+json")


def schema_validator(doc: dict, schema: dict) -> OAS30Validator:
    """An OpenAPI 3.0 schema validator for ``schema`` that resolves ``#/components/...``."""
    return OAS30Validator({"allOf": [schema], "components": doc.get("components", {})})


def example_errors(doc: dict, schema: dict, value) -> list[str]:
    return ["%s: %s" % ("/".join(map(str, e.absolute_path)) or "(root)", e.message)
            for e in schema_validator(doc, schema).iter_errors(value)]


def _open_app(data_dir: str):
    config = Config(data_dir=data_dir)
    engine = Engine(config)
    return create_app(config, backend=engine), engine


def _document_at_collection() -> dict:
    """The document, read once at import time from a throwaway app so the tests can be
    parametrized (and xfailed) per operation."""
    directory = tempfile.mkdtemp(prefix="openapi-collect-")
    try:
        app, engine = _open_app(directory)
        try:
            doc = app.test_client().get(SPEC_URL).get_json()
        finally:
            engine.close()
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return doc


COLLECTED = _document_at_collection()
OPERATIONS = sorted((method, path) for method, path, _, _ in operations(COLLECTED))


def operation_params(methods=None, having=None):
    """One pytest param per operation (``METHOD /path``); with ``having(path_item,
    operation)``, only the operations for which it holds (so that no parametrisation is
    generated only to be skipped)."""
    return [pytest.param(method, path, id=f"{method} {path}")
            for method, path in OPERATIONS if (methods is None or method in methods)
            and (having is None or having(*_operation(COLLECTED, method, path)))]


def _query_names(item: dict, op: dict) -> list:
    return [p["name"] for p in parameters_of(COLLECTED, item, op) if p["in"] == "query"]


def takes_input(item: dict, op: dict) -> bool:
    """A body or query parameters: something a client can get wrong (400)."""
    return "requestBody" in op or bool(_query_names(item, op))


def takes_body(_item: dict, op: dict) -> bool:
    return "requestBody" in op


def constrains_input(item: dict, op: dict) -> bool:
    """Something generated input can break: a body, a query or header parameter, or a path
    parameter whose schema is more than a plain string."""
    if takes_input(item, op):
        return True
    for param in parameters_of(COLLECTED, item, op):
        schema = resolve(COLLECTED, param.get("schema", {}))
        if param["in"] == "header" or set(schema) - {"type", "description", "example"} \
                or schema.get("type", "string") != "string":
            return True
    return False


# -- fixtures (one app for the whole module, on its own data directory) -----------------------

@pytest.fixture(scope="module")
def openapi_app(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("openapi-data")
    app, engine = _open_app(str(data_dir))
    yield app
    engine.close()
    # generated topics preallocate real disk: do not leave it to pytest's tmp retention
    shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def openapi_client(openapi_app):
    return openapi_app.test_client()


@pytest.fixture(scope="module")
def openapi_doc(openapi_client):
    resp = openapi_client.get(SPEC_URL)
    assert resp.status_code == 200, resp.data[:500]
    return resp.get_json()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


#: records for each seeded partition: plain text, JSON, binary (not UTF-8, not JSON), nulls,
#: headers and explicit timestamps, so every read encoding meets its fallback case
SEED_RECORDS = [
    {"key": _b64(b"user-1"), "value": _b64(b"hello"), "headers": {"source": "web"}},
    {"key": None, "value": _b64(b'{"n": 1, "s": "x"}')},
    {"key": _b64(b"\xff\xfe"), "value": _b64(b"\x00\x81\xff binary"),
     "timestamp": 1_600_000_000_000},
    {"key": _b64(b"k"), "value": None},
    {"value": _b64("héllo ✓".encode())},
]


@pytest.fixture(scope="module")
def seed_state():
    return {}


@pytest.fixture
def seeded(openapi_client, seed_state):
    """Make sure the seed resources exist: topics holding records, and a live consumer session
    in the seed group (a generated DELETE may have removed them, generated writes may have
    changed them: both are fine). Returns the path parameter values that name them."""
    for name, partitions in SEED_TOPICS.items():
        resp = openapi_client.get(f"/api/topics/{name}")
        if resp.status_code == 404:
            resp = openapi_client.post("/api/topics", json={"name": name, "partitions": partitions})
            assert resp.status_code == 201, resp.get_json()
            resp = openapi_client.get(f"/api/topics/{name}")
        assert resp.status_code == 200, resp.get_json()
        for part in resp.get_json()["partitions"]:
            if part["high_watermark"] == 0:
                records = [dict(r, partition=part["partition"]) for r in SEED_RECORDS]
                produced = openapi_client.post(f"/api/topics/{name}/records",
                                               json={"records": records})
                assert produced.status_code == 200, produced.get_json()
    values = {"topic": list(SEED_TOPICS), "partition": [0, 1, 2], "group": [SEED_GROUP]}
    rules = openapi_client.application.url_map.iter_rules()
    if any(rule.rule.startswith("/api/consumers/") for rule in rules):
        consumer = seed_state.get("consumer_id")
        if consumer is None \
                or openapi_client.get(f"/api/consumers/{consumer}/assignment").status_code != 200:
            resp = openapi_client.post("/api/consumers/subscribe", json={
                "group_id": SEED_GROUP, "topics": list(SEED_TOPICS),
                "auto_offset_reset": "earliest", "session_timeout_ms": 300_000})
            assert resp.status_code == 200, resp.get_json()
            consumer = seed_state["consumer_id"] = resp.get_json()["consumer_id"]
            resp = openapi_client.post(f"/api/consumers/{consumer}/commit", json={})
            assert resp.status_code == 200, resp.get_json()
        values["consumer_id"] = [consumer]
    return values


@pytest.fixture(scope="module")
def st_schema(openapi_app):
    return schemathesis.openapi.from_wsgi(SPEC_URL, openapi_app)


# -- 1. the document is served and valid ------------------------------------------------------

def test_swagger_json_is_valid_openapi_3_0(openapi_client):
    resp = openapi_client.get(SPEC_URL)
    assert resp.status_code == 200
    assert resp.mimetype == "application/json"
    doc = json.loads(resp.data)
    assert doc["openapi"].startswith("3.0."), doc["openapi"]
    validate_spec(doc, cls=OpenAPIV30SpecValidator)


def test_operation_ids_are_unique(openapi_doc):
    ids = [op.get("operationId") for _, _, _, op in operations(openapi_doc)]
    duplicates = sorted({i for i in ids if i and ids.count(i) > 1})
    assert not duplicates, f"operationIds used more than once: {duplicates}"


def test_every_ref_resolves(openapi_doc):
    """Dangling ``$ref``s (a schema name typo in a docstring) break Swagger UI."""
    dangling = []

    def walk(node, where):
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                try:
                    resolve(openapi_doc, {"$ref": node["$ref"]})
                except (KeyError, TypeError):
                    dangling.append(f"{where}: {node['$ref']}")
            for key, value in node.items():
                walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{where}/{i}")

    walk(openapi_doc, "#")
    assert not dangling, dangling


# -- 2. route parity ----------------------------------------------------------------------------

def _routes(app) -> set[tuple[str, str]]:
    out = set()
    for rule in documented_rules(app):
        for method in rule.methods - IGNORED_METHODS:
            out.add((method, openapi_path(rule.rule)))
    return out


def test_openapi_path_conversion():
    assert openapi_path("/api/topics/<topic>/partitions/<partition>/records") == \
        "/api/topics/{topic}/partitions/{partition}/records"
    assert openapi_path("/api/x/<int:n>/<path:rest>") == "/api/x/{n}/{rest}"
    assert openapi_path("/metrics") == "/metrics"


def test_every_route_is_documented(openapi_app, openapi_doc):
    routes = _routes(openapi_app)
    assert routes, "no routes under /api/ or /metrics at all?"
    documented = {(m, p) for m, p, _, _ in operations(openapi_doc)}
    missing = sorted(routes - documented)
    assert not missing, f"served but not in {SPEC_URL}: {missing}"


def test_every_documented_operation_is_served(openapi_app, openapi_doc):
    routes = _routes(openapi_app)
    documented = {(m, p) for m, p, _, _ in operations(openapi_doc)}
    phantom = sorted(documented - routes)
    assert not phantom, f"in {SPEC_URL} but not served by the app: {phantom}"


def test_only_api_routes_are_documented(openapi_doc):
    others = sorted(p for p in openapi_doc.get("paths", {})
                    if not p.startswith(("/api/", "/metrics")))
    assert not others, f"Swagger/static routes leaked into the document: {others}"


# -- 3. every operation is documented well enough for "Try it out" ---------------------------

def _operation(doc, method, path):
    item = doc["paths"][path]
    return item, item[method.lower()]


@pytest.mark.parametrize("method,path", operation_params())
def test_operation_has_summary_id_and_declared_tags(openapi_doc, method, path):
    _, op = _operation(openapi_doc, method, path)
    assert (op.get("summary") or "").strip(), "no summary"
    assert (op.get("operationId") or "").strip(), "no operationId"
    assert op.get("tags"), "no tags"
    declared = {t["name"] for t in openapi_doc.get("tags", [])}
    assert set(op["tags"]) <= declared, \
        f"tags not declared at the top: {set(op['tags']) - declared}"


@pytest.mark.parametrize("method,path", operation_params())
def test_operation_documents_a_2xx_with_a_schema(openapi_doc, method, path):
    _, op = _operation(openapi_doc, method, path)
    ok = {code: resolve(openapi_doc, r) for code, r in op["responses"].items()
          if str(code).startswith("2")}
    assert ok, "no 2xx response"
    wanted = NON_JSON_2XX.get((method, path))
    found = []
    for code, response in ok.items():
        for media_type, media in (response.get("content") or {}).items():
            if "schema" in media and (is_json(media_type) if wanted is None
                                      else media_type.startswith(wanted)):
                found.append((code, media_type))
    what = "a JSON" if wanted is None else f"a {wanted}"
    assert found, f"no 2xx response with {what} media type and a schema: {ok}"


@pytest.mark.parametrize("method,path", operation_params())
def test_every_response_has_a_description_and_error_schema(openapi_doc, method, path):
    _, op = _operation(openapi_doc, method, path)
    for code, raw in op["responses"].items():
        response = resolve(openapi_doc, raw)
        assert response.get("description", "").strip(), f"{code}: no description"
        if str(code)[0] in "45":
            content = response.get("content") or {}
            assert "application/json" in content, f"{code}: error without a JSON body"
            schema = resolve(openapi_doc, content["application/json"].get("schema", {}))
            assert schema is resolve(openapi_doc, {"$ref": "#/components/schemas/Error"}), \
                f"{code}: error body is not the Error envelope"


@pytest.mark.parametrize("method,path", operation_params(having=takes_input))
def test_operation_with_input_documents_400(openapi_doc, method, path):
    item, op = _operation(openapi_doc, method, path)
    query = [p["name"] for p in parameters_of(openapi_doc, item, op) if p["in"] == "query"]
    assert "400" in {str(c) for c in op["responses"]}, \
        f"takes {'a body' if 'requestBody' in op else 'query ' + str(query)} but documents no 400"


@pytest.mark.parametrize("method,path", operation_params(having=takes_body))
def test_request_body_has_a_valid_example(openapi_doc, method, path):
    _, op = _operation(openapi_doc, method, path)
    body = resolve(openapi_doc, op["requestBody"])
    assert body.get("content"), "requestBody without content"
    for media_type, media in body["content"].items():
        assert "schema" in media, f"{media_type}: no schema"
        schema = resolve(openapi_doc, media["schema"])
        examples = []
        if "example" in media:
            examples.append(media["example"])
        examples += [resolve(openapi_doc, e).get("value")
                     for e in (media.get("examples") or {}).values()]
        if "example" in schema:
            examples.append(schema["example"])
        examples += list(schema.get("examples") or [])
        assert examples, f"{media_type}: no example on the media type or the schema (Try it out " \
                         f"would start from an empty body)"
        for example in examples:
            errors = example_errors(openapi_doc, media["schema"], example)
            assert not errors, \
                f"{media_type}: the example {example!r} does not match its schema: {errors}"


@pytest.mark.parametrize("method,path", operation_params())
def test_response_examples_match_their_schemas(openapi_doc, method, path):
    _, op = _operation(openapi_doc, method, path)
    for code, raw in op["responses"].items():
        for media_type, media in (resolve(openapi_doc, raw).get("content") or {}).items():
            if "example" in media and "schema" in media:
                errors = example_errors(openapi_doc, media["schema"], media["example"])
                assert not errors, f"{code} {media_type}: example does not match: {errors}"


@pytest.mark.parametrize("method,path", operation_params())
def test_path_parameters_are_declared(openapi_doc, method, path):
    item, op = _operation(openapi_doc, method, path)
    in_url = re.findall(r"{([^{}]+)}", path)
    declared = {p["name"]: p for p in parameters_of(openapi_doc, item, op) if p["in"] == "path"}
    assert set(in_url) == set(declared), \
        f"URL has {in_url}, path parameters declared: {sorted(declared)}"
    for name, param in declared.items():
        assert param.get("required") is True, f"path parameter {name} must be required: true"
        assert "schema" in param, f"path parameter {name} has no schema"
        assert "example" in param or "examples" in param, \
            f"path parameter {name} has no example (Try it out starts empty)"


@pytest.mark.parametrize("method,path", operation_params())
def test_query_parameters_have_schemas(openapi_doc, method, path):
    item, op = _operation(openapi_doc, method, path)
    for param in parameters_of(openapi_doc, item, op):
        assert param["in"] in ("path", "query", "header", "cookie"), param
        assert "schema" in param or "content" in param, f"{param['name']}: no schema"


# -- Try it out with the documented examples, and statuses fuzzing cannot reach -------------

#: path parameters whose template examples name resources the documented examples create
#: (createTopic's example creates "orders" with partition 0); others (consumer ids, groups)
#: name things a fresh server does not have, and may answer a documented 404
RESOLVABLE_BY_EXAMPLES = {"topic", "partition"}
_METHOD_ORDER = {"POST": 0, "PUT": 1, "PATCH": 2, "GET": 3, "DELETE": 4}


class ExampleServer:
    """A fresh app on its own data directory, with its document loaded into schemathesis,
    that sends operations the way Swagger UI's "Try it out" does: with the documented
    examples of the path parameters and of the request body."""

    def __init__(self, data_dir: str, **settings):
        config = Config(data_dir=data_dir, **settings)
        self.engine = Engine(config)
        self.app = create_app(config, backend=self.engine)
        self.client = self.app.test_client()
        self.doc = self.client.get(SPEC_URL).get_json()
        self.schema = schemathesis.openapi.from_dict(self.doc)
        self.schema.app = self.app

    def close(self):
        self.engine.close()

    def ordered(self):
        """Operations, creations first and deletions last."""
        return sorted(operations(self.doc),
                      key=lambda o: (_METHOD_ORDER.get(o[0], 9), len(o[1]), o[1]))

    def path_examples(self, method, path) -> dict:
        item, op = _operation(self.doc, method, path)
        return {p["name"]: p.get("example")
                for p in parameters_of(self.doc, item, op) if p["in"] == "path"}

    def case(self, method, path, body=NOT_SET, headers=None):
        _, op = _operation(self.doc, method, path)
        kwargs = {"headers": headers} if headers else {}
        if self.path_examples(method, path):
            kwargs["path_parameters"] = self.path_examples(method, path)
        if "requestBody" in op:
            media = resolve(self.doc, op["requestBody"])["content"].get("application/json", {})
            if body is NOT_SET:
                body = media.get("example", NOT_SET)
            if body is not NOT_SET:
                kwargs["body"] = body
                kwargs["media_type"] = "application/json"
        return self.schema[path][method].Case(**kwargs)

    def send(self, method, path, checks=None, **kwargs):
        """``(response, problem)``: problem is None when the answer is documented and
        matches its schema, else the schemathesis report."""
        case = self.case(method, path, **kwargs)
        response = case.call(headers=PLAIN)
        try:
            case.validate_response(response, checks=checks or FUZZ_CHECKS)
        except FailureGroup as exc:
            return response, f"{method} {path}: {exc}"
        return response, None


@pytest.fixture
def example_server(tmp_path):
    servers = []

    def make(**settings):
        server = ExampleServer(str(tmp_path / f"data{len(servers)}"), **settings)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


def test_try_it_out_with_the_documented_examples(example_server):
    """On a fresh server, send every operation exactly as Swagger UI's "Try it out" would
    with the documented examples (creations first, deletions last). Every answer must be
    documented and match its schema; those that only need topics and partitions must be 2xx."""
    server = example_server()
    problems = []
    for method, path, _, _ in server.ordered():
        response, problem = server.send(method, path)
        if problem:
            problems.append(problem)
        elif set(server.path_examples(method, path)) <= RESOLVABLE_BY_EXAMPLES \
                and not 200 <= response.status_code < 300:
            problems.append(f"{method} {path} with its examples -> {response.status_code} "
                            f"{response.text[:300]}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("method,path", operation_params(_WRITES))
def test_oversized_body_answer_is_documented(example_server, method, path):
    """A body over ``max_body_bytes`` (too big for fuzzing to reach at the default 16 MiB)."""
    server = example_server(max_body_bytes=256)
    for m, p, _, _ in server.ordered():  # let the path examples name existing resources
        if m in _WRITES and (m, p) != (method, path):
            server.send(m, p)
    response, problem = server.send(method, path, body={"padding": "x" * 300})
    assert problem is None, problem
    assert 400 <= response.status_code < 500, response.text  # 413 for the routes of today


@pytest.mark.parametrize("method,path", operation_params(_WRITES))
def test_body_in_an_unsupported_coding_answer_is_documented(example_server, method, path):
    """A body in a Content-Encoding the server does not take (fuzzing sends none)."""
    server = example_server()
    _, op = _operation(server.doc, method, path)
    if "requestBody" not in op:
        pytest.skip("no request body")
    response, problem = server.send(method, path, headers={"Content-Encoding": "br"})
    assert problem is None, problem
    assert 400 <= response.status_code < 500, response.text  # 415, or 404 before the body


@pytest.mark.parametrize("method,path", operation_params(_WRITES))
def test_full_disk_answer_is_documented(example_server, monkeypatch, method, path):
    """Every write, sent with its examples while the data volume is full (ENOSPC on every
    block reservation), answers a documented status: 507 is the right answer, but only where
    it is documented; never a 500. Segments are tiny so that repeated appends need new ones."""
    server = example_server(segment_bytes=1024)
    for m, p, _, _ in server.ordered():  # set up while there is room
        if m in _WRITES and (m, p) != (method, path):
            server.send(m, p)

    def full(*_):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "posix_fallocate", full)
    statuses = []
    for _ in range(30):  # the first appends may fit in blocks reserved before the disk filled
        response, problem = server.send(method, path, checks=DOCUMENTED_CHECKS)
        statuses.append(response.status_code)
        assert problem is None, f"{problem}\n(statuses in order: {statuses})"
        assert response.status_code != 500, f"{response.text} (statuses in order: {statuses})"
        if response.status_code == 507:
            break


def test_answers_without_a_valid_api_key_are_documented(example_server):
    """With API keys configured, every operation sent without a key or with a wrong one
    answers a documented status (401/403 once auth is enforced: the document must say so)."""
    server = example_server(api_keys="the-key")
    problems = []
    for headers in ({}, {"Authorization": "Bearer not-the-key"}):
        for method, path, _, _ in server.ordered():
            case = server.case(method, path)
            response = case.call(headers={**PLAIN, **headers})
            try:
                case.validate_response(response, checks=FUZZ_CHECKS, headers=headers)
            except FailureGroup as exc:
                problems.append(f"{method} {path} with headers {headers}: {exc}")
    assert not problems, "\n".join(problems)


# -- 4. Swagger UI -------------------------------------------------------------------------------

class _AssetParser(HTMLParser):
    def __init__(self):
        super().__init__()
        self.assets: list[str] = []
        self.inline_scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "script":
            if attrs.get("src"):
                self.assets.append(attrs["src"])
            else:
                self._in_script = True
                self.inline_scripts.append("")
        elif tag == "link" and attrs.get("href"):
            self.assets.append(attrs["href"])

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.inline_scripts[-1] += data


def _ui_page(client):
    resp = client.get(UI_URL)
    assert resp.status_code == 200
    assert resp.mimetype == "text/html"
    parser = _AssetParser()
    parser.feed(resp.get_data(as_text=True))
    return resp.get_data(as_text=True), parser


def test_swagger_ui_points_at_the_document(openapi_client):
    page, parser = _ui_page(openapi_client)
    urls = re.findall(r"""\burl\s*:\s*["']([^"']+)["']""", "\n".join(parser.inline_scripts))
    assert urls, "Swagger UI's configuration names no spec url"
    for url in urls:
        target = urlsplit(url)
        assert target.path == SPEC_URL, f"Swagger UI loads {url!r}, the document is at {SPEC_URL}"
    assert "SwaggerUIBundle(" in page


def test_swagger_ui_assets_are_served(openapi_client):
    _, parser = _ui_page(openapi_client)
    local = [a for a in parser.assets if not urlsplit(a).scheme and not a.startswith("//")]
    assert any(a.endswith("swagger-ui-bundle.js") for a in local), parser.assets
    assert any(a.endswith("swagger-ui.css") for a in local), parser.assets
    for asset in local:
        resp = openapi_client.get(urlsplit(asset).path or asset)
        assert resp.status_code == 200, f"{asset}: {resp.status_code}"
        assert resp.data, f"{asset}: empty"
        if asset.endswith(".js"):
            assert "javascript" in resp.mimetype, f"{asset}: {resp.mimetype}"
        elif asset.endswith(".css"):
            assert resp.mimetype == "text/css", f"{asset}: {resp.mimetype}"
        resp.close()


def test_swagger_ui_script_has_no_python_literals(openapi_client):
    _, parser = _ui_page(openapi_client)
    script = "\n".join(parser.inline_scripts)
    leaked = re.findall(r"(?:=|:|\()\s*(None|True|False)\b", script)
    assert not leaked, f"Python literals rendered into Swagger UI's script: {leaked}"


# -- 5. schemathesis against the WSGI app ------------------------------------------------------

#: every status, content type and body is documented (a documented 5xx is fine)
DOCUMENTED_CHECKS = [status_code_conformance, content_type_conformance,
                     response_schema_conformance]

#: answers to schema-valid requests that break a rule the document can only state in words
#: (OpenAPI 3.0 has no way to say it): (status, code, words the message holds)
STATED_IN_WORDS = [
    (400, "offset_out_of_range", ""),  # an offset beyond the partition's current range
    (400, "invalid_request", "Not a partition number"),  # a key of an offsets map
    (400, "invalid_request", "Give offset or timestamp, not both"),  # two query parameters
    (400, "invalid_request", "name the topics to reset"),  # a group without commits
    (400, "invalid_request", "to_ms must be after from_ms"),  # a statistics range
    (400, "invalid_request", "widen bucket_ms or narrow the range"),  # too many buckets
    (400, "invalid_request", "ask for one partition, wider buckets"),  # too many lookups
    (400, "invalid_request", "all/any nest at most"),  # a filter nested too deep
    (400, "invalid_request", "at most 64 conditions"),  # a filter of too many conditions
]


def _stated_in_words(response) -> bool:
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and any(
        response.status_code == status and body.get("code") == code
        and words in str(body.get("error", "")) for status, code, words in STATED_IN_WORDS)


def positive_data_accepted(ctx, response, case):
    """schemathesis' ``positive_data_acceptance`` (a request the document allows is not
    refused), but for the rules in STATED_IN_WORDS, which the document states in words."""
    if _stated_in_words(response):
        return None
    return positive_data_acceptance(ctx, response, case)


load_all_checks()
#: every check schemathesis has (``--checks all``): no 5xx; every status, content type,
#: header and body documented; data the document allows accepted and data it forbids
#: refused; methods a path does not document answered 405 with a true Allow header ...
ALL_CHECKS = [positive_data_accepted if check is positive_data_acceptance else check
              for check in CHECKS.get_all()]
FUZZ_CHECKS = ALL_CHECKS
NEGATIVE_CHECKS = ALL_CHECKS
COVERAGE_CHECKS = ALL_CHECKS
FUZZ_SETTINGS = dict(deadline=None, database=None, suppress_health_check=list(HealthCheck),
                     phases=(Phase.explicit, Phase.generate, Phase.shrink), print_blob=True)
MODES = {"positive": GenerationMode.POSITIVE, "negative": GenerationMode.NEGATIVE}


def _strategy(operation, mode: GenerationMode, seeds: dict):
    """Fully generated cases, plus cases aimed at the seeded resources."""
    strategies = [operation.as_strategy(generation_mode=mode)]
    names = [p.name for p in operation.path_parameters]
    seedable = [n for n in names if n in seeds]
    if seedable and mode is GenerationMode.POSITIVE:
        combos = [{}]
        for name in seedable:
            combos = [dict(c, **{name: v}) for c in combos for v in seeds[name]]
        for combo in combos:
            strategies.append(operation.as_strategy(generation_mode=mode, path_parameters=combo))
    return st.one_of(strategies)


def _tame(case) -> bool:
    """Keep generated requests cheap; False: do not send this one.

    * topics are clamped to MAX_GENERATED_PARTITIONS (a partition count that is invalid on
      purpose, in a negative case, is left alone);
    * a long-poll (a body with ``timeout_ms``) waits at most MAX_GENERATED_WAIT_MS; one
      without a JSON object body would wait the default 30 s on a live session: not sent.
    """
    body = case.body
    if isinstance(body, dict) and type(body.get("partitions")) is int \
            and MAX_GENERATED_PARTITIONS < body["partitions"] <= 1024:
        body["partitions"] = MAX_GENERATED_PARTITIONS
    if "timeout_ms" in _body_properties(case.operation):
        if not isinstance(body, dict):
            return body not in (None, NOT_SET, "", b"")  # empty body = the 30 s default
        timeout = body.get("timeout_ms", MAX_GENERATED_WAIT_MS + 1)
        if type(timeout) is int and MAX_GENERATED_WAIT_MS < timeout <= 300_000:
            body["timeout_ms"] = MAX_GENERATED_WAIT_MS
    return True


def _body_properties(operation) -> dict:
    body = operation.definition.raw.get("requestBody")
    if not body:
        return {}
    doc = operation.schema.raw_schema
    media = resolve(doc, body).get("content", {}).get("application/json", {})
    return resolve(doc, media.get("schema", {})).get("properties", {})


#: what generated requests created, to delete: operationId -> (field of the 2xx body, URL)
CREATED = {"createTopic": ("name", "/api/topics/{}"),
           "subscribe": ("consumer_id", "/api/consumers/{}")}


def _clean_up(client, case, response, seeds) -> None:
    """Delete what generated requests created (disk, group sizes, list/describe speed)."""
    created = CREATED.get(case.operation.definition.raw.get("operationId"))
    if created and 200 <= response.status_code < 300 \
            and case.method.upper() == case.operation.method.upper():
        field, url = created
        name = response.json()[field]
        if name not in SEED_TOPICS and name not in seeds.get("consumer_id", ()):
            client.delete(url.format(name))


def _call_and_validate(client, case, checks, seeds):
    if not _tame(case):
        return None
    response = case.call(headers=PLAIN)
    try:
        case.validate_response(response, checks=checks)
    finally:
        _clean_up(client, case, response, seeds)
    return response


def _fuzz_params() -> list:
    """Every operation in positive mode; in negative mode those with input to break."""
    out = [pytest.param(*p.values, "positive", id=f"{p.id}-positive")
           for p in operation_params()]
    return out + [pytest.param(*p.values, "negative", id=f"{p.id}-negative")
                  for p in operation_params(having=constrains_input)]


@pytest.mark.parametrize("method,path,mode", _fuzz_params())
def test_schemathesis(st_schema, openapi_client, seeded, method, path, mode):
    """Hypothesis-generated requests: valid ones (positive) and ones that break the
    document's constraints (negative)."""
    operation = st_schema[path][method]
    generation_mode = MODES[mode]
    positive = generation_mode is GenerationMode.POSITIVE
    checks = FUZZ_CHECKS if positive else NEGATIVE_CHECKS

    @settings(max_examples=POSITIVE_EXAMPLES if positive else NEGATIVE_EXAMPLES, **FUZZ_SETTINGS)
    @given(case=_strategy(operation, generation_mode, seeded))
    def run(case):
        response = _call_and_validate(openapi_client, case, checks, seeded)
        assume(response is not None)
        event(f"status {response.status_code}")

    try:
        run()
    except Unsatisfiable:
        if positive:
            raise
        pytest.skip("the document constrains none of its inputs (plain strings in the path): "
                    "nothing to make invalid")


@pytest.mark.parametrize("method,path", operation_params())
def test_schemathesis_coverage(st_schema, openapi_client, seeded, method, path):
    """schemathesis' deterministic coverage phase: boundary values of every constraint
    (minimum/maximum, lengths, enums), each made invalid in turn, missing required parts,
    and the methods the path does not document."""
    operation = st_schema[path][method]
    cases = st_schema.iter_coverage_cases(
        operation, generation_modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
        generation_config=st_schema.config.generation_for(operation=operation))
    failures, count = [], 0
    for case in cases:
        try:
            count += _call_and_validate(openapi_client, case, COVERAGE_CHECKS, seeded) is not None
        except FailureGroup as exc:
            failures.append(str(exc))
    assert count, "no coverage cases generated"
    assert not failures, \
        f"{len(failures)} of {count} cases failed:\n" + "\n".join(failures[:10])


def _send_and_check(st_schema, client, seeds, request_, expected):
    """Send ``request_`` (path filled with the seeded resources): the status must be
    ``expected`` and the answer documented."""
    method, path, body = request_
    url = path.format(**{name: values[0] for name, values in seeds.items()})
    response = client.open(url, method=method, **({} if body is None else {"json": body}))
    operation = st_schema.find_operation_by_path(method, url)
    assert response.status_code == expected, response.get_data(as_text=True)
    if operation is None:  # a path no operation matches ("a//b"): the envelope still
        assert set(response.get_json()) == {"error", "code", "details"}
        return
    try:
        operation.validate_response(response)
    finally:
        created = CREATED.get(operation.definition.raw["operationId"])
        if created and 200 <= response.status_code < 300:
            client.delete(created[1].format(response.get_json()[created[0]]))


@pytest.mark.parametrize("request_,expected", [
    pytest.param(request_, expected, id=name) for name, (request_, expected) in FIXED_BUGS.items()])
def test_fixed_bug_stays_fixed(st_schema, openapi_client, seeded, request_, expected):
    _send_and_check(st_schema, openapi_client, seeded, request_, expected)
