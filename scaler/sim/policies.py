"""The policies compared, each as KEDA would run it: a ScaledObject (triggers,
min/max, cooldown, HPA behavior) over the simulated world.

Prewarm is the production path: its trigger metadata goes through
`parse_trigger` and the `Engine` decides, with a ManualClock and simulated
sources behind the `Source` interface (SimSourceFactory), through the same
cache. The baselines are KEDA's own scalers, whose metrics are simple enough to
state here (each says which KEDA scaler and settings it stands for).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from scaler.clock import ManualClock
from scaler.config import TriggerConfig
from scaler.engine import Engine, ObjectRef, SourceFactory
from scaler.forecast.model import Tuning
from scaler.signals.base import ArrivalReading, ColdStartReading, GpuReading, QueueReading, Source
from scaler.signals.cache import DEFAULT_TTL, POLLED_READING_AGE, ReadingCache
from scaler.sim.keda import HPA_SYNC_S, Behavior, MetricType
from scaler.sim.world import World

# The utilisation users size replicas for (rate thresholds, static provisioning,
# --peak-replicas); the same as the GPU HPA's target and Prewarm's default.
TARGET_UTILIZATION = 0.75
# RabbitMQ's management API reports rates over its last 5 s sample.
PUBLISH_RATE_WINDOW_S = 5


class Trigger(Protocol):
    name: str

    def read(self, t: int, polled: bool = True) -> tuple[float, float, bool]:
        """(metric value, AverageValue target, active) at time t. `polled`: KEDA
        asks (a poll's IsActive or a sync's GetMetrics), not a push trigger's
        stream; the baselines read their source at every call either way, as
        KEDA's own scalers do."""
        ...


# `prewarm serve`'s default --stream-interval: how often an open StreamIsActive
# re-evaluates (and pushes a change). Written here so that the simulator does not
# import the gRPC server; test_cli checks that the two agree.
STREAM_INTERVAL_S = 1.0


@dataclass
class PolicySpec:
    """One ScaledObject (or static provisioning when `static` is set)."""

    name: str
    description: str
    make_triggers: Callable[[World, ManualClock], list[Trigger]]
    min_replicas: int = 0
    max_replicas: int = 100
    cooldown_s: float = 300.0
    polling_s: float = 30.0
    behavior: Behavior | None = None  # None: none set, as KEDA creates the HPA by default
    # The trigger's metricType: AverageValue (KEDA's default), or Value, which the HPA
    # multiplies by the Ready pods (the what-if simulates a user's object as written).
    metric_type: MetricType = "AverageValue"
    hpa_sync_s: float = HPA_SYNC_S  # the cluster's --horizontal-pod-autoscaler-sync-period
    # An external-push trigger: its stream's interval. A `true` on the stream wakes a
    # target at zero at once, between polls, and above zero restarts the cooldown (KEDA
    # acts on a pushed true; a false is ignored, so scaling to zero still waits for the
    # polls and the cooldown).
    push_s: float | None = None
    # Whether the stream is also evaluated at every tick while its last answer was
    # `true`, as the server's stream is (else run.simulate asks it only while not
    # `true`, when a `true` can act, and at polls and syncs). None: the scenario's
    # Scenario.stream_every_tick; True or False: this policy's, whatever the scenario
    # says (bench/bench_stream_cadence.py runs both).
    stream_every_tick: bool | None = None
    static: int | None = None
    knob: str = ""  # the swept knob and its value, for frontiers
    knob_value: float = 0.0
    family: str = ""


# --- simulated sources behind the production Source interface --------------------------


class SimulatedQueue(Protocol):
    """What the queue source reads: World (ScaledObjects) and JobWorld (ScaledJobs) have it."""

    @property
    def waiting(self) -> float: ...

    @property
    def in_flight(self) -> float: ...

    def arrival_rate(self, t: int, window_s: int) -> float: ...


class SimQueueSource:
    """The simulated queue as RabbitMQ's management API reports it: ready
    (waiting), unacknowledged (in flight) and the publish rate."""

    def __init__(self, world: SimulatedQueue, clock: ManualClock, key: str = "sim/queue") -> None:
        self._world = world
        self._clock = clock
        self._key = key

    @property
    def key(self) -> str:
        return self._key

    @property
    def description(self) -> str:
        return "simulated queue"

    def read(self) -> QueueReading:
        world = self._world
        t = int(self._clock.now)
        return QueueReading(
            waiting=world.waiting,
            in_flight=world.in_flight,
            publish_rate=world.arrival_rate(t, PUBLISH_RATE_WINDOW_S),
        )

    def close(self) -> None:
        pass


