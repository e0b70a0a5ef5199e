"""The Python client when the server refuses a poll with ``429 too_many_polls``: the poll
pauses as ``Retry-After`` says (doubling, at most 5 s, with jitter), asks again within its
own ``timeout_ms`` and finally without waiting; it never fails for it. ``429
too_many_consumers`` at subscribe stays an error.

The server is a scripted ``requests`` transport (the answers a test lists, in order); time
is a fake clock that only the client's pauses move. The real server's answers are tested in
tests/api/test_fair_shares.py, the whole path in tests/e2e/test_cli.py.
"""
from __future__ import annotations

import json

import pytest
import requests

from consumer_api.client import Client
from consumer_api.client.consumer import MAX_BACKOFF_S, MIN_BACKOFF_S, backoff_s
from consumer_api.client.errors import TooManyConsumers, TooManyPolls, from_response

URL = "http://scripted"
SUBSCRIBED = (200, {"consumer_id": "c1", "group_id": "g", "topics": ["t"],
                    "assignment": {"t": [0]}, "generation": 1}, {})
RECORD = {"topic": "t", "partition": 0, "offset": 7, "timestamp": 1, "key": None,
          "value": "aGk=", "headers": {}}


def refused(retry_after="1", scope="server"):
    headers = {} if retry_after is None else {"Retry-After": retry_after}
    return (429, {"error": "all slots taken; retry after a pause", "code": "too_many_polls",
                  "details": {"limit": 2, "scope": scope}}, headers)


def records(*recs):
    return (200, {"records": list(recs), "timestamp": 1}, {})


class Script(requests.adapters.BaseAdapter):
    """Answers requests from a list of ``(status, json body, headers)``; records what was
    sent as ``(method, path, json body)``."""

    def __init__(self, answers):
        super().__init__()
        self.answers = list(answers)
        self.sent: list = []

    def send(self, request, **kwargs):
        body = json.loads(request.body) if request.body else None
        self.sent.append((request.method, request.path_url, body))
        assert self.answers, f"no answer scripted for {request.method} {request.path_url}"
        status, payload, headers = self.answers.pop(0)
        resp = requests.Response()
        resp.status_code = status
        resp._content = json.dumps(payload).encode()
        resp.headers.update({"Content-Type": "application/json", **headers})
        resp.request, resp.url = request, request.url
        return resp

    def close(self):
        pass


class FakeTime:
    def __init__(self):
        self.now = 1000.0
        self.pauses: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.now += seconds


@pytest.fixture
def fake_time():
    return FakeTime()


def consumer_with(answers, fake_time, **options):
    client = Client(URL)
    script = Script(answers)
    client.session.mount(URL, script)
    consumer = client.consumer("g", ["t"], **options)
    consumer.sleep, consumer.clock = fake_time.sleep, fake_time.clock
    return consumer, script


def consume_timeouts(script) -> list:
    return [body["timeout_ms"] for method, path, body in script.sent if path.endswith("/consume")]


def test_a_refused_poll_pauses_as_retry_after_says_and_gets_the_records(fake_time):
    consumer, script = consumer_with([SUBSCRIBED, refused("2"), refused("2"), records(RECORD)],
                                     fake_time)
    consumer.subscribe()
    got = consumer.poll(timeout_ms=30_000)
    assert [(r.offset, r.value) for r in got] == [(7, b"hi")]
    first, second = fake_time.pauses
    assert 2 <= first <= 2.5 and 4 <= second <= 5
    # each retry waits only for what is left of the poll's own timeout
    spent = first + second
    assert consume_timeouts(script) == pytest.approx(
        [30_000, (30 - first) * 1000, (30 - spent) * 1000], abs=1)


def test_pauses_are_at_most_five_seconds_whatever_the_server_asks(fake_time):
    consumer, script = consumer_with([SUBSCRIBED] + [refused("60")] * 4 + [records(RECORD)],
                                     fake_time)
    consumer.subscribe()
    assert len(consumer.poll(timeout_ms=300_000)) == 1
    assert len(fake_time.pauses) == 4 and all(p <= MAX_BACKOFF_S for p in fake_time.pauses)


def test_without_retry_after_the_pause_is_a_second(fake_time):
    consumer, _ = consumer_with([SUBSCRIBED, refused(None), records()], fake_time)
    consumer.subscribe()
    consumer.poll(timeout_ms=30_000)
    assert 1 <= fake_time.pauses[0] <= 1.25


def test_a_refused_poll_keeps_to_its_timeout_then_asks_once_without_waiting(fake_time):
    consumer, script = consumer_with([SUBSCRIBED, refused("2"), refused("2"), records()],
                                     fake_time)
    consumer.subscribe()
    assert consumer.poll(timeout_ms=3000) == []
    assert sum(fake_time.pauses) == pytest.approx(3.0)  # never past its own timeout
    assert consume_timeouts(script)[-1] == 0


def test_a_refused_poll_that_does_not_wait_is_an_error(fake_time):
    consumer, _ = consumer_with([SUBSCRIBED, refused("1")], fake_time)
    consumer.subscribe()
    with pytest.raises(TooManyPolls):
        consumer.poll(timeout_ms=0)
    assert fake_time.pauses == []


def test_iteration_goes_on_through_refusals(fake_time):
    closed = (200, {"message": "consumer closed"}, {})
    consumer, script = consumer_with(
        [SUBSCRIBED, refused("1"), refused("1"), records(RECORD), closed], fake_time)
    with consumer:
        assert next(iter(consumer)).offset == 7
    assert len(fake_time.pauses) == 2
    assert script.sent[-1][0] == "DELETE"


def test_too_many_consumers_at_subscribe_stays_an_error(fake_time):
    consumer, _ = consumer_with([(429, {"error": "key k has reached its limit of 2 consumer "
                                        "sessions", "code": "too_many_consumers",
                                        "details": {"limit": 2, "scope": "client"}}, {})],
                                fake_time)
    with pytest.raises(TooManyConsumers) as info:
        consumer.subscribe()
    assert info.value.details["limit"] == 2
    assert fake_time.pauses == []


def test_the_error_carries_retry_after():
    body = refused()[1]
    assert from_response(429, body, {"Retry-After": "3"}).retry_after_s == 3
    for header in ({}, {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"},
                   {"Retry-After": "-1"}):
        assert from_response(429, body, header).retry_after_s == 1  # the default


def test_backoff_doubles_keeps_its_bounds_and_jitters_upwards():
    assert backoff_s(1, 0, rand=lambda: 0) == 1
    assert backoff_s(1, 1, rand=lambda: 0) == 2
    assert backoff_s(1, 0, rand=lambda: 0.999) == pytest.approx(1.25, abs=0.001)
    assert backoff_s(1, 10, rand=lambda: 0) == MAX_BACKOFF_S
    assert backoff_s(0, 0, rand=lambda: 0) == MIN_BACKOFF_S
    assert backoff_s(float("inf"), 0, rand=lambda: 0) == MAX_BACKOFF_S
