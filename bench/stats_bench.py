#!/usr/bin/env python
"""Topic statistics benchmark: ``GET /api/topics/{topic}/stats`` and ``/stats/keys`` on a
day of records (``consumer_api.topic_stats``), without HTTP.

Run from the project root::

    .venv/bin/python bench/stats_bench.py [--sizes 1,4,10] [--quick] [--kafka] [--dir DIR]
                                          [--json PATH]

For each partition size (GiB; ``--quick``: 64 and 256 MiB) a fresh embedded engine in a
temporary directory gets one topic of one partition, filled through its partition log with
records of 200 B values and skewed keys (10,000 of them) whose timestamps spread evenly
over one day; then, on that partition:

1. a day in 1-minute buckets (1,440) -- the console's chart of a day;
2. an hour in 1-minute buckets (60);
3. a day in 10-second buckets (8,640);
4. the top 10 keys of the day, which stops at the bound (100,000 records);
5. the baseline of the same run: a read of 10,000 records through the engine;
6. (smallest size only) counting the day per minute by reading every record: what the
   time index saves.

Figures 1-5 are the median of 5 runs (the first, on a cold cache of the partition's maps,
is in the notes). ``--kafka`` also starts the tests' single-node Kafka broker
(``tests/kafka/broker.py``), produces 1,000,000 records over the last day and times the
1,440 boundary lookups as the Kafka store makes them (100 ListOffsets requests in flight)
against one request at a time, and the top keys at the bound. The temporary directory is
always deleted (also on Ctrl-C / SIGTERM); the rows go to ``bench/results/stats-<timestamp>.json``
(or ``--json PATH``).
"""
from __future__ import annotations

import argparse
import datetime as _dt
import os
import random
import shutil
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # for bench/common.py
from common import (GiB, MiB, ROOT, add_output_args, git_commit, human_bytes,  # noqa: E402
                    prepare_base_dir,
                    progress, render_table, run_meta, set_progress_tag,
                    temp_workdir, write_json)

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from consumer_api.config import Config  # noqa: E402
from consumer_api.embedded.engine import Engine  # noqa: E402
from consumer_api.records import NewRecord  # noqa: E402
from consumer_api.topic_stats.buckets import time_buckets  # noqa: E402
from consumer_api.topic_stats.top_keys import Bound, top_keys  # noqa: E402
from consumer_api.topic_stats.window import Window  # noqa: E402

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
DAY_START = 1_733_356_800_000  # 2024-12-05T00:00Z
VALUE_BYTES = 200
KEYS = 10_000
BATCH = 1000
BOUND = Bound(Config.max_stats_scan_records, Config.max_stats_scan_bytes)
REPEATS = 5
KAFKA_RECORDS = 1_000_000
perf_counter = time.perf_counter
set_progress_tag("stats-bench")


@dataclass
class Row:
    store: str
    size: str
    records: int
    segments: int | None
    figure: str
    seconds: float
    per_unit: str = ""
    notes: str = ""
    params: dict = field(default_factory=dict)


COLUMNS = [
    ("#", lambda i, r: str(i), True),
    ("store", lambda i, r: r.store, False),
    ("partition", lambda i, r: r.size, True),
    ("records", lambda i, r: f"{r.records:,}", True),
    ("segs", lambda i, r: "-" if r.segments is None else str(r.segments), True),
    ("figure", lambda i, r: r.figure, False),
    ("seconds", lambda i, r: f"{r.seconds:.4f}", True),
    ("per unit", lambda i, r: r.per_unit, True),
    ("notes", lambda i, r: r.notes, False),
]


def timed(call, repeats: int = REPEATS) -> tuple[float, float, object]:
    """``(median seconds, first run's seconds, last result)`` of ``repeats`` calls."""
    times, result = [], None
    for _ in range(repeats):
        t0 = perf_counter()
        result = call()
        times.append(perf_counter() - t0)
    return statistics.median(times), times[0], result


# -- building a day of records ------------------------------------------------------------------

def key_pool(rng: random.Random, n: int) -> list[bytes]:
    """``n`` keys drawn from KEYS, skewed: key i about as likely as 1 / (i + 1)."""
    return [b"user-%d" % int(KEYS ** rng.random() - 1) for _ in range(n)]


