"""SIGTERM on the real server (``gunicorn -c gunicorn.conf.py``): waiting long-polls are
answered at once, empty; the master exits 0 within seconds; nothing is committed on the
clients' behalf; the active segments are trimmed to their records; the access lines are in
the server's output, as ``key=value`` text or as JSON objects (``CONSUMER_API_LOG_FORMAT``).

Expectations come from the contract (API.md) and the documented log formats; the only waits
are bounded polls of server state (readiness, ``consumer_api_waiting_polls``).
"""
from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.waiting import wait_until

TOPIC = "orders"
PARTITIONS = 3
PER_PARTITION = 2
GROUP = "drain"
CONSUME_ROUTE = "/api/consumers/<consumer_id>/consume"
POLL_TIMEOUT_MS = 60_000
PROMPT_S = 5.0
HTTP_TIMEOUT = (2.0, 90.0)


class Api:
    """JSON calls with status checks; remembers every consume it sent, per consumer."""

    def __init__(self, base_url: str):
        self.base_url = base_url
        self.http = requests.Session()
        self.consumes: dict[str, int] = {}
        self.request_ids: list[tuple[str, str, int, str]] = []  # method, route, status, id

    def close(self):
        self.http.close()  # a kept-alive connection would make gthread linger at stop

    def call(self, method, path, status=200, route=None, **kwargs):
        kwargs.setdefault("timeout", HTTP_TIMEOUT)
        resp = self.http.request(method, self.base_url + path, **kwargs)
        assert resp.status_code == status, f"{method} {path}: {resp.status_code} {resp.text}"
        self.request_ids.append((method, route or path, status, resp.headers["X-Request-ID"]))
        return resp.json()

    def consume(self, cid, **body):
        body.setdefault("timeout_ms", 0)
        self.consumes[cid] = self.consumes.get(cid, 0) + 1
        return self.call("POST", f"/api/consumers/{cid}/consume", route=CONSUME_ROUTE,
                         json=body)["records"]

    def consume_all(self, cid):
        got = []
        while batch := self.consume(cid):
            got.extend(batch)
        return got


class BackgroundConsume(threading.Thread):
    """One long-poll on its own connection; times its return. With ``keep_alive`` the
    connection stays open afterwards (as a client's pooled session would leave it) until
    :meth:`close`; else the request says "Connection: close"."""

    def __init__(self, base_url, cid, timeout_ms, keep_alive=False):
        super().__init__(daemon=True)
        self.url = f"{base_url}/api/consumers/{cid}/consume"
        self.body = {"timeout_ms": timeout_ms}
        self.http = requests.Session()
        self.headers = {} if keep_alive else {"Connection": "close"}
        self.returned_at = None
        self.response = self.error = None

    def close(self):
        self.http.close()

    def run(self):
        try:
            self.response = self.http.post(self.url, json=self.body, timeout=HTTP_TIMEOUT,
                                           headers=self.headers)
        except Exception as exc:  # reported by the test
            self.error = exc
        finally:
            self.returned_at = time.monotonic()


def gauge(base_url: str, name: str) -> float | None:
    resp = requests.get(base_url + "/metrics", timeout=5, headers={"Connection": "close"})
    assert resp.status_code == 200, resp.text
    for family in text_string_to_metric_families(resp.text):
        for sample in family.samples:
            if sample.name == name and not sample.labels:
                return sample.value
    return None


def log_files(data_dir: str, topic: str, partition: int) -> list[Path]:
    return sorted((Path(data_dir) / "topics" / topic / str(partition)).glob("*.log"))


def committed_offsets(api: Api, group: str) -> dict:
    """``{(topic, partition): committed_offset}`` of a group (None: never committed);
    ``{}`` for a group the server does not know (no member, no commit)."""
    resp = api.http.get(f"{api.base_url}/api/consumer-groups/{group}", timeout=HTTP_TIMEOUT)
    if resp.status_code == 404:
        assert resp.json()["code"] == "group_not_found", resp.text
        return {}
    assert resp.status_code == 200, resp.text
    return {(r["topic"], r["partition"]): r["committed_offset"] for r in resp.json()["offsets"]}


