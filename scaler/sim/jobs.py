"""ScaledJobs: one Job per message, created by KEDA's polling loop per its
scaling strategy (scaler.explain.scaled_job_outcome, the function `prewarm
explain` uses), in a per-message world.

A Job's pod is Pending (scheduling, image pull) for the first `pull_share` of
its cold start, then Running but not Ready (loading the model) until the cold
start ends. KEDA counts it as pending only while Pending, unless the ScaledJob
sets pendingPodConditions (then until Ready). A Ready Job takes one waiting
message, works on it for its service time and completes; a Job that finds the
queue empty waits `idle_wait_s` for a message, then exits having done nothing
(the what-if: docs/forecast.md's worker, 2 x the trigger's coldStartSeconds).

A count series is replayed as whole messages: each bin keeps its count, placed at
random (seeded) seconds inside it. With `scored_from_s`, everything before it is
history: it drives KEDA and the forecaster but is neither scored nor billed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from scaler.clock import ManualClock
from scaler.config import parse_trigger
from scaler.explain import SCALED_JOB, Target, scaled_job_outcome
from scaler.sim.keda import KEDA_POLLING_S
from scaler.sim.policies import PrewarmTrigger
from scaler.sim.traces import Trace
from scaler.sim.world import WorldConfig

# How long a Job that finds no message waits for one in `simulate --jobs` and the
# evaluation (a generic worker); the what-if uses the user's worker (worker_idle_wait_s).
GENERIC_IDLE_WAIT_S = 60.0
# A bin's count within this of a whole number is that whole number (float spreading).
WHOLE_TOLERANCE = 1e-6


def worker_idle_wait_s(metadata: Mapping[str, str]) -> float:
    """How long docs/forecast.md's worker waits for a message before it exits: 2 x
    the trigger's coldStartSeconds (what the worker is told, whatever the cold start
    simulated). Raises ConfigError on bad metadata."""
    return 2.0 * parse_trigger(metadata).forecast.cold_start_seconds


def whole_arrivals(counts: np.ndarray, bin_s: float, rng: np.random.Generator) -> np.ndarray:
    """Whole messages per second from a count series (`counts` per second, spread evenly
    over bins of `bin_s`): each bin keeps its count, placed at random seconds inside it
    (weighted by the per-second counts, uniform within a bin of the file), so the total
    is the trace's. A bin whose count is not whole (a rate scale, a bin cut by slicing,
    a Prometheus rate) is rounded up with the probability of its fraction."""
    n = len(counts)
    if n == 0:
        return np.zeros(0)
    width = max(1, round(bin_s))
    bins = -(-n // width)
    padded = np.zeros(bins * width)
    padded[:n] = counts
    grid = padded.reshape(bins, width)
    cum = grid.cumsum(axis=1)
    totals = cum[:, -1]
    nearest = np.round(totals)
    exact = np.abs(totals - nearest) <= WHOLE_TOLERANCE * np.maximum(1.0, totals)
    floor = np.floor(totals)
    whole = np.where(exact, nearest, floor + (rng.random(bins) < totals - floor)).astype(np.int64)
    if width == 1:
        return whole[:n].astype(float)
    # Each message's second: its bin plus a uniform draw through the bin's cumulative
    # weights, laid end to end (bin b spans [b, b + 1]) so that one search places all.
    cdf = np.where(cum >= totals[:, None], 1.0, cum / np.where(totals > 0, totals, 1.0)[:, None])
    ends = np.arange(bins)[:, None] + cdf
    owner = np.repeat(np.arange(bins), whole)
    index = np.searchsorted(ends.ravel(), owner + rng.random(len(owner)), side="right")
    last = width - 1 - np.argmax(grid[:, ::-1] > 0, axis=1)  # each bin's last second with weight
    index = np.minimum(index, owner * width + last[owner])  # rounding at a bin's very end
    return np.bincount(index, minlength=bins * width)[:n].astype(float)


@dataclass
class _Job:
    created: float
    pulled: float  # Pending until then
    ready: float
    busy_until: float = -1.0  # > 0 once it holds a message
    idle_since: float = -1.0
    done: float = -1.0


class JobWorld:
    """The queue and the Jobs; the attributes the simulated sources read
    (waiting, in_flight, arrival_rate) match World's."""

    def __init__(
        self,
        trace: Trace,
        cfg: WorldConfig,
        *,
        idle_wait_s: float = GENERIC_IDLE_WAIT_S,
        pull_share: float = 0.5,
        pending_until_ready: bool = False,
        scored_from_s: int = 0,
    ) -> None:
        self.cfg = cfg
        self.rng = np.random.default_rng(cfg.seed)
        self.steps = trace.duration_s + cfg.drain_tail_s
        counts = np.zeros(self.steps)
        if trace.request_times is None:  # a count series: each bin's whole count at random seconds in it
            counts[: trace.duration_s] = whole_arrivals(trace.counts, trace.bin_s, self.rng)
            times = np.repeat(np.arange(self.steps, dtype=float), counts.astype(np.int64))
        else:
            counts[: trace.duration_s] = trace.counts
            times = trace.request_times
        self.arrivals = counts
        self.arrival_times = times
        service = cfg.service.per_request(trace)
        if service is None:
            pmf = cfg.service.completion_pmf()
            service = (self.rng.choice(len(pmf), size=len(times), p=pmf) + 1).astype(float)
        self.service = np.maximum(1.0, np.round(service))
        self.idle_wait_s = idle_wait_s
        self.scored_from_s = scored_from_s
        self.pull_share = pull_share
        self.pending_until_ready = pending_until_ready
        self.jobs: list[_Job] = []
        self.active: list[_Job] = []
        self.next_message = 0  # messages [next_message, arrived) are waiting
        self.arrived = 0
        self.in_flight = 0.0
        self.starts = np.full(len(times), np.nan)
        self.jobs_created = 0
        self.rec_waiting = np.zeros(self.steps)
        self.rec_jobs = np.zeros(self.steps)
        self.billed_seconds = 0.0

    @property
    def waiting(self) -> float:
        return float(self.arrived - self.next_message)

    def arrival_rate(self, t: int, window_s: int) -> float:
        lo = max(0, t - window_s)
        return float(self.arrivals[lo:t].sum() / (t - lo)) if t > lo else 0.0

    def running_and_pending(self, t: float) -> tuple[int, int]:
        running = len(self.active)
        if self.pending_until_ready:
            pending = sum(1 for job in self.active if job.ready > t)
        else:
            pending = sum(1 for job in self.active if job.pulled > t)
        return running, pending

    def create(self, n: int, t: float) -> None:
        for _ in range(n):
            cold = self.cfg.cold_start.sample(self.rng)
            job = _Job(created=t, pulled=t + cold * self.pull_share, ready=t + cold)
            self.jobs.append(job)
            self.active.append(job)
        self.jobs_created += n

    def _take(self, job: _Job, t: int) -> None:
        """`job` takes the oldest waiting message at second `t`."""
        i = self.next_message
        self.next_message += 1
        self.starts[i] = max(float(t), self.arrival_times[i])
        job.busy_until = t + self.service[i]
        self.in_flight += 1

    def claim(self, t: int) -> None:
        """Jobs Ready by second `t` and still without a message take what waits,
        before KEDA's poll in that second counts the queue. A worker receives
        within milliseconds of becoming Ready, so a real poll almost never falls
        between the two; on this one-second grid a constant cold start that is a
        multiple of the polling interval would put every Job's first second on a
        poll, and `accurate`/`eager` would create a duplicate for each."""
        for job in self.active:
            if self.next_message >= self.arrived:
                return
            if job.ready <= t and job.busy_until < 0:
                self._take(job, t)

    def step(self, t: int) -> None:
        self.arrived += int(self.arrivals[t])
        still: list[_Job] = []
        for job in self.active:
            if job.ready > t:
                still.append(job)
                continue
            if job.busy_until > 0:
                if job.busy_until <= t:
                    job.done = t
                    self.in_flight -= 1
                    continue
                still.append(job)
                continue
            if self.next_message < self.arrived:
                self._take(job, t)
                still.append(job)
                continue
            if job.idle_since < 0:
                job.idle_since = t
            if t - job.idle_since >= self.idle_wait_s:
                job.done = t  # found no work: exits
                continue
            still.append(job)
        self.active = still
        if t >= self.scored_from_s:  # history is not billed; a Job across the boundary only after it
            self.billed_seconds += len(still)
        self.rec_waiting[t] = self.waiting
        self.rec_jobs[t] = len(still)