class SimGpuSource:
    """The simulated GPUs as the trigger's PromQL would see them (dcgm-exporter
    scraped every 15 s): summed duty cycle (demand) or working GPUs (guard)."""

    def __init__(self, world: World, clock: ManualClock, cfg: TriggerConfig) -> None:
        self._world = world
        self._clock = clock
        assert cfg.gpu is not None
        self._gpu = cfg.gpu

    @property
    def key(self) -> str:
        return f"sim/gpu/{self._gpu.role.value}"

    @property
    def description(self) -> str:
        return "simulated GPUs"

    def read(self) -> GpuReading:
        from scaler.config import GpuRole

        t = int(self._clock.now)
        if self._gpu.role is GpuRole.GUARD:
            busy = self._world.working_gpus(t, self._gpu.activation_utilization / 100)
        else:
            busy = self._world.busy_gpus(t)
        return GpuReading(busy_gpus=busy, series=1)

    def close(self) -> None:
        pass


class SimArrivalSource:
    """The arrivalQuery as Prometheus would answer `sum(rate(requests_total[1m]))`
    over the simulated arrivals; history() serves the trace's past (never the
    future) for the engine's warm start."""

    WINDOW_S = 60

    def __init__(self, world: SimulatedQueue, clock: ManualClock) -> None:
        self._world = world
        self._clock = clock

    @property
    def key(self) -> str:
        return "sim/arrivals"

    @property
    def description(self) -> str:
        return "simulated arrivals"

    def read(self) -> ArrivalReading:
        return ArrivalReading(rate=self._world.arrival_rate(int(self._clock.now), self.WINDOW_S))

    def history(self, start_wall: float, end_wall: float, step_s: float) -> list[tuple[float, float]]:
        offset = self._clock.wall() - self._clock.monotonic()
        now = int(self._clock.now)
        points = []
        wall = start_wall
        while wall <= end_wall:
            t = int(wall - offset)
            if 0 < t <= now:
                points.append((wall, self._world.arrival_rate(t, self.WINDOW_S)))
            wall += step_s
        return points

    def close(self) -> None:
        pass


class SimColdStartSource:
    """The coldStartQuery: the simulated pods' typical cold start."""

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds

    @property
    def key(self) -> str:
        return "sim/cold-start"

    @property
    def description(self) -> str:
        return "simulated cold start"

    def read(self) -> ColdStartReading:
        return ColdStartReading(seconds=self._seconds)

    def close(self) -> None:
        pass


class SimSourceFactory(SourceFactory):
    """The engine's SourceFactory with every source reading the simulated world."""

    def __init__(self, world: SimulatedQueue, clock: ManualClock) -> None:
        super().__init__()
        self.world = world
        self.clock = clock

    def queue_source(self, cfg: TriggerConfig) -> Source | None:
        if cfg.source is None:
            return None
        return self._kept(("queue",), lambda: SimQueueSource(self.world, self.clock))

    def arrival_source(self, cfg: TriggerConfig) -> Source | None:
        if cfg.forecast.arrival_query is None:
            return None
        return self._kept(("arrivals",), lambda: SimArrivalSource(self.world, self.clock))

    def cold_start_source(self, cfg: TriggerConfig) -> Source | None:
        world = self.world
        if cfg.forecast.cold_start_query is None or not isinstance(world, World):
            return None
        seconds = world.cfg.cold_start.typical_s
        return self._kept(("cold start",), lambda: SimColdStartSource(seconds))

    def gpu_source(self, cfg: TriggerConfig) -> Source | None:
        world = self.world
        if cfg.gpu is None or not isinstance(world, World):  # ScaledJobs read no GPUs
            return None
        return self._kept(("gpu", cfg.gpu.role), lambda: SimGpuSource(world, self.clock, cfg))


# --- triggers ---------------------------------------------------------------------------


def prewarm_metadata(
    queue_length: float,
    gpu_guard: bool = False,
    cold_start_s: float | None = None,
    replica_throughput: float | None = None,
    quantile: float | None = None,
    drain_s: float | None = None,
    hold_s: float | None = None,
) -> dict[str, str]:
    """Prewarm's trigger for a RabbitMQ work queue read through the management
    API (which sees in-flight messages, and the publish rate the forecast learns
    from), every key not given at its default. `cold_start_s` (coldStartSeconds)
    is the forecast's look-ahead, `replica_throughput` the requests/s one replica
    carries (the forecast floor's unit), `drain_s` (drainSeconds) the capacity-aware
    queue term's drain horizon, `hold_s` (holdSeconds) its hold; with `gpu_guard`, plus the GPU guard
    (gpuSelector, the default role with a queue)."""
    metadata = {
        "scalerAddress": "prewarm.keda:6000",
        "source": "rabbitmq",
        "host": "http://guest:guest@rabbitmq.sim:15672/",
        "queueName": "work",
        "queueLength": f"{queue_length:g}",
    }
    if cold_start_s is not None:
        metadata["coldStartSeconds"] = f"{min(3600.0, max(10.0, cold_start_s)):g}"
    if replica_throughput is not None:
        metadata["replicaThroughput"] = f"{replica_throughput:.6g}"
    if quantile is not None:
        metadata["forecastQuantile"] = f"{quantile:g}"
    if drain_s is not None:
        metadata["drainSeconds"] = f"{drain_s:g}"
    if hold_s is not None:
        metadata["holdSeconds"] = f"{hold_s:g}"
    if gpu_guard:
        metadata["prometheusServerAddress"] = "http://prometheus.sim:9090"
        metadata["gpuSelector"] = 'namespace="sim",pod=~"worker-.*"'
    return metadata


