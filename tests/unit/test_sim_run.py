"""End to end on a slice of a bundled trace: every policy runs, the results carry
the promised fields, and the CLI writes results.json, report.md and plots."""

from __future__ import annotations

import inspect
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from scaler.cli import main
from scaler.clock import ManualClock
from scaler.server import Settings
from scaler.signals.cache import DEFAULT_TTL
from scaler.sim.keda import DEFAULT_SCALE_DOWN, DEFAULT_SCALE_UP
from scaler.sim.main import build_scenario
from scaler.sim.policies import PolicySpec
from scaler.sim.report import dominates, level_with, markdown, pareto
from scaler.sim.run import (
    CHEAP_CORNER_FACTORS,
    LONG_HOLD_S,
    LONG_HOLD_THROUGHPUT_FACTORS,
    Scenario,
    _at_min1,
    first_wake_bound_policy,
    keda_queue_policy,
    kedastral_policy,
    led_in_scenario,
    oracle_policy,
    prewarm_policy,
    results,
    simulate,
    standard_policies,
    sweep_policies,
    with_scale_down_window,
)
from scaler.sim.traces import Trace, load_trace, sliced
from scaler.sim.world import ColdStart, ServiceModel, World, WorldConfig

BENCH = Path(__file__).resolve().parents[2] / "bench" / "traces"
REQUIRED = (
    "policy",
    "gpu_hours",
    "floor_gpu_hours",
    "wait_p50_s",
    "wait_p95_s",
    "wait_p99_s",
    "wait_max_s",
    "slo_violation_share",
    "cold_start_waits",
    "flaps",
    "scale_ups",
    "scale_downs",
    "time_at_zero_share",
    "lost_work",
)


def test_every_policy_on_a_trace_slice() -> None:
    trace = sliced(load_trace(BENCH / "azure_llm_2023_code.csv"), 0, 1200)
    scenario, setup = build_scenario(
        trace, concurrency=4, service=None, cold_start="120", slo=60, max_replicas=50, peak_replicas=10
    )
    assert any("tokens" in line for line in setup)
    rows = [results(scenario, simulate(scenario, spec)) for spec in standard_policies(scenario)]
    names = [row["policy"] for row in rows]
    assert names == [
        "prewarm",
        "prewarm-guard",
        "prewarm-noforecast",
        "keda-min0",
        "keda-min1",
        "hpa-gpu75",
        "static-peak",
        "keda-lastweek",
        "kedastral",
    ]
    for row in rows:
        for key in REQUIRED:
            assert key in row, (row["policy"], key)
        assert row["gpu_hours"] >= row["floor_gpu_hours"] > 0, row["policy"]
        assert 0 <= row["wait_p50_s"] <= row["wait_p95_s"] <= row["wait_p99_s"] <= row["wait_max_s"]
        assert row["lost_work"] == 0
    by_name = {row["policy"]: row for row in rows}
    assert by_name["prewarm"]["decision_winners"]  # the production Engine decided
    # the ablation runs the same engine with the forecast off: no forecast was ever made
    assert by_name["prewarm"]["forecast_states"]
    assert not by_name["prewarm-noforecast"]["forecast_states"]
    assert "forecast off" in by_name["prewarm-noforecast"]["description"]
    assert by_name["static-peak"]["scale_ups"] == 0
    assert by_name["keda-min0"]["time_at_zero_share"] > 0
    assert by_name["keda-min1"]["time_at_zero_share"] == 0


def test_prewarm_sweep_holds_one_replica_at_minreplicacount_1() -> None:
    """The sweep's minReplicaCount points are Prewarm's family (one frontier) and run
    under KEDA with a replica kept: no time at zero, unlike the same policy at min 0."""
    trace = sliced(load_trace(BENCH / "azure_llm_2023_code.csv"), 0, 1200)
    scenario, _ = build_scenario(
        trace, concurrency=4, service=None, cold_start="120", slo=60, max_replicas=50, peak_replicas=10
    )
    specs = {spec.name: spec for spec in sweep_policies(scenario)}
    held = [spec for spec in specs.values() if spec.knob == "minReplicaCount"]
    assert [spec.name for spec in held] == [
        "prewarm@min=1,throughput=1x",
        "prewarm@min=1,throughput=1.25x",
        "prewarm@min=1,throughput=2x",
        # keda-min1's other queueLengths: 0.25x, 0.5x, 0.75x, 1.5x and 2x the concurrency
        "prewarm@min=1,ql=1",
        "prewarm@min=1,ql=2",
        "prewarm@min=1,ql=3",
        "prewarm@min=1,ql=6",
        "prewarm@min=1,ql=8",
        # replicaThroughput unset (stock KEDA's ask) at every queueLength
        "prewarm@min=1,no-throughput,ql=1",
        "prewarm@min=1,no-throughput,ql=2",
        "prewarm@min=1,no-throughput,ql=3",
        "prewarm@min=1,no-throughput,ql=4",
        "prewarm@min=1,no-throughput,ql=6",
        "prewarm@min=1,no-throughput,ql=8",
    ]
    # Every queue family sweeps the same queueLengths.
    for family in ("prewarm", "keda-min0", "keda-min1", "keda-lastweek", "kedastral"):
        lengths = [name.split("@ql=")[1] for name in specs if name.startswith(f"{family}@ql=")]
        assert lengths == ["1", "2", "3", "4", "6", "8"], family
    assert all(spec.family == "prewarm" and spec.min_replicas == 1 for spec in held)
    assert all(spec.description.endswith(", min 1") for spec in held)
    at_one = results(scenario, simulate(scenario, specs["prewarm@min=1,throughput=2x"]))
    at_zero = results(scenario, simulate(scenario, specs["prewarm@throughput=2x"]))
    assert at_one["time_at_zero_share"] == 0
    assert at_zero["time_at_zero_share"] > 0


