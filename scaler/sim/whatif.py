"""What-if on the user's own settings and traffic: `prewarm simulate --scaledobject FILE`.

The ScaledObject as the user would apply it (trigger metadata, min/max,
cooldownPeriod, pollingInterval, the HPA `behavior`) becomes two policies over
the same simulated world: Prewarm (the production Engine on that metadata) and
its stock-KEDA twin (the same object, KEDA's own queue scaler: queueLength,
activation on backlog). The trace is a file or the user's arrival history from
Prometheus (one range query, with the trigger's credentials). The manifest is
read by `prewarm explain`'s loader and Prometheus by the production source, so
a bad manifest or an unreachable server reads the same as in `explain`.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import re
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from scaler.config import ConfigError, Mode, TriggerConfig, parse_trigger
from scaler.engine import SignalRead
from scaler.explain import (
    SCALED_JOB,
    ExplainError,
    Target,
    keda_objects,
    load_target,
    read_manifest,
    warnings_for,
    what_to_check,
)
from scaler.policy import RECURRING_HOLD_S, recurring_hold_window
from scaler.signals.base import SourceError
from scaler.sim.keda import (
    DEFAULT_SCALE_DOWN,
    DEFAULT_SCALE_UP,
    KEDA_POLLING_S,
    Behavior,
    ScalingPolicy,
    ScalingRules,
)
from scaler.sim.policies import STREAM_INTERVAL_S, PolicySpec, PrewarmTrigger, QueueLengthTrigger
from scaler.sim.run import LONG_HOLD_S
from scaler.sim.traces import Trace, TraceError

DAY_S = 86_400
# Prometheus answers at most 11,000 points per series in a range query.
MAX_RANGE_POINTS = 11_000


class WhatIfError(Exception):
    """Something the user must fix; the message says what. exit_code as explain's."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclasses.dataclass(frozen=True)
class UserObject:
    """The user's KEDA object: explain's Target plus what only the simulator needs."""

    target: Target
    cfg: TriggerConfig
    polling_s: float
    behavior: Behavior | None
    path: str
    pending_until_ready: bool = False  # ScaledJob: pendingPodConditions includes Ready


# --- the manifest -----------------------------------------------------------------------


def load_user_object(path: str, trigger: int | None, environ: Mapping[str, str]) -> UserObject:
    """Read and check the manifest as `prewarm explain` does. Raises WhatIfError."""
    try:
        text = read_manifest(path)
        objects = keda_objects(text)
        target = load_target(text, trigger, environ)
        obj = objects[0]
        spec = obj.get("spec") or {}
        polling = _whole(spec, "pollingInterval", int(KEDA_POLLING_S))
        behavior = behavior_from(spec)
        ready = "Ready" in (target.pending_pod_conditions or ())
        cfg = parse_trigger(target.metadata)
    except ExplainError as exc:
        raise WhatIfError(str(exc), exc.exit_code) from None
    except ConfigError as exc:
        raise WhatIfError(f"bad trigger metadata: {exc}") from None
    if cfg.source is None:
        raise WhatIfError(
            "bad trigger metadata: the trigger reads no queue (source: sqs or rabbitmq); "
            "the what-if replays arrivals into a queue"
        )
    if target.kind == SCALED_JOB and cfg.mode is not Mode.JOB:
        # Refused before any run: the trigger would count in-flight messages (duplicate
        # Jobs), and the maxPrewarmJobs change it tries is refused outside job mode.
        raise WhatIfError(
            "the ScaledJob's trigger needs mode: job in its metadata (its metric must be the backlog no "
            "Job has claimed; counting in-flight messages creates duplicate Jobs), and the what-if "
            "simulates ScaledJobs in job mode only: add mode: job (prewarm explain -f "
            f"{path} says what else to check)"
        )
    return UserObject(target, cfg, float(max(1, polling)), behavior, path, ready)


def _whole(spec: Mapping[str, Any], key: str, default: int) -> int:
    value = spec.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ExplainError(f"spec.{key} must be a whole number >= 0, got {value!r}")
    return value


