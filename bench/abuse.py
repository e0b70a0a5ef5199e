#!/usr/bin/env python
"""Abuse benchmark: one careless or hostile client against the real server, while a second
client probes it (issue 11: one such client must not take the server down).

Run from the project root::

    .venv/bin/python bench/abuse.py [--quick] [--only N,...] [--duration S] [--root DIR]
                                    [--json PATH] [--dir DIR]

Each attack gets a fresh server started as ``make run`` does (``python -m gunicorn -c
gunicorn.conf.py --bind 127.0.0.1:<port>`` with the checkout ``--root`` as working
directory, default settings, a new data directory). The attacker connects from 127.0.0.1
with 100 connections; the probe, another client in a process of its own, connects from
127.0.0.2 and every 100 ms asks ``GET /api/health`` and produces one record. Attacks:

1. slow headers; 2. slow body; 3. no-read (100 x 25 MB reads never read); 4. poll flood,
100 sessions; 5. poll flood, one session; 6. subscribe flood (10,000 sessions); 7. chunked
18 MiB produce whose first 16 MiB are valid; 8. bad chunk size; 9. protocol errors.

Per attack: what the attacker saw, the probe's latencies and failures, the server's
refusals by reason (``consumer_api_refusals_total``; ``-`` when the server has none), the
worker's peak RSS and whether any record the probe had acknowledged was lost. Targets:
probe p99 <= 100 ms, no probe failure, worker peak RSS <= 1 GiB, nothing lost (and for
7-9 the refusal the attacker must get). The table goes to stdout, progress to stderr, the
rows as JSON to bench/results/abuse-<timestamp>.json (or --json PATH). Servers, the probe
and the data are removed on any exit. See bench/README.rst.
"""
from __future__ import annotations

import argparse
import base64
import collections
import contextlib
import datetime as _dt
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

import orjson
import requests
from requests.adapters import HTTPAdapter

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # for bench/common.py
from common import (GiB, MiB, ROOT, add_output_args, finish, loadavg,  # noqa: E402
                    parse_only, percentile, prepare_base_dir, progress, render_table,
                    run_meta, set_progress_tag, status_text, temp_workdir)
from server_process import BenchError, Server, kill_servers  # noqa: E402

set_progress_tag("abuse")
monotonic = time.monotonic
_T0 = monotonic()


def say(msg: str) -> None:
    """A progress line with the seconds since the start."""
    progress(f"{monotonic() - _T0:6.1f} s  {msg}")

ATTACKER, PROBER = "127.0.0.1", "127.0.0.2"
CONNECTIONS = 100
FULL_S, QUICK_S = 30.0, 8.0          # seconds per attack
PROBE_EVERY_S = 0.1
PROBE_TIMEOUT_S = 5.0
TARGET_P99_MS = 100.0
TARGET_RSS = GiB
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0                # after SIGTERM; then SIGKILL of the process group
KILL_WAIT_S = 5.0
READBACK_TIMEOUT_S = 30.0            # reading the probe topic back, scraping /metrics after
SETUP_TIMEOUT_S = 60.0
SESSION_TIMEOUT_MS = 300_000         # the maximum: no attacker session expires
SLOW_BODY_BYTES, TRICKLE_EVERY_S = 1000, 2.0
BIG_RECORDS, BIG_VALUE_BYTES, BIG_BATCH = 10_000, 2_500, 500
NO_READ_RCVBUF = 4096
SUBSCRIBES, SUBSCRIBE_GROUPS, SUBSCRIBE_TIMEOUT_S = 10_000, 1_000, 10.0
CHUNKED_VALID, CHUNKED_EXTRA, CHUNK_BYTES = 16 * MiB, 2 * MiB, 256 * 1024
CHUNKED_EVERY_S, REPEAT_EVERY_S = 2.0, 0.5
JSON_CT = {"Content-Type": "application/json"}

_probes: list["Probe"] = []              # killed on any exit, like the servers
_attack_socks: list[socket.socket] = []  # the attacker's raw connections, closed after each


def close_attack_sockets() -> None:
    while _attack_socks:
        with contextlib.suppress(OSError):
            _attack_socks.pop().close()


def kill_all() -> None:
    """The first step of the cleanup on any exit: connections, probes, servers."""
    close_attack_sockets()
    for probe in list(_probes):
        probe.kill()
    kill_servers()


# -- clients ---------------------------------------------------------------------------------

class _SourceAdapter(HTTPAdapter):
    """Connections from a given local address."""

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


def checked(resp: requests.Response, what: str) -> requests.Response:
    if not 200 <= resp.status_code < 300:
        raise BenchError(f"{what}: {resp.status_code} {resp.text[:300]!r}")
    return resp


def create_topic(http: requests.Session, srv: Server, name: str, partitions: int = 1) -> None:
    checked(http.post(srv.base + "/api/topics", json={"name": name, "partitions": partitions},
                      timeout=SETUP_TIMEOUT_S), f"creating topic {name}")