STRATEGIES = ("default", "accurate", "eager")


@dataclass(frozen=True)
class JobPolicy:
    name: str
    strategy: str
    prewarm: bool  # Prewarm's engine (mode: job) or KEDA's own queue scaler
    pending_until_ready: bool
    max_replicas: int = 100
    queue_length: float = 1.0  # stock KEDA's queueLength (messages per Job)


def job_policies(max_replicas: int = 100) -> list[JobPolicy]:
    """Each strategy for stock KEDA's queue scaler (pendingPodConditions unset,
    KEDA's default) and for Prewarm; plus accurate with pendingPodConditions
    ["Ready"], the set-up the README recommends."""
    out = []
    for strategy in STRATEGIES:
        out.append(JobPolicy(f"keda-job-{strategy}", strategy, False, False, max_replicas))
        out.append(JobPolicy(f"prewarm-job-{strategy}", strategy, True, False, max_replicas))
    out.append(JobPolicy("keda-job-accurate-ready", "accurate", False, True, max_replicas))
    out.append(JobPolicy("prewarm-job-accurate-ready", "accurate", True, True, max_replicas))
    return out


def prewarm_job_metadata() -> dict[str, str]:
    return {
        "scalerAddress": "prewarm.keda:6000",
        "source": "rabbitmq",
        "host": "http://guest:guest@rabbitmq.sim:15672/",
        "queueName": "work",
        "mode": "job",
        "queueLength": "1",
    }


