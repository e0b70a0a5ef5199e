"""The request thread pool (consumer_api.server.pool): jobs run (in order of submission on
one thread, side by side on several), a job that raises is logged and its thread goes on,
``busy`` counts running jobs, and stop() ends the threads."""
from __future__ import annotations

import logging
import threading

import pytest

from consumer_api.server.pool import ThreadPool

WAIT_S = 5.0  # only ever reached when a test fails


@pytest.fixture
def pools():
    """``pools(size, name)``: a started pool, stopped after the test."""
    made = []

    def make(size, name):
        pool = ThreadPool(size, name)
        pool.start()
        made.append(pool)
        return pool

    yield make
    for pool in made:
        pool.stop()


def threads_named(prefix: str) -> list:
    return [t for t in threading.enumerate() if t.name.startswith(prefix + "-")]


def test_jobs_run_in_order_of_submission(pools):
    pool = pools(1, "ordered")
    ran, last = [], threading.Event()
    for i in range(50):
        pool.submit(ran.append, i)
    pool.submit(lambda event: event.set(), last)
    assert last.wait(WAIT_S)
    assert ran == list(range(50))


def test_jobs_run_side_by_side(pools):
    pool = pools(3, "side")
    barrier = threading.Barrier(3, timeout=WAIT_S)  # passed only by 3 jobs at once
    passed = [threading.Event() for _ in range(3)]
    for event in passed:
        pool.submit(lambda e: (barrier.wait(), e.set()), event)
    assert all(event.wait(WAIT_S) for event in passed)
    assert {t.name for t in threads_named("side")} == {"side-0", "side-1", "side-2"}


def test_a_failing_job_is_logged_and_the_thread_goes_on(pools, caplog):
    pool = pools(1, "failing")
    after = threading.Event()

    def broken(arg):
        raise ValueError(f"broken job {arg}")

    with caplog.at_level(logging.ERROR, logger="consumer_api.server.pool"):
        pool.submit(broken, 7)
        pool.submit(lambda event: event.set(), after)
        assert after.wait(WAIT_S)  # the same (only) thread ran the next job
    (record,) = caplog.records
    assert record.levelno == logging.ERROR
    assert record.exc_info[0] is ValueError and "broken job 7" in str(record.exc_info[1])
    assert pool.busy == 0


def test_busy_counts_running_jobs(pools):
    pool = pools(2, "busy")
    started, release = threading.Event(), threading.Event()
    assert pool.busy == 0

    def job(_):
        started.set()
        release.wait(WAIT_S)

    pool.submit(job, None)
    assert started.wait(WAIT_S)
    assert pool.busy == 1
    release.set()
    done = threading.Event()
    pool.submit(lambda _: done.set(), None)
    assert done.wait(WAIT_S)
    pool.stop()
    assert pool.busy == 0


def test_stop_runs_the_queued_jobs_then_ends_the_threads():
    pool = ThreadPool(1, "stopping")
    pool.start()
    assert len(threads_named("stopping")) == 1
    ran, release = [], threading.Event()
    pool.submit(lambda _: release.wait(WAIT_S), None)
    for i in range(5):
        pool.submit(ran.append, i)  # queued behind the blocked job
    stopper = threading.Thread(target=pool.stop, kwargs={"timeout_s": WAIT_S})
    stopper.start()
    release.set()
    stopper.join(WAIT_S)
    assert ran == [0, 1, 2, 3, 4]
    assert threads_named("stopping") == []


def test_stop_ends_every_thread():
    pool = ThreadPool(4, "idle")
    pool.start()
    assert len(threads_named("idle")) == 4
    pool.stop(timeout_s=WAIT_S)
    assert threads_named("idle") == []


def test_threads_are_daemons():
    pool = ThreadPool(2, "daemons")
    pool.start()
    try:
        assert all(t.daemon for t in threads_named("daemons"))
    finally:
        pool.stop()


def test_waiting_jobs_are_taken_one_key_at_a_time():
    """One thread, held busy while a hundred jobs of one client and one of another queue:
    the other client's job runs second, not last."""
    pool = ThreadPool(1)
    gate, ran = threading.Event(), []
    pool.submit(lambda _: gate.wait(5), None, "busy")
    for i in range(100):
        pool.submit(ran.append, ("many", i), "address 10.0.0.1")
    pool.submit(ran.append, ("one", 0), "address 10.0.0.2")
    assert pool.waiting == 102
    pool.start()
    gate.set()
    pool.stop(timeout_s=5)
    assert ran[:2] == [("many", 0), ("one", 0)]
    assert [i for who, i in ran if who == "many"] == list(range(100))
