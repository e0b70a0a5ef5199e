"""Record responses against the budget of response bytes in flight
(``CONSUMER_API_RESPONSE_BUFFER_BYTES``): reads and consumes are built a window at a time,
get a smaller batch when the budget runs short and ``503 unavailable`` with ``Retry-After``
when not even one record fits; the room is given back once the response is sent (or not)
and an undelivered consume gives its records back."""
from __future__ import annotations

import pytest
from werkzeug.test import EnvironBuilder

from consumer_api.api.state import state_of
from consumer_api.app import create_app
from consumer_api.config import Config
from tests.api.conftest import Api, assert_error, b64

pytestmark = pytest.mark.usefixtures("openapi_built_once")

VALUE = b"v" * 1000  # ~1.4 KB of JSON per record in base64


@pytest.fixture
def make(data_dir, engine, manager):
    def build(**overrides):
        app = create_app(Config(data_dir=data_dir, **overrides), backend=engine,
                         manager=manager)
        return app, Api(app.test_client())
    return build


def fill(api: Api, topic: str, count: int, value: bytes = VALUE) -> None:
    assert api.create_topic(topic).status_code == 201
    for start in range(0, count, 500):
        resp = api.produce(topic, [{"value": b64(value)}] * min(500, count - start))
        assert resp.status_code == 200


def hold(app, path: str, method: str = "GET", json=None, query: str = ""):
    """Run a request through the app without reading its body: its room stays taken
    (as while a slow client has not read it). Returns the body (settle/close it)."""
    environ = EnvironBuilder(path=path, method=method, json=json,
                             query_string=query).get_environ()
    status = []
    body = app(environ, lambda s, h, e=None: status.append(s))
    assert status == ["200 OK"]
    return body


def budget(app):
    return state_of(app).response_budget


def test_a_read_gets_a_smaller_batch_when_the_budget_is_short(make):
    app, api = make(response_buffer_bytes=300_000)
    fill(api, "t", 1000)
    records = api.records("t", 0, max_records=1000, max_bytes_total=10_000_000)
    assert 100 < len(records) < 1000
    assert [r["offset"] for r in records] == list(range(len(records)))
    assert budget(app).used == 0  # given back once the body was read


def test_a_read_with_no_room_left_is_503_with_retry_after_and_room_comes_back(make):
    app, api = make(response_buffer_bytes=300_000)
    fill(api, "t", 1000)
    held = hold(app, "/api/topics/t/partitions/0/records",
                query="max_records=1000&max_bytes_total=10000000")
    assert budget(app).used >= 290_000
    resp = api.read("t", 0, max_records=10)
    assert assert_error(resp, 503, "unavailable") == {"reason": "response_budget"}
    assert resp.headers["Retry-After"] == "1"
    assert state_of(app).refusals.counts()["response_budget"] == 1
    held.settle(False)
    assert budget(app).used == 0
    assert len(api.records("t", 0, max_records=10)) == 10


def test_one_record_larger_than_the_room_left_is_503_not_a_bigger_response(make):
    app, api = make(response_buffer_bytes=200_000)
    fill(api, "small", 100)
    fill(api, "big", 1, value=b"b" * 120_000)  # ~160 KB of JSON
    held = hold(app, "/api/topics/small/partitions/0/records", query="max_records=100")
    assert 100_000 < budget(app).used < 200_000
    assert_error(api.read("big", 0), 503, "unavailable")
    held.settle(True)
    assert len(api.records("big", 0)) == 1


def test_reads_in_windows_return_exactly_what_one_read_would(api, engine):
    """Records of mixed sizes, some larger than a window: the windowed read returns the
    same records as one read of the log with the same limits."""
    sizes = [10, 300_000, 50, 200_000, 70_000, 5, 600_000, 1] * 3
    api.create_topic("w")
    for size in sizes:
        assert api.produce("w", [{"value": b64(b"x" * size)}]).status_code == 200
    for max_bytes in (1024, 100_000, 400_000, 1_000_000, 2_000_000, 104_857_600):
        for offset in (0, 1, 5):
            expected = engine.read("w", 0, offset, 100, max_bytes)
            got = api.records("w", 0, offset=offset, max_records=100,
                              max_bytes_total=max_bytes)
            assert [(r["offset"], r["value"]) for r in got] == [
                (r[0], b64(r[3])) for r in expected], (max_bytes, offset)


def subscribe(api: Api, topic: str) -> str:
    resp = api.client.post("/api/consumers/subscribe", json={
        "group_id": "g-" + topic, "topics": [topic], "auto_offset_reset": "earliest"})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return resp.get_json()["consumer_id"]


def position(api: Api, consumer: str, topic: str) -> int:
    return api.client.get(f"/api/consumers/{consumer}/position").get_json()[
        "offsets"][topic]["0"]


def test_a_consume_gets_a_smaller_batch_and_its_position_stops_there(make):
    app, api = make(response_buffer_bytes=300_000)
    fill(api, "c", 1000)
    consumer = subscribe(api, "c")
    got = api.client.post(f"/api/consumers/{consumer}/consume", json={
        "max_records": 1000, "max_bytes_total": 10_000_000, "timeout_ms": 0}).get_json()
    n = len(got["records"])
    assert 100 < n < 1000
    assert position(api, consumer, "c") == n
    assert budget(app).used == 0


def test_a_consume_with_no_room_is_503_and_takes_nothing(make):
    app, api = make(response_buffer_bytes=300_000)
    fill(api, "c", 1000)
    held = hold(app, "/api/topics/c/partitions/0/records",
                query="max_records=1000&max_bytes_total=10000000")
    consumer = subscribe(api, "c")
    resp = api.client.post(f"/api/consumers/{consumer}/consume",
                           json={"timeout_ms": 5000})  # answered at once: no wait
    assert_error(resp, 503, "unavailable")
    assert resp.headers["Retry-After"] == "1"
    assert position(api, consumer, "c") == 0
    held.settle(True)


def test_an_undelivered_consume_gives_back_its_records_and_its_room(make):
    app, api = make()
    fill(api, "c", 30)
    consumer = subscribe(api, "c")
    body = hold(app, f"/api/consumers/{consumer}/consume", method="POST",
                json={"timeout_ms": 0})
    assert position(api, consumer, "c") == 30 and budget(app).used > 0
    body.settle(False)
    assert position(api, consumer, "c") == 0 and budget(app).used == 0
    again = api.client.post(f"/api/consumers/{consumer}/consume",
                            json={"timeout_ms": 0}).get_json()
    assert [r["offset"] for r in again["records"]] == list(range(30))
