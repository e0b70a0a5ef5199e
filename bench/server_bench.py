#!/usr/bin/env python
"""Server benchmark: the real HTTP server (gunicorn + Flask), driven over loopback.

Run from the project root::

    .venv/bin/python bench/server_bench.py [--quick] [--only N,...] [--backend kafka]
        [--baseline CHECKOUT [--baseline-first]] [--also NAME=VALUE] [--min-records N]
        [--json PATH] [--dir DIR]

Each figure group starts its own server exactly as ``make run`` does (``python -m gunicorn
-c gunicorn.conf.py --bind 127.0.0.1:<free port>`` from the repository root) on a fresh data
directory, waits for ``GET /api/health/ready``, measures, and stops it with SIGTERM. Figures:

1. produce throughput: 500 records x 100 B (base64, keyless) per request, 4 partitions;
   one client, then 4 concurrent clients;
2. consume throughput: one consumer from its subscribe to the last record of a backlog of
   1,000,000 records, max_records 500 and 10,000; empty consumes before the first data;
3. wake-up latency of one waiting consume when one record is produced (200 samples);
4. 1,000 consumers waiting at once (10 groups x 100 on 100 partitions), one record produced
   to each partition: wake-up latency and correctness violations;
5. memory: worker RSS with 0 and 10,000 idle sessions (KiB per session);
6. end-to-end: 2 producers and 8 consumers in one group on 32 partitions for 60 s
   (``--min-records N``: the consumers ask each consume to wait for N records);
7. the HTTP ceiling: GET /api/health requests/s with 1 and 4 clients;
8. subscribe to first record: a new group's member, from sending its subscribe until its
   first consume returns a record (4 partitions with records; 20 samples);
9. filtered consume: one consumer drains 500,000 keyed JSON records of which 1 % match, with
   a key-prefix filter and a JSON-value filter, beside the same drain without a filter.

``--backend kafka`` runs figures 1, 2, 3, 7 and 8 on the Kafka store (a local single-node
broker) and then the same figures on the embedded engine, in the same run and table.
``--also CONSUMER_API_X=v`` runs the chosen figures once more with that server setting, in
the same run and table (a baseline: ``--also CONSUMER_API_PERSIST_SESSIONS=false``).

``--baseline CHECKOUT`` measures another checkout of the project (e.g. ``git worktree add
/tmp/before main``) in the same run: each figure group runs on this checkout's server, then
on the baseline's, alternately; the baseline's rows are marked ``[baseline]`` and each row
of this checkout says its ratio to the baseline's. Throughputs are also given in records
per trivial-request time (figure 7, measured on the same server), the figure that does not
move with the machine's speed or load.

The table goes to stdout, progress to stderr, the same rows as JSON to
bench/results/server-<timestamp>.json (or --json PATH). Servers are killed and data
directories removed on any exit (also Ctrl-C / SIGTERM). See bench/README.rst.
"""
from __future__ import annotations

import argparse
import base64
import contextlib
import datetime as _dt
import hashlib
import os
import queue
import random
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field

import orjson
import requests

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # for bench/common.py
from common import (KiB, MiB, ROOT, add_output_args, finish, git_commit,  # noqa: E402
                    loadavg, parse_only, percentile, prepare_base_dir, progress,
                    render_table, run_meta, set_progress_tag, status_text, temp_workdir)
from server_process import BenchError, Server  # noqa: E402
from server_process import kill_servers as kill_every_server  # noqa: E402

perf_counter = time.perf_counter

#: targets (printed in the "target" column, judged in the "status" column)
TARGET_PRODUCE_RPS = 200_000          # fig 1, one client, 500/batch
TARGET_CONSUME_10K_RPS = 300_000      # fig 2, max_records 10,000
TARGET_CONSUME_500_RPS = 150_000      # fig 2, max_records 500
TARGET_EMPTY_BEFORE_DATA = 0          # fig 2
TARGET_WAKE_P50_MS = 2.0              # fig 3
TARGET_WAKE_P99_MS = 10.0             # fig 3
TARGET_MANY_WAKE_P99_MS = 50.0        # fig 4
TARGET_VIOLATIONS = 0                 # fig 4
TARGET_KIB_PER_SESSION = 4.0          # fig 5

FULL = dict(
    produce_s=5.0,
    backlog=1_000_000,
    wake_samples=200,
    join_samples=20,
    waiting_consumers=1_000,
    idle_sessions=10_000,
    e2e_s=60.0,
    health_s=5.0,
    min_free=1 << 30,   # figure 6 writes ~0.5 GB; each server's data is deleted after it
)
QUICK = dict(
    produce_s=1.0,
    backlog=200_000,
    wake_samples=50,
    join_samples=5,
    waiting_consumers=200,
    idle_sessions=2_000,
    e2e_s=10.0,
    health_s=1.0,
    min_free=256 * MiB,
)

VALUE_BYTES = 100
BATCH = 500
N_BODIES = 4                 # distinct pre-serialised bodies cycled through
LONG_POLL_MS = 30_000        # figs 3 and 4
IDLE_SESSION_TIMEOUT_MS = 300_000  # the maximum: no session expires during a figure
WAKE_GAP_S = 0.050           # fig 3: heartbeat age before a consume is launched
WAKE_SETTLE_S = 0.005        # fig 3: fixed delay after the consume is seen started
MANY_GAP_S = 1.0             # fig 4: same, for 1,000 consumers
MANY_SETTLE_S = 0.5          # fig 4
JSON_CT = {"Content-Type": "application/json"}
STOP_TIMEOUT_S = 45.0        # after SIGTERM (graceful_timeout is 30 s)

_sessions: list[requests.Session] = []
set_progress_tag("server-bench")


# -- results ----------------------------------------------------------------------------------

@dataclass
class Row:
    key: str
    figure: int
    benchmark: str
    settings: str
    result: str = "-"            # the figure, formatted with its unit
    value: float | None = None   # the same, as a number (JSON)
    unit: str = ""
    target: str = "-"
    passed: bool | None = None
    error: str | None = None
    notes: str = ""
    params: dict = field(default_factory=dict)  # machine-readable settings and details

    @property
    def status(self) -> str:
        return status_text(self.passed, self.error)


#: the table's columns: (title, getter(row number, row), right-aligned); "#" is the figure
COLUMNS = [
    ("#", lambda i, r: str(r.figure), True),
    ("benchmark", lambda i, r: r.benchmark, False),
    ("settings", lambda i, r: r.settings, False),
    ("result", lambda i, r: r.result, True),
    ("target", lambda i, r: r.target, False),
    ("status", lambda i, r: r.status, False),
    ("notes", lambda i, r: r.notes, False),
]


def fmt_rate(v: float, unit: str = "rec/s") -> str:
    return f"{v:,.0f} {unit}"


def fmt_ms(v: float) -> str:
    return f"{v:.2f} ms" if abs(v) < 100 else f"{v:,.0f} ms"


def latency_stats(seconds: list[float]) -> dict:
    ms = [v * 1000 for v in seconds]
    return dict(n=len(ms), p50_ms=percentile(ms, 0.50), p99_ms=percentile(ms, 0.99),
                max_ms=max(ms), min_ms=min(ms), mean_ms=sum(ms) / len(ms))


# -- environment ------------------------------------------------------------------------------

def source_digest() -> str:
    """SHA-1 (12 hex digits) of the server's source as it is on disk at the start: the
    *.py files under consumer_api/ and gunicorn.conf.py -- tells runs of an uncommitted
    tree apart."""
    h = hashlib.sha1()
    files = sorted(ROOT.glob("consumer_api/**/*.py")) + [ROOT / "gunicorn.conf.py"]
    for path in files:
        with contextlib.suppress(OSError):
            h.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:12]


def gunicorn_version() -> str:
    try:
        from importlib.metadata import version
        return version("gunicorn")
    except Exception:
        return "?"


# -- the server -------------------------------------------------------------------------------

