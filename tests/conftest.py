"""Shared fixtures: ``data_dir`` (a fresh directory), ``clock`` (a fake clock that only moves
when a test moves it), ``config``, ``engine``, ``manager`` (consumer sessions on the fake
clock), ``app`` and ``client``."""
from __future__ import annotations

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


@pytest.fixture
def engine(config, clock):
    from consumer_api.embedded.engine import Engine
    eng = Engine(config, now_ms=clock.now_ms)
    yield eng
    eng.close()


@pytest.fixture
def manager(config, engine, clock):
    """Consumer sessions on the fake clock; no reaper thread (tests call ``expire``)."""
    from consumer_api.sessions.manager import ConsumerManager
    mgr = ConsumerManager(engine, config.max_sessions, clock=clock.monotonic,
                          now_ms=clock.now_ms)
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
