"""The real server under gunicorn (``gunicorn -c gunicorn.conf.py``), over HTTP.

Produce and read back through every encoding, Swagger, the error envelope, a clean stop
on SIGTERM (exit code 0, logs trimmed to their records), a restart on the same data
directory, and a second server refused on a data directory in use.

Expectations are computed from the contract (API.md) and the documented batch layout
(``storage/batches.py``), not from the server's own code.
"""
from __future__ import annotations

import base64
import json
import signal
import time
from pathlib import Path

import pytest
import requests

from consumer_api.partitioner import partition_for_key
from tests.e2e.conftest import free_port, spawn_server

TOPIC = "orders"
PARTITIONS = 3
ROLLED = "rolled"  # a topic with tiny segments: several sealed segments and an active one
ROLLED_SEGMENT_BYTES = 1024
FIXED_TS = 1_700_000_000_123
#: length, crc, base offset, count, first and max timestamp, attributes, column widths
BATCH_HEADER = 38
FILE_HEADER = 8  # at the start of each .log file


def b64(data: bytes | None):
    return None if data is None else base64.b64encode(data).decode("ascii")


def now_ms() -> int:
    return int(time.time() * 1000)


def compact_json(value) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def column_width(entries: list) -> int:
    """Bytes per entry of a batch column: the narrowest signed width holding them all."""
    return next(w for w in (1, 2, 4, 8) if all(-(1 << 8 * w - 1) <= x < 1 << 8 * w - 1
                                               for x in entries))


def batch_bytes(recs: list) -> int:
    """Bytes of one batch (a produce's share of a partition) in a ``.log`` file: its
    header, a length column for values, for keys and for headers (each left out when no
    record has one) and a timestamp-delta column (left out when all are equal), then the
    bytes (storage/batches.py layout)."""
    def length(b):
        return -1 if b is None else len(b)

    def encoded_headers(r):
        return sum(2 + len(k.encode()) + 4 + len(v.encode()) for k, v in r["headers"].items())

    columns = [[length(r["value"]) for r in recs]]
    if any(r["key"] is not None for r in recs):
        columns.append([length(r["key"]) for r in recs])
    if any(r["headers"] for r in recs):
        columns.append([encoded_headers(r) for r in recs])
    if len({r["timestamp"] for r in recs}) > 1:
        columns.append([r["timestamp"] - recs[0]["timestamp"] for r in recs])
    data = sum(len(r["key"] or b"") + len(r["value"] or b"") + encoded_headers(r) for r in recs)
    return BATCH_HEADER + sum(column_width(c) * len(recs) for c in columns) + data


def render(rec: dict, topic: str, partition: int, encoding: str) -> dict:
    """The API form of a stored record (API.md "Bytes on the wire"; a record that cannot be
    shown in ``encoding`` comes back in base64 with ``"encoding": "base64"``)."""
    out = {"topic": topic, "partition": partition, "offset": rec["offset"],
           "timestamp": rec["timestamp"], "headers": rec["headers"]}
    decode = {"base64": b64,
              "text": lambda b: None if b is None else b.decode("utf-8"),
              "json": lambda b: None if b is None else json.loads(b.decode("utf-8"))}[encoding]
    try:
        out["key"], out["value"] = decode(rec["key"]), decode(rec["value"])
    except ValueError:
        out["key"], out["value"], out["encoding"] = b64(rec["key"]), b64(rec["value"]), "base64"
    return out


class Model:
    """What the server should hold: per topic and partition, the records in offset order
    (``{"offset", "timestamp", "key": bytes|None, "value": bytes|None, "headers": dict}``)."""

    def __init__(self):
        self.topics: dict[str, list[list[dict]]] = {}
        self.produces = 0  # a record's "batch" is the produce that stored it

    def add_topic(self, name: str, partitions: int):
        self.topics[name] = [[] for _ in range(partitions)]

    def hw(self, topic: str, partition: int) -> int:
        return len(self.topics[topic][partition])

    def size_bytes(self, topic: str, partition: int) -> int:
        batches: dict[int, list] = {}
        for r in self.topics[topic][partition]:
            batches.setdefault(r["batch"], []).append(r)
        return sum(batch_bytes(recs) for recs in batches.values())


