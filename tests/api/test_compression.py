"""Compression over HTTP, on both stores: produce bodies sent gzip or zstd
(``Content-Encoding``) are stored as sent; reads and consumes are compressed in the coding
the client asks for (``Accept-Encoding``) and decompress to the very records an
uncompressed response holds; a compressed consume that is not delivered still gives its
records back. Negotiation details and refusals: ``test_content_coding.py``."""
from __future__ import annotations

import gzip
import json

import orjson
import pytest
from werkzeug.test import EnvironBuilder

from consumer_api.zstd_codec import zstd
from tests.api.conftest import b64

pytestmark = pytest.mark.usefixtures("openapi_built_once")
ON_STORES = ("embedded", "kafka")

#: ~300 B JSON objects, like the benchmark's
VALUES = [{"order_id": i, "customer": f"customer-{i % 17}", "status": "shipped",
           "items": [{"sku": f"SKU-{i % 97:05d}", "qty": 1 + i % 3, "price": 19.99}],
           "address": {"city": "Lyon", "zip": "69001", "country": "FR"},
           "note": "leave at the door"} for i in range(200)]
COMPRESS = {"gzip": gzip.compress, "zstd": zstd.compress}
DECOMPRESS = {"gzip": gzip.decompress, "zstd": zstd.decompress}


@pytest.fixture
def topic(api):
    assert api.create_topic("z", 1).status_code == 201
    return "z"


def produce_compressed(api, topic, coding, values=VALUES):
    body = json.dumps({"records": [{"value": v} for v in values], "encoding": "json"})
    return api.client.post(f"/api/topics/{topic}/records", data=COMPRESS[coding](body.encode()),
                           content_type="application/json",
                           headers={"Content-Encoding": coding})


def body_of(resp) -> dict:
    """The JSON of a response, decompressed as its Content-Encoding says."""
    assert resp.status_code == 200, resp.get_data(as_text=True)
    data = resp.get_data()
    assert int(resp.headers["Content-Length"]) == len(data)
    coding = resp.headers.get("Content-Encoding")
    return orjson.loads(DECOMPRESS[coding](data) if coding else data)


def read(api, topic, accept=None):
    headers = {"Accept-Encoding": accept} if accept is not None else {}
    return api.client.get(f"/api/topics/{topic}/partitions/0/records",
                          query_string={"max_records": 1000, "encoding": "json"},
                          headers=headers)


def subscribe(api, topic):
    resp = api.client.post("/api/consumers/subscribe", json={
        "group_id": "g-" + topic, "topics": [topic], "auto_offset_reset": "earliest",
        "encoding": "json"})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return resp.get_json()["consumer_id"]


def consume_all(api, consumer, count, accept):
    got = []
    while len(got) < count:
        resp = api.client.post(f"/api/consumers/{consumer}/consume",
                               json={"timeout_ms": 5000, "max_records": 1000},
                               headers={"Accept-Encoding": accept})
        records = body_of(resp)["records"]
        assert records, "a consume came back empty with records to read"
        assert resp.headers.get("Content-Encoding") == accept
        got.extend(records)
    return got


@pytest.mark.parametrize("coding", ["gzip", "zstd"])
def test_a_compressed_produce_stores_the_records_as_sent(api, topic, coding):
    resp = produce_compressed(api, topic, coding)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert len(resp.get_json()["offsets"]) == len(VALUES)
    assert [r["value"] for r in body_of(read(api, topic))["records"]] == VALUES


@pytest.mark.parametrize("coding", ["gzip", "zstd"])
def test_a_read_is_compressed_as_asked_and_holds_the_same_records(api, topic, coding):
    assert produce_compressed(api, topic, coding).status_code == 200
    plain = read(api, topic)
    assert "Content-Encoding" not in plain.headers
    assert plain.headers["Vary"] == "Accept-Encoding"
    packed = read(api, topic, accept=coding)
    assert packed.headers["Content-Encoding"] == coding
    assert packed.headers["Vary"] == "Accept-Encoding"
    assert len(packed.get_data()) * 4 < len(plain.get_data())
    assert body_of(packed) == body_of(plain)


@pytest.mark.parametrize("coding", ["gzip", "zstd"])
def test_a_consume_is_compressed_as_asked(api, topic, coding):
    assert produce_compressed(api, topic, coding).status_code == 200
    consumer = subscribe(api, topic)
    got = consume_all(api, consumer, len(VALUES), coding)
    assert [(r["offset"], r["value"]) for r in got] == list(enumerate(VALUES))


def test_a_compressed_consume_not_delivered_gives_its_records_back(app, api, topic):
    assert produce_compressed(api, topic, "zstd").status_code == 200
    consumer = subscribe(api, topic)
    environ = EnvironBuilder(path=f"/api/consumers/{consumer}/consume", method="POST",
                             json={"timeout_ms": 5000, "max_records": 1000},
                             headers={"Accept-Encoding": "zstd"}).get_environ()
    started = []
    body = app(environ, lambda status, headers, exc_info=None: started.append(dict(headers)))
    assert started[0]["Content-Encoding"] == "zstd"
    first = orjson.loads(zstd.decompress(b"".join(body.chunks)))["records"]
    assert first
    body.settle(False)  # the server could not send it
    again = consume_all(api, consumer, len(VALUES), "gzip")
    assert [r["offset"] for r in again] == list(range(len(VALUES)))
    assert [r["value"] for r in again[:len(first)]] == [r["value"] for r in first]


def test_values_in_base64_survive_compression(api, topic):
    data = bytes(range(256)) * 8
    body = json.dumps({"records": [{"value": b64(data)}] * 10}).encode()
    resp = api.client.post(f"/api/topics/{topic}/records", data=gzip.compress(body),
                           content_type="application/json",
                           headers={"Content-Encoding": "gzip"})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    records = body_of(api.client.get(f"/api/topics/{topic}/partitions/0/records",
                                     headers={"Accept-Encoding": "gzip"}))["records"]
    assert [r["value"] for r in records] == [b64(data)] * 10
