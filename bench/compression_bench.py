#!/usr/bin/env python
"""Compression benchmark: bytes on the wire and throughput of JSON records, uncompressed,
gzip and zstd, against the real server (gunicorn + Flask) over loopback.

Run from the project root::

    .venv/bin/python bench/compression_bench.py [--quick] [--rounds N] [--json PATH] [--dir DIR]

One server (started as ``make run`` does, default settings, fresh data directory). Each
round runs every coding in turn on a topic of its own (1 partition):

* produce: RECORDS JSON objects of about 300 B (``"encoding": "json"``), 500 per request;
  the request bodies are serialised before the clock starts, and compressed inside the
  timed loop as the Python client does (``consumer_api.client.COMPRESSORS``, sent with
  ``Content-Encoding``);
* consume: one consumer in a new group, from its subscribe to the response holding the
  last record (``max_records`` 500, ``encoding`` json), asking for the coding in
  ``Accept-Encoding``; responses are decompressed (by urllib3) and parsed with orjson.

A row gives the median of the rounds: body bytes per record on the wire (request bodies
for produce, response bodies -- their Content-Length -- for consume; HTTP heads left out),
records/s, and the CPU time of the server's worker per record. The table goes to stdout,
progress to stderr, the rows as JSON to bench/results/compression-<timestamp>.json (or
--json PATH). See bench/README.rst.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import os
import random
import statistics
import sys
import time

import orjson
import requests

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # for bench/common.py
from common import (MiB, add_output_args, git_commit, loadavg, prepare_base_dir,  # noqa: E402
                    progress, render_table, run_meta, set_progress_tag, temp_workdir,
                    write_json)
from server_process import BenchError, Server, kill_servers  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from consumer_api.client import COMPRESSORS  # noqa: E402

BATCH = 500
CODINGS = {  # name -> (Accept-Encoding, compress a request body)
    "none": ("identity", None),
    "gzip": ("gzip", COMPRESSORS["gzip"]),
    "zstd": ("zstd", COMPRESSORS["zstd"]),
}
FULL = dict(records=100_000, rounds=3)
QUICK = dict(records=10_000, rounds=1)
LINK_BYTES_PER_S = 100e6 / 8  # a 100 Mbit/s link, for the "link-bound" column


def order(rng: random.Random, i: int) -> dict:
    """One record value: an order event of about 300 bytes of compact JSON."""
    return {
        "event": "order_shipped", "order_id": 10_000_000 + i,
        "customer": {"id": f"c-{rng.randrange(100_000):06d}",
                     "country": rng.choice(["FR", "DE", "US", "GB", "ES", "IT", "NL"]),
                     "tier": rng.choice(["free", "pro", "enterprise"])},
        "items": [{"sku": f"SKU-{rng.randrange(5000):05d}", "qty": rng.randint(1, 4),
                   "price_cents": rng.randrange(199, 20_000)}
                  for _ in range(rng.randint(1, 3))],
        "shipped_at": 1_764_000_000_000 + i * 37,
        "carrier": rng.choice(["ups", "dhl", "la-poste", "fedex"]),
        "tracking": f"{rng.getrandbits(64):016x}",
    }


def produce_bodies(records: int) -> list[bytes]:
    rng = random.Random(15)
    values = [order(rng, i) for i in range(records)]
    return [orjson.dumps({"encoding": "json",
                          "records": [{"value": v} for v in values[i:i + BATCH]]})
            for i in range(0, records, BATCH)]


def check(resp: requests.Response, what: str) -> requests.Response:
    if resp.status_code >= 300:
        raise BenchError(f"{what}: {resp.status_code} {resp.text[:300]}")
    return resp


def produce(http: requests.Session, srv: Server, topic: str, bodies: list, coding: str):
    """``(seconds, body bytes sent, records)``."""
    compress = CODINGS[coding][1]
    headers = {"Content-Type": "application/json"}
    if compress:
        headers["Content-Encoding"] = coding
    url = f"{srv.base}/api/topics/{topic}/records"
    sent = count = 0
    started = time.perf_counter()
    for body in bodies:
        data = compress(body) if compress else body
        sent += len(data)
        count += len(orjson.loads(check(http.post(url, data=data, headers=headers),
                                        "produce").content)["offsets"])
    return time.perf_counter() - started, sent, count


def consume(http: requests.Session, srv: Server, topic: str, coding: str, records: int):
    """``(seconds, body bytes received, records)``: from the subscribe to the last record."""
    headers = {"Accept-Encoding": CODINGS[coding][0]}
    started = time.perf_counter()
    sub = check(http.post(f"{srv.base}/api/consumers/subscribe", headers=headers, json={
        "group_id": f"g-{topic}", "topics": [topic], "auto_offset_reset": "earliest",
        "encoding": "json"}), "subscribe").json()
    url = f"{srv.base}/api/consumers/{sub['consumer_id']}/consume"
    got = received = 0
    while got < records:
        resp = check(http.post(url, headers=headers, json={"max_records": BATCH,
                                                           "timeout_ms": 5000}), "consume")
        if resp.headers.get("Content-Encoding", "identity") != CODINGS[coding][0] \
                and int(resp.headers["Content-Length"]) >= 1024:
            raise BenchError(f"consume asked for {coding}, got "
                             f"{resp.headers.get('Content-Encoding')}")
        received += int(resp.headers["Content-Length"])
        got += len(orjson.loads(resp.content)["records"])
    elapsed = time.perf_counter() - started
    check(http.delete(f"{srv.base}/api/consumers/{sub['consumer_id']}"), "close")
    return elapsed, received, got


def one_round(http, srv: Server, bodies: list, records: int, number: int) -> dict:
    """Every coding once: ``{coding: {phase: (seconds, bytes, records, server cpu s)}}``."""
    out = {}
    for coding in CODINGS:
        topic = f"bench-{coding}-{number}"
        check(http.post(f"{srv.base}/api/topics", json={"name": topic, "partitions": 1}),
              "create topic")
        out[coding] = {}
        for phase, run in (("produce", lambda: produce(http, srv, topic, bodies, coding)),
                           ("consume", lambda: consume(http, srv, topic, coding, records))):
            cpu = srv.cpu_seconds()
            seconds, wire, count = run()
            out[coding][phase] = (seconds, wire, count, srv.cpu_seconds() - cpu)
            progress(f"round {number} {coding:4} {phase}: {count / seconds:,.0f} rec/s, "
                     f"{wire / count:.0f} B/rec")
        check(http.delete(f"{srv.base}/api/topics/{topic}"), "delete topic")
    return out


def rows_of(rounds: list) -> list[dict]:
    rows = []
    for phase in ("produce", "consume"):
        for coding in CODINGS:
            runs = [r[coding][phase] for r in rounds]
            per_record = statistics.median(w / n for _, w, n, _ in runs)
            rows.append(dict(
                phase=phase, coding=coding, bytes_per_record=per_record,
                records_per_s=statistics.median(n / s for s, _, n, _ in runs),
                server_cpu_us_per_record=statistics.median(c / n * 1e6 for _, _, n, c in runs),
                link_bound_records_per_s=LINK_BYTES_PER_S / per_record,
                runs=[dict(seconds=s, bytes=w, records=n, server_cpu_s=c)
                      for s, w, n, c in runs]))
    return rows


def table(rows: list, header: list[str]) -> str:
    base = {r["phase"]: r for r in rows if r["coding"] == "none"}
    cols = [
        ("phase", lambda i, r: r["phase"], False),
        ("coding", lambda i, r: r["coding"], False),
        ("B/record", lambda i, r: f"{r['bytes_per_record']:.0f}", True),
        ("vs none", lambda i, r: f"{r['bytes_per_record'] / base[r['phase']]['bytes_per_record']:.0%}",
         True),
        ("records/s", lambda i, r: f"{r['records_per_s']:,.0f}", True),
        ("vs none", lambda i, r: f"{r['records_per_s'] / base[r['phase']]['records_per_s']:.0%}",
         True),
        ("server CPU us/rec", lambda i, r: f"{r['server_cpu_us_per_record']:.1f}", True),
        ("100 Mbit/s carries", lambda i, r: f"{r['link_bound_records_per_s']:,.0f} rec/s", True),
    ]
    return render_table(rows, header, cols)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="10,000 records, one round")
    ap.add_argument("--rounds", type=int, help="rounds (default 3; the median is shown)")
    add_output_args(ap, "compression")
    args = ap.parse_args()
    set_progress_tag("compression-bench")
    sizes = dict(QUICK if args.quick else FULL)
    rounds = args.rounds or sizes["rounds"]
    prepared = prepare_base_dir(args.dir, 512 * MiB)
    if prepared is None:
        return 1
    base, fst, _ = prepared
    started = _dt.datetime.now()
    bodies = produce_bodies(sizes["records"])
    value_bytes = sum(len(orjson.dumps(r["value"])) for r in orjson.loads(bodies[0])["records"])
    with temp_workdir(base, "compression-bench-", release=kill_servers) as workdir:
        srv = Server("compression", workdir).start()
        try:
            with requests.Session() as http:
                results = [one_round(http, srv, bodies, sizes["records"], n + 1)
                           for n in range(rounds)]
        finally:
            srv.stop()
    rows = rows_of(results)
    header = [f"compression benchmark{' (QUICK)' if args.quick else ''}: "
              f"{sizes['records']:,} JSON records of {value_bytes / BATCH:.0f} B on average, "
              f"{BATCH} per request, 1 partition; median of {rounds} round(s)",
              f"commit {git_commit('consumer_api')}, load {loadavg()}; B/record: HTTP body "
              "bytes (produce: sent, consume: received); server CPU: its worker's"]
    print(table(rows, header))
    for problem in srv.problems:
        print(f"NOTE: {problem}")
    write_json(args.json, "compression", started, dict(
        meta=run_meta(started, args.quick, base, fst, rounds=rounds, records=sizes["records"]),
        oddities=srv.problems, rows=rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
