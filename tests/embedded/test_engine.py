from consumer_api.config import Config
from consumer_api.embedded.engine import Engine
from consumer_api.records import NewRecord

DAY_MS = 24 * 3600 * 1000


def test_maintenance_enforces_retention_on_its_interval(data_dir, clock):
    config = Config(data_dir=data_dir, segment_bytes=4096, retention_check_interval_ms=60_000)
    engine = Engine(config, now_ms=clock.now_ms)
    try:
        topic = engine.topics.create("t", 1, {"retention_ms": DAY_MS})
        plog = topic.partition(0)
        for _ in range(20):
            plog.append([NewRecord(None, b"x" * 500)])
        assert plog.log_start_offset == 0 and len(plog.segments) > 1
        engine.run_maintenance()  # first pass: nothing has expired yet
        assert plog.log_start_offset == 0
        clock.advance(DAY_MS + 1)
        assert engine.run_maintenance()["segments_deleted"] >= 1
        assert plog.log_start_offset == plog.high_watermark == 20
    finally:
        engine.close()


def test_maintenance_flushes_when_the_interval_passed(data_dir, clock):
    engine = Engine(Config(data_dir=data_dir, flush_interval_ms=1000), now_ms=clock.now_ms)
    try:
        plog = engine.topics.create("t", 1).partition(0)
        plog.append([NewRecord(None, b"x")])
        assert engine.run_maintenance()["flushed"] == 0
        clock.advance(1000)
        assert engine.run_maintenance()["flushed"] == 1
        assert engine.run_maintenance()["flushed"] == 0  # nothing new to flush
    finally:
        engine.close()


def test_engine_reopens_everything_and_holds_the_directory(data_dir, clock):
    import pytest
    from consumer_api.errors import DataDirLocked
    engine = Engine(Config(data_dir=data_dir), now_ms=clock.now_ms)
    engine.topics.create("t", 2).partition(1).append([NewRecord(b"k", b"v", None, 5)])
    with pytest.raises(DataDirLocked):
        Engine(Config(data_dir=data_dir))
    engine.start()
    engine.close()
    engine = Engine(Config(data_dir=data_dir), now_ms=clock.now_ms)
    try:
        assert engine.topics.get("t").partition(1).read(0) == [(0, 5, b"k", b"v", None)]
    finally:
        engine.close()


def test_concurrent_produces_over_shared_partitions_store_each_record_once(engine):
    """Producers that each span several partitions (round-robin, keyed, explicit) run at
    once: no deadlock between their partition locks, every partition's offsets stay dense,
    each record is stored exactly once, and each request's offsets point at its records."""
    import sys
    import threading
    from concurrent.futures import ThreadPoolExecutor

    engine.create_topic("t", 5)
    start = threading.Barrier(6)

    def producer(n):
        acked = []
        start.wait()
        for i in range(150):
            values = [f"{n}-{i}-{j}".encode() for j in range(7)]
            keys = [None] * 7 if n % 3 == 0 else [v[-3:] for v in values]
            parts = [None] * 7 if n % 3 != 2 else [j % 5 for j in range(7)]
            records = [(k, v, None, None) for k, v in zip(keys, values)]
            out = engine.produce("t", records, parts)
            acked += [(o["partition"], o["offset"], v) for o, v in zip(out, values)]
        return acked

    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # preempt often: interleave the producers' steps
    try:
        with ThreadPoolExecutor(6) as pool:
            acked = [a for result in pool.map(producer, range(6)) for a in result]
    finally:
        sys.setswitchinterval(switch)
    stored = {(p, r[0]): r[3] for p in range(5)
              for r in engine.read("t", p, 0, 10_000, 1 << 30)}
    assert len(acked) == len(stored) == 6 * 150 * 7
    assert {(p, o): v for p, o, v in acked} == stored
    for p in range(5):
        offsets = sorted(o for q, o in stored if q == p)
        assert offsets == list(range(len(offsets)))
