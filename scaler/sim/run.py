"""Run policies over a trace: the control loop (KEDA polls, HPA syncs) around
the world's one-second steps, and the results each policy is judged by."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from scaler.clock import ManualClock
from scaler.forecast.model import Tuning
from scaler.signals.cache import DEFAULT_TTL, POLLED_READING_AGE
from scaler.sim.keda import Behavior, Hpa, ScaledObjectLoop
from scaler.sim.policies import (
    STREAM_INTERVAL_S,
    TARGET_UTILIZATION,
    FirstWakeTrigger,
    ForesightTrigger,
    GpuUtilizationTrigger,
    KedastralTrigger,
    LastWeekTrigger,
    PolicySpec,
    PrewarmTrigger,
    QueueLengthTrigger,
    Trigger,
    prewarm_metadata,
)
from scaler.sim.traces import Trace, led_in
from scaler.sim.world import World, WorldConfig

# KEDA and the HPA are not in phase in a real cluster: by default the HPA syncs 5 s after
# KEDA's poll, and KEDA polls at t = 0 (Scenario.loop_phase picks others).
HPA_PHASE_S = 5
FLAP_WINDOW_S = 300.0
# After a collection gap, arrivals are not scored for this long (the policies
# saw a fake idle period and are still recovering from it).
GAP_MASK_AFTER_S = 1800.0
WAIT_SAMPLES = 400_000
# queueLength in the sweeps, as multiples of the per-replica concurrency, for every
# queue policy alike (0.25x: the expensive end, where Prewarm's own sweep reaches with
# replicaThroughput down to 0.25x; docs/decisions.md).
QUEUE_LENGTH_FACTORS = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0)
# replicaThroughput in Prewarm's sweep, as multiples of one replica's rate at 75 %
# (1x is the default, its own point).
THROUGHPUT_FACTORS = (0.25, 0.33, 0.4, 0.5, 0.6, 0.75, 1.25, 1.5, 2.0)
# holdSeconds for bursty traffic: a burst's rate held for half an hour, at these
# replicaThroughput factors (docs/forecast.md, "Bursts that come back"). 0.2x was added
# after a first run with 0.33x to 1x: the baselines' queueLength 0.25x points reached
# p95 0.1 to 0.3 s at 75 GPU-h on the code trace at 120 s, beyond Prewarm's frontier
# (docs/decisions.md).
LONG_HOLD_S = 1800.0
LONG_HOLD_THROUGHPUT_FACTORS = (0.2, 0.33, 0.5, 0.75, 1.0)
# The cheap corner: queueLength and replicaThroughput raised together, each at these
# multiples, as a user who trades waits for GPU-hours turns both. Added on 5 December
# 2026 after measuring them: the sweep's cheap end had each knob raised alone
# (docs/decisions.md, "The sweep's cheap corner").
CHEAP_CORNER_FACTORS = (1.5, 2.0)


@dataclass
class Scenario:
    """What every policy in a run shares."""

    trace: Trace
    world: WorldConfig
    slo_s: float = 60.0
    max_replicas: int = 100
    peak_replicas: int = 0  # replicas that carry the trace's peak at the target utilisation
    # Seconds at the start that are simulated (history for the forecasters) but not
    # scored or billed.
    warmup_s: int = 0
    # Pods Ready at t = 0 (a slice of a service already running), and KEDA's last
    # active poll at t = 0 (it was active before the slice).
    initial_replicas: int = 0
    wall_start: float = 0.0  # the Unix time of t = 0 (the forecast reads the time of day from it)
    # The mean service time one replica's rate is sized from, when pinned: a led-in
    # trace repeats its opening, and the policies keep the trace's own figure.
    service_mean_s: float | None = None
    # (KEDA's poll, the HPA's sync) offsets in seconds: when each loop runs relative to
    # the trace (a real cluster's loops started whenever the objects were created).
    loop_phase: tuple[int, int] = (0, HPA_PHASE_S)
    # Push triggers' streams evaluated at every tick throughout, as the server's stream
    # evaluates every second: the simulated Prewarm is then the server's to the tick.
    # False: at every tick only while their last answer was not `true` (when a `true`
    # can act), else at polls and syncs only: several times faster on a week of busy
    # traffic, where bench/bench_stream_cadence.py measures what that changes (under 1 %).
    stream_every_tick: bool = False

    @property
    def rate_per_replica(self) -> float:
        """Requests per second one replica carries at the target utilisation."""
        mean = self.service_mean_s or self.world.service.mean(self.trace)
        return self.world.concurrency / mean * TARGET_UTILIZATION


def led_in_scenario(scenario: Scenario, seconds: int) -> Scenario:
    """The scenario simulated from `seconds` before its trace starts, over the
    trace's opening played backwards (traces.led_in), and scored and billed from
    where the trace starts: every policy enters the trace with the fleet its own
    decisions hold for that load, not from zero at full load."""
    return replace(
        scenario,
        trace=led_in(scenario.trace, seconds),
        warmup_s=scenario.warmup_s + seconds,
        service_mean_s=scenario.service_mean_s or scenario.world.service.mean(scenario.trace),
    )


@dataclass
class PolicyRun:
    spec: PolicySpec
    world: World
    triggers: list[Trigger]
    evaluations: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def simulate(
    scenario: Scenario, spec: PolicySpec, progress: Callable[[int], object] | None = None
) -> PolicyRun:
    """One policy over the whole trace (plus the drain tail)."""
    world = World(scenario.trace, scenario.world)
    clock = ManualClock(start=0.0, wall_offset=scenario.wall_start)
    triggers = spec.make_triggers(world, clock)
    run = PolicyRun(spec, world, triggers)
    if spec.static is not None:
        # Provisioned before the trace starts: Ready at t = 0, never changed.
        world.set_replicas(spec.static, -math.ceil(scenario.world.cold_start.typical_s) - 1)
        world.replica_changes.clear()
        _run_plain(world, progress)
        return run
    start = max(spec.min_replicas, min(scenario.initial_replicas, spec.max_replicas))
    if start:
        world.set_replicas(start, -math.ceil(scenario.world.cold_start.typical_s) - 1)
        world.replica_changes.clear()
    keda = ScaledObjectLoop(min_replicas=spec.min_replicas, cooldown_s=spec.cooldown_s)
    if scenario.initial_replicas:
        keda.last_active = 0.0
    hpa = Hpa(max(1, spec.min_replicas), spec.max_replicas, spec.behavior, metric_type=spec.metric_type)
    polling = int(spec.polling_s)
    sync = max(1, int(spec.hpa_sync_s))
    poll_phase, sync_phase = scenario.loop_phase[0] % polling, scenario.loop_phase[1] % sync
    push = max(1, round(spec.push_s)) if spec.push_s else 0
    # What a push trigger's stream last sent. It sends changes only, and KEDA acts on
    # a `true` (waking a target at zero, and at any count restarting the cooldown) and
    # ignores a `false`. The server's stream evaluates every second throughout, and so
    # does this one with every_tick (the scenario's or the spec's); without it, between
    # polls it is asked while its last answer was not `true`, when a `true` can come
    # (bench_stream_cadence measures what that changes: docs/decisions.md, Simulator).
    every_tick = scenario.stream_every_tick if spec.stream_every_tick is None else spec.stream_every_tick
    stream_active = False
    chunk = 3600
    for t in range(world.steps):
        poll = t % polling == poll_phase
        syncing = t % sync == sync_phase
        pushing = bool(push) and not poll and (every_tick or not stream_active) and t % push == 0
        if poll or syncing or pushing:
            clock.now = float(t)
            # A tick that is a poll or a sync is KEDA asking (IsActive, GetMetrics),
            # answered as the server answers those; one that is only the stream's is
            # a stream tick (Engine.answer, polled).
            polled = poll or syncing
            readings = [trigger.read(t, polled) for trigger in triggers]
            run.evaluations += 1
            if push:
                active_now = any(active for _, _, active in readings)
                if active_now and not stream_active:
                    world.set_replicas(keda.poll(t, world.pods, True), t)
                stream_active = active_now
            if poll:
                current = world.pods
                wanted = keda.poll(t, current, any(active for _, _, active in readings))
                world.set_replicas(wanted, t)
            if syncing and world.pods > 0:
                current = world.pods
                metrics = [(value, target) for value, target, _ in readings]
                wanted = hpa.sync(t, current, metrics, ready=world.ready)
                world.set_replicas(wanted, t)
        world.step(t)
        if progress is not None and t % chunk == chunk - 1:
            progress(chunk)
    return run


def _run_plain(world: World, progress: Callable[[int], object] | None) -> None:
    chunk = 3600
    for t in range(world.steps):
        world.step(t)
        if progress is not None and t % chunk == chunk - 1:
            progress(chunk)


# --- the policies -------------------------------------------------------------------------


def standard_policies(scenario: Scenario, queue_length: float | None = None) -> list[PolicySpec]:
    """Prewarm's defaults and the baselines, as users run them."""
    c = scenario.world.concurrency
    ql = queue_length if queue_length is not None else float(c)
    rate = scenario.rate_per_replica
    lead = scenario.world.cold_start.typical_s
    top = scenario.max_replicas
    peak = max(1, scenario.peak_replicas)
    return [
        prewarm_policy(ql, top, cold_start_s=lead, replica_throughput=rate),
        prewarm_policy(ql, top, gpu_guard=True, cold_start_s=lead, replica_throughput=rate),
        prewarm_policy(ql, top, cold_start_s=lead, replica_throughput=rate, forecast_off=True),
        keda_queue_policy(ql, 0, top),
        keda_queue_policy(ql, 1, top),
        gpu_hpa_policy(75.0, top),
        static_policy(peak),
        last_week_policy(ql, rate, top),
        kedastral_policy(ql, rate, lead, top),
    ]


