"""``consumer-api serve``: run the server (gunicorn with the project's settings)."""
from __future__ import annotations

import os
import sys

import click

from consumer_api.cli.base import main


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
