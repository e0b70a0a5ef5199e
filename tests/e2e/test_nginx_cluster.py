"""Two API nodes over one real Kafka broker behind the real nginx, configured by
``deploy/nginx-cluster.conf`` itself (only ports and paths substituted).

Consumers subscribed through nginx land on both nodes and split one group's partitions;
records produced through nginx reach them, each session's requests going to its own node;
killing one node makes its consumers' requests ``404 consumer_not_found`` in the envelope,
while the survivor takes over the dead node's partition from the committed offset: nothing
committed is lost and every record is delivered."""
from __future__ import annotations

import base64
import contextlib
import json
import re
from pathlib import Path

import pytest
import requests

from tests.e2e.conftest import REPO_ROOT, free_port, start_server
from tests.e2e.test_nginx import Nginx, ensure_nginx
from tests.waiting import wait_until

CLUSTER_CONF = REPO_ROOT / "deploy" / "nginx-cluster.conf"
TIMEOUT = (2.0, 30.0)
#: Kafka's session timeout for the nodes' consumers: how soon a dead node's members go
KAFKA_CLIENTS = json.dumps({"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000})


def render(text: str, listen: int, nodes: dict, prefix: Path) -> str:
    """The cluster config with its listen port, node addresses and machine paths set."""
    temp = "".join(f"    {kind}_temp_path {prefix}/{kind}_temp;\n"
                   for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    first, second = nodes.values()
    subs = [(r"(?m)^(\s*)listen\s+80;", rf"\g<1>listen 127.0.0.1:{listen};", 1),
            (r"127\.0\.0\.1:8081;", f"127.0.0.1:{first};", 2),
            (r"127\.0\.0\.1:8082;", f"127.0.0.1:{second};", 2),
            (r"(?m)^pid\s+[^;]+;", f"pid {prefix}/nginx.pid;", 1),
            (r"(?m)^error_log\s+[^\s;]+", f"error_log {prefix}/error.log", 1),
            (r"(?m)^(\s*)access_log\s+[^\s;]+", rf"\g<1>access_log {prefix}/access.log", 1),
            (r"(?m)^http \{\n", "http {\n" + temp, 1),
            (r"(?m)^user\s+www-data;.*$", "", 1)]
    for pattern, replacement, count in subs:
        text, n = re.subn(pattern, replacement, text)
        assert n == count, f"{CLUSTER_CONF.name}: {pattern!r} matched {n} times, not {count}"
    return text


@contextlib.contextmanager
def cluster_nginx(prefix: Path, nodes: dict):
    prefix.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = prefix / "nginx.conf"
    conf.write_text(render(CLUSTER_CONF.read_text(), port, nodes, prefix))
    nginx = Nginx(ensure_nginx(), conf, prefix, port)
    nginx.check()
    try:
        yield nginx.start()
    finally:
        nginx.kill()


def call(nginx, method, path, status=200, **kwargs):
    resp = requests.request(method, nginx.url(path), timeout=TIMEOUT, **kwargs)
    assert resp.status_code == status, (method, path, resp.status_code, resp.text[:300],
                                        nginx.describe())
    return resp.json()


def produce(nginx, partition: int, values: list) -> None:
    call(nginx, "POST", "/api/topics/orders/records", json={"records": [
        {"value": base64.b64encode(v).decode(), "partition": partition} for v in values]})


def consume(nginx, cid: str) -> list:
    body = call(nginx, "POST", f"/api/consumers/{cid}/consume", json={"timeout_ms": 500})
    return [(r["partition"], r["offset"]) for r in body["records"]]


def owned(nginx, cid: str) -> list:
    return call(nginx, "GET", f"/api/consumers/{cid}/assignment")["assignment"].get("orders", [])


def test_two_nodes_split_a_group_and_the_survivor_takes_over(tmp_path, kafka_broker):
    env = {"CONSUMER_API_BACKEND": "kafka", "CONSUMER_API_KAFKA_CONFIG": KAFKA_CLIENTS,
           "CONSUMER_API_KAFKA_BOOTSTRAP_SERVERS": kafka_broker.bootstrap}
    with start_server(tmp_path / "n1", CONSUMER_API_NODE_ID="n1", **env) as n1, \
            start_server(tmp_path / "n2", CONSUMER_API_NODE_ID="n2", **env) as n2, \
            cluster_nginx(tmp_path / "nginx", {"n1": n1.port, "n2": n2.port}) as nginx:
        try:
            call(nginx, "POST", "/api/topics", 201, json={"name": "orders", "partitions": 2})
            sessions: dict = {}
            for _ in range(8):  # nginx spreads subscribes over the nodes
                sub = call(nginx, "POST", "/api/consumers/subscribe", json={
                    "group_id": "g", "topics": ["orders"], "auto_offset_reset": "earliest"})
                node = sub["consumer_id"].split(".")[0]
                if node in sessions:
                    call(nginx, "DELETE", f"/api/consumers/{sub['consumer_id']}")
                else:
                    sessions[node] = sub["consumer_id"]
                if len(sessions) == 2:
                    break
            assert sorted(sessions) == ["n1", "n2"]
            a, b = sessions["n1"], sessions["n2"]
            wait_until(lambda: len(owned(nginx, a)) == 1 and len(owned(nginx, b)) == 1,
                       "the two sessions split the partitions", timeout=30, every=0.2)
            [pa], [pb] = owned(nginx, a), owned(nginx, b)
            assert {pa, pb} == {0, 1}
            for p in (0, 1):
                produce(nginx, p, [b"r%d-%d" % (p, i) for i in range(10)])
            for cid, p in ((a, pa), (b, pb)):
                got: list = []
                wait_until(lambda cid=cid: got.extend(consume(nginx, cid)) or len(got) >= 10,
                           f"{cid} read its partition", timeout=30)
                assert got == [(p, i) for i in range(10)]
                call(nginx, "POST", f"/api/consumers/{cid}/commit")

            n1.kill()  # the node holding a's session dies
            gone = requests.get(nginx.url(f"/api/consumers/{a}/position"), timeout=TIMEOUT)
            assert gone.status_code == 404, (gone.text, nginx.describe())
            assert gone.json()["code"] == "consumer_not_found"
            produce(nginx, pa, [b"after-%d" % i for i in range(5)])
            wait_until(lambda: sorted(owned(nginx, b)) == [0, 1],
                       "the survivor took the dead node's partition", timeout=60, every=0.5)
            got = []
            wait_until(lambda: got.extend(consume(nginx, b)) or len(got) >= 5,
                       "the survivor read on from the commit", timeout=30)
            assert got == [(pa, 10 + i) for i in range(5)]  # nothing lost, nothing again
        finally:
            with contextlib.suppress(requests.RequestException):
                for cid in list(locals().get("sessions", {}).values()):
                    requests.delete(nginx.url(f"/api/consumers/{cid}"), timeout=TIMEOUT)
                requests.delete(nginx.url("/api/consumer-groups/g"), timeout=TIMEOUT)
                requests.delete(nginx.url("/api/topics/orders"), timeout=TIMEOUT)


@pytest.fixture(autouse=True)
def _nginx_present():
    ensure_nginx()  # skips, saying why, where nginx is missing