def build_day(plog, target_bytes: int) -> tuple[int, float]:
    """Append records until the partition holds ``target_bytes``, timestamps spread evenly
    over the day from DAY_START. Returns ``(records, seconds)``."""
    rng = random.Random(7)
    value = os.urandom(VALUE_BYTES)
    keys = key_pool(rng, 64 * BATCH)
    frame = 37 + VALUE_BYTES + sum(map(len, keys)) / len(keys)
    total = int(target_bytes / frame)
    step = DAY_MS / total
    t0 = perf_counter()
    for first in range(0, total, BATCH):
        at = (first // BATCH) % 64 * BATCH
        batch = [NewRecord(key, value, None, DAY_START + int((first + j) * step))
                 for j, key in enumerate(keys[at:at + min(BATCH, total - first)])]
        plog.append(batch)
        if first % (BATCH * 2000) == 0:
            progress(f"  {first:,} / {total:,} records")
    return total, perf_counter() - t0


# -- the embedded figures ----------------------------------------------------------------------

def measure_embedded(workdir: str, size: int, with_full_scan: bool) -> list[Row]:
    config = Config(data_dir=os.path.join(workdir, f"data-{size}"), retention_ms=-1)
    engine = Engine(config)
    try:
        engine.create_topic("day", 1)
        plog = engine.topics.get("day").partition(0)
        progress(f"building a {human_bytes(size)} partition of a day ...")
        n, build_s = build_day(plog, size)
        segs, real = len(plog.segments), plog.size_bytes
        progress(f"built {real:,} B, {n:,} records, {segs} segments in {build_s:.0f} s")
        base = dict(store="embedded", size=human_bytes(size), records=n, segments=segs)
        rows = [_buckets_row(engine, base, "a day, 1-minute buckets", DAY_MS, 60_000),
                _buckets_row(engine, base, "an hour, 1-minute buckets", HOUR_MS, 60_000),
                _buckets_row(engine, base, "a day, 10-second buckets", DAY_MS, 10_000),
                _keys_row(engine, base, "day"),
                _read_row(engine, base, n)]
        if with_full_scan:
            rows.append(_full_scan_row(engine, base, n))
        rows[0].notes += f"; built in {build_s:.0f} s"
        return rows
    finally:
        engine.close()
        shutil.rmtree(config.data_dir, ignore_errors=True)


def _buckets_row(store, base: dict, figure: str, span_ms: int, bucket_ms: int,
                 topic: str = "day", start: int = DAY_START) -> Row:
    window = Window(start + DAY_MS - span_ms, start + DAY_MS, bucket_ms)
    progress(f"{figure} ...")
    med, first, answer = timed(lambda: time_buckets(store, topic, [0], window))
    lookups = len(window.boundaries())
    counted = answer["records"]
    return Row(**base, figure=f"stats: {figure}", seconds=med,
               per_unit=f"{med / lookups * 1e6:.1f} us/bucket",
               notes=f"{window.buckets:,} buckets, {counted:,} records; first run {first:.4f} s",
               params=dict(buckets=window.buckets, counted=counted, first_s=first))


def _keys_row(store, base: dict, topic: str, start: int = DAY_START) -> Row:
    progress("top keys of the day, at the bound ...")
    med, first, answer = timed(lambda: top_keys(store, topic, [0], start, start + DAY_MS, 10,
                                                BOUND), 3)
    scanned = answer["scanned_records"]
    return Row(**base, figure="stats/keys: a day, top 10, at the bound", seconds=med,
               per_unit=f"{med / max(scanned, 1) * 1e6:.2f} us/record",
               notes=(f"scanned {scanned:,} records ({answer['stopped_by']} bound), "
                      f"{answer['distinct_keys']:,} keys; first run {first:.3f} s"),
               params=dict(scanned=scanned, complete=answer["complete"], first_s=first))


def _read_row(engine, base: dict, n: int) -> Row:
    progress("baseline: a read of 10,000 records ...")
    med, first, got = timed(lambda: engine.read("day", 0, n // 2, 10_000, 1 << 40))
    return Row(**base, figure="baseline: read 10,000 records", seconds=med,
               per_unit=f"{med / len(got) * 1e6:.2f} us/record",
               notes=f"from the middle of the day; first run {first:.4f} s")


def _full_scan_row(engine, base: dict, n: int) -> Row:
    """The day per minute by reading every record: what the answer would cost without the
    time index."""
    progress("reading every record of the day (what the index saves) ...")
    t0 = perf_counter()
    per_minute: dict[int, int] = {}
    offset = 0
    while offset < n:
        got = engine.read("day", 0, offset, 10_000, 1 << 40)
        for rec in got:
            minute = (rec[1] - DAY_START) // 60_000
            per_minute[minute] = per_minute.get(minute, 0) + 1
        offset = got[-1][0] + 1
    dt = perf_counter() - t0
    return Row(**base, figure="without the index: read every record", seconds=dt,
               per_unit=f"{dt / n * 1e6:.2f} us/record",
               notes=f"1,440 minutes counted by reading all {n:,} records, once")


# -- Kafka --------------------------------------------------------------------------------------

def measure_kafka(workdir: str) -> list[Row]:
    from confluent_kafka import Producer

    from consumer_api.backends import kafka_client_config
    from consumer_api.kafka import admin as kafka_admin
    from consumer_api.kafka.backend import KafkaBackend
    from tests.kafka.broker import start_broker

    progress("starting a Kafka broker ...")
    broker = start_broker(Path(workdir) / "kafka")
    try:
        config = Config(backend="kafka", kafka_bootstrap_servers=broker.bootstrap)
        store = KafkaBackend(kafka_client_config(config), 30.0)
        store.open()
        try:
            store.create_topic("day", 1)
            start = (int(time.time() * 1000) - DAY_MS - HOUR_MS) // 60_000 * 60_000
            progress(f"producing {KAFKA_RECORDS:,} records over a day ...")
            producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 50,
                                 "queue.buffering.max.messages": 1_000_000})
            rng = random.Random(7)
            value = os.urandom(VALUE_BYTES)
            keys = key_pool(rng, KAFKA_RECORDS)
            step = DAY_MS / KAFKA_RECORDS
            for i, key in enumerate(keys):
                producer.produce("day", value, key, partition=0,
                                 timestamp=start + int(i * step))
                if i % 100_000 == 0:
                    producer.poll(0)
            producer.flush(120)
            del producer  # its connections close now, not when the broker has gone
            base = dict(store="kafka", size="-", records=KAFKA_RECORDS, segments=None)
            rows = [_buckets_row(store, base, "a day, 1-minute buckets", DAY_MS, 60_000,
                                 start=start),
                    _buckets_row(store, base, "an hour, 1-minute buckets", HOUR_MS, 60_000,
                                 start=start)]
            in_flight = kafka_admin.TIME_LOOKUPS_IN_FLIGHT
            kafka_admin.TIME_LOOKUPS_IN_FLIGHT = 1
            try:
                row = _buckets_row(store, base, "a day, 1-minute buckets", DAY_MS, 60_000,
                                   start=start)
            finally:
                kafka_admin.TIME_LOOKUPS_IN_FLIGHT = in_flight
            row.figure += " (baseline: one lookup at a time)"
            rows.append(row)
            rows.append(_keys_row(store, base, "day", start))
            return rows
        finally:
            store.close()
    finally:
        broker.stop()


# -- main ---------------------------------------------------------------------------------------

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1,4,10", help="partition sizes in GiB (default 1,4,10)")
    ap.add_argument("--quick", action="store_true", help="64 and 256 MiB partitions")
    ap.add_argument("--kafka", action="store_true", help="also the Kafka store's figures")
    add_output_args(ap, "stats")
    args = ap.parse_args(argv)
    sizes = [64 * MiB, 256 * MiB] if args.quick else \
        [int(float(s) * GiB) for s in args.sizes.split(",")]
    prepared = prepare_base_dir(args.dir, int(max(sizes) * 1.2))
    if prepared is None:
        return 2
    base, fst, warnings = prepared
    started = _dt.datetime.now()
    meta = dict(run_meta(started, args.quick, base, fst), commit=git_commit("consumer_api"),
                warnings=warnings, value_bytes=VALUE_BYTES, keys=KEYS, bound=BOUND._asdict())
    rows: list[Row] = []
    try:
        with temp_workdir(base, "stats-bench-") as workdir:
            for i, size in enumerate(sorted(sizes)):
                rows += measure_embedded(workdir, size, with_full_scan=i == 0)
            if args.kafka:
                rows += measure_kafka(workdir)
    except KeyboardInterrupt:
        return 130
    header = [f"consumer_api topic statistics benchmark -- {meta['started']} -- commit "
              f"{meta['commit']}",
              f"python {meta['python']} on {meta['platform']}, {meta['cpus']} cpus; data "
              f"under {base} ({fst})",
              f"one partition, records of {VALUE_BYTES} B values and {KEYS:,} skewed keys, "
              f"timestamps even over a day; 64 MiB segments, an index entry every 4 KiB; "
              f"median of {REPEATS} runs (top keys: 3)"] + [f"WARNING: {w}" for w in warnings]
    print(render_table(rows, header, COLUMNS))
    write_json(args.json, "stats", started, dict(meta=meta, rows=[asdict(r) for r in rows]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
