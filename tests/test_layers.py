"""The layers (README, *Inside*): nothing outside a store (``consumer_api/embedded/``,
``consumer_api/kafka/``) imports from it except ``consumer_api/backends.py``, the one place
that builds a store from the configuration; the stores do not import each other; the
store-neutral modules import no layer above them."""
from __future__ import annotations

import ast
import pathlib

import consumer_api

PACKAGE = pathlib.Path(consumer_api.__file__).parent
FACTORY = "consumer_api/backends.py"
#: modules every layer may use; they must not import the layers
NEUTRAL = ("backend.py", "records.py", "topic_rules.py", "offset_rules.py", "partitioner.py",
           "errors.py", "config.py", "clock.py", "durable.py")


def imported_modules(path: pathlib.Path) -> set[str]:
    """Every module ``path`` imports, at any depth of its code (absolute names)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.level:
                raise AssertionError(f"{path}: relative import of {node.module}")
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def modules(under: pathlib.Path = PACKAGE):
    for path in sorted(under.rglob("*.py")):
        yield path, path.relative_to(PACKAGE.parent).as_posix()


STORES = ("embedded", "kafka")


def test_only_the_factory_imports_a_store():
    offenders = {}
    for path, name in modules():
        if name == FACTORY:
            continue
        own = next((s for s in STORES if name.startswith(f"consumer_api/{s}/")), None)
        bad = sorted(m for m in imported_modules(path) for store in STORES
                     if store != own and (m == f"consumer_api.{store}"
                                          or m.startswith(f"consumer_api.{store}.")))
        if bad:
            offenders[name] = bad
    assert offenders == {}


def test_the_factory_is_still_where_the_store_is_built():
    assert any(m.startswith("consumer_api.embedded") for m in
               imported_modules(PACKAGE / "backends.py"))


def test_neutral_modules_import_no_layer():
    layers = ("consumer_api.api", "consumer_api.sessions", "consumer_api.embedded",
              "consumer_api.kafka", "consumer_api.server", "consumer_api.app",
              "consumer_api.metrics")
    offenders = {}
    for neutral in NEUTRAL:
        bad = sorted(m for m in imported_modules(PACKAGE / neutral)
                     if m.startswith(layers))
        if bad:
            offenders[neutral] = bad
    assert offenders == {}