def test_prewarm_without_throughput_asks_what_stock_keda_asks() -> None:
    """The sweep's no-throughput points: with no replicaThroughput Prewarm's queue term
    is stock KEDA's ask, so entered warm (where the push's wake never comes into play)
    it runs the fleet stock KEDA runs, at every queueLength."""
    trace = sliced(load_trace(BENCH / "azure_llm_2023_conv.csv"), 0, 1200)
    scenario, _ = build_scenario(
        trace, concurrency=4, service=None, cold_start="120", slo=60, max_replicas=50, peak_replicas=10
    )
    scenario = led_in_scenario(scenario, 600)
    specs = {spec.name: spec for spec in sweep_policies(scenario)}
    plain = [name for name in specs if "no-throughput" in name and "min=1" not in name]
    assert len(plain) == 6
    for name in plain:
        ql = name.split("ql=")[1]
        ours = results(scenario, simulate(scenario, specs[name]))
        keda = results(scenario, simulate(scenario, specs[f"keda-min0@ql={ql}"]))
        assert ours["gpu_hours"] == pytest.approx(keda["gpu_hours"]), name
        assert ours["wait_p95_s"] == pytest.approx(keda["wait_p95_s"]), name
        assert "replicaThroughput" not in specs[name].description


def test_prewarm_answers_keda_s_polled_calls_from_a_fresh_reading() -> None:
    """With minReplicaCount 1 and no replicaThroughput Prewarm asks what keda-min1 asks.
    It answers an HPA sync (GetMetrics) from a queue reading taken at the sync, as KEDA's
    own scaler reads the queue there, so the two run the same fleet. Answered from the
    shared reading instead (up to the cache's TTL old: here the one its stream took the
    second before), the first scale-up of the conversation trace's first minutes (KEDA's
    poll at 0 s, the HPA's sync at 5 s) waits a sync (docs/decisions.md, "Polled answers
    read the queue afresh")."""
    trace = sliced(load_trace(BENCH / "azure_llm_2023_conv.csv"), 0, 600)
    scenario, _ = build_scenario(
        trace, concurrency=4, service=None, cold_start="300", slo=60, max_replicas=50, peak_replicas=10
    )
    scenario = replace(scenario, loop_phase=(0, 5), stream_every_tick=True)

    def changes(spec: PolicySpec) -> list[tuple[int, int, int]]:
        return simulate(scenario, spec).world.replica_changes

    keda = changes(keda_queue_policy(2.0, 1, 50))
    server = changes(_at_min1(prewarm_policy(2.0, 50, cold_start_s=300.0)))
    shared = changes(_at_min1(prewarm_policy(2.0, 50, cold_start_s=300.0, polled_reading_age=DEFAULT_TTL)))
    assert server == keda
    assert keda[0] == (5, 1, 2)
    assert shared[0][0] > 5
    # The simulator's Prewarm keeps the server's TTL and polled reading age unless told otherwise.
    assert inspect.signature(prewarm_policy).parameters["cache_ttl"].default == Settings().cache_ttl
    assert (
        inspect.signature(prewarm_policy).parameters["polled_reading_age"].default
        == Settings().polled_reading_age
    )


def test_push_trigger_wakes_from_zero_between_polls() -> None:
    """KEDA acts on a pushed `true` at once; stock scalers wait for the next poll.
    Polls at t = 0, 30, 60; the first request arrives at t = 40."""
    counts = [0.0] * 40 + [1.0] * 200
    trace = Trace(name="late", counts=np.asarray(counts), bin_s=1.0)
    cfg = WorldConfig(
        concurrency=4, service=ServiceModel("constant", 2.0, 0.0), cold_start=ColdStart("constant", 60, 60)
    )
    scenario = Scenario(trace, cfg, peak_replicas=2)

    def first_wake(spec: PolicySpec) -> int:
        run = simulate(scenario, spec)
        return next(t for t, before, after in run.world.replica_changes if before == 0 and after > 0)

    pushed = prewarm_policy(4.0, 10, cold_start_s=60.0, replica_throughput=1.0)
    assert pushed.push_s == 1.0
    # The reading the stream asks for is at most the cache's TTL (2 s) old.
    assert 40 < first_wake(pushed) <= 43
    assert first_wake(replace(pushed, push_s=None)) == 60
    assert first_wake(keda_queue_policy(4.0, 0, 10)) == 60


