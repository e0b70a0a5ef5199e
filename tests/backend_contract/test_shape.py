"""Every store has the whole contract: each method of ``Backend`` and ``Member`` with the
same parameters (a store may not leave one out or take its arguments differently)."""
from __future__ import annotations

import inspect

from consumer_api.backend import Backend, Member
from tests.backend_contract.conftest import Wakes


def contract(protocol) -> dict:
    return {name: inspect.signature(value) for name, value in vars(protocol).items()
            if not name.startswith("_") and callable(value)}


def parameters(signature) -> list:
    return [p.name for p in signature.parameters.values() if p.name != "self"]


def check(obj, protocol) -> None:
    for name, signature in contract(protocol).items():
        found = getattr(obj, name, None)
        assert callable(found), f"{type(obj).__name__} has no {name}()"
        assert parameters(inspect.signature(found)) == parameters(signature), name


def test_the_store_has_every_backend_method(store):
    check(store, Backend)
    assert store.is_open is True


def test_its_members_have_every_member_method(store):
    check(store.member("g", "a", Wakes()), Member)