@contextlib.contextmanager
def running_server(name: str, workdir: str, env: dict | None = None, extra_args=(),
                   oddities: list | None = None, root=ROOT):
    srv = Server(name, workdir, env, extra_args, root=root, stop_timeout=STOP_TIMEOUT_S)
    progress(f"starting server {name!r} ({srv.describe_settings() or 'defaults'}) ...")
    try:
        srv.start()
        progress(f"server {name!r} ready on port {srv.port} (master pid {srv.proc.pid})")
        yield srv
    except KeyboardInterrupt:
        srv.kill()  # no graceful stop on Ctrl-C
        raise
    except BaseException:
        tail = srv.output().splitlines()[-15:]
        progress(f"server {name!r} log, last lines:\n  " + "\n  ".join(tail))
        raise
    finally:
        close_sessions()  # no kept-alive connections left behind at shutdown
        srv.stop()
        if oddities is not None:
            oddities.extend(f"server {name!r}: {p}" for p in srv.problems)


# -- the client -------------------------------------------------------------------------------

def new_session() -> requests.Session:
    s = requests.Session()
    # no proxy/netrc lookups from the environment on every request (~0.3 ms of client CPU
    # per request in requests, nothing to do with the server)
    s.trust_env = False
    s.headers.update(JSON_CT)
    # uncompressed answers, as before compression existed: requests asks for gzip/zstd by
    # default, and compressing is measured on its own (bench/compression_bench.py)
    s.headers["Accept-Encoding"] = "identity"
    _sessions.append(s)
    return s


def close_sessions() -> None:
    while _sessions:
        with contextlib.suppress(Exception):
            _sessions.pop().close()


def check(resp: requests.Response, expect: int = 200):
    if resp.status_code != expect:
        raise BenchError(f"{resp.request.method} {resp.request.path_url}: HTTP "
                         f"{resp.status_code} (expected {expect}): {resp.text[:300]}")
    return orjson.loads(resp.content)


def failed(method: str, url: str, exc: requests.RequestException) -> BenchError:
    """A transport failure, naming the request (requests' own message does not)."""
    path = url.split("/", 3)[-1]
    return BenchError(f"{method} /{path}: {exc!r}")


def post(s: requests.Session, url: str, body: bytes, expect: int = 200, timeout=30.0):
    try:
        resp = s.post(url, data=body, timeout=timeout)
    except requests.RequestException as exc:
        raise failed("POST", url, exc) from exc
    return check(resp, expect)


def get(s: requests.Session, url: str, timeout=30.0):
    try:
        resp = s.get(url, timeout=timeout)
    except requests.RequestException as exc:
        raise failed("GET", url, exc) from exc
    return check(resp)


def create_topic(s, srv: Server, name: str, partitions: int) -> None:
    post(s, f"{srv.base}/api/topics", orjson.dumps({"name": name, "partitions": partitions}),
         expect=201)


def subscribe(s, srv: Server, group: str, topic: str, **extra) -> dict:
    body = {"group_id": group, "topics": [topic], **extra}
    return post(s, f"{srv.base}/api/consumers/subscribe", orjson.dumps(body))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def produce_bodies(rng: random.Random, n_bodies: int = N_BODIES, batch: int = BATCH,
                   value_bytes: int = VALUE_BYTES) -> list[bytes]:
    """``n_bodies`` distinct produce requests of ``batch`` keyless records with random
    ``value_bytes``-byte values (base64), serialised once."""
    return [orjson.dumps({"records": [{"value": b64(rng.randbytes(value_bytes))}
                                      for _ in range(batch)]})
            for _ in range(n_bodies)]


