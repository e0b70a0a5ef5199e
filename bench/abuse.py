#!/usr/bin/env python
"""Abuse benchmark: one careless or hostile client against the real server, while a second
client probes it.

Run from the project root::

    .venv/bin/python bench/abuse.py [--quick] [--only N,...] [--duration S] [--root DIR]
                                    [--json PATH] [--dir DIR]

Each attack gets a fresh server started as ``make run`` does (``python -m gunicorn -c
gunicorn.conf.py`` from the checkout ``--root``, default settings, a new data directory).
The attacker connects from 127.0.0.1 with 100 connections; the probe, another client,
connects from 127.0.0.2 and every 100 ms asks ``GET /api/health`` and produces one record.
Per attack: what the attacker saw, the probe's latencies and failures, the server's
refusals by reason (``consumer_api_refusals_total``), the worker's peak RSS and whether
any record the probe had acknowledged was lost. Targets: probe p99 <= 100 ms, no probe
failure, worker peak RSS <= 1 GiB, nothing lost. See bench/README.rst.
"""
from __future__ import annotations

import argparse
import base64
import collections
import contextlib
import datetime as _dt
import glob
import multiprocessing
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import requests
from requests.adapters import HTTPAdapter

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # for bench/common.py
from common import (GiB, MiB, ROOT, prepare_base_dir, progress, render_table,  # noqa: E402
                    row_dicts, run_meta, set_progress_tag, status_text, targets_line,
                    temp_workdir, write_json)

set_progress_tag("abuse")
ATTACKER, PROBER = "127.0.0.1", "127.0.0.2"
CONNECTIONS = 100
PROBE_EVERY_S = 0.1
PROBE_TIMEOUT_S = 5.0
TARGET_P99_MS = 100.0
TARGET_RSS = GiB
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
JSON_CT = {"Content-Type": "application/json"}
_servers: list["Server"] = []


# -- the server ------------------------------------------------------------------------------

class Server:
    """gunicorn from ``root`` over a fresh data directory; killed on any exit."""

    def __init__(self, root: str, workdir: str, name: str):
        self.root, self.name = root, name
        self.data_dir = os.path.join(workdir, f"data-{name}")
        self.log_path = os.path.join(workdir, f"server-{name}.log")
        self.port = 0
        self.proc = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "Server":
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONSUMER_API_")}
        env.update(CONSUMER_API_DATA_DIR=self.data_dir, PYTHONUNBUFFERED="1")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py",
                 "--bind", f"127.0.0.1:{self.port}"], cwd=self.root, env=env,
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        _servers.append(self)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {Path(self.log_path).read_text()[-2000:]}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(self.base + "/api/health/ready", timeout=1).status_code == 200:
                    return self
            time.sleep(0.05)  # readiness polling only
        raise RuntimeError("server not ready")

    def worker_status(self) -> dict:
        """VmHWM / VmRSS of the worker (the master's one child), in bytes."""
        kids = []
        for path in glob.glob(f"/proc/{self.proc.pid}/task/*/children"):
            with contextlib.suppress(OSError):
                kids += Path(path).read_text().split()
        out = {}
        with contextlib.suppress(OSError, IndexError):
            for line in Path(f"/proc/{kids[0]}/status").read_text().splitlines():
                key, _, value = line.partition(":")
                if key in ("VmHWM", "VmRSS"):
                    out[key] = int(value.split()[0]) * 1024
        return out

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)


def kill_all() -> None:
    for srv in _servers:
        if srv.proc is not None and srv.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(srv.proc.pid, signal.SIGKILL)


# -- clients ---------------------------------------------------------------------------------

class _SourceAdapter(HTTPAdapter):
    def __init__(self, source: str, **kwargs):
        self._source = source
        super().__init__(**kwargs)

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = (self._source, 0)
        super().init_poolmanager(*args, **kwargs)


def session_from(source: str) -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    s.mount("http://", _SourceAdapter(source))
    return s


def raw(port: int, source: str = ATTACKER, rcvbuf: int | None = None) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.bind((source, 0))
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    return sock


