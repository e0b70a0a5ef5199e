"""The server-wide byte budget (consumer_api.budget.ByteBudget): take (all or nothing),
take_up_to (as much as fits), force (past the limit), give, room and peak -- and takes from
many threads at once never pass the limit."""
from __future__ import annotations

import sys
import threading

import pytest

from consumer_api.budget import ByteBudget


def test_limit_must_be_positive():
    with pytest.raises(ValueError):
        ByteBudget(0)
    with pytest.raises(ValueError):
        ByteBudget(-5)
    assert ByteBudget(1).room() == 1


def test_take_is_all_or_nothing():
    budget = ByteBudget(100)
    assert budget.take(60) is True
    assert budget.take(41) is False
    assert budget.used == 60 and budget.room() == 40
    assert budget.take(40) is True
    assert budget.used == 100 and budget.room() == 0
    assert budget.take(1) is False
    assert budget.take(0) is True  # nothing always fits
    assert budget.used == 100


def test_take_more_than_the_limit_never_fits():
    budget = ByteBudget(100)
    assert budget.take(101) is False
    assert budget.used == 0 and budget.peak == 0


def test_give_makes_room_again():
    budget = ByteBudget(100)
    assert budget.take(100)
    budget.give(30)
    assert budget.used == 70 and budget.room() == 30
    assert budget.take(30)
    budget.give(100)
    assert budget.used == 0 and budget.room() == 100


def test_take_up_to():
    budget = ByteBudget(100)
    assert budget.take_up_to(30) == 30
    assert budget.take_up_to(100) == 70
    assert budget.used == 100
    assert budget.take_up_to(10) == 0
    budget.give(5)
    assert budget.take_up_to(10) == 5
    assert budget.take_up_to(0) == 0
    assert budget.used == 100


def test_force_passes_the_limit():
    budget = ByteBudget(100)
    assert budget.take(90)
    budget.force(50)
    assert budget.used == 140 and budget.peak == 140
    assert budget.room() == 0  # never negative
    assert budget.take(1) is False
    assert budget.take_up_to(10) == 0  # nothing taken, not a negative grant
    assert budget.used == 140
    budget.give(50)
    assert budget.used == 90 and budget.room() == 10


def test_peak_is_the_most_ever_used():
    budget = ByteBudget(100)
    assert budget.peak == 0
    budget.take(40)
    budget.take(30)
    budget.give(60)
    budget.take(20)
    assert budget.used == 30 and budget.peak == 70
    budget.take_up_to(500)
    assert budget.peak == 100


def run_threads(n: int, target) -> None:
    """``target`` on ``n`` threads at once, switching threads as often as Python can."""
    start = threading.Barrier(n)
    threads = [threading.Thread(target=lambda: (start.wait(), target())) for _ in range(n)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)


def test_concurrent_takes_never_pass_the_limit():
    budget = ByteBudget(1000)
    granted = []

    def take_all_it_can():
        got = 0
        for _ in range(2000):
            got += 3 if budget.take(3) else 0
            got += budget.take_up_to(2)
        granted.append(got)

    run_threads(8, take_all_it_can)
    assert sum(granted) == budget.used == budget.peak == 1000  # every byte once, no more


def test_concurrent_take_and_give_keep_the_count():
    budget = ByteBudget(64)

    def churn():
        for i in range(5000):
            n = 1 + i % 7
            if budget.take(n):
                budget.give(n)
            got = budget.take_up_to(n)
            budget.give(got)

    run_threads(8, churn)
    assert budget.used == 0
    assert 0 < budget.peak <= 64
