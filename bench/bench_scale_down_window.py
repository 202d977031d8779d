"""The HPA's scale-down window as a knob: `make evaluate`'s sweep with every family under
KEDA's default HPA (no behavior: Kubernetes' legacy rules, which hold the highest ask of
300 s) and again with a behavior whose scale-down window is shorter, on the bundled traces.

    .venv/bin/python bench/bench_scale_down_window.py [--cases functions,conv,code,mooncake]
        [--cold-starts 120,300,600] [--window 60] [--workers N]

`--cases` also takes functions-warm, conv-warm, code-warm and mooncake-warm: the same
traces entered warm (docs/evaluation.md, "Entered warm").

Prints, per trace and cold start, the cheapest p95 <= 60 s (GPU-hours as a multiple
of the floor) on the frontiers of Prewarm, stock KEDA (min 0 and min 1) and the
perfect-foresight oracle under each, and the issue's targets met with every
family under the default, every family at the short window, and with the window
swept as one more knob of every family. Every policy KEDA runs gets the same window
(static provisioning has no HPA), so no family gains a knob the others lack.
`twitter` is in no default case: its six sweeps took 59 minutes on one core, the four
default traces' 24 took 46 (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from scaler.argtypes import number, whole
from scaler.sim import evaluate
from scaler.sim.policies import PolicySpec
from scaler.sim.report import frontiers
from scaler.sim.run import Scenario, sweep_policies, with_scale_down_window

CASES = evaluate.CASE_NAMES


def sweep(
    case_name: str,
    cold_start: int,
    window_s: float | None,
    phases: Sequence[tuple[int, int]] | None = None,
) -> dict[str, Any]:
    """One case's sweep (make evaluate's, at its loop phases, meaned) with every
    HPA-run family at `window_s` (None: KEDA's default, no behavior). `phases` runs it
    at those loop phases instead (the tests run one, a sixth of the time)."""
    case = evaluate.CASES[CASES[case_name]]
    scenario, _ = evaluate.case_scenario(case, evaluate.case_trace(case, False), cold_start, False)
    started = time.monotonic()

    def specs(at_phase: Scenario) -> list[PolicySpec]:
        if window_s is None:
            return sweep_policies(at_phase)
        return [with_scale_down_window(spec, window_s) for spec in sweep_policies(at_phase)]

    at = evaluate.case_phases(case) if phases is None else phases
    rows, _ = evaluate.run_at_phases(scenario, at, specs)
    # targets() reads the floor from keda-min0's default row: the sweep's point at
    # queueLength = the concurrency is that same policy.
    default = f"keda-min0@ql={scenario.world.concurrency:g}"
    keda = next({**row, "policy": "keda-min0"} for row in rows if row["policy"] == default)
    return {
        "case": case_name,
        "family": case.family,
        "cold_start": cold_start,
        "window_s": window_s,
        "rows": [keda],
        "sweep": rows,
        "seconds": time.monotonic() - started,
    }


def met(result: dict[str, Any]) -> tuple[int, int]:
    judged = evaluate.targets(result)
    return sum(line.startswith("MET") for line in judged), len(judged)


def cheapest(result: dict[str, Any]) -> str:
    floor = result["rows"][0]["floor_gpu_hours"]
    costs = evaluate.cheapest_within_slo(frontiers(result["sweep"]))
    return " / ".join("none" if c == float("inf") else f"{c / floor:.2f}x" for c in costs)


def table(
    results: dict[tuple[str, int, float | None], dict[str, Any]], window_s: float
) -> tuple[list[str], str]:
    """The Markdown table (one row per trace and cold start, in `results`' order) and
    the totals line, from each sweep keyed by (case, cold start, window; None: the default)."""
    short = f"{window_s:g} s"
    lines = [
        f"| trace | cold start | cheapest p95 <= 60 s, prewarm / stock KEDA / oracle: KEDA's default "
        f"| window {short} | targets met: KEDA's default | window {short} | window swept |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    totals = [0, 0, 0, 0]
    cases = dict.fromkeys((name, cold) for name, cold, _ in results)
    for name, cold in cases:
        default, shortened = results[(name, cold, None)], results[(name, cold, window_s)]
        swept = {**default, "sweep": default["sweep"] + shortened["sweep"]}
        counts = [met(default), met(shortened), met(swept)]
        for i, (m, _) in enumerate(counts):
            totals[i] += m
        totals[3] += counts[0][1]
        cells = " | ".join(f"{m} of {n}" for m, n in counts)
        lines.append(f"| {name} | {cold} s | {cheapest(default)} | {cheapest(shortened)} | {cells} |")
    summary = (
        f"targets met: {totals[0]} (KEDA's default), {totals[1]} (window {short}), "
        f"{totals[2]} (swept) of {totals[3]}"
    )
    return lines, summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cases", default="functions,conv,code,mooncake", help=f"of {', '.join(CASES)}")
    parser.add_argument("--cold-starts", default="120,300,600")
    parser.add_argument(
        "--window", type=number(0, 3600), default=60.0, help="the short window, seconds (default 60)"
    )
    parser.add_argument("--workers", type=whole(1), default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    names = [name for name in args.cases.split(",") if name]
    unknown = [name for name in names if name not in CASES]
    if unknown:
        parser.error(f"--cases: unknown {', '.join(unknown)}; known: {', '.join(CASES)}")
    try:
        colds = [whole(1)(x) for x in args.cold_starts.split(",") if x]
    except argparse.ArgumentTypeError as exc:
        parser.error(f"--cold-starts: {exc}")
    if not names or not colds:
        parser.error("--cases and --cold-starts: at least one each")
    jobs = [(name, cold, window) for name in names for cold in colds for window in (None, args.window)]
    started = time.monotonic()
    with ProcessPoolExecutor(max_workers=min(args.workers, len(jobs))) as pool:
        done = list(pool.map(sweep, *zip(*jobs, strict=True)))
    lines, summary = table({(r["case"], r["cold_start"], r["window_s"]): r for r in done}, args.window)
    print("\n".join(lines))
    print(
        f"\n{summary}; {len(jobs)} sweeps in {time.monotonic() - started:.0f} s "
        f"({platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