def outcome(data: bytes, closed: bool) -> str:
    """A compact name for what a connection got: ``408``, ``408 html``, ``closed``..."""
    if data.startswith(b"HTTP/1."):
        status = data[9:12].decode("latin-1")
        head, _, body = data.partition(b"\r\n\r\n")
        if status != "200" and body[:1] not in (b"", b"{"):
            status += " non-json"
        return status
    return "closed" if closed else "no answer"


def watch(socks: list, until: float, on_tick=None, tick_s: float = 1.0) -> collections.Counter:
    """Read what each socket gets until ``until`` (or until all answered or closed);
    ``on_tick(open_socks)`` every ``tick_s``. Returns outcomes counted."""
    got = {s: b"" for s in socks}
    closed: set = set()
    next_tick = time.monotonic() + tick_s
    while time.monotonic() < until:
        live = [s for s in socks if s not in closed and not got[s]]
        if not live:
            break
        readable, _, _ = select.select(live, [], [], min(0.2, max(0.0, until - time.monotonic())))
        for s in readable:
            try:
                chunk = s.recv(65536)
            except OSError:
                chunk = b""
            if chunk:
                got[s] += chunk
            else:
                closed.add(s)
        if on_tick and time.monotonic() >= next_tick:
            on_tick([s for s in socks if s not in closed and not got[s]])
            next_tick += tick_s
    return collections.Counter(outcome(got[s], s in closed) for s in socks)


def saw(counter: collections.Counter) -> str:
    return ", ".join(f"{n}x {k}" for k, n in counter.most_common())


# -- the probe -------------------------------------------------------------------------------

class Probe:
    """Another client, in a process of its own (so the attacker's threads do not share
    its interpreter lock): health and a one-record produce every PROBE_EVERY_S (and, with
    ``subscribe``, a subscribe and close), each timed; acknowledged records are kept."""

    def __init__(self, base: str, subscribe: bool = False):
        self.base, self.subscribe = base, subscribe
        self.http = session_from(PROBER)
        self.latencies: list[float] = []
        self.produce_latencies: list[float] = []
        self.failures: collections.Counter = collections.Counter()
        self.acked: list[tuple] = []
        ctx = multiprocessing.get_context("fork")
        self._halt = ctx.Event()
        self._results = ctx.Queue()
        self._proc = ctx.Process(target=self._loop, daemon=True)

    def start(self) -> None:
        self._proc.start()

    def stop(self) -> None:
        """End the probing; its figures come back from the probe's process."""
        self._halt.set()
        (self.latencies, self.produce_latencies, failures,
         self.acked) = self._results.get(timeout=PROBE_TIMEOUT_S * 6)
        self.failures = collections.Counter(failures)
        self._proc.join(PROBE_TIMEOUT_S)

    def _loop(self) -> None:
        """(The probe's process.)"""
        self.http = session_from(PROBER)
        n = 0
        while not self._halt.wait(PROBE_EVERY_S):
            n += 1
            self._call("health", "GET", "/api/health")
            value = f"probe-{n}"
            resp = self._call("produce", "POST", "/api/topics/probe/records",
                              json={"encoding": "text", "records": [{"value": value}]})
            if resp is not None:
                o = resp.json()["offsets"][0]
                self.acked.append((o["partition"], o["offset"], value))
            if self.subscribe:
                resp = self._call("subscribe", "POST", "/api/consumers/subscribe",
                                  json={"group_id": "probe", "topics": ["probe"]})
                if resp is not None:
                    self._call("close", "DELETE",
                               "/api/consumers/" + resp.json()["consumer_id"])
        self._results.put((self.latencies, self.produce_latencies, dict(self.failures),
                           self.acked))

    def _call(self, kind: str, method: str, path: str, **kw):
        t0 = time.perf_counter()
        try:
            resp = self.http.request(method, self.base + path, timeout=PROBE_TIMEOUT_S, **kw)
        except requests.RequestException:
            self.failures[kind + " timeout/error"] += 1
            return None
        elapsed = (time.perf_counter() - t0) * 1000
        if kind in ("health", "produce"):
            self.latencies.append(elapsed)
        if kind == "produce":
            self.produce_latencies.append(elapsed)
        if resp.status_code >= 300:
            self.failures[f"{kind} {resp.status_code}"] += 1
            return None
        return resp

    def lost(self) -> int:
        """Acknowledged records not found as acknowledged (read back after the attack)."""
        stored, offset = {}, 0
        while True:
            resp = self.http.get(self.base + "/api/topics/probe/partitions/0/records",
                                 params={"offset": offset, "encoding": "text",
                                         "max_records": 10000}, timeout=30)
            records = resp.json()["records"]
            if not records:
                break
            stored.update((r["offset"], r["value"]) for r in records)
            offset = records[-1]["offset"] + 1
        return sum(1 for _, off, value in self.acked if stored.get(off) != value)

    def refusals(self) -> dict | None:
        try:
            text = self.http.get(self.base + "/metrics", timeout=PROBE_TIMEOUT_S).text
        except requests.RequestException:
            return None
        found = re.findall(r'^consumer_api_refusals_total\{reason="(\w+)"\} (\S+)$', text, re.M)
        return {k: int(float(v)) for k, v in found} if "consumer_api_refusals" in text else None