class PrewarmTrigger:
    """Prewarm's external trigger: the production Engine deciding on simulated
    sources; KEDA gets metricValueFloat = desired against targetSizeFloat = 1."""

    name = "prewarm"

    def __init__(
        self,
        world: SimulatedQueue,
        clock: ManualClock,
        metadata: Mapping[str, str],
        sources: SourceFactory | None = None,  # default: SimSourceFactory(world, clock)
        forecast_tuning: Tuning | None = None,  # the forecaster's constants (None: the server's)
        cache_ttl: float = DEFAULT_TTL,  # the server's: its answers are as old as the server's
        polled_reading_age: float = POLLED_READING_AGE,  # the server's too
    ) -> None:
        cache = ReadingCache(clock, ttl=cache_ttl, max_workers=1)
        self.engine = Engine(
            cache,
            clock,
            sources or SimSourceFactory(world, clock),
            forecast_tuning=forecast_tuning,
            polled_reading_age=polled_reading_age,
        )
        self.ref = ObjectRef("sim", "workers")
        self.cfg = self.engine.config(self.ref, metadata)
        self.winners: dict[str, int] = {}
        self.forecast_states: dict[str, int] = {}  # how often the forecast was cold, gated, ready

    def read(self, t: int, polled: bool = True) -> tuple[float, float, bool]:
        evaluation = self.engine.evaluate_config_sync(self.ref, self.cfg, polled=polled)
        decision = evaluation.decision
        self.winners[decision.winner] = self.winners.get(decision.winner, 0) + 1
        if evaluation.forecast is not None:
            state = str(evaluation.forecast.state.value) + (" (used)" if evaluation.forecast.used else "")
            self.forecast_states[state] = self.forecast_states.get(state, 0) + 1
        return decision.desired, 1.0, decision.active


class QueueLengthTrigger:
    """KEDA's rabbitmq scaler, mode QueueLength over the management API (ready +
    unacknowledged messages; SQS's default counts in-flight too), activation on
    backlog (activationValue 0)."""

    name = "keda-queue"

    def __init__(self, world: World, queue_length: float, activation: float = 0.0) -> None:
        self.world = world
        self.queue_length = queue_length
        self.activation = activation

    def read(self, t: int, polled: bool = True) -> tuple[float, float, bool]:
        messages = self.world.waiting + self.world.in_flight
        return messages, self.queue_length, messages > self.activation


class GpuUtilizationTrigger:
    """KEDA's prometheus scaler on `sum(DCGM_FI_DEV_GPU_UTIL{...})`, AverageValue
    target `target_percent` per replica (the HPA on GPU utilisation)."""

    name = "gpu-utilization"

    def __init__(self, world: World, target_percent: float) -> None:
        self.world = world
        self.target = target_percent

    def read(self, t: int, polled: bool = True) -> tuple[float, float, bool]:
        value = self.world.busy_gpus(t) / self.world.cfg.gpus_per_replica * 100
        return value, self.target, value > 0


class LastWeekTrigger:
    """KEDA's prometheus scaler on `sum(rate(requests_total[5m] offset 6d23h30m))`
    (Grafana Mimir's predictive recipe: last week's traffic, 30 min ahead), with
    threshold = one replica's rate at the target utilisation, activationThreshold 0.
    Before a week of history the query is empty and KEDA reads 0."""

    name = "last-week"
    OFFSET_S = 6 * 86400 + 23 * 3600 + 30 * 60
    WINDOW_S = 300

    def __init__(self, world: World, rate_per_replica: float) -> None:
        self.world = world
        self.rate_per_replica = rate_per_replica
        self.cumulative = np.concatenate(([0.0], np.cumsum(world.arrivals)))

    def read(self, t: int, polled: bool = True) -> tuple[float, float, bool]:
        end = t - self.OFFSET_S
        if end <= 0:
            return 0.0, self.rate_per_replica, False
        start = max(0, end - self.WINDOW_S)
        rate = float(self.cumulative[end] - self.cumulative[start]) / (end - start)
        return rate, self.rate_per_replica, rate > 0


