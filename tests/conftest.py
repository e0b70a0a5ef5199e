"""Shared fixtures: ``data_dir`` (a fresh directory), ``clock`` (a fake clock that only moves
when a test moves it), ``config``, ``engine`` (the store), ``manager`` (consumer sessions),
``app`` and ``client``.

Which store: ``store_name`` is "embedded" unless a test module lists
``ON_STORES = ("embedded", "kafka")``; then each of its tests that uses the store runs once
per store, except those marked ``embedded_only`` (they need the fake clock, or behaviour
only that store has). On "kafka", ``engine`` is the run's shared Kafka store (left clean
after each test) and the manager runs on the real clocks: no fake clock moves a Kafka
group.
"""
from __future__ import annotations

import time

import pytest

from consumer_api.config import Config


class FakeClock:
    """Stands in for both clocks: ``now_ms()`` (wall, epoch ms) and ``monotonic()`` (s)."""

    def __init__(self, start_ms: int = 1_700_000_000_000):
        self.ms = start_ms

    def now_ms(self) -> int:
        return self.ms

    def monotonic(self) -> float:
        return self.ms / 1000

    def advance(self, ms: int) -> None:
        self.ms += ms


@pytest.fixture
def data_dir(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    return str(d)


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def config(data_dir):
    return Config(data_dir=data_dir)


#: real seconds a call to the Kafka store may take in the tests that run on both stores
KAFKA_BOUND_S = 20.0


def pytest_configure(config):
    config.addinivalue_line("markers", "embedded_only: runs on the embedded store only, in "
                            "a module whose ON_STORES name both")


def pytest_generate_tests(metafunc):
    stores = getattr(metafunc.module, "ON_STORES", None)
    if stores and "store_name" in metafunc.fixturenames:
        if metafunc.definition.get_closest_marker("embedded_only"):
            stores = ("embedded",)
        metafunc.parametrize("store_name", stores, scope="module")  # a server per store


@pytest.fixture
def store_name() -> str:
    return "embedded"


@pytest.fixture(scope="session")
def shared_kafka_store(kafka_broker):
    """One Kafka store for the tests that run on both stores (a server has one, too:
    opening one costs about a second); each test leaves it clean."""
    from tests.kafka.store import kafka_store
    with kafka_store(kafka_broker, KAFKA_BOUND_S) as store:
        yield store


@pytest.fixture
def engine(request, store_name, config, clock):
    if store_name == "kafka":
        from tests.kafka.store import leave_clean
        store = request.getfixturevalue("shared_kafka_store")
        yield store
        leave_clean(store, KAFKA_BOUND_S)
        return
    from consumer_api.embedded.engine import Engine
    eng = Engine(config, now_ms=clock.now_ms)
    yield eng
    eng.close()


@pytest.fixture
def manager(store_name, config, engine, clock):
    """Consumer sessions on the fake clock (the real ones on Kafka); no reaper thread (tests
    call ``expire``)."""
    from consumer_api.clock import wall_clock_ms
    from consumer_api.sessions.manager import ConsumerManager
    clocks = ((time.monotonic, wall_clock_ms) if store_name == "kafka"
              else (clock.monotonic, clock.now_ms))
    mgr = ConsumerManager(engine, config.max_sessions, clock=clocks[0], now_ms=clocks[1])
    yield mgr
    mgr.shutdown()


@pytest.fixture
def app(config, engine, manager):
    from consumer_api.app import create_app
    return create_app(config, backend=engine, manager=manager)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory):
    """One real Kafka broker for the whole test run (tests/kafka/broker.py), started by the
    first test that asks for it and stopped by its pid at the end; the tests that need it
    skip, saying what is missing, on a machine without Java or the jars ``make test``
    fetches."""
    from tests.kafka.broker import BrokerUnavailable, start_broker
    try:
        broker = start_broker(tmp_path_factory.mktemp("kafka"))
    except BrokerUnavailable as exc:
        pytest.skip(f"no Kafka broker here: {exc}")
    yield broker
    broker.stop()