def run_threads(n: int, work, name: str, join_timeout: float) -> list:
    """Run ``work(i, session)`` in ``n`` threads (each its own Session), started together
    behind a barrier. Returns the results in order; re-raises the first error."""
    results: list = [None] * n
    errors: list = []
    barrier = threading.Barrier(n)

    def runner(i):
        s = new_session()
        try:
            barrier.wait(timeout=30)
            results[i] = work(i, s)
        except BaseException as exc:  # reported by the caller
            errors.append(exc)
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.abort()

    threads = [threading.Thread(target=runner, args=(i,), name=f"{name}-{i}", daemon=True)
               for i in range(n)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + join_timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    if errors:
        raise errors[0]
    if any(t.is_alive() for t in threads):
        raise BenchError(f"{name}: client threads still running after {join_timeout:.0f} s")
    return results


def produce_loop(s, url: str, bodies: list[bytes], duration: float, batch: int = BATCH):
    """Produce for ``duration`` seconds; ``(records, t_start, t_end)``."""
    n = i = 0
    # prepared once: what a load generator sends, without requests' per-call preparation
    prepared = [s.prepare_request(requests.Request("POST", url, data=b)) for b in bodies]
    nb = len(prepared)
    t0 = perf_counter()
    end = t0 + duration
    while True:
        try:
            resp = s.send(prepared[i % nb], timeout=30)
        except requests.RequestException as exc:
            raise failed("POST", url, exc) from exc
        if resp.status_code != 200:
            check(resp)
        got = len(orjson.loads(resp.content)["offsets"])
        if got != batch:
            raise BenchError(f"produce returned {got} offsets for {batch} records")
        n += got
        i += 1
        t = perf_counter()
        if t >= end:
            return n, t0, t


def health_loop(s, url: str, duration: float):
    n = 0
    t0 = perf_counter()
    end = t0 + duration
    while True:
        try:
            resp = s.get(url, timeout=30)
        except requests.RequestException as exc:
            raise failed("GET", url, exc) from exc
        if resp.status_code != 200 or orjson.loads(resp.content)["status"] != "ok":
            check(resp)
        n += 1
        t = perf_counter()
        if t >= end:
            return n, t0, t


class CpuMeter:
    """CPU seconds used by the server worker and by this (client) process over a span."""

    def __init__(self, srv: Server):
        self.srv = srv
        self.server0 = srv.cpu_seconds()
        t = os.times()
        self.client0 = t.user + t.system
        self.t0 = perf_counter()

    def done(self) -> dict:
        wall = perf_counter() - self.t0
        t = os.times()
        server = self.srv.cpu_seconds() - self.server0
        client = t.user + t.system - self.client0
        return dict(wall_s=wall, server_cpu_s=server, client_cpu_s=client,
                    server_cpu_per_s=server / wall, client_cpu_per_s=client / wall)


def cpu_note(c: dict, requests_: int | None = None) -> str:
    """CPU seconds per wall second of server worker and client; with ``requests_``, also
    the CPU time per request."""
    txt = f"cpu/s: server {c['server_cpu_per_s']:.2f}, client {c['client_cpu_per_s']:.2f}"
    if requests_:
        txt += (f" ({c['server_cpu_s'] / requests_ * 1e6:,.0f} + "
                f"{c['client_cpu_s'] / requests_ * 1e6:,.0f} us/request)")
    return txt


def cpu_times() -> list[int] | None:
    """The machine's aggregate ``cpu`` line of /proc/stat (jiffies)."""
    try:
        with open("/proc/stat") as f:
            return [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None


def steal_share(before, after) -> float | None:
    """Share of CPU time stolen by the hypervisor between two cpu_times() readings."""
    if not before or not after or len(before) < 8:
        return None
    delta = [b - a for a, b in zip(before, after)]
    total = sum(delta[:8])  # user nice system idle iowait irq softirq steal
    return delta[7] / total if total else None


def aggregate(results) -> tuple[int, float]:
    n = sum(r[0] for r in results)
    return n, max(r[2] for r in results) - min(r[1] for r in results)


# -- 7. HTTP ceiling --------------------------------------------------------------------------

def fig7_health(srv: Server, sizes: dict, ceiling: dict) -> list[Row]:
    url = srv.base + "/api/health"
    s = new_session()
    health_loop(s, url, 0.3)  # warm-up
    rows = []
    for clients in (1, 4):
        progress(f"fig 7: GET /api/health, {clients} client(s), {sizes['health_s']:.0f} s ...")
        cpu = CpuMeter(srv)
        res = run_threads(clients, lambda i, sess: health_loop(sess, url, sizes["health_s"]),
                          "health", sizes["health_s"] + 60)
        c = cpu.done()
        n, dt = aggregate(res)
        rps = n / dt
        ceiling[clients] = rps
        rows.append(Row(
            key=f"health_c{clients}", figure=7,
            benchmark=f"HTTP ceiling, {clients} client{'s' if clients > 1 else ''}",
            settings=f"GET /api/health, {clients} thread(s) x keep-alive Session, "
                     f"{sizes['health_s']:.0f} s; {srv.describe_settings() or 'server defaults'}",
            result=fmt_rate(rps, "req/s"), value=rps, unit="req/s",
            notes=f"{n:,} requests in {dt:.2f} s; {1e6 / rps:.0f} us/request; {cpu_note(c, n)}",
            params=dict(clients=clients, requests=n, seconds=dt, cpu=c,
                        per_client=[r[0] for r in res]),
        ))
    return rows


def trivial_ratio(rps: float, ceiling: dict, clients: int) -> tuple[str, float | None]:
    h = ceiling.get(clients)
    if not h:
        return "", None
    ratio = rps / h
    return f"= {ratio:,.1f} records per trivial request time ({clients}-client health)", ratio


# -- 1. produce -------------------------------------------------------------------------------

def fig1_produce(srv: Server, sizes: dict, ceiling: dict, rng: random.Random) -> list[Row]:
    s = new_session()
    topic = "produce"
    create_topic(s, srv, topic, 4)
    url = f"{srv.base}/api/topics/{topic}/records"
    bodies = produce_bodies(rng)
    for i in range(20):  # warm-up, untimed
        post(s, url, bodies[i % len(bodies)])
    rows = []
    dur = sizes["produce_s"]
    for clients in (1, 4):
        progress(f"fig 1: produce, {clients} client(s), {dur:.0f} s ...")
        cpu = CpuMeter(srv)
        res = run_threads(clients, lambda i, sess: produce_loop(sess, url, bodies, dur),
                          "produce", dur + 120)
        c = cpu.done()
        n, dt = aggregate(res)
        rps = n / dt
        mbs = n * VALUE_BYTES / dt / 1e6
        ratio_txt, ratio = trivial_ratio(rps, ceiling, clients)
        row = Row(
            key=f"produce_c{clients}", figure=1,
            benchmark=f"produce, {clients} client{'s' if clients > 1 else ''}",
            settings=(f"{BATCH} rec x {VALUE_BYTES} B (base64, keyless) per request, 4 partitions, "
                      f"{dur:.0f} s, {clients} thread(s)"),
            result=fmt_rate(rps), value=rps, unit="records/s",
            notes=f"{mbs:,.1f} MB/s of values; {n:,} records in {dt:.2f} s; "
                  f"{n / BATCH / dt:,.0f} req/s; {cpu_note(c, n // BATCH)} {ratio_txt}".rstrip(),
            params=dict(clients=clients, records=n, seconds=dt, mb_per_s=mbs, cpu=c,
                        batch=BATCH, value_bytes=VALUE_BYTES, partitions=4,
                        records_per_trivial_request=ratio,
                        per_client=[r[0] for r in res]),
        )
        if clients == 1:
            row.target = f">= {TARGET_PRODUCE_RPS:,} rec/s"
            row.passed = rps >= TARGET_PRODUCE_RPS
        rows.append(row)
    return rows


# -- 2. consume -------------------------------------------------------------------------------

def fill_topic(srv: Server, topic: str, records: int, rng: random.Random, threads: int = 2):
    """Produce ``records`` (a multiple of BATCH) with ``threads`` clients, untimed."""
    bodies = produce_bodies(rng)
    url = f"{srv.base}/api/topics/{topic}/records"
    batches = records // BATCH
    per = [batches // threads + (1 if i < batches % threads else 0) for i in range(threads)]

    def work(i, s):
        for j in range(per[i]):
            post(s, url, bodies[(i + j) % len(bodies)])
        return per[i]

    run_threads(threads, work, "fill", 3600)


def total_high_watermark(s, srv: Server, topic: str) -> int:
    doc = get(s, f"{srv.base}/api/topics/{topic}")
    return sum(p["high_watermark"] - p["log_start_offset"] for p in doc["partitions"])


def fig2_consume(srv: Server, sizes: dict, ceiling: dict, rng: random.Random) -> list[Row]:
    s = new_session()
    topic, n = "backlog", sizes["backlog"]
    create_topic(s, srv, topic, 4)
    progress(f"fig 2: producing a backlog of {n:,} records (untimed) ...")
    t0 = perf_counter()
    fill_topic(srv, topic, n, rng)
    fill_s = perf_counter() - t0
    hw = total_high_watermark(s, srv, topic)
    if hw != n:
        raise BenchError(f"backlog holds {hw} records, expected {n}")
    rows, empties = [], {}
    max_bytes = 16 * MiB
    for max_records in (500, 10_000):
        progress(f"fig 2: consume {n:,} records, max_records={max_records:,} ...")
        group = f"consume-{max_records}"
        cs = new_session()
        body = orjson.dumps({"max_records": max_records, "timeout_ms": 5000,
                             "max_bytes_total": max_bytes})
        sub_body = orjson.dumps({"group_id": group, "topics": [topic],
                                 "auto_offset_reset": "earliest"})
        total = reqs = empty_before = empty_after = 0
        biggest = 0
        cpu = CpuMeter(srv)
        t_start = perf_counter()
        sub = post(cs, f"{srv.base}/api/consumers/subscribe", sub_body)
        url = f"{srv.base}/api/consumers/{sub['consumer_id']}/consume"
        while total < n:
            try:
                resp = cs.post(url, data=body, timeout=30)
            except requests.RequestException as exc:
                raise failed("POST", url, exc) from exc
            if resp.status_code != 200:
                check(resp)
            got = len(orjson.loads(resp.content)["records"])
            reqs += 1
            if got == 0:
                if total == 0:
                    empty_before += 1
                else:
                    empty_after += 1
                if empty_before + empty_after > 20:
                    raise BenchError(f"20 empty consumes with {n - total:,} records unread")
            total += got
            biggest = max(biggest, got)
        dt = perf_counter() - t_start
        c = cpu.done()
        if total != n:
            raise BenchError(f"consumed {total} records, the backlog holds {n}")
        with contextlib.suppress(Exception):
            cs.delete(f"{srv.base}/api/consumers/{sub['consumer_id']}", timeout=30)
        empties[max_records] = (empty_before, empty_after)
        rps = n / dt
        target = TARGET_CONSUME_500_RPS if max_records == 500 else TARGET_CONSUME_10K_RPS
        ratio_txt, ratio = trivial_ratio(rps, ceiling, 1)
        rows.append(Row(
            key=f"consume_m{max_records}", figure=2,
            benchmark=f"consume, max_records {max_records:,}",
            settings=(f"1 consumer, subscribe -> last of {n:,} rec x {VALUE_BYTES} B, 4 partitions, "
                      f"max_bytes_total=16 MiB, timeout_ms=5000"),
            result=fmt_rate(rps), value=rps, unit="records/s",
            target=f">= {target:,} rec/s", passed=rps >= target,
            notes=(f"{n * VALUE_BYTES / dt / 1e6:,.1f} MB/s; {reqs:,} consumes in {dt:.2f} s, "
                   f"{n / reqs:,.0f} rec/response (max {biggest:,}); {cpu_note(c, reqs)} "
                   f"{ratio_txt}").rstrip(),
            params=dict(max_records=max_records, records=n, seconds=dt, consumes=reqs, cpu=c,
                        max_bytes_total=max_bytes, largest_response=biggest,
                        empty_before_data=empty_before, empty_after_data=empty_after,
                        records_per_trivial_request=ratio, backlog_fill_seconds=fill_s),
        ))
    before = sum(e[0] for e in empties.values())
    rows.append(Row(
        key="consume_empty_before_data", figure=2,
        benchmark="consume: empty before first data",
        settings="both runs above (subscribe, then the first consumes over the backlog)",
        result=f"{before}", value=before, unit="consumes",
        target=f"== {TARGET_EMPTY_BEFORE_DATA}", passed=before == TARGET_EMPTY_BEFORE_DATA,
        notes="; ".join(f"max_records {m:,}: {b} before, {a} after first data"
                        for m, (b, a) in empties.items()),
        params={f"max_records_{m}": dict(before=b, after=a) for m, (b, a) in empties.items()},
    ))
    return rows


# -- waiting helpers (figs 3 and 4) -----------------------------------------------------------

def wait_until_consuming(s, srv: Server, groups: list[str], members: set[str],
                         launched: float, timeout: float, interval: float) -> tuple[float, int]:
    """Poll ``GET /api/consumer-groups/{g}`` until every consumer in ``members`` shows a
    heartbeat newer than ``launched`` (perf_counter time the consumes were released).

    Before the launch every heartbeat was at least a gap (WAKE_GAP_S / MANY_GAP_S) old, a
    consume's first act is a heartbeat, and nothing else sends one: so a member whose
    ``last_heartbeat_ms_ago`` is at most the time since the launch has entered its consume.
    Returns (seconds waited, describe rounds)."""
    deadline = perf_counter() + timeout
    rounds = 0
    while True:
        rounds += 1
        started = set()
        for g in groups:
            doc = get(s, f"{srv.base}/api/consumer-groups/{g}")
            since_ms = (perf_counter() - launched) * 1000
            for m in doc["members"]:
                if m["last_heartbeat_ms_ago"] <= since_ms + 1:
                    started.add(m["consumer_id"])
        if members <= started:
            return perf_counter() - launched, rounds
        if perf_counter() > deadline:
            raise BenchError(f"{len(members - started)} of {len(members)} consumes not seen "
                             f"started within {timeout:.0f} s")
        time.sleep(interval)


# -- 9. filtered consume ----------------------------------------------------------------------

FILTER_HIT_EVERY = 100  # 1 % of the records match


def filter_bodies(n_bodies: int = N_BODIES, batch: int = BATCH) -> list[bytes]:
    """Produce requests of ``batch`` keyed JSON records (~100 B values), one in
    FILTER_HIT_EVERY keyed ``hit-...`` with ``"kind": "hit"``, the others ``miss``."""
    bodies = []
    for b in range(n_bodies):
        records = []
        for i in range(batch):
            kind = "hit" if (b * batch + i) % FILTER_HIT_EVERY == 0 else "miss"
            value = {"kind": kind, "n": i, "order": {"total": i * 3, "items": [1, 2, 3]},
                     "note": "x" * 24}
            records.append({"key": f"{kind}-{i}", "value": orjson.dumps(value).decode()})
        bodies.append(orjson.dumps({"encoding": "text", "records": records}))
    return bodies


def drain(srv: Server, topic: str, group: str, body: dict, n: int) -> tuple[float, int, int, int]:
    """Consume ``topic`` from the beginning with ``body`` until positions reach ``n``
    records: ``(seconds, records returned, records examined, consumes)``."""
    cs = new_session()
    sub = post(cs, f"{srv.base}/api/consumers/subscribe", orjson.dumps(
        {"group_id": group, "topics": [topic], "auto_offset_reset": "earliest"}))
    url = f"{srv.base}/api/consumers/{sub['consumer_id']}/consume"
    data = orjson.dumps(body)
    returned = scanned = reqs = 0
    t0 = perf_counter()
    while scanned < n:
        got = post(cs, url, data)
        reqs += 1
        returned += len(got["records"])
        scanned += got.get("scanned", len(got["records"]))
        if reqs > 10 * n:
            raise BenchError("the filtered consume does not advance")
    dt = perf_counter() - t0
    with contextlib.suppress(Exception):
        cs.delete(f"{srv.base}/api/consumers/{sub['consumer_id']}", timeout=30)
    return dt, returned, scanned, reqs


def fig9_filter(srv: Server, sizes: dict) -> list[Row]:
    s = new_session()
    topic, n = "filtered", sizes["backlog"] // 2
    create_topic(s, srv, topic, 1)
    progress(f"fig 9: producing {n:,} keyed JSON records, 1 % matching (untimed) ...")
    bodies = filter_bodies()
    url = f"{srv.base}/api/topics/{topic}/records"
    for j in range(n // BATCH):
        post(s, url, bodies[j % len(bodies)])
    base = {"max_records": 10_000, "timeout_ms": 0, "max_bytes_total": 16 * MiB}
    runs = [("no filter (baseline)", "unfiltered", None),
            ("key prefix, 1 % match", "key", {"key": {"prefix": "hit-"}}),
            ("JSON value path, 1 % match", "value", {"value": {"path": "kind", "equals": "hit"}})]
    rows = []
    for label, key, spec in runs:
        progress(f"fig 9: consume {n:,} records, {label} ...")
        body = dict(base) if spec is None else {**base, "filter": spec}
        dt, returned, scanned, reqs = drain(srv, topic, f"filter-{key}", body, n)
        rate = scanned / dt
        rows.append(Row(
            key=f"filter_{key}", figure=9, benchmark=f"filtered consume: {label}",
            settings=(f"1 consumer, {n:,} keyed JSON rec (~100 B), 1 partition, "
                      "max_records 10,000, timeout_ms 0"),
            result=fmt_rate(rate), value=rate, unit="records examined/s",
            notes=(f"{returned:,} returned in {reqs:,} consumes, {dt:.2f} s "
                   f"({returned / dt:,.0f} matches/s)"),
            params=dict(records=n, returned=returned, scanned=scanned, consumes=reqs,
                        seconds=dt, filter=spec),
        ))
    return rows


# -- 3. wake-up latency -----------------------------------------------------------------------

def fig3_wakeup(srv: Server, sizes: dict, rng: random.Random) -> list[Row]:
    s = new_session()
    topic, group = "wake", "wake-g"
    create_topic(s, srv, topic, 1)
    sub = subscribe(s, srv, group, topic, auto_offset_reset="latest",
                    session_timeout_ms=IDLE_SESSION_TIMEOUT_MS)
    cid = sub["consumer_id"]
    consume_url = f"{srv.base}/api/consumers/{cid}/consume"
    consume_body = orjson.dumps({"timeout_ms": LONG_POLL_MS, "max_records": 10})
    produce_url = f"{srv.base}/api/topics/{topic}/records"
    bodies = [orjson.dumps({"records": [{"value": b64(rng.randbytes(VALUE_BYTES))}]})
              for _ in range(N_BODIES)]
    jobs: queue.Queue = queue.Queue()
    results: queue.Queue = queue.Queue()

    def consumer():
        cs = new_session()
        while True:
            job = jobs.get()
            if job is None:
                return
            try:
                resp = cs.post(consume_url, data=consume_body, timeout=LONG_POLL_MS / 1000 + 15)
                t = perf_counter()
                results.put((t, check(resp)["records"], None))
            except BaseException as exc:
                results.put((perf_counter(), None, exc))

    th = threading.Thread(target=consumer, name="wake-consumer", daemon=True)
    th.start()
    warmup, samples = 5, sizes["wake_samples"]
    from_resp, from_send, early, wait_rounds = [], [], 0, []
    expected_offset = 0
    progress(f"fig 3: {samples} wake-up samples (+{warmup} warm-up) ...")
    try:
        for i in range(warmup + samples):
            time.sleep(WAKE_GAP_S)  # the last heartbeat (previous consume) ages by the gap
            launched = perf_counter()
            jobs.put(1)
            _, rounds = wait_until_consuming(s, srv, [group], {cid}, launched, 10.0, 0.001)
            time.sleep(WAKE_SETTLE_S)  # from heartbeat to sleeping on the waiter
            if not results.empty():
                raise BenchError("the consume returned before anything was produced: "
                                 f"{results.get()}")
            t_send = perf_counter()
            resp = s.post(produce_url, data=bodies[i % len(bodies)], timeout=30)
            t_produced = perf_counter()
            check(resp)
            try:
                t_consumed, records, err = results.get(timeout=LONG_POLL_MS / 1000 + 20)
            except queue.Empty:
                raise BenchError("the consume did not return") from None
            if err is not None:
                raise err
            if len(records) != 1 or records[0]["offset"] != expected_offset:
                raise BenchError(f"sample {i}: expected offset {expected_offset}, got "
                                 f"{[(r['partition'], r['offset']) for r in records]}")
            expected_offset += 1
            if i >= warmup:
                from_resp.append(t_consumed - t_produced)
                from_send.append(t_consumed - t_send)
                wait_rounds.append(rounds)
                early += t_consumed < t_produced
    finally:
        jobs.put(None)
    st, st_send = latency_stats(from_resp), latency_stats(from_send)
    settings = (f"1 consumer waiting (timeout_ms={LONG_POLL_MS}) on 1 partition, 1 record x "
                f"{VALUE_BYTES} B produced; {samples} samples after {warmup} warm-up")
    common = dict(samples=samples, warmup=warmup, gap_s=WAKE_GAP_S, settle_s=WAKE_SETTLE_S,
                  from_produce_response=st, from_produce_sent=st_send,
                  consume_before_produce_response=early,
                  describe_rounds_mean=sum(wait_rounds) / len(wait_rounds),
                  from_produce_response_ms=[v * 1000 for v in from_resp],
                  from_produce_sent_ms=[v * 1000 for v in from_send])
    note_send = (f"from produce sent: p50 {st_send['p50_ms']:.2f} p99 {st_send['p99_ms']:.2f} "
                 f"max {st_send['max_ms']:.2f} ms")
    return [
        Row(key="wakeup_p50", figure=3, benchmark="wake-up latency p50", settings=settings,
            result=fmt_ms(st["p50_ms"]), value=st["p50_ms"], unit="ms",
            target=f"<= {TARGET_WAKE_P50_MS:g} ms", passed=st["p50_ms"] <= TARGET_WAKE_P50_MS,
            notes=(f"consume response - produce response; min {st['min_ms']:.2f} ms; "
                   f"{early} of {samples} consumes answered before the produce"),
            params=common),
        Row(key="wakeup_p99", figure=3, benchmark="wake-up latency p99", settings=settings,
            result=fmt_ms(st["p99_ms"]), value=st["p99_ms"], unit="ms",
            target=f"<= {TARGET_WAKE_P99_MS:g} ms", passed=st["p99_ms"] <= TARGET_WAKE_P99_MS,
            notes=f"max {st['max_ms']:.2f} ms; {note_send}",
            params=dict(samples=samples)),
    ]


# -- 8. subscribe to first record ---------------------------------------------------------------

def fig8_first_record(srv: Server, sizes: dict) -> list[Row]:
    """Each sample is a new group with one member: the time from sending its subscribe
    (``earliest``) until a consume returns its first record."""
    s = new_session()
    topic, partitions = "first", 4
    create_topic(s, srv, topic, partitions)
    records = [{"value": b64(b"x" * VALUE_BYTES), "partition": p} for p in range(partitions)]
    post(s, f"{srv.base}/api/topics/{topic}/records", orjson.dumps({"records": records}))
    consume_body = orjson.dumps({"timeout_ms": LONG_POLL_MS, "max_records": 1})
    samples, subscribes = [], []
    for i in range(sizes["join_samples"]):
        t0 = perf_counter()
        doc = subscribe(s, srv, f"first-{i}", topic, auto_offset_reset="earliest")
        subscribes.append(perf_counter() - t0)
        cid = doc["consumer_id"]
        got = []
        while not got:
            got = post(s, f"{srv.base}/api/consumers/{cid}/consume", consume_body,
                       timeout=LONG_POLL_MS / 1000 + 30)["records"]
            if perf_counter() - t0 > 60:
                raise BenchError(f"no record {60} s after subscribing (sample {i})")
        samples.append(perf_counter() - t0)
        check(s.delete(f"{srv.base}/api/consumers/{cid}", timeout=30))
    st, sub = latency_stats(samples), latency_stats(subscribes)
    settings = (f"a new group per sample, 1 member, auto_offset_reset earliest; {partitions} "
                f"partitions with a record each; {len(samples)} samples")
    return [Row(key="first_record_p50", figure=8, benchmark="subscribe to first record p50",
                settings=settings, result=fmt_ms(st["p50_ms"]), value=st["p50_ms"], unit="ms",
                notes=(f"max {st['max_ms']:.1f} ms; the subscribe alone: p50 "
                       f"{sub['p50_ms']:.1f} ms, max {sub['max_ms']:.1f} ms"),
                params=dict(first_record=st, subscribe=sub))]


# -- 4. many waiting consumers ----------------------------------------------------------------

def fig4_many(srv: Server, sizes: dict, rng: random.Random) -> list[Row]:
    n = sizes["waiting_consumers"]
    partitions = 100
    n_groups = max(1, n // partitions)
    n = n_groups * partitions
    s = new_session()
    topic = "many"
    create_topic(s, srv, topic, partitions)
    groups = [f"many-{g:02d}" for g in range(n_groups)]
    progress(f"fig 4: subscribing {n:,} consumers ({n_groups} groups x {partitions}) ...")
    sub_body = {g: orjson.dumps({"group_id": g, "topics": [topic], "auto_offset_reset": "latest",
                                 "session_timeout_ms": IDLE_SESSION_TIMEOUT_MS})
                for g in groups}
    consumers = []  # (group, consumer_id)
    t0 = perf_counter()
    for g in groups:
        for _ in range(partitions):
            doc = post(s, f"{srv.base}/api/consumers/subscribe", sub_body[g])
            consumers.append((g, doc["consumer_id"]))
    subscribe_s = perf_counter() - t0

    consume_body = orjson.dumps({"timeout_ms": LONG_POLL_MS, "max_records": 10})
    assigned: list = [None] * n
    outcome: list = [None] * n
    ready = threading.Semaphore(0)
    go = threading.Event()

    def client(i):
        cs = new_session()
        g, cid = consumers[i]
        try:
            assigned[i] = get(cs, f"{srv.base}/api/consumers/{cid}/assignment")
        except BaseException as exc:
            assigned[i] = exc
        ready.release()
        if not go.wait(600) or isinstance(assigned[i], BaseException):
            return
        try:
            resp = cs.post(f"{srv.base}/api/consumers/{cid}/consume", data=consume_body,
                           timeout=LONG_POLL_MS / 1000 + 30)
            t = perf_counter()
            outcome[i] = (t, check(resp)["records"], None)
        except BaseException as exc:
            outcome[i] = (perf_counter(), None, exc)

    old_stack = threading.stack_size()
    threading.stack_size(512 * KiB)
    try:
        threads = [threading.Thread(target=client, args=(i,), name=f"many-{i}", daemon=True)
                   for i in range(n)]
        for t in threads:
            t.start()
    finally:
        threading.stack_size(old_stack)
    try:
        for _ in range(n):
            if not ready.acquire(timeout=120):
                raise BenchError("client threads did not read their assignments in time")
        # every join rebalanced its group: the final assignment, read after all joined
        owner: dict = {}   # consumer index -> partition
        bad_assign = []
        for i, doc in enumerate(assigned):
            if isinstance(doc, BaseException):
                raise BenchError(f"GET assignment failed: {doc!r}")
            parts = doc["assignment"].get(topic, [])
            if len(parts) != 1:
                bad_assign.append((i, parts))
            else:
                owner[i] = parts[0]
        for g in groups:
            got = sorted(owner[i] for i, (gg, _) in enumerate(consumers) if gg == g and i in owner)
            if got != list(range(partitions)):
                bad_assign.append((g, "partitions not covered once"))
        if bad_assign:
            raise BenchError(f"assignment is not one partition per consumer: {bad_assign[:5]}")
        time.sleep(MANY_GAP_S)
        launched = perf_counter()
        go.set()
        progress(f"fig 4: {n:,} consumes launched; waiting until all are seen waiting ...")
        seen_s, rounds = wait_until_consuming(s, srv, groups, {c for _, c in consumers},
                                              launched, 120.0, 0.05)
        time.sleep(MANY_SETTLE_S)
        if any(o is not None for o in outcome):
            early_done = sum(o is not None for o in outcome)
            progress(f"fig 4: WARNING {early_done} consume(s) returned before any produce")
        progress(f"fig 4: all waiting after {seen_s:.2f} s; producing 1 record to each of "
                 f"{partitions} partitions ...")
        bodies = [orjson.dumps({"records": [{"value": b64(f"p{p}".encode()), "partition": p}]})
                  for p in range(partitions)]
        produce_url = f"{srv.base}/api/topics/{topic}/records"
        sent, produced = [0.0] * partitions, [0.0] * partitions
        for p in range(partitions):
            sent[p] = perf_counter()
            resp = s.post(produce_url, data=bodies[p], timeout=30)
            produced[p] = perf_counter()
            offs = check(resp)["offsets"]
            if offs[0]["partition"] != p:
                raise BenchError(f"record for partition {p} went to {offs[0]['partition']}")
        produce_s = produced[-1] - sent[0]
        deadline = time.monotonic() + LONG_POLL_MS / 1000 + 40
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        alive = sum(t.is_alive() for t in threads)
    finally:
        go.set()
    lat, lat_send, per_consumer = [], [], []
    v = dict(no_response=0, error=0, empty=0, early=0, not_exactly_one=0, foreign_partition=0)
    for i in range(n):
        p = owner[i]
        o = outcome[i]
        if o is None:
            v["no_response"] += 1
            continue
        t, records, err = o
        if err is not None:
            v["error"] += 1
            continue
        if not records:
            v["empty"] += 1
        elif t < sent[p]:
            v["early"] += 1
        if records and len(records) != 1:
            v["not_exactly_one"] += 1
        if any(r["partition"] != p for r in records):
            v["foreign_partition"] += 1
        if records and len(records) == 1 and records[0]["partition"] == p:
            lat.append(t - produced[p])
            lat_send.append(t - sent[p])
            per_consumer.append((consumers[i][0], p, round((t - produced[p]) * 1000, 3)))
    total_v = sum(v.values())
    st = latency_stats(lat) if lat else None
    st_send = latency_stats(lat_send) if lat_send else None
    settings = (f"{n_groups} groups x {partitions} consumers on 1 topic of {partitions} partitions, "
                f"1 thread + Session each, timeout_ms={LONG_POLL_MS}; 1 produce per partition, "
                f"sequential; {srv.describe_settings()}")
    errs = [repr(o[2])[:200] for o in outcome if o is not None and o[2] is not None]
    params = dict(consumers=n, groups=n_groups, partitions=partitions,
                  subscribe_seconds=subscribe_s, seen_waiting_after_s=seen_s,
                  describe_rounds=rounds, gap_s=MANY_GAP_S, settle_s=MANY_SETTLE_S,
                  produce_seconds=produce_s, from_produce_response=st,
                  from_produce_sent=st_send, violations=v, threads_alive=alive,
                  first_errors=errs[:5],
                  produce_ms=[round((produced[p] - sent[p]) * 1000, 3) for p in range(partitions)],
                  latency_ms_by_consumer=per_consumer)
    rows = []
    if st is not None:
        rows.append(Row(
            key="many_wakeup_p99", figure=4, benchmark=f"{n:,} waiting consumers: wake-up p99",
            settings=settings, result=fmt_ms(st["p99_ms"]), value=st["p99_ms"], unit="ms",
            target=f"<= {TARGET_MANY_WAKE_P99_MS:g} ms",
            passed=st["p99_ms"] <= TARGET_MANY_WAKE_P99_MS,
            notes=(f"p50 {st['p50_ms']:.2f} max {st['max_ms']:.2f} ms (consume response - its "
                   f"partition's produce response; from produce sent: p50 "
                   f"{st_send['p50_ms']:.2f} p99 {st_send['p99_ms']:.2f}); {partitions} produces "
                   f"took {produce_s * 1000:,.0f} ms; all seen waiting {seen_s:.2f} s after launch"),
            params=params))
    rows.append(Row(
        key="many_violations", figure=4, benchmark=f"{n:,} waiting consumers: violations",
        settings="each consumer: exactly its partition's one record, not before it was produced",
        result=str(total_v), value=total_v, unit="consumers",
        target=f"== {TARGET_VIOLATIONS}", passed=total_v == TARGET_VIOLATIONS,
        notes=", ".join(f"{k} {c}" for k, c in v.items()) + (f"; first error {errs[0]}" if errs else ""),
        params=dict(violations=v, subscribe_seconds=subscribe_s)))
    if alive:
        raise BenchError(f"{alive} consumer threads still waiting")
    return rows


# -- 5. memory --------------------------------------------------------------------------------

def fig5_memory(srv: Server, sizes: dict) -> list[Row]:
    n = sizes["idle_sessions"]
    members = 10
    n_groups = n // members
    n = n_groups * members
    s = new_session()
    topic = "idle"
    create_topic(s, srv, topic, 10)
    # warm-up: the subscribe/describe/close code paths and their caches, then measure
    warm = [subscribe(s, srv, "idle-warmup", topic)["consumer_id"] for _ in range(members)]
    get(s, f"{srv.base}/api/consumer-groups/idle-warmup")
    for cid in warm:
        check(s.delete(f"{srv.base}/api/consumers/{cid}", timeout=30))
    time.sleep(0.5)
    rss_before = srv.rss_kib()
    progress(f"fig 5: worker RSS {rss_before:,} KiB with 0 sessions; subscribing {n:,} idle "
             f"sessions ({n_groups} groups x {members}) from 4 threads ...")
    clients = 4

    def work(i, cs):
        count = 0
        for g in range(i, n_groups, clients):
            body = orjson.dumps({"group_id": f"idle-{g:05d}", "topics": [topic],
                                 "session_timeout_ms": IDLE_SESSION_TIMEOUT_MS})
            for _ in range(members):
                post(cs, f"{srv.base}/api/consumers/subscribe", body)
                count += 1
        return count, 0.0, 0.0

    t0 = perf_counter()
    res = run_threads(clients, work, "subscribe", 1800)
    sub_s = perf_counter() - t0
    made = sum(r[0] for r in res)
    listing = get(s, f"{srv.base}/api/consumer-groups")["groups"]
    live = sum(len(g["members"]) for g in listing if g["group_id"].startswith("idle-0"))
    if made != n or live != n:
        raise BenchError(f"subscribed {made}, the server lists {live} members, expected {n}")
    time.sleep(1.0)
    rss_after = srv.rss_kib()
    per = (rss_after - rss_before) / n
    return [Row(
        key="memory_per_session", figure=5, benchmark="memory per idle session",
        settings=(f"{n:,} sessions = {n_groups:,} groups x {members} members on 1 topic of 10 "
                  f"partitions, session_timeout_ms={IDLE_SESSION_TIMEOUT_MS}; worker VmRSS; "
                  f"{srv.describe_settings()}"),
        result=f"{per:,.2f} KiB", value=per, unit="KiB/session",
        target=f"<= {TARGET_KIB_PER_SESSION:g} KiB", passed=per <= TARGET_KIB_PER_SESSION,
        notes=(f"RSS {rss_before / 1024:,.1f} -> {rss_after / 1024:,.1f} MiB; "
               f"{n / sub_s:,.0f} subscribes/s with {clients} threads ({sub_s:.1f} s)"),
        params=dict(sessions=n, groups=n_groups, members=members, rss_before_kib=rss_before,
                    rss_after_kib=rss_after, subscribe_seconds=sub_s, subscribe_threads=clients),
    )]


# -- 6. end-to-end ----------------------------------------------------------------------------

def fig6_e2e(srv: Server, sizes: dict, rng: random.Random) -> list[Row]:
    s = new_session()
    topic, group = "e2e", "e2e-g"
    n_parts, n_cons, n_prod = 32, 8, 2
    dur = sizes["e2e_s"]
    create_topic(s, srv, topic, n_parts)
    subs = [subscribe(s, srv, group, topic, auto_offset_reset="earliest", auto_commit=True,
                      session_timeout_ms=IDLE_SESSION_TIMEOUT_MS)["consumer_id"]
            for _ in range(n_cons)]
    owned = []
    for cid in subs:
        owned.append(get(s, f"{srv.base}/api/consumers/{cid}/assignment")["assignment"][topic])
    bodies = produce_bodies(rng)
    produce_url = f"{srv.base}/api/topics/{topic}/records"
    min_records = sizes.get("e2e_min_records", 1)
    consume_body = orjson.dumps({"max_records": BATCH, "timeout_ms": 1000,
                                 **({"min_records": min_records} if min_records > 1 else {})})
    progress(f"fig 6: {n_prod} producers, {n_cons} consumers, {n_parts} partitions, {dur:.0f} s ...")

    def producer(i, cs):
        return produce_loop(cs, produce_url, bodies[i::n_prod] or bodies, dur)

    def consumer(i, cs):
        url = f"{srv.base}/api/consumers/{subs[i - n_prod]}/consume"
        n = empties = reqs = 0
        t0 = perf_counter()
        end = t0 + dur
        while True:
            try:
                resp = cs.post(url, data=consume_body, timeout=60)
            except requests.RequestException as exc:
                raise failed("POST", url, exc) from exc
            if resp.status_code != 200:
                check(resp)
            got = len(orjson.loads(resp.content)["records"])
            reqs += 1
            empties += got == 0
            n += got
            t = perf_counter()
            if t >= end:
                break
        # what the last consume returned is committed explicitly (auto_commit commits a
        # batch at the start of the next consume)
        post(cs, f"{srv.base}/api/consumers/{subs[i - n_prod]}/commit", b"")
        return n, t0, t, reqs, empties

    def work(i, cs):
        return producer(i, cs) if i < n_prod else consumer(i, cs)

    cpu = CpuMeter(srv)
    res = run_threads(n_prod + n_cons, work, "e2e", dur + 300)
    c = cpu.done()
    produced, p_dt = aggregate(res[:n_prod])
    consumed, c_dt = aggregate(res[n_prod:])
    desc = get(s, f"{srv.base}/api/consumer-groups/{group}")
    lag = sum(o["lag"] for o in desc["offsets"])
    committed = sum(o["committed_offset"] for o in desc["offsets"])
    hw = total_high_watermark(s, srv, topic)
    reqs = sum(r[3] for r in res[n_prod:])
    empties = sum(r[4] for r in res[n_prod:])
    settings = (f"{n_prod} producers ({BATCH} x {VALUE_BYTES} B), {n_cons} consumers in 1 group, "
                f"{n_parts} partitions, {dur:.0f} s; consume max_records={BATCH} timeout_ms=1000"
                + (f" min_records={min_records}" if min_records > 1 else "")
                + ", auto_commit=true + a final commit")
    oddity = "" if committed == consumed and hw == produced else (
        f"; MISMATCH committed {committed:,} vs consumed {consumed:,}, hw {hw:,} vs produced {produced:,}")
    params = dict(producers=n_prod, consumers=n_cons, partitions=n_parts, seconds=dur,
                  produced=produced, produce_seconds=p_dt, consumed=consumed,
                  consume_seconds=c_dt, lag=lag, committed=committed, high_watermark=hw,
                  consume_requests=reqs, empty_consumes=empties, cpu=c,
                  per_consumer=[r[0] for r in res[n_prod:]], assignment=owned)
    return [
        Row(key="e2e_consumed", figure=6, benchmark="end-to-end: consumed", settings=settings,
            result=fmt_rate(consumed / c_dt), value=consumed / c_dt, unit="records/s",
            notes=(f"{consumed:,} records, {reqs:,} consumes ({empties:,} empty), "
                   f"per consumer " + "/".join(f"{r[0] // 1000}k" for r in res[n_prod:])
                   + f"; {cpu_note(c)}" + oddity),
            params=params),
        Row(key="e2e_produced", figure=6, benchmark="end-to-end: produced", settings=settings,
            result=fmt_rate(produced / p_dt), value=produced / p_dt, unit="records/s",
            notes=f"{produced:,} records in {p_dt:.1f} s", params=dict(produced=produced)),
        Row(key="e2e_lag", figure=6, benchmark="end-to-end: lag at end", settings=settings,
            result=f"{lag:,} rec", value=lag, unit="records",
            notes=(f"sum of lag in GET /api/consumer-groups/{group} after the final commits "
                   f"({lag / max(produced, 1):.2%} of produced; producers' last requests can "
                   "land after the consumers' last consume)"),
            params=dict(lag=lag)),
    ]


# -- main -------------------------------------------------------------------------------------

GROUPS = [  # (name, figures, runner(env, extra args) chooser)
    ("http-produce", (7, 1)),
    ("consume", (2,)),
    ("filter", (9,)),
    ("wakeup", (3, 8)),
    ("waiting", (4,)),
    ("memory", (5,)),
    ("e2e", (6,)),
]


def server_settings(name: str, sizes: dict) -> tuple[dict, list]:
    if name == "waiting":
        # one thread per waiting long-poll, plus the reserve and headroom; the worker holds
        # at most worker_connections connections.
        # Every consumer is this one client (one address): lift its shares of polls and
        # sessions (defaults 16 and 1,000) to what the figure needs
        threads = sizes["waiting_consumers"] + 64
        return {"CONSUMER_API_THREADS": threads,
                "CONSUMER_API_MAX_POLLS_PER_CLIENT": threads,
                "CONSUMER_API_MAX_SESSIONS_PER_CLIENT": threads}, \
            ["--worker-connections", str(2 * threads)]
    if name == "memory":
        # every session is this one client's: lift its share (default 1,000) with the cap
        sessions = max(20_000, sizes["idle_sessions"] + 1_000)
        return {"CONSUMER_API_MAX_SESSIONS": sessions,
                "CONSUMER_API_MAX_SESSIONS_PER_CLIENT": sessions}, []
    return {}, []


def error_row(fig: int, exc: BaseException) -> Row:
    return Row(key=f"fig{fig}_error", figure=fig, benchmark=f"figure {fig}",
               settings="-", error=repr(exc)[:500], notes=str(exc).splitlines()[0][:200])


def kill_servers() -> None:
    """Close the client connections and kill every server still running (the first step
    of the cleanup on any exit)."""
    close_sessions()
    kill_every_server()


#: the figures that mean something on the kafka store (4 and 5 need more sessions than
#: a node holds there; 6 is the embedded end-to-end run); a kafka run measures them on
#: both stores, the embedded one second
KAFKA_FIGURES = {1, 2, 3, 7, 8, 9}


@contextlib.contextmanager
def store_settings(backend: str, workdir: str):
    """The server settings of the store: nothing for the embedded engine; for kafka, a
    single-node broker started in ``workdir`` for the run (stopped on the way out)."""
    if backend == "embedded":
        yield {}
        return
    sys.path.insert(0, str(ROOT))
    from pathlib import Path
    from tests.kafka.broker import start_broker
    progress("starting a Kafka broker ...")
    broker = start_broker(Path(workdir) / "kafka")
    try:
        yield {"CONSUMER_API_BACKEND": "kafka",
               "CONSUMER_API_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap}
    finally:
        broker.stop()


def run_figures(workdir: str, only: set, sizes: dict, rng: random.Random, store_env: dict,
                oddities: list, checkouts=(("", ROOT),)) -> list[Row]:
    """The chosen figures on one store (``store_env``: its server settings), a server per
    figure group and checkout (``(label, root)``; label "" for this one), the checkouts
    taking turns group by group; a figure that fails gives an error row."""
    rows: list[Row] = []
    ceilings: dict = {label: {} for label, _root in checkouts}
    for name, figs in GROUPS:
        figs = [f for f in figs if f in only]
        if not figs:
            continue
        env, extra = server_settings(name, sizes)
        env = {**env, **store_env}
        for label, root in checkouts:
            # --min-records is this checkout's: a baseline release may not take the field
            got = run_group(name, figs, workdir, env, extra, oddities, root,
                            dict(sizes, e2e_min_records=1) if label else sizes,
                            ceilings[label], rng, label)
            for r in got:
                if label:
                    r.benchmark += f" [{label}]"
                    r.key += f"_{label}"
            rows += got
    return rows


def run_group(name: str, figs: list, workdir: str, env: dict, extra: list, oddities: list,
              root, sizes: dict, ceiling: dict, rng: random.Random, label: str) -> list[Row]:
    rows: list[Row] = []
    current = figs[0]
    server_name = f"{name}-{label}" if label else name
    try:
        with running_server(server_name, workdir, env, extra, oddities, root) as srv:
            for fig in figs:
                current = fig
                t0 = perf_counter()
                rows += FIGURES[fig](srv, sizes, ceiling, rng)
                progress(f"fig {fig} done in {perf_counter() - t0:.1f} s")
    except (BenchError, requests.RequestException, OSError, KeyError, TypeError,
            ValueError, threading.BrokenBarrierError) as exc:
        progress(f"fig {current}: ERROR {exc!r}\n" + traceback.format_exc())
        rows.append(error_row(current, exc))
        oddities.append(f"figure {current} failed: {str(exc).splitlines()[0][:300]}")
    return rows


def compare_to_baseline(rows: list[Row], label: str = "baseline") -> None:
    """Note on each row of this checkout its ratio to the baseline's same row (and the
    ratio of their records per trivial-request time, where both have one)."""
    tag = f"_{label}"
    base = {r.key.replace(tag, "", 1): r for r in rows if tag in r.key}
    for r in rows:
        b = base.get(r.key)
        if b is None or b is r or not r.value or not b.value:
            continue
        note = f"{r.value / b.value:.2f}x baseline"
        mine = r.params.get("records_per_trivial_request")
        theirs = b.params.get("records_per_trivial_request")
        if mine and theirs:
            note += f" ({mine:,.0f} vs {theirs:,.0f} records per trivial request: " \
                    f"{mine / theirs:.2f}x)"
        mine, theirs = _server_us_per_record(r), _server_us_per_record(b)
        if mine and theirs:
            note += f"; server CPU {mine:.2f} vs {theirs:.2f} us/record ({mine / theirs:.2f}x)"
        r.notes = f"{note}; {r.notes}"


def _server_us_per_record(row: Row) -> float | None:
    cpu, records = row.params.get("cpu"), row.params.get("records")
    if not cpu or not records or not cpu.get("server_cpu_s"):
        return None
    return cpu["server_cpu_s"] / records * 1e6


#: figure -> its runner(server, sizes, ceiling, rng)
FIGURES = {
    1: fig1_produce,
    2: fig2_consume,
    3: lambda srv, sizes, _ceiling, rng: fig3_wakeup(srv, sizes, rng),
    4: lambda srv, sizes, _ceiling, rng: fig4_many(srv, sizes, rng),
    5: lambda srv, sizes, _ceiling, _rng: fig5_memory(srv, sizes),
    6: lambda srv, sizes, _ceiling, rng: fig6_e2e(srv, sizes, rng),
    7: lambda srv, sizes, ceiling, _rng: fig7_health(srv, sizes, ceiling),
    8: lambda srv, sizes, _ceiling, _rng: fig8_first_record(srv, sizes),
    9: lambda srv, sizes, _ceiling, _rng: fig9_filter(srv, sizes),
}


def server_setting(text: str) -> tuple[str, str]:
    """``--also``: ``CONSUMER_API_<NAME>=<value>``."""
    name, sep, value = text.partition("=")
    if not sep or not name.startswith("CONSUMER_API_"):
        raise argparse.ArgumentTypeError("expected CONSUMER_API_<NAME>=<value>")
    return name, value


def tag_rows(rows: list[Row], store: str | None, variant: tuple | None) -> None:
    """Mark the rows of one store (in a run of two) and of the ``--also`` setting."""
    for r in rows:
        if store:
            r.benchmark += f" [{store}]"
            r.key += f"_{store}"
        if variant:
            r.benchmark += f" [{variant[0].removeprefix('CONSUMER_API_').lower()}={variant[1]}]"
            r.key += f"_{variant[0].lower()}_{variant[1]}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: shorter runs, smaller backlog and fewer sessions")
    ap.add_argument("--only", metavar="N,...",
                    help="run only these figures (1-9); the 'records per trivial request' "
                         "ratio of figures 1-2 needs figure 7")
    ap.add_argument("--backend", choices=("embedded", "kafka"), default="embedded",
                    help=f"kafka: figures {sorted(KAFKA_FIGURES)} on the Kafka store (a local "
                         "single-node broker, the one the tests use: make test fetches its "
                         "jars), then the same on the embedded engine, in one run")
    ap.add_argument("--baseline", metavar="CHECKOUT",
                    help="also measure the project checked out at CHECKOUT (e.g. a worktree "
                         "of the previous release), alternating with this one, in one run")
    ap.add_argument("--baseline-first", action="store_true",
                    help="in each figure group, run the baseline's server first (the first "
                         "of a pair can fare differently: run both orders)")
    ap.add_argument("--also", metavar="NAME=VALUE", type=server_setting,
                    help="run the figures once more with this server setting (for example "
                         "CONSUMER_API_PERSIST_SESSIONS=false), in the same run and table")
    ap.add_argument("--min-records", metavar="N", type=int, default=1,
                    help="figure 6's consumers ask for min_records N: each consume waits "
                         "(up to its timeout) for N records -- fewer, larger consumes; "
                         "this checkout's only (a --baseline's consumers do not ask)")
    add_output_args(ap, "server")
    args = ap.parse_args(argv)
    checkouts = [("", ROOT)]
    if args.baseline:
        if not os.path.exists(os.path.join(args.baseline, "gunicorn.conf.py")):
            ap.error(f"{args.baseline} is not a checkout of the project")
        checkouts.append(("baseline", os.path.abspath(args.baseline)))
        if args.baseline_first:
            checkouts.reverse()
    only = parse_only(args.only, set(FIGURES), "figure")
    if args.backend == "kafka":
        only &= KAFKA_FIGURES
    sizes = dict(QUICK if args.quick else FULL, e2e_min_records=args.min_records)

    prepared = prepare_base_dir(args.dir, sizes["min_free"], fmt=lambda n: f"{n / MiB:,.0f} MiB",
                                hint=" (use --dir)")
    if prepared is None:
        return 2
    base, fst, warnings = prepared
    started = _dt.datetime.now()
    meta = dict(
        run_meta(started, args.quick, base, fst, figures=sorted(only)),
        loadavg_start=loadavg(), commit=git_commit("consumer_api", "gunicorn.conf.py"),
        source_sha1=source_digest(),
        gunicorn=gunicorn_version(), requests=requests.__version__,
        orjson=orjson.__version__, sizes=sizes, warnings=warnings,
        client=("requests.Session (trust_env=False) per client thread (keep-alive; produce loops send requests prepared once); request bodies serialised "
                f"once with orjson ({N_BODIES} distinct bodies cycled); responses parsed with "
                "orjson.loads(resp.content); time.perf_counter"),
    )
    stores = ["kafka", "embedded"] if args.backend == "kafka" else ["embedded"]
    meta["backend"] = args.backend
    meta["baseline"] = args.baseline and dict(path=os.path.abspath(args.baseline),
                                              commit=git_commit("consumer_api", root=args.baseline),
                                              first=args.baseline_first)
    meta["stores"] = stores
    rows: list[Row] = []
    oddities: list[str] = []
    rng = random.Random(20261126)
    stat0 = cpu_times()
    variants = [None] + ([args.also] if args.also else [])
    meta["also"] = args.also and "=".join(args.also)
    try:
        with temp_workdir(base, "server-bench-", release=kill_servers) as workdir:
            for store in stores:
                with store_settings(store, workdir) as store_env:
                    for variant in variants:
                        progress(f"data in {workdir} ({fst}); mode {meta['mode']}; figures "
                                 f"{sorted(only)}; store {store}; setting {variant}")
                        env = {**store_env, **dict([variant] if variant else [])}
                        got = run_figures(workdir, only, sizes, rng, env, oddities,
                                          checkouts)
                        tag_rows(got, store if len(stores) > 1 else None, variant)
                        rows += got
    except KeyboardInterrupt:  # temp_workdir has killed the servers and cleaned up
        return 130

    meta["loadavg_end"] = loadavg()
    meta["cpu_steal_share"] = steal_share(stat0, cpu_times())
    compare_to_baseline(rows)
    rows.sort(key=lambda r: r.figure)  # figure 7 runs first but is listed last
    for r in rows:
        r.benchmark += " (quick)" if args.quick else ""
    mode_txt = ("QUICK (smoke run: 1 s runs, 200k backlog, 50 samples, 200 waiting consumers, "
                "2,000 sessions, 10 s end-to-end; targets are meant for full runs)"
                if args.quick else "full")
    header = [
        f"consumer_api server benchmark -- {meta['started']} -- commit {meta['commit']}, "
        f"server source sha1 {meta['source_sha1']}",
        "mode: " + mode_txt,
        f"python {meta['python']} on {meta['platform']}, {meta['cpus']} cpus shared by client "
        f"and server; gunicorn {meta['gunicorn']} (gunicorn.conf.py: 1 worker, consumer_api.server); "
        f"data under {base} ({fst}); load average {meta['loadavg_start']} at start, "
        f"{meta['loadavg_end']} at end; CPU steal during the run "
        + ("?" if meta["cpu_steal_share"] is None else f"{meta['cpu_steal_share']:.1%}"),
        f"clients: {meta['client']}; client threads share one GIL",
        "server: a fresh one per figure group (7+1, 2, 3+8, 4, 5, 6), settings in the row when "
        "not the defaults; MB = 10^6 bytes of record values; records keyless, 100 B values",
    ] + [f"WARNING: {w}" for w in warnings]
    print(render_table(rows, header, COLUMNS))
    finish(rows, lambda r: f"#{r.figure} {r.benchmark}", "server", args.json, started, meta,
           oddities)
    return 0


if __name__ == "__main__":
    sys.exit(main())
