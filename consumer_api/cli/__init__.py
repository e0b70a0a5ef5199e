"""The ``consumer-api`` command line: run the server, and drive one from a terminal.

::

    consumer-api serve --data-dir ./data
    consumer-api topics create orders --partitions 3
    consumer-api topics stats orders --bucket 1m             # records per minute, last hour
    seq 1 1000 | consumer-api produce orders
    consumer-api consume orders -o -10                       # the last 10 of each partition
    consumer-api consume orders --group debug --from-beginning --max 10
    consumer-api groups reset debug --to-earliest            # a preview; --execute applies

Global options: ``--url`` (env ``CONSUMER_API_URL``, default ``http://127.0.0.1:8080``),
``--api-key`` (env ``CONSUMER_API_KEY``), ``--json`` (machine-readable output),
``--compression`` (env ``CONSUMER_API_COMPRESSION``: ``zstd``, the default, ``gzip`` or
``none``; see :class:`consumer_api.client.Client`). A failure is one line on stderr (``Error: ...``) and a non-zero exit status, never a traceback;
Ctrl-C is one line and exit status 130. One module per command (group); ``base`` holds
what they share and ``show`` how records print.
"""
from __future__ import annotations

from consumer_api.cli import consume, groups, produce, serve, topic_stats, topics
from consumer_api.cli.base import main

#: importing a command module adds its commands to ``main``
COMMANDS = (serve, topics, topic_stats, produce, consume, groups)
__all__ = ["main"]