def prewarm_policy(
    queue_length: float,
    top: int,
    gpu_guard: bool = False,
    *,
    cold_start_s: float | None = None,
    replica_throughput: float | None = None,
    quantile: float | None = None,
    drain_s: float | None = None,
    hold_s: float | None = None,
    forecast_off: bool = False,
    forecast_tuning: Tuning | None = None,
    cache_ttl: float = DEFAULT_TTL,
    polled_reading_age: float = POLLED_READING_AGE,
) -> PolicySpec:
    metadata = prewarm_metadata(
        queue_length, gpu_guard, cold_start_s, replica_throughput, quantile, drain_s, hold_s
    )
    name = "prewarm-guard" if gpu_guard else "prewarm"
    if forecast_off:
        # The ablation: what the forecast buys (the capacity-aware queue term stays).
        metadata["forecast"] = "off"
        name += "-noforecast"
    extras = [f"queueLength {queue_length:g}"]
    if cold_start_s is not None:
        extras.append(f"coldStartSeconds {metadata['coldStartSeconds']}")
    if replica_throughput is not None:
        extras.append(f"replicaThroughput {replica_throughput:.3g}/s")
    if quantile is not None:
        extras.append(f"forecastQuantile {quantile:g}")
    if drain_s is not None:
        extras.append(f"drainSeconds {metadata['drainSeconds']}")
    if hold_s is not None:
        extras.append(f"holdSeconds {metadata['holdSeconds']}")
    if gpu_guard:
        extras.append("GPU guard")
    forecast = "forecast off" if forecast_off else "forecast on by default"
    return PolicySpec(
        name=name,
        description=f"Prewarm (the production Engine, {forecast}) as an external-push "
        f"trigger, {', '.join(extras)}, min 0",
        make_triggers=lambda world, clock: [
            PrewarmTrigger(
                world,
                clock,
                metadata,
                forecast_tuning=forecast_tuning,
                cache_ttl=cache_ttl,
                polled_reading_age=polled_reading_age,
            )
        ],
        max_replicas=top,
        push_s=STREAM_INTERVAL_S,
        knob="forecastQuantile" if quantile is not None else "queueLength",
        knob_value=quantile if quantile is not None else queue_length,
        family=name,
    )