def behavior_from(spec: Mapping[str, Any]) -> Behavior | None:
    """spec.advanced.horizontalPodAutoscalerConfig.behavior as the HPA reads it
    (a direction left out keeps Kubernetes' defaults); None when not set, which
    gives the HPA its legacy rules (keda.Hpa). Raises ExplainError."""
    advanced = spec.get("advanced") or {}
    hpa = advanced.get("horizontalPodAutoscalerConfig") or {} if isinstance(advanced, dict) else {}
    raw = hpa.get("behavior") if isinstance(hpa, dict) else None
    if raw is None:
        return None
    if raw == {}:
        return Behavior()
    if not isinstance(raw, dict):
        raise ExplainError("spec.advanced.horizontalPodAutoscalerConfig.behavior must be a map")
    up = _rules(raw.get("scaleUp"), DEFAULT_SCALE_UP, "scaleUp")
    down = _rules(raw.get("scaleDown"), DEFAULT_SCALE_DOWN, "scaleDown")
    return Behavior(scale_up=up, scale_down=down)


def _rules(raw: Any, default: ScalingRules, name: str) -> ScalingRules:
    where = f"spec.advanced.horizontalPodAutoscalerConfig.behavior.{name}"
    if raw is None:
        return default
    if not isinstance(raw, dict):
        raise ExplainError(f"{where} must be a map")
    window = raw.get("stabilizationWindowSeconds", default.stabilization_s)
    if isinstance(window, bool) or not isinstance(window, int | float) or not 0 <= window <= 3600:
        raise ExplainError(f"{where}.stabilizationWindowSeconds: a whole number 0..3600, got {window!r}")
    select = raw.get("selectPolicy", "Max")
    if select not in ("Max", "Min", "Disabled"):
        raise ExplainError(f"{where}.selectPolicy: Max, Min or Disabled, got {select!r}")
    policies = default.policies
    if raw.get("policies") is not None:
        items = raw["policies"]
        if not isinstance(items, list) or not items:
            raise ExplainError(f"{where}.policies must be a non-empty list")
        parsed = []
        for i, item in enumerate(items):
            kind = item.get("type") if isinstance(item, dict) else None
            value = item.get("value") if isinstance(item, dict) else None
            period = item.get("periodSeconds") if isinstance(item, dict) else None
            if kind not in ("Pods", "Percent"):
                raise ExplainError(f"{where}.policies[{i}].type: Pods or Percent, got {kind!r}")
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ExplainError(f"{where}.policies[{i}].value: a whole number > 0, got {value!r}")
            if isinstance(period, bool) or not isinstance(period, int) or not 0 < period <= 1800:
                raise ExplainError(f"{where}.policies[{i}].periodSeconds: 1..1800, got {period!r}")
            parsed.append(ScalingPolicy(kind, value, float(period)))
        policies = tuple(parsed)
    return ScalingRules(float(window), policies, select)


# --- the two policies -------------------------------------------------------------------


def user_policies(user: UserObject, metadata: Mapping[str, str] | None = None) -> list[PolicySpec]:
    """Prewarm on the user's object, and its stock-KEDA twin (the baseline)."""
    target, cfg = user.target, user.cfg
    meta = dict(metadata if metadata is not None else target.metadata)
    top = target.max_replicas if target.max_replicas is not None else 100
    common = dict(
        min_replicas=target.min_replicas,
        max_replicas=top,
        cooldown_s=float(target.cooldown_period),
        polling_s=user.polling_s,
        behavior=user.behavior,
        # As written: with metricType Value the HPA multiplies the answer by the Ready
        # pods (explain warns of it); any other type is KEDA's AverageValue math.
        metric_type="Value" if target.metric_type == "Value" else "AverageValue",
        knob="queueLength",
        knob_value=cfg.queue_length,
    )
    prewarm = PolicySpec(
        name="with Prewarm",
        description=f"{target.kind} {target.namespace}/{target.name} as written "
        "(Prewarm's Engine on its metadata)",
        make_triggers=lambda world, clock: [PrewarmTrigger(world, clock, meta)],
        family="prewarm",
        # Its stream wakes a ScaledObject from zero at once (ScaledJobs ignore streams);
        # KEDA's queue scaler, the twin, cannot push.
        push_s=STREAM_INTERVAL_S
        if target.trigger_type == "external-push" and target.kind != SCALED_JOB
        else None,
        **common,  # type: ignore[arg-type]
    )
    queue_length, activation = cfg.queue_length, cfg.activation_queue_length
    twin = PolicySpec(
        name="stock KEDA",
        description=f"the same object with KEDA's own {cfg.source.value if cfg.source else 'queue'} scaler: "
        f"queueLength {queue_length:g}, activation above {activation:g} messages",
        make_triggers=lambda world, clock: [QueueLengthTrigger(world, queue_length, activation)],
        family="keda",
        **common,  # type: ignore[arg-type]
    )
    return [prewarm, twin]


