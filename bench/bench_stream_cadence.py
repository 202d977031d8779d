"""How far the simulator's Prewarm is from the server's: `make evaluate` asks Prewarm's
engine at KEDA's polls and the HPA's syncs, and at every tick of its stream while the
stream's last answer was not `true` (when a `true` can act). The server's stream
evaluates every second throughout; each evaluation reads the queue again once the
cache's 2 s are up, and the engine's state (the rate average, the hold's history, the
quiet time) sees those readings, and a `true` after a `false` restarts KEDA's
cooldown. This runs Prewarm's defaults both ways (PolicySpec.stream_every_tick) on
every case of `make evaluate` at cold starts of 120, 300 and 600 s, meaned over its
loop phases as the evaluation means them.

    .venv/bin/python bench/bench_stream_cadence.py [--cases code,twitter,...]
        [--cold-starts 120,300,600] [--workers N]

Prints one Markdown table (GPU-hours / p95 / p99 each way, and the change in
GPU-hours and p95 from the simulator's way to every tick), the machine and the time
taken. About 3 minutes on 2 cores (Twitter's week asked every second is most of it).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import time
from concurrent.futures import ProcessPoolExecutor

from scaler.sim import evaluate
from scaler.sim.policies import PolicySpec
from scaler.sim.run import Scenario, _named, prewarm_policy

SETTINGS = ("as simulated", "every tick")


def policies(scenario: Scenario) -> list[PolicySpec]:
    """Prewarm's defaults as the evaluation runs them, and asked at every tick."""
    spec = prewarm_policy(
        scenario.world.concurrency,
        scenario.max_replicas,
        cold_start_s=scenario.world.cold_start.typical_s,
        replica_throughput=scenario.rate_per_replica,
    )
    return [
        _named(spec, SETTINGS[0]),
        _named(dataclasses.replace(spec, stream_every_tick=True), SETTINGS[1]),
    ]


Figures = dict[str, tuple[float, float, float]]  # setting: GPU-hours, p95, p99


def run_case(name: str, index: int, cold_start: int) -> tuple[str, int, Figures]:
    case = evaluate.CASES[index]
    scenario, _ = evaluate.case_scenario(case, evaluate.case_trace(case, False), cold_start, False)
    rows, _ = evaluate.run_at_phases(scenario, evaluate.case_phases(case), policies)
    return name, cold_start, {r["policy"]: (r["gpu_hours"], r["wait_p95_s"], r["wait_p99_s"]) for r in rows}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    names = evaluate.CASE_NAMES
    parser.add_argument("--cases", default=",".join(names), help=f"comma-separated: {', '.join(names)}")
    parser.add_argument("--cold-starts", default="120,300,600", help="seconds, comma-separated")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    cases = args.cases.split(",")
    unknown = [c for c in cases if c not in names]
    if unknown:
        parser.error(f"--cases: {', '.join(unknown)} unknown; accepted: {', '.join(names)}")
    try:
        colds = [int(c) for c in args.cold_starts.split(",")]
    except ValueError:
        parser.error("--cold-starts: whole seconds, comma-separated")
    if args.workers < 1:
        parser.error("--workers: a whole number >= 1")
    started = time.monotonic()
    jobs = [(name, names[name], cold) for name in cases for cold in colds]
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        done = list(pool.map(run_case, *zip(*jobs, strict=True)))
    headers = [f"{s}: GPU-h / p95 / p99" for s in SETTINGS]
    print("| case | cold start | " + " | ".join(headers) + " | every tick against as simulated |")
    print("|---|---:|" + "---:|" * (len(SETTINGS) + 1))
    for name, cold, figures in done:
        cells = [f"{g:.2f} / {p95:.1f} s / {p99:.1f} s" for g, p95, p99 in (figures[s] for s in SETTINGS)]
        simulated, every = figures[SETTINGS[0]], figures[SETTINGS[1]]
        change = f"{(every[0] / simulated[0] - 1) * 100:+.1f} %, {every[1] - simulated[1]:+.1f} s"
        print(f"| {name} | {cold} s | " + " | ".join(cells) + f" | {change} |")
    print(
        f"\n{time.monotonic() - started:.0f} s on {os.cpu_count()} CPUs, {args.workers} workers "
        f"({platform.machine()}, Python {platform.python_version()})"
    )


if __name__ == "__main__":
    main()