def test_a_pushed_true_restarts_the_cooldown_at_any_replica_count() -> None:
    """KEDA acts on every `true` a stream sends: at zero it wakes the target, above zero
    it restarts the cooldown (RequestScale sets LastActiveTime). One request every
    90 s, 2 s of work, never in flight or waiting at a 30 s poll: polled alone, the
    target goes to zero 300 s after its last active poll and wakes again; pushed, each
    request's `true` keeps it up."""
    counts = np.zeros(4 * 3600)
    counts[17::90] = 1.0
    trace = Trace(name="sparse", counts=counts, bin_s=1.0)
    cfg = WorldConfig(
        concurrency=4, service=ServiceModel("constant", 2.0, 0.0), cold_start=ColdStart("constant", 60, 60)
    )
    scenario = Scenario(trace, cfg, peak_replicas=1)
    pushed = prewarm_policy(4.0, 10, cold_start_s=60.0)
    changes = simulate(scenario, pushed).world.replica_changes
    assert [(before, after) for _, before, after in changes if after == 0 or before == 0][:1] == [(0, 1)]
    assert not any(after == 0 for t, _, after in changes if t < trace.duration_s), changes[:6]
    polled = simulate(scenario, replace(pushed, push_s=None)).world.replica_changes
    assert sum(1 for _, _, after in polled if after == 0) > 10  # to zero and back, again and again


def test_the_stream_is_asked_at_every_tick_only_when_told() -> None:
    """run.simulate asks a pushing trigger at each tick while its last answer was not
    `true`, and at polls and syncs; with Scenario.stream_every_tick (make evaluate's
    one-hour traces) at every tick, as the server's stream evaluates, and a spec's own
    PolicySpec.stream_every_tick (bench/bench_stream_cadence.py) overrides the
    scenario's either way. A queue busy from the first second to the last: active
    throughout."""
    trace = Trace(name="busy", counts=np.full(600, 2.0), bin_s=1.0)
    cfg = WorldConfig(
        concurrency=4, service=ServiceModel("constant", 2.0, 0.0), cold_start=ColdStart("constant", 60, 60)
    )
    scenario = Scenario(trace, cfg, peak_replicas=2)
    spec = prewarm_policy(4.0, 10, cold_start_s=60.0, replica_throughput=1.0)
    assert spec.stream_every_tick is None and scenario.stream_every_tick is False
    simulated = simulate(scenario, spec)
    every_scenario = replace(scenario, stream_every_tick=True)
    for every in (simulate(scenario, replace(spec, stream_every_tick=True)), simulate(every_scenario, spec)):
        assert every.evaluations == every.world.steps
        # the ten busy minutes asked at their polls and syncs alone (6 a minute, not 60);
        # the tail after, inactive, at every tick both ways
        assert every.evaluations - simulated.evaluations > 500
    overridden = simulate(every_scenario, replace(spec, stream_every_tick=False))
    assert overridden.evaluations == simulated.evaluations


def test_loop_phase_moves_keda_and_the_hpa() -> None:
    """Scenario.loop_phase sets when KEDA polls and the HPA syncs: a queue that fills
    from t = 0 is woken at KEDA's first poll at or after its phase."""
    trace = Trace(name="full", counts=np.full(600, 2.0), bin_s=1.0)
    cfg = WorldConfig(
        concurrency=4, service=ServiceModel("constant", 2.0, 0.0), cold_start=ColdStart("constant", 60, 60)
    )
    for phase, first in ((0, 30), (7, 7), (29, 29)):  # at t = 0 nothing has arrived yet
        scenario = Scenario(trace, cfg, peak_replicas=2, loop_phase=(phase, (phase + 5) % 15))
        changes = simulate(scenario, keda_queue_policy(4.0, 0, 10)).world.replica_changes
        assert changes[0][:2] == (first, 0), (phase, changes[:2])
        # the HPA's first sync after the wake sets more than one replica, in its own phase
        grown = next(t for t, before, after in changes if before >= 1 and after > before)
        assert grown % 15 == (phase + 5) % 15, (phase, changes[:3])


def test_a_led_in_run_enters_the_trace_warm_and_scores_the_trace_alone() -> None:
    """Steady load of 2 requests/s, 2 s each, 4 per replica (1 replica's work), 60 s cold
    start. From zero, the first minute's requests wait for the wake; led in, the
    replicas are Ready when the trace starts, and only its 1200 s are billed."""
    trace = Trace(name="steady", counts=np.full(1200, 2.0), bin_s=1.0)
    cfg = WorldConfig(
        concurrency=4, service=ServiceModel("constant", 2.0, 0.0), cold_start=ColdStart("constant", 60, 60)
    )
    cold = Scenario(trace, cfg, peak_replicas=2)
    warm = led_in_scenario(cold, 600)
    assert warm.warmup_s == 600 and warm.trace.duration_s == 1800
    spec = keda_queue_policy(4.0, 0, 10)
    from_zero, entered_warm = results(cold, simulate(cold, spec)), results(warm, simulate(warm, spec))
    assert from_zero["wait_max_s"] >= 60 and from_zero["cold_start_waits"] > 0
    assert entered_warm["wait_max_s"] < 5 and entered_warm["cold_start_waits"] == 0
    assert entered_warm["floor_gpu_hours"] == pytest.approx(from_zero["floor_gpu_hours"], rel=0.01)
    # Billed from where the trace starts: 1200 s of at most the replicas it held.
    assert entered_warm["gpu_hours"] <= 1200 / 3600 * entered_warm["peak_replicas"] + 1e-9


def test_a_led_in_scenario_sizes_replicas_from_the_trace_not_its_repeated_opening() -> None:
    trace = sliced(load_trace(BENCH / "azure_llm_2023_code.csv"), 0, 900)
    scenario, _ = build_scenario(
        trace, concurrency=4, service=None, cold_start="120", slo=60, max_replicas=50, peak_replicas=10
    )
    warm = led_in_scenario(scenario, 300)
    assert warm.world.service.mean(warm.trace) != pytest.approx(scenario.world.service.mean(scenario.trace))
    assert warm.rate_per_replica == scenario.rate_per_replica
    assert warm.peak_replicas == scenario.peak_replicas