class Client:
    """A thin JSON client over one requests.Session."""

    def __init__(self, session: requests.Session, base_url: str):
        self.s = session
        self.base_url = base_url

    def call(self, method: str, path: str, expect: int = 200, **kwargs):
        resp = self.s.request(method, self.base_url + path, timeout=10, **kwargs)
        assert resp.status_code == expect, (method, path, resp.status_code, resp.text)
        assert resp.headers["Content-Type"].startswith("application/json"), resp.headers
        return resp.json()

    def create_topic(self, model: Model, name: str, partitions: int, config=None):
        body = {"name": name, "partitions": partitions}
        if config:
            body["config"] = config
        got = self.call("POST", "/api/topics", 201, json=body)
        assert got["name"] == name and got["partitions"] == partitions, got
        model.add_topic(name, partitions)
        return got

    def produce(self, model: Model, topic: str, encoding: str | None, records: list,
                stored: list) -> list[dict]:
        """POST records (wire form ``records``; ``stored[i]`` is record i as bytes:
        ``(key, value, headers)``) and check the response against the contract."""
        body = {"records": records}
        if encoding is not None:
            body["encoding"] = encoding
        before = now_ms()
        offsets = self.call("POST", f"/api/topics/{topic}/records", json=body)["offsets"]
        after = now_ms()
        assert len(offsets) == len(records), offsets
        parts = model.topics[topic]
        model.produces += 1
        server_now = set()
        for wire, (key, value, headers), got in zip(records, stored, offsets):
            p = got["partition"]
            if wire.get("partition") is not None:
                assert p == wire["partition"], (wire, got)
            elif key is not None:  # Kafka's default partitioner
                assert p == partition_for_key(key, len(parts)), (wire, got)
            else:
                assert 0 <= p < len(parts), got
            assert got["offset"] == len(parts[p]), (wire, got, "offsets are dense per partition")
            if wire.get("timestamp") is not None:
                assert got["timestamp"] == wire["timestamp"], (wire, got)
            else:
                assert before <= got["timestamp"] <= after, (before, got, after)
                server_now.add(got["timestamp"])
            parts[p].append({"offset": got["offset"], "timestamp": got["timestamp"],
                             "key": key, "value": value, "headers": headers or {},
                             "batch": model.produces})
        assert len(server_now) <= 1, f"one request, one append time: {server_now}"
        return offsets

    def read(self, topic: str, partition: int, **params) -> list[dict]:
        return self.call("GET", f"/api/topics/{topic}/partitions/{partition}/records",
                         params=params)["records"]