def raised_max_replicas(top: int) -> int:
    """The maxReplicaCount "change first" tries when the object reached its own."""
    return math.ceil(top * 1.5)


def candidate_changes(
    user: UserObject, cold_start_s: float, at_max: bool = False
) -> list[tuple[str, PolicySpec]]:
    """One setting changed at a time, each a Prewarm policy: what to try first
    (`at_max`: the run as written reached maxReplicaCount)."""
    base = user_policies(user)[0]
    meta = dict(user.target.metadata)
    ql = user.cfg.queue_length
    out: list[tuple[str, PolicySpec]] = []

    def with_meta(key: str, value: str) -> PolicySpec:
        return user_policies(user, dict(meta, **{key: value}))[0]

    if base.metric_type == "Value":
        # explain's warning as a change to simulate: the answer is a replica count,
        # which the HPA reads right only as an AverageValue target (KEDA's default).
        out.append(
            (
                "metricType Value -> AverageValue (remove it)",
                dataclasses.replace(base, metric_type="AverageValue"),
            )
        )
    out.append((f"queueLength {ql:g} -> {ql * 2:g}", with_meta("queueLength", f"{ql * 2:g}")))
    out.append((f"queueLength {ql:g} -> {ql / 2:g}", with_meta("queueLength", f"{ql / 2:g}")))
    configured = user.cfg.forecast.cold_start_seconds
    if abs(configured - cold_start_s) > max(10.0, 0.2 * cold_start_s):
        value = f"{min(3600.0, max(10.0, cold_start_s)):g}"
        out.append(
            (
                f"coldStartSeconds {configured:g} -> {value} (the cold start simulated)",
                with_meta("coldStartSeconds", value),
            )
        )
    cooldown = base.cooldown_s
    # cooldownPeriod only delays scaling to zero: above a floor of 1 it changes nothing.
    if cooldown >= 60 and base.min_replicas == 0:
        out.append(
            (
                f"cooldownPeriod {cooldown:g} -> {cooldown / 2:g}",
                dataclasses.replace(base, cooldown_s=cooldown / 2),
            )
        )
    # Without a behavior, setting the window gives the HPA one (with Kubernetes'
    # default rules otherwise), as it would in the cluster.
    behavior = base.behavior if base.behavior is not None else Behavior()
    window = behavior.scale_down.stabilization_s
    # Each window tried, with why: half the current one; and, holding a replica that
    # went idle for as long as a new one takes to start costs at most what the
    # restart would (the ski-rental break-even), so with cold starts longer than the
    # window, where each burst that comes back after the window but within a cold
    # start waits for one, the cold start.
    windows: dict[float, str] = {}
    if window >= 60:
        windows[window / 2] = ""
    held = min(3600.0, math.ceil(cold_start_s))
    if held > window * 1.2:
        windows[held] = " (the cold start)"
    for changed, why in windows.items():
        down = dataclasses.replace(behavior.scale_down, stabilization_s=changed)
        out.append(
            (
                f"behavior.scaleDown.stabilizationWindowSeconds {window:g} -> {changed:g}{why}",
                dataclasses.replace(base, behavior=dataclasses.replace(behavior, scale_down=down)),
            )
        )
    fc = user.cfg.forecast
    if fc.replica_throughput is not None and user.cfg.mode is Mode.DEPLOYMENT:
        # Both cost knobs raised together, as a user trading waits for GPU-hours would
        # (the evaluation's cheap corner: docs/decisions.md, "The sweep's cheap corner").
        throughput = fc.replica_throughput
        both = dict(meta, queueLength=f"{ql * 1.5:g}", replicaThroughput=f"{throughput * 1.5:g}")
        label = (
            f"queueLength {ql:g} -> {ql * 1.5:g} and replicaThroughput {throughput:g} -> "
            f"{throughput * 1.5:g} (together)"
        )
        out.append((label, user_policies(user, both)[0]))
        # The capacity term's hold of a burst's rate (policy.burst_level): off, and twice
        # as long, on the user's own bursts. Unset, it is the cold start, and half an
        # hour for bursts that came back (policy.recurring_hold_window), which any
        # holdSeconds set replaces: the label says so.
        hold = fc.cold_start_seconds if fc.hold_seconds is None else fc.hold_seconds
        was = f"{hold:g}"
        if fc.hold_seconds is None and recurring_hold_window(user.cfg, hold) > 0:
            was = f"unset ({hold:g}; {RECURRING_HOLD_S:g} for bursts that came back)"
        if hold > 0:
            out.append((f"holdSeconds {was} -> 0 (off)", with_meta("holdSeconds", "0")))
            if hold < 3600:
                longer = f"{min(3600.0, hold * 2):g}"
                out.append((f"holdSeconds {was} -> {longer}", with_meta("holdSeconds", longer)))
            if hold * 2 < LONG_HOLD_S:
                # Half an hour for every burst, not only those that came back
                # (docs/forecast.md, "Bursts that come back").
                label = f"holdSeconds {was} -> {LONG_HOLD_S:g} (half an hour)"
                out.append((label, with_meta("holdSeconds", f"{LONG_HOLD_S:g}")))
    if base.min_replicas == 0:
        out.append(("minReplicaCount 0 -> 1", dataclasses.replace(base, min_replicas=1)))
    if at_max:
        top = raised_max_replicas(base.max_replicas)
        out.append(
            (f"maxReplicaCount {base.max_replicas} -> {top}", dataclasses.replace(base, max_replicas=top))
        )
    target = user.target
    return [
        (
            label,
            dataclasses.replace(
                spec,
                name=label,
                description=f"{target.kind} {target.namespace}/{target.name} with only {label} "
                "(Prewarm's Engine on its metadata)",
            ),
        )
        for label, spec in out
    ]


