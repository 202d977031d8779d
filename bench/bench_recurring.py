"""The forecaster's recurring peak: the average of past days at each minute, the envelope
of their recent highest, and the choice between them by score (what the server runs),
on Twitter's bursts and on bursts at random minutes.

    .venv/bin/python bench/bench_recurring.py [--cold-start 600] [--holdout] [--choice-only]
        [--workers N]

1. Choice (seconds): the share of minutes, after the first day, at which the scored
   choice takes the envelope, at each forecastQuantile (a look-ahead of one cold start).
2. Simulator (minutes): Prewarm with replicaThroughput 0.75x to 2x one replica's rate at
   75 %, with the average, the envelope and the scored choice: GPU-hours / p95 wait.

Traces: `make evaluate`'s Twitter case (8 days, the first as history); a synthetic 8 days
(seeded) with a daily swell and ten 7-minute bursts a day at random minutes, where a
burst's minute tells nothing about the next day's; with --holdout also days 8 to 22 of
the 22-day per-minute Twitter file (day 8 as history), which no constant was chosen on.
Each is fitted to 20 replicas at its busiest minute, as `make evaluate` does.
"""

from __future__ import annotations

import argparse
import gzip
import os
import platform
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np

from scaler.argtypes import whole
from scaler.forecast.model import DAY, STEP, Forecaster, RecurringEstimate, Tuning
from scaler.sim import evaluate
from scaler.sim.main import run_policies
from scaler.sim.run import prewarm_policy
from scaler.sim.traces import Trace

QUANTILES = (0.5, 0.75, 0.9, 0.97)
ESTIMATES: tuple[RecurringEstimate, ...] = ("average", "envelope", "scored")
THROUGHPUTS = (0.75, 1.0, 1.25, 1.5, 2.0)
SYNTHETIC = "synthetic-random-bursts"
HOLDOUT = evaluate.Case(
    "Twitter, days 8 to 22 of the per-minute file (day 8 as history)",
    "twitter_2021_08_per_minute.csv",
    7 * 86400,
    15 * 86400 - 3600,  # the file ends 29 minutes short of 22 days
    "twitter",
    warmup_s=86400,
)


def synthetic_file(folder: str) -> str:
    """8 days per second: about 5/s swelling by 30 % once a day, and ten 7-minute bursts
    a day at 23/s, at minutes drawn afresh each day (numpy seed 7); counted at ten times
    that, as the Twitter file is about ten times the fleet's rate (both are fitted to it)."""
    rng = np.random.default_rng(7)
    seconds = np.arange(8 * 86400)
    rate = 5.0 + 1.5 * np.sin(2 * np.pi * (seconds % 86400) / 86400)
    for day in range(8):
        for start in rng.uniform(0, 86400 - 600, 10):
            first = int(day * 86400 + start)
            rate[first : first + 420] = 23.0
    path = Path(folder) / f"{SYNTHETIC}.csv.gz"
    with gzip.open(path, "wt") as f:
        f.write("timestamp_s,count\n")
        f.writelines(f"{i},{n}\n" for i, n in enumerate(rng.poisson(rate * 10)))
    return str(path)


def cases(synthetic: str, holdout: bool) -> dict[str, evaluate.Case]:
    found = {
        "twitter-8d": evaluate.CASES[0],
        SYNTHETIC: evaluate.Case("synthetic: bursts at random minutes", synthetic, 0, None, "other", 86400),
    }
    if holdout:
        found["twitter-days-8-22"] = HOLDOUT
    return found


def choice_shares(trace: Trace, cold_start: float) -> dict[float, float]:
    """Fed minute by minute (collection gaps not fed), the share of minutes after the first
    day at which the outlook one cold start ahead takes the envelope, per quantile."""
    minutes = len(trace.counts) // 60
    rates = trace.counts[: minutes * 60].reshape(minutes, 60).mean(axis=1)
    masked = np.zeros(minutes, dtype=bool)
    for start, end in trace.gaps:
        masked[int(start // 60) : int(end // 60) + 1] = True
    model = Forecaster()
    picked = dict.fromkeys(QUANTILES, 0)
    asked = 0
    for minute in np.flatnonzero(~masked):
        wall = float(minute) * STEP
        model.observe(wall + STEP / 2, float(rates[minute]))
        if wall >= DAY:
            asked += 1
            for quantile in QUANTILES:
                picked[quantile] += model.outlook(wall + STEP, cold_start, quantile).recurring_envelope
    return {quantile: picked[quantile] / max(1, asked) for quantile in QUANTILES}


def simulate(
    case: evaluate.Case,
    estimate: RecurringEstimate,
    cold_start: int,
    throughputs: tuple[float, ...] = THROUGHPUTS,
) -> list[tuple[float, float, float]]:
    """(replicaThroughput factor, GPU-hours, p95 wait) per point, the estimate forced."""
    scenario, _ = evaluate.case_scenario(case, evaluate.case_trace(case, False), cold_start, False)
    c, top, rate = scenario.world.concurrency, scenario.max_replicas, scenario.rate_per_replica
    tuning = Tuning(recurring_estimate=estimate)
    specs = [
        replace(
            prewarm_policy(
                c, top, cold_start_s=cold_start, replica_throughput=rate * factor, forecast_tuning=tuning
            ),
            name=f"{factor:g}",
        )
        for factor in throughputs
    ]
    rows, _ = run_policies(scenario, specs, progress=False)
    return [(float(row["policy"]), row["gpu_hours"], row["wait_p95_s"]) for row in rows]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cold-start", type=whole(10, 3600), default=600, help="seconds (default 600)")
    parser.add_argument("--holdout", action="store_true", help="also days 8 to 22 of the per-minute file")
    parser.add_argument("--choice-only", action="store_true", help="part 1 only (seconds)")
    parser.add_argument("--workers", type=whole(1), default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as folder:
        chosen = cases(synthetic_file(folder), args.holdout)
        print(f"1. Choice: share of minutes the envelope is taken, look-ahead {args.cold_start} s")
        print("| trace | " + " | ".join(f"q {q:g}" for q in QUANTILES) + " |")
        print("|---|" + "---:|" * len(QUANTILES))
        for name, case in chosen.items():
            shares = choice_shares(evaluate.case_trace(case, False), args.cold_start)
            print(f"| {name} | " + " | ".join(f"{shares[q]:.0%}" for q in QUANTILES) + " |")
        if args.choice_only:
            return 0
        jobs = [(name, estimate) for name in chosen for estimate in ESTIMATES]
        with ProcessPoolExecutor(max_workers=min(args.workers, len(jobs))) as pool:
            points = list(
                pool.map(
                    simulate,
                    [chosen[name] for name, _ in jobs],
                    [estimate for _, estimate in jobs],
                    [args.cold_start] * len(jobs),
                )
            )
    by_job = dict(zip(jobs, points, strict=True))
    print(f"\n2. Simulator: Prewarm at a {args.cold_start} s cold start, GPU-hours / p95 wait (s)")
    print("| trace | estimate | " + " | ".join(f"tp {f:g}x" for f in THROUGHPUTS) + " |")
    print("|---|---|" + "---:|" * len(THROUGHPUTS))
    for name, estimate in jobs:
        cells = " | ".join(f"{gpu:.1f} / {p95:.0f}" for _, gpu, p95 in by_job[(name, estimate)])
        print(f"| {name} | {estimate} | {cells} |")
    print(
        f"\n{len(jobs)} simulations of {len(THROUGHPUTS)} points in {time.monotonic() - started:.0f} s "
        f"({platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