def populate(c: Client, model: Model) -> None:
    """Two topics; batches in all three encodings, with keys (some null), headers (some
    absent, some non-ASCII), explicit and chosen partitions, explicit and server
    timestamps, null and empty values, bytes that are not UTF-8."""
    c.create_topic(model, TOPIC, PARTITIONS)
    raw = [  # (key, value, headers, partition, timestamp)
        (b"user-1", b"\x00\xff\xfe binary \x80", {"source": "web", "trace": "abc"}, 0, FIXED_TS),
        (None, b"hello", None, 2, None),
        (b"user-2", b"", None, None, None),
        (b"user-1", b"again", {}, None, FIXED_TS + 1),
        (b"\xc3\x28", b"key is not utf-8", {"x": ""}, 1, None),
    ]
    c.produce(model, TOPIC, None,
              [{k: v for k, v in {"key": b64(key), "value": b64(value), "headers": h,
                                  "partition": p, "timestamp": ts}.items()
                if v is not None or k == "value"}
               for key, value, h, p, ts in raw],
              [(key, value, h) for key, value, h, _p, _ts in raw])
    text = [  # (key, value, headers, partition)
        ("ключ-é", "héllo wörld ✓", {"h": "v", "ünï": "cødé ✓"}, 1),
        (None, "no key", None, 1),
        ("k", None, {"tombstone": "yes"}, 0),
        ("text-key", "", None, None),
        ("user-1", "same key, same partition", None, None),
    ]
    c.produce(model, TOPIC, "text",
              [{"key": k, "value": v, "headers": h, "partition": p} for k, v, h, p in text],
              [(None if k is None else k.encode(), None if v is None else v.encode(), h)
               for k, v, h, _p in text])
    js = [  # (key, value, headers, partition)
        ({"id": 7}, {"a": [1, 2.5, "x", None, True], "é": "ü"}, {"ct": "application/json"}, 2),
        (None, "a json string", None, 0),
        ([1, 2], 42, None, None),
        ("null-value", None, None, 2),
        (None, 0, None, 1),
    ]
    c.produce(model, TOPIC, "json",
              [{"key": k, "value": v, "headers": h, "partition": p} for k, v, h, p in js],
              [(None if k is None else compact_json(k), None if v is None else compact_json(v), h)
               for k, v, h, _p in js])

    c.create_topic(model, ROLLED, 1, {"segment_bytes": ROLLED_SEGMENT_BYTES})
    for batch in range(5):  # ~700 bytes a batch: each one rolls the 1 KiB segment
        values = [f"batch {batch} record {i} ".encode() + bytes([65 + i]) * 100 for i in range(5)]
        c.produce(model, ROLLED, None, [{"value": b64(v), "headers": {"b": str(batch)}}
                                        for v in values],
                  [(None, v, {"b": str(batch)}) for v in values])


def check_served(c: Client, model: Model) -> dict:
    """Everything in ``model`` is served exactly: listing, description, records in every
    encoding, paging and the range check. Returns the description of every topic."""
    listing = {t["name"]: t["partitions"] for t in c.call("GET", "/api/topics")["topics"]}
    assert set(listing) == set(model.topics)
    described = {}
    for topic, parts in model.topics.items():
        expected_parts = [{"partition": p, "log_start_offset": 0, "high_watermark": model.hw(topic, p)}
                          for p in range(len(parts))]
        assert listing[topic] == expected_parts
        desc = c.call("GET", f"/api/topics/{topic}")
        assert desc["name"] == topic
        assert [{k: v for k, v in d.items() if k != "size_bytes"} for d in desc["partitions"]] \
            == expected_parts
        for d in desc["partitions"]:
            assert d["size_bytes"] == model.size_bytes(topic, d["partition"]), (topic, d)
        described[topic] = desc
        for p, recs in enumerate(parts):
            for encoding in ("base64", "text", "json"):
                params = {} if encoding == "base64" else {"encoding": encoding}
                got = c.read(topic, p, max_records=1000, **params)
                assert got == [render(r, topic, p, encoding) for r in recs], (topic, p, encoding)
            hw = len(recs)
            if hw >= 3:
                got = c.read(topic, p, offset=1, max_records=2)
                assert [r["offset"] for r in got] == [1, 2]
            assert c.read(topic, p, offset=hw) == []
            err = c.call("GET", f"/api/topics/{topic}/partitions/{p}/records", 400,
                         params={"offset": hw + 1})
            assert err["code"] == "offset_out_of_range"
            assert err["details"] == {"topic": topic, "partition": p, "log_start_offset": 0,
                                      "high_watermark": hw}
    return described


def log_files(data_dir: str, topic: str, partition: int) -> list[Path]:
    return sorted((Path(data_dir) / "topics" / topic / str(partition)).glob("*.log"))


@pytest.fixture
def session():
    with requests.Session() as s:
        yield s


def test_produce_and_read_back_in_every_encoding(server, session):
    c = Client(session, server.base_url)
    model = Model()
    populate(c, model)
    check_served(c, model)
    assert len(log_files(server.data_dir, ROLLED, 0)) >= 3, "the small segments rolled"
    # the contract's partitioner, observed end to end: one key, one partition
    p = partition_for_key(b"user-1", PARTITIONS)
    user1 = [r for r in c.read(TOPIC, p, encoding="text") if r["key"] == "user-1"]
    assert [r["value"] for r in user1] == ["again", "same key, same partition"]