def high_watermark(http: requests.Session, srv: Server, topic: str) -> int:
    desc = checked(http.get(f"{srv.base}/api/topics/{topic}", timeout=READBACK_TIMEOUT_S),
                   f"describing topic {topic}").json()
    return sum(p["high_watermark"] for p in desc["partitions"])


def raw(port: int, rcvbuf: int | None = None) -> socket.socket:
    """A raw connection of the attacker (closed after the attack whatever happens)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    _attack_socks.append(sock)
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)  # before connect
    sock.bind((ATTACKER, 0))
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    return sock


STATUS_LINE = re.compile(rb"HTTP/\d\.\d (\d{3})")


def parse_response(data: bytes) -> tuple[str | None, bool, bytes]:
    """``(status, complete, body)`` of the first response in ``data`` (status None before a
    status line; ``complete`` once its Content-Length or last chunk is in)."""
    m = STATUS_LINE.match(data)
    if not m:
        return None, False, b""
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return m.group(1).decode(), False, b""
    length = re.search(rb"(?im)^content-length:\s*(\d+)\s*$", head)
    if length:
        n = int(length.group(1))
        return m.group(1).decode(), len(body) >= n, body[:n]
    if re.search(rb"(?im)^transfer-encoding:.*chunked", head):
        return m.group(1).decode(), body.endswith(b"0\r\n\r\n"), body
    return m.group(1).decode(), False, body  # ends with the connection


def is_envelope(body: bytes) -> bool:
    """The API's error envelope: ``{"error": ..., "code": ..., "details": ...}``."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    return isinstance(doc, dict) and {"error", "code", "details"} <= doc.keys()


def describe(data: bytes, ended: str = "") -> str:
    """What one connection got, compactly: ``408``, ``400 non-json`` (an error whose body is
    not the JSON envelope), ``closed``, ``reset``, ``no answer``. ``ended``: how the
    connection ended ("closed", "reset" or "" while it is open)."""
    status, complete, body = parse_response(data)
    if status is None:
        return "garbage" if data else (ended or "no answer")
    if status.startswith("2") or not (complete or ended):
        return status  # a success, or an error whose body is not all in
    return status if is_envelope(body) else status + " non-json"


def counted(counter: collections.Counter) -> str:
    return ", ".join(f"{n}x {k}" for k, n in counter.most_common()) or "nothing"


def watch(socks: list, until: float, on_tick=None, tick_s: float = 1.0) -> collections.Counter:
    """Read what each connection gets until ``until`` (or every one has a whole response or
    has ended); ``on_tick(still waiting)`` every ``tick_s``. Returns :func:`describe` counted."""
    got = {s: b"" for s in socks}
    ended: dict = {}
    next_tick = monotonic() + tick_s
    while monotonic() < until:
        waiting = [s for s in socks if s not in ended and not parse_response(got[s])[1]]
        if not waiting:
            break
        readable, _, _ = select.select(waiting, [], [], max(0.0, min(0.2, until - monotonic())))
        for s in readable:
            try:
                chunk = s.recv(65536)
            except OSError:
                ended[s] = "reset"
                continue
            if chunk:
                got[s] += chunk
            else:
                ended[s] = "closed"
        if on_tick and monotonic() >= next_tick:
            on_tick([s for s in waiting if s not in ended and not got[s]])
            next_tick += tick_s
    return collections.Counter(describe(got[s], ended.get(s, "")) for s in socks)


def exchange(port: int, request: bytes, until: float) -> str:
    """Send ``request`` on a new connection while reading, so that an answer the server
    gives before taking it all (a 413, a 431) is seen; :func:`describe` what came. Bounded
    by ``until`` (at least 2 s)."""
    sock = raw(port)
    sock.setblocking(False)
    deadline = max(until, monotonic() + 2.0)
    view, sent, data, ended = memoryview(request), 0, b"", ""
    try:
        while monotonic() < deadline:
            want_write = [sock] if sent < len(request) else []
            readable, writable, _ = select.select([sock], want_write, [], 0.2)
            if readable:
                try:
                    chunk = sock.recv(65536)
                except OSError:
                    ended = "reset"
                    break
                if not chunk:
                    ended = "closed"
                    break
                data += chunk
                if parse_response(data)[1]:
                    break
            if writable:
                try:
                    sent += sock.send(view[sent:sent + (1 << 18)])
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError:  # the server stopped reading and reset: read what it said
                    sent = len(request)
    finally:
        sock.close()
        with contextlib.suppress(ValueError):
            _attack_socks.remove(sock)
    return describe(data, ended)


