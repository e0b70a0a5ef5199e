"""The Python client while its server restarts: a session call that finds the port closed
or the server unavailable (``503``: starting, shutting down) asks again after growing
pauses, for up to ``restart_wait_s``, then goes on with the same consumer id; past that,
or with ``restart_wait_s=0``, the error is raised.

The server is a scripted ``requests`` transport; an answer that is an exception is raised
as the connection's failure. Time is a fake clock only the client's pauses move. The real
restart is in tests/e2e/test_sessions_across_restarts.py.
"""
from __future__ import annotations

import pytest
import requests

from consumer_api.client.consumer import MAX_BACKOFF_S
from consumer_api.client.errors import ConnectionFailed, Unavailable
from tests.test_client_backoff import (RECORD, SUBSCRIBED, Script, consumer_with, fake_time,
                                       records)

__all__ = ["fake_time"]  # the fixture, imported for this module's tests

REFUSED = requests.ConnectionError(ConnectionRefusedError(111, "Connection refused"))
STARTING = (503, {"error": "the server is starting: recovering its logs",
                  "code": "unavailable", "details": {"state": "starting"}}, {})
COMMITTED = (200, {"success": True, "message": "offsets committed",
                   "offsets": {"t": {"0": 8}}}, {})


class FailingScript(Script):
    def send(self, request, **kwargs):
        if self.answers and isinstance(self.answers[0], BaseException):
            self.sent.append((request.method, request.path_url, None))
            raise self.answers.pop(0)
        return super().send(request, **kwargs)


def scripted(answers, fake_time, **options):
    consumer, _ = consumer_with([], fake_time, **options)
    script = FailingScript(answers)
    consumer.client.session.mount("http://scripted", script)
    return consumer, script


def test_a_poll_waits_out_a_restart_and_goes_on_with_the_same_session(fake_time):
    consumer, script = scripted([SUBSCRIBED, REFUSED, REFUSED, STARTING, records(RECORD)],
                                fake_time)
    consumer.subscribe()
    got = consumer.poll(timeout_ms=1000)
    assert [r.offset for r in got] == [7]
    assert consumer.consumer_id == "c1"
    assert [path for _m, path, _b in script.sent[1:]] == ["/api/consumers/c1/consume"] * 4
    assert len(fake_time.pauses) == 3
    assert fake_time.pauses[0] < fake_time.pauses[1] < fake_time.pauses[2]  # growing


def test_every_session_call_waits_out_a_restart(fake_time):
    consumer, script = scripted([SUBSCRIBED, STARTING, COMMITTED], fake_time)
    consumer.subscribe()
    assert consumer.commit() == {("t", 0): 8}
    assert len(fake_time.pauses) == 1


def test_past_restart_wait_s_the_failure_is_raised(fake_time):
    consumer, _ = scripted([SUBSCRIBED] + [REFUSED] * 50, fake_time, restart_wait_s=12)
    consumer.subscribe()
    with pytest.raises(ConnectionFailed, match="connection refused"):
        consumer.poll(timeout_ms=0)
    assert sum(fake_time.pauses) == pytest.approx(12)
    assert max(fake_time.pauses) <= MAX_BACKOFF_S


def test_restart_wait_s_zero_fails_at_once(fake_time):
    consumer, _ = scripted([SUBSCRIBED, STARTING], fake_time, restart_wait_s=0)
    consumer.subscribe()
    with pytest.raises(Unavailable):
        consumer.poll(timeout_ms=0)
    assert fake_time.pauses == []