def test_swagger_and_error_envelope(server, session):
    c = Client(session, server.base_url)
    doc = c.call("GET", "/swagger.json")
    assert doc["openapi"].startswith("3.")
    for path in ("/api/topics", "/api/topics/{topic}", "/api/topics/{topic}/records",
                 "/api/topics/{topic}/partitions/{partition}/records", "/api/health"):
        assert path in doc["paths"], path
    ui = session.get(server.url("/swagger/"), timeout=10)
    assert ui.status_code == 200 and ui.headers["Content-Type"].startswith("text/html")
    assert "/swagger.json" in ui.text and "swagger-ui" in ui.text
    static = session.get(server.url("/swagger/static/swagger-ui-bundle.js"), timeout=10)
    assert static.status_code == 200 and len(static.content) > 1000

    def envelope(body, code):
        assert set(body) == {"error", "code", "details"}, body
        assert body["code"] == code and isinstance(body["error"], str) and body["error"]
        assert isinstance(body["details"], dict)

    body = c.call("GET", "/api/no/such/route", 404)
    envelope(body, "not_found")
    assert body["details"] == {"path": "/api/no/such/route"}
    envelope(c.call("GET", "/nowhere", 404), "not_found")
    resp = session.put(server.url("/api/topics"), timeout=10)
    assert resp.status_code == 405 and "POST" in resp.headers["Allow"]
    envelope(resp.json(), "method_not_allowed")
    envelope(c.call("GET", "/api/topics/missing", 404), "topic_not_found")
    envelope(c.call("POST", "/api/topics", 400, data="{not json",
                    headers={"Content-Type": "application/json"}), "invalid_request")


def test_sigterm_stops_cleanly_trims_logs_and_restart_serves_the_same_data(
        server_factory, session):
    first = server_factory()
    c = Client(session, first.base_url)
    model = Model()
    populate(c, model)
    described = check_served(c, model)
    before = {(t, r["offset"]): r for t in model.topics
              for p in range(len(model.topics[t])) for r in c.read(t, p, max_records=1000)}
    # the active segments are preallocated while the server runs (what the trim removes)
    active = log_files(first.data_dir, TOPIC, 0)[-1]
    assert active.stat().st_size > model.size_bytes(TOPIC, 0)

    started = time.monotonic()
    rc = first.stop(signal.SIGTERM, timeout=15)
    took = time.monotonic() - started
    assert rc == 0, first.describe()
    # gunicorn's gthread worker lingers up to 2 s for kept-alive connections (this session's)
    assert took < 6, f"SIGTERM took {took:.1f} s\n{first.describe()}"
    assert "Traceback" not in first.output(), first.describe()

    for topic, desc in described.items():
        for d in desc["partitions"]:
            files = log_files(first.data_dir, topic, d["partition"])
            sizes = [f.stat().st_size for f in files]
            # no preallocated zero tail: the files hold exactly the records' batches
            assert sum(sizes) - FILE_HEADER * len(files) == d["size_bytes"] \
                == model.size_bytes(topic, d["partition"]), (topic, d, sizes)
    rolled = log_files(first.data_dir, ROLLED, 0)
    assert len(rolled) >= 3 and all(f.stat().st_size > 0 for f in rolled)

    session.close()  # the old connection went with the old server
    second = server_factory(first.data_dir)  # same data directory, new port
    c = Client(session, second.base_url)
    assert check_served(c, model) == described
    after = {(t, r["offset"]): r for t in model.topics
             for p in range(len(model.topics[t])) for r in c.read(t, p, max_records=1000)}
    assert after == before

    # producing goes on at the next offsets, keys keep their partitions
    hws = {p: model.hw(TOPIC, p) for p in range(PARTITIONS)}
    offsets = c.produce(model, TOPIC, "text",
                        [{"value": f"after restart {p}", "partition": p} for p in range(PARTITIONS)]
                        + [{"key": "user-1", "value": "after restart, keyed"}],
                        [(None, f"after restart {p}".encode(), None) for p in range(PARTITIONS)]
                        + [(b"user-1", b"after restart, keyed", None)])
    assert [o["offset"] for o in offsets[:PARTITIONS]] == [hws[p] for p in range(PARTITIONS)]
    keyed_p = partition_for_key(b"user-1", PARTITIONS)
    assert offsets[-1] == {"partition": keyed_p, "offset": hws[keyed_p] + 1,
                           "timestamp": offsets[keyed_p]["timestamp"]}
    rolled_hw = model.hw(ROLLED, 0)
    got = c.produce(model, ROLLED, None, [{"value": b64(b"after restart")}],
                    [(None, b"after restart", None)])
    assert got[0]["offset"] == rolled_hw
    check_served(c, model)