def test_kedastral_is_active_from_the_first_poll_and_never_at_zero() -> None:
    """Kedastral's scaler answers IsActive true while its forecast is fresh: KEDA
    wakes the workload at its first poll, before any request, and an idle half hour
    does not scale it to zero; stock KEDA at min 0 waits for work and cools down."""
    counts = [0.0] * 100 + [1.0] * 600 + [0.0] * 1800 + [1.0] * 300
    trace = Trace(name="idle", counts=np.asarray(counts), bin_s=1.0)
    cfg = WorldConfig(
        concurrency=4, service=ServiceModel("constant", 2.0, 0.0), cold_start=ColdStart("constant", 60, 60)
    )
    scenario = Scenario(trace, cfg, peak_replicas=2)
    forecast = simulate(scenario, kedastral_policy(4.0, 0.5, 60.0, 10)).world.replica_changes
    queue = simulate(scenario, keda_queue_policy(4.0, 0, 10)).world.replica_changes
    assert forecast[0][:3] == (0, 0, 1)  # the first poll, before the first request at t = 100
    assert all(after > 0 for _, _, after in forecast)
    assert queue[0][0] >= 100 and any(after == 0 for _, _, after in queue)


def test_a_surge_from_quiet_at_min_1_scales_as_stock_keda_for_one_cold_start() -> None:
    """Ten quiet minutes, then 2 requests/s (8 s each, 4 per replica: 4 replicas busy)
    with one replica kept. For the first cold start (120 s) Prewarm asks what keda-min1
    asks (the plain term); the capacity term alone would ask a few replicas and drain
    the backlog over another cold start."""
    counts = [0.0] * 600 + [2.0] * 900
    trace = Trace(name="surge", counts=np.asarray(counts), bin_s=1.0)
    cfg = WorldConfig(
        concurrency=4, service=ServiceModel("constant", 8.0, 0.0), cold_start=ColdStart("constant", 120, 120)
    )
    scenario = Scenario(trace, cfg, peak_replicas=5)
    prewarm = replace(prewarm_policy(4.0, 50, cold_start_s=120.0, replica_throughput=0.375), min_replicas=1)
    keda = keda_queue_policy(4.0, 1, 50)
    surge = slice(600, 720)
    pods = {
        name: simulate(scenario, spec).world.rec_pods[surge] for name, spec in (("p", prewarm), ("k", keda))
    }
    # KEDA's ask at the 15 s syncs: backlog / 4, grown at most 100 % (or 4 pods) a sync
    assert pods["k"].max() >= 16
    assert pods["p"].max() == pods["k"].max()
    # (the rate's replicas, 2 / 0.375 = 5.3, plus the backlog at Ready drained over the
    # cold start would be under 16)


def test_the_oracle_wakes_a_lead_ahead_and_asks_for_the_minute_it_foresees() -> None:
    """Arrivals of 3/s from t = 300; 8 s each, 4 per replica: one replica carries
    0.5/s at 100 %. The oracle at 100 %, 90 s ahead (a 60 s cold start and a 30 s
    poll), reads at t the busiest minute starting within [t, t + 90]: active from
    t = 151 (the minute [241, 301) holds the first arrival), so KEDA's poll at t = 180
    wakes it and its pods are Ready by t = 240, before the first request; it asks for
    3 / 0.5 = 6 replicas, plus those that drain what waits within a minute."""
    counts = [0.0] * 300 + [3.0] * 600
    trace = Trace(name="step", counts=np.asarray(counts), bin_s=1.0)
    cfg = WorldConfig(
        concurrency=4, service=ServiceModel("constant", 8.0, 0.0), cold_start=ColdStart("constant", 60, 60)
    )
    scenario = Scenario(trace, cfg, peak_replicas=6)
    oracle = oracle_policy(1.0, 0.5, 60.0, 10)  # lead: 60 s + the 30 s poll
    assert oracle.family == "oracle" and oracle.knob == "utilization"
    world = World(trace, cfg)
    (trigger,) = oracle.make_triggers(world, ManualClock())
    assert trigger.read(150)[2] is False and trigger.read(151)[2] is True
    assert trigger.read(300) == pytest.approx((6.0, 1.0, True))
    world.waiting = 30.0  # 30 waiting, drained within 60 s at 0.5/s per replica: + 1
    assert trigger.read(300)[0] == pytest.approx(7.0)
    assert trigger.read(900) == pytest.approx((1.0, 1.0, True))  # the trace is over: the backlog only
    run = simulate(scenario, oracle)
    wake = next(t for t, before, after in run.world.replica_changes if before == 0 and after > 0)
    assert wake == 180
    assert run.world.rec_ready[299] >= 1 and run.world.rec_pods[330] == 6
    assert results(scenario, run)["cold_start_waits"] == 0


