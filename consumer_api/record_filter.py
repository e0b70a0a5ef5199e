"""Record filters: which records a consume or a read returns (issue 15, part 2).

A filter is JSON: one condition, or ``{"all": [filters]}`` / ``{"any": [filters]}``. A
condition is one of::

    {"key": {"equals": "user-7"}}            the key, as UTF-8 text, is exactly this
    {"key": {"prefix": "user-"}}             ... starts with this
    {"header": {"name": "trace"}}            the record has this header
    {"header": {"name": "trace", "equals": "abc"}}   ... with this value
    {"value": {"path": "order.total", "gt": 100}}    the value is JSON and at this path
                                                     (dots; a number picks a list item)
                                                     holds something equal to (``equals``),
                                                     among (``in``, a list), or ordered
                                                     against (``gt``, ``gte``, ``lt``,
                                                     ``lte``: numbers with numbers, text
                                                     with text) the given JSON value

A record without a key, a key or value that is not UTF-8 / JSON, or a path that leads
nowhere does not match. :func:`compile_filter` checks a filter and turns it into a
predicate ``match(key, value, headers) -> bool`` (bytes or None, bytes or None, a mapping
of header names to text or None); it raises InvalidRequest naming what is wrong (under
``details["filter"]``). Pure functions: thread-safe.
"""
from __future__ import annotations

from typing import Callable

import orjson

from consumer_api.errors import InvalidRequest

Match = Callable[[bytes | None, bytes | None, object], bool]

#: how deeply ``all`` / ``any`` may nest, and how many conditions a filter may hold
MAX_DEPTH = 8
MAX_CONDITIONS = 64
ORDERED = {"gt": lambda a, b: a > b, "gte": lambda a, b: a >= b,
           "lt": lambda a, b: a < b, "lte": lambda a, b: a <= b}
_MISSING = object()


def compile_filter(spec) -> Match:
    """The predicate of a filter; InvalidRequest naming the problem."""
    match = _compile(spec, "filter", 0, [0])

    def run(key, value, headers) -> bool:
        return match(key, value, headers, {})  # the value parsed at most once per record
    return run


def _bad(where: str, message: str) -> InvalidRequest:
    return InvalidRequest(f"invalid filter: {where}: {message}", {"filter": [f"{where}: {message}"]})


def _compile(spec, where: str, depth: int, counted: list):
    if not isinstance(spec, dict) or len(spec) != 1:
        raise _bad(where, "a filter is an object with exactly one of all, any, key, header, "
                          "value")
    (kind, body), = spec.items()
    if kind in ("all", "any"):
        if depth >= MAX_DEPTH:
            raise _bad(where, f"all/any nest at most {MAX_DEPTH} deep")
        if not isinstance(body, list) or not body:
            raise _bad(f"{where}.{kind}", "a non-empty list of filters")
        parts = [_compile(item, f"{where}.{kind}[{i}]", depth + 1, counted)
                 for i, item in enumerate(body)]
        combine = all if kind == "all" else any
        return lambda key, value, headers, cache: combine(
            part(key, value, headers, cache) for part in parts)
    counted[0] += 1
    if counted[0] > MAX_CONDITIONS:
        raise _bad(where, f"at most {MAX_CONDITIONS} conditions")
    makers = {"key": _key, "header": _header, "value": _value}
    if kind not in makers:
        raise _bad(where, f"unknown condition {kind!r} (all, any, key, header, value)")
    if not isinstance(body, dict):
        raise _bad(f"{where}.{kind}", "an object")
    return makers[kind](body, f"{where}.{kind}")


def _text(body: dict, name: str, where: str) -> str:
    found = body.get(name)
    if not isinstance(found, str):
        raise _bad(f"{where}.{name}", "text")
    return found


def _only(body: dict, allowed: set, where: str) -> None:
    extra = sorted(set(body) - allowed)
    if extra:
        raise _bad(where, f"unknown field {extra[0]!r} (allowed: {', '.join(sorted(allowed))})")


def _key(body: dict, where: str):
    _only(body, {"equals", "prefix"}, where)
    if len(body) != 1:
        raise _bad(where, "exactly one of equals, prefix")
    (op, _), = body.items()
    wanted = _text(body, op, where).encode("utf-8")
    if op == "equals":
        return lambda key, value, headers, cache: key == wanted
    return lambda key, value, headers, cache: key is not None and key.startswith(wanted)


def _header(body: dict, where: str):
    _only(body, {"name", "equals"}, where)
    name = _text(body, "name", where)
    if "equals" not in body:
        return lambda key, value, headers, cache: bool(headers) and name in headers
    wanted = _text(body, "equals", where)
    return lambda key, value, headers, cache: bool(headers) and headers.get(name) == wanted


def _value(body: dict, where: str):
    ops = set(body) - {"path"}
    _only(body, {"path", "equals", "in", *ORDERED}, where)
    if len(ops) != 1:
        raise _bad(where, "a path and exactly one of equals, in, gt, gte, lt, lte")
    path = _path(_text(body, "path", where), f"{where}.path")
    op = ops.pop()
    operand = body[op]
    if op == "in":
        if not isinstance(operand, list):
            raise _bad(f"{where}.in", "a list of JSON values")
        test = lambda found: any(_same(found, v) for v in operand)  # noqa: E731
    elif op == "equals":
        test = lambda found: _same(found, operand)  # noqa: E731
    else:
        if isinstance(operand, bool) or not isinstance(operand, (int, float, str)):
            raise _bad(f"{where}.{op}", "a number or text")
        compare = ORDERED[op]
        test = lambda found: _comparable(found, operand) and compare(found, operand)  # noqa: E731

    def match(key, value, headers, cache) -> bool:
        found = _at(_parsed(value, cache), path)
        return found is not _MISSING and test(found)
    return match


def _path(text: str, where: str) -> list:
    if not text:
        return []
    parts = text.split(".")
    if any(not p for p in parts):
        raise _bad(where, "names joined by dots, none empty")
    return parts


def _parsed(value, cache: dict):
    if "v" not in cache:
        try:
            cache["v"] = _MISSING if value is None else orjson.loads(value)
        except orjson.JSONDecodeError:
            cache["v"] = _MISSING
    return cache["v"]


def _at(doc, path: list):
    for step in path:
        if isinstance(doc, dict):
            doc = doc.get(step, _MISSING)
        elif isinstance(doc, list) and step.isdigit() and int(step) < len(doc):
            doc = doc[int(step)]
        else:
            return _MISSING
        if doc is _MISSING:
            return _MISSING
    return doc


def _same(a, b) -> bool:
    """JSON equality: true is not 1, 1 is 1.0."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return a == b


def _comparable(found, operand) -> bool:
    if isinstance(found, bool):
        return False
    if isinstance(operand, str):
        return isinstance(found, str)
    return isinstance(found, (int, float))
