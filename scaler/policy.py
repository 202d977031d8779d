"""The scaling decision: pure functions from (signals, config, now) to a Decision.

No I/O and no clock reads here: everything the decision depends on is an
argument, so the server, `explain` and the simulator all share this code.

The answer's unit is replicas (or Jobs, in job mode): KEDA gets
`metricValueFloat = desired` against `targetSizeFloat = 1`, so the HPA's
`ceil(value / 1)` is the replica count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scaler.config import Mode, TriggerConfig
from scaler.signals.base import QueueReading


@dataclass(frozen=True)
class Signals:
    """What was read for one trigger. None = not configured for this trigger."""

    queue: QueueReading | None = None


@dataclass(frozen=True)
class Term:
    """One input to the decision: the replicas it asks for and whether it is active."""

    name: str
    replicas: float
    active: bool
    reason: str


@dataclass(frozen=True)
class Decision:
    desired: float  # replicas (deployment mode) or Jobs (job mode), unrounded
    active: bool
    winner: str  # the term that set `desired`
    terms: tuple[Term, ...]

    @property
    def metric_value(self) -> int:
        """The deprecated int64 metric: the ceiling, so `ceil(value / 1)` agrees."""
        return math.ceil(self.desired) if self.desired > 0 else 0

    @property
    def replicas(self) -> int:
        return self.metric_value

    def key(self) -> tuple[int, bool, str]:
        """What must change for the decision to count as changed (for logs)."""
        return (self.replicas, self.active, self.winner)


def counted_work(queue: QueueReading, cfg: TriggerConfig) -> float:
    """Messages that count as work in deployment mode: waiting, plus in-flight
    unless disabled, plus delayed if enabled."""
    work = queue.waiting
    if _counts_in_flight(cfg) and queue.in_flight is not None:
        work += queue.in_flight
    if cfg.sqs is not None and cfg.sqs.scale_on_delayed:
        work += queue.delayed
    return work


def _counts_in_flight(cfg: TriggerConfig) -> bool:
    if cfg.sqs is not None:
        return cfg.sqs.scale_on_in_flight
    if cfg.rabbitmq is not None:
        return not cfg.rabbitmq.exclude_unacknowledged
    return True


def queue_term(queue: QueueReading, cfg: TriggerConfig) -> Term:
    if cfg.mode is Mode.JOB:
        # Only the backlog no Job has claimed: KEDA's `accurate` strategy
        # subtracts pending Jobs itself, and in-flight messages already have one.
        unclaimed = queue.waiting
        return Term(
            name="queue",
            replicas=unclaimed / cfg.queue_length,
            active=unclaimed > cfg.activation_queue_length,
            reason=f"{unclaimed:g} unclaimed / queueLength {cfg.queue_length:g}",
        )
    work = counted_work(queue, cfg)
    parts = [f"{queue.waiting:g} waiting"]
    if _counts_in_flight(cfg) and queue.in_flight is not None:
        parts.append(f"{queue.in_flight:g} in flight")
    if cfg.sqs is not None and cfg.sqs.scale_on_delayed:
        parts.append(f"{queue.delayed:g} delayed")
    return Term(
        name="queue",
        replicas=work / cfg.queue_length,
        active=work > cfg.activation_queue_length,
        reason=f"({' + '.join(parts)}) / queueLength {cfg.queue_length:g}",
    )


def decide(signals: Signals, cfg: TriggerConfig, now: float) -> Decision:
    """Fuse the terms: desired = the largest ask, active = any term active.

    `now` (monotonic seconds) is an explicit input so that time-dependent terms
    (forecast freshness) never read a clock.
    """
    del now  # no term depends on time yet
    terms: list[Term] = []
    if signals.queue is not None:
        terms.append(queue_term(signals.queue, cfg))
    if not terms:
        return Decision(desired=0.0, active=False, winner="none", terms=())
    winner = max(terms, key=lambda t: t.replicas)
    desired = max(0.0, winner.replicas)
    return Decision(
        desired=desired,
        active=any(t.active for t in terms),
        winner=winner.name,
        terms=tuple(terms),
    )
