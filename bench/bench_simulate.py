"""Simulator speed: 7 days of the Twitter trace at 1 s resolution, five policies.

    .venv/bin/python bench/bench_simulate.py [--days 7]

Prints the time to load the trace and to simulate each policy (Prewarm through
the production Engine, stock KEDA min 0 and min 1, the GPU HPA, static). The
target is under 2 minutes in all on the project's 2-core machine.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

from scaler.sim.main import build_scenario
from scaler.sim.run import results, simulate, standard_policies
from scaler.sim.traces import load_trace, sliced

TRACE = Path(__file__).resolve().parent / "traces" / "twitter_2021_08_first8d_per_second.csv.gz"
POLICIES = ("prewarm", "keda-min0", "keda-min1", "hpa-gpu75", "static-peak")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--days", type=float, default=7.0)
    args = parser.parse_args()
    started = time.perf_counter()
    trace = sliced(load_trace(TRACE), 0, int(args.days * 86400))
    loaded = time.perf_counter()
    scenario, _ = build_scenario(
        trace, concurrency=4, service=None, cold_start="300", slo=60, max_replicas=100, peak_replicas=20
    )
    print(f"trace: {trace.name}, {trace.duration_s} s, load {loaded - started:.1f} s")
    for spec in standard_policies(scenario):
        if spec.name not in POLICIES:
            continue
        t0 = time.perf_counter()
        run = simulate(scenario, spec)
        row = results(scenario, run)
        print(
            f"{spec.name:12s} {time.perf_counter() - t0:6.1f} s  ({run.evaluations} control ticks, "
            f"{row['gpu_hours']:.0f} GPU-h, p95 {row['wait_p95_s']:.0f} s)"
        )
    total = time.perf_counter() - started
    print(
        f"total: {total:.1f} s for {len(POLICIES)} policies over {args.days:g} days "
        f"({platform.machine()}, {platform.python_version()})"
    )


if __name__ == "__main__":
    main()