def keda_queue_policy(queue_length: float, minimum: int, top: int) -> PolicySpec:
    return PolicySpec(
        name=f"keda-min{minimum}",
        description=f"stock KEDA queue scaling, queueLength {queue_length:g}, activation on backlog, "
        f"minReplicaCount {minimum}",
        make_triggers=lambda world, clock: [QueueLengthTrigger(world, queue_length)],
        min_replicas=minimum,
        max_replicas=top,
        knob="queueLength",
        knob_value=queue_length,
        family=f"keda-min{minimum}",
    )


def gpu_hpa_policy(target_percent: float, top: int) -> PolicySpec:
    return PolicySpec(
        name="hpa-gpu75" if target_percent == 75 else f"hpa-gpu{target_percent:g}",
        description=f"HPA on GPU utilisation, target {target_percent:g} % per replica, min 1",
        make_triggers=lambda world, clock: [GpuUtilizationTrigger(world, target_percent)],
        min_replicas=1,
        max_replicas=top,
        knob="gpuTarget%",
        knob_value=target_percent,
        family="hpa-gpu",
    )


def static_policy(replicas: int) -> PolicySpec:
    return PolicySpec(
        name="static-peak",
        description=f"static provisioning for the peak: {replicas} replicas",
        make_triggers=lambda world, clock: [],
        static=replicas,
        knob="replicas",
        knob_value=replicas,
        family="static",
    )