class ForesightTrigger:
    """A reference, not a baseline anyone can run: a trigger that knows the future.
    It asks for the replicas that carry the busiest minute of arrivals between now
    and `lead_s` ahead (so its pool is Ready for what comes and never dropped below
    what is still arriving), plus those that drain the messages waiting now within a
    minute, at `rate_per_replica`; active while it asks for any. Under the same
    KEDA/HPA loops as every policy it shows what those loops cost given perfect
    foresight of the arrival rate."""

    name = "foresight"
    WINDOW_S = 60

    def __init__(self, world: World, rate_per_replica: float, lead_s: float) -> None:
        self.world = world
        self.rate_per_replica = rate_per_replica
        cumulative = np.concatenate(([0.0], np.cumsum(world.arrivals)))
        starts = np.arange(len(cumulative))
        ends = np.minimum(starts + self.WINDOW_S, len(cumulative) - 1)
        # the arrival rate over the minute starting at each second
        self.minute_rate = (cumulative[ends] - cumulative[starts]) / self.WINDOW_S
        self.lead = max(0, round(lead_s))

    def read(self, t: int, polled: bool = True) -> tuple[float, float, bool]:
        busiest = float(self.minute_rate[t : t + self.lead + 1].max(initial=0.0))
        backlog = self.world.waiting / self.WINDOW_S
        replicas = (busiest + backlog) / self.rate_per_replica
        return replicas, 1.0, replicas > 0


class FirstWakeTrigger:
    """A reference for a trace that starts at full load from zero, not a policy: it asks
    for `top` replicas (maxReplicaCount) from the second the first request arrives,
    and never lets go. Under the same KEDA and HPA loops (a pushed wake, the HPA's ramp
    limit, which grows with the replicas there are) no autoscaler that starts at the
    same replicas and wakes on a request has more pods at any moment; with the queue
    served in order, none then starts a request sooner. Its waits are the least such a
    policy can reach: the first-wake bound (docs/evaluation.md)."""

    name = "first-wake"

    def __init__(self, world: World, top: int) -> None:
        arrived = np.flatnonzero(world.arrivals > 0)
        self.first = int(arrived[0]) if len(arrived) else world.steps
        self.top = float(top)

    def read(self, t: int, polled: bool = True) -> tuple[float, float, bool]:
        woken = t >= self.first
        return (self.top if woken else 0.0), 1.0, woken


class KedastralTrigger:
    """A Kedastral-like predictive scaler: a seasonal forecast of the arrival
    rate (the mean of the same minute on up to 7 previous days; the last 5
    minutes' mean before a day of history), converted to replicas at the target
    utilisation, holding the maximum over the lead time. Like Kedastral's scaler
    (cmd/scaler/scaler.go), it answers IsActive true while its forecast is fresh,
    which here is always: KEDA wakes the workload at its first poll and never
    scales it to zero (the cooldown needs every trigger inactive)."""

    name = "kedastral"

    def __init__(self, world: World, rate_per_replica: float, lead_s: float) -> None:
        self.world = world
        self.rate_per_replica = rate_per_replica
        minutes = math.ceil(world.steps / 60)
        padded = np.zeros(minutes * 60)
        padded[: world.steps] = world.arrivals
        per_minute = padded.reshape(minutes, 60).mean(axis=1)
        lead = max(1, math.ceil(lead_s / 60))
        seasonal = np.full(minutes + lead + 1, np.nan)
        sums = np.zeros(minutes + lead + 1)
        days = np.zeros(minutes + lead + 1)
        for day in range(1, 8):
            shift = day * 1440
            if shift >= len(sums):
                break
            src = per_minute[: len(sums) - shift]
            sums[shift : shift + len(src)] += src
            days[shift : shift + len(src)] += 1
        has = days > 0
        seasonal[has] = sums[has] / days[has]
        self.per_minute = per_minute
        self.seasonal = seasonal
        self.lead = lead

    def read(self, t: int, polled: bool = True) -> tuple[float, float, bool]:
        minute = t // 60
        window = self.seasonal[minute + 1 : minute + 1 + self.lead]
        recent = self.per_minute[max(0, minute - 5) : minute]
        fallback = float(recent.mean()) if len(recent) else 0.0
        known = window[~np.isnan(window)]
        predicted = (
            float(known.max())
            if len(known) == len(window) and len(window)
            else max(fallback, float(known.max()) if len(known) else 0.0)
        )
        return predicted / self.rate_per_replica, 1.0, True
