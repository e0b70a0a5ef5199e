"""The ``consumer-api`` command line: run the server, and drive one from a terminal.

::

    consumer-api serve --data-dir ./data
    consumer-api topics create orders --partitions 3
    seq 1 1000 | consumer-api produce orders
    consumer-api consume orders --group debug --from-beginning --max 10
    consumer-api groups describe debug

Global options: ``--url`` (env ``CONSUMER_API_URL``, default ``http://127.0.0.1:8080``),
``--api-key`` (env ``CONSUMER_API_KEY``), ``--json`` (machine-readable output). A failure
is one line on stderr (``Error: ...``) and a non-zero exit status, never a traceback.
``consume`` rides out ``429 too_many_polls`` (the server's waiting slots are all taken): it
pauses as the server says and polls again (see :mod:`consumer_api.client.consumer`).
"""
from __future__ import annotations

import base64
import json
import os
import sys

import click

from consumer_api.cli_times import Duration, Time, show_duration, show_time
from consumer_api.client import Client, Record
from consumer_api.client.errors import ClientError

DEFAULT_URL = "http://127.0.0.1:8080"


class _Cli(click.Group):
    """Turns client errors and Ctrl-C into one-line messages and exit codes."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except ClientError as exc:
            raise click.ClickException(str(exc)) from None
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)


@click.group(cls=_Cli)
@click.option("--url", envvar="CONSUMER_API_URL", default=DEFAULT_URL, show_default=True,
              help="The server (env CONSUMER_API_URL).")
@click.option("--api-key", envvar="CONSUMER_API_KEY", default=None,
              help="API key (env CONSUMER_API_KEY).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@click.pass_context
def main(ctx, url, api_key, as_json):
    """Drive a consumer-api server: topics, records, consumer groups."""
    ctx.obj = {"url": url, "api_key": api_key, "json": as_json}


def _json_flag(ctx, _param, value):
    if value:
        ctx.obj["json"] = True


#: --json is accepted after the command too (``consumer-api topics list --json``)
json_option = click.option("--json", "as_json", is_flag=True, expose_value=False,
                           callback=_json_flag, help="Print JSON instead of tables.")


def _client(ctx) -> Client:
    if "client" not in ctx.obj:
        ctx.obj["client"] = Client(ctx.obj["url"], ctx.obj["api_key"])
    return ctx.obj["client"]


def _out(ctx, data, table=None) -> None:
    """Print ``data`` as JSON with --json, else as the human ``table`` (rows, columns)."""
    if ctx.obj["json"] or table is None:
        click.echo(json.dumps(data, indent=2, sort_keys=True))
    else:
        _print_table(*table)


def _print_table(rows: list, columns: list) -> None:
    if not rows:
        click.echo("(none)")
        return
    cells = [[str(c) for c in columns]] + [["" if v is None else str(v) for v in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    for n, row in enumerate(cells):
        click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())
        if n == 0:
            click.echo("  ".join("-" * w for w in widths))


# -- serve --------------------------------------------------------------------------------

@main.command()
@click.option("--bind", default=None, help="HOST:PORT (default 127.0.0.1:8080).")
@click.option("--data-dir", default=None, help="Data directory (default ./data).")
@click.option("--threads", type=click.IntRange(1, 10000), default=None,
              help="Threads (default 64); waiting long-polls may hold all but "
                   "CONSUMER_API_RESERVED_THREADS (16) of them.")
def serve(bind, data_dir, threads):
    """Run the server (gunicorn with the project's settings)."""
    env = dict(os.environ)
    if bind:
        env["CONSUMER_API_BIND"] = bind
    if data_dir:
        env["CONSUMER_API_DATA_DIR"] = data_dir
    if threads:
        env["CONSUMER_API_THREADS"] = str(threads)
    where = env.get("CONSUMER_API_BIND", "127.0.0.1:8080")
    click.echo(f"consumer-api on http://{where} (Swagger UI: http://{where}/swagger/)", err=True)
    args = [sys.executable, "-m", "gunicorn", "-c", "python:consumer_api.gunicorn_conf"]
    os.execvpe(sys.executable, args, env)


# -- topics -------------------------------------------------------------------------------

@main.group()
def topics():
    """Create, list, describe and delete topics."""


@topics.command("create")
@click.argument("name")
@click.option("--partitions", "-p", type=int, default=1, show_default=True)
@click.option("--retention-ms", type=int, default=None)
@click.option("--retention-bytes", type=int, default=None)
@click.option("--segment-bytes", type=int, default=None)
@json_option
@click.pass_context
def topics_create(ctx, name, partitions, retention_ms, retention_bytes, segment_bytes):
    """Create a topic."""
    config = {k: v for k, v in (("retention_ms", retention_ms), ("retention_bytes", retention_bytes),
                                ("segment_bytes", segment_bytes)) if v is not None}
    created = _client(ctx).create_topic(name, partitions, config or None)
    _out(ctx, created, ([[created["name"], created["partitions"], created["config"]["retention_ms"],
                          created["config"]["retention_bytes"], created["config"]["segment_bytes"]]],
                        ["topic", "partitions", "retention_ms", "retention_bytes", "segment_bytes"]))


@topics.command("list")
@json_option
@click.pass_context
def topics_list(ctx):
    """List topics with their record counts."""
    found = _client(ctx).list_topics()
    rows = [[t["name"], len(t["partitions"]),
             sum(p["high_watermark"] - p["log_start_offset"] for p in t["partitions"])]
            for t in found]
    _out(ctx, found, (rows, ["topic", "partitions", "records"]))


@topics.command("describe")
@click.argument("name")
@json_option
@click.pass_context
def topics_describe(ctx, name):
    """Show a topic's config and partitions."""
    info = _client(ctx).describe_topic(name)
    if not ctx.obj["json"]:
        click.echo(f"topic {info['name']}: " + ", ".join(f"{k}={v}" for k, v in info["config"].items()))
    rows = [[p["partition"], p["log_start_offset"], p["high_watermark"], p["size_bytes"]]
            for p in info["partitions"]]
    _out(ctx, info, (rows, ["partition", "log_start_offset", "high_watermark", "size_bytes"]))


@topics.command("delete")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask.")
@json_option
@click.pass_context
def topics_delete(ctx, name, yes):
    """Delete a topic and all its records."""
    if not yes:
        click.confirm(f"Delete topic {name!r} and all its records?", abort=True)
    _client(ctx).delete_topic(name)
    _out(ctx, {"message": "topic deleted", "topic": name}, ([[name, "deleted"]], ["topic", "status"]))


@topics.command("stats")
@click.argument("name")
@click.option("--from", "from_ms", type=Time(), default=None,
              help="Start: ISO 8601 (UTC unless it says) or epoch ms (default: an hour "
                   "before --to).")
@click.option("--to", "to_ms", type=Time(), default=None,
              help="End, excluded (default: now, or the end of the bucket holding now).")
@click.option("--bucket", "bucket_ms", type=Duration(), default=None,
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
    client = _client(ctx)
    if keys:
        answer = client.top_keys(name, from_ms, to_ms, partition, top or 10)
        _print_key_counts(ctx, answer)
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
             "#" * -(-b["records"] * 40 // most)] for b in answer["buckets"]]
    _out(ctx, answer, (rows, ["start", "records", "bytes", ""]))


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
    rows = [["(null)" if row["key"] is None else _show(row["key"], "text"), row["records"],
             f"{100 * row['records'] / total:.1f}%"] for row in answer["keys"]]
    _out(ctx, {**answer, "keys": keys}, (rows, ["key", "records", "share"]))


# -- produce ------------------------------------------------------------------------------

@main.command()
@click.argument("topic")
@click.argument("source", type=click.File("rb"), default="-")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="How to read each line's value.")
@click.option("--key-separator", default=None,
              help="Split each line at the first SEP into key and value.")
@click.option("--progress/--no-progress", default=None,
              help="Show a progress bar (default: when stderr is a terminal).")
@json_option
@click.pass_context
def produce(ctx, topic, source, fmt, key_separator, progress):
    """Produce one record per line of SOURCE (a file, default stdin)."""
    client = _client(ctx)
    total = _size(source)
    show = sys.stderr.isatty() if progress is None else progress
    produced, partitions = 0, {}
    label = f"producing to {topic}"
    if not show:
        bar = _NoBar()
    elif total:  # a file: a bar over its bytes
        bar = click.progressbar(length=total, label=label, file=sys.stderr)
    else:  # a pipe: no total to show, a running count instead
        bar = _RunningCount(label)
    with bar:
        for batch, consumed in _line_batches(source, fmt, key_separator):
            for o in client.produce(topic, batch):
                partitions[o["partition"]] = partitions.get(o["partition"], 0) + 1
            produced += len(batch)
            bar.update(consumed if total else len(batch))
    summary = {"topic": topic, "records": produced,
               "partitions": {str(p): n for p, n in sorted(partitions.items())}}
    _out(ctx, summary, ([[topic, p, n] for p, n in sorted(partitions.items())],
                        ["topic", "partition", "records"]))


class _NoBar:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, n):
        pass


class _RunningCount(_NoBar):
    """Progress without a known total: ``label: N records`` rewritten in place."""

    def __init__(self, label: str):
        self.label, self.count = label, 0

    def update(self, n):
        self.count += n
        click.echo(f"\r{self.label}: {self.count} records", nl=False, err=True)

    def __exit__(self, *exc):
        if self.count:
            click.echo(err=True)
        return False


def _size(stream) -> int | None:
    try:
        return os.fstat(stream.fileno()).st_size or None
    except (OSError, ValueError, AttributeError):
        return None


def _line_batches(source, fmt: str, key_separator: str | None, size: int = 5000):
    """``(records, bytes read)`` per batch of lines; a bad line is a one-line error."""
    batch, consumed = [], 0
    for number, raw in enumerate(source, 1):
        consumed += len(raw)
        line = raw.rstrip(b"\r\n")
        try:
            batch.append(_line_record(line, fmt, key_separator))
        except ValueError as exc:
            raise click.ClickException(f"line {number}: {exc}") from None
        if len(batch) >= size:
            yield batch, consumed
            batch, consumed = [], 0
    if batch:
        yield batch, consumed


def _line_record(line: bytes, fmt: str, key_separator: str | None):
    key = None
    if key_separator is not None:
        sep = key_separator.encode("utf-8")
        if sep not in line:
            raise ValueError(f"no key separator {key_separator!r}")
        key, line = line.split(sep, 1)
    value = line
    if fmt == "json":  # stored as its compact serialisation, like the API's json encoding
        try:
            value = json.dumps(json.loads(line), separators=(",", ":"),
                               ensure_ascii=False).encode("utf-8")
        except ValueError as exc:
            raise ValueError(f"not JSON ({exc})") from None
    return Record(value, key=key) if key is not None else value


# -- consume ------------------------------------------------------------------------------

@main.command()
@click.argument("topic")
@click.option("--group", "-g", required=True, help="Consumer group.")
@click.option("--from-beginning", is_flag=True,
              help="With no committed offsets, start at the first record (default: the end).")
@click.option("--max", "max_records", type=click.IntRange(1), default=None,
              help="Stop after printing N records.")
@click.option("--idle-exit-ms", type=click.IntRange(0), default=None,
              help="Stop when no record came for this long (default: wait forever).")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "base64"]), default="text",
              show_default=True, help="How to print keys and values.")
