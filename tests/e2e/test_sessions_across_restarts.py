"""Consumer sessions across a restart of the real server (gunicorn): after SIGTERM and a
new start on the same data directory the same consumer id goes on exactly where it was;
after ``kill -9`` nothing is lost and only the records delivered since the last save and
not committed come again; a closed session stays 404. The Python client and the command
line keep their session through a restart on their own. On Kafka, with a sessions
directory, a node restores its own sessions.

The only waits are bounded polls of another process's state (readiness, its output).
"""
from __future__ import annotations

import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

import requests

from consumer_api.client import Client, TopicPartition
from tests.e2e.conftest import server_env
from tests.waiting import wait_until

TIMEOUT = (2.0, 30.0)


class Api:
    def __init__(self, srv):
        self.srv = srv

    def call(self, method, path, status=200, **kwargs):
        resp = requests.request(method, self.srv.url(path), timeout=TIMEOUT, **kwargs)
        assert resp.status_code == status, (method, path, resp.status_code, resp.text[:300])
        return resp.json()

    def produce(self, topic, partition, values):
        self.call("POST", f"/api/topics/{topic}/records", json={
            "encoding": "text", "records": [{"value": v, "partition": partition}
                                            for v in values]})

    def subscribe(self, group, topic, **options):
        return self.call("POST", "/api/consumers/subscribe", json={
            "group_id": group, "topics": [topic], "auto_offset_reset": "earliest",
            "encoding": "text", **options})["consumer_id"]

    def consume(self, cid, status=200, **body):
        body.setdefault("timeout_ms", 0)
        found = self.call("POST", f"/api/consumers/{cid}/consume", status, json=body)
        return [(r["partition"], r["offset"]) for r in found.get("records", [])]

    def consume_all(self, cid, timeout_ms=0):
        got = []
        while batch := self.consume(cid, timeout_ms=timeout_ms):
            got += batch
        return got


def every(partitions, start, end):
    return sorted((p, o) for p in partitions for o in range(start.get(p, 0), end))


def test_a_graceful_restart_keeps_sessions_where_they_were(server_factory):
    first = server_factory()
    api = Api(first)
    api.call("POST", "/api/topics", 201, json={"name": "orders", "partitions": 3})
    for p in range(3):
        api.produce("orders", p, [f"p{p}-{o}" for o in range(10)])
    cid = api.subscribe("billing", "orders", session_timeout_ms=60_000)
    closed = api.subscribe("audit", "orders")
    delivered = api.consume(cid, max_records=12)
    api.call("POST", f"/api/consumers/{cid}/commit", json={})
    delivered += api.consume(cid, max_records=5)  # delivered, not committed
    before = api.call("GET", f"/api/consumers/{cid}/position")
    api.call("DELETE", f"/api/consumers/{closed}")

    assert first.stop(signal.SIGTERM) == 0, first.describe()
    second = server_factory(first.data_dir)
    api = Api(second)
    assert api.call("GET", f"/api/consumers/{cid}/position") == before
    listed = api.call("GET", "/api/consumers")["sessions"]
    assert [(s["consumer_id"], s["group_id"]) for s in listed] == [(cid, "billing")]
    group = api.call("GET", "/api/consumer-groups/billing")
    assert [m["consumer_id"] for m in group["members"]] == [cid]
    rest = api.consume_all(cid)
    assert sorted(delivered + rest) == every(range(3), {}, 10)  # each record once
    api.call("GET", f"/api/consumers/{closed}/position", 404)
    wait_until(lambda: "restored 1 of 1 saved consumer sessions" in second.output(),
               "the restore is logged")


def test_after_kill_9_only_what_was_delivered_since_the_last_save_comes_again(server_factory):
    lazy = {"CONSUMER_API_SESSIONS_SAVE_INTERVAL_MS": "3600000"}  # no lazy save in the test
    first = server_factory(**lazy)
    api = Api(first)
    api.call("POST", "/api/topics", 201, json={"name": "orders", "partitions": 1})
    api.produce("orders", 0, [f"v{o}" for o in range(10)])
    cid = api.subscribe("billing", "orders")  # saved at once: from offset 0
    replay = api.subscribe("replay", "orders")
    assert api.consume(cid, max_records=4) == every([0], {}, 4)
    api.call("POST", f"/api/consumers/{cid}/commit", json={})
    assert api.consume(cid, max_records=3) == every([0], {0: 4}, 7)  # not committed, not saved
    api.consume_all(replay)
    api.call("POST", f"/api/consumers/{replay}/seek", json={"position": "beginning"})  # saved

    first.kill()
    second = server_factory(first.data_dir, **lazy)
    api = Api(second)
    assert api.consume_all(cid) == every([0], {0: 4}, 10)  # 4..6 again, nothing lost
    assert api.consume_all(replay) == every([0], {}, 10)


