"""Refusals (consumer_api.refusals): counted by reason; logged as one WARNING line per
(client, reason) per interval on a fake clock, the next line saying how many were not shown;
clients and reasons logged separately; the table of remembered pairs stays bounded."""
from __future__ import annotations

import logging

import pytest

from consumer_api import refusals as refusals_module
from consumer_api.refusals import Refusals


class Clock:
    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def lines(caplog):
    """The refusal log lines so far (a function: call it to read them)."""
    caplog.set_level(logging.WARNING, logger="consumer_api.refusals")

    def read():
        records = [r for r in caplog.records if r.name == "consumer_api.refusals"]
        assert all(r.levelno == logging.WARNING for r in records)
        return [r.getMessage() for r in records]

    return read


def test_counts_by_reason(clock):
    refusals = Refusals(clock=clock)
    assert refusals.counts() == {}
    for _ in range(3):
        refusals.record("body_timeout", "address 10.0.0.1")
    refusals.record("uri_too_long", "address 10.0.0.2")
    refusals.record("body_timeout", "key ops")
    assert refusals.counts() == {"body_timeout": 4, "uri_too_long": 1}


def test_counts_is_a_copy(clock):
    refusals = Refusals(clock=clock)
    refusals.record("draining", "a")
    counts = refusals.counts()
    counts["draining"] = 99
    assert refusals.counts() == {"draining": 1}


def test_one_line_per_client_and_reason_per_interval(clock, lines):
    refusals = Refusals(interval_s=60, clock=clock)
    refusals.record("header_timeout", "address 10.0.0.1", "the head took too long")
    assert lines() == ["refused header_timeout from address 10.0.0.1: the head took too long"]
    for _ in range(4):
        clock.now += 10
        refusals.record("header_timeout", "address 10.0.0.1", "the head took too long")
    assert len(lines()) == 1  # counted, not logged
    assert refusals.counts() == {"header_timeout": 5}
    clock.now += 20  # 60 s after the first line
    refusals.record("header_timeout", "address 10.0.0.1")
    assert lines()[1] == ("refused header_timeout from address 10.0.0.1 "
                          "(4 more since the last line)")
    clock.now += 61
    refusals.record("header_timeout", "address 10.0.0.1")
    assert lines()[2] == "refused header_timeout from address 10.0.0.1"  # none hidden


def test_interval_runs_from_the_last_line_not_the_last_refusal(clock, lines):
    refusals = Refusals(interval_s=60, clock=clock)
    refusals.record("bad_request", "c")
    for _ in range(11):  # one refusal every 10 s, without end
        clock.now += 10
        refusals.record("bad_request", "c")
    assert [line.endswith("(5 more since the last line)") for line in lines()] == [
        False, True]


def test_clients_and_reasons_are_logged_separately(clock, lines):
    refusals = Refusals(interval_s=60, clock=clock)
    refusals.record("body_too_large", "address 10.0.0.1")
    refusals.record("body_too_large", "address 10.0.0.2")
    refusals.record("uri_too_long", "address 10.0.0.1")
    refusals.record("body_too_large", "address 10.0.0.1")
    refusals.record("uri_too_long", "address 10.0.0.2")
    assert lines() == ["refused body_too_large from address 10.0.0.1",
                       "refused body_too_large from address 10.0.0.2",
                       "refused uri_too_long from address 10.0.0.1",
                       "refused uri_too_long from address 10.0.0.2"]


def test_the_table_of_remembered_pairs_stays_bounded(clock, monkeypatch, lines):
    monkeypatch.setattr(refusals_module, "MAX_TRACKED", 5)
    refusals = Refusals(interval_s=60, clock=clock)
    for i in range(50):
        clock.now += 0.1
        refusals.record("client_polls", f"address 10.0.0.{i}")
        assert len(refusals._book) <= 5
    assert len(lines()) == 50
    assert refusals.counts() == {"client_polls": 50}


def test_the_oldest_pair_is_forgotten_when_none_is_stale(clock, monkeypatch, lines):
    monkeypatch.setattr(refusals_module, "MAX_TRACKED", 2)
    refusals = Refusals(interval_s=60, clock=clock)
    refusals.record("server_polls", "old")
    clock.now += 1
    refusals.record("server_polls", "recent")
    clock.now += 1
    refusals.record("server_polls", "new")  # the table is full: "old" goes
    refusals.record("server_polls", "recent")  # still remembered: not logged again
    refusals.record("server_polls", "old")  # forgotten: logged again
    assert lines() == ["refused server_polls from old", "refused server_polls from recent",
                       "refused server_polls from new", "refused server_polls from old"]


def test_stale_pairs_are_forgotten_first(clock, monkeypatch, lines):
    monkeypatch.setattr(refusals_module, "MAX_TRACKED", 3)
    refusals = Refusals(interval_s=60, clock=clock)
    refusals.record("send_timeout", "a")
    refusals.record("send_timeout", "b")
    clock.now += 59
    refusals.record("send_timeout", "c")
    clock.now += 1  # a and b are stale now; c is not
    refusals.record("send_timeout", "d")
    refusals.record("send_timeout", "c")  # remembered: not logged
    assert lines()[-1] == "refused send_timeout from d"
    assert len(lines()) == 4
    assert len(refusals._book) <= 3