def first_change(current: Mapping[str, Any], tried: Sequence[Mapping[str, Any]], slo_s: float) -> str:
    """Which setting to change first, from the candidates' simulated results: when
    p95 misses the SLO, the change that meets it (or comes closest) at the lowest
    cost; when it meets it, the change that saves the most while p95 stays within
    the SLO. Each line says what it buys and costs."""
    if not tried:
        return "no single-setting change to try (the object is already at its simplest)"
    base_cost, base_p95 = current["gpu_hours"], current["wait_p95_s"]

    def delta(row: Mapping[str, Any]) -> str:
        cost = row["gpu_hours"] - base_cost
        return (
            f"GPU-hours {row['gpu_hours']:.1f} ({cost:+.1f}), p95 wait {row['wait_p95_s']:.0f} s "
            f"(was {base_p95:.0f} s), cold-start waits {row['cold_start_waits']:.0f} "
            f"(was {current['cold_start_waits']:.0f})"
        )

    if base_p95 > slo_s:
        meeting = [r for r in tried if r["wait_p95_s"] <= slo_s]
        best = (
            min(meeting, key=lambda r: r["gpu_hours"])
            if meeting
            else min(tried, key=lambda r: (r["wait_p95_s"], r["gpu_hours"]))
        )
        if best["wait_p95_s"] >= base_p95:
            return (
                f"p95 misses the {slo_s:g} s SLO and no single change tried helps; "
                "the cold start is the lever"
            )
        return f"{best['policy']}: {delta(best)}"
    saving = [r for r in tried if r["wait_p95_s"] <= slo_s and r["gpu_hours"] < base_cost * 0.99]
    if not saving:
        return f"keep them: no single change tried saves GPU-hours with p95 within the {slo_s:g} s SLO"
    best = min(saving, key=lambda r: r["gpu_hours"])
    return f"{best['policy']}: {delta(best)}"


# --- the trace from Prometheus ------------------------------------------------------------


DURATION = re.compile(r"^(\d+(?:\.\d+)?)(s|m|h|d|w)$")
UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str, flag: str) -> float:
    match = DURATION.match(text.strip())
    if not match or float(match.group(1)) <= 0:
        raise WhatIfError(f"{flag} {text!r}: a duration such as 90m, 36h or 7d")
    return float(match.group(1)) * UNIT_S[match.group(2)]


def prometheus_metadata(user: UserObject, url: str | None, arrival_query: str | None) -> dict[str, str]:
    """The trigger's metadata with --prometheus / --arrival-query in place of its own
    prometheusServerAddress / arrivalQuery (its credentials keys kept)."""
    meta = dict(user.target.metadata)
    if url:
        meta["prometheusServerAddress"] = url
    if arrival_query:
        meta["arrivalQuery"] = arrival_query
    return meta