def within(seconds: float, fn, *args):
    """``fn(*args)`` bounded in wall-clock time (a requests timeout bounds each read, not a
    slow answer): TimeoutError when it has not returned after ``seconds``; it is left to
    finish in a daemon thread, which the server's stop ends."""
    result: dict = {}

    def target():
        try:
            result["value"] = fn(*args)
        except BaseException as exc:  # handed to the caller
            result["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise TimeoutError(f"no answer within {seconds:.0f} s")
    if "error" in result:
        raise result["error"]
    return result["value"]


def short_error(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return str(exc)
    if isinstance(exc, requests.Timeout):
        return "timed out"
    if isinstance(exc, requests.ConnectionError):
        return "connection error"
    return (str(exc).splitlines() or [repr(exc)])[0][:150]


def hold(until: float) -> None:
    """Keep the attack's connections open until ``until``."""
    remaining = until - monotonic()
    if remaining > 0:
        time.sleep(remaining)  # the attack's duration: its connections stay open


# -- the probe -------------------------------------------------------------------------------

def _failure_kind(exc: requests.RequestException) -> str:
    if isinstance(exc, requests.Timeout):
        return "timeout"
    if isinstance(exc, requests.ConnectionError):
        return "connection error"
    return "error"


class Probe:
    """The other client, in a process of its own (the attacker's threads do not share its
    interpreter lock), one thread, one kept-alive connection from 127.0.0.2: every 100 ms
    ``GET /api/health`` and a produce of one text record to topic ``probe`` (with
    ``subscribe``, also a subscribe to its own group and the DELETE of that session), each
    timed (5 s timeout). Acknowledged records are kept to be read back afterwards."""

    def __init__(self, base: str, tag: str, subscribe: bool = False):
        self.base, self.tag, self.subscribe = base, tag, subscribe
        self.latencies: list[float] = []          # ms, health and produce
        self.produce_latencies: list[float] = []  # ms
        self.subscribe_latencies: list[float] = []
        self.failures: dict = {}
        self.acked: list[tuple] = []              # (partition, offset, value)
        self.rounds = 0
        ctx = multiprocessing.get_context("fork")
        self._halt = ctx.Event()
        self._results = ctx.Queue()
        self._proc = ctx.Process(target=self._run, name="abuse-probe", daemon=True)

    def start(self) -> None:
        _probes.append(self)
        self._proc.start()

    def stop(self) -> None:
        """End the probing; its figures come back from its process."""
        self._halt.set()
        try:
            got = self._results.get(timeout=4 * PROBE_TIMEOUT_S + 5)
        except Exception as exc:  # queue.Empty: the probe hangs
            raise BenchError(f"the probe did not report back: {exc!r}") from None
        finally:
            self._proc.join(PROBE_TIMEOUT_S)
            self.kill()
        (self.latencies, self.produce_latencies, self.subscribe_latencies, self.failures,
         self.acked, self.rounds) = got

    def kill(self) -> None:
        if self._proc.pid is not None and self._proc.is_alive():
            self._proc.kill()
            self._proc.join(KILL_WAIT_S)
        if self in _probes:
            _probes.remove(self)

    # the probe's process

    def _run(self) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when it ends
        http = session_from(PROBER)
        failures: collections.Counter = collections.Counter()
        latencies, produce_lat, subscribe_lat, acked = [], [], [], []
        n = 0
        next_round = monotonic()
        while not self._halt.is_set():
            n += 1
            t, _ = self._call(http, failures, "health", "GET", "/api/health")
            latencies.append(t)
            value = f"probe-{self.tag}-{n}"
            t, resp = self._call(http, failures, "produce", "POST", "/api/topics/probe/records",
                                 json={"encoding": "text", "records": [{"value": value}]})
            latencies.append(t)
            produce_lat.append(t)
            if resp is not None:
                try:
                    o = resp.json()["offsets"][0]
                    acked.append((o["partition"], o["offset"], value))
                except (ValueError, KeyError, IndexError, TypeError):
                    failures["produce bad answer"] += 1
            if self.subscribe:
                t, resp = self._call(http, failures, "subscribe", "POST",
                                     "/api/consumers/subscribe",
                                     json={"group_id": "probe-group", "topics": ["probe"]})
                subscribe_lat.append(t)
                cid = None
                with contextlib.suppress(ValueError, KeyError, TypeError, AttributeError):
                    cid = resp.json()["consumer_id"]
                if cid:
                    self._call(http, failures, "delete", "DELETE", f"/api/consumers/{cid}")
            next_round = max(next_round + PROBE_EVERY_S, monotonic())
            self._halt.wait(max(0.0, next_round - monotonic()))
        self._results.put((latencies, produce_lat, subscribe_lat, dict(failures), acked, n))

    def _call(self, http, failures, kind: str, method: str, path: str, **kw):
        """``(ms, response or None)``; a failure (timeout, connection error, status other
        than 200 -- 2xx for health and produce) is counted by kind and times as long as it
        took."""
        t0 = time.perf_counter()
        try:
            resp = http.request(method, self.base + path, timeout=PROBE_TIMEOUT_S, **kw)
        except requests.RequestException as exc:
            failures[f"{kind} {_failure_kind(exc)}"] += 1
            return (time.perf_counter() - t0) * 1000, None
        ms = (time.perf_counter() - t0) * 1000
        ok = resp.status_code == 200 if kind in ("subscribe", "delete") else \
            200 <= resp.status_code < 300
        if not ok:
            failures[f"{kind} {resp.status_code}"] += 1
            return ms, None
        return ms, resp


def lost_records(http: requests.Session, srv: Server, acked: list) -> int:
    """Acknowledged records missing or different in the probe topic (stateless reads)."""
    stored: dict = {}
    for partition in sorted({p for p, _, _ in acked}):
        offset = 0
        while True:
            resp = checked(http.get(
                f"{srv.base}/api/topics/probe/partitions/{partition}/records",
                params={"offset": offset, "encoding": "text", "max_records": 10_000},
                timeout=READBACK_TIMEOUT_S), "reading the probe topic back")
            records = resp.json()["records"]
            if not records:
                break
            stored.update(((partition, r["offset"]), r["value"]) for r in records)
            offset = records[-1]["offset"] + 1
    return sum(1 for p, off, value in acked if stored.get((p, off)) != value)


REFUSAL_LINE = re.compile(r'^consumer_api_refusals_total\{reason="([^"]+)"\}\s+(\S+)', re.M)


def scrape_refusals(http: requests.Session, srv: Server, timeout: float) -> dict | None:
    """``consumer_api_refusals_total`` by reason from ``/metrics``; None when the server
    has no such metric. Raises requests.RequestException when /metrics does not answer."""
    text = http.get(srv.base + "/metrics", timeout=timeout).text
    if "consumer_api_refusals_total" not in text:
        return None
    return {k: int(float(v)) for k, v in REFUSAL_LINE.findall(text)}


# -- the attacks -----------------------------------------------------------------------------
# setup(srv) -> state, before the probe starts; run(srv, until, state) -> (what the attacker
# saw, details for the JSON). A run closes its connections before it returns.

def slow_headers(srv: Server, until: float, _state) -> tuple[str, dict]:
    socks = [raw(srv.port) for _ in range(CONNECTIONS)]
    for s in socks:
        s.sendall(b"GET /api/hea")
    seen = watch(socks, until)
    hold(until)
    close_attack_sockets()
    return counted(seen), dict(outcomes=dict(seen))


def setup_slow_body(srv: Server):
    create_topic(session_from(ATTACKER), srv, "slow")
    prefix, suffix = b'{"encoding": "text", "records": [{"value": "', b'"}]}'
    body = prefix + b"x" * (SLOW_BODY_BYTES - len(prefix) - len(suffix)) + suffix
    assert len(body) == SLOW_BODY_BYTES
    return body


def slow_body(srv: Server, until: float, body: bytes) -> tuple[str, dict]:
    head = (b"POST /api/topics/slow/records HTTP/1.1\r\nHost: abuse\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body))
    socks = [raw(srv.port) for _ in range(CONNECTIONS)]
    sent = {s: 0 for s in socks}
    for s in socks:
        s.sendall(head)

    def trickle(waiting):  # one byte per connection, never the last one
        for s in waiting:
            if sent[s] < len(body) - 1:
                with contextlib.suppress(OSError):
                    sent[s] += s.send(body[sent[s]:sent[s] + 1])

    seen = watch(socks, until, trickle, tick_s=TRICKLE_EVERY_S)
    hold(until)
    close_attack_sockets()
    return counted(seen), dict(outcomes=dict(seen), body_bytes_sent=sum(sent.values()))


def setup_no_read(srv: Server):
    http = session_from(ATTACKER)
    create_topic(http, srv, "big")
    value = base64.b64encode(os.urandom(BIG_VALUE_BYTES)).decode()
    body = orjson.dumps({"records": [{"value": value}] * BIG_BATCH})
    for _ in range(BIG_RECORDS // BIG_BATCH):  # 10,000 records, 25 MB of values
        checked(http.post(srv.base + "/api/topics/big/records", data=body, headers=JSON_CT,
                          timeout=SETUP_TIMEOUT_S), "producing to topic big")


def no_read(srv: Server, until: float, _state) -> tuple[str, dict]:
    request = (b"GET /api/topics/big/partitions/0/records?offset=0&max_records=%d"
               b"&max_bytes_total=104857600 HTTP/1.1\r\nHost: abuse\r\n\r\n" % BIG_RECORDS)
    socks = [raw(srv.port, rcvbuf=NO_READ_RCVBUF) for _ in range(CONNECTIONS)]
    for s in socks:
        s.sendall(request)
    hold(until)
    seen: collections.Counter = collections.Counter()
    for s in socks:  # what is visible without reading: the first bytes in the buffer
        try:
            first = s.recv(256, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            seen[describe(first, "closed") if not first else describe(first)] += 1
        except BlockingIOError:
            seen["nothing"] += 1
        except OSError:
            seen["reset"] += 1
    close_attack_sockets()
    return counted(seen), dict(outcomes=dict(seen))


def _subscribe_sessions(srv: Server, n: int) -> list[str]:
    http = session_from(ATTACKER)
    create_topic(http, srv, "quiet")
    out = []
    for i in range(n):
        resp = checked(http.post(srv.base + "/api/consumers/subscribe", timeout=SETUP_TIMEOUT_S,
                                 json={"group_id": f"flood-{i}", "topics": ["quiet"],
                                       "session_timeout_ms": SESSION_TIMEOUT_MS}),
                       "subscribing the attacker's sessions")
        out.append(resp.json()["consumer_id"])
    http.close()
    return out


def _consume_request(consumer_id: str) -> bytes:
    body = b'{"timeout_ms": %d}' % SESSION_TIMEOUT_MS
    return (b"POST /api/consumers/%s/consume HTTP/1.1\r\nHost: abuse\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
            % (consumer_id.encode(), len(body), body))


def poll_flood(srv: Server, until: float, consumers: list) -> tuple[str, dict]:
    socks = []
    for i in range(CONNECTIONS):
        s = raw(srv.port)
        s.sendall(_consume_request(consumers[i % len(consumers)]))
        socks.append(s)
    seen = watch(socks, until)
    hold(until)
    close_attack_sockets()
    sessions = f"{len(consumers)} session{'s' if len(consumers) > 1 else ''}; "
    return sessions + "consumes: " + counted(seen), dict(sessions=len(consumers),
                                                          outcomes=dict(seen))


def setup_subscribe_flood(srv: Server):
    create_topic(session_from(ATTACKER), srv, "quiet")


def subscribe_flood(srv: Server, until: float, _state) -> tuple[str, dict]:
    statuses: collections.Counter = collections.Counter()
    lock = threading.Lock()
    numbers = iter(range(SUBSCRIBES))

    def client():
        http = session_from(ATTACKER)
        while monotonic() < until:
            with lock:
                i = next(numbers, None)
            if i is None:
                break
            try:
                status = str(http.post(srv.base + "/api/consumers/subscribe",
                                       timeout=SUBSCRIBE_TIMEOUT_S, json={
                                           "group_id": f"sub-{i % SUBSCRIBE_GROUPS}",
                                           "topics": ["quiet"],
                                           "session_timeout_ms": SESSION_TIMEOUT_MS}).status_code)
            except requests.RequestException as exc:
                status = _failure_kind(exc)
            with lock:
                statuses[status] += 1
        http.close()

    threads = [threading.Thread(target=client, daemon=True) for _ in range(CONNECTIONS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, until - monotonic()) + SUBSCRIBE_TIMEOUT_S + 5)
    hold(until)
    with lock:
        done = sum(statuses.values())
        text = "subscribes: " + counted(statuses)
        if done < SUBSCRIBES:
            text += f"; {SUBSCRIBES - done:,} not sent in time"
        return text, dict(outcomes=dict(statuses), sent=done,
                          stuck_threads=sum(t.is_alive() for t in threads))


def setup_chunked(srv: Server) -> int:
    http = session_from(ATTACKER)
    create_topic(http, srv, "chunky")
    return high_watermark(http, srv, "chunky")


def _chunked_18mib_request() -> bytes:
    """One record whose base64 value closes the JSON exactly at 16 MiB, then 2 MiB of
    spaces: the first 16 MiB alone are a valid produce body, the whole is too large."""
    prefix, suffix = b'{"records": [{"value": "', b'"}]}'
    fill = CHUNKED_VALID - len(prefix) - len(suffix)
    assert fill % 4 == 0  # a valid base64 length
    body = prefix + b"A" * fill + suffix + b" " * CHUNKED_EXTRA
    framed = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + CHUNK_BYTES]), body[i:i + CHUNK_BYTES])
                      for i in range(0, len(body), CHUNK_BYTES))
    return (b"POST /api/topics/chunky/records HTTP/1.1\r\nHost: abuse\r\n"
            b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            + framed + b"0\r\n\r\n")


def chunked_18mib(srv: Server, until: float, hw_before: int) -> tuple[str, dict]:
    request = _chunked_18mib_request()
    seen: collections.Counter = collections.Counter()
    while monotonic() < until:
        t0 = monotonic()
        seen[exchange(srv.port, request, until)] += 1
        time.sleep(max(0.0, min(CHUNKED_EVERY_S - (monotonic() - t0), until - monotonic())))
    try:
        say("attack 7: reading the high watermark back ...")
        hw_after: int | str = within(READBACK_TIMEOUT_S, high_watermark,
                                     session_from(ATTACKER), srv, "chunky")
    except (requests.RequestException, BenchError, KeyError, ValueError, TimeoutError) as exc:
        say(f"attack 7: could not read the high watermark: {exc!r}")
        hw_after = "?"
    text = f"{counted(seen)}; high watermark {hw_before} -> {hw_after}"
    return text, dict(outcomes=dict(seen), hw_before=hw_before, hw_after=hw_after)


BAD_CHUNK = (b"POST /api/topics/chunky/records HTTP/1.1\r\nHost: abuse\r\n"
             b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
             b"zz\r\n{}\r\n0\r\n\r\n")

PROTOCOL_ERRORS = {
    "lower-case method": b"get /api/health HTTP/1.1\r\nHost: abuse\r\n\r\n",
    "10 KB URL": b"GET /api/health?q=" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: abuse\r\n\r\n",
    "10,000 headers": b"GET /api/health HTTP/1.1\r\nHost: abuse\r\n"
                      + b"".join(b"X-H%d: v\r\n" % i for i in range(10_000)) + b"\r\n",
    "CL+TE": b"POST /api/topics HTTP/1.1\r\nHost: abuse\r\nContent-Type: application/json\r\n"
             b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
}
#: what the attacker must get for attacks 8 and 9 (in the JSON envelope)
EXPECTED = {"bad chunk size": {"400"}, "lower-case method": {"400", "501"},
            "10 KB URL": {"414"}, "10,000 headers": {"431"}, "CL+TE": {"400"}}


def repeat(srv: Server, until: float, kinds: dict) -> tuple[str, dict]:
    seen = {name: collections.Counter() for name in kinds}
    while monotonic() < until:
        t0 = monotonic()
        for name, request in kinds.items():
            seen[name][exchange(srv.port, request, until)] += 1
        time.sleep(max(0.0, min(REPEAT_EVERY_S - (monotonic() - t0), until - monotonic())))
    if len(kinds) == 1:
        text = counted(next(iter(seen.values())))
    else:
        text = "; ".join(f"{name}: {counted(c)}" for name, c in seen.items())
    return text, dict(outcomes={name: dict(c) for name, c in seen.items()})


def bad_chunk(srv: Server, until: float, _state) -> tuple[str, dict]:
    return repeat(srv, until, {"bad chunk size": BAD_CHUNK})


def protocol_errors(srv: Server, until: float, _state) -> tuple[str, dict]:
    return repeat(srv, until, PROTOCOL_ERRORS)


def expect_refused(details: dict) -> bool:
    """Attacks 8-9: every request got its expected status in the JSON envelope."""
    outcomes = details.get("outcomes", {})
    return bool(outcomes) and all(
        counts and set(counts) <= EXPECTED[name] for name, counts in outcomes.items())


def expect_413_nothing_stored(details: dict) -> bool:
    """Attack 7: every request got 413 (JSON envelope) and the topic stayed as it was."""
    outcomes = details.get("outcomes", {})
    return bool(outcomes) and set(outcomes) == {"413"} \
        and details.get("hw_after") == details.get("hw_before")


@dataclass
class Attack:
    number: int
    name: str
    run: object
    setup: object = None
    probe_subscribes: bool = False
    expect: object = None  # details -> bool: what the attacker must see, when it matters


ATTACKS = [
    Attack(1, "slow headers", slow_headers),
    Attack(2, "slow body", slow_body, setup_slow_body),
    Attack(3, "no-read", no_read, setup_no_read),
    Attack(4, "poll flood, many sessions", poll_flood,
           lambda srv: _subscribe_sessions(srv, CONNECTIONS)),
    Attack(5, "poll flood, one session", poll_flood, lambda srv: _subscribe_sessions(srv, 1)),
    Attack(6, "subscribe flood", subscribe_flood, setup_subscribe_flood, probe_subscribes=True),
    Attack(7, "chunked 18 MiB produce", chunked_18mib, setup_chunked,
           expect=expect_413_nothing_stored),
    Attack(8, "bad chunk size", bad_chunk, setup_chunked, expect=expect_refused),
    Attack(9, "protocol errors", protocol_errors, expect=expect_refused),
]


# -- running ---------------------------------------------------------------------------------

@dataclass
class Row:
    number: int
    attack: str
    attacker_saw: str = ""
    details: dict = field(default_factory=dict)
    p50_ms: float | None = None       # health and produce together
    p99_ms: float | None = None
    max_ms: float | None = None
    produce_p99_ms: float | None = None
    subscribe_p99_ms: float | None = None
    probe_rounds: int = 0
    failures: dict = field(default_factory=dict)
    refusals: dict | None = None      # None: the server has no refusal metric
    refusals_error: str | None = None
    peak_rss: int | None = None       # bytes, VmHWM of the worker
    end_rss: int | None = None
    lost: int | None = None
    acked: int = 0
    attack_ok: bool | None = None     # attacks 7-9: the attacker got the refusal it must get
    notes: list = field(default_factory=list)
    server_problems: list = field(default_factory=list)
    error: str | None = None

    def missed(self) -> list[str]:
        """The targets this row misses."""
        out = []
        if self.p99_ms is None or self.p99_ms > TARGET_P99_MS:
            out.append("p99")
        if self.failures:
            out.append("failures")
        if self.peak_rss is None or self.peak_rss > TARGET_RSS:
            out.append("RSS")
        if self.lost != 0:
            out.append("lost")
        if self.attack_ok is False:
            out.append("attacker's answer")
        return out

    @property
    def passed(self) -> bool | None:
        return None if self.error else not self.missed()

    @property
    def status(self) -> str:
        return status_text(self.passed, self.error)


def run_attack(attack: Attack, root: str, workdir: str, duration: float) -> Row:
    row = Row(attack.number, attack.name)
    srv = Server(f"attack{attack.number}", workdir, root=root, ready_timeout=READY_TIMEOUT_S,
                 stop_timeout=STOP_TIMEOUT_S, kill_wait=KILL_WAIT_S, report_problems=False)
    probe = None
    try:
        say(f"attack {attack.number} ({attack.name}): starting a server ...")
        srv.start()
        http = session_from(PROBER)
        create_topic(http, srv, "probe")
        state = attack.setup(srv) if attack.setup else None
        before = scrape_refusals(http, srv, PROBE_TIMEOUT_S)
        http.close()  # no idle connection of this address during the attack
        worker = srv.worker_pid()
        probe = Probe(srv.base, str(attack.number), attack.probe_subscribes)
        probe.start()
        say(f"attack {attack.number} ({attack.name}): {duration:.0f} s, probe running")
        try:
            row.attacker_saw, row.details = attack.run(srv, monotonic() + duration, state)
        finally:
            close_attack_sockets()
            probe.stop()
        say(f"attack {attack.number}: attack over; reading /metrics and the probe topic back")
        mem = srv.worker_memory()
        row.peak_rss, row.end_rss = mem.get("VmHWM"), mem.get("VmRSS")
        if mem.get("pid") != worker:
            row.notes.append(f"worker {worker} replaced by {mem.get('pid', 'none')}: peak RSS is "
                             "the new one's")
        row.probe_rounds, row.acked = probe.rounds, len(probe.acked)
        row.p50_ms = percentile(probe.latencies, 0.50)
        row.p99_ms = percentile(probe.latencies, 0.99)
        row.max_ms = max(probe.latencies, default=None)
        row.produce_p99_ms = percentile(probe.produce_latencies, 0.99)
        row.subscribe_p99_ms = percentile(probe.subscribe_latencies, 0.99)
        row.failures = dict(sorted(probe.failures.items()))
        if attack.expect is not None:
            row.attack_ok = bool(attack.expect(row.details))
        try:
            after = within(READBACK_TIMEOUT_S, scrape_refusals, session_from(PROBER), srv,
                           READBACK_TIMEOUT_S)
            if after is not None:
                row.refusals = {k: v - (before or {}).get(k, 0) for k, v in sorted(after.items())
                                if v != (before or {}).get(k, 0)}
        except (requests.RequestException, TimeoutError) as exc:
            if before is not None:  # else the server has no such metric anyway: "-"
                row.refusals_error = f"/metrics after the attack: {short_error(exc)}"
        try:
            row.lost = within(READBACK_TIMEOUT_S, lost_records, session_from(PROBER), srv,
                              probe.acked)
        except (requests.RequestException, BenchError, KeyError, ValueError,
                TimeoutError) as exc:
            row.notes.append(f"probe topic not read back: {short_error(exc)}")
        http.close()
    except Exception as exc:  # every row runs
        say(f"attack {attack.number}: ERROR {exc!r}\n{traceback.format_exc()}"
            f"last lines of the server log:\n{srv.output()[-2000:]}")
        row.error = repr(exc)[:500]
        row.notes.append(str(exc).splitlines()[0][:200] if str(exc) else repr(exc)[:200])
    finally:
        close_attack_sockets()
        if probe is not None:
            probe.kill()
        say(f"attack {attack.number}: stopping the server ...")
        srv.stop()
        row.server_problems = list(srv.problems)
    say(f"attack {attack.number}: {row.status}; attacker saw {row.attacker_saw or '-'}")
    return row


def fmt_ms(v) -> str:
    return "-" if v is None else f"{v:,.1f}"


def fmt_mib(v) -> str:
    return "-" if v is None else f"{v / MiB:,.0f} MiB"


def render(rows: list, header: list) -> str:
    def refused(i, r):
        if r.refusals_error:
            return "?"
        if r.refusals is None:
            return "-"
        return ", ".join(f"{k} {v}" for k, v in r.refusals.items()) or "none"

    def notes(i, r):
        if r.error:
            return "; ".join(r.notes)
        parts = [f"produce p99 {fmt_ms(r.produce_p99_ms)} ms"]
        if r.subscribe_p99_ms is not None:
            parts.append(f"subscribe p99 {fmt_ms(r.subscribe_p99_ms)} ms")
        parts += [f"RSS at end {fmt_mib(r.end_rss)}",
                  f"{r.probe_rounds} probe rounds, {r.acked} records acked"]
        if r.missed():
            parts.append("missed: " + ", ".join(r.missed()))
        if r.refusals_error:
            parts.append(r.refusals_error)
        parts += r.notes
        parts += [f"server: {p}" for p in r.server_problems
                  if not p.startswith(("did not stop", "stopping took"))]
        stop = [p for p in r.server_problems if p.startswith(("did not stop", "stopping took"))]
        return "; ".join(parts + [f"stop: {p}" for p in stop])

    cols = [("#", lambda i, r: str(r.number), True),
            ("attack", lambda i, r: r.attack, False),
            ("attacker saw", lambda i, r: r.attacker_saw or "-", False),
            ("probe p50/p99/max ms", lambda i, r: "-" if r.error else
             f"{fmt_ms(r.p50_ms)} / {fmt_ms(r.p99_ms)} / {fmt_ms(r.max_ms)}", True),
            ("probe failures", lambda i, r: "-" if r.error else
             (", ".join(f"{n} {k}" for k, n in r.failures.items()) or "0"), False),
            ("refusals", refused, False),
            ("worker peak RSS", lambda i, r: fmt_mib(r.peak_rss), True),
            ("lost", lambda i, r: "-" if r.error else ("?" if r.lost is None else str(r.lost)),
             True),
            ("status", lambda i, r: r.status, False),
            ("notes", notes, False)]
    return render_table(rows, header, cols)


def checkout_commit(root: str) -> str:
    """Short commit of ``root``, noting uncommitted changes in the server's code."""
    try:
        out = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "-C", root, "status", "--porcelain", "--",
                                "consumer_api", "gunicorn.conf.py"],
                               capture_output=True, text=True, timeout=5)
        commit = out.stdout.strip() or "?"
        return commit + (" + uncommitted changes" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "?"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help=f"{QUICK_S:.0f} s per attack instead of {FULL_S:.0f} s: checks that "
                         "it works")
    ap.add_argument("--only", metavar="N,...", help="run only these attacks (1-9)")
    ap.add_argument("--duration", type=float, metavar="S", help="seconds per attack")
    ap.add_argument("--root", default=str(ROOT),
                    help="the checkout whose server to run (default: this repository)")
    add_output_args(ap, "abuse")
    args = ap.parse_args(argv)
    only = parse_only(args.only, {a.number for a in ATTACKS}, "attack")
    duration = args.duration or (QUICK_S if args.quick else FULL_S)
    if duration <= 0:
        raise SystemExit("--duration must be positive")
    root = os.path.abspath(args.root)
    if not os.path.isfile(os.path.join(root, "gunicorn.conf.py")):
        raise SystemExit(f"--root {root} has no gunicorn.conf.py")

    prepared = prepare_base_dir(args.dir, 512 * MiB, hint=" (use --dir)")
    if prepared is None:
        return 2
    base, fst, warnings = prepared
    started = _dt.datetime.now()
    meta = dict(run_meta(started, args.quick, base, fst, attacks=sorted(only)),
                root=root, commit=checkout_commit(root), duration_s=duration,
                connections=CONNECTIONS, attacker=ATTACKER, prober=PROBER,
                probe_every_s=PROBE_EVERY_S, probe_timeout_s=PROBE_TIMEOUT_S,
                targets=dict(p99_ms=TARGET_P99_MS, probe_failures=0, peak_rss_bytes=TARGET_RSS,
                             lost=0), loadavg_start=loadavg(), warnings=warnings)
    rows: list[Row] = []
    try:
        with temp_workdir(base, "abuse-bench-", release=kill_all) as workdir:
            say(f"server from {root} (commit {meta['commit']}); data in {workdir} ({fst}); "
                     f"{duration:.0f} s per attack; attacks {sorted(only)}")
            for attack in ATTACKS:
                if attack.number in only:
                    rows.append(run_attack(attack, root, workdir, duration))
    except KeyboardInterrupt:  # temp_workdir has killed the servers and cleaned up
        return 130
    meta["loadavg_end"] = loadavg()

    header = [
        f"consumer_api abuse benchmark -- {meta['started']} -- server from {root} "
        f"(commit {meta['commit']})",
        f"mode: {'QUICK (smoke run; targets are meant for full runs)' if args.quick else 'full'}"
        f", {duration:g} s per attack, a fresh server with default settings per attack; "
        f"python {meta['python']}, {meta['cpus']} cpus shared by the server and both clients; "
        f"load average {meta['loadavg_start']} at start, {meta['loadavg_end']} at end",
        f"attacker {ATTACKER}, {CONNECTIONS} connections; probe {PROBER} (its own process, "
        f"one kept-alive connection): GET /api/health + a 1-record produce every "
        f"{PROBE_EVERY_S * 1000:.0f} ms, timeout {PROBE_TIMEOUT_S:g} s",
        f"targets: probe p99 <= {TARGET_P99_MS:g} ms, 0 probe failures, worker peak RSS <= "
        "1 GiB, 0 lost; 7: 413 and nothing stored; 8, 9: the right 4xx in the JSON envelope",
    ] + [f"WARNING: {w}" for w in warnings]
    print(render(rows, header))
    oddities = [f"attack {r.number}: server {p}" for r in rows for p in r.server_problems]
    finish(rows, lambda r: f"#{r.number} {r.attack}", "abuse", args.json, started, meta,
           oddities)
    return 0


if __name__ == "__main__":
    sys.exit(main())
