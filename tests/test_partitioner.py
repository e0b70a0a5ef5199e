import pytest

from consumer_api.partitioner import Partitioner, murmur2, partition_for_key

# Apache Kafka's UtilsTest.testMurmur2 vectors, plus librdkafka's length-tail cases.
KAFKA_VECTORS = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
    b"": 275646681,
    b"string-f-24-chars-length": 124730809,
    b"string-fo-25-chars-length": 1269511650,
    b"string-foo-26-chars-length": 119165628,
    b"string-last-27-chars-length": 1089971754,
}


@pytest.mark.parametrize("data,expected", KAFKA_VECTORS.items())
def test_murmur2_matches_kafka(data, expected):
    assert murmur2(data) == expected


def test_keyed_partition_is_kafkas_positive_hash_modulo():
    assert partition_for_key(b"foobar", 50) == 16
    for data, h in KAFKA_VECTORS.items():
        assert partition_for_key(data, 7) == (h & 0x7FFFFFFF) % 7


def test_keyless_records_round_robin_and_keyed_are_stable():
    p = Partitioner()
    assert [p.partition(None, 3) for _ in range(6)] == [0, 1, 2, 0, 1, 2]
    assert {p.partition(b"user-42", 12) for _ in range(5)} == {partition_for_key(b"user-42", 12)}
