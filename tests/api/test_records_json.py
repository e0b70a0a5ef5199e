"""records_wire.records_json (the hand-formatted base64 fast path) must serialise exactly what
render_records + orjson would, for every kind of record."""
import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from consumer_api.api import records_wire
from consumer_api.api.schemas.common import ENCODINGS
from consumer_api.records import FrozenHeaders

blobs = st.one_of(st.none(), st.binary(max_size=40))
headers = st.one_of(st.none(), st.dictionaries(st.text(max_size=6), st.text(max_size=6),
                                               min_size=1, max_size=3).map(FrozenHeaders))
records = st.lists(st.tuples(st.integers(0, 2**63 - 1), st.integers(0, 2**63 - 1), blobs, blobs,
                             headers), max_size=6)
chunks = st.lists(st.tuples(st.from_regex(r"[A-Za-z0-9._-]{1,20}", fullmatch=True),
                            st.integers(0, 1023), records), max_size=3)


@settings(max_examples=300, deadline=None)
@given(chunks, st.sampled_from(ENCODINGS))
def test_fast_json_equals_the_dict_rendering(chunks, encoding):
    expected: list = []
    for topic, partition, recs in chunks:
        records_wire.render_records(topic, partition, recs, encoding, expected)
    assert orjson.loads(records_wire.records_json(chunks, encoding)) == orjson.loads(orjson.dumps(expected))


def test_empty_is_an_empty_array():
    assert records_wire.records_json([], "base64") == b"[]"
    assert records_wire.records_json([("t", 0, [])], "base64") == b"[]"


# -- the base64 path on windows as reads return them ---------------------------------------

from consumer_api.api import records_wire_base64  # noqa: E402


@st.composite
def stored_windows(draw):
    """A window as a read returns it: consecutive offsets, runs of equal timestamps, keys
    all null or all present -- and now and then a record with headers or a null."""
    n = draw(st.integers(1, 40))
    start = draw(st.integers(0, 2**62))
    stamps = []
    while len(stamps) < n:
        stamps += [draw(st.integers(0, 2**62))] * draw(st.integers(1, 12))
    keyed = draw(st.booleans())
    window = [(start + i, stamps[i], draw(st.binary(max_size=30)) if keyed else None,
               draw(st.binary(max_size=60)), None) for i in range(n)]
    if draw(st.booleans()):  # an odd record: a null key or value, or headers
        i = draw(st.integers(0, n - 1))
        o, ts, k, v, _h = window[i]
        window[i] = draw(st.sampled_from([(o, ts, None, v, None), (o, ts, k, None, None),
                                          (o, ts, k, v, FrozenHeaders({"h": "\u00fc"}))]))
    return window


@settings(max_examples=300, deadline=None)
@given(st.from_regex(r"[A-Za-z0-9._-]{1,20}", fullmatch=True), st.integers(0, 1023),
       stored_windows())
def test_the_base64_path_gives_the_references_json(topic, partition, window):
    expected: list = []
    records_wire.render_records(topic, partition, window, "base64", expected)
    got = records_wire_base64.window_json(topic, partition, window)
    assert orjson.loads(b"[" + got + b"]") == expected