def simulate_jobs(
    trace: Trace,
    cfg: WorldConfig,
    policy: JobPolicy,
    slo_s: float = 60.0,
    progress: Callable[[int], object] | None = None,
    *,
    target: Target | None = None,
    metadata: Mapping[str, str] | None = None,
    polling_s: float = KEDA_POLLING_S,
    idle_wait_s: float = GENERIC_IDLE_WAIT_S,
    scored_from_s: int = 0,
) -> dict[str, Any]:
    """`target` and `metadata`: the user's ScaledJob and trigger (the what-if);
    by default a ScaledJob with the policy's strategy and Prewarm's job metadata.
    `idle_wait_s`: how long a Job that finds no message waits for one (every Job:
    one worker). `scored_from_s`: the seconds before it are history (as
    run.Scenario.warmup_s): simulated, but only messages arriving from it on are
    scored, only Jobs created from it on are counted, and Jobs are billed for their
    seconds from it on (a Job alive across it, for its part after it)."""
    world = JobWorld(
        trace,
        cfg,
        idle_wait_s=idle_wait_s,
        pending_until_ready=policy.pending_until_ready,
        scored_from_s=scored_from_s,
    )
    clock = ManualClock(start=0.0, wall_offset=0.0)
    if target is None:
        target = Target(
            kind=SCALED_JOB,
            name="jobs",
            namespace="sim",
            trigger_index=0,
            trigger_type="external",
            metadata={},
            max_replicas=policy.max_replicas,
            strategy=policy.strategy,
        )
    job_metadata = metadata if metadata is not None else prewarm_job_metadata()
    prewarm = PrewarmTrigger(world, clock, job_metadata) if policy.prewarm else None
    polling = max(1, int(polling_s))
    for t in range(world.steps):
        if t % polling == 0:
            clock.now = float(t)
            world.claim(t)
            if prewarm is not None:
                desired, _, active = prewarm.read(t)
            else:
                # KEDA's rabbitmq scaler, mode QueueLength, over AMQP (ready messages: the unclaimed backlog).
                desired = world.waiting
                active = desired > 0
            running, pending = world.running_and_pending(t)
            per_job = 1.0 if prewarm is not None else policy.queue_length  # the metric's target
            outcome = scaled_job_outcome(target, desired, active, running, pending, per_job=per_job)
            world.create(int(outcome["jobs_created"]), t)
        world.step(t)
        if progress is not None and t % 3600 == 3599:
            progress(3600)
    scored = world.arrival_times >= scored_from_s
    n = int(scored.sum())
    started = ~np.isnan(world.starts[scored])
    wait = np.where(started, world.starts[scored], world.steps) - world.arrival_times[scored]
    counted = [job for job in world.jobs if job.created >= scored_from_s]
    wasted = sum(1 for job in counted if job.busy_until < 0)
    return {
        "policy": policy.name,
        "strategy": policy.strategy,
        "pending_pod_conditions": ["Ready"] if policy.pending_until_ready else [],
        "messages": n,
        "jobs_created": len(counted),
        "jobs_per_message": len(counted) / n if n else math.nan,
        "jobs_without_work": wasted,
        "gpu_hours": world.billed_seconds * cfg.gpus_per_replica / 3600,
        "floor_gpu_hours": float(world.service[scored].sum()) * cfg.gpus_per_replica / 3600,
        "wait_p50_s": float(np.percentile(wait, 50)) if n else 0.0,
        "wait_p95_s": float(np.percentile(wait, 95)) if n else 0.0,
        "wait_p99_s": float(np.percentile(wait, 99)) if n else 0.0,
        "slo_violation_share": float((wait > slo_s).mean()) if n else 0.0,
        # A message that waits in a ScaledJob waits for a Job to be created and start.
        "cold_start_waits": int((wait >= 1.0).sum()),
        "unserved": int((~started).sum()),
    }
