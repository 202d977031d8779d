"""What bench_recurring_hold.py and bench_stream_cadence.py share: a few settings of
Prewarm run on every case of `make evaluate` at cold starts of 120, 300 and 600 s,
meaned over the case's loop phases as the evaluation means them, and printed as one
Markdown table (GPU-hours / p95 / p99 per setting, and one column comparing them)."""

from __future__ import annotations

import argparse
import functools
import os
import platform
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor

from scaler.sim import evaluate
from scaler.sim.policies import PolicySpec
from scaler.sim.run import Scenario

Figures = dict[str, tuple[float, float, float]]  # setting: GPU-hours, p95, p99
Policies = Callable[[Scenario], list[PolicySpec]]  # one spec per setting, named after it


def case_figures(policies: Policies, name: str, index: int, cold_start: int) -> tuple[str, int, Figures]:
    case = evaluate.CASES[index]
    scenario, _ = evaluate.case_scenario(case, evaluate.case_trace(case, False), cold_start, False)
    rows, _ = evaluate.run_at_phases(scenario, evaluate.case_phases(case), policies)
    return name, cold_start, {r["policy"]: (r["gpu_hours"], r["wait_p95_s"], r["wait_p99_s"]) for r in rows}


def main(
    doc: str, policies: Policies, settings: Sequence[str], header: str, compared: tuple[str, str, str]
) -> None:
    """Parses --cases, --cold-starts and --workers, runs `policies` (a module-level
    function: the workers are other processes) on each case and cold start, and prints
    the table: a column per setting (`header` with the setting for `{}`), and one that
    compares two (`compared`: its title, the setting and the one it is set against:
    the change in GPU-hours, in %, and in p95)."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
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
    run = functools.partial(case_figures, policies)
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        done = list(pool.map(run, *zip(*jobs, strict=True)))
    title, setting, against = compared
    print("| case | cold start | " + " | ".join(header.format(s) for s in settings) + f" | {title} |")
    print("|---|---:|" + "---:|" * (len(settings) + 1))
    for name, cold, figures in done:
        cells = [f"{g:.2f} / {p95:.1f} s / {p99:.1f} s" for g, p95, p99 in (figures[s] for s in settings)]
        (cost, p95, _), (base_cost, base_p95, _) = figures[setting], figures[against]
        change = f"{(cost / base_cost - 1) * 100:+.1f} %, {p95 - base_p95:+.1f} s"
        print(f"| {name} | {cold} s | " + " | ".join(cells) + f" | {change} |")
    print(
        f"\n{time.monotonic() - started:.0f} s on {os.cpu_count()} CPUs, {args.workers} workers "
        f"({platform.machine()}, Python {platform.python_version()})"
    )
