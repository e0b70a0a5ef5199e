"""``consumer-api groups``: list, describe, reset (preview first) and delete consumer groups."""
from __future__ import annotations

import click

from consumer_api.cli.base import (client_of, delete_after_asking, json_option, main, out,
                                   print_table)
from consumer_api.cli.consume import epoch_ms
from consumer_api.client import TopicPartition
from consumer_api.client.errors import GroupNotFound


@main.group()
def groups():
    """List, describe, reset and delete consumer groups."""


@groups.command("list")
@json_option
@click.pass_context
def groups_list(ctx):
    """List consumer groups."""
    found = client_of(ctx).list_groups()
    rows = [[g["group_id"], g["state"], g["generation"], len(g["members"])] for g in found]
    out(ctx, found, (rows, ["group", "state", "generation", "members"]))


@groups.command("describe")
@click.argument("group")
@json_option
@click.pass_context
def groups_describe(ctx, group):
    """Members, committed offsets and lag of a group."""
    info = client_of(ctx).describe_group(group)
    if not ctx.obj["json"]:
        click.echo(f"group {info['group_id']}: {info['state']}, generation {info['generation']}, "
                   f"assignor {info['assignor']}, {len(info['members'])} member(s)")
        for m in info["members"]:
            parts = ", ".join(f"{t}{ps}" for t, ps in sorted(m["assignment"].items()))
            click.echo(f"  {m['consumer_id']}  {parts or '-'}  "
                       f"(heartbeat {m['last_heartbeat_ms_ago']} ms ago)")
    rows = [[o["topic"], o["partition"], o["committed_offset"], o["high_watermark"], o["lag"]]
            for o in info["offsets"]]
    out(ctx, info, (rows, ["topic", "partition", "committed", "high_watermark", "lag"]))


def _partitions(_ctx, _param, specs) -> list:
    """``--topic T`` or ``--topic T:P`` options as ``(topic, partition or None)``."""
    found = []
    for spec in specs:
        topic, sep, partition = spec.rpartition(":")
        if not sep:
            found.append((spec, None))
        elif partition.isdigit() and topic:
            found.append((topic, int(partition)))
        else:
            raise click.BadParameter(f"{spec!r} is not TOPIC or TOPIC:PARTITION")
    return found


TARGETS = ("to_earliest", "to_latest", "to_offset", "to_datetime", "shift_by")


@groups.command("reset")
@click.argument("group")
@click.option("--topic", "topics", multiple=True, callback=_partitions,
              metavar="TOPIC[:PARTITION]",
              help="What to reset (repeatable; default: every partition the group has "
                   "committed).")
@click.option("--to-earliest", is_flag=True, help="To each partition's first record.")
@click.option("--to-latest", is_flag=True, help="To each partition's end (skip the backlog).")
@click.option("--to-offset", type=click.IntRange(0), default=None,
              help="To this offset (within each partition's range).")
@click.option("--to-datetime", default=None, callback=epoch_ms, metavar="TIME",
              help="To the first record at or after TIME (ISO 8601 or epoch ms).")
@click.option("--shift-by", type=int, default=None,
              help="By N records from the committed offset (negative: back).")
@click.option("--execute", is_flag=True,
              help="Apply it. Without: show what would change, and change nothing.")
@json_option
@click.pass_context
def groups_reset(ctx, group, topics, execute, **targets):
    """Move an idle group's committed offsets: a preview table (partition, current, new,
    lag after), applied only with --execute."""
    chosen = [name for name in TARGETS if targets[name] not in (None, False)]
    if len(chosen) != 1:
        raise click.UsageError("give one of --to-earliest, --to-latest, --to-offset, "
                               "--to-datetime, --shift-by")
    client = client_of(ctx)
    plan = _plan(client, group, topics, chosen[0], targets[chosen[0]])
    if execute:
        client.set_group_offsets(group, {TopicPartition(r["topic"], r["partition"]): r["new"]
                                         for r in plan})
    if ctx.obj["json"]:
        out(ctx, {"group": group, "executed": execute, "partitions": plan})
        return
    print_table([[r["topic"], r["partition"], r["current"], r["new"], r["lag_after"]]
                 for r in plan], ["topic", "partition", "current", "new", "lag after"])
    click.echo(f"group {group}: offsets reset" if execute
               else "preview only: nothing changed (add --execute to apply)", err=True)


def _plan(client, group: str, topics: list, target: str, value) -> list[dict]:
    """Per partition: ``{topic, partition, current, new, lag_after}``."""
    current = _committed(client, group)
    if not topics:
        topics = sorted({(t, p) for (t, p) in current})
        if not topics:
            raise click.UsageError(f"group {group!r} has no committed offsets: name what to "
                                   "reset with --topic")
    rows = []
    described: dict = {}
    for topic, partition in topics:
        if topic not in described:
            described[topic] = {p["partition"]: p
                                for p in client.describe_topic(topic)["partitions"]}
        parts = described[topic]
        if partition is not None and partition not in parts:
            raise click.ClickException(f"topic {topic!r} has no partition {partition}")
        for p in [partition] if partition is not None else sorted(parts):
            info = parts[p]
            now = current.get((topic, p))
            new = _new_offset(client, topic, info, now, target, value)
            rows.append({"topic": topic, "partition": p, "current": now, "new": new,
                         "lag_after": info["high_watermark"] - new})
    return rows


def _committed(client, group: str) -> dict:
    """``{(topic, partition): committed}`` ({} for a group the server does not know)."""
    try:
        info = client.describe_group(group)
    except GroupNotFound:
        return {}
    return {(o["topic"], o["partition"]): o["committed_offset"] for o in info["offsets"]
            if o["committed_offset"] is not None}


def _new_offset(client, topic: str, info: dict, now, target: str, value) -> int:
    low, high = info["log_start_offset"], info["high_watermark"]
    if target == "to_earliest":
        return low
    if target == "to_latest":
        return high
    if target == "to_datetime":
        page = client.read_page(topic, info["partition"], timestamp=value, max_records=1)
        return page["records"][0].offset if page["records"] else high
    wanted = value if target == "to_offset" else (low if now is None else now) + value
    return min(max(wanted, low), high)


@groups.command("delete")
@click.argument("group")
@click.option("--yes", is_flag=True, help="Do not ask.")
@json_option
@click.pass_context
def groups_delete(ctx, group, yes):
    """Delete an idle group and its committed offsets."""
    delete_after_asking(ctx, "group", group, "its committed offsets", yes,
                        client_of(ctx).delete_group)