# -- the attacks -----------------------------------------------------------------------------
# Each: attack(base, port, until) -> what the attacker saw (text). Set-up that must not be
# timed goes in a SETUP function of the same name run before the probe starts.

def slow_headers(srv, until):
    socks = [raw(srv.port) for _ in range(CONNECTIONS)]
    for s in socks:
        s.sendall(b"GET /api/hea")
    seen = watch(socks, until)
    _hold(until, socks)
    return saw(seen)


def slow_body(srv, until):
    record = b'{"encoding": "text", "records": [{"value": "' + b"x" * 940 + b'"}]}'
    head = (b"POST /api/topics/attack/records HTTP/1.1\r\nHost: a\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(record))
    socks = [raw(srv.port) for _ in range(CONNECTIONS)]
    sent = {s: 0 for s in socks}
    for s in socks:
        s.sendall(head)

    def trickle(open_socks):
        for s in open_socks:
            if sent[s] < len(record) - 1:
                with contextlib.suppress(OSError):
                    s.send(record[sent[s]:sent[s] + 1])
                    sent[s] += 1

    seen = watch(socks, until, trickle, tick_s=2.0)
    _hold(until, socks)
    return saw(seen)


def setup_no_read(http, base):
    value = base64.b64encode(os.urandom(2500)).decode()
    http.post(base + "/api/topics", json={"name": "big", "partitions": 1})
    body = orjson.dumps({"records": [{"value": value}] * 500})
    for _ in range(20):  # 10,000 records, ~25 MB of values
        assert http.post(base + "/api/topics/big/records", data=body,
                         headers=JSON_CT, timeout=60).status_code == 200


def no_read(srv, until):
    request = (b"GET /api/topics/big/partitions/0/records?offset=0&max_records=10000"
               b"&max_bytes_total=104857600 HTTP/1.1\r\nHost: a\r\n\r\n")
    socks = [raw(srv.port, rcvbuf=4096) for _ in range(CONNECTIONS)]
    for s in socks:
        s.sendall(request)
    _hold(until, socks, close=False)
    seen = collections.Counter()
    for s in socks:
        s.setblocking(False)
        try:
            first = s.recv(64, socket.MSG_PEEK)
            seen[outcome(first, not first)] += 1
        except BlockingIOError:
            seen["nothing yet"] += 1
        except OSError:
            seen["reset"] += 1
        s.close()
    return saw(seen)


def _consume_request(consumer: str) -> bytes:
    body = b'{"timeout_ms": 300000}'
    return (b"POST /api/consumers/%s/consume HTTP/1.1\r\nHost: a\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
            % (consumer.encode(), len(body), body))


def setup_polls(http, base):
    http.post(base + "/api/topics", json={"name": "quiet", "partitions": 1})


def _subscribe(http, base, group) -> str:
    resp = http.post(base + "/api/consumers/subscribe", timeout=30, json={
        "group_id": group, "topics": ["quiet"], "session_timeout_ms": 300000})
    return resp.json()["consumer_id"] if resp.status_code == 200 else ""


def poll_flood_many(srv, until):
    http = session_from(ATTACKER)
    consumers = [_subscribe(http, srv.base, f"flood-{i}") for i in range(CONNECTIONS)]
    socks = []
    for consumer in consumers:
        s = raw(srv.port)
        s.sendall(_consume_request(consumer))
        socks.append(s)
    seen = watch(socks, until)
    _hold(until, socks)
    return f"{sum(1 for c in consumers if c)} sessions; consumes: {saw(seen)}"


def poll_flood_one(srv, until):
    consumer = _subscribe(session_from(ATTACKER), srv.base, "flood-one")
    socks = []
    for _ in range(CONNECTIONS):
        s = raw(srv.port)
        s.sendall(_consume_request(consumer))
        socks.append(s)
    seen = watch(socks, until)
    _hold(until, socks)
    return f"consumes: {saw(seen)}"


def subscribe_flood(srv, until):
    statuses: collections.Counter = collections.Counter()
    lock = threading.Lock()
    left = iter(range(10_000))

    def worker():
        http = session_from(ATTACKER)
        while time.monotonic() < until:
            with lock:
                i = next(left, None)
            if i is None:
                return
            try:
                status = str(http.post(srv.base + "/api/consumers/subscribe", timeout=10, json={
                    "group_id": f"sub-{i % 1000}", "topics": ["quiet"],
                    "session_timeout_ms": 300000}).status_code)
            except requests.RequestException:
                status = "timeout/error"
            with lock:
                statuses[status] += 1

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(CONNECTIONS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, until - time.monotonic()) + 15)
    _hold(until, [])
    return "subscribes: " + saw(statuses)


