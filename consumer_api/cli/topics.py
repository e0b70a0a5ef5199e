"""``consumer-api topics``: create, list, describe and delete topics."""
from __future__ import annotations

import click

from consumer_api.cli.base import client_of, delete_after_asking, json_option, main, out


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
    created = client_of(ctx).create_topic(name, partitions, config or None)
    out(ctx, created, ([[created["name"], created["partitions"], created["config"]["retention_ms"],
                          created["config"]["retention_bytes"], created["config"]["segment_bytes"]]],
                        ["topic", "partitions", "retention_ms", "retention_bytes", "segment_bytes"]))


@topics.command("list")
@json_option
@click.pass_context
def topics_list(ctx):
    """List topics with their record counts."""
    found = client_of(ctx).list_topics()
    rows = [[t["name"], len(t["partitions"]),
             sum(p["high_watermark"] - p["log_start_offset"] for p in t["partitions"])]
            for t in found]
    out(ctx, found, (rows, ["topic", "partitions", "records"]))


@topics.command("describe")
@click.argument("name")
@json_option
@click.pass_context
def topics_describe(ctx, name):
    """Show a topic's config and partitions."""
    info = client_of(ctx).describe_topic(name)
    if not ctx.obj["json"]:
        click.echo(f"topic {info['name']}: " + ", ".join(f"{k}={v}" for k, v in info["config"].items()))
    rows = [[p["partition"], p["log_start_offset"], p["high_watermark"], p["size_bytes"]]
            for p in info["partitions"]]
    out(ctx, info, (rows, ["partition", "log_start_offset", "high_watermark", "size_bytes"]))


@topics.command("delete")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask.")
@json_option
@click.pass_context
def topics_delete(ctx, name, yes):
    """Delete a topic and all its records."""
    delete_after_asking(ctx, "topic", name, "all its records", yes, client_of(ctx).delete_topic)
