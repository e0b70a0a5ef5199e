"""The ``consumer-api`` command group and what every command shares: the global options,
the client, one-line errors, and output as tables or JSON."""
from __future__ import annotations

import json

import click

from consumer_api.client import Client
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
@click.option("--compression", type=click.Choice(["zstd", "gzip", "none"]), default="zstd",
              envvar="CONSUMER_API_COMPRESSION", show_default=True,
              help="Compress request bodies of 1 KiB or more in this coding and ask for "
                   "compressed records; none: neither (env CONSUMER_API_COMPRESSION).")
@click.pass_context
def main(ctx, url, api_key, as_json, compression):
    """Drive a consumer-api server: topics, records, consumer groups."""
    ctx.obj = {"url": url, "api_key": api_key, "json": as_json,
               "compression": None if compression == "none" else compression}


def _json_flag(ctx, _param, value):
    if value:
        ctx.obj["json"] = True


#: --json is accepted after the command too (``consumer-api topics list --json``)
json_option = click.option("--json", "as_json", is_flag=True, expose_value=False,
                           callback=_json_flag, help="Print JSON instead of tables.")


def client_of(ctx) -> Client:
    """The command's client (one per invocation)."""
    if "client" not in ctx.obj:
        ctx.obj["client"] = Client(ctx.obj["url"], ctx.obj["api_key"],
                                   compression=ctx.obj["compression"])
    return ctx.obj["client"]


def out(ctx, data, table=None) -> None:
    """Print ``data`` as JSON with --json, else as the human ``table`` (rows, columns)."""
    if ctx.obj["json"] or table is None:
        click.echo(json.dumps(data, indent=2, sort_keys=True))
    else:
        print_table(*table)


def delete_after_asking(ctx, kind: str, name: str, also: str, yes: bool, delete) -> None:
    """Ask (unless ``yes``) whether to delete ``kind`` ``name`` and ``also``, then
    ``delete(name)`` and say so."""
    if not yes:
        click.confirm(f"Delete {kind} {name!r} and {also}?", abort=True)
    delete(name)
    out(ctx, {"message": f"{kind} deleted", kind: name}, ([[name, "deleted"]], [kind, "status"]))


def print_table(rows: list, columns: list) -> None:
    """Rows under a header and a rule, columns padded; an empty cell shows ``-``."""
    if not rows:
        click.echo("(none)")
        return
    cells = [[str(c) for c in columns]] + [[_cell(v) for v in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    for n, row in enumerate(cells):
        click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())
        if n == 0:
            click.echo("  ".join("-" * w for w in widths))


def _cell(value) -> str:
    return "-" if value is None or value == "" else str(value)
