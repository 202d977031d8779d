"""`make evaluate`: docs/evaluation.md and its plots, from the traces in bench/traces.

For each trace and cold start (120, 300, 600 s): Prewarm's defaults and the
baselines, each policy's knob swept for the frontiers, and the issue's targets
checked against the figures (met or missed, with the numbers).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scaler.argtypes import whole

if TYPE_CHECKING:
    from scaler.sim.policies import PolicySpec
    from scaler.sim.run import Scenario
    from scaler.sim.traces import Trace

ROOT = Path(__file__).resolve().parents[2]
TRACES = ROOT / "bench" / "traces"
COLD_STARTS = (120, 300, 600)
JOB_SERVICE = "lognormal:120:0.5"
BASELINE_FAMILIES = ("keda-min0", "keda-min1", "keda-lastweek", "kedastral")


@dataclass(frozen=True)
class Case:
    label: str
    file: str
    start: int = 0
    duration: int | None = None
    family: str = ""  # "twitter", "azure", "other": which targets apply
    warmup_s: int = 0  # simulated first (forecast history), not scored or billed
    # Entered warm: the trace's opening played backwards first (run.led_in_scenario).
    lead_in_s: int = 0
    # Run at every LOOP_PHASES and reported as their mean (the one-hour traces).
    phased: bool = False


# Where KEDA's poll and the HPA's sync fall relative to the trace, in seconds: a real
# cluster's loops started whenever the objects were created. On a one-hour trace a few
# wakes and bursts set the tail, and where they fall against a 30 s poll moved stock
# KEDA's p95 on the code trace from 14 to 137 s entered warm (an audit, December 2026);
# one phase would be one draw, and the default one (a poll at t = 0, which sees nothing
# yet) is stock KEDA's worst wake. So those traces run at six phases, KEDA's poll 0 to
# 25 s in, the HPA's sync each a different 0 to 14 s after it, and every figure is the
# mean. The week of Twitter and the day of Functions hold hundreds of wakes and bursts,
# each at its own offset: one phase averages itself out there (Functions moved 2 %).
LOOP_PHASES: tuple[tuple[int, int], ...] = tuple((5 * k, (5 + 7 * k) % 15) for k in range(6))


CASES: tuple[Case, ...] = (
    Case(
        "Twitter (7 days scored after 1 day of history, per second)",
        "twitter_2021_08_first8d_per_second.csv.gz",
        0,
        8 * 86400,
        "twitter",
        warmup_s=86400,
    ),
    Case(
        "Azure Functions 2019 (1 day, per minute)",
        "azure_functions_2019_sample1350_per_minute.csv",
        family="azure",
    ),
    Case("Azure LLM conversation (1 h, per request)", "azure_llm_2023_conv.csv", family="azure", phased=True),
    Case("Azure LLM code (1 h, per request)", "azure_llm_2023_code.csv", family="azure", phased=True),
    Case(
        "Mooncake conversation (1 h, per request)",
        "mooncake_conversation_requests.csv",
        family="other",
        phased=True,
    ),
)
# The traces with no history before them start from zero replicas at their full load,
# and that one wake sets much of a one-hour trace's tail. Each is judged a second time
# entered warm, after a lead-in long enough for every policy in a target to settle: the
# longest cold start, KEDA's cooldown and the HPA's 300 s window, with room to spare.
LEAD_IN_S = 1800
CASES += tuple(
    replace(
        case,
        label=case.label.replace(" (", ", entered warm (", 1).removesuffix(")")
        + f", after a {LEAD_IN_S // 60}-min lead-in)",
        lead_in_s=LEAD_IN_S,
    )
    for case in CASES
    if not case.warmup_s
)
# Short names for CASES, for the benchmarks' --cases: the trace, and "-warm" for the
# second judgement entered warm.
CASE_NAMES: dict[str, int] = {
    "twitter": 0,
    "functions": 1,
    "conv": 2,
    "code": 3,
    "mooncake": 4,
    "functions-warm": 5,
    "conv-warm": 6,
    "code-warm": 7,
    "mooncake-warm": 8,
}


def case_trace(case: Case, quick: bool) -> Trace:
    """The slice of the bundled trace a case replays (before it is fitted to the fleet)."""
    from scaler.sim.traces import load_trace, sliced

    trace = load_trace(TRACES / case.file)
    if case.duration is not None:
        trace = sliced(trace, case.start, case.start + case.duration)
    if quick:
        trace = sliced(trace, 0, min(trace.duration_s, 6 * 3600))
    return trace


def case_scenario(case: Case, trace: Trace, cold_start: int, quick: bool) -> tuple[Scenario, list[str]]:
    """The Scenario a case is judged on at one cold start (`trace` from case_trace), and
    its setup lines."""
    from scaler.sim.main import build_scenario
    from scaler.sim.run import led_in_scenario

    scenario, setup = build_scenario(
        trace,
        concurrency=4,
        service=None,
        cold_start=str(cold_start),
        slo=60,
        max_replicas=100,
        peak_replicas=20,
    )
    scenario.warmup_s = 0 if quick else case.warmup_s
    # The one-hour traces with Prewarm's stream evaluated every second, as the server's
    # is (it about doubles their cases' time: make evaluate 42 to 49 min instead of 31);
    # Twitter's week and Functions' day at its polls and syncs while it is active,
    # where every second makes each Prewarm run 4 to 5 times longer and changes
    # GPU-hours by under 1 % (docs/benchmarks.md, the stream's cadence).
    scenario.stream_every_tick = case.phased
    if scenario.warmup_s:
        setup.append(
            f"the first {scenario.warmup_s / 3600:.0f} h are simulated as history for the forecasters "
            "and not scored or billed"
        )
    if case.lead_in_s:
        scenario = led_in_scenario(scenario, case.lead_in_s)
        setup.append(
            f"entered warm: simulated from {case.lead_in_s // 60} min before the trace starts, over its "
            f"first {case.lead_in_s // 60} min played backwards (a lead-in), not scored or billed; every "
            "policy enters the trace with the fleet its own decisions hold for that load"
        )
    return scenario, setup


def run_case(case: Case, cold_start: int, out_dir: str, quick: bool) -> dict[str, Any]:
    from scaler.sim import report
    from scaler.sim.main import build_scenario
    from scaler.sim.run import standard_policies, sweep_policies

    trace = case_trace(case, quick)
    scenario, setup = case_scenario(case, trace, cold_start, quick)
    started = time.monotonic()
    phases = case_phases(case, quick)
    rows, runs = run_at_phases(scenario, phases, standard_policies)
    sweep_rows, _ = run_at_phases(scenario, phases, sweep_policies)
    bound = first_wake_bound(scenario, phases) if bounded_by_first_wake(case) else None
    if len(phases) > 1:
        setup.append(
            f"every figure is the mean over {len(phases)} phases of KEDA's and the HPA's loops (Loop "
            "phases, above); the timeline shows the first"
        )
    stem = f"{Path(case.file).name.split('.')[0]}{'_warm' if case.lead_in_s else ''}_cold{cold_start}"
    report.plot_runs(
        Path(out_dir) / f"{stem}_timeline.png",
        f"{case.label}, cold start {cold_start} s",
        runs,
        ("prewarm", "keda-min0", "keda-min1", "hpa-gpu75", "kedastral"),
        scored_from_s=scenario.warmup_s,
    )
    jobs: list[dict[str, Any]] = []
    if trace.per_request and not case.lead_in_s:
        # ScaledJobs: one Job per message suits long work, so minutes-long requests here.
        from scaler.sim.jobs import job_policies, simulate_jobs

        job_scenario, _ = build_scenario(
            trace,
            concurrency=1,
            service=JOB_SERVICE,
            cold_start=str(cold_start),
            slo=60,
            max_replicas=100,
            peak_replicas=20,
        )
        jobs = [simulate_jobs(job_scenario.trace, job_scenario.world, p) for p in job_policies()]
    result = {
        "jobs": jobs,
        "case": case.label,
        "family": case.family,
        "lead_in_s": case.lead_in_s,
        "cold_start": cold_start,
        "setup": setup,
        "rows": rows,
        "sweep": sweep_rows,
        "first_wake_bound": bound,
        "stem": stem,
        "phases": len(phases),
        "seconds": time.monotonic() - started,
    }
    plot_frontiers(result, out_dir)
    return result


def bounded_by_first_wake(case: Case) -> bool:
    """Whether a case's report gives the first-wake bound: where the first cold start
    can set the tail, the one-hour traces replayed from zero at full load (a week's or
    a day's first wake is one of hundreds, and entered warm there is none)."""
    return case.phased and not case.lead_in_s


def first_wake_bound(scenario: Scenario, phases: Sequence[tuple[int, int]]) -> dict[str, dict[str, float]]:
    """The first-wake bound of a trace replayed from zero (run.first_wake_bound_policy),
    from 0 and from 1 replica, meaned over the loop phases as every policy is: the
    least p95 wait any autoscaler that starts there and wakes on a request can reach."""
    from scaler.sim.run import first_wake_bound_policy

    rows, _ = run_at_phases(
        scenario,
        phases,
        lambda s: [first_wake_bound_policy(s.max_replicas, 0), first_wake_bound_policy(s.max_replicas, 1)],
    )
    return {
        f"min{i}": {"gpu_hours": row["gpu_hours"], "wait_p95_s": row["wait_p95_s"]}
        for i, row in enumerate(rows)
    }


def plot_frontiers(result: dict[str, Any], out_dir: str | Path) -> None:
    """The frontiers plot of one case at one cold start, from its result (a fresh run's
    or raw.json's)."""
    from scaler.sim import report

    report.plot_frontiers(
        Path(out_dir) / f"{result['stem']}_frontiers.png",
        f"{result['case']}, cold start {result['cold_start']} s",
        result["sweep"],
    )


def case_phases(case: Case, quick: bool = False) -> tuple[tuple[int, int], ...]:
    """The loop phases a case runs at: all of LOOP_PHASES for a phased case (two in a
    --quick smoke run, which tries the averaging, not the figures), else the default."""
    if not case.phased:
        return LOOP_PHASES[:1]
    return LOOP_PHASES[:2] if quick else LOOP_PHASES


def run_at_phases(
    scenario: Scenario,
    phases: Sequence[tuple[int, int]],
    policies: Callable[[Scenario], list[PolicySpec]],
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """`policies(scenario)` simulated at each loop phase: the rows meaned over the
    phases (mean_rows), and the first phase's runs (for the timeline)."""
    from scaler.sim.main import run_policies

    phased: list[list[dict[str, Any]]] = []
    first: dict[str, Any] = {}
    for phase in phases:
        at_phase = replace(scenario, loop_phase=phase)
        rows, runs = run_policies(at_phase, policies(at_phase), progress=False)
        phased.append(rows)
        first = first or runs
    return mean_rows(phased), first


def mean_rows(phased: Sequence[Sequence[dict[str, Any]]]) -> list[dict[str, Any]]:
    """One results row per policy: each figure's mean over the runs in `phased` (one
    list of rows per loop phase, in the same policies); counts in a dict (forecast
    states, winning terms) too; text from the first."""
    if len(phased) == 1:
        return list(phased[0])
    meaned: list[dict[str, Any]] = []
    for same_policy in zip(*phased, strict=True):
        first = same_policy[0]
        assert all(row["policy"] == first["policy"] for row in same_policy)
        row: dict[str, Any] = {}
        for key, value in first.items():
            values = [r[key] for r in same_policy]
            if isinstance(value, dict):
                names = sorted({name for v in values for name in v})
                row[key] = {name: sum(v.get(name, 0) for v in values) / len(values) for name in names}
            elif isinstance(value, int | float) and not isinstance(value, bool):
                row[key] = sum(values) / len(values)
            else:
                row[key] = value
        meaned.append(row)
    return meaned


# How a frontier target met by matching the baseline, not beating it, says so.
TIE_NOTE = "by a tie"


def targets(result: dict[str, Any]) -> list[str]:
    """The issue's targets for one trace and cold start, each met or missed with the figures."""
    from scaler.sim.report import dominates, frontiers, level_with, p95_at_budget

    fronts = frontiers(result["sweep"])
    ours = fronts.get("prewarm", [])
    lines = []
    for family in BASELINE_FAMILIES:
        ok, misses = dominates(ours, fronts.get(family, []))
        detail = "" if ok else ": worse " + "; ".join(misses[:3]) + (" ..." if len(misses) > 3 else "")
        level = level_with(ours, fronts.get(family, []))
        if ok and level:
            # Met by matching, not beating: say where, so a tie does not read as a win.
            detail = f" ({TIE_NOTE}, no more than 0.05 s better, " + "; ".join(level[:3])
            detail += (" ..." if len(level) > 3 else "") + ")"
        lines.append(f"{'MET' if ok else 'MISSED'}: Prewarm's frontier dominates {family}'s{detail}")
    rows = {r["policy"]: r for r in result["rows"]}
    keda = rows["keda-min0"]
    if result["family"] in ("twitter", "azure"):
        # Against every point of keda-min0's frontier (its best queueLength at each budget), not
        # only its default: a default that a better setting beats would make the target too easy.
        misses = []
        halves = []  # half of keda-min0's p95 where Prewarm misses it
        for cost, p95 in fronts.get("keda-min0", []):
            mine = p95_at_budget(ours, cost)
            if mine > p95 / 2 + 1e-9:
                halves.append(p95 / 2)
                ours_text = "has no point" if math.isinf(mine) else f"{mine:.1f} s"
                misses.append(f"within {cost:.1f} GPU-h Prewarm {ours_text} vs keda-min0 {p95:.1f} s")
        ok = not misses
        lines.append(
            f"{'MET' if ok else 'MISSED'}: p95 at most half of keda-min0's at equal or lower GPU-hours "
            "(each point of its frontier)"
            + ("" if ok else ": " + "; ".join(misses) + _out_of_reach(result, max(halves)))
        )
    floor = keda["floor_gpu_hours"]
    mine_cost, keda_cost, oracle_cost = cheapest_within_slo(fronts)
    ok = mine_cost <= 1.3 * floor and keda_cost > 1.3 * floor
    # The perfect-foresight reference (not a target): what KEDA's loops allow at best.
    oracle = ""
    if "oracle" in fronts:
        oracle = f"; perfect foresight's (oracle) {_cost(oracle_cost, floor)}"
    reach = _out_of_reach(result, SLO_TARGET_S) if math.isinf(mine_cost) else ""
    lines.append(
        f"{'MET' if ok else 'MISSED'}: p95 <= 60 s within 1.3x the floor ({1.3 * floor:.2f} GPU-h) "
        f"where stock KEDA needs more: Prewarm's cheapest {_cost(mine_cost, floor)}, "
        f"stock KEDA's {_cost(keda_cost, floor)}{oracle}{reach}"
    )
    return lines


# The p95 the floor target asks for.
SLO_TARGET_S = 60.0
# How a miss that no autoscaler from zero could meet says so.
OUT_OF_REACH_NOTE = "out of reach from zero"


def _out_of_reach(result: dict[str, Any], p95: float) -> str:
    """For a trace replayed from zero, whether a p95 of `p95` s is beyond the first-wake
    bound from both 0 and 1 replica (Prewarm's frontier has points at each): then no
    autoscaler that wakes on a request meets it, and the miss says so with the bound."""
    bound = result.get("first_wake_bound")
    if not bound:
        return ""
    least = min(b["wait_p95_s"] for b in bound.values())
    if least <= p95 + 1e-9:
        return ""
    return (
        f"; {OUT_OF_REACH_NOTE} for any autoscaler that wakes on a request: the first-wake bound "
        f"(maxReplicaCount asked from the first request on) waits p95 {bound['min0']['wait_p95_s']:.1f} s "
        f"from 0 replicas and {bound['min1']['wait_p95_s']:.1f} s from 1"
    )


def _below_bound(result: dict[str, Any]) -> str:
    """The bound's check: every autoscaled point of the sweep waits at least as long as
    the bound from its start (0 or 1 replica; the oracle, which knows the arrivals
    ahead, and static provisioning, Ready before the trace, are not such policies).
    Below it, the premise failed: say where."""
    bound = result["first_wake_bound"]
    below = [
        f"{row['policy']} {row['wait_p95_s']:.1f} s"
        for row in [*result["rows"], *result["sweep"]]
        if row["family"] not in ("oracle", "static")
        and row["wait_p95_s"] < bound["min1" if row["min_replicas"] >= 1 else "min0"]["wait_p95_s"] - 0.05
    ]
    if not below:
        return "; no policy here waits less"
    return "; BELOW IT (the bound's premise fails): " + ", ".join(below[:5])


def cheapest_within_slo(fronts: dict[str, list[tuple[float, float]]]) -> tuple[float, float, float]:
    """The fewest GPU-hours with p95 <= 60 s on Prewarm's frontier, stock KEDA's
    (keda-min0's and keda-min1's) and the oracle's; inf where none reaches it."""

    def cheapest(front: list[tuple[float, float]]) -> float:
        return min((c for c, p in front if p <= 60), default=math.inf)

    keda = min(cheapest(fronts.get("keda-min0", [])), cheapest(fronts.get("keda-min1", [])))
    return cheapest(fronts.get("prewarm", [])), keda, cheapest(fronts.get("oracle", []))


def summary(results: list[dict[str, Any]]) -> str:
    """One line per trace and cold start: the targets met, the defaults of Prewarm and
    stock KEDA (GPU-hours as a multiple of the floor, p95 wait), and the cheapest
    p95 <= 60 s on each frontier."""
    from scaler.sim.report import frontiers

    def default(rows: dict[str, dict[str, Any]], policy: str) -> str:
        r = rows.get(policy)
        if r is None:
            return "-"
        cost = r["gpu_hours"]
        return f"{cost:.1f} ({cost / r['floor_gpu_hours']:.2f}x) / {r['wait_p95_s']:.1f} s"

    def multiple(cost: float, floor: float) -> str:
        return "none" if math.isinf(cost) else f"{cost / floor:.2f}x"

    lines = [
        "| trace | cold start | targets met | prewarm: GPU-h (x floor) / p95 | keda-min0 | keda-min1 "
        "| cheapest p95 <= 60 s (x floor): prewarm / stock KEDA / oracle |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        judged = targets(r)
        met = sum(line.startswith("MET") for line in judged)
        rows = {row["policy"]: row for row in r["rows"]}
        floor = rows["keda-min0"]["floor_gpu_hours"]
        mine, keda, oracle = cheapest_within_slo(frontiers(r["sweep"]))
        lines.append(
            f"| {r['case'].split(' (')[0]} | {r['cold_start']} s | {met} of {len(judged)} "
            f"| {default(rows, 'prewarm')} | {default(rows, 'keda-min0')} | {default(rows, 'keda-min1')} "
            f"| {multiple(mine, floor)} / {multiple(keda, floor)} / {multiple(oracle, floor)} |"
        )
    return "\n".join(lines)


def _factors(factors: tuple[float, ...]) -> str:
    """(0.5, 1.0, 2.0) as "0.5x, 1x and 2x"."""
    named = [f"{f:g}x" for f in factors]
    return named[0] if len(named) == 1 else ", ".join(named[:-1]) + " and " + named[-1]


def _cost(cost: float, floor: float) -> str:
    # Two decimals and three: a cheapest point just past the bound (12.15 against 12.14
    # GPU-h) must not read as on it.
    return "none reaches it" if math.isinf(cost) else f"{cost:.2f} GPU-h ({cost / floor:.3f}x)"


def default_workers(cpus: int | None, cases: int) -> int:
    """One process per CPU, no more than there are cases. Each case is independent
    (its own scenario and seeds), so the results do not depend on the count; the
    wall time is at least the slowest case's (Twitter, about 6 minutes here)."""
    return max(1, min(cpus or 2, cases))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--out", default=str(ROOT / "docs"), help="folder for evaluation.md (plots in evaluation/)"
    )
    parser.add_argument("--quick", action="store_true", help="first 6 h of each trace (a smoke run)")
    parser.add_argument(
        "--workers",
        type=whole(1),
        default=None,
        help="processes running cases at once (default: one per CPU, at most one per case)",
    )
    parser.add_argument(
        "--render-only",
        action="store_true",
        help="rewrite evaluation.md and the frontier plots from the last run's evaluation/raw.json "
        "(no simulation; the timelines stay as they are)",
    )
    args = parser.parse_args(argv)
    from scaler.sim import report

    out = Path(args.out)
    plots = out / "evaluation"
    plots.mkdir(parents=True, exist_ok=True)
    raw = plots / "raw.json"
    if args.render_only:
        saved = json.loads(raw.read_text(encoding="utf-8"))
        text = render(saved["results"], saved["elapsed"], saved["quick"])
        (out / "evaluation.md").write_text(text, encoding="utf-8")
        for result in saved["results"]:
            plot_frontiers(result, plots)  # the timelines need the runs, which are not saved
        return 0
    started = time.monotonic()
    jobs = [(case, cold) for case in CASES for cold in COLD_STARTS]
    with ProcessPoolExecutor(max_workers=args.workers or default_workers(os.cpu_count(), len(jobs))) as pool:
        futures = [pool.submit(run_case, case, cold, str(plots), args.quick) for case, cold in jobs]
        results = []
        for (case, cold), future in zip(jobs, futures, strict=True):
            results.append(future.result())
            print(f"{case.label}, cold start {cold} s: {results[-1]['seconds']:.0f} s", file=sys.stderr)
    elapsed = time.monotonic() - started
    results = json.loads(json.dumps(results, default=float))  # what render() reads back from raw.json
    (out / "evaluation.md").write_text(render(results, elapsed, args.quick), encoding="utf-8")
    report.write_json(
        plots / "results.json",
        [{**row, "case": r["case"], "cold_start": r["cold_start"]} for r in results for row in r["rows"]],
    )
    raw.write_text(
        json.dumps({"results": results, "elapsed": elapsed, "quick": args.quick}, default=float) + "\n",
        encoding="utf-8",
    )
    print(f"wrote {out / 'evaluation.md'} in {elapsed:.0f} s", file=sys.stderr)
    return 0


def render(results: list[dict[str, Any]], elapsed: float, quick: bool) -> str:
    from scaler.sim.report import frontiers, table
    from scaler.sim.run import (
        CHEAP_CORNER_FACTORS,
        LONG_HOLD_S,
        LONG_HOLD_THROUGHPUT_FACTORS,
        ORACLE_UTILIZATIONS,
        QUEUE_LENGTH_FACTORS,
        THROUGHPUT_FACTORS,
        PolicySpec,
    )

    def count(runs: list[dict[str, Any]]) -> tuple[int, int]:
        judged = [line for r in runs for line in targets(r)]
        return sum(line.startswith("MET") for line in judged), len(judged)

    unreachable = sum(
        line.startswith("MISSED") and OUT_OF_REACH_NOTE in line for r in results for line in targets(r)
    )

    met, total = count(results)
    headline = f"**Targets met: {met} of {total}.**"
    tied = sum(line.startswith("MET") and TIE_NOTE in line for r in results for line in targets(r))
    warm = [r for r in results if r.get("lead_in_s")]
    if warm:
        as_they_start = count([r for r in results if not r.get("lead_in_s")])
        entered_warm = count(warm)
        headline = (
            f"**Targets met: {as_they_start[0]} of {as_they_start[1]} on the traces as they start, and "
            f"{entered_warm[0]} of {entered_warm[1]} with the traces that have no history entered warm** "
            f"({met} of {total} in all)."
        )
    if tied:
        headline += (
            f" Frontier targets met at some budget only by a tie: {tied} (Prewarm's "
            "frontier level with the baseline's there, no more than 0.05 s better, mostly where its "
            "points without replicaThroughput ask what stock KEDA asks); each says where."
        )
    if unreachable:
        headline += (
            f" Misses out of reach for any autoscaler that starts at 0 or 1 replica and wakes on a "
            f"request: {unreachable} (on the one-hour traces replayed from zero at full load, even "
            "maxReplicaCount asked from the first request waits longer; each says so, with that "
            "first-wake bound)."
        )
    lines = [
        "# Evaluation: Prewarm against stock KEDA on real traffic",
        "",
        "Generated by `make evaluate` (`python -m scaler.sim.evaluate`) from the traces in `bench/traces` "
        f"in {elapsed / 60:.0f} min on the project's 2-core sandbox"
        f"{' (QUICK: first 6 h only)' if quick else ''}. Do not edit by hand. How the simulator works "
        'and what it assumes: the README\'s simulator section and docs/decisions.md ("Simulator").',
        "",
        f"{headline} Every miss is listed with its figures under each trace.",
        "",
        "At a glance (defaults under KEDA's defaults; the frontiers sweep each policy's knobs; the "
        "floor is busy GPU-seconds over the per-replica concurrency, what no scheme can beat):",
        "",
        summary(results),
        "",
        "Policies: `prewarm` is Prewarm's decision engine with default metadata (queue trigger, "
        "queueLength = per-replica concurrency; the forecast is on by default, with coldStartSeconds = "
        "the cold start and replicaThroughput = one replica's rate at 75 %) under KEDA's defaults; "
        "`prewarm-guard` adds the GPU guard, and `prewarm-noforecast` is `prewarm` with `forecast: off` "
        "(what the forecast buys; the capacity-aware queue term stays). The baselines are described at "
        "the end. Frontiers sweep "
        f"queueLength ({_factors(QUEUE_LENGTH_FACTORS)} the concurrency) for every queue policy, "
        "Prewarm's included, "
        "the forecast quantile (0.5, 0.75, 0.9, 0.97), replicaThroughput "
        f"({_factors(tuple(sorted((*THROUGHPUT_FACTORS, 1.0))))}, and unset at every queueLength: then "
        "Prewarm's queue term is stock KEDA's ask, "
        "and the push and the forecast's one-replica wake are what it adds), both raised together "
        f"(queueLength and replicaThroughput each {_factors(CHEAP_CORNER_FACTORS)}: the cheap corner), "
        "minReplicaCount 1 (at "
        "replicaThroughput 1x, 1.25x and 2x, at `keda-min1`'s other queueLengths, and with "
        "replicaThroughput unset at every queueLength), "
        "drainSeconds (60 s; the default drains over the cold start) and holdSeconds (0, and "
        f"{LONG_HOLD_S:g} s at replicaThroughput {_factors(LONG_HOLD_THROUGHPUT_FACTORS)}, for bursts that "
        "come back within half an hour, every burst held; the default holds "
        "the bursts' rate for a cold start, and for half an hour those that came back within it) for "
        "Prewarm, the GPU target for the "
        "HPA and the replica count for static provisioning. The frontiers also show `oracle`, a reference "
        "no one can deploy: a trigger that knows the arrivals ahead and asks for the replicas that carry "
        "the busiest minute between now and a cold start and a polling interval ahead, plus those that "
        "drain what waits within a minute (utilisation 80 % to 120 %; above 100 % the HPA's scale-down "
        "window supplies the headroom), run under the same KEDA and HPA loops. It is in no target; the "
        "floor target's line gives its cheapest point at p95 <= 60 s, what those loops allow with "
        "perfect foresight. Every policy runs under the HPA as KEDA creates it unless the ScaledObject "
        "sets a behavior: with none, Kubernetes' legacy rules (the highest ask of the last 300 s, this one "
        "included, up by at most max(2x, 4) a sync), as users run it until they change it; the same "
        "sweeps with every policy at a 60 s "
        "window are in docs/benchmarks.md (at a 120 s cold start a p95 under a minute costs less on four "
        "of the five traces, for Prewarm and stock KEDA alike; fewer targets are met), and "
        "docs/decisions.md says why the evaluation keeps the default.",
    ]
    lines += [
        "",
        "How to read it. The forecaster is cold until it has a day of history and has scored 6 h of its "
        "own forecasts, and is then used only while it beats the naive forecast (its gate; while gated, "
        "only its recurring-peak floor stays). On Twitter, where it takes part, its recurring peak "
        "pre-warms a cold start ahead for bursts that come back at the same minute of the day on some "
        "days, at the height of recent days' highest where that estimate has scored better than their "
        "average at forecastQuantile (docs/forecast.md). "
        "On the 1-hour LLM traces and the 1-day Functions trace it "
        "therefore never takes part, and `prewarm` decides from the queue alone: with replicaThroughput "
        "and the measured publish rate (averaged over at most a minute, as long as its measured noise "
        "needs: the per-request LLM and Mooncake traces keep the minute, Twitter's and Functions' smoother "
        "rates about half of it), its capacity-aware queue term (the "
        "rate's replicas plus the backlog expected when new replicas are Ready, drained over one cold "
        "start; docs/forecast.md), with the same activation as `keda-min0` and, on a wake (messages "
        "waiting with none in flight, or within a cold start of the queue being quiet: nothing waiting or "
        "in flight and its averaged rate under one a minute), at least stock KEDA's ask. It asks for far "
        "fewer replicas than `keda-min0` after a burst that finds replicas serving. Prewarm runs as an "
        "`external-push` "
        "trigger, as its examples deploy it: its stream, re-evaluated every second, wakes a target at "
        "zero at once, where KEDA's own queue scalers (polled only) wait for the next poll, up to 30 s "
        "(scaling to zero still goes through the polls and the cooldown). The 1-hour traces start at "
        "full load from zero, so their first wake sets much of the tail: the push wakes Prewarm within "
        "seconds of the first request, and then it asks what stock KEDA asks; `keda-min1`, whose one "
        "Ready replica serves from the first second, starts a cold start ahead of any set-up at zero, "
        "and so do Prewarm's minReplicaCount 1 points, which ask what `keda-min1` asks for that first "
        "cold start. Like the server, Prewarm answers KEDA's polled calls (an HPA sync's GetMetrics, a "
        "poll's IsActive) from a queue reading at most half a second old, as KEDA's own scaler reads the "
        "queue at each call, and its stream's ticks from the shared reading (up to the cache's 2 s); so "
        "the points that ask what `keda-min1` asks run its fleet at every loop phase (docs/decisions.md, "
        "Polled answers read the queue afresh). How much of the tail no "
        "autoscaler can avoid is the first-wake bound listed under each trace replayed from zero: "
        "maxReplicaCount asked from the second the first request arrives (pushed, as Prewarm's stream "
        "wakes a target) and never let go, from 0 and from 1 replica, under the same loops. The HPA's "
        "ramp limit grows with the replicas there are, so no autoscaler that starts there and wakes on "
        "a request has more pods at any moment, and with the queue served in order none starts a request "
        "sooner: none waits less (each trace's line says whether any swept point did; the oracle, which "
        "knows the arrivals ahead, and static provisioning, Ready before the trace, are not bound by it). "
        "A miss that the bound puts out of reach says so, with it. "
        "(In production a warm start from Prometheus history, arrivalQuery, removes the first day; the "
        "traces here have no earlier history to offer.) The line under each table says how often the "
        "forecast was cold, gated or used in that run. `prewarm-guard` holds every pod that has work in "
        "flight, which with consumers taking messages in turn is most pods while the queue is busy: it "
        "buys waits with GPU-hours. In the ScaledJob tables each `prewarm-job` row matches its "
        "`keda-job` row by construction: job mode answers the unclaimed backlog (waiting / queueLength), "
        "which is what KEDA's rabbitmq scaler answers over ready messages, the stock set-up that does "
        "not duplicate Jobs, so those tables compare KEDA's scaling strategies. What job mode prevents "
        "is the deployment-mode metric, which counts in-flight messages and has `accurate` recreate "
        "their Jobs (README, Job mode); its forecast pre-start (maxPrewarmJobs) is off by default and "
        "would be cold on these one-hour traces.",
    ]
    if any(r.get("lead_in_s") for r in results):
        lines += [
            "",
            "Entered warm. A trace with no history before it is a window cut from a service that was "
            "already running, but replayed as it is every policy starts from zero replicas at the "
            "window's full load. So each such trace (Functions and the three one-hour traces) is judged "
            f"a second time entered warm: simulated from {LEAD_IN_S // 60} minutes before it starts, over "
            f"its own first {LEAD_IN_S // 60} minutes played backwards (so the load is continuous "
            "across the join), which is neither scored nor billed. Every policy then enters the trace "
            "with the fleet its own decisions hold for that load (all but `hpa-gpu75` at 300 and 600 s: "
            "a utilisation that cannot read above 100 %, averaged over pods still starting, grows its "
            "fleet by about a third per cold start, and it is still climbing when the trace starts; "
            "it is in no target), and what is compared is how each "
            "tracks the load, not how it wakes from zero: the push and the wake rule hardly matter, and "
            "the forecast is still cold. On the steady conversation traces stock KEDA's ask (the work in "
            "flight and waiting, held for 300 s by the HPA) is hard to beat there: Prewarm's capacity term "
            "at 75 % costs more for the same p95, and its frontier meets stock KEDA's points only with its "
            "points without replicaThroughput, which ask what stock KEDA asks; those targets are met by a "
            "tie, and say so. The headline counts these targets apart. The timelines of these "
            "runs show the lead-in shaded; they have no ScaledJob tables (those compare KEDA's strategies "
            "and are the same story once per trace).",
        ]
    if any(r.get("phases", 1) > 1 for r in results):
        lines += [
            "",
            "Loop phases. Where KEDA's polls and the HPA's syncs fall against the traffic is an accident "
            "of when the objects were created. On the one-hour traces a few wakes and bursts set the tail, "
            f"so each is run at {len(LOOP_PHASES)} phases (KEDA's first poll "
            f"{', '.join(str(poll) for poll, _ in LOOP_PHASES)} s in, the HPA's sync a different 0 to 14 s "
            "after it) and every figure in their tables, frontiers and targets is the mean over them; "
            "their timelines show the first. Twitter's week and Functions' day hold hundreds of wakes and "
            "bursts, each at its own offset, so one phase is already their average. On the one-hour "
            "traces Prewarm's stream is evaluated every second, as the server's is, so the simulated "
            "Prewarm is the server's to the second. On Twitter's week and Functions' day it is evaluated "
            "at its polls and syncs, and at every tick of its stream only while the stream's last answer "
            "was inactive, when a `true` can wake the target or restart KEDA's cooldown; what that "
            "changes is under 1 % of GPU-hours (bench/bench_stream_cadence.py, docs/benchmarks.md).",
        ]
    for r in results:
        lines += ["", f"## {r['case']}, cold start {r['cold_start']} s", ""]
        lines += [f"- {item}" for item in r["setup"]]
        states = next((row.get("forecast_states") for row in r["rows"] if row["policy"] == "prewarm"), None)
        if states:
            count = sum(states.values())
            shares = ", ".join(f"{name} {n / count:.0%}" for name, n in sorted(states.items()))
            lines.append(f"- `prewarm`'s forecast over its {count:.0f} evaluations: {shares}")
        bound = r.get("first_wake_bound")
        if bound:
            lines.append(
                f"- the first-wake bound (maxReplicaCount asked from the first request on, as a push "
                f"wakes it; no autoscaler that wakes on a request has its pods sooner): p95 "
                f"{bound['min0']['wait_p95_s']:.1f} s from 0 replicas, {bound['min1']['wait_p95_s']:.1f} s "
                f"from 1, at {bound['min0']['gpu_hours']:.1f} GPU-h{_below_bound(r)}"
            )
        lines += ["", table(r["rows"]), ""]
        lines += ["Targets:", ""]
        lines += [f"- {line}" for line in targets(r)]
        lines += ["", "Frontiers (GPU-hours / p95 wait):", ""]
        for family, front in sorted(frontiers(r["sweep"]).items()):
            lines.append(f"- {family}: " + ", ".join(f"{c:.1f} / {p:.1f} s" for c, p in front))
        if r["jobs"]:
            from scaler.sim.main import job_table

            lines += [
                "",
                f"ScaledJobs: one Job per message, service {JOB_SERVICE}, the trace thinned (seeded) so "
                "that 20 Jobs would carry its busiest minute at 75 %; KEDA's pollingInterval 30 s, "
                'maxReplicaCount 100; `-ready` rows set pendingPodConditions ["Ready"]:',
                "",
            ]
            lines += [job_table(r["jobs"])]
        lines += [
            "",
            f"![timeline](evaluation/{r['stem']}_timeline.png)",
            f"![frontiers](evaluation/{r['stem']}_frontiers.png)",
        ]
    first = results[0]["rows"] if results else []
    if first:
        lines += ["", "## Policies", ""]
        lines += [f"- `{row['policy']}`: {row['description']}" for row in first]
        lines.append(
            "- `oracle` (frontiers only): a reference, not a baseline: knows the arrivals ahead and asks "
            "for the replicas that carry the busiest minute between now and a cold start and a polling "
            f"interval ({PolicySpec.polling_s:g} s) ahead, plus the messages waiting drained within a "
            "minute, at "
            f"{', '.join(f'{u:.0%}' for u in ORACLE_UTILIZATIONS)} utilisation; min 0"
        )
        lines.append(
            "- the first-wake bound (under each one-hour trace replayed from zero): a reference, not a "
            "policy: asks for maxReplicaCount from the second the first request arrives (pushed) and "
            "never lets go, from 0 and from 1 replica; in no frontier or target, it says which misses "
            "no autoscaler that wakes on a request could meet"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