def last_week_policy(queue_length: float, rate: float, top: int) -> PolicySpec:
    return PolicySpec(
        name="keda-lastweek",
        description=f"KEDA queue trigger (queueLength {queue_length:g}) + Prometheus trigger on "
        f"last week's rate (offset 6d23h30m, threshold {rate:.3g}/s per replica), min 0",
        make_triggers=lambda world, clock: [
            QueueLengthTrigger(world, queue_length),
            LastWeekTrigger(world, rate),
        ],
        max_replicas=top,
        knob="queueLength",
        knob_value=queue_length,
        family="keda-lastweek",
    )


def kedastral_policy(queue_length: float, rate: float, lead_s: float, top: int) -> PolicySpec:
    return PolicySpec(
        name="kedastral",
        description=f"KEDA queue trigger (queueLength {queue_length:g}) + a Kedastral-like forecast "
        f"(max predicted replicas over {lead_s:g} s; active while its forecast is fresh, as Kedastral's "
        "scaler answers, so never at zero), min 0",
        make_triggers=lambda world, clock: [
            QueueLengthTrigger(world, queue_length),
            KedastralTrigger(world, rate, lead_s),
        ],
        max_replicas=top,
        knob="queueLength",
        knob_value=queue_length,
        family="kedastral",
    )


def oracle_policy(utilization: float, rate_at_full: float, cold_start_s: float, top: int) -> PolicySpec:
    """The perfect-foresight reference (ForesightTrigger): one replica carries
    `rate_at_full` requests/s at 100 % utilisation; it asks for the replicas that
    carry, at `utilization`, the busiest minute up to a cold start and a polling
    interval ahead (an ask acts at the next poll or sync; its pods are Ready a cold
    start later) plus the backlog drained within a minute."""
    lead_s = cold_start_s + PolicySpec.polling_s  # KEDA's default pollingInterval, as it runs
    return PolicySpec(
        name="oracle",
        description=f"a reference, not a baseline: knows the arrivals ahead and asks for the replicas "
        f"that carry the busiest minute within {lead_s:g} s (a cold start and a polling interval) plus "
        f"the messages waiting drained within a minute, at {utilization:.0%} utilisation; min 0",
        make_triggers=lambda world, clock: [ForesightTrigger(world, rate_at_full * utilization, lead_s)],
        max_replicas=top,
        knob="utilization",
        knob_value=utilization,
        family="oracle",
    )


