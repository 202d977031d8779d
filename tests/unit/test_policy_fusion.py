"""The fused decision: queue, GPU (demand or guard) and forecast terms; every
term winning, both roles, the keep-alive guards, activation edges, ties."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scaler._proto import externalscaler_pb2 as pb
from scaler.config import TriggerConfig, parse_trigger
from scaler.policy import MAX_DESIRED, Signals, decide, gpu_term
from scaler.signals.base import GpuReading, QueueReading

PROM = "http://127.0.0.1:9090"
SELECTOR = 'namespace="ai"'


def cfg(queue: bool = True, **gpu: str) -> TriggerConfig:
    meta = {"prometheusServerAddress": PROM, "gpuSelector": SELECTOR, **gpu}
    if queue:
        meta.update(source="sqs", queueURL="https://sqs.us-east-1.amazonaws.com/1/q", queueLength="5")
    return parse_trigger(meta)


def queue(waiting: float = 0, in_flight: float | None = 0) -> QueueReading:
    return QueueReading(waiting=waiting, in_flight=in_flight)


def busy(gpus: float) -> GpuReading:
    return GpuReading(busy_gpus=gpus, series=1 if gpus else 0)


@pytest.mark.parametrize(
    ("config", "signals", "desired", "active", "winner"),
    [
        # queue wins over a smaller guard floor
        (cfg(), Signals(queue=queue(20), gpu=busy(1.5)), 4.0, True, "queue"),
        # guard wins: nothing waiting, GPUs busy -> hold the busy replicas, stay active
        (cfg(), Signals(queue=queue(0), gpu=busy(2.6)), 2.6, True, "gpu-guard"),
        # guard with 2 GPUs per replica: 3 busy GPUs = 1.5 replicas (HPA: 2)
        (cfg(gpusPerReplica="2"), Signals(queue=queue(0), gpu=busy(3)), 1.5, True, "gpu-guard"),
        # demand wins: 3 busy GPUs at a 75 % target need 4 replicas
        (cfg(gpuRole="demand"), Signals(queue=queue(10), gpu=busy(3)), 4.0, True, "gpu"),
        # demand loses to a bigger backlog
        (cfg(gpuRole="demand"), Signals(queue=queue(50), gpu=busy(3)), 10.0, True, "queue"),
        # GPU-only demand, 2 GPUs per replica, 50 % target: 3 busy / (0.5 * 2) = 3
        (
            cfg(queue=False, gpusPerReplica="2", gpuTargetUtilization="50"),
            Signals(gpu=busy(3)),
            3.0,
            True,
            "gpu",
        ),
        # forecast wins above both
        (cfg(), Signals(queue=queue(5), gpu=busy(0.5), forecast_floor=6.0), 6.0, True, "forecast"),
        # forecast alone wakes an idle pool (what the forecaster is for)
        (cfg(), Signals(queue=queue(0), gpu=busy(0), forecast_floor=1.0), 1.0, True, "forecast"),
        # forecast of zero: nothing active
        (cfg(), Signals(queue=queue(0), gpu=busy(0), forecast_floor=0.0), 0.0, False, "queue"),
        # everything idle
        (cfg(), Signals(queue=queue(0), gpu=busy(0)), 0.0, False, "queue"),
        (cfg(queue=False), Signals(gpu=busy(0)), 0.0, False, "gpu"),
    ],
    ids=[
        "queue beats guard",
        "guard holds busy replicas",
        "guard with 2 GPUs per replica",
        "demand beats queue",
        "queue beats demand",
        "gpu-only demand",
        "forecast wins",
        "forecast alone wakes",
        "forecast zero",
        "idle queue and guard",
        "idle gpu-only",
    ],
)
def test_fused_decision(
    config: TriggerConfig, signals: Signals, desired: float, active: bool, winner: str
) -> None:
    decision = decide(signals, config, now=0.0)
    assert decision.desired == pytest.approx(desired)
    assert decision.active is active
    assert decision.winner == winner
    assert decision.metric_value == math.ceil(round(desired, 9))
    # every term is reported, in a fixed order
    expected_terms = [
        name
        for name, present in (
            ("queue", signals.queue is not None),
            (
                "gpu" if config.gpu and config.gpu.role.value == "demand" else "gpu-guard",
                signals.gpu is not None,
            ),
            ("forecast", signals.forecast_floor is not None),
        )
        if present
    ]
    assert [t.name for t in decision.terms] == expected_terms


@pytest.mark.parametrize(
    ("config", "signals", "desired", "winner"),
    [
        # equal asks: the queue, the most direct reason, is named
        (cfg(gpuRole="demand"), Signals(queue=queue(15), gpu=busy(2.25)), 3.0, "queue"),
        (cfg(), Signals(queue=queue(10), gpu=busy(2)), 2.0, "queue"),
        (cfg(), Signals(queue=queue(10), gpu=busy(0), forecast_floor=2.0), 2.0, "queue"),
        # GPU before forecast
        (cfg(), Signals(queue=queue(0), gpu=busy(2), forecast_floor=2.0), 2.0, "gpu-guard"),
    ],
)
def test_ties_prefer_queue_then_gpu(
    config: TriggerConfig, signals: Signals, desired: float, winner: str
) -> None:
    decision = decide(signals, config, now=0.0)
    assert decision.winner == winner
    assert decision.desired == pytest.approx(desired)


def test_in_flight_work_keeps_a_pool_with_nothing_waiting_active() -> None:
    # Nothing waiting, three messages being worked on, GPUs idle (e.g. a CPU step):
    # the queue term counts the in-flight work, so KEDA's cooldown never starts.
    decision = decide(Signals(queue=queue(0, in_flight=3), gpu=busy(0)), cfg(), now=0.0)
    assert decision.active is True
    assert decision.winner == "queue"
    assert decision.desired == pytest.approx(0.6)
    assert decision.metric_value == 1


def test_busy_gpus_keep_a_pool_with_an_empty_queue_active() -> None:
    # The queue is empty and nothing is in flight (a batching server already took
    # and acknowledged its requests), but the GPUs are working: stay active.
    decision = decide(Signals(queue=queue(0, in_flight=0), gpu=busy(0.4)), cfg(), now=0.0)
    assert decision.active is True
    assert decision.metric_value == 1
    guard = next(t for t in decision.terms if t.name == "gpu-guard")
    assert guard.active and guard.replicas == pytest.approx(0.4)


ONE_GPU_EDGES = [
    (0.0, "1", "5", False),
    (0.05, "1", "5", False),  # equal to the level: inactive
    (0.0501, "1", "5", True),
    (0.0, "1", "0", False),  # activation 0: any load at all
    (0.001, "1", "0", True),
    (1.0, "1", "100", False),  # activation 100 %: only more than a fully busy replica
    (1.01, "1", "100", True),
]


@pytest.mark.parametrize(
    ("role", "gpus", "per_replica", "activation", "active"),
    [(role, *edge) for role in ("guard", "demand") for edge in ONE_GPU_EDGES]
    + [
        # demand sums duty cycles: 5 % of 2 GPUs = 0.1 busy GPUs
        ("demand", 0.09, "2", "5", False),
        ("demand", 0.11, "2", "5", True),
        # guard counts GPUs above the level: any one of them, whatever the GPUs per replica
        ("guard", 1.0, "4", "50", True),
        ("guard", 2.0, "4", "50", True),
        ("guard", 0.0, "4", "50", False),
        ("guard", 0.09, "2", "5", True),
    ],
)
def test_gpu_activation_edges(
    role: str, gpus: float, per_replica: str, activation: str, active: bool
) -> None:
    config = cfg(gpusPerReplica=per_replica, gpuActivationUtilization=activation, gpuRole=role)
    decision = decide(Signals(queue=queue(0), gpu=busy(gpus)), config, now=0.0)
    assert decision.active is active
    term = decision.terms[1]
    assert term.active is active
    assert ("active:" if active else "inactive:") in term.reason


def test_one_working_gpu_of_a_multi_gpu_replica_keeps_the_pool_with_an_empty_queue() -> None:
    # 4 GPUs per replica at activation 50 %: one GPU above 50 % (G counts it) is a
    # replica at work. Against one replica's level (2 GPUs) it read as idle, so KEDA's
    # cooldown could scale a working pool to zero.
    config = cfg(gpusPerReplica="4", gpuActivationUtilization="50")
    decision = decide(Signals(queue=queue(0, in_flight=0), gpu=busy(1.0)), config, now=0.0)
    assert decision.active is True
    assert decision.metric_value == 1  # ceil(1 GPU / 4 per replica)


def test_guard_below_activation_holds_no_floor_but_demand_reports_its_need() -> None:
    below = busy(0.03)
    guard = decide(Signals(queue=queue(0), gpu=below), cfg(), now=0.0)
    assert guard.terms[1].replicas == 0.0 and guard.desired == 0.0
    assert "no floor" in guard.terms[1].reason
    demand = decide(Signals(queue=queue(0), gpu=below), cfg(gpuRole="demand"), now=0.0)
    assert demand.terms[1].replicas == pytest.approx(0.04)
    assert demand.active is False


def test_guard_never_asks_more_than_the_busy_gpus_can_fill() -> None:
    # Demand at target 50 % asks for twice the busy replicas; the guard only for them.
    reading = busy(3.0)
    demand_cfg, guard_cfg = (cfg(gpuRole=role, gpuTargetUtilization="50").gpu for role in ("demand", "guard"))
    assert demand_cfg is not None and guard_cfg is not None
    demand, guard = gpu_term(reading, demand_cfg), gpu_term(reading, guard_cfg)
    assert demand.replicas == pytest.approx(6.0)
    assert guard.replicas == pytest.approx(3.0)


def test_gpu_reading_without_gpu_config_is_ignored() -> None:
    queue_only = parse_trigger({"source": "sqs", "queueURL": "https://sqs.us-east-1.amazonaws.com/1/q"})
    decision = decide(Signals(queue=queue(5), gpu=busy(8)), queue_only, now=0.0)
    assert [t.name for t in decision.terms] == ["queue"]
    assert decision.desired == pytest.approx(1.0)


def test_negative_forecast_is_clamped_to_zero() -> None:
    decision = decide(Signals(queue=queue(0), forecast_floor=-3.0), cfg(), now=0.0)
    assert decision.desired == 0.0
    assert decision.active is False


def test_reasons_name_the_numbers() -> None:
    decision = decide(Signals(queue=queue(7, 3), gpu=busy(1.5)), cfg(gpuRole="demand"), now=0.0)
    queue_term, gpu = decision.terms
    assert queue_term.reason == "(7 waiting + 3 in flight) / queueLength 5"
    assert gpu.reason.startswith("1.5 busy GPUs / (75% target * 1 GPU per replica)")


def test_decision_does_not_depend_on_now() -> None:
    signals = Signals(queue=queue(3), gpu=busy(2), forecast_floor=1.0)
    assert decide(signals, cfg(), now=0.0) == decide(signals, cfg(), now=1e9)


@given(
    waiting=st.integers(min_value=0, max_value=10_000),
    in_flight=st.integers(min_value=0, max_value=10_000),
    gpus=st.floats(min_value=0, max_value=512, allow_nan=False),
    forecast=st.one_of(st.none(), st.floats(min_value=0, max_value=1000, allow_nan=False)),
    role=st.sampled_from(["guard", "demand"]),
)
def test_desired_is_the_largest_term_and_active_is_any(
    waiting: int, in_flight: int, gpus: float, forecast: float | None, role: str
) -> None:
    decision = decide(
        Signals(queue=queue(waiting, in_flight), gpu=busy(gpus), forecast_floor=forecast),
        cfg(gpuRole=role),
        now=0.0,
    )
    assert decision.desired == max(t.replicas for t in decision.terms)
    assert decision.active is any(t.active for t in decision.terms)
    winner = next(t for t in decision.terms if t.name == decision.winner)
    assert winner.replicas == decision.desired
    # the winner is the first term with the largest ask
    assert decision.terms.index(winner) == min(
        i for i, t in enumerate(decision.terms) if t.replicas == decision.desired
    )
    if role == "guard":
        # the guard never asks for more replicas than the busy GPUs can fill
        assert decision.terms[1].replicas <= gpus + 1e-9


@pytest.mark.parametrize("floor", [1e30, math.inf])
def test_an_ask_past_any_fleet_is_the_most_there_is_never_zero_or_a_failed_answer(floor: float) -> None:
    # A forecast floor that overflowed (a float32 profile past 3.4e38 reads back as inf):
    # 1e30 used to fail GetMetrics (int64 metricValue), and inf reached KEDA as 0.
    decision = decide(Signals(queue=queue(3), forecast_floor=floor), cfg(), 0.0)
    assert decision.winner == "forecast" and decision.active
    assert decision.desired == MAX_DESIRED and decision.metric_value == int(MAX_DESIRED)
    answer = pb.MetricValue(
        metricName="q", metricValue=decision.metric_value, metricValueFloat=decision.desired
    )
    assert answer.metricValue == 10**9


def test_a_wild_arrival_rate_asks_the_most_there_is() -> None:
    # An arrivalQuery in the wrong unit (bytes/s, a counter instead of its rate) gives a
    # capacity-aware queue term far past any fleet: capped, still the queue's answer.
    capacity = parse_trigger(
        {
            "source": "sqs",
            "queueURL": "https://sqs.us-east-1.amazonaws.com/1/q",
            "queueLength": "5",
            "replicaThroughput": "0.5",
        }
    )
    signals = Signals(queue=queue(10, 4), arrival_rate=1e300, cold_start=300.0)
    decision = decide(signals, capacity, 0.0)
    assert decision.winner == "queue" and decision.desired == MAX_DESIRED
    assert decision.terms[0].replicas > MAX_DESIRED  # the term itself says what it computed
