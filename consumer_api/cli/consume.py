"""``consumer-api consume``: print records. With ``--group`` as a member of the group
(long-polls, commits what it printed unless ``--no-commit``); without, a read of the
topic's partitions from an offset or a time that leaves nothing behind (no group, no
commit) and ends at their current end."""
from __future__ import annotations

import datetime as _dt
import json

import click

from consumer_api.cli.base import client_of, json_option, main
from consumer_api.cli.show import MODES, compile_format, line_of

#: records asked for per request
PAGE = 500


def _json_filter(_ctx, _param, text):
    """The --filter option: JSON text (the server checks the filter itself)."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise click.BadParameter(f"not JSON ({exc})") from None


def _offset(_ctx, _param, text):
    """--offset: a number, ``beginning``, ``end`` or ``-N`` (the last N)."""
    if text is None or text in ("beginning", "end"):
        return text
    try:
        return int(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a number, beginning, end or -N") from None


def epoch_ms(_ctx, _param, text):
    """A time option: epoch milliseconds, or an ISO 8601 date and time (UTC unless it
    says otherwise)."""
    if text is None:
        return None
    if text.isdigit():
        return int(text)
    try:
        when = _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{text!r} is neither epoch ms nor an ISO 8601 time "
                                 "(2026-12-05T10:00:00Z)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=_dt.timezone.utc)
    return int(when.timestamp() * 1000)


def _format(_ctx, _param, text):
    """--format: one of MODES, or a format string (see consumer_api.cli.show)."""
    return text if text in MODES else compile_format(text)


@main.command()
@click.argument("topic")
@click.option("--group", "-g", default=None,
              help="Consume as a member of this group, committing what it prints. Without: "
                   "read the partitions, leaving nothing behind.")
@click.option("--partition", "-p", "partitions", type=click.IntRange(0), multiple=True,
              help="Without --group: read this partition (repeatable; default: all).")
@click.option("--offset", "-o", default=None, callback=_offset, metavar="N|beginning|end|-N",
              help="Without --group: where each partition starts (default: beginning); -N "
                   "for the last N records.")
@click.option("--timestamp", default=None, callback=epoch_ms, metavar="TIME",
              help="Without --group: start at the first record at or after TIME (ISO 8601 "
                   "or epoch ms).")
@click.option("--from-beginning", is_flag=True,
              help="With --group and no committed offsets: start at the first record "
                   "(default: the end).")
@click.option("--no-commit", is_flag=True,
              help="With --group: print without committing (the group does not move).")
@click.option("--max", "max_records", type=click.IntRange(1), default=None,
              help="Stop after printing N records.")
@click.option("--idle-exit-ms", type=click.IntRange(0), default=None,
              help="With --group: stop when no record came for this long (default: wait "
                   "forever).")
@click.option("--format", "-f", "fmt", default="text", callback=_format, metavar="FORMAT",
              help="text (default), json or base64: how keys and values print; or a format "
                   "string: %t topic, %p partition, %o offset, %T timestamp, %k key, %s "
                   "value, %h headers, %K/%S key/value length, \\n, \\t.")
@click.option("--assignor", type=click.Choice(["range", "roundrobin", "sticky"]), default=None,
              help="With --group: the group's assignor, when this is its first member "
                   "(default: the server's).")
@click.option("--filter", "record_filter", callback=_json_filter, default=None,
              metavar="JSON", help='Only records this filter matches, e.g. \'{"key": {"prefix": '
                                   '"user-"}}\' (see README); with --group the others are '
                                   'skipped and committed too.')
@json_option
@click.pass_context
def consume(ctx, topic, group, partitions, offset, timestamp, from_beginning, no_commit,
            max_records, idle_exit_ms, fmt, assignor, record_filter):
    """Print records of TOPIC: as a member of --group, or read from its partitions."""
    render = _renderer(fmt, ctx.obj["json"])
    if group is None:
        _refuse_with(ctx, "without --group", from_beginning=from_beginning,
                     no_commit=no_commit, idle_exit_ms=idle_exit_ms, assignor=assignor)
        if offset is not None and timestamp is not None:
            raise click.UsageError("give --offset or --timestamp, not both")
        printed = _read(client_of(ctx), topic, partitions, offset, timestamp, max_records,
                        record_filter, render)
        done = "printed"
    else:
        _refuse_with(ctx, "with --group", partition=partitions, offset=offset,
                     timestamp=timestamp)
        printed = _as_member(client_of(ctx), topic, group, from_beginning, not no_commit,
                             max_records, idle_exit_ms, assignor, record_filter, render)
        done = "printed" if no_commit else f"printed and committed for group {group}"
    if not ctx.obj["json"]:
        click.echo(f"{printed} record(s) {done}", err=True)


def _renderer(fmt, as_json: bool):
    if callable(fmt):
        return fmt
    return lambda rec: line_of(rec, fmt, as_json)


def _refuse_with(_ctx, where: str, **given) -> None:
    for name, value in given.items():
        if value:
            raise click.UsageError(f"--{name.replace('_', '-')} does not go {where}")


def _read(client, topic, partitions, offset, timestamp, max_records, record_filter,
          render) -> int:
    """Each chosen partition from its start to its current end."""
    info = client.describe_topic(topic)
    known = {p["partition"]: p for p in info["partitions"]}
    for p in partitions:
        if p not in known:
            raise click.ClickException(f"topic {topic!r} has no partition {p} "
                                       f"(it has {len(known)})")
    printed = 0
    for p in partitions or sorted(known):
        start = _start(known[p], offset)
        page = {"next_offset": start, "high_watermark": known[p]["high_watermark"]}
        first = True
        while max_records is None or printed < max_records:
            want = PAGE if max_records is None else min(PAGE, max_records - printed)
            page = client.read_page(topic, p, None if first and timestamp else page["next_offset"],
                                    timestamp=timestamp if first else None, max_records=want,
                                    filter=record_filter)
            first = False
            for rec in page["records"]:
                click.echo(render(rec))
            printed += len(page["records"])
            if page["next_offset"] >= page["high_watermark"]:
                break
    return printed


def _start(partition: dict, offset) -> int:
    low, high = partition["log_start_offset"], partition["high_watermark"]
    if offset is None or offset == "beginning":
        return low
    if offset == "end":
        return high
    if offset < 0:
        return max(low, high + offset)
    return offset


def _as_member(client, topic, group, from_beginning, commit, max_records, idle_exit_ms,
               assignor, record_filter, render) -> int:
    consumer = client.consumer(group, [topic], value_format="bytes", assignor=assignor,
                               filter=record_filter,
                               auto_offset_reset="earliest" if from_beginning else "latest",
                               timeout_ms=30000 if idle_exit_ms is None
                               else min(idle_exit_ms, 30000))
    printed = 0
    with consumer:
        while max_records is None or printed < max_records:
            batch = consumer.poll(max_records=min(PAGE, (max_records or PAGE) - printed) or 1)
            for rec in batch:
                click.echo(render(rec))
                printed += 1
            if commit:
                consumer.commit_handed_out()
            if not batch and idle_exit_ms is not None and not consumer.scan_limit_reached:
                break
    return printed
