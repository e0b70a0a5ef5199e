"""``consumer-api topics stats``: a topic's records (and bytes) per time bucket, or its
busiest keys. Times print in UTC (``2024-12-05T10:00:00Z``); a bucket width is a
duration (``500ms``, ``10s``, ``1m``, ``2h``, ``1d`` or milliseconds)."""
from __future__ import annotations

import base64
import datetime as _dt
import re

import click

from consumer_api.cli.base import client_of, json_option, out
from consumer_api.cli.consume import epoch_ms
from consumer_api.cli.show import printable
from consumer_api.cli.topics import topics

#: milliseconds per duration unit
UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_DURATION = re.compile(r"(\d+)(ms|s|m|h|d)?")
#: characters of the bar of the fullest bucket
BAR = 40


def duration_ms(_ctx, _param, text):
    """A duration option, as milliseconds."""
    if text is None:
        return None
    found = _DURATION.fullmatch(text.strip())
    if found is None or int(found.group(1)) < 1:
        raise click.BadParameter(f"{text!r} is not a duration (500ms, 10s, 1m, 2h, 1d or "
                                 "milliseconds)")
    return int(found.group(1)) * UNITS_MS[found.group(2) or "ms"]


@topics.command("stats")
@click.argument("name")
@click.option("--from", "from_ms", default=None, callback=epoch_ms, metavar="TIME",
              help="Start (ISO 8601, UTC unless it says otherwise, or epoch ms; default: an "
                   "hour before --to).")
@click.option("--to", "to_ms", default=None, callback=epoch_ms, metavar="TIME",
              help="End, excluded (default: now, or the end of the bucket holding now).")
@click.option("--bucket", "bucket_ms", default=None, callback=duration_ms, metavar="DURATION",
              help="Bucket width: 10s, 1m, 1h, ... (default 1m).")
@click.option("--partition", "-p", type=click.IntRange(0), default=None,
              help="Only this partition (default: all, summed).")
@click.option("--keys", is_flag=True, help="Count records by key instead of by time.")
@click.option("--top", type=click.IntRange(1, 1000), default=None,
              help="With --keys: how many keys to show (default 10).")
@json_option
@click.pass_context
def topics_stats(ctx, name, from_ms, to_ms, bucket_ms, partition, keys, top):
    """Records (and bytes) of a topic per time bucket, or its busiest keys (--keys)."""
    if keys and bucket_ms is not None:
        raise click.UsageError("--bucket counts by time: leave it out with --keys")
    if top is not None and not keys:
        raise click.UsageError("--top goes with --keys")
    client = client_of(ctx)
    if keys:
        _print_key_counts(ctx, client.top_keys(name, from_ms, to_ms, partition, top or 10))
    else:
        _print_buckets(ctx, client.topic_stats(name, from_ms, to_ms, bucket_ms, partition))


def _print_buckets(ctx, answer: dict) -> None:
    if not ctx.obj["json"]:
        size = "" if answer["bytes"] is None else f", {answer['bytes']:,} bytes"
        click.echo(f"topic {answer['topic']}: {answer['records']:,} records{size} from "
                   f"{show_time(answer['from_ms'])} to {show_time(answer['to_ms'])} in "
                   f"{show_duration(answer['bucket_ms'])} buckets")
    most = max([b["records"] for b in answer["buckets"]] + [1])
    rows = [[show_time(b["start_ms"]), b["records"], b["bytes"],
             "#" * -(-b["records"] * BAR // most)] for b in answer["buckets"]]
    out(ctx, answer, (rows, ["start", "records", "bytes", ""]))


def _print_key_counts(ctx, answer: dict) -> None:
    keys = [{**row, "key": None if row["key"] is None else
             base64.b64encode(row["key"]).decode("ascii")} for row in answer["keys"]]
    if not ctx.obj["json"]:
        click.echo(f"topic {answer['topic']}: {answer['scanned_records']:,} records with "
                   f"{answer['distinct_keys']:,} keys from {show_time(answer['from_ms'])} "
                   f"to {show_time(answer['scanned_to_ms'])}")
        if not answer["complete"]:
            click.echo(f"stopped by the server's bound on {answer['stopped_by']}: ask again "
                       f"with --from {answer['scanned_to_ms']}, or narrow the range", err=True)
    total = max(answer["scanned_records"], 1)
    rows = [["(null)" if row["key"] is None else printable(row["key"]), row["records"],
             f"{100 * row['records'] / total:.1f}%"] for row in answer["keys"]]
    out(ctx, {**answer, "keys": keys}, (rows, ["key", "records", "share"]))


def show_time(epoch_ms_: int) -> str:
    """``2024-12-05T10:00:00Z`` (milliseconds shown when there are some)."""
    try:
        when = _dt.datetime.fromtimestamp(epoch_ms_ / 1000, _dt.timezone.utc)
    except (OverflowError, ValueError, OSError):  # past year 9999
        return str(epoch_ms_)
    spec = "milliseconds" if epoch_ms_ % 1000 else "seconds"
    return when.replace(tzinfo=None).isoformat(timespec=spec) + "Z"


def show_duration(ms: int) -> str:
    """The largest unit that divides ``ms``: ``1m``, ``90s``, ``250ms``."""
    for unit in ("d", "h", "m", "s"):
        if ms % UNITS_MS[unit] == 0:
            return f"{ms // UNITS_MS[unit]}{unit}"
    return f"{ms}ms"
