"""The OpenAPI document and Swagger UI.

The document is built once per app by apispec: the template
``consumer_api/swagger/template.yml`` (package data: info, tags, security scheme, shared
parameters and error responses), one path per route from the YAML after ``---`` in each
view's docstring, and the schemas from the marshmallow classes those docstrings name.
flasgger serves it at ``/swagger.json`` and Swagger UI at ``/swagger/``; it is told to parse no docstrings itself, so there is one source of truth.
"""
from __future__ import annotations

import copy
from importlib import resources

import yaml
from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from apispec_webframeworks.flask import FlaskPlugin
from flasgger import Swagger
from flask import Flask
from marshmallow import class_registry
from marshmallow.exceptions import RegistryError

from consumer_api import __version__
from consumer_api.api.schemas.common import ErrorSchema
from consumer_api.api.schemas.records import VALUE_RULES
from consumer_api.topic_rules import TOPIC_NAME_DOCUMENTED

#: route prefixes that belong to the API (documented); others (static, Swagger UI) do not
DOCUMENTED_PREFIXES = ("/api/", "/metrics")


def load_template() -> dict:
    """The OpenAPI template (package data: ``consumer_api/swagger/template.yml``), with
    the topic name rule filled in from :mod:`consumer_api.topic_rules`."""
    text = resources.files("consumer_api.swagger").joinpath("template.yml").read_text("utf-8")
    template = yaml.safe_load(text)
    topic = template["components"]["parameters"]["topic"]["schema"]
    topic["pattern"] = TOPIC_NAME_DOCUMENTED
    return template


def documented_rules(app: Flask):
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(DOCUMENTED_PREFIXES):
            yield rule


def build_spec(app: Flask, secured: bool = False) -> dict:
    template = load_template()
    components = template.pop("components", {})
    info = template.pop("info")
    spec = APISpec(title=info.pop("title"), version=__version__,
                   openapi_version=template.pop("openapi"),
                   plugins=[FlaskPlugin(), MarshmallowPlugin()], info=info, **template)
    spec.components.schema("Error", schema=ErrorSchema)
    for name, value in components.get("securitySchemes", {}).items():
        spec.components.security_scheme(name, value)
    for name, value in components.get("parameters", {}).items():
        spec.components.parameter(name, value.pop("in"), value)
    for name, value in components.get("responses", {}).items():
        spec.components.response(name, value)
    for name, value in components.get("headers", {}).items():
        spec.components.header(name, value)
    for name, value in components.get("schemas", {}).items():
        spec.components.schema(name, value)
    with app.test_request_context():
        for endpoint in sorted({rule.endpoint for rule in documented_rules(app)}):
            spec.path(view=app.view_functions[endpoint], app=app)
    document = spec.to_dict()
    _add_schema_rules(document)
    _produce_body_by_encoding(document["components"]["schemas"])
    _json_query_parameters(document)
    _add_common_responses(document, secured)
    return document


def _json_query_parameters(document: dict) -> None:
    """A query parameter whose schema says ``x-json-content`` carries JSON text of that
    schema: stated as OpenAPI's ``content: {application/json: ...}``."""
    for operations in document["paths"].values():
        for operation in operations.values():
            for param in operation.get("parameters", ()):
                schema = param.get("schema", {})
                if "x-json-content" in schema:
                    param["content"] = {"application/json": {
                        "schema": schema.pop("x-json-content"),
                        "example": {"key": {"prefix": "user-"}}}}
                    param.setdefault("description", schema.get("description", ""))
                    del param["schema"]