ORACLE_UTILIZATIONS = (0.8, 0.9, 1.0, 1.1, 1.2)


def first_wake_bound_policy(top: int, min_replicas: int) -> PolicySpec:
    """The first-wake bound (FirstWakeTrigger): maxReplicaCount asked from the first
    request on, pushed as Prewarm's stream pushes, from `min_replicas` (0 or 1). A
    reference for how long a trace that starts at full load keeps any autoscaler's
    requests waiting; in no frontier."""
    return PolicySpec(
        name=f"first-wake-bound-min{min_replicas}",
        description=f"a reference, not a policy: asks for maxReplicaCount ({top}) from the first request "
        f"on and never lets go, min {min_replicas}; no autoscaler starting at {min_replicas} replicas "
        "that wakes on a request has its pods sooner",
        make_triggers=lambda world, clock: [FirstWakeTrigger(world, top)],
        min_replicas=min_replicas,
        max_replicas=top,
        push_s=STREAM_INTERVAL_S,
        family="first-wake-bound",
    )


def sweep_policies(scenario: Scenario) -> list[PolicySpec]:
    """Each policy's main knob varied: queueLength (QUEUE_LENGTH_FACTORS x the
    concurrency) for every queue policy (Prewarm's included), the forecast quantile,
    replicaThroughput (THROUGHPUT_FACTORS x one replica's rate at 75 %, and unset at
    every queueLength), both raised together (CHEAP_CORNER_FACTORS), drainSeconds
    (60 s), holdSeconds 0 (the hold off) and LONG_HOLD_S (at
    LONG_HOLD_THROUGHPUT_FACTORS), and minReplicaCount 1 (at replicaThroughput 1x,
    1.25x and 2x, at keda-min1's other queueLengths, and unset at every queueLength)
    for Prewarm, the GPU target for the HPA, the replica count for static provisioning (stock
    KEDA's minReplicaCount is its two families, keda-min0 and keda-min1); and the
    perfect-foresight reference's utilisation (oracle_policy)."""
    c = scenario.world.concurrency
    top = scenario.max_replicas
    rate = scenario.rate_per_replica
    lead = scenario.world.cold_start.typical_s
    peak = max(1, scenario.peak_replicas)
    specs: list[PolicySpec] = []
    for quantile in (0.5, 0.75, 0.97):
        spec = prewarm_policy(c, top, cold_start_s=lead, replica_throughput=rate, quantile=quantile)
        specs.append(_named(spec, f"prewarm@q={quantile:g}"))
    # With replicaThroughput the queue term is capacity-aware, so the utilisation that
    # replicaThroughput stands for is Prewarm's cost knob: 0.5x, 0.6x, 0.75x, 1.25x the
    # default (0.6x: at a 600 s cold start on Twitter, Prewarm's frontier had no point
    # between 0.5x's and 0.75x's, where Kedastral's top point lies).
    # 1.5x and 2x: the cheap end, where Kedastral's cheapest points lie on the one-hour
    # traces (Prewarm's frontier had none that cheap). 0.25x, 0.33x and 0.4x: the
    # expensive end, where stock KEDA's queueLength 0.5x lies on the bursty code trace
    # (Prewarm's frontier stopped at 50 GPU-h there); every queue family's sweep gained
    # queueLength 0.25x with them.
    for factor in THROUGHPUT_FACTORS:
        spec = prewarm_policy(c, top, cold_start_s=lead, replica_throughput=rate * factor)
        spec = replace(spec, knob="replicaThroughput", knob_value=rate * factor)
        specs.append(_named(spec, f"prewarm@throughput={factor:g}x"))
    for length_factor in CHEAP_CORNER_FACTORS:
        for factor in CHEAP_CORNER_FACTORS:
            spec = prewarm_policy(c * length_factor, top, cold_start_s=lead, replica_throughput=rate * factor)
            spec = replace(spec, knob="replicaThroughput", knob_value=rate * factor)
            specs.append(_named(spec, f"prewarm@corner,ql={c * length_factor:g},throughput={factor:g}x"))
    # minReplicaCount 1 (stock KEDA's other family): a Ready replica serves from the first
    # request, and after the first cold start from quiet the capacity term sizes the pool.
    # At replicaThroughput 1x, 1.25x and 2x, and at the other queueLengths keda-min1's own
    # sweep has.
    min1: list[tuple[float, float, str]] = [
        (c, factor, f"throughput={factor:g}x") for factor in (1.0, 1.25, 2.0)
    ]
    min1 += [(c * factor, 1.0, f"ql={c * factor:g}") for factor in QUEUE_LENGTH_FACTORS if factor != 1.0]
    for length, factor, label in min1:
        spec = prewarm_policy(length, top, cold_start_s=lead, replica_throughput=rate * factor)
        specs.append(_named(_at_min1(spec), f"prewarm@min=1,{label}"))
    # replicaThroughput unset: the queue term is stock KEDA's own ask (counted work /
    # queueLength), with the push's wake and the forecast's (a replica a cold start
    # ahead of expected arrivals) added; at every queueLength and both minimums, the
    # points that show what the capacity term costs or buys where traffic is steady and
    # the fleet warm (there stock KEDA's ask is hard to beat: docs/evaluation.md).
    for factor in QUEUE_LENGTH_FACTORS:
        ql = c * factor
        plain = prewarm_policy(ql, top, cold_start_s=lead)
        specs.append(_named(plain, f"prewarm@no-throughput,ql={ql:g}"))
        specs.append(_named(_at_min1(plain), f"prewarm@min=1,no-throughput,ql={ql:g}"))
    # drainSeconds: the backlog drained over a minute (SLO-like) instead of the cold start.
    spec = prewarm_policy(c, top, cold_start_s=lead, replica_throughput=rate, drain_s=60.0)
    specs.append(_named(replace(spec, knob="drainSeconds", knob_value=60.0), "prewarm@drain=60s"))
    # holdSeconds 0: the default without its hold of the bursts' rate (what the hold buys
    # or costs).
    spec = prewarm_policy(c, top, cold_start_s=lead, replica_throughput=rate, hold_s=0.0)
    specs.append(_named(replace(spec, knob="holdSeconds", knob_value=0.0), "prewarm@hold=0"))
    # holdSeconds 1800: every burst held for half an hour, where the default holds a
    # burst's rate for a cold start (which lapses inside the HPA's own 300 s window at
    # 120 s) and for half an hour only once it has come back (the code trace's do).
    for factor in LONG_HOLD_THROUGHPUT_FACTORS:
        spec = prewarm_policy(c, top, cold_start_s=lead, replica_throughput=rate * factor, hold_s=LONG_HOLD_S)
        spec = replace(spec, knob="holdSeconds", knob_value=LONG_HOLD_S)
        specs.append(_named(spec, f"prewarm@hold={LONG_HOLD_S:g}s,throughput={factor:g}x"))
    for factor in QUEUE_LENGTH_FACTORS:
        ql = c * factor
        spec = prewarm_policy(ql, top, cold_start_s=lead, replica_throughput=rate)
        specs.append(_named(spec, f"prewarm@ql={ql:g}"))
        specs.append(_named(keda_queue_policy(ql, 0, top), f"keda-min0@ql={ql:g}"))
        specs.append(_named(keda_queue_policy(ql, 1, top), f"keda-min1@ql={ql:g}"))
        specs.append(_named(last_week_policy(ql, rate, top), f"keda-lastweek@ql={ql:g}"))
        specs.append(_named(kedastral_policy(ql, rate, lead, top), f"kedastral@ql={ql:g}"))
    for target in (40.0, 60.0, 75.0, 90.0):
        specs.append(_named(gpu_hpa_policy(target, top), f"hpa-gpu@{target:g}%"))
    for factor in (0.5, 0.75, 1.0, 1.25):
        n = max(1, round(peak * factor))
        specs.append(_named(static_policy(n), f"static@{n}"))
    # The perfect-foresight reference. Above 100 % the HPA's scale-down window supplies
    # the headroom.
    full = rate / TARGET_UTILIZATION
    for utilization in ORACLE_UTILIZATIONS:
        spec = oracle_policy(utilization, full, lead, top)
        specs.append(_named(spec, f"oracle@{utilization:.0%}"))
    return specs


