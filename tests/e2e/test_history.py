"""The real server samples its history on its own (a short interval here)."""
from __future__ import annotations

import requests

from tests.waiting import wait_until


def test_the_server_samples_its_history_by_itself(server_factory):
    srv = server_factory(CONSUMER_API_HISTORY_INTERVAL_MS="50")
    requests.post(srv.url("/api/topics"), json={"name": "orders", "partitions": 1},
                  timeout=5).raise_for_status()

    def sampled_orders():
        body = requests.get(srv.url("/api/metrics/history"), timeout=5).json()
        return [s for s in body["samples"] if "orders" in s["topics"]]

    wait_until(lambda: len(sampled_orders()) >= 2, "two samples with the topic")
