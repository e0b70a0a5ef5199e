"""Consume JSON events from a consumer-api topic as a member of a consumer group.

    python examples/consumer.py --topic demo --group demo-readers
    python examples/consumer.py --topic demo --group demo-readers --max 10

Prints one line per record -- ``topic[partition]@offset key=... value=<json> headers=<json>``
-- and commits after each batch, so a restarted consumer (or another member of the group)
resumes after the last committed record: delivery is at least once. Stops after ``--max``
records, or on Ctrl-C; either way it commits what it printed and leaves the group, whose
partitions go at once to its other members.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path

try:
    from consumer_api.client import Client
    from consumer_api.client.errors import ClientError, PartitionNotAssigned
except ImportError:  # run from a checkout without `pip install -e .`: use the checkout's copy
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from consumer_api.client import Client
    from consumer_api.client.errors import ClientError, PartitionNotAssigned

DEFAULT_URL = "http://127.0.0.1:8080"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="The API key, if the server wants one, comes from the environment: "
               "CONSUMER_API_KEY.")
    parser.add_argument("--url", default=os.environ.get("CONSUMER_API_URL", DEFAULT_URL),
                        help="server address (env CONSUMER_API_URL; default %(default)s)")
    parser.add_argument("--topic", default="demo", help="topic to read (default %(default)s)")
    parser.add_argument("--group", default="demo-readers",
                        help="consumer group to join (default %(default)s)")
    parser.add_argument("--max", type=int, metavar="N",
                        help="stop after N records (default: run until Ctrl-C)")
    args = parser.parse_args()
    if args.max is not None and args.max < 1:
        parser.error("--max must be at least 1")
    return args


def show(record) -> str:
    value = record.value
    if isinstance(value, bytes):  # not JSON: the client hands such a value out as bytes
        value = value.decode("utf-8", errors="backslashreplace")
    value = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    headers = json.dumps(record.headers, ensure_ascii=False, separators=(",", ":"))
    key = "" if record.key is None else record.key
    return (f"{record.topic}[{record.partition}]@{record.offset} "
            f"key={key} value={value} headers={headers}")


def commit_printed(consumer, done: dict) -> None:
    """Commit the offsets in ``done`` (what was printed) of the partitions this member still
    owns, where they are ahead of the group's: after rebalances another member may have
    read further. Not ``consumer.commit()``: that would commit the positions, which include
    the records of the last batch that were fetched but not printed."""
    if not done:
        return
    owned = set(consumer.assignment())
    committed = consumer.committed()
    ahead = {tp: offset for tp, offset in done.items()
             if tp in owned and offset > committed.get(tp, 0)}
    if ahead:
        try:
            consumer.commit(ahead)
        except PartitionNotAssigned:
            pass  # a rebalance just moved one away: its new owner reads those records again


def main() -> int:
    args = parse_args()
    # stop on SIGTERM (docker stop, systemd, kill) as on Ctrl-C: commit, leave the group
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    client = Client(args.url, api_key=os.environ.get("CONSUMER_API_KEY"))
    printed, interrupted = 0, False
    try:
        # subscribe on enter (new members start at the group's committed offsets, else at the
        # beginning); leave the group on exit, whatever ends the block
        with client.consumer(args.group, [args.topic], auto_offset_reset="earliest",
                             value_format="json", commit_each_batch=True) as consumer:
            done = {}  # (topic, partition) -> next offset to read, for what was printed
            try:
                # long-polls; each poll first commits the records received before it
                for record in consumer:
                    print(show(record), flush=True)
                    done[(record.topic, record.partition)] = record.offset + 1
                    printed += 1
                    if args.max is not None and printed >= args.max:
                        break
            except KeyboardInterrupt:
                interrupted = True
            # the last batch is not committed yet (and may have been left half-way)
            commit_printed(consumer, done)
    except KeyboardInterrupt:  # during subscribe or commit: the block still left the group
        interrupted = True
    except ClientError as exc:  # typed errors carry the server's code (exc.code)
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        client.close()
    print(f"{'interrupted: ' if interrupted else ''}{printed} records printed and committed, "
          f"left group {args.group}", file=sys.stderr)
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