def _produce_body_by_encoding(schemas: dict) -> None:
    """The produce body as one of three shapes, one per ``encoding`` (``Base64ProduceRequest``
    and its ``Base64RecordIn``, ``Text...``, ``Json...``), each saying what its keys and
    values may be (:data:`~consumer_api.api.schemas.records.VALUE_RULES`) -- so a base64
    value given as a number, or not padded, is invalid by the document as by the server."""
    request, record = schemas["ProduceRequest"], schemas["ProduceRecord"]
    shapes = []
    for encoding, rule in VALUE_RULES.items():
        name = encoding.capitalize()
        shaped = copy.deepcopy(record)
        for field in ("key", "value") if rule else ():
            shaped["properties"][field] = dict(
                rule, description=record["properties"][field].get("description", ""))
        schemas[f"{name}RecordIn"] = shaped
        body = copy.deepcopy(request)
        body["properties"]["records"]["items"] = {"$ref": f"#/components/schemas/{name}RecordIn"}
        said = body["properties"]["encoding"]
        said["enum"] = [encoding]
        if encoding != "base64":  # the default needs no word; the others do
            said.pop("default", None)
            body["required"] = sorted({*body.get("required", ()), "encoding"})
        schemas[f"{name}ProduceRequest"] = body
        shapes.append({"$ref": f"#/components/schemas/{name}ProduceRequest"})
    schemas["ProduceRequest"] = {"oneOf": shapes,
                                 "description": "records, with keys and values as the encoding "
                                                "says (base64 by default)"}


def _add_schema_rules(document: dict) -> None:
    """What a marshmallow schema's validators enforce across its fields, stated in the
    document: the JSON Schema keywords of its ``OPENAPI_RULES`` (``oneOf``, ``anyOf``,
    ``not`` ...) join the schema apispec made of its fields (``Seek`` from ``SeekSchema``)."""
    for name, schema in document.get("components", {}).get("schemas", {}).items():
        try:
            cls = class_registry.get_class(f"{name}Schema", all=False)
        except RegistryError:
            continue
        schema.update(copy.deepcopy(getattr(cls, "OPENAPI_RULES", {})))


#: responses any operation of a kind can give, added so no docstring can forget them
_BODY_RESPONSES = {"413": "PayloadTooLarge", "415": "UnsupportedMediaType"}
_WRITE_RESPONSES = {"507": "InsufficientStorage"}


_API_RESPONSES = {"503": "Unavailable"}
_SECURED_RESPONSES = {"401": "Unauthorized", "403": "Forbidden"}


def _add_common_responses(document: dict, secured: bool) -> None:
    """Every operation with a body can get 413 (the body limit) and 415 (a body not JSON,
    or in a content coding the server does not take); every write (POST, PUT,
    DELETE: they append to a topic or the offsets log) can get 507 (disk full); every API
    operation (all but those declaring ``security: []``) can get 503 (starting or shutting
    down) and, when the server has API keys (``secured``: the document then requires the
    bearer scheme), 401 and 403."""
    if secured:
        document["security"] = [{"apiKey": []}]
    for operations in document["paths"].values():
        for method, operation in operations.items():
            extra = {}
            if "requestBody" in operation:
                extra.update(_BODY_RESPONSES)
            if method in ("post", "put", "delete"):
                extra.update(_WRITE_RESPONSES)
            if operation.get("security") != []:
                extra.update(_API_RESPONSES)
                if secured:
                    extra.update(_SECURED_RESPONSES)
            for status, name in extra.items():
                operation["responses"].setdefault(
                    status, {"$ref": f"#/components/responses/{name}"})


def init_swagger(app: Flask, secured: bool = False) -> None:
    document = build_spec(app, secured)
    app.extensions["consumer_api.openapi"] = document
    Swagger(app, template=document, config={
        "openapi": document["openapi"],
        "headers": [],
        "specs": [{"endpoint": "openapi", "route": "/swagger.json",
                   "rule_filter": lambda rule: False, "model_filter": lambda tag: False}],
        "static_url_path": "/swagger/static",
        "swagger_ui": True,
        "specs_route": "/swagger/",
        "title": "consumer-api",
        "auth": {},  # else flasgger renders "auth_config = None" into the page script
    })