@click.option("--assignor", type=click.Choice(["range", "roundrobin", "sticky"]), default=None,
              help="The group's assignor, when this is its first member (default: the "
                   "server's).")
@json_option
@click.pass_context
def consume(ctx, topic, group, from_beginning, max_records, idle_exit_ms, fmt, assignor):
    """Print records of TOPIC as a member of GROUP; commits exactly what it printed."""
    client = _client(ctx)
    consumer = client.consumer(group, [topic], value_format="bytes", assignor=assignor,
                               auto_offset_reset="earliest" if from_beginning else "latest",
                               timeout_ms=30000 if idle_exit_ms is None else min(idle_exit_ms, 30000))
    printed = 0
    with consumer:
        while max_records is None or printed < max_records:
            batch = consumer.poll(max_records=min(500, (max_records or 500) - printed) or 1)
            if not batch:
                if idle_exit_ms is not None:
                    break
                continue
            done = {}
            for rec in batch:
                click.echo(_render(rec, fmt, ctx.obj["json"]))
                done[(rec.topic, rec.partition)] = rec.offset + 1
                printed += 1
            consumer.commit(done)
    if not ctx.obj["json"]:
        click.echo(f"{printed} record(s) printed and committed for group {group}", err=True)


def _render(rec, fmt: str, as_json: bool) -> str:
    key, value = _show(rec.key, fmt), _show(rec.value, fmt)
    if as_json:
        return json.dumps({"topic": rec.topic, "partition": rec.partition, "offset": rec.offset,
                           "timestamp": rec.timestamp, "key": key, "value": value,
                           "headers": rec.headers}, ensure_ascii=False)
    head = f"{rec.topic}[{rec.partition}]@{rec.offset}"
    return f"{head} {key}\t{value}" if rec.key is not None else f"{head}\t{value}"


