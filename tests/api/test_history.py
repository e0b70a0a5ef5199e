"""GET /api/metrics/history: samples taken on the fake clock (the manager's; calling
``state.history.take()`` stands in for the sampler thread), read over HTTP."""
from __future__ import annotations

import pytest

from consumer_api.api.state import state_of
from tests.api.conftest import assert_error, b64

pytestmark = pytest.mark.usefixtures("openapi_built_once")


@pytest.fixture
def history(app):
    return state_of(app).history


def samples(client, **params):
    resp = client.get("/api/metrics/history", query_string=params)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body = resp.get_json()
    assert body["interval_ms"] == 10_000
    return body["samples"]


def test_rates_lag_and_sessions_over_two_samples(client, api, history, clock):
    assert samples(client) == []
    api.create_topic("orders", 2)
    history.take()
    api.produce("orders", [{"value": b64("x"), "partition": p % 2} for p in range(30)])
    cid = client.post("/api/consumers/subscribe", json={
        "group_id": "billing", "topics": ["orders"],
        "auto_offset_reset": "earliest"}).get_json()["consumer_id"]
    got = client.post(f"/api/consumers/{cid}/consume",
                      json={"timeout_ms": 0, "max_records": 10}).get_json()["records"]
    assert len(got) == 10
    client.post(f"/api/consumers/{cid}/commit")
    clock.advance(10_000)
    history.take()

    first, second = samples(client)
    assert first["records_in"] == first["records_out"] == 0
    assert first["topics"] == {"orders": {"records_in": 0, "records_out": 0,
                                          "high_watermark": 0, "size_bytes": 0,
                                          "partitions": [0, 0]}}
    assert second["time_ms"] - first["time_ms"] == 10_000
    assert second["records_in"] == 3.0 and second["records_out"] == 1.0  # per second
    orders = second["topics"]["orders"]
    assert orders["size_bytes"] > 30  # what the store keeps of 30 records
    assert {k: v for k, v in orders.items() if k != "size_bytes"} == {
        "records_in": 3.0, "records_out": 1.0, "high_watermark": 30, "partitions": [15, 15]}
    assert second["groups"] == {"billing": {"lag": 20}}
    assert second["sessions"] == 1 and second["waiting_polls"] == 0
    assert samples(client, since_ms=first["time_ms"]) == [second]


def test_only_the_last_hour_is_kept(client, history, clock):
    for _ in range(400):
        history.take()
        clock.advance(10_000)
    kept = samples(client)
    assert len(kept) == 360
    assert kept[-1]["time_ms"] - kept[0]["time_ms"] == 359 * 10_000


@pytest.mark.parametrize("since", ["-1", "x", "1.5"])
def test_a_bad_since_is_400_naming_it(client, since):
    details = assert_error(client.get(f"/api/metrics/history?since_ms={since}"), 400,
                           "invalid_request")
    assert list(details) == ["since_ms"]
