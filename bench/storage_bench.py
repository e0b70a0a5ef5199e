#!/usr/bin/env python
"""Storage benchmark for the embedded partition log (``consumer_api.embedded.storage``).

Run from the project root::

    .venv/bin/python bench/storage_bench.py [--quick] [--dir DIR] [--json [PATH]]

Measures, on a fresh partition in a temporary directory that is always deleted afterwards
(also on Ctrl-C / SIGTERM), each figure in the segment format new logs are written in
(format 2, record batches) and, beside it, in format 1 (a frame per record, what the
release before batches wrote), with the ratio of the two:

1. append throughput (records/s, MB/s of record values) for 100 B and 1 KiB values in
   batches of 1 and 500, default :class:`LogConfig` (64 MiB segments, so rolls happen);
2. sequential read throughput of decoded records over the 100 B log, in chunks of 500 and
   10,000 records;
3. reopen time of a 1 GiB partition, with 64 MiB segments and with one 1 GiB segment
   (median of 5 reopens), plus the recovery report's dropped bytes.

MB = 10^6 bytes of record values (framing not counted). See bench/README.rst.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import os
import shutil
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # for bench/common.py
from common import (GiB, MiB, ROOT, git_commit, human_bytes, prepare_base_dir,  # noqa: E402
                    progress, render_table, row_dicts, run_meta, set_progress_tag,
                    status_text, targets_line, temp_workdir, write_json)

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from consumer_api.embedded.storage import batches, records  # noqa: E402
from consumer_api.embedded.storage.partition_log import LogConfig, PartitionLog  # noqa: E402
from consumer_api.records import NewRecord  # noqa: E402

#: the segment formats measured: (label, format module); the first is what logs write
FORMATS = (("format 2", batches), ("format 1", records))

BIG_MAX_BYTES = 1 << 62  # "max_bytes large": never the limiting factor
perf_counter = time.perf_counter

#: targets (printed in the "target" column, judged in the "status" column)
TARGET_APPEND_RPS = 1_000_000
TARGET_READ_RPS = 1_000_000
TARGET_REOPEN_S = 0.5

# Sizes per mode. Record counts are multiples of the batch size.
FULL = dict(
    append={(100, 500): 2_000_000, (1024, 500): 1_000_000, (100, 1): 300_000, (1024, 1): 200_000},
    read_repeats=3,
    reopen_bytes=GiB,
    reopen_segments=(64 * MiB, GiB),  # row A: default segments; row B: one segment
    reopen_repeats=5,
    min_free=int(1.5 * GiB),
)
QUICK = dict(
    append={(100, 500): 200_000, (1024, 500): 100_000, (100, 1): 30_000, (1024, 1): 20_000},
    read_repeats=1,
    reopen_bytes=64 * MiB,
    reopen_segments=(4 * MiB, 64 * MiB),  # same shape as full: many segments / one segment
    reopen_repeats=5,
    min_free=256 * MiB,
)

_open_logs: list[PartitionLog] = []  # closed (and their files removed) on any exit
set_progress_tag("storage-bench")


# -- results ----------------------------------------------------------------------------------

@dataclass
class Row:
    key: str
    benchmark: str
    settings: str
    records: int | None = None
    seconds: float | None = None
    records_per_s: float | None = None
    mb_per_s: float | None = None
    target: str = "-"
    passed: bool | None = None
    notes: str = ""
    params: dict = field(default_factory=dict)  # machine-readable settings (JSON only)

    @property
    def status(self) -> str:
        return status_text(self.passed)


def fmt_int(v) -> str:
    return "-" if v is None else f"{v:,.0f}"


def fmt_float(v, digits) -> str:
    return "-" if v is None else f"{v:,.{digits}f}"


#: the table's columns: (title, getter(row number, row), right-aligned)
COLUMNS = [
    ("#", lambda i, r: str(i), True),
    ("benchmark", lambda i, r: r.benchmark, False),
    ("settings", lambda i, r: r.settings, False),
    ("records", lambda i, r: fmt_int(r.records), True),
    ("seconds", lambda i, r: fmt_float(r.seconds, 3), True),
    ("records/s", lambda i, r: fmt_int(r.records_per_s), True),
    ("MB/s", lambda i, r: fmt_float(r.mb_per_s, 1), True),
    ("target", lambda i, r: r.target, False),
    ("status", lambda i, r: r.status, False),
    ("notes", lambda i, r: r.notes, False),
]


# -- partition helpers ------------------------------------------------------------------------

def open_log(directory: str, config: LogConfig, fmt=batches) -> PartitionLog:
    plog = PartitionLog(directory, config, segment_format=fmt)
    _open_logs.append(plog)
    return plog


def drop_log(plog: PartitionLog, delete: bool = True) -> None:
    if delete:
        plog.delete()
    else:
        plog.close()
    if plog in _open_logs:
        _open_logs.remove(plog)


def make_batch(value_size: int, batch_size: int) -> list:
    """Keyless records without headers or timestamps (the log's clock stamps them). The
    records are built once and appended repeatedly: the benchmark measures the log, not
    the caller building tuples."""
    value = os.urandom(value_size)
    return [NewRecord(value=value) for _ in range(batch_size)]


# -- 1. append --------------------------------------------------------------------------------

def batch_bytes(fmt, batch: list) -> int:
    """Bytes ``batch`` takes in a segment of format ``fmt``."""
    return len(fmt.encode_batch(batch, 0, 0, 1 << 40, 0, -1).data)


def bench_append(workdir: str, value_size: int, batch_size: int, n_records: int,
                 keep: bool = False, fmt=batches):
    assert n_records % batch_size == 0
    config = LogConfig()
    plog = open_log(os.path.join(workdir, f"append-v{value_size}-b{batch_size}-"
                                          f"f{fmt.FORMAT}"), config, fmt)
    batch = make_batch(value_size, batch_size)
    append = plog.append
    progress(f"append value={value_size} B batch={batch_size}: {n_records:,} records ...")
    t0 = perf_counter()
    for _ in range(n_records // batch_size):
        append(batch)
    dt = perf_counter() - t0
    if plog.high_watermark != n_records:
        raise AssertionError(f"high watermark {plog.high_watermark} != {n_records}")
    segs, size = len(plog.segments), plog.size_bytes
    rps = n_records / dt
    row = Row(
        key=f"append_v{value_size}_b{batch_size}",
        benchmark="append",
        settings=(f"value={human_bytes(value_size)} batch={batch_size} "
                  f"segment={human_bytes(config.segment_bytes)}: segs={segs} rolls={segs - 1}"),
        records=n_records, seconds=dt, records_per_s=rps,
        mb_per_s=n_records * value_size / dt / 1e6,
        notes=f"log {size / 1e6:,.1f} MB incl. framing",
        params=dict(value_bytes=value_size, batch_size=batch_size,
                    segment_bytes=config.segment_bytes,
                    index_interval_bytes=config.index_interval_bytes,
                    flush_policy=config.flush_policy, segments=segs, log_bytes=size,
                    keyless=True, headers=False, timestamps="log clock"),
    )
    if (value_size, batch_size) == (100, 500):
        row.target = f">= {TARGET_APPEND_RPS:,} rec/s"
        row.passed = rps >= TARGET_APPEND_RPS
    if keep:
        return row, plog
    drop_log(plog)
    return row, None


# -- 2. sequential read -----------------------------------------------------------------------

def read_pass(plog: PartitionLog, chunk: int) -> tuple[int, float]:
    read = plog.read
    offset, end = plog.offsets()
    n = 0
    t0 = perf_counter()
    while offset < end:
        got = read(offset, chunk, BIG_MAX_BYTES)
        n += len(got)
        offset = got[-1][0] + 1
    return n, perf_counter() - t0


def bench_read(plog: PartitionLog, value_size: int, chunk: int, repeats: int) -> Row:
    n_expected = plog.high_watermark
    progress(f"read chunk={chunk}: {repeats} timed pass(es) over {n_expected:,} records ...")
    times = []
    for _ in range(repeats):
        n, dt = read_pass(plog, chunk)
        if n != n_expected:
            raise AssertionError(f"read {n} records, expected {n_expected}")
        times.append(dt)
    dt = statistics.median(times)
    rps = n_expected / dt
    return Row(
        key=f"read_c{chunk}",
        benchmark="sequential read",
        settings=(f"chunk={chunk:,} max_bytes=2^62 over the value={human_bytes(value_size)} "
                  f"log ({len(plog.segments)} segs), median of {repeats}"),
        records=n_expected, seconds=dt, records_per_s=rps,
        mb_per_s=n_expected * value_size / dt / 1e6,
        target=f">= {TARGET_READ_RPS:,} rec/s", passed=rps >= TARGET_READ_RPS,
        notes=("warm page cache and maps (1 untimed pass first); passes "
               + "/".join(f"{t:.2f}" for t in times) + " s"),
        params=dict(chunk_records=chunk, max_bytes=BIG_MAX_BYTES, value_bytes=value_size,
                    segments=len(plog.segments), repeats=repeats, pass_seconds=times),
    )


# -- 3. reopen --------------------------------------------------------------------------------

def build_partition(directory: str, config: LogConfig, target_bytes: int,
                    single_segment: bool, value_size: int = 1024, batch_size: int = 500,
                    fmt=batches):
    """Fill a partition with ``value_size`` records in batches of ``batch_size`` until it
    holds ``target_bytes`` (or, with ``single_segment``, until the one segment of
    ``segment_bytes`` is full: no roll). Returns ``(records, bytes, segments, seconds)``."""
    plog = open_log(directory, config, fmt)
    batch = make_batch(value_size, batch_size)
    step = batch_bytes(fmt, batch)
    t0 = perf_counter()
    size = 0
    if single_segment:
        cap = config.segment_bytes
        while size + step <= cap:
            plog.append(batch)
            size += step
        rest = next((n for n in range(batch_size - 1, 0, -1)
                     if size + batch_bytes(fmt, batch[:n]) <= cap), 0)
        if rest:
            plog.append(batch[:rest])
            size += batch_bytes(fmt, batch[:rest])
    else:
        while size < target_bytes:
            plog.append(batch)
            size += step
    n, segs, real = plog.high_watermark, len(plog.segments), plog.size_bytes
    drop_log(plog, delete=False)  # close: trims and fsyncs the active segment
    dt = perf_counter() - t0
    if real != size:
        raise AssertionError(f"log holds {real} bytes, expected {size} (frame size changed?)")
    if single_segment and segs != 1:
        raise AssertionError(f"expected one segment, got {segs}")
    return n, real, segs, dt


def bench_reopen(workdir: str, segment_bytes: int, target_bytes: int, repeats: int,
                 fmt=batches) -> Row:
    single = segment_bytes >= target_bytes
    config = LogConfig(segment_bytes=segment_bytes)
    directory = os.path.join(workdir, f"reopen-seg{segment_bytes}")
    progress(f"reopen: building {human_bytes(target_bytes)} partition with "
             f"segment={human_bytes(segment_bytes)} ...")
    n, size, segs, build_s = build_partition(directory, config, target_bytes, single,
                                             fmt=fmt)
    progress(f"reopen: built {size:,} B, {segs} segs, {n:,} records in {build_s:.1f} s; "
             f"timing {repeats} reopens ...")
    times, dropped, reasons = [], [], set()
    for _ in range(repeats):
        t0 = perf_counter()
        plog = PartitionLog(directory, config, segment_format=fmt)
        dt = perf_counter() - t0
        _open_logs.append(plog)
        times.append(dt)
        rep = plog.recovery
        dropped.append(rep.dropped_bytes)
        reasons.add(rep.reason)
        if plog.high_watermark != n or rep.segments != segs:
            raise AssertionError(f"reopened log: hw={plog.high_watermark} (expected {n}), "
                                 f"segments={rep.segments} (expected {segs})")
        drop_log(plog, delete=False)
    shutil.rmtree(directory, ignore_errors=True)
    med = statistics.median(times)
    max_dropped = max(dropped)
    size_txt = human_bytes(target_bytes) if not single else human_bytes(segment_bytes)
    shape = (f"1 active segment of {human_bytes(segment_bytes)} (full, no roll)" if single
             else f"segment={human_bytes(segment_bytes)}: segs={segs}")
    return Row(
        key=f"reopen_seg{segment_bytes}",
        benchmark=f"reopen {size_txt} partition",
        settings=(f"{size:,} B, {shape}, value=1 KiB batch=500, "
                  f"median of {repeats} reopens"),
        records=n, seconds=med,
        target=f"< {TARGET_REOPEN_S} s, dropped == 0",
        passed=med < TARGET_REOPEN_S and max_dropped == 0,
        notes=(f"dropped {max_dropped} B (reason {'/'.join(sorted(reasons))}); "
               f"min {min(times):.3f} max {max(times):.3f} s; built in {build_s:.1f} s"),
        params=dict(segment_bytes=segment_bytes, log_bytes=size, segments=segs,
                    value_bytes=1024, batch_size=500, repeats=repeats,
                    reopen_seconds=times, dropped_bytes=dropped,
                    recovery_reasons=sorted(reasons), build_seconds=build_s),
    )


# -- main -------------------------------------------------------------------------------------

def close_open_logs() -> None:
    """Close every partition still open (the first step of the cleanup on any exit)."""
    for plog in list(_open_logs):
        try:
            plog.close()
        except Exception as exc:  # keep cleaning up
            progress(f"warning: closing {plog.directory}: {exc!r}")
    _open_logs.clear()


def run_format(workdir: str, sizes: dict, fmt) -> dict[str, Row]:
    """Every figure on logs written in format ``fmt``."""
    rows: dict[str, Row] = {}
    # 1 + 2: the 100 B / batch 500 log is read right after it is written.
    for (vs, bs), n in sizes["append"].items():
        want_read = (vs, bs) == (100, 500)
        row, plog = bench_append(workdir, vs, bs, n, keep=want_read, fmt=fmt)
        rows[row.key] = row
        if plog is not None:
            progress("read: untimed warm-up pass ...")
            read_pass(plog, 10_000)
            for chunk in (500, 10_000):
                r = bench_read(plog, vs, chunk, sizes["read_repeats"])
                rows[r.key] = r
            drop_log(plog)
    # 3
    for seg in sizes["reopen_segments"]:
        r = bench_reopen(workdir, seg, sizes["reopen_bytes"], sizes["reopen_repeats"], fmt)
        rows[r.key] = r
    return rows


#: figures where format 2 must reach this multiple of format 1's rate
TARGET_FORMAT_RATIO = {"append_v100_b500": 2.0, "read_c500": 2.0, "read_c10000": 2.0}


def compare_formats(new: Row | None, old: Row | None) -> None:
    """Note on the format-2 row its ratio to format 1's (rates: records/s; reopen: time);
    judge it where the issue sets a ratio; format 1's rows are not judged."""
    if new is None or old is None:
        return
    old.target, old.passed = "-", None
    if new.records_per_s and old.records_per_s:
        ratio = new.records_per_s / old.records_per_s
        new.notes = f"{ratio:.2f}x format 1; {new.notes}"
        want = TARGET_FORMAT_RATIO.get(new.key)
        if want:
            new.target += f", >= {want:g}x format 1"
            new.passed = bool(new.passed) and ratio >= want
    elif new.seconds and old.seconds:
        new.notes = f"{old.seconds / new.seconds:.2f}x as fast as format 1; {new.notes}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: ~10x fewer records, 64 MiB instead of 1 GiB for reopen")
    ap.add_argument("--dir", help="parent of the temporary data directory "
                                  "(default: /work, else the current directory; never tmpfs)")
    ap.add_argument("--json", nargs="?", const="", metavar="PATH",
                    help="also write the rows as JSON (default PATH: "
                         "bench/results/storage-<timestamp>.json)")
    args = ap.parse_args(argv)
    sizes = QUICK if args.quick else FULL

    prepared = prepare_base_dir(args.dir, sizes["min_free"])
    if prepared is None:
        return 2
    base, fst, warnings = prepared

    started = _dt.datetime.now()
    meta = dict(
        run_meta(started, args.quick, base, fst),
        commit=git_commit("consumer_api"), default_config=asdict(LogConfig()),
        mb="10^6 bytes of record values", warnings=warnings,
    )

    rows: dict[str, Row] = {}
    try:
        with temp_workdir(base, "storage-bench-", release=close_open_logs) as workdir:
            progress(f"data in {workdir} ({fst}); mode {meta['mode']}")
            for label, fmt in FORMATS:
                got = run_format(workdir, sizes, fmt)
                for key, row in got.items():
                    row.benchmark += f" [{label}]"
                    rows[f"{key}_f{fmt.FORMAT}"] = row
    except KeyboardInterrupt:  # temp_workdir has cleaned up
        return 130

    order = ["append_v100_b500", "append_v1024_b500", "append_v100_b1", "append_v1024_b1",
             "read_c500", "read_c10000"] + [f"reopen_seg{s}" for s in sizes["reopen_segments"]]
    table_rows = []
    for key in order:
        pair = [rows.get(f"{key}_f{fmt.FORMAT}") for _label, fmt in FORMATS]
        compare_formats(*pair)
        table_rows += [r for r in pair if r is not None]
    if args.quick:
        for r in table_rows:
            r.benchmark += " (quick)"
    cfg = LogConfig()
    mode_txt = ("QUICK (smoke run: ~10x fewer records, 64 MiB instead of 1 GiB partitions; "
                "targets are meant for full runs)" if args.quick else "full")
    header = [
        f"consumer_api storage benchmark -- {meta['started']} -- commit {meta['commit']}",
        "mode: " + mode_txt,
        f"python {meta['python']} on {meta['platform']}, {meta['cpus']} cpus; "
        f"data under {base} ({fst})",
        f"records: keyless, no headers, log-clock timestamps; MB = 10^6 bytes of values; "
        f"LogConfig defaults unless stated (segment_bytes={human_bytes(cfg.segment_bytes)}, "
        f"index_interval_bytes={cfg.index_interval_bytes}, flush_policy={cfg.flush_policy})",
    ] + [f"WARNING: {w}" for w in warnings]
    print(render_table(table_rows, header, COLUMNS))
    judged = [r for r in table_rows if r.passed is not None]
    print(targets_line(judged, [f"#{table_rows.index(r) + 1}" for r in judged if not r.passed]))

    if args.json is not None:
        write_json(args.json, "storage", started, dict(meta=meta, rows=row_dicts(table_rows)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