def _show(data: bytes | None, fmt: str):
    if data is None:
        return None
    if fmt == "base64":
        import base64
        return base64.b64encode(data).decode("ascii")
    text = data.decode("utf-8", errors="backslashreplace")
    if fmt == "json":
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


# -- groups -------------------------------------------------------------------------------

@main.group()
def groups():
    """List, describe and reset consumer groups."""


@groups.command("list")
@json_option
@click.pass_context
def groups_list(ctx):
    """List consumer groups."""
    found = _client(ctx).list_groups()
    rows = [[g["group_id"], g["state"], g["generation"], len(g["members"])] for g in found]
    _out(ctx, found, (rows, ["group", "state", "generation", "members"]))


@groups.command("describe")
@click.argument("group")
@json_option
@click.pass_context
def groups_describe(ctx, group):
    """Members, committed offsets and lag of a group."""
    info = _client(ctx).describe_group(group)
    if not ctx.obj["json"]:
        click.echo(f"group {info['group_id']}: {info['state']}, generation {info['generation']}, "
                   f"assignor {info['assignor']}, {len(info['members'])} member(s)")
        for m in info["members"]:
            parts = ", ".join(f"{t}{ps}" for t, ps in sorted(m["assignment"].items()))
            click.echo(f"  {m['consumer_id']}  {parts or '-'}  "
                       f"(heartbeat {m['last_heartbeat_ms_ago']} ms ago)")
    rows = [[o["topic"], o["partition"], o["committed_offset"], o["high_watermark"], o["lag"]]
            for o in info["offsets"]]
    _out(ctx, info, (rows, ["topic", "partition", "committed", "high_watermark", "lag"]))


@groups.command("reset")
@click.argument("group")
@click.option("--to", "to", type=click.Choice(["earliest", "latest"]), required=True)
@click.option("--topic", "topics", multiple=True,
              help="Topic to reset (repeatable; default: those the group has committed).")
@json_option
@click.pass_context
def groups_reset(ctx, group, to, topics):
    """Move an idle group's committed offsets to the earliest or latest records."""
    offsets = _client(ctx).reset_group(group, to, topics or None)
    rows = [[t, p, o] for t, parts in sorted(offsets.items()) for p, o in sorted(parts.items(), key=lambda x: int(x[0]))]
    _out(ctx, offsets, (rows, ["topic", "partition", "committed"]))


if __name__ == "__main__":
    main()