def plain_access_lines(output: str) -> list[dict]:
    """The ``key=value`` fields of every plain access line of the server output."""
    out = []
    for line in output.splitlines():
        if "consumer_api.access" in line and "route=" in line:
            fields = {}
            for token in line.split():
                key, sep, value = token.partition("=")
                if sep and key.isidentifier():
                    fields[key] = value
            out.append(fields)
    return out


# -- SIGTERM with waiting long-polls --------------------------------------------------------

def test_sigterm_answers_waiting_polls_at_once_commits_nothing_and_exits_cleanly(
        server_factory):
    srv = server_factory()
    api = Api(srv.base_url)
    api.call("POST", "/api/topics", 201, json={"name": TOPIC, "partitions": PARTITIONS})
    for p in range(PARTITIONS):
        api.call("POST", f"/api/topics/{TOPIC}/records", json={
            "encoding": "text",
            "records": [{"value": f"p{p}-{o}", "partition": p} for o in range(PER_PARTITION)]})

    # three members, one partition each
    cids = [api.call("POST", "/api/consumers/subscribe", json={
        "group_id": GROUP, "topics": [TOPIC], "auto_offset_reset": "earliest"})["consumer_id"]
        for _ in range(PARTITIONS)]
    owner = {}
    for cid in cids:
        assignment = api.call("GET", f"/api/consumers/{cid}/assignment")["assignment"]
        assert len(assignment[TOPIC]) == 1, assignment
        owner[assignment[TOPIC][0]] = cid
    assert sorted(owner) == list(range(PARTITIONS))
    # every member reads its partition to the end; only partition 0's commits (part of it)
    for p, cid in owner.items():
        assert len(api.consume_all(cid)) == PER_PARTITION
    api.call("POST", f"/api/consumers/{owner[0]}/commit",
             json={"offsets": {TOPIC: {"0": 1}}})
    # an auto-commit session in another group that read everything, and is idle:
    # its positions are pending (a next consume would commit them) -- there is none
    auto = api.call("POST", "/api/consumers/subscribe", json={
        "group_id": "auto", "topics": [TOPIC], "auto_offset_reset": "earliest",
        "auto_commit": True})["consumer_id"]
    assert len(api.consume(auto, max_records=100)) == PARTITIONS * PER_PARTITION  # one pass
    assert committed_offsets(api, "auto") in ({}, {(TOPIC, p): None for p in range(PARTITIONS)})
    sizes = {d["partition"]: d["size_bytes"]
             for d in api.call("GET", f"/api/topics/{TOPIC}")["partitions"]}
    assert all(s > 0 for s in sizes.values()), sizes
    active = log_files(srv.data_dir, TOPIC, 0)[-1]
    assert active.stat().st_size > sizes[0], "the active segment is preallocated while running"
    api.close()

    # two polls on "Connection: close", one on a kept-alive connection
    polls = [BackgroundConsume(srv.base_url, cid, POLL_TIMEOUT_MS, keep_alive=(i == 2))
             for i, cid in enumerate(cids)]
    for poll in polls:
        poll.start()
    wait_until(lambda: gauge(srv.base_url, "consumer_api_waiting_polls") == PARTITIONS,
               "the three polls wait")
    assert all(poll.is_alive() for poll in polls), "a poll returned without records"

    sent = time.monotonic()
    srv.proc.send_signal(signal.SIGTERM)
    for poll in polls:
        poll.join(PROMPT_S + 1)
    for cid, poll in zip(cids, polls):
        assert not poll.is_alive(), f"the poll of {cid} was not answered\n{srv.describe()}"
        assert poll.error is None, f"{poll.error!r}\n{srv.describe()}"
        took = poll.returned_at - sent
        assert took < PROMPT_S, f"the poll returned {took:.1f} s after SIGTERM"
        assert poll.response.status_code == 200, poll.response.text
        assert poll.response.json()["records"] == [], poll.response.text
    answered = max(poll.returned_at for poll in polls) - sent
    try:
        rc = srv.wait_exit(timeout=15)
    finally:
        for poll in polls:
            poll.close()
    took = time.monotonic() - sent
    print(f"\nSIGTERM: polls answered within {answered * 1000:.0f} ms, master exited "
          f"after {took * 1000:.0f} ms")
    assert rc == 0, srv.describe()
    assert took < 6, f"the master took {took:.1f} s to exit\n{srv.describe()}"
    output = srv.output()
    assert "Traceback" not in output, srv.describe()

    # the access lines: one per request, the drained polls included
    lines = plain_access_lines(output)
    assert lines, srv.describe()
    for cid in cids + [auto]:
        mine = [f for f in lines if f.get("consumer_id") == cid and f.get("route") == CONSUME_ROUTE]
        expected = api.consumes[cid] + (1 if cid in cids else 0)
        assert len(mine) == expected, (cid, mine)
        assert all(f.get("status") == "200" and f.get("method") == "POST" for f in mine), mine
        assert all("duration_ms" in f and f.get("request_id") for f in mine), mine
    for method, route, status, request_id in api.request_ids:
        logged = [f for f in lines if f.get("request_id") == request_id]
        assert len(logged) == 1, (method, route, request_id, logged)
        assert (logged[0]["method"], logged[0]["status"]) == (method, str(status)), logged

    # the active segments hold exactly their records' batches (and each its 8-byte file
    # header: storage/batches.py)
    for p, size in sizes.items():
        files = log_files(srv.data_dir, TOPIC, p)
        assert sum(f.stat().st_size - 8 for f in files) == size, \
            (p, size, [(f.name, f.stat().st_size) for f in files])

    # nothing was committed for the clients: only what partition 0's member committed
    again = server_factory(srv.data_dir)
    api = Api(again.base_url)
    try:
        assert committed_offsets(api, GROUP) == {(TOPIC, 0): 1, (TOPIC, 1): None,
                                                 (TOPIC, 2): None}
        assert committed_offsets(api, "auto") in (
            {}, {(TOPIC, p): None for p in range(PARTITIONS)})
        described = api.call("GET", f"/api/topics/{TOPIC}")["partitions"]
        assert {d["partition"]: (d["high_watermark"], d["size_bytes"]) for d in described} == {
            p: (PER_PARTITION, sizes[p]) for p in range(PARTITIONS)}
    finally:
        api.close()