def setup_chunked(http, base):
    http.post(base + "/api/topics", json={"name": "chunky", "partitions": 1})


def chunked_18mib(srv, until):
    limit = 16 * MiB
    head = b'{"records": [{"value": "'
    tail = b'"}]}'
    fill = (limit - len(head) - len(tail)) // 4 * 4
    valid = head + b"A" * fill + tail
    valid += b" " * (limit - len(valid))
    body = valid + b"B" * (2 * MiB)
    request = b"POST /api/topics/chunky/records HTTP/1.1\r\nHost: a\r\n" \
              b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    step = 256 * 1024
    framed = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + step]), body[i:i + step])
                      for i in range(0, len(body), step)) + b"0\r\n\r\n"
    seen = collections.Counter()
    while time.monotonic() < until:
        s = raw(srv.port)
        try:
            s.sendall(request + framed)
            seen[outcome(_read_some(s), False)] += 1
        except OSError:
            seen["reset"] += 1
        s.close()
        time.sleep(2.0)  # the attack's own pace
    hw = requests.get(srv.base + "/api/topics/chunky", timeout=30).json()
    stored = hw["partitions"][0]["high_watermark"]
    return f"{saw(seen)}; records stored: {stored}"


BAD_CHUNK = (b"POST /api/topics/chunky/records HTTP/1.1\r\nHost: a\r\n"
             b"Transfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\nzz\r\n{}\r\n")


def bad_chunk(srv, until):
    return _repeat(srv, until, {"bad chunk size": BAD_CHUNK})


PROTOCOL_ERRORS = {
    "lowercase method": b"get /api/health HTTP/1.1\r\nHost: a\r\n\r\n",
    "10 KB URL": b"GET /api/health?" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: a\r\n\r\n",
    "10,000 headers": b"GET /api/health HTTP/1.1\r\n"
                      + b"".join(b"X-H%d: v\r\n" % i for i in range(10_000)) + b"\r\n",
    "CL+TE": b"POST /api/topics HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
             b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
}


