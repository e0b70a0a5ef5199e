#!/usr/bin/env python
"""Partitions moved per rebalance, by assignor: a group on one topic of 12 partitions
grows from 1 member to 8 (one join at a time) and shrinks back to 1 (the members leave
in join order). A partition *moves* when its owner before the rebalance still reads and
another member gets it; partitions of a member that left are not counted (they must move).
Member ids are random (as consumer ids are), seeded, and the run is repeated for 20 seeds.

Run from the project root::

    .venv/bin/python bench/assignor_moves.py

Prints a table: per assignor, the moves of the joins, of the leaves, and the total
(averaged over the seeds), and the largest gap between two members' counts seen.
"""
from __future__ import annotations

import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from consumer_api.embedded.groups.assignors import ASSIGNORS  # noqa: E402

PARTITIONS, MEMBERS, SEEDS = 12, 8, 20


def owners_of(plan: dict) -> dict:
    return {(t, p): m for m, a in plan.items() for t, ps in a.items() for p in ps}


def run(name: str, seed: int) -> tuple[int, int, int]:
    rng = random.Random(seed)
    ids = [f"{rng.getrandbits(64):016x}" for _ in range(MEMBERS)]
    members: dict = {}
    owners: dict = {}
    moves = {"join": 0, "leave": 0}
    gap = 0
    steps = [("join", m) for m in ids] + [("leave", m) for m in ids[:-1]]
    for action, member in steps:
        if action == "join":
            members[member] = ["t"]
        else:
            del members[member]
        plan = ASSIGNORS[name](members, lambda _t: PARTITIONS, owners)
        new = owners_of(plan)
        moves[action] += sum(1 for tp, m in new.items()
                             if owners.get(tp) in members and owners.get(tp) != m)
        loads = [len(a.get("t", [])) for a in plan.values()]
        gap = max(gap, max(loads) - min(loads))
        owners = new
    return moves["join"], moves["leave"], gap


def main() -> int:
    print(f"{PARTITIONS} partitions, 1 -> {MEMBERS} -> 1 members, mean of {SEEDS} seeds")
    print(f"{'assignor':<12}{'joins':>8}{'leaves':>8}{'total':>8}{'max gap':>9}")
    for name in ASSIGNORS:
        runs = [run(name, seed) for seed in range(SEEDS)]
        joins = sum(r[0] for r in runs) / SEEDS
        leaves = sum(r[1] for r in runs) / SEEDS
        print(f"{name:<12}{joins:>8.1f}{leaves:>8.1f}{joins + leaves:>8.1f}"
              f"{max(r[2] for r in runs):>9}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