# -- JSON logs ------------------------------------------------------------------------------

def test_json_log_format_writes_access_lines_as_json_objects(server_factory):
    srv = server_factory(CONSUMER_API_LOG_FORMAT="json")
    api = Api(srv.base_url)
    api.call("POST", "/api/topics", 201, route="/api/topics",
             json={"name": "t", "partitions": 1})
    api.call("GET", "/api/topics/missing", 404, route="/api/topics/<topic>")
    cid = api.call("POST", "/api/consumers/subscribe", route="/api/consumers/subscribe",
                   json={"group_id": "g", "topics": ["t"]})["consumer_id"]
    api.consume(cid)
    api.call("POST", "/api/consumers/nobody/consume", 404, route=CONSUME_ROUTE,
             json={"timeout_ms": 0})
    api.close()
    assert srv.stop(signal.SIGTERM) == 0, srv.describe()

    output = srv.output()
    objects = []
    for line in output.splitlines():
        if line.startswith("{"):
            try:
                objects.append(json.loads(line))
            except ValueError:
                raise AssertionError(f"not one JSON object per line: {line!r}") from None
    access = [o for o in objects if o.get("logger") == "consumer_api.access"
              and o.get("route") != "/api/health/ready"]  # the harness's readiness probes
    assert len(access) == len(api.request_ids), (access, srv.describe())
    for method, route, status, request_id in api.request_ids:
        found = [o for o in access if o.get("request_id") == request_id]
        assert len(found) == 1, (request_id, access)
        obj = found[0]
        assert (obj["method"], obj["route"], obj["status"]) == (method, route, status), obj
        assert isinstance(obj["duration_ms"], (int, float)) and obj["duration_ms"] >= 0, obj
        assert obj["level"] == "INFO"
    consumed = [o for o in access if o["route"] == CONSUME_ROUTE and o["status"] == 200]
    assert [o.get("consumer_id") for o in consumed] == [cid]
    # nothing of ours is written as plain key=value text
    assert not plain_access_lines(output), srv.describe()
    # the other consumer_api lines are JSON too (the engine's "opened ..." line)
    assert any(o.get("logger", "").startswith("consumer_api.") and "message" in o
               for o in objects if o.get("logger") != "consumer_api.access"), srv.describe()
