"""What holding bursts that came back does by default: Prewarm's defaults (holdSeconds
unset: the burst's rate held for a cold start, and for half an hour where the burst
came back within it, policy.recurring_hold_window) against holdSeconds set to the cold
start (the hold without that part, the default before 5 December 2026) and holdSeconds
1800 (every burst held for half an hour), on every case of `make evaluate` at cold
starts of 120, 300 and 600 s, meaned over its loop phases as the evaluation means them.

    .venv/bin/python bench/bench_recurring_hold.py [--cases code,twitter,...]
        [--cold-starts 120,300,600] [--workers N]

Prints one Markdown table (GPU-hours / p95 / p99 per setting, and the default's change
in GPU-hours and p95 against one cold start's hold), the machine and the time taken.
About 6 minutes on 2 cores (Twitter's week is most of it).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from concurrent.futures import ProcessPoolExecutor

from scaler.sim import evaluate
from scaler.sim.policies import PolicySpec
from scaler.sim.run import LONG_HOLD_S, Scenario, _named, prewarm_policy

SETTINGS = ("unset (default)", "cold start", f"{LONG_HOLD_S:g}")


def policies(scenario: Scenario) -> list[PolicySpec]:
    """Prewarm's defaults as the evaluation runs them, with holdSeconds unset, at the
    cold start, and at LONG_HOLD_S."""
    lead = scenario.world.cold_start.typical_s
    out = []
    for setting, hold in zip(SETTINGS, (None, lead, LONG_HOLD_S), strict=True):
        spec = prewarm_policy(
            scenario.world.concurrency,
            scenario.max_replicas,
            cold_start_s=lead,
            replica_throughput=scenario.rate_per_replica,
            hold_s=hold,
        )
        out.append(_named(spec, setting))
    return out


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
    headers = [f"holdSeconds {s}: GPU-h / p95 / p99" for s in SETTINGS]
    print("| case | cold start | " + " | ".join(headers) + " | default against a cold start's hold |")
    print("|---|---:|" + "---:|" * (len(SETTINGS) + 1))
    for name, cold, figures in done:
        cells = [f"{g:.2f} / {p95:.1f} s / {p99:.1f} s" for g, p95, p99 in (figures[s] for s in SETTINGS)]
        default, short = figures[SETTINGS[0]], figures[SETTINGS[1]]
        change = f"{(default[0] / short[0] - 1) * 100:+.1f} %, {default[1] - short[1]:+.1f} s"
        print(f"| {name} | {cold} s | " + " | ".join(cells) + f" | {change} |")
    print(
        f"\n{time.monotonic() - started:.0f} s on {os.cpu_count()} CPUs, {args.workers} workers "
        f"({platform.machine()}, Python {platform.python_version()})"
    )


if __name__ == "__main__":
    main()
