"""Produce JSON order events to a consumer-api topic with the Python client.

    python examples/producer.py --topic demo --count 10
    CONSUMER_API_URL=http://10.0.0.5:8080 CONSUMER_API_KEY=s3cret python examples/producer.py

Creates the topic if it does not exist, sends ``--count`` events keyed by customer (so the
events of one customer stay in order on one partition) with a couple of headers, and prints
where they went. Exit status 1 (and one line on stderr) if the server refuses.
"""
from __future__ import annotations

import argparse
import os
import sys
import uuid
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

try:
    from consumer_api.client import Client, Record
    from consumer_api.client.errors import ClientError, TopicExists
except ImportError:  # run from a checkout without `pip install -e .`: use the checkout's copy
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from consumer_api.client import Client, Record
    from consumer_api.client.errors import ClientError, TopicExists

DEFAULT_URL = "http://127.0.0.1:8080"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="The API key, if the server wants one, comes from the environment: "
               "CONSUMER_API_KEY.")
    parser.add_argument("--url", default=os.environ.get("CONSUMER_API_URL", DEFAULT_URL),
                        help="server address (env CONSUMER_API_URL; default %(default)s)")
    parser.add_argument("--topic", default="demo",
                        help="topic to produce to (default %(default)s)")
    parser.add_argument("--count", type=int, default=10, metavar="N",
                        help="events to send (default %(default)s)")
    parser.add_argument("--partitions", type=int, default=3, metavar="P",
                        help="partitions if the topic is created (default %(default)s)")
    args = parser.parse_args()
    if args.count < 1:
        parser.error("--count must be at least 1")
    return args


def order_event(seq: int) -> Record:
    customer = f"customer-{seq % 4}"
    event = {
        "event_id": str(uuid.uuid4()),
        "type": "order_created",
        "seq": seq,
        "customer": customer,
        "amount_cents": 500 + (seq * 137) % 9500,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="milliseconds")
                      .replace("+00:00", "Z"),
    }
    # a dict value goes as compact JSON; the str key as its UTF-8 bytes
    return Record(event, key=customer,
                  headers={"producer": "examples/producer.py", "content-type": "application/json"})


def main() -> int:
    args = parse_args()
    # the API key is a secret: from the environment, never from the command line
    with Client(args.url, api_key=os.environ.get("CONSUMER_API_KEY")) as client:
        try:
            try:
                client.create_topic(args.topic, partitions=args.partitions)
                print(f"created topic {args.topic} with {args.partitions} partitions")
            except TopicExists:
                pass  # already there: produce to it as it is
            offsets = client.produce(args.topic, (order_event(i) for i in range(args.count)))
        except ClientError as exc:  # typed errors carry the server's code (exc.code)
            print(f"error: {exc}", file=sys.stderr)
            return 1

    by_partition = defaultdict(list)
    for where in offsets:
        by_partition[where["partition"]].append(where["offset"])
    print(f"produced {len(offsets)} events to {args.topic}")
    for partition, offs in sorted(by_partition.items()):
        print(f"  partition {partition}: {len(offs)} events, offsets {min(offs)}..{max(offs)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
