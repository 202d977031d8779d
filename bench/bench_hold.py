#!/usr/bin/env python3
"""Benchmark: what the capacity term's hold costs per evaluation.

Times one engine evaluation's share of the hold (policy.RateHistory: feed one reading,
then the burst level of the window) on a history filled with an hour of readings every
10 s, at hold windows of 120, 600 and 3600 s (holdSeconds set), and by default at a 120 s
cold start (its hold window and the bursts that came back within RECURRING_HOLD_S, as the
engine reads both), and prints microseconds per evaluation and the history's size in
bytes.

    .venv/bin/python bench/bench_hold.py [--evaluations 20000]
"""

from __future__ import annotations

import argparse
import platform
import random
import sys
import time

from scaler.policy import HOLD_BUCKET_S, HOLD_BUCKETS, RECURRING_HOLD_S, RECURRING_RISES, RateHistory

WINDOWS = (120.0, 600.0, 3600.0)
DEFAULT_COLD_START_S = 120.0


def per_evaluation_us(
    window_s: float, evaluations: int, recurring_s: float = 0.0, per_reading: int = 1
) -> float:
    """Microseconds per evaluation, with a new reading every `per_reading` evaluations
    (more than 1: objects sharing the queue, or the stream re-evaluating a cached
    reading, which find the levels already found)."""
    rng = random.Random(7)
    history = RateHistory()
    at = 0.0
    for _ in range(HOLD_BUCKETS):  # an hour of readings, one per bucket
        history.feed(at, rng.uniform(0.0, 10.0))
        at += HOLD_BUCKET_S
    started = time.perf_counter()
    for i in range(evaluations):
        now = at + (i // per_reading) * 2.0  # readings every 2 s (the cache's TTL)
        if i % per_reading == 0:
            rate = rng.uniform(0.0, 10.0)
        history.feed(now, rate)
        history.held(now, window_s)
        if recurring_s:
            history.held(now, recurring_s, rises=RECURRING_RISES)
    return (time.perf_counter() - started) / evaluations * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--evaluations", type=int, default=20000)
    args = parser.parse_args(argv)
    if args.evaluations < 1:
        parser.error("--evaluations: a whole number >= 1")
    size = sys.getsizeof(RateHistory()) + sys.getsizeof(RateHistory()._peaks)
    print("| hold window | µs per evaluation |")
    print("|---:|---:|")
    for window in WINDOWS:
        print(f"| {window:g} s | {per_evaluation_us(window, args.evaluations):.1f} |")
    default = per_evaluation_us(DEFAULT_COLD_START_S, args.evaluations, RECURRING_HOLD_S)
    print(
        f"| unset, cold start {DEFAULT_COLD_START_S:g} s ({DEFAULT_COLD_START_S:g} s and "
        f"{RECURRING_HOLD_S:g} s recurring) | {default:.1f} |"
    )
    shared = per_evaluation_us(DEFAULT_COLD_START_S, args.evaluations, RECURRING_HOLD_S, per_reading=10)
    print(f"| the same, 10 evaluations per reading (objects sharing the queue) | {shared:.1f} |")
    print(
        f"\nhistory: {size} bytes per rate source; {args.evaluations} evaluations per window "
        f"({platform.machine()}, Python {platform.python_version()})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