def _named(spec: PolicySpec, name: str) -> PolicySpec:
    return replace(spec, name=name)


def _at_min1(spec: PolicySpec) -> PolicySpec:
    """A Prewarm policy with minReplicaCount 1 (its sweep's minReplicaCount knob)."""
    return replace(
        spec,
        min_replicas=1,
        knob="minReplicaCount",
        knob_value=1.0,
        description=spec.description.removesuffix(", min 0") + ", min 1",
    )


def with_scale_down_window(spec: PolicySpec, window_s: float) -> PolicySpec:
    """`spec` with the HPA's scale-down stabilization window set to `window_s` (a
    ScaledObject's advanced.horizontalPodAutoscalerConfig.behavior.scaleDown.
    stabilizationWindowSeconds); static provisioning, which has no HPA, unchanged."""
    if spec.static is not None:
        return spec
    behavior = spec.behavior if spec.behavior is not None else Behavior()
    scale_down = replace(behavior.scale_down, stabilization_s=window_s)
    return replace(
        spec,
        behavior=replace(behavior, scale_down=scale_down),
        description=f"{spec.description}; HPA scale-down window {window_s:g} s",
    )


# --- results ------------------------------------------------------------------------------


def masked_spans(trace: Trace) -> list[tuple[float, float]]:
    return [(a, b + GAP_MASK_AFTER_S) for a, b in trace.gaps]