def history_trace(
    meta: Mapping[str, str], since_s: float, now_wall: float, step_s: float | None, timeout: float
) -> tuple[Trace, list[str]]:
    """The arrivalQuery's history as a trace: one range query, each step's rate
    (requests/s) spread evenly over its seconds; steps Prometheus has no value for
    are gaps (not scored). Raises WhatIfError."""
    from scaler.signals.prometheus import PrometheusSource

    try:
        cfg = parse_trigger(meta)
    except ConfigError as exc:
        raise WhatIfError(f"bad trigger metadata: {exc}") from None
    query = cfg.forecast.arrival_query
    if query is None:
        raise WhatIfError(
            "no arrival history to replay: give --arrival-query (and --prometheus unless the trigger "
            "has prometheusServerAddress), or --trace FILE"
        )
    step = step_s or max(60.0, math.ceil(since_s / MAX_RANGE_POINTS))
    source = PrometheusSource(query, timeout=timeout, reads="arrival")
    start = now_wall - since_s
    try:
        points = source.history(start, now_wall, step)
    except SourceError as exc:
        read = SignalRead(name="arrival", description=source.description, error=exc)
        raise WhatIfError(f"{exc}. Check {what_to_check(read)}", exit_code=1) from None
    finally:
        source.close()
    if not points:
        raise WhatIfError(
            f"the arrival query answered no samples over the last {since_s / 86400:g} days: "
            "check the query in the Prometheus UI (range view) and --since"
        )
    first = points[0][0]
    n = int(points[-1][0] - first + step)
    counts = np.zeros(n)
    have = np.zeros(n, dtype=bool)
    for wall, rate in points:
        lo = int(wall - first)
        counts[lo : lo + int(step)] = rate
        have[lo : lo + int(step)] = True
    gaps = _spans(~have)
    trace = Trace(name=f"arrivalQuery, last {since_s / 86400:g} d", counts=counts, bin_s=step, gaps=gaps)
    lines = [
        f"arrivals: one range query on {source.description}, {len(points)} points every {step:g} s "
        f"from {_iso(first)} to {_iso(points[-1][0])}" + (f"; {len(gaps)} gap(s) not scored" if gaps else "")
    ]
    return trace, lines


def _spans(mask: np.ndarray) -> tuple[tuple[float, float], ...]:
    out: list[tuple[float, float]] = []
    start = None
    for i, missing in enumerate(mask):
        if missing and start is None:
            start = i
        elif not missing and start is not None:
            out.append((float(start), float(i)))
            start = None
    if start is not None:
        out.append((float(start), float(len(mask))))
    return tuple(out)


def _iso(wall: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(wall))


def measured_seconds(meta: Mapping[str, str], key: str, query_text: str, timeout: float) -> float | None:
    """One instant query answering seconds (the trigger's coldStartQuery, or
    --service-query) on the trigger's Prometheus; None when it matched nothing
    (or answered 0). Raises WhatIfError when Prometheus cannot be read."""
    from scaler.signals.prometheus import PrometheusSource

    try:
        cfg = parse_trigger(dict(meta, coldStartQuery=query_text))
    except ConfigError as exc:
        raise WhatIfError(f"bad trigger metadata: {exc}") from None
    query = cfg.forecast.cold_start_query
    assert query is not None
    source = PrometheusSource(query, timeout=timeout, reads="cold start")
    try:
        reading = source.read()
    except SourceError as exc:
        read = SignalRead(name="cold start", description=source.description, error=exc)
        raise WhatIfError(f"{key}: {exc}. Check {what_to_check(read)}", exit_code=1) from None
    finally:
        source.close()
    seconds = float(getattr(reading, "seconds", math.nan))
    if not math.isfinite(seconds) or seconds <= 0:
        return None  # no series, or no sane answer
    return seconds


# --- the run ------------------------------------------------------------------------------


def main(args: argparse.Namespace) -> int:
    try:
        return _main(args)
    except WhatIfError as exc:
        print(f"prewarm simulate: {exc}", file=sys.stderr)
        return exc.exit_code