def test_frontier_helpers() -> None:
    assert pareto([(10, 5.0), (8, 9.0), (12, 5.0), (20, 1.0), (9, 20.0)]) == [(8, 9.0), (10, 5.0), (20, 1.0)]
    ok, misses = dominates([(8, 9.0), (20, 1.0)], [(10, 5.0)])
    assert not ok and misses == ["at 10.0 GPU-h: 9.0 s vs 5.0 s"]
    assert dominates([(8, 4.0)], [(10, 5.0)]) == (True, [])
    # A tie is level (a worse point is a miss, not level); a clear win is not level.
    assert level_with([(10, 5.0)], [(10, 5.0), (12, 3.0)]) == ["at 10.0 GPU-h: 5.0 s vs 5.0 s"]
    assert level_with([(8, 4.0)], [(10, 5.0)]) == []
    assert level_with([(8, 4.97)], [(10, 5.0)]) == ["at 10.0 GPU-h: 5.0 s vs 5.0 s"]
    assert level_with([(8, 0.0)], [(10, 0.01)]) == []  # no wait to beat
    text = markdown("T", ["setup line"], [], [{"family": "a", "gpu_hours": 1.0, "wait_p95_s": 2.0}])
    assert "- setup line" in text and "a: 1.0 GPU-h / 2.0 s" in text