def test_the_python_client_goes_on_through_a_restart(server_factory):
    first = server_factory()
    with Client(first.base_url) as client:
        client.create_topic("orders")
        client.produce("orders", [f"v{i}" for i in range(6)])
        consumer = client.consumer("billing", "orders", auto_offset_reset="earliest",
                                   value_format="text", commit_each_batch=True)
        with consumer:
            cid = consumer.consumer_id
            assert [r.value for r in consumer.poll(timeout_ms=0, max_records=3)] == [
                "v0", "v1", "v2"]
            assert first.stop(signal.SIGTERM) == 0, first.describe()
            polled: list = []
            poll = threading.Thread(target=lambda: polled.extend(
                consumer.poll(timeout_ms=10_000, max_records=10)), daemon=True)
            poll.start()  # meets a closed port, then the new server starting
            server_factory(first.data_dir, port=first.port)
            poll.join(40)
            assert not poll.is_alive()
            assert [r.value for r in polled] == ["v3", "v4", "v5"]
            assert consumer.consumer_id == cid
            assert consumer.committed() == {TopicPartition("orders", 0): 3}


def test_the_command_line_consumer_goes_on_through_a_restart(server_factory, tmp_path):
    first = server_factory()
    api = Api(first)
    api.call("POST", "/api/topics", 201, json={"name": "orders", "partitions": 1})
    api.produce("orders", 0, ["a", "b", "c"])
    script = Path(sys.executable).with_name("consumer-api")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "consumer_api.cli"]
    cli = subprocess.Popen(
        [*command, "--url", first.base_url, "consume", "orders", "--group", "billing",
         "--from-beginning", "--max", "6"], env=server_env("unused", CONSUMER_API_DATA_DIR=None),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in cli.stdout], daemon=True).start()
    try:
        printed = [lines.get(timeout=15) for _ in range(3)]
        assert first.stop(signal.SIGTERM) == 0, first.describe()
        second = server_factory(first.data_dir, port=first.port)
        Api(second).produce("orders", 0, ["d", "e", "f"])
        assert cli.wait(timeout=40) == 0, cli.stderr.read()
    finally:
        if cli.poll() is None:
            cli.kill()
    while not lines.empty():
        printed.append(lines.get())
    assert [line.rstrip("\n") for line in printed] == [
        f"orders[0]@{o}\t{v}" for o, v in enumerate("abcdef")]
    group = Api(second).call("GET", "/api/consumer-groups/billing")
    assert [r["committed_offset"] for r in group["offsets"]] == [6]


def test_a_kafka_node_restores_its_own_sessions(server_factory, kafka_broker, tmp_path):
    env = {"CONSUMER_API_BACKEND": "kafka",
           "CONSUMER_API_KAFKA_BOOTSTRAP_SERVERS": kafka_broker.bootstrap,
           "CONSUMER_API_NODE_ID": "node-1",
           "CONSUMER_API_SESSIONS_DIR": str(tmp_path / "sessions")}
    first = server_factory(**env)
    api = Api(first)
    api.call("POST", "/api/topics", 201, json={"name": "restarts", "partitions": 2})
    try:
        for p in (0, 1):
            api.produce("restarts", p, [f"p{p}-{o}" for o in range(5)])
        cid = api.subscribe("restarts-g", "restarts")
        delivered = []
        while len(delivered) < 6:
            delivered += api.consume(cid, timeout_ms=2000, max_records=6 - len(delivered))
        api.call("POST", f"/api/consumers/{cid}/commit", json={})
        while len(delivered) < 8:
            delivered += api.consume(cid, timeout_ms=2000, max_records=8 - len(delivered))
        before = api.call("GET", f"/api/consumers/{cid}/position")

        assert first.stop(signal.SIGTERM) == 0, first.describe()
        second = server_factory(first.data_dir, **env)
        api = Api(second)
        assert (tmp_path / "sessions" / "sessions.node-1.jsonl").exists()
        assert api.call("GET", f"/api/consumers/{cid}/position") == before
        rest = api.consume_all(cid, timeout_ms=1000)
        assert sorted(delivered + rest) == every((0, 1), {}, 5)
        api.call("DELETE", f"/api/consumers/{cid}")
    finally:
        requests.delete(api.srv.url("/api/consumer-groups/restarts-g"), timeout=TIMEOUT)
        requests.delete(api.srv.url("/api/topics/restarts"), timeout=TIMEOUT)
