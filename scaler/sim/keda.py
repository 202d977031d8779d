"""KEDA and the HPA, emulated as control loops over simulated time.

Follows /docs of KEDA and Kubernetes as the project's KEDA notes describe them:
- the HPA (pkg/controller/podautoscaler: horizontal.go, replica_calculator.go):
  every `sync_s` (15 s) it asks each metric for a replica count,
  `ceil(value / target)` for an AverageValue target unless
  `|value / (target x current) - 1| <= tolerance` (0.1), or for a Value target
  (metricType Value) `ceil(value / target x ready pods)` unless
  `|value / target - 1| <= tolerance`; takes the largest, then
  normalises it, within [minReplicas, maxReplicas]. A target at 0 replicas is
  left alone. Normalising depends on whether the HPA has a `behavior`:
  - none (KEDA sets one only from the ScaledObject's
    advanced.horizontalPodAutoscalerConfig.behavior, and the API server fills
    in the rules only of a behavior that is there): normalizeDesiredReplicas,
    the highest recommendation of the last 300 s (the controller's
    --horizontal-pod-autoscaler-downscale-stabilization), the new one included,
    whichever way it points, then at most max(2 x current, 4) replicas;
  - a behavior (normalizeDesiredReplicasWithBehaviors): stabilised (scale-up
    window, default 0 s: the lowest recommendation in the window; scale-down
    window, default 300 s: the highest) and rate-limited (default: up by
    max(100 %, 4 pods) per 15 s, down by 100 % per 15 s).
- KEDA (pkg/scaling/executor/scale_scaledobjects.go): every `polling_s` (30 s) it
  asks every trigger whether it is active; an active trigger wakes a target at 0
  to max(minReplicaCount, 1); when every trigger has been inactive for
  `cooldown_s` (300 s) since the last active poll, a target with
  minReplicaCount 0 is scaled to 0.
- ScaledJob (scale_jobs.go): every poll, new Jobs by the scaling strategy
  (scaler.explain.job_strategy, shared with `prewarm explain`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from scaler.policy import hpa_replicas, keda_milli

HPA_SYNC_S = 15.0
HPA_TOLERANCE = 0.1
KEDA_POLLING_S = 30.0
KEDA_COOLDOWN_S = 300.0


@dataclass(frozen=True)
class ScalingPolicy:
    kind: Literal["Pods", "Percent"]
    value: int
    period_s: float


@dataclass(frozen=True)
class ScalingRules:
    stabilization_s: float
    policies: tuple[ScalingPolicy, ...]
    select: Literal["Max", "Min", "Disabled"] = "Max"


# Kubernetes' defaults (pkg/apis/autoscaling/v2/defaults.go).
DEFAULT_SCALE_UP = ScalingRules(
    0.0, (ScalingPolicy("Percent", 100, 15.0), ScalingPolicy("Pods", 4, 15.0)), "Max"
)
DEFAULT_SCALE_DOWN = ScalingRules(300.0, (ScalingPolicy("Percent", 100, 15.0),), "Max")


@dataclass(frozen=True)
class Behavior:
    scale_up: ScalingRules = DEFAULT_SCALE_UP
    scale_down: ScalingRules = DEFAULT_SCALE_DOWN


# An HPA without a behavior (normalizeDesiredReplicas): the controller's
# --horizontal-pod-autoscaler-downscale-stabilization (default 5 minutes), and
# calculateScaleUpLimit's max(2 x current, 4).
LEGACY_STABILIZATION_S = 300.0
LEGACY_SCALE_UP_FACTOR = 2.0
LEGACY_SCALE_UP_MINIMUM = 4


def metric_replicas(value: float, target: float, current: int, tolerance: float = HPA_TOLERANCE) -> int:
    """The HPA's replica count for one AverageValue external metric
    (GetExternalPerPodMetricReplicas): unchanged within the tolerance, else
    ceil(value / target). Values travel as milli-quantities (hpa_replicas)."""
    value = max(0.0, value)
    if current > 0:
        ratio = value / (target * current)
        if abs(ratio - 1.0) <= tolerance:
            return current
    return hpa_replicas(value / target)


def value_metric_replicas(
    value: float, target: float, current: int, ready: int, tolerance: float = HPA_TOLERANCE
) -> int:
    """The HPA's replica count for one external metric with a Value target
    (GetExternalMetricReplicas, getUsageRatioReplicaCount): unchanged while
    |value / target - 1| is within the tolerance, else ceil(value / target x the
    pods that are Ready), so pods still starting count for nothing and a value that
    is already a replica count is multiplied by the fleet. At 0 replicas,
    ceil(value / target). Values travel as milli-quantities."""
    ratio = keda_milli(max(0.0, value)) / keda_milli(target)
    if current == 0:
        return math.ceil(ratio)
    if abs(ratio - 1.0) <= tolerance:
        return current
    return math.ceil(ratio * ready)


MetricType = Literal["AverageValue", "Value"]


@dataclass
class Hpa:
    """One HorizontalPodAutoscaler with its recommendation and scale-event history."""

    min_replicas: int
    max_replicas: int
    behavior: Behavior | None = None  # None: no behavior set (KEDA's default)
    tolerance: float = HPA_TOLERANCE
    metric_type: MetricType = "AverageValue"  # every metric's target type (the trigger's metricType)
    _recommendations: list[tuple[float, int]] = field(default_factory=list)
    _up_events: list[tuple[float, int]] = field(default_factory=list)
    _down_events: list[tuple[float, int]] = field(default_factory=list)

    def sync(
        self, now: float, current: int, metrics: Sequence[tuple[float, float]], ready: int | None = None
    ) -> int:
        """The replica count after one sync; `metrics` are (value, target) pairs,
        `ready` the pods that are Ready (a Value target scales them; all `current` by
        default). A target at 0 replicas is left alone (KEDA owns 0 <-> 1)."""
        if current == 0:
            return 0
        if current > self.max_replicas:
            desired = self.max_replicas
        elif current < self.min_replicas:
            desired = self.min_replicas
        else:
            if self.metric_type == "Value":
                counted = current if ready is None else ready
                asks = (value_metric_replicas(v, t, current, counted, self.tolerance) for v, t in metrics)
            else:
                asks = (metric_replicas(v, t, current, self.tolerance) for v, t in metrics)
            proposed = max(asks, default=current)
            if self.behavior is None:
                desired = self._normalize_legacy(now, current, proposed)
            else:
                desired = self._normalize(now, current, proposed)
        if desired != current:
            self._record_event(now, current, desired)
        return desired

    @property
    def _rules(self) -> Behavior:
        """The behavior, on the paths that have one."""
        assert self.behavior is not None
        return self.behavior

    def _normalize_legacy(self, now: float, current: int, proposed: int) -> int:
        """normalizeDesiredReplicas: stabilizeRecommendation (the highest
        recommendation younger than the window, the new one included: a high ask
        keeps pulling the count up for the whole window, not only holding it), then
        convertDesiredReplicasWithRules (at most max(2 x current, 4), within
        [minReplicas, maxReplicas]).

        The controller keeps a recommendation unless it is before now - window, so on
        an exact 15 s grid the one 20 syncs back would count; but its syncs are 15 s
        apart plus the time each takes (the queue re-adds the object once it is
        processed), so that one is always just older than the window, and dropped."""
        cutoff = now - LEGACY_STABILIZATION_S
        kept = [(stamp, rec) for stamp, rec in self._recommendations if stamp > cutoff]
        highest = max([proposed, *(rec for _, rec in kept)])
        self._recommendations = [*kept, (now, proposed)]
        up_limit = int(max(LEGACY_SCALE_UP_FACTOR * current, LEGACY_SCALE_UP_MINIMUM))
        allowed = min(self.max_replicas, up_limit)
        return max(self.min_replicas, min(highest, allowed))

    def _normalize(self, now: float, current: int, proposed: int) -> int:
        stabilized = self._stabilize(now, current, proposed)
        return self._rate_limited(now, current, stabilized)

    def _stabilize(self, now: float, current: int, proposed: int) -> int:
        """stabilizeRecommendationWithBehaviors."""
        up_cutoff = now - self._rules.scale_up.stabilization_s
        down_cutoff = now - self._rules.scale_down.stabilization_s
        up = down = proposed
        for stamp, rec in self._recommendations:
            if stamp > up_cutoff:
                up = min(up, rec)
            if stamp > down_cutoff:
                down = max(down, rec)
        recommendation = current
        if recommendation < up:
            recommendation = up
        if recommendation > down:
            recommendation = down
        keep_after = min(up_cutoff, down_cutoff)
        self._recommendations = [(s, r) for s, r in self._recommendations if s > keep_after]
        self._recommendations.append((now, proposed))
        return recommendation

    def _rate_limited(self, now: float, current: int, desired: int) -> int:
        """convertDesiredReplicasWithBehaviorRate."""
        if desired > current:
            limit = max(current, self._up_limit(now, current))
            allowed = min(self.max_replicas, limit)
            return min(desired, allowed)
        if desired < current:
            limit = min(current, self._down_limit(now, current))
            allowed = max(self.min_replicas, limit)
            return max(desired, allowed)
        return desired

    def _changed_in(self, events: list[tuple[float, int]], now: float, period: float) -> int:
        return sum(n for stamp, n in events if stamp > now - period)

    def _replicas_before(self, now: float, current: int, period: float) -> int:
        """The replica count at the start of a policy's period: what a rate policy
        (N pods or N % per period) is counted from, as the HPA counts it."""
        return (
            current
            - self._changed_in(self._up_events, now, period)
            + self._changed_in(self._down_events, now, period)
        )

    def _up_limit(self, now: float, current: int) -> int:
        rules = self._rules.scale_up
        if rules.select == "Disabled":
            return current
        results = []
        for policy in rules.policies:
            start = self._replicas_before(now, current, policy.period_s)
            if policy.kind == "Pods":
                results.append(start + policy.value)
            else:
                results.append(math.ceil(start * (1 + policy.value / 100)))
        return min(results) if rules.select == "Min" else max(results)

    def _down_limit(self, now: float, current: int) -> int:
        rules = self._rules.scale_down
        if rules.select == "Disabled":
            return current
        results = []
        for policy in rules.policies:
            start = self._replicas_before(now, current, policy.period_s)
            if policy.kind == "Pods":
                results.append(start - policy.value)
            else:
                results.append(int(start * (1 - policy.value / 100)))
        # Min selects the policy allowing the smallest change (the highest floor).
        return max(results) if rules.select == "Min" else min(results)

    def _record_event(self, now: float, current: int, desired: int) -> None:
        if self.behavior is None:
            return  # the legacy rules count no scale events
        longest = max(
            [p.period_s for p in self._rules.scale_up.policies + self._rules.scale_down.policies],
            default=0.0,
        )
        if desired > current:
            self._up_events.append((now, desired - current))
        else:
            self._down_events.append((now, current - desired))
        self._up_events = [(s, n) for s, n in self._up_events if s > now - longest]
        self._down_events = [(s, n) for s, n in self._down_events if s > now - longest]


@dataclass
class ScaledObjectLoop:
    """KEDA's part of a ScaledObject: activation and cooldown (0 <-> N)."""

    min_replicas: int = 0
    cooldown_s: float = KEDA_COOLDOWN_S
    last_active: float = -math.inf

    def poll(self, now: float, current: int, any_active: bool) -> int:
        """The replica count KEDA sets after one poll (unchanged when it leaves it to the HPA)."""
        if any_active:
            self.last_active = now
            if current == 0:
                return max(self.min_replicas, 1)
            return current
        if current > 0 and self.min_replicas == 0 and now - self.last_active >= self.cooldown_s:
            return 0
        return current