def test_second_server_on_a_data_dir_in_use_fails_fast(server_factory, session):
    first = server_factory()
    c = Client(session, first.base_url)
    model = Model()
    c.create_topic(model, TOPIC, PARTITIONS)
    c.produce(model, TOPIC, "text", [{"key": "k", "value": "v"}], [(b"k", b"v", None)])
    lock = Path(first.data_dir) / ".lock"
    holder = lock.read_text().strip()
    assert holder.isdigit() and int(holder) != first.pid, "the worker, not the master, holds it"

    started = time.monotonic()
    second = server_factory(first.data_dir, spawn=True)
    rc = second.wait_exit(timeout=15)
    took = time.monotonic() - started
    out = second.output()
    # gunicorn: the worker raises while loading the app -> exits with WORKER_BOOT_ERROR (3)
    # -> the master halts with "Reason: Worker failed to boot." and the same code
    assert rc == 3, second.describe()
    assert took < 8, f"took {took:.1f} s to give up\n{second.describe()}"
    assert "in use by another process" in out, second.describe()
    assert f"(pid {holder})" in out, second.describe()
    assert "Worker failed to boot." in out, second.describe()
    assert out.count("Booting worker") == 1, "no retry loop\n" + second.describe()

    # the first server is untouched: still serving, still holding the lock
    assert lock.read_text().strip() == holder
    assert c.call("GET", "/api/health") == {"status": "ok"}
    c.produce(model, TOPIC, "text", [{"key": "k", "value": "v2"}], [(b"k", b"v2", None)])
    check_served(c, model)
    assert first.poll() is None


def test_json_encoding_round_trips_big_integers(server, session):
    c = Client(session, server.base_url)
    model = Model()
    c.create_topic(model, "big", 1)
    big = 12345678901234567890123
    c.produce(model, "big", "json", [{"value": big}], [(None, compact_json(big), None)])
    assert c.read("big", 0)[0]["value"] == b64(b"12345678901234567890123")  # stored exactly
    got = session.get(server.url("/api/topics/big/partitions/0/records"),
                      params={"encoding": "json"}, timeout=10)
    value = json.loads(got.text)["records"][0]["value"]
    assert value == big and isinstance(value, int), got.text


@pytest.mark.parametrize("name,value", [
    ("CONSUMER_API_DEFAULT_ASSIGNOR", "cooperative"),
    ("CONSUMER_API_ACCESS_LOG", "maybe"),
    ("CONSUMER_API_SEGMENT_BYTES", "big"),
    ("CONSUMER_API_TRUSTED_PROXIES", "not-an-address"),
    ("CONSUMER_API_BACKEND", "cassandra"),
])
def test_a_wrong_setting_stops_the_server_before_it_listens(tmp_path, name, value):
    port = free_port()
    srv = spawn_server(tmp_path / "data", port=port, **{name: value})
    try:
        rc = srv.wait_exit(timeout=30)
        out = srv.output()
        assert rc != 0, srv.describe()
        assert "consumer-api cannot start" in out and name in out, srv.describe()
        assert "Listening at" not in out and "Booting worker" not in out, srv.describe()
        assert "Traceback" not in out, srv.describe()
    finally:
        srv.kill()