def protocol_errors(srv, until):
    return _repeat(srv, until, PROTOCOL_ERRORS)


def _repeat(srv, until, requests_: dict) -> str:
    seen = collections.Counter()
    while time.monotonic() < until:
        for name, data in requests_.items():
            s = raw(srv.port)
            try:
                s.sendall(data)
                seen[f"{name}: {outcome(_read_some(s), False)}"] += 1
            except OSError:
                seen[f"{name}: reset"] += 1
            s.close()
        time.sleep(0.5)  # the attack's own pace
    return "; ".join(sorted(f"{k} x{n}" for k, n in seen.items()))


def _read_some(s: socket.socket) -> bytes:
    """The response head and the start of the body (a JSON body starts with ``{``)."""
    data = b""
    with contextlib.suppress(OSError):
        while b"\r\n\r\n" not in data or data.endswith(b"\r\n\r\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return data


def _hold(until: float, socks: list, close: bool = True) -> None:
    """Keep the attack's connections open until ``until``."""
    remaining = until - time.monotonic()
    if remaining > 0:
        time.sleep(remaining)  # the attack's duration: the connections stay open
    if close:
        for s in socks:
            s.close()


@dataclass
class Attack:
    number: int
    name: str
    run: object
    setup: object = None
    subscribe_probe: bool = False


ATTACKS = [
    Attack(1, "slow headers: 100 x half a request line", slow_headers),
    Attack(2, "slow body: 100 produces, 1 byte / 2 s", slow_body),
    Attack(3, "no-read: 100 x ~25 MB reads never read", no_read, setup_no_read),
    Attack(4, "poll flood: 100 sessions x 1 long-poll", poll_flood_many, setup_polls),
    Attack(5, "poll flood: 100 long-polls on 1 session", poll_flood_one, setup_polls),
    Attack(6, "subscribe flood: 10,000 x 300 s sessions", subscribe_flood, setup_polls, True),
    Attack(7, "chunked 18 MiB produce (16 MiB valid)", chunked_18mib, setup_chunked),
    Attack(8, "bad chunk size", bad_chunk, setup_chunked),
    Attack(9, "protocol errors (4 kinds)", protocol_errors),
]


# -- running ---------------------------------------------------------------------------------

@dataclass
class Row:
    number: int
    attack: str
    attacker_saw: str = ""
    p50_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None
    probes: int = 0
    failures: dict = field(default_factory=dict)
    refusals: dict | None = None
    peak_rss: int | None = None
    end_rss: int | None = None
    lost: int | None = None
    produce_p99_ms: float | None = None
    error: str | None = None

    @property
    def passed(self) -> bool | None:
        if self.error or self.p99_ms is None:
            return None if self.error else False
        return (self.p99_ms <= TARGET_P99_MS and not self.failures and self.lost == 0
                and (self.peak_rss or 0) <= TARGET_RSS)

    @property
    def status(self) -> str:
        return status_text(self.passed, self.error)


def percentile(values: list, q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    k = (len(values) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def run_attack(attack: Attack, root: str, workdir: str, duration: float) -> Row:
    row = Row(attack.number, attack.name)
    srv = Server(root, workdir, f"attack-{attack.number}").start()
    try:
        http = session_from(PROBER)
        http.post(srv.base + "/api/topics", json={"name": "probe", "partitions": 1})
        http.post(srv.base + "/api/topics", json={"name": "attack", "partitions": 1})
        if attack.setup is not None:
            attack.setup(http, srv.base)
        probe = Probe(srv.base, attack.subscribe_probe)
        before = probe.refusals()
        probe.start()
        progress(f"attack {attack.number}: {attack.name} ({duration:.0f} s)")
        try:
            row.attacker_saw = attack.run(srv, time.monotonic() + duration)
        finally:
            probe.stop()
        after = probe.refusals()
        if after is not None:
            row.refusals = {k: v - (before or {}).get(k, 0) for k, v in after.items()
                            if v - (before or {}).get(k, 0)}
        row.lost = probe.lost()
        status = srv.worker_status()
        row.peak_rss, row.end_rss = status.get("VmHWM"), status.get("VmRSS")
        row.probes = len(probe.latencies)
        row.p50_ms = percentile(probe.latencies, 0.50)
        row.p99_ms = percentile(probe.latencies, 0.99)
        row.max_ms = max(probe.latencies, default=None)
        row.produce_p99_ms = percentile(probe.produce_latencies, 0.99)
        row.failures = dict(probe.failures)
    finally:
        srv.stop()
    return row


def fmt_ms(v) -> str:
    return "-" if v is None else f"{v:,.1f}"


def fmt_mib(v) -> str:
    return "-" if v is None else f"{v / MiB:,.0f} MiB"


def render(rows: list, header: list) -> str:
    def fails(r):
        return ", ".join(f"{n} {k}" for k, n in r.failures.items()) or "0"

    def refused(i, r):
        if r.refusals is None:
            return "-"
        return ", ".join(f"{k} {v}" for k, v in sorted(r.refusals.items())) or "none"

    cols = [("#", lambda i, r: str(r.number), True),
            ("attack", lambda i, r: r.attack, False),
            ("attacker saw", lambda i, r: r.attacker_saw[:90], False),
            ("probe p50/p99/max ms", lambda i, r:
             f"{fmt_ms(r.p50_ms)} / {fmt_ms(r.p99_ms)} / {fmt_ms(r.max_ms)}", True),
            ("probe failures", lambda i, r: fails(r), False),
            ("refusals", refused, False),
            ("worker peak RSS", lambda i, r: fmt_mib(r.peak_rss), True),
            ("lost", lambda i, r: "-" if r.lost is None else str(r.lost), True),
            ("status", lambda i, r: r.status, False)]
    return render_table(rows, header, cols)


def _commit(root: str) -> str:
    try:
        out = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="8 s per attack instead of 35 s")
    parser.add_argument("--only", help="attack numbers, e.g. 1,3")
    parser.add_argument("--duration", type=float, help="seconds per attack")
    parser.add_argument("--root", default=str(ROOT), help="the checkout whose server to run")
    parser.add_argument("--json", help="where to write the rows (default bench/results/)")
    parser.add_argument("--dir", help="where the temporary data goes")
    args = parser.parse_args()
    duration = args.duration or (8.0 if args.quick else 35.0)
    chosen = {int(x) for x in args.only.split(",")} if args.only else None
    started = _dt.datetime.now()
    prepared = prepare_base_dir(args.dir, 512 * MiB)
    if prepared is None:
        return 2
    base, fst, _warnings = prepared
    rows = []
    with temp_workdir(base, "abuse-bench-", release=kill_all) as workdir:
        for attack in ATTACKS:
            if chosen and attack.number not in chosen:
                continue
            try:
                rows.append(run_attack(attack, args.root, workdir, duration))
            except Exception as exc:  # every row runs
                traceback.print_exc()
                rows.append(Row(attack.number, attack.name, error=repr(exc)))
    header = [f"consumer_api abuse benchmark -- {started:%Y-%m-%dT%H:%M:%S} -- server from "
              f"{args.root} (commit {_commit(args.root)})",
              f"{duration:.0f} s per attack, attacker {ATTACKER} x {CONNECTIONS} connections, "
              f"probe {PROBER}: health + 1-record produce every {PROBE_EVERY_S * 1000:.0f} ms "
              f"(timeout {PROBE_TIMEOUT_S:.0f} s); targets: probe p99 <= {TARGET_P99_MS:.0f} ms, "
              "no probe failure, worker peak RSS <= 1 GiB, nothing lost"]
    print(render(rows, header))
    judged = [r for r in rows if r.passed is not None]
    print(targets_line(judged, [f"#{r.number}" for r in judged if not r.passed]))
    write_json(args.json, "abuse", started, {
        "meta": run_meta(started, args.quick, base, fst, root=args.root, duration_s=duration),
        "rows": row_dicts(rows)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