def not_simulated(target: Target) -> list[str]:
    """Setup lines for what the object sets that the what-if leaves out (both runs
    alike), so that nobody reads its figures as including them."""
    lines = []
    if target.idle_replicas is not None:
        lines.append(
            f"not simulated: idleReplicaCount {target.idle_replicas}; both runs keep minReplicaCount "
            f"{target.min_replicas} while idle, where KEDA drops to {target.idle_replicas} after the "
            "cooldown and wakes to minReplicaCount"
        )
    if target.triggers_total > 1:
        lines.append(
            f"not simulated: the object's other {target.triggers_total - 1} trigger(s); only trigger "
            f"{target.trigger_index} is, in both runs (KEDA would also act on the others)"
        )
    return lines


def _main(args: argparse.Namespace) -> int:
    from scaler.sim import report
    from scaler.sim.main import build_scenario, run_policies
    from scaler.sim.traces import load_trace, sliced
    from scaler.sim.world import ModelError

    started = time.monotonic()
    user = load_user_object(args.scaledobject, args.trigger, os.environ)
    setup = [f"object: {user.target.kind} {user.target.namespace}/{user.target.name} from {user.path}"]
    setup += [f"note: {n}" for n in user.target.notes]
    # explain's warnings, after its notes: what the object as written gets wrong is simulated
    # as written, and is likely what the results show.
    setup += [
        f"warning: {w}" for w in warnings_for(user.target, user.cfg, simulated=True)[len(user.target.notes) :]
    ]
    setup += not_simulated(user.target)
    meta = prometheus_metadata(user, args.prometheus, args.arrival_query)
    if args.trace:
        try:
            trace = load_trace(args.trace)
        except TraceError as exc:
            raise WhatIfError(str(exc)) from None
    elif args.prometheus or args.arrival_query:
        since = parse_duration(args.since, "--since")
        step = parse_duration(args.step, "--step") if args.step else None
        trace, lines = history_trace(meta, since, time.time(), step, args.timeout)
        setup += lines
    else:
        raise WhatIfError(
            "give the arrivals: --trace FILE, or --prometheus URL --arrival-query Q [--since 7d]"
        )
    if args.start or args.duration:
        end = trace.duration_s if args.duration is None else args.start + args.duration
        trace = sliced(trace, args.start, end)
    cold_start = args.cold_start
    origin = "--cold-start"
    if cold_start is None:
        query = user.cfg.forecast.cold_start_query
        if query is not None and (args.prometheus or not args.trace):
            seconds = measured_seconds(meta, "coldStartQuery", query.query, args.timeout)
            if seconds is not None:
                cold_start, origin = f"{seconds:g}", "the trigger's coldStartQuery"
            else:  # as the engine does while the query has no sane answer
                configured = user.cfg.forecast.cold_start_seconds
                cold_start = f"{configured:g}"
                origin = "the trigger's coldStartSeconds (its coldStartQuery matched nothing)"
        else:
            cold_start, origin = f"{user.cfg.forecast.cold_start_seconds:g}", "the trigger's coldStartSeconds"
    service = args.service
    if args.service_query:
        seconds = measured_seconds(meta, "--service-query", args.service_query, args.timeout)
        if seconds is None:
            raise WhatIfError("--service-query: the query matched nothing (or answered 0 seconds)")
        service = f"lognormal:{seconds:g}:0.5"
        setup.append(f"service time from --service-query: mean {seconds:.3g} s (lognormal, sigma 0.5)")
    concurrency = args.concurrency or max(1, math.ceil(user.cfg.queue_length))
    top = user.target.max_replicas if user.target.max_replicas is not None else 100
    try:
        scenario, lines = build_scenario(
            trace,
            concurrency=concurrency,
            service=service,
            cold_start=cold_start,
            slo=args.slo,
            max_replicas=top,
            # The trace as it is, unless --rate-scale or --peak-replicas fits it to this fleet.
            rate_scale=args.rate_scale if args.rate_scale is not None or args.peak_replicas else 1.0,
            peak_replicas=args.peak_replicas,
            kill_in_flight=args.kill_in_flight,
            seed=args.seed,
            stream_every_second=args.stream_every_second,
        )
    except (TraceError, ModelError) as exc:
        raise WhatIfError(str(exc)) from None
    setup += [line for line in lines if not line.startswith("KEDA pollingInterval")]
    setup.append(f"cold start from {origin}")
    if scenario.peak_replicas > top:
        # Both runs are capped at maxReplicaCount and their backlogs grow without bound,
        # so they come out alike; say why rather than let the table look like a tie.
        setup.append(
            f"warning: the trace's busiest minute needs {scenario.peak_replicas} replicas at 75 % "
            f"utilisation, more than maxReplicaCount {top}: both runs are capped there; fit the trace "
            "to your fleet with --peak-replicas or --rate-scale, or raise maxReplicaCount"
        )
    if user.target.kind != SCALED_JOB:
        setup.append(
            f"their settings: pollingInterval {user.polling_s:g} s, "
            f"cooldownPeriod {user.target.cooldown_period} s, "
            f"minReplicaCount {user.target.min_replicas}, maxReplicaCount {top}, "
            + (
                f"scale-down window {user.behavior.scale_down.stabilization_s:g} s"
                if user.behavior is not None
                else "no HPA behavior (Kubernetes' legacy rules: the highest ask of 300 s)"
            )
        )
    warmup = args.warmup
    if not warmup and trace.duration_s >= 3 * DAY_S:
        # Prewarm's forecast is cold for its first day of history; a live server would
        # have warm-started from the arrivalQuery's past, so that day is history only.
        warmup = DAY_S
    if warmup >= trace.duration_s:
        raise WhatIfError(
            f"--warmup {warmup} s: the trace is {trace.duration_s} s long, so nothing would be scored"
        )
    if warmup:
        scenario.warmup_s = warmup
        straddling = "; a Job alive across it is billed for its seconds after it"
        setup.append(
            f"the first {warmup / 3600:g} h are history (the forecast's warm-up), not scored or billed"
            + (straddling if user.target.kind == SCALED_JOB else "")
        )
    if user.target.kind == SCALED_JOB:
        return _jobs(user, scenario, setup, args, started)
    progress = not args.no_progress and sys.stderr.isatty()
    specs = user_policies(user)
    try:
        rows, runs = run_policies(scenario, specs, progress)
        tried: list[dict[str, Any]] = []
        if not args.no_advice:
            at_max = rows[0]["peak_replicas"] >= top
            candidates = candidate_changes(user, scenario.world.cold_start.typical_s, at_max)
            tried, _ = run_policies(scenario, [spec for _, spec in candidates], progress, "settings")
    except ConfigError as exc:  # a changed setting the scaler refuses: a message, not a traceback
        raise WhatIfError(f"bad trigger metadata in a simulated change: {exc}") from None
    advice = first_change(rows[0], tried, args.slo)
    text = whatif_text(rows, args.gpu_price, advice, trace.duration_s - scenario.warmup_s)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for row in rows + tried:
        row["dollars"] = row["gpu_hours"] * args.gpu_price
    report.write_json(out / "results.json", rows)
    if tried:
        report.write_json(out / "settings.json", tried)
    plots: list[str] = []
    if not args.no_plots:
        report.plot_runs(out / "timeline.png", trace.name, runs, scored_from_s=scenario.warmup_s)
        plots.append("timeline.png")
    md = report.markdown(
        f"What-if: {user.target.namespace}/{user.target.name}", setup, rows + tried, (), plots
    )
    (out / "report.md").write_text(md + "\n" + text + "\n", encoding="utf-8")
    print("\n".join(f"- {line}" for line in setup))
    print()
    print(text)
    print(f"\n{len(specs) + len(tried)} runs in {time.monotonic() - started:.1f} s; results in {out}/")
    return 0


