"""``consumer-api produce``: one record per line of a file or stdin."""
from __future__ import annotations

import json
import os
import sys

import click

from consumer_api.cli.base import client_of, json_option, main, out
from consumer_api.client import Record


def _headers(_ctx, _param, pairs) -> dict:
    """``--header K=V`` options as a dict (a name without ``=`` is a usage error)."""
    found = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{pair!r} is not NAME=VALUE")
        found[name] = value
    return found


@main.command()
@click.argument("topic")
@click.argument("source", type=click.File("rb"), default="-")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="How to read each line's value.")
@click.option("--key-separator", default=None,
              help="Split each line at the first SEP into key and value.")
@click.option("--partition", "-p", type=click.IntRange(0), default=None,
              help="Put every record in this partition (default: by key, else round-robin).")
@click.option("--header", "-H", "headers", multiple=True, callback=_headers, metavar="K=V",
              help="Add this header to every record (repeatable).")
@click.option("--progress/--no-progress", default=None,
              help="Show a progress bar (default: when stderr is a terminal).")
@json_option
@click.pass_context
def produce(ctx, topic, source, fmt, key_separator, partition, headers, progress):
    """Produce one record per line of SOURCE (a file, default stdin)."""
    client = client_of(ctx)
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
        for batch, consumed in _line_batches(source, fmt, key_separator, partition, headers):
            for o in client.produce(topic, batch):
                partitions[o["partition"]] = partitions.get(o["partition"], 0) + 1
            produced += len(batch)
            bar.update(consumed if total else len(batch))
    summary = {"topic": topic, "records": produced,
               "partitions": {str(p): n for p, n in sorted(partitions.items())}}
    out(ctx, summary, ([[topic, p, n] for p, n in sorted(partitions.items())],
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


def _line_batches(source, fmt: str, key_separator: str | None, partition: int | None,
                  headers: dict, size: int = 5000):
    """``(records, bytes read)`` per batch of lines; a bad line is a one-line error."""
    batch, consumed = [], 0
    for number, raw in enumerate(source, 1):
        consumed += len(raw)
        line = raw.rstrip(b"\r\n")
        try:
            batch.append(_line_record(line, fmt, key_separator, partition, headers))
        except ValueError as exc:
            raise click.ClickException(f"line {number}: {exc}") from None
        if len(batch) >= size:
            yield batch, consumed
            batch, consumed = [], 0
    if batch:
        yield batch, consumed


def _line_record(line: bytes, fmt: str, key_separator: str | None, partition: int | None,
                 headers: dict):
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
    if key is None and partition is None and not headers:
        return value
    return Record(value, key=key, partition=partition, headers=headers or None)
