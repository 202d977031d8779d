"""The evaluation report: targets are judged from the figures, misses say by how much."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from scaler.sim import evaluate
from scaler.sim.evaluate import default_workers, main, render, summary, targets
from scaler.sim.traces import Trace


def row(policy: str, family: str, gpu_hours: float, p95: float) -> dict[str, object]:
    return {
        "policy": policy,
        "family": family,
        "description": policy,
        "gpu_hours": gpu_hours,
        "floor_gpu_hours": 10.0,
        "cost_vs_floor": gpu_hours / 10,
        "wait_p50_s": 0.0,
        "wait_p95_s": p95,
        "wait_p99_s": p95,
        "wait_max_s": p95,
        "slo_violation_share": 0.0,
        "cold_start_waits": 0.0,
        "scale_ups": 1,
        "scale_downs": 1,
        "flaps": 0,
        "time_at_zero_share": 0.0,
        "lost_work": 0.0,
        "min_replicas": 1 if "min1" in family or "min=1" in policy else 0,
    }


def result(prewarm_p95: float, prewarm_cost: float) -> dict[str, object]:
    rows = [row("prewarm", "prewarm", prewarm_cost, prewarm_p95), row("keda-min0", "keda-min0", 14.0, 100.0)]
    sweep = [
        row("prewarm@a", "prewarm", prewarm_cost, prewarm_p95),
        row("prewarm@b", "prewarm", 20.0, 10.0),
        row("keda-min0@a", "keda-min0", 14.0, 100.0),
        row("keda-min0@b", "keda-min0", 25.0, 50.0),
        row("keda-min1@a", "keda-min1", 15.0, 90.0),
        row("keda-min1@b", "keda-min1", 14.5, 70.0),
        row("keda-lastweek@a", "keda-lastweek", 14.0, 100.0),
        row("kedastral@a", "kedastral", 14.0, 100.0),
    ]
    return {
        "case": "T",
        "family": "twitter",
        "cold_start": 300,
        "setup": ["s"],
        "rows": rows,
        "sweep": sweep,
        "stem": "t",
        "jobs": [],
        "seconds": 1.0,
    }


def test_targets_met_with_figures() -> None:
    lines = targets(result(prewarm_p95=40.0, prewarm_cost=12.0))
    assert all(line.startswith("MET") for line in lines), lines
    # keda-min0's frontier: 14 GPU-h / 100 s and 25 / 50 s; Prewarm: 12 / 40 s and 20 / 10 s.
    assert (
        lines[4]
        == "MET: p95 at most half of keda-min0's at equal or lower GPU-hours (each point of its frontier)"
    )
    assert "Prewarm's cheapest 12.00 GPU-h (1.200x), stock KEDA's 25.00 GPU-h (2.500x)" in lines[5]


def test_targets_missed_say_where() -> None:
    lines = targets(result(prewarm_p95=80.0, prewarm_cost=14.0))
    expected = "MISSED: Prewarm's frontier dominates keda-min1's: worse at 14.5 GPU-h: 80.0 s vs 70.0 s"
    assert lines[1] == expected
    assert lines[0].startswith("MET")  # keda-min0's 14 GPU-h / 100 s and 25 / 50 s are both beaten
    assert lines[4].endswith("within 14.0 GPU-h Prewarm 80.0 s vs keda-min0 100.0 s")
    assert lines[5].startswith("MISSED: p95 <= 60 s within 1.3x the floor")
    text = render([result(80.0, 14.0)], 60.0, quick=False)
    assert "**Targets met: 3 of 6.**" in text and "MISSED" in text


def test_a_frontier_target_met_only_by_a_tie_says_where() -> None:
    tied = result(prewarm_p95=80.0, prewarm_cost=14.0)
    sweep = tied["sweep"]
    assert isinstance(sweep, list)
    sweep.append(row("prewarm@c", "prewarm", 14.5, 69.97))  # level with keda-min1's 14.5 / 70 s
    lines = targets(tied)
    assert lines[1] == (
        "MET: Prewarm's frontier dominates keda-min1's (by a tie, no more than 0.05 s better, "
        "at 14.5 GPU-h: 70.0 s vs 70.0 s)"
    )
    assert "by a tie" not in lines[0]  # keda-min0's points are beaten outright
    text = render([tied], 60.0, quick=False)
    assert "**Targets met: 4 of 6.** Frontier targets met at some budget only by a tie: 1 (" in text


def test_a_cheapest_point_just_past_the_floor_bound_does_not_read_as_on_it() -> None:
    lines = targets(result(prewarm_p95=40.0, prewarm_cost=13.01))
    assert lines[5].startswith(
        "MISSED: p95 <= 60 s within 1.3x the floor (13.00 GPU-h) where stock KEDA needs more: "
        "Prewarm's cheapest 13.01 GPU-h (1.301x)"
    )


def test_the_floor_line_gives_the_oracles_cheapest_point_and_no_target_counts_it() -> None:
    plain = targets(result(prewarm_p95=80.0, prewarm_cost=14.0))
    assert "oracle" not in plain[5]
    with_oracle = result(prewarm_p95=80.0, prewarm_cost=14.0)
    sweep = with_oracle["sweep"]
    assert isinstance(sweep, list)
    sweep += [row("oracle@90%", "oracle", 11.0, 30.0), row("oracle@120%", "oracle", 9.0, 200.0)]
    lines = targets(with_oracle)
    # its cheapest point at p95 <= 60 s: 11 GPU-h (the 9 GPU-h point waits 200 s)
    assert lines[5].endswith("; perfect foresight's (oracle) 11.00 GPU-h (1.100x)")
    assert [line.split(":")[0] for line in lines] == [line.split(":")[0] for line in plain]
    assert len(lines) == len(plain)  # the oracle is no baseline: no dominance target for it


def test_render_only_reads_the_saved_run(tmp_path: Path) -> None:
    folder = tmp_path / "evaluation"
    folder.mkdir()
    (folder / "raw.json").write_text(
        json.dumps({"results": [result(40.0, 12.0)], "elapsed": 5.0, "quick": True})
    )
    assert main(["--out", str(tmp_path), "--render-only"]) == 0
    assert "Targets met: 6 of 6" in (tmp_path / "evaluation.md").read_text()
    # the frontier plots are redrawn from the saved sweep (the timelines need the runs)
    assert (folder / "t_frontiers.png").read_bytes().startswith(b"\x89PNG")


def test_summary_has_one_line_per_case_with_defaults_and_cheapest_points() -> None:
    text = summary([result(prewarm_p95=40.0, prewarm_cost=12.0)])
    header, rule, line = text.splitlines()
    assert "targets met" in header and "oracle" in header
    assert rule.startswith("|---|")
    cells = [c.strip() for c in line.strip("|").split("|")]
    # targets() meets all 6 here; the floor is 10 GPU-h; no keda-min1 default row.
    assert cells[:3] == ["T", "300 s", "6 of 6"]
    assert cells[3:6] == ["12.0 (1.20x) / 40.0 s", "14.0 (1.40x) / 100.0 s", "-"]
    # Cheapest p95 <= 60 s: Prewarm's (12, 40); stock KEDA's only keda-min0's (25, 50);
    # no oracle frontier.
    assert cells[6] == "1.20x / 2.50x / none"


def test_render_puts_the_summary_under_the_target_count() -> None:
    text = render([result(prewarm_p95=40.0, prewarm_cost=12.0)], 60.0, quick=False)
    assert text.index("Targets met: 6 of 6") < text.index("| T | 300 s | 6 of 6 |") < text.index("## T")


def test_the_runs_entered_warm_are_counted_apart_in_the_headline() -> None:
    warm = {**result(prewarm_p95=80.0, prewarm_cost=14.0), "case": "T, entered warm", "lead_in_s": 1800}
    text = render([result(prewarm_p95=40.0, prewarm_cost=12.0), warm], 60.0, quick=False)
    assert (
        "**Targets met: 6 of 6 on the traces as they start, and 3 of 6 with the traces that have no "
        "history entered warm** (9 of 12 in all)." in text
    )
    assert "| T, entered warm | 300 s | 3 of 6 |" in text


def test_every_case_without_history_is_judged_again_entered_warm() -> None:
    from scaler.sim.evaluate import CASES, LEAD_IN_S

    as_they_start = [case for case in CASES if not case.lead_in_s]
    warm = [case for case in CASES if case.lead_in_s]
    assert [case.file for case in warm] == [case.file for case in as_they_start if not case.warmup_s]
    assert all(case.lead_in_s == LEAD_IN_S >= 600 + 300 + 300 for case in warm)
    assert all(", entered warm (" in case.label for case in warm)


def test_default_workers_one_per_cpu_at_most_one_per_case() -> None:
    assert default_workers(2, 15) == 2
    assert default_workers(64, 15) == 15
    assert default_workers(None, 15) == 2  # cpu_count unknown
    assert default_workers(8, 0) == 1


def test_workers_below_one_is_refused_naming_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--workers", "0", "--render-only"])
    assert exit_.value.code == 2
    assert "argument --workers: expected a whole number >= 1, got '0'" in capsys.readouterr().err


def test_mean_rows_average_each_policys_figures_over_the_loop_phases() -> None:
    first = [
        {"policy": "prewarm", "description": "a", "gpu_hours": 10.0, "scale_ups": 3, "states": {"cold": 4}},
        {"policy": "keda-min0", "description": "b", "gpu_hours": 20.0, "scale_ups": 5, "states": {}},
    ]
    second = [
        {
            "policy": "prewarm",
            "description": "a",
            "gpu_hours": 14.0,
            "scale_ups": 4,
            "states": {"cold": 2, "ready": 2},
        },
        {"policy": "keda-min0", "description": "b", "gpu_hours": 26.0, "scale_ups": 5, "states": {}},
    ]
    prewarm, keda = evaluate.mean_rows([first, second])
    assert prewarm == {
        "policy": "prewarm",
        "description": "a",
        "gpu_hours": 12.0,
        "scale_ups": 3.5,
        "states": {"cold": 3.0, "ready": 1.0},
    }
    assert (keda["gpu_hours"], keda["scale_ups"]) == (23.0, 5.0)
    assert evaluate.mean_rows([first]) == first  # one phase: as it is


def test_the_one_hour_traces_run_at_every_loop_phase() -> None:
    phased = {case.file for case in evaluate.CASES if case.phased}
    assert phased == {
        "azure_llm_2023_conv.csv",
        "azure_llm_2023_code.csv",
        "mooncake_conversation_requests.csv",
    }
    assert sum(case.phased for case in evaluate.CASES) == 6  # as they start and entered warm
    polls = [poll for poll, _ in evaluate.LOOP_PHASES]
    syncs = [sync for _, sync in evaluate.LOOP_PHASES]
    assert polls == [0, 5, 10, 15, 20, 25] and len(set(syncs)) == 6 and all(0 <= s < 15 for s in syncs)
    code = next(case for case in evaluate.CASES if case.phased)
    assert evaluate.case_phases(code) == evaluate.LOOP_PHASES
    assert evaluate.case_phases(code, quick=True) == evaluate.LOOP_PHASES[:2]  # a smoke run
    assert evaluate.case_phases(evaluate.CASES[0]) == ((0, 5),)  # Twitter: the default phase


def test_prewarm_streams_every_second_on_the_one_hour_traces_only() -> None:
    """The one-hour traces (as they start and entered warm) ask Prewarm's stream every
    second, as the server's evaluates; Twitter's week and Functions' day at its polls
    and syncs while it is active (bench_stream_cadence: under 1 % apart there)."""
    for case in evaluate.CASES:
        trace = Trace(name=case.file, counts=np.full(3600, 1.0), bin_s=1.0)
        scenario, _ = evaluate.case_scenario(case, trace, 120, quick=True)
        assert scenario.stream_every_tick is case.phased, case.label


def test_the_report_says_how_the_loop_phases_are_run_only_when_some_case_ran_them() -> None:
    single = result(prewarm_p95=40.0, prewarm_cost=12.0)
    meaned = {**single, "phases": len(evaluate.LOOP_PHASES)}
    assert "Loop phases." not in render([single], 60.0, quick=False)
    text = render([meaned], 60.0, quick=False)
    assert "Loop phases." in text and "KEDA's first poll 0, 5, 10, 15, 20, 25 s in" in text


def from_zero(bound_min0: float, bound_min1: float, prewarm_p95: float = 160.0) -> dict[str, object]:
    """A one-hour trace replayed from zero at a long cold start: every point waits
    minutes, as the first cold start makes it."""
    rows = [row("prewarm", "prewarm", 30.0, prewarm_p95), row("keda-min0", "keda-min0", 28.0, 200.0)]
    sweep = [
        row("prewarm@a", "prewarm", 30.0, prewarm_p95),
        row("prewarm@min=1,b", "prewarm", 32.0, 150.0),
        row("keda-min0@a", "keda-min0", 28.0, 200.0),
        row("keda-min1@a", "keda-min1", 28.0, 170.0),
        row("keda-lastweek@a", "keda-lastweek", 28.0, 200.0),
        row("kedastral@a", "kedastral", 28.0, 200.0),
        row("static@20", "static", 19.0, 0.0),  # Ready before the trace: not bound by it
        row("oracle@100%", "oracle", 20.0, 90.0),  # knows the arrivals ahead: not bound by it
    ]
    bound = {
        "min0": {"gpu_hours": 95.0, "wait_p95_s": bound_min0},
        "min1": {"gpu_hours": 95.0, "wait_p95_s": bound_min1},
    }
    return dict(result(prewarm_p95, 30.0), family="azure", rows=rows, sweep=sweep, first_wake_bound=bound)


def test_a_miss_no_autoscaler_from_zero_could_meet_says_so_with_the_bound() -> None:
    lines = targets(from_zero(bound_min0=158.0, bound_min1=140.0))
    # Half of keda-min0's 200 s is 100 s; even asking maxReplicaCount from the first
    # request waits 140 s (from one replica): out of reach, and said so.
    half = lines[4]
    assert half.startswith("MISSED: p95 at most half of keda-min0's")
    assert half.endswith(
        "; out of reach from zero for any autoscaler that wakes on a request: the first-wake bound "
        "(maxReplicaCount asked from the first request on) waits p95 158.0 s from 0 replicas "
        "and 140.0 s from 1"
    )
    # No Prewarm point at p95 <= 60 s, and none could be.
    assert lines[5].startswith("MISSED: p95 <= 60 s") and "out of reach from zero" in lines[5]
    text = render([from_zero(158.0, 140.0)], 60.0, quick=False)
    assert (
        "Misses out of reach for any autoscaler that starts at 0 or 1 replica and wakes on a request: 2"
        in text
    )
    assert "the first-wake bound (maxReplicaCount asked from the first request on" in text
    assert "p95 158.0 s from 0 replicas, 140.0 s from 1, at 95.0 GPU-h; no policy here waits less" in text


def test_a_miss_the_bound_does_not_explain_says_nothing_of_it() -> None:
    # A bound under half of keda-min0's p95 (and under 60 s): the misses stand as misses.
    lines = targets(from_zero(bound_min0=58.0, bound_min1=40.0))
    assert lines[4].startswith("MISSED") and "out of reach" not in lines[4]
    assert lines[5].startswith("MISSED") and "out of reach" not in lines[5]
    # One of the two bounds under the target is enough: Prewarm's frontier has points at each.
    assert "out of reach" not in targets(from_zero(bound_min0=158.0, bound_min1=90.0))[4]
    # A trace entered warm (or an old raw.json) has no bound.
    assert "out of reach" not in targets(result(prewarm_p95=80.0, prewarm_cost=14.0))[4]


def test_a_point_below_the_bound_is_shown_as_its_premise_failing() -> None:
    # keda-min1 at 170 s under a bound from one replica of 175 s; prewarm's minReplicaCount
    # 1 point at 150 s too. The oracle and static provisioning are not bound by it.
    text = render([from_zero(bound_min0=158.0, bound_min1=175.0)], 60.0, quick=False)
    assert "BELOW IT (the bound's premise fails): prewarm@min=1,b 150.0 s, keda-min1@a 170.0 s" in text
    assert "oracle@100%" not in text.split("BELOW IT")[1].split("\n")[0]


def test_the_first_wake_bound_is_given_where_the_first_cold_start_can_set_the_tail() -> None:
    bounded = [case.label for case in evaluate.CASES if evaluate.bounded_by_first_wake(case)]
    assert bounded == [
        "Azure LLM conversation (1 h, per request)",
        "Azure LLM code (1 h, per request)",
        "Mooncake conversation (1 h, per request)",
    ]


def test_each_short_case_name_is_the_case_it_names() -> None:
    """CASE_NAMES (the benchmarks' --cases) covers every case once, each name on its
    trace, and "-warm" exactly on the cases entered warm."""
    from scaler.sim.evaluate import CASE_NAMES, CASES

    traces = {
        "twitter": "Twitter",
        "functions": "Azure Functions",
        "conv": "Azure LLM conversation",
        "code": "Azure LLM code",
        "mooncake": "Mooncake",
    }
    assert sorted(CASE_NAMES.values()) == list(range(len(CASES)))
    for name, index in CASE_NAMES.items():
        case = CASES[index]
        assert case.label.startswith(traces[name.removesuffix("-warm")]), name
        assert bool(case.lead_in_s) == name.endswith("-warm"), name