def whatif_text(rows: Sequence[Mapping[str, Any]], price: float, advice: str, span_s: int) -> str:
    """The comparison in the user's terms; `span_s`: the seconds billed (for the
    per-30-days figure)."""
    days = span_s / 86400
    head = f"| | GPU-hours | ${price:g}/GPU-h | per 30 days | p95 wait | cold-start waits | > SLO |"
    lines = [head, "|---|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        dollars = row["gpu_hours"] * price
        monthly = dollars / days * 30 if days > 0 else math.nan
        lines.append(
            f"| {row['policy']} | {row['gpu_hours']:.1f} | ${dollars:,.0f} | ${monthly:,.0f} | "
            f"{row['wait_p95_s']:.0f} s | {row['cold_start_waits']:,.0f} | {row['slo_violation_share']:.1%} |"
        )
    prewarm, keda = rows[0], rows[1]
    saved = (keda["gpu_hours"] - prewarm["gpu_hours"]) * price
    lines += [
        "",
        f"With Prewarm vs without: {saved:+,.0f} $ saved over the trace "
        f"({prewarm['gpu_hours'] - keda['gpu_hours']:+.1f} GPU-h), p95 wait "
        f"{prewarm['wait_p95_s']:.0f} s vs {keda['wait_p95_s']:.0f} s, cold-start waits "
        f"{prewarm['cold_start_waits']:,.0f} vs {keda['cold_start_waits']:,.0f}.",
        f"Change first: {advice}",
    ]
    return "\n".join(lines)


def _jobs(user: UserObject, scenario: Any, setup: list[str], args: argparse.Namespace, started: float) -> int:
    """A ScaledJob: one Job per message, KEDA's scaling strategy as the user set it."""
    from scaler.sim import report
    from scaler.sim.jobs import STRATEGIES, JobPolicy, simulate_jobs, worker_idle_wait_s

    target = user.target
    top = target.max_replicas if target.max_replicas is not None else 100
    ql = user.cfg.queue_length
    ready = user.pending_until_ready
    setup.append(
        f"their ScaledJob: pollingInterval {user.polling_s:g} s, strategy {target.strategy}, "
        "pendingPodConditions "
        f"{'[Ready]' if ready else 'unset'}, minReplicaCount {target.min_replicas}"
    )
    setup.append(
        f"a Job that finds no message waits {worker_idle_wait_s(target.metadata):g} s for one, then "
        "exits (docs/forecast.md's worker: 2 x the trigger's coldStartSeconds), in both runs"
    )

    def run(
        name: str, prewarm: bool, tgt: Target, meta: Mapping[str, str], polling: float, limit: int = top
    ) -> dict[str, Any]:
        policy = JobPolicy(name, tgt.strategy, prewarm, ready, limit, ql)
        try:
            row = simulate_jobs(
                scenario.trace,
                scenario.world,
                policy,
                args.slo,
                target=tgt,
                metadata=meta,
                polling_s=polling,
                # The same worker (the ScaledJob's template) in every run, Prewarm's or not.
                idle_wait_s=worker_idle_wait_s(meta),
                scored_from_s=scenario.warmup_s,
            )
        except ConfigError as exc:  # a changed setting the scaler refuses: a message, not a traceback
            raise WhatIfError(f"bad trigger metadata for {name!r}: {exc}") from None
        row["dollars"] = row["gpu_hours"] * args.gpu_price
        return row

    meta = dict(target.metadata)
    rows = [
        run("with Prewarm", True, target, meta, user.polling_s),
        run("stock KEDA", False, target, meta, user.polling_s),
    ]
    tried: list[dict[str, Any]] = []
    if not args.no_advice:
        for strategy in STRATEGIES:
            if strategy != target.strategy:
                other = dataclasses.replace(target, strategy=strategy)
                tried.append(
                    run(f"scalingStrategy {target.strategy} -> {strategy}", True, other, meta, user.polling_s)
                )
        if user.polling_s >= 10:
            half = user.polling_s / 2
            tried.append(run(f"pollingInterval {user.polling_s:g} -> {half:g}", True, target, meta, half))
        jobs = user.cfg.forecast.max_prewarm_jobs
        more = dict(meta, maxPrewarmJobs=str(jobs + 2))
        tried.append(run(f"maxPrewarmJobs {jobs} -> {jobs + 2}", True, target, more, user.polling_s))
        if scenario.peak_replicas > top:
            more_jobs = raised_max_replicas(top)
            tried.append(
                run(f"maxReplicaCount {top} -> {more_jobs}", True, target, meta, user.polling_s, more_jobs)
            )
    advice = first_change(rows[0], tried, args.slo)
    text = whatif_text(rows, args.gpu_price, advice, scenario.trace.duration_s - scenario.warmup_s)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report.write_json(out / "results.json", rows)
    if tried:
        report.write_json(out / "settings.json", tried)
    title = f"# What-if: ScaledJob {target.namespace}/{target.name}"
    body = "\n".join([title, "", *(f"- {x}" for x in setup), "", text, ""])
    (out / "report.md").write_text(body, encoding="utf-8")
    print("\n".join(f"- {line}" for line in setup))
    print()
    print(text)
    print(f"\n{len(rows) + len(tried)} runs in {time.monotonic() - started:.1f} s; results in {out}/")
    return 0