def results(scenario: Scenario, run: PolicyRun) -> dict[str, Any]:
    """The figures a policy is judged by (see docs/evaluation.md for definitions)."""
    world = run.world
    trace = scenario.trace
    total = float(world.arrivals.sum())
    started = world.rec_starts
    # Cumulative arrivals and starts at the start of each second; both spread
    # evenly within the second, so request k waits D^-1(k) - A^-1(k) (FIFO).
    a_cum = np.concatenate(([0.0], np.cumsum(world.arrivals)))
    d_cum = np.concatenate(([0.0], np.cumsum(started)))
    n = int(min(WAIT_SAMPLES, max(1, math.ceil(total))))
    k = (np.arange(n) + 0.5) * (total / n)
    arrive = _inverse(a_cum, k)
    served = k < d_cum[-1]
    start = np.where(served, _inverse(d_cum, np.minimum(k, d_cum[-1])), float(world.steps))
    wait = np.maximum(0.0, start - arrive)
    warmup = scenario.warmup_s
    scored = arrive >= warmup
    for a, b in masked_spans(trace):
        scored &= ~((arrive >= a) & (arrive < b))
    w = wait[scored] if scored.any() else wait
    per_sample = total / n
    starting = world.rec_pods - world.rec_ready
    arrive_second = np.minimum(arrive.astype(np.int64), world.steps - 1)
    # Waited on a cold start: a pod was starting, or none was there at all (a wake
    # from zero, whose pods start at the next poll, or at once when pushed).
    cold = scored & (wait >= 1.0) & ((starting[arrive_second] > 0) | (world.rec_pods[arrive_second] == 0))
    # Billed over the trace's span (the drain tail only lets late work finish).
    gpu_seconds = float(world.rec_billed[warmup : trace.duration_s].sum()) * scenario.world.gpus_per_replica
    floor_seconds = world.busy_gpu_seconds()
    if warmup and total > 0:
        if world.per_request is not None and trace.request_times is not None:
            share = float(world.per_request[trace.request_times >= warmup].sum() / world.per_request.sum())
        else:
            share = float(world.arrivals[warmup:].sum() / total)
        floor_seconds *= share
    ups, downs, flaps = _scale_events([c for c in world.replica_changes if c[0] >= warmup])
    completed = float(world.completions[: world.steps].sum())
    out: dict[str, Any] = {
        "policy": run.spec.name,
        "family": run.spec.family or run.spec.name,
        "description": run.spec.description,
        "knob": run.spec.knob,
        "knob_value": run.spec.knob_value,
        "min_replicas": run.spec.min_replicas,
        "gpu_hours": gpu_seconds / 3600,
        "floor_gpu_hours": floor_seconds / 3600,
        "cost_vs_floor": gpu_seconds / floor_seconds if floor_seconds > 0 else math.inf,
        "wait_p50_s": float(np.percentile(w, 50)),
        "wait_p95_s": float(np.percentile(w, 95)),
        "wait_p99_s": float(np.percentile(w, 99)),
        "wait_max_s": float(w.max()) if len(w) else 0.0,
        "wait_mean_s": float(w.mean()) if len(w) else 0.0,
        "slo_s": scenario.slo_s,
        "slo_violation_share": float((w > scenario.slo_s).mean()) if len(w) else 0.0,
        "cold_start_waits": float(cold.sum() * per_sample),
        "scale_ups": ups,
        "scale_downs": downs,
        "flaps": flaps,
        "time_at_zero_share": float((world.rec_pods[warmup : trace.duration_s] == 0).mean()),
        "lost_work": world.lost,
        "arrivals": total,
        "completed": completed,
        "in_flight_at_end": world.in_flight,
        "waiting_at_end": world.waiting,
        "unserved_share": float((~served).mean()),
        "scored_share": float(scored.mean()),
        "peak_replicas": int(world.rec_pods.max()),
        "evaluations": run.evaluations,
    }
    prewarm = next((t for t in run.triggers if isinstance(t, PrewarmTrigger)), None)
    if prewarm is not None:
        out["decision_winners"] = dict(prewarm.winners)
        out["forecast_states"] = dict(prewarm.forecast_states)
    return out


def _inverse(cumulative: np.ndarray, k: np.ndarray) -> np.ndarray:
    """The time at which a cumulative count (knots at whole seconds, linear within
    each second) first reaches k: a plateau maps to its end, when counting resumes."""
    i = np.clip(np.searchsorted(cumulative, k, side="left"), 1, len(cumulative) - 1)
    lo, hi = cumulative[i - 1], cumulative[i]
    gap = np.where(hi > lo, hi - lo, 1.0)
    return (i - 1) + np.clip((k - lo) / gap, 0.0, 1.0)


def _scale_events(changes: Sequence[tuple[int, int, int]]) -> tuple[int, int, int]:
    """Scale-ups, scale-downs, and flaps: a change reversing the previous one within FLAP_WINDOW_S."""
    ups = downs = flaps = 0
    last: tuple[int, int] | None = None  # (time, direction)
    for t, before, after in changes:
        direction = 1 if after > before else -1
        if direction > 0:
            ups += 1
        else:
            downs += 1
        if last is not None and direction != last[1] and t - last[0] <= FLAP_WINDOW_S:
            flaps += 1
        last = (t, direction)
    return ups, downs, flaps