def test_cli_writes_results_report_and_plots(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    code = main(
        [
            "simulate",
            "--trace",
            str(BENCH / "mooncake_conversation_requests.csv"),
            "--duration",
            "900",
            "--cold-start",
            "uniform:60:180",
            "--policies",
            "prewarm,keda-min0,static-peak",
            "--sweep",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert code == 0
    rows = json.loads((out / "results.json").read_text())
    assert [r["policy"] for r in rows] == ["prewarm", "keda-min0", "static-peak"]
    # The sweep covers the chosen policies' families and the oracle, not every family.
    families = {r["family"] for r in json.loads((out / "sweep.json").read_text())}
    assert families == {"prewarm", "keda-min0", "static", "oracle"}
    report = (out / "report.md").read_text()
    assert "| prewarm |" in report and "Frontiers" in report
    for png in ("timeline.png", "frontiers.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "3 policies + sweep" in capsys.readouterr().out


def test_cli_lead_in_enters_the_trace_warm(tmp_path: Path) -> None:
    def run(*extra: str) -> dict[str, Any]:
        out = tmp_path / ("warm" if extra else "cold")
        argv = ["simulate", "--trace", str(BENCH / "azure_llm_2023_conv.csv"), "--duration", "900"]
        argv += ["--cold-start", "300", "--policies", "keda-min0", "--out", str(out), "--no-progress", *extra]
        assert main(argv) == 0
        assert (out / "timeline.png").read_bytes()[:4] == b"\x89PNG"
        (row,) = json.loads((out / "results.json").read_text())
        row["report"] = (out / "report.md").read_text()
        return row

    cold, warm = run(), run("--lead-in", "900")
    assert "entered warm: simulated from 900 s before the trace starts" in warm["report"]
    # From zero at full load the first requests wait out the 300 s cold start; entered
    # warm, the pods for that load are already there.
    assert cold["wait_max_s"] >= 250 > warm["wait_max_s"]
    assert warm["floor_gpu_hours"] == pytest.approx(cold["floor_gpu_hours"])


def test_cli_stream_every_second_asks_prewarm_every_second_and_says_so(tmp_path: Path) -> None:
    """--stream-every-second evaluates Prewarm's stream every second, as the server's
    does; by default only at polls and syncs while it is active. The report says which."""

    def run(*extra: str) -> dict[str, Any]:
        out = tmp_path / ("every" if extra else "default")
        argv = ["simulate", "--trace", str(BENCH / "azure_llm_2023_conv.csv"), "--duration", "900"]
        argv += ["--cold-start", "120", "--policies", "prewarm", "--out", str(out), "--no-progress"]
        assert main([*argv, "--no-plots", *extra]) == 0
        (row,) = json.loads((out / "results.json").read_text())
        row["report"] = (out / "report.md").read_text()
        return row

    default, every = run(), run("--stream-every-second")
    assert "Prewarm's stream evaluated every second, as the server's is" in every["report"]
    assert "at KEDA's polls and the HPA's syncs while its last answer is true" in default["report"]
    # Busy from the start: active for most of the 15 minutes, asked each second only so.
    assert every["evaluations"] > default["evaluations"] + 600


def test_cli_rejects_a_bad_trace_and_an_unknown_policy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp_s,count\n0,1\n60,x\n")
    assert main(["simulate", "--trace", str(bad), "--out", str(tmp_path)]) == 2
    assert "bad.csv:3: count 'x' is not a number" in capsys.readouterr().err
    trace = str(BENCH / "azure_llm_2023_code_per_second.csv")
    assert main(["simulate", "--trace", trace, "--policies", "magic", "--out", str(tmp_path)]) == 2
    assert "unknown policy magic" in capsys.readouterr().err


def test_prewarm_forecasts_through_the_engine_after_a_day_of_history() -> None:
    """A daily pattern with hourly bursts: the forecaster (cold for its first day,
    then until it has scored 6 h of its own forecasts) takes part in the decision
    through the production Engine once it is ready."""
    import numpy as np

    from scaler.sim.run import Scenario, prewarm_policy
    from scaler.sim.traces import Trace
    from scaler.sim.world import ColdStart, ServiceModel, WorldConfig

    t = np.arange(32 * 3600)
    rate = 2.0 + 1.5 * np.sin(2 * np.pi * t / 86400)
    rate[(t % 3600) < 600] += 3.0  # a burst at the top of every hour
    trace = Trace("daily", counts=rate, bin_s=1.0)
    cfg = WorldConfig(
        concurrency=4, service=ServiceModel("constant", 2.0), cold_start=ColdStart("constant", 300)
    )
    scenario = Scenario(trace, cfg, peak_replicas=10, warmup_s=86400)
    spec = prewarm_policy(4.0, 100, cold_start_s=300, replica_throughput=1.5)
    row = results(scenario, simulate(scenario, spec))
    states = row["forecast_states"]
    assert states.get("cold", 0) > 0  # its first day, then until it has scored its own forecasts
    # Then it is judged against the naive forecast, and used only when it beats it.
    # (While gated, a deployment with replicaThroughput keeps its recurring-peak floor: "gated (used)".)
    judged = ("gated", "gated (used)", "ready (used)")
    assert sum(states.get(state, 0) for state in judged) > 0, states
    assert 0 < row["scored_share"] < 0.4  # only the 8 h after the day of history count


def test_arrival_and_cold_start_queries_read_the_simulation_not_prometheus() -> None:
    import numpy as np

    from scaler.clock import ManualClock
    from scaler.sim.policies import PrewarmTrigger, prewarm_metadata
    from scaler.sim.traces import Trace
    from scaler.sim.world import World, WorldConfig

    world = World(Trace("t", counts=np.full(600, 3.0), bin_s=1.0), WorldConfig())
    clock = ManualClock(start=0.0, wall_offset=1_000_000.0)
    metadata = prewarm_metadata(4.0) | {
        "arrivalQuery": "sum(rate(requests_total[1m]))",
        "coldStartQuery": "avg(pod_cold_start_seconds)",
        "prometheusServerAddress": "http://prometheus.invalid:9090",
    }
    trigger = PrewarmTrigger(world, clock, metadata)
    for t in range(200):
        clock.now = float(t)
        if t % 15 == 0:
            trigger.read(t)
        world.step(t)
    clock.now = 200.0
    evaluation = trigger.engine.evaluate_config_sync(trigger.ref, trigger.cfg)
    reads = {read.name: read for read in evaluation.reads}
    assert reads["arrival"].error is None and reads["arrival"].value.rate == 3.0
    assert evaluation.forecast is not None and evaluation.forecast.cold_start == 300.0
    source = trigger.engine.sources.arrival_source(trigger.cfg)
    history = source.history(1_000_000.0, 1_000_400.0, 60.0)  # type: ignore[union-attr]
    assert [wall for wall, _ in history] == [1_000_060.0, 1_000_120.0, 1_000_180.0]  # the past only


def test_a_shorter_scale_down_window_reaches_the_hpa_and_releases_pods_sooner() -> None:
    trace = sliced(load_trace(BENCH / "mooncake_conversation_requests.csv"), 0, 1800)
    scenario, _ = build_scenario(
        trace, concurrency=4, service=None, cold_start="120", slo=60, max_replicas=50, peak_replicas=10
    )
    stock = keda_queue_policy(4, 0, 50)
    short = with_scale_down_window(stock, 60)
    assert stock.behavior is None  # KEDA's default: no behavior, the HPA's legacy rules
    # Setting the window sets a behavior, whose other rules Kubernetes defaults.
    assert short.behavior is not None
    assert short.behavior.scale_down.stabilization_s == 60
    assert short.behavior.scale_down.policies == DEFAULT_SCALE_DOWN.policies
    assert short.behavior.scale_up == DEFAULT_SCALE_UP
    assert short.name == stock.name and short.description.endswith("; HPA scale-down window 60 s")
    held, released = (results(scenario, simulate(scenario, spec)) for spec in (stock, short))
    assert released["gpu_hours"] < held["gpu_hours"]
    assert released["scale_downs"] > held["scale_downs"]
    static = next(spec for spec in standard_policies(scenario) if spec.static is not None)
    assert with_scale_down_window(static, 60) is static


def test_cli_scale_down_window(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trace = str(BENCH / "mooncake_conversation_requests.csv")
    common = ["simulate", "--trace", trace, "--duration", "600", "--no-plots", "--no-progress"]
    out = tmp_path / "out"
    assert (
        main([*common, "--policies", "prewarm,static-peak", "--scale-down-window", "60", "--out", str(out)])
        == 0
    )
    rows = json.loads((out / "results.json").read_text())
    assert rows[0]["description"].endswith("HPA scale-down window 60 s")
    assert "window" not in rows[1]["description"]  # static provisioning has no HPA
    report = (out / "report.md").read_text()
    assert "behavior: scale-down window 60 s (--scale-down-window)" in report
    assert "default behavior" not in report
    capsys.readouterr()
    jobs = ["--scale-down-window", "60", "--jobs", "--out", str(tmp_path / "x")]
    assert main([*common, *jobs]) == 2
    assert "--scale-down-window: not with --jobs (it compares KEDA's ScaledJob" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flag", "value", "expected"),
    [
        ("--scale-down-window", "3601", "a whole number 0..3600"),
        ("--concurrency", "0", "a whole number >= 1"),
        ("--peak-replicas", "0", "a whole number >= 1"),
        ("--max-replicas", "0", "a whole number >= 1"),
        ("--duration", "0", "a whole number >= 1"),
        ("--start", "-1", "a whole number >= 0"),
        ("--concurrency", "2.5", "a whole number >= 1"),
        ("--slo", "nan", "a number > 0"),
        ("--rate-scale", "inf", "a number > 0"),
        ("--queue-length", "0", "a number > 0"),
        ("--gpu-price", "-1", "a number >= 0"),
    ],
)
def test_cli_numbers_out_of_range_are_refused_naming_the_flag(
    flag: str, value: str, expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each was silently replaced by its default (0 is falsy) or ran (nan, inf) before."""
    with pytest.raises(SystemExit) as exit_info:
        main(["simulate", "--trace", "t.csv", flag, value])
    assert exit_info.value.code == 2
    assert f"argument {flag}: expected {expected}, got {value!r}" in capsys.readouterr().err


def test_flags_one_mode_does_not_read_are_refused_not_ignored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trace = str(BENCH / "mooncake_conversation_requests.csv")
    out = ["--out", str(tmp_path / "x"), "--no-plots", "--no-progress"]
    for argv, message in (
        (
            ["--scaledobject", "so.yaml", "--max-replicas", "10", "--sweep", "--scale-down-window", "0"],
            "--max-replicas, --sweep, --scale-down-window: not with --scaledobject (a what-if takes "
            "maxReplicaCount, queueLength and the HPA's behavior from the ScaledObject",
        ),
        (
            ["--jobs", "--sweep", "--policies", "prewarm"],
            "--policies, --sweep: not with --jobs (it compares KEDA's ScaledJob strategies",
        ),
        (["--jobs", "--lead-in", "60"], "--lead-in: not with --jobs"),
        (["--jobs", "--stream-every-second"], "--stream-every-second: not with --jobs"),
        (["--scaledobject", "so.yaml", "--lead-in", "60"], "--lead-in: not with --scaledobject"),
        (["--lead-in", "86400"], "lead-in must be 1 to 3"),
        (
            ["--gpu-price", "3", "--since", "2d"],
            "--since, --gpu-price: only with --scaledobject (the what-if on your own ScaledObject)",
        ),
    ):
        assert main(["simulate", "--trace", trace, *argv, *out]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_cli_jobs_warmup_scores_only_what_follows(tmp_path: Path) -> None:
    """`simulate --jobs --warmup N` says the first N s are not scored or billed, and
    they are not: fewer messages are scored and fewer GPU-hours billed than without."""
    trace = str(BENCH / "mooncake_conversation_requests.csv")
    common = ["simulate", "--trace", trace, "--duration", "1200", "--no-plots", "--no-progress", "--jobs"]
    assert main([*common, "--out", str(tmp_path / "all")]) == 0
    assert main([*common, "--warmup", "600", "--out", str(tmp_path / "warm")]) == 0
    every = json.loads((tmp_path / "all" / "jobs.json").read_text())
    warm = json.loads((tmp_path / "warm" / "jobs.json").read_text())
    assert "the first 600 s are history" in (tmp_path / "warm" / "report.md").read_text()
    for full, scored in zip(every, warm, strict=True):
        assert 0 < scored["messages"] < full["messages"]
        assert scored["gpu_hours"] < full["gpu_hours"]


def test_the_hold_keeps_a_bursts_replicas_through_gaps_shorter_than_a_cold_start() -> None:
    """Two-minute bursts of 4 requests/s (8 s each, 4 per replica: 8 replicas busy)
    every nine minutes over a trickle (one request a minute), at a 600 s cold start:
    the gaps (7 min) outlast the HPA's 5-minute window but not a cold start. Without
    the hold (holdSeconds 0) the pool falls to one replica in every gap and the next
    burst waits on a cold start; with it the pool stays and serves the burst (measured:
    p95 94 s against 533 s, 47 GPU-h against 178). (The
    trickle keeps the workload active; a gap with nothing at all would still scale
    to zero after KEDA's cooldownPeriod: the hold keeps replicas, not activity.)"""
    gap = [1.0 if i % 60 == 0 else 0.0 for i in range(420)]
    counts = (gap + [4.0] * 120) * 30  # the first burst (a wake from zero) under 5 % of it
    trace = Trace(name="bursts", counts=np.asarray(counts), bin_s=1.0)
    cfg = WorldConfig(
        concurrency=4, service=ServiceModel("constant", 8.0, 0.0), cold_start=ColdStart("constant", 600, 600)
    )
    scenario = Scenario(trace, cfg, peak_replicas=10)
    runs = {
        hold: results(
            scenario,
            simulate(
                scenario, prewarm_policy(4.0, 50, cold_start_s=600.0, replica_throughput=0.375, hold_s=hold)
            ),
        )
        for hold in (None, 0.0)
    }
    held, off = runs[None], runs[0.0]
    assert held["time_at_zero_share"] < 0.01 and off["time_at_zero_share"] < 0.01  # the first wake only
    assert held["wait_p95_s"] < off["wait_p95_s"] / 2
    assert held["cold_start_waits"] < off["cold_start_waits"] / 2
    # and cheaper: without the hold each burst starts pods that are Ready only after it
    assert held["gpu_hours"] < off["gpu_hours"]


def test_the_first_wake_bound_asks_the_most_from_the_first_request_and_none_waits_less() -> None:
    """Nothing for 20 s, then 3/s for 900 s (8 s each, 4 per replica, 120 s cold start).
    The bound asks for maxReplicaCount from t = 20, pushed at once, so its first pod is
    Ready at 140: every request before that waits for it, and the 5 % that arrived
    first (the first 45 s) wait at least 75 s. No autoscaler starting at the same
    replicas waits less, however eager."""
    counts = [0.0] * 20 + [3.0] * 900
    trace = Trace(name="wake", counts=np.asarray(counts), bin_s=1.0)
    cfg = WorldConfig(
        concurrency=4, service=ServiceModel("constant", 8.0, 0.0), cold_start=ColdStart("constant", 120, 120)
    )
    scenario = Scenario(trace, cfg, peak_replicas=6)
    bound = first_wake_bound_policy(50, 0)
    assert bound.family == "first-wake-bound" and bound.push_s
    (trigger,) = bound.make_triggers(World(trace, cfg), ManualClock())
    assert trigger.read(19) == (0.0, 1.0, False) and trigger.read(20) == (50.0, 1.0, True)
    run = simulate(scenario, bound)
    assert run.world.replica_changes[0] == (20, 0, 1)  # woken the second the first request came
    assert run.world.rec_pods.max() == 50 and run.world.rec_ready[139] == 0 and run.world.rec_ready[140] >= 1
    least = results(scenario, run)["wait_p95_s"]
    assert least >= 75.0
    from_one = results(scenario, simulate(scenario, first_wake_bound_policy(50, 1)))["wait_p95_s"]
    assert from_one <= least
    for spec, floor in (
        (keda_queue_policy(1.0, 0, 50), least),
        (keda_queue_policy(4.0, 0, 50), least),
        (prewarm_policy(1.0, 50, cold_start_s=120.0, replica_throughput=0.375), least),
        (keda_queue_policy(1.0, 1, 50), from_one),
        (replace(prewarm_policy(1.0, 50, cold_start_s=120.0), min_replicas=1), from_one),
    ):
        assert results(scenario, simulate(scenario, spec))["wait_p95_s"] >= floor - 1e-9, spec.name


def test_prewarm_sweep_raises_queuelength_and_replicathroughput_together_at_its_cheap_corner() -> None:
    """The cheap corner: queueLength and replicaThroughput each at CHEAP_CORNER_FACTORS,
    as the metadata the engine parses; these points are Prewarm's own family, and are
    not counted among the queueLengths every queue family sweeps alike."""
    from scaler.sim.policies import PrewarmTrigger

    trace = sliced(load_trace(BENCH / "azure_llm_2023_code.csv"), 0, 600)
    scenario, _ = build_scenario(
        trace, concurrency=4, service=None, cold_start="120", slo=60, max_replicas=50, peak_replicas=10
    )
    specs = {spec.name: spec for spec in sweep_policies(scenario)}
    corner = {name: spec for name, spec in specs.items() if name.startswith("prewarm@corner,")}
    expected = {
        f"prewarm@corner,ql={4 * q:g},throughput={f:g}x": (4 * q, scenario.rate_per_replica * f)
        for q in CHEAP_CORNER_FACTORS
        for f in CHEAP_CORNER_FACTORS
    }
    assert list(corner) == list(expected) and CHEAP_CORNER_FACTORS == (1.5, 2.0)
    for name, (length, throughput) in expected.items():
        (trigger,) = corner[name].make_triggers(scenario.world, ManualClock())
        assert isinstance(trigger, PrewarmTrigger) and corner[name].family == "prewarm"
        assert trigger.cfg.queue_length == length
        assert trigger.cfg.forecast.replica_throughput == pytest.approx(throughput)


def test_prewarm_sweep_holds_bursts_for_half_an_hour_at_its_long_hold_points() -> None:
    """The sweep's long-hold points are Prewarm's own family with holdSeconds 1800 in
    the metadata the engine parses. On the bursty code trace entered warm (as the
    evaluation runs it), holding a burst's rate for half an hour keeps replicas through
    the lulls between bursts that a hold of one cold start gives back, and the tail is
    shorter; the default (holdSeconds unset) holds these bursts too, since they come
    back (policy.recurring_hold_window)."""
    trace = load_trace(BENCH / "azure_llm_2023_code.csv")
    scenario, _ = build_scenario(
        trace, concurrency=4, service=None, cold_start="120", slo=60, max_replicas=100, peak_replicas=20
    )
    scenario = led_in_scenario(scenario, 1800)
    specs = {spec.name: spec for spec in sweep_policies(scenario)}
    held = [spec for spec in specs.values() if spec.knob == "holdSeconds" and spec.knob_value == LONG_HOLD_S]
    assert [spec.name for spec in held] == [
        f"prewarm@hold=1800s,throughput={factor:g}x" for factor in LONG_HOLD_THROUGHPUT_FACTORS
    ]
    assert all(spec.family == "prewarm" and "holdSeconds 1800" in spec.description for spec in held)
    long_hold = results(scenario, simulate(scenario, specs["prewarm@hold=1800s,throughput=1x"]))
    default_spec = standard_policies(scenario)[0]
    assert default_spec.name == "prewarm"
    default = results(scenario, simulate(scenario, default_spec))
    lead = scenario.world.cold_start.typical_s
    one_cold_start = prewarm_policy(
        4, 100, cold_start_s=lead, replica_throughput=scenario.rate_per_replica, hold_s=lead
    )
    short = results(scenario, simulate(scenario, one_cold_start))
    assert long_hold["wait_p99_s"] < short["wait_p99_s"]
    assert default["wait_p99_s"] < short["wait_p99_s"]
    assert default["gpu_hours"] <= short["gpu_hours"] * 1.02  # this phase: +1.3 %
