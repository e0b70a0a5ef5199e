"""Content codings: which coding a response gets for an ``Accept-Encoding`` (q-values,
``*``, ``identity``, ``q=0``), which responses are compressed at all, and what a
compressed request body meets -- the body limit applied to its decompressed size (a
decompression bomb is ``413`` without the memory to hold it), ``415`` naming the codings
taken, ``400`` for data that does not decompress, ``503`` when the server-wide budget of
request bodies has no room. The store plays no part here (round trips on both stores:
``test_compression.py``)."""
from __future__ import annotations

import gzip
import json
import tracemalloc
import zlib

import pytest

from consumer_api.api import content_coding
from consumer_api.api.content_coding import response_coding
from consumer_api.api.state import state_of
from consumer_api.app import create_app
from consumer_api.budget import ByteBudget
from consumer_api.config import Config
from consumer_api.errors import BodyTooLarge, InvalidRequest
from consumer_api.zstd_codec import zstd
from tests.api.conftest import Api, assert_error

pytestmark = pytest.mark.usefixtures("openapi_built_once")

LIMIT = 64 * 1024
PRODUCE = "/api/topics/t/records"


@pytest.fixture
def app(data_dir, engine, manager):
    return create_app(Config(data_dir=data_dir, max_body_bytes=LIMIT,
                             request_buffer_bytes=1 << 20), backend=engine, manager=manager)


@pytest.fixture
def api(app):
    api = Api(app.test_client())
    assert api.create_topic("t", 1).status_code == 201
    return api


def post(api, data: bytes, coding: str, path=PRODUCE):
    return api.client.post(path, data=data, content_type="application/json",
                           headers={"Content-Encoding": coding})


def produce_body(size: int) -> bytes:
    """A valid produce body of exactly ``size`` bytes (JSON padded with spaces)."""
    body = json.dumps({"records": [{"value": "aGk="}]}).encode()
    return body + b" " * (size - len(body))


def zeros(coding: str, size: int) -> bytes:
    """``size`` zero bytes compressed, built a MiB at a time."""
    compressor = (zlib.compressobj(9, zlib.DEFLATED, 31) if coding == "gzip"
                  else zstd.ZstdCompressor(19))
    block = bytes(1 << 20)
    return b"".join([compressor.compress(block) for _ in range(size >> 20)]
                    + [compressor.flush()])


# -- which coding a response gets -------------------------------------------------------------

@pytest.mark.parametrize("header, coding", [
    (None, None),                                 # not asked: never compressed
    ("", None),
    ("gzip", "gzip"),
    ("zstd", "zstd"),
    ("gzip, zstd", "zstd"),                       # equal q: the server's preference
    ("GZIP;Q=1, Zstd;q=0.5", "gzip"),              # names and parameters in any case
    ("zstd;q=0.5, gzip;q=0.8", "gzip"),
    ("gzip;q=0.3", "gzip"),                       # identity not named: it does not outrank
    ("gzip;q=0.3, identity", None),               # named higher: it does
    ("gzip, identity;q=0.5", "gzip"),
    ("gzip;q=0", None),                           # q=0: not acceptable
    ("zstd;q=0, gzip", "gzip"),
    ("*", "zstd"),
    ("*;q=0.5, zstd;q=0", "gzip"),                # an explicit q=0 beats the wildcard
    ("*;q=0", None),
    ("*;q=0, identity", None),
    ("identity", None),
    ("br, deflate, compress", None),              # nothing this server speaks
    ("gzip;q=abc, zstd;q=2", None),               # invalid q-values name nothing
    ("gzip;q=0.001", "gzip"),
])
def test_accept_encoding_picks_the_coding(header, coding):
    assert response_coding(header) == coding


def read(api, accept, **query):
    query.setdefault("max_records", 100)
    return api.client.get("/api/topics/t/partitions/0/records", query_string=query,
                          headers={"Accept-Encoding": accept})


def test_small_record_responses_stay_uncompressed(api):
    assert api.produce("t", [{"value": "aGk="}]).status_code == 200
    resp = read(api, "gzip, zstd")
    assert "Content-Encoding" not in resp.headers
    assert resp.headers["Vary"] == "Accept-Encoding"
    assert resp.get_json()["records"][0]["value"] == "aGk="


def test_an_empty_consume_says_it_varies_and_is_not_compressed(api):
    sub = api.client.post("/api/consumers/subscribe", json={"group_id": "g", "topics": ["t"]})
    consumer = sub.get_json()["consumer_id"]
    resp = api.client.post(f"/api/consumers/{consumer}/consume", json={"timeout_ms": 0},
                           headers={"Accept-Encoding": "gzip"})
    assert resp.status_code == 200 and resp.get_json()["records"] == []
    assert "Content-Encoding" not in resp.headers
    assert resp.headers["Vary"] == "Accept-Encoding"


def test_only_record_responses_are_compressed(api):
    """Topic and group listings can hold what a key may see next to names an attacker
    chose: they are never compressed (see README, "Compression")."""
    for i in range(60):
        assert api.create_topic(f"topic-with-a-long-name-{i:03d}").status_code == 201
    resp = api.client.get("/api/topics", headers={"Accept-Encoding": "gzip, zstd"})
    assert len(resp.get_data()) > 1024
    assert "Content-Encoding" not in resp.headers
    assert len(resp.get_json()["topics"]) == 61


# -- compressed request bodies ---------------------------------------------------------------

@pytest.mark.parametrize("coding", ["gzip", "x-gzip", "zstd", "identity", "ZSTD"])
def test_every_json_body_may_come_compressed(api, coding):
    compress = {"gzip": gzip.compress, "x-gzip": gzip.compress, "zstd": zstd.compress,
                "identity": bytes}[coding.lower()]
    sub = json.dumps({"group_id": "g", "topics": ["t"]}).encode()
    resp = post(api, compress(sub), coding, "/api/consumers/subscribe")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert post(api, compress(produce_body(100)), coding).status_code == 200
    assert api.watermarks("t") == [1]


@pytest.mark.parametrize("coding", ["gzip", "zstd"])
def test_several_members_or_frames_make_one_body(api, coding):
    compress = gzip.compress if coding == "gzip" else zstd.compress
    body = produce_body(200)
    # cut inside the JSON: neither piece is a body on its own
    resp = post(api, compress(body[:10]) + compress(body[10:]), coding)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert api.watermarks("t") == [1]


@pytest.mark.parametrize("coding", ["gzip", "zstd"])
def test_the_body_limit_applies_to_the_decompressed_size(api, coding):
    compress = gzip.compress if coding == "gzip" else zstd.compress
    assert post(api, compress(produce_body(LIMIT)), coding).status_code == 200
    details = assert_error(post(api, compress(produce_body(LIMIT + 1)), coding), 413,
                           "payload_too_large")
    assert details == {"max_body_bytes": LIMIT}
    assert api.watermarks("t") == [1]


@pytest.mark.parametrize("coding", ["gzip", "zstd"])
def test_a_decompression_bomb_is_413_without_the_memory_to_hold_it(app, api, coding):
    bomb = zeros(coding, 48 << 20)  # 48 MiB (768 times the limit) in under 64 KiB
    assert len(bomb) < LIMIT
    tracemalloc.start()
    try:
        resp = post(api, bomb, coding)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert assert_error(resp, 413, "payload_too_large") == {"max_body_bytes": LIMIT}
    assert peak < len(bomb) * 4 + LIMIT * 4 + (2 << 20), peak
    assert state_of(app).request_budget.used == 0
    assert api.watermarks("t") == [0]


@pytest.mark.parametrize("header", ["br", "deflate", "gzip, zstd", "gzip, identity",
                                    "compress", "zstd;level=3"])
def test_an_unsupported_content_encoding_is_415_naming_the_codings_taken(api, header):
    resp = post(api, gzip.compress(produce_body(100)), header)
    details = assert_error(resp, 415, "unsupported_media_type")
    assert details == {"content_encoding": header,
                       "accepted_encodings": ["gzip", "zstd", "identity"]}
    assert resp.headers["Accept-Encoding"] == "zstd, gzip"
    assert api.watermarks("t") == [0]


@pytest.mark.parametrize("coding, data, problem", [
    ("gzip", b"not gzip at all", "incorrect header check"),
    ("gzip", gzip.compress(produce_body(300))[:-12], "ends inside a gzip member"),
    ("gzip", gzip.compress(produce_body(300)) + b"junk", "incorrect header check"),
    ("zstd", b"not zstd at all", "Unknown frame descriptor"),
    ("zstd", zstd.compress(produce_body(300))[:-3], "ends inside a zstd frame"),
    ("zstd", produce_body(300), "Unknown frame descriptor"),  # sent plain, said zstd
])
def test_data_that_does_not_decompress_is_400_naming_the_coding(api, coding, data, problem):
    resp = post(api, data, coding)
    details = assert_error(resp, 400, "invalid_request")
    (message,) = details["body"]
    assert message.startswith(f"Not valid {coding} data") and problem in message, message
    assert api.watermarks("t") == [0]


def test_decompressed_bodies_are_charged_to_the_request_budget(app, api):
    budget = state_of(app).request_budget
    budget.take(budget.limit - 4096)  # other requests hold nearly all of it
    resp = post(api, gzip.compress(produce_body(10_000)), "gzip")
    assert assert_error(resp, 503, "unavailable") == {"reason": "request_budget"}
    assert resp.headers["Retry-After"] == "1"
    assert state_of(app).refusals.counts()["request_budget"] == 1
    budget.give(budget.limit - 4096)
    assert post(api, gzip.compress(produce_body(10_000)), "gzip").status_code == 200
    assert budget.used == 0 and budget.peak >= 10_000


def test_decode_gives_back_what_it_took_when_it_fails():
    budget = ByteBudget(1 << 30)
    with pytest.raises(BodyTooLarge):
        content_coding.decode(zeros("zstd", 4 << 20), "zstd", 1 << 20, budget)
    with pytest.raises(InvalidRequest):
        content_coding.decode(gzip.compress(bytes(1 << 20))[:-20], "gzip", 4 << 20, budget)
    assert budget.peak > 0 and budget.used == 0  # taken while decoding, all given back
