"""The simulated world, one second per step: a FIFO queue, GPU workers with
per-replica concurrency, and pods that serve nothing until Ready.

Work is a fluid where the trace is a count series (a scaled rate is fractional)
and whole requests where the trace is per request. Each step: completions free
their slots, the second's arrivals join the queue, and free slots on Ready pods
take work in arrival order. A started request holds one slot for its service
time (at least one step) and is acknowledged when it completes.

GPU duty cycle: a replica's GPU is busy in proportion to the slots in use
(in-flight / concurrency), so busy GPU-seconds = work-seconds / concurrency, the
floor no scaler can beat.
"""

from __future__ import annotations

import bisect
import math
import re
from dataclasses import dataclass

import numpy as np

from scaler.sim.traces import Trace


class ModelError(ValueError):
    """A service-time or cold-start model that cannot be used; the message says why."""


def _finite(text: str) -> float:
    """A finite number, else ValueError (float() takes "inf" and "nan")."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(text)
    return value


def _held(seconds: np.ndarray) -> np.ndarray:
    """Service times as the world serves them: whole one-second steps, at least one."""
    return np.maximum(1.0, np.round(seconds))


@dataclass(frozen=True)
class ServiceModel:
    """How long one request holds a slot.

    constant: `mean_s`; lognormal: mean `mean_s`, shape `sigma`; trace: the
    trace's service_s column; tokens: prefill_s_per_token x input tokens +
    decode_s_per_token x output tokens (LLM traces).
    """

    kind: str = "lognormal"
    mean_s: float = 2.0
    sigma: float = 0.5
    prefill_s_per_token: float = 0.0002
    decode_s_per_token: float = 0.03

    @staticmethod
    def parse(text: str) -> ServiceModel:
        """`2`, `constant:2`, `lognormal:2:0.5`, `trace`, `tokens` or `tokens:0.0002:0.03`."""
        parts = text.strip().split(":")
        try:
            # Service times must be positive: a zero-second request has no busy time, so
            # no floor to compare against.
            if re.fullmatch(r"[0-9.]+", parts[0]) and len(parts) == 1 and _finite(parts[0]) > 0:
                return ServiceModel("constant", _finite(parts[0]))
            if parts[0] == "constant" and len(parts) == 2 and _finite(parts[1]) > 0:
                return ServiceModel("constant", _finite(parts[1]))
            if parts[0] == "lognormal" and len(parts) in (2, 3) and _finite(parts[1]) > 0:
                sigma = _finite(parts[2]) if len(parts) == 3 else 0.5
                if sigma >= 0:
                    return ServiceModel("lognormal", _finite(parts[1]), sigma)
            if parts[0] == "trace" and len(parts) == 1:
                return ServiceModel("trace")
            if parts[0] == "tokens" and len(parts) == 1:
                return ServiceModel("tokens")
            if parts[0] == "tokens" and len(parts) == 3:
                prefill, decode = _finite(parts[1]), _finite(parts[2])
                if prefill >= 0 and decode >= 0 and prefill + decode > 0:
                    return ServiceModel("tokens", prefill_s_per_token=prefill, decode_s_per_token=decode)
        except ValueError:
            pass
        raise ModelError(
            f"service model {text!r}: expected SECONDS, constant:SECONDS, lognormal:MEAN[:SIGMA] "
            "(seconds > 0, sigma >= 0), trace (the trace's service_s) or "
            "tokens[:PREFILL_S_PER_TOKEN:DECODE_S_PER_TOKEN] (>= 0, not both 0)"
        )

    def per_request(self, trace: Trace) -> np.ndarray | None:
        """Each request's service time as the world holds a slot for it, in whole
        seconds (at least one), for the per-request models; None otherwise."""
        if self.kind == "trace":
            if trace.service_s is None:
                raise ModelError(f"{trace.name}: the trace has no service_s column (service model 'trace')")
            return _held(trace.service_s)
        if self.kind == "tokens":
            if trace.input_tokens is None or trace.output_tokens is None:
                raise ModelError(f"{trace.name}: the trace has no token counts (service model 'tokens')")
            prefill = trace.input_tokens * self.prefill_s_per_token
            return _held(prefill + trace.output_tokens * self.decode_s_per_token)
        return None

    def mean(self, trace: Trace) -> float:
        """The mean time a request holds a slot, in the world's whole seconds: what
        the floor counts and one replica's rate is sized from. (On the LLM code
        trace, where a fifth of the requests take under half a second, the
        unrounded mean was 19 % lower than what the world served.)"""
        per_request = self.per_request(trace)
        if per_request is not None:
            return float(per_request.mean()) if len(per_request) else 1.0
        pmf = self.completion_pmf()
        return float((np.arange(1, len(pmf) + 1) * pmf).sum())

    def completion_pmf(self) -> np.ndarray:
        """For the distribution models: the share of work started at step t that
        completes at step t + 1 + i (service rounded to whole steps, at least one)."""
        if self.kind == "constant":
            steps = max(1, round(self.mean_s))
            pmf = np.zeros(steps)
            pmf[-1] = 1.0
            return pmf
        if self.kind == "lognormal":
            mu = math.log(self.mean_s) - self.sigma**2 / 2
            # completes at step t + 1 + i when the service time rounds to i + 1 steps
            edges = np.arange(1.5, 60 * self.mean_s + 1.5, 1.0)
            z = (np.log(edges) - mu) / (self.sigma * math.sqrt(2))
            cdf = 0.5 * (1 + np.vectorize(math.erf)(z))
            pmf = np.diff(np.concatenate(([0.0], cdf)))
            pmf[-1] += 1.0 - pmf.sum()  # the far tail ends in the last step
            cut = int(np.flatnonzero(pmf > 1e-9)[-1]) + 1
            pmf = pmf[:cut] / pmf[:cut].sum()
            return pmf
        raise ModelError(f"service model {self.kind!r} has no distribution")

    def describe(self) -> str:
        if self.kind == "constant":
            return f"constant {self.mean_s:g} s"
        if self.kind == "lognormal":
            return f"lognormal, mean {self.mean_s:g} s, sigma {self.sigma:g}"
        if self.kind == "trace":
            return "the trace's service_s"
        return (
            f"from tokens: {self.prefill_s_per_token:g} s per input token + "
            f"{self.decode_s_per_token:g} s per output token"
        )


@dataclass(frozen=True)
class ColdStart:
    """Seconds from a pod's creation to Ready: `300`, `uniform:LO:HI` or `lognormal:MEDIAN:SIGMA`."""

    kind: str = "constant"
    a: float = 300.0
    b: float = 0.0

    @staticmethod
    def parse(text: str) -> ColdStart:
        parts = text.strip().split(":")
        try:
            if len(parts) == 1:
                value = _finite(parts[0])
                if value >= 0:
                    return ColdStart("constant", value)
            elif parts[0] == "uniform" and len(parts) == 3 and 0 <= _finite(parts[1]) <= _finite(parts[2]):
                return ColdStart("uniform", _finite(parts[1]), _finite(parts[2]))
            elif (
                parts[0] == "lognormal"
                and len(parts) == 3
                and _finite(parts[1]) > 0
                and _finite(parts[2]) >= 0
            ):
                return ColdStart("lognormal", _finite(parts[1]), _finite(parts[2]))
        except ValueError:
            pass
        raise ModelError(
            f"cold start {text!r}: expected SECONDS (>= 0), uniform:LO:HI or lognormal:MEDIAN:SIGMA"
        )

    @property
    def typical_s(self) -> float:
        if self.kind == "uniform":
            return (self.a + self.b) / 2
        return self.a

    def sample(self, rng: np.random.Generator) -> float:
        if self.kind == "uniform":
            return float(rng.uniform(self.a, self.b))
        if self.kind == "lognormal":
            return float(self.a * math.exp(self.b * rng.standard_normal()))
        return self.a

    def describe(self) -> str:
        if self.kind == "uniform":
            return f"uniform {self.a:g}-{self.b:g} s"
        if self.kind == "lognormal":
            return f"lognormal, median {self.a:g} s, sigma {self.b:g}"
        return f"{self.a:g} s"


@dataclass(frozen=True)
class WorldConfig:
    concurrency: int = 4  # requests one replica works on at once
    service: ServiceModel = ServiceModel()
    cold_start: ColdStart = ColdStart()
    graceful_scale_in: bool = True  # False: scale-in kills in-flight work (counted as lost)
    gpus_per_replica: float = 1.0
    drain_tail_s: int = 3600  # seconds simulated after the trace ends, so the queue can drain
    seed: int = 0


class World:
    """The queue, the workers and the pods. `step(t)` advances one second;
    `set_replicas(n, t)` is what the Deployment controller does for KEDA/the HPA."""

    def __init__(self, trace: Trace, cfg: WorldConfig) -> None:
        self.trace = trace
        self.cfg = cfg
        self.rng = np.random.default_rng(cfg.seed)
        self.steps = trace.duration_s + cfg.drain_tail_s
        self.arrivals = np.zeros(self.steps)
        self.arrivals[: trace.duration_s] = trace.counts
        self.per_request = cfg.service.per_request(trace)
        self.integral = self.per_request is not None  # whole requests
        self.pmf = None if self.integral else cfg.service.completion_pmf()
        horizon = (
            int(np.ceil(self.per_request.max())) + 2
            if self.per_request is not None and len(self.per_request)
            else (len(self.pmf) + 2 if self.pmf is not None else 2)
        )
        self.completions = np.zeros(self.steps + horizon + 1)
        self.horizon = horizon
        # Each request's service in whole seconds (at least one), rounded once here
        # (half to even, as round() rounds a float64) instead of per request served:
        # rounding a numpy scalar was the largest single cost of a per-request trace's world.
        self.service_ticks: list[int] = (
            np.maximum(1, np.rint(self.per_request)).astype(np.int64).tolist()
            if self.per_request is not None
            else []
        )
        self.next_request = 0
        # state
        self.waiting = 0.0
        self.in_flight = 0.0
        self.draining_work = 0.0  # in flight on pods being scaled in (graceful)
        self.draining_pods = 0.0  # those pods, billed until their work is done
        self.ready = 0
        self.starting: list[float] = []  # ready_at of pods not Ready yet, sorted
        self.lost = 0.0
        self.now = 0
        # per-second records
        self.rec_starts = np.zeros(self.steps)
        self.rec_pods = np.zeros(self.steps)
        self.rec_ready = np.zeros(self.steps)
        self.rec_waiting = np.zeros(self.steps)
        self.rec_in_flight = np.zeros(self.steps)
        self.rec_billed = np.zeros(self.steps)
        self.rec_busy_gpus = np.zeros(self.steps)
        self.replica_changes: list[tuple[int, int, int]] = []  # (t, before, after)

    # --- what KEDA and the HPA see -------------------------------------------------

    @property
    def pods(self) -> int:
        """Pods the Deployment has (Ready or starting), i.e. its replica count."""
        return self.ready + len(self.starting)

    def busy_gpus(self, t: int) -> float:
        """Summed duty cycle (GPU units) as dcgm-exporter last reported it
        (scraped every 15 s)."""
        return float(self.rec_busy_gpus[max(0, min(t - 1 - (t - 1) % 15, self.steps - 1))]) if t > 0 else 0.0

    def working_gpus(self, t: int, activation: float) -> float:
        """GPUs busier than `activation` (a fraction), as the guard query counts
        them (dcgm-exporter scraped every 15 s). Consumers take messages in turn
        (RabbitMQ round-robin, SQS long polls), so in-flight requests sit on
        different pods as long as there are pods without one: the working pods
        are min(pods, in flight). A GPU with one request of `concurrency` is busy
        well above any activation level (a batching server's kernels run
        whenever it has a request)."""
        if t <= 0:
            return 0.0
        i = max(0, t - 1 - (t - 1) % 15)
        pods = self.rec_ready[i] + self.rec_billed[i] - self.rec_pods[i]  # ready + draining
        work = self.rec_in_flight[i]
        if work <= 0 or pods <= 0 or activation >= 1.0:
            return 0.0
        return float(min(pods, work) * self.cfg.gpus_per_replica)

    def arrival_rate(self, t: int, window_s: int) -> float:
        """Arrivals per second over the last `window_s` seconds before t."""
        if t <= 0:
            return 0.0
        lo = max(0, t - window_s)
        return float(self.arrivals[lo:t].sum() / (t - lo))

    # --- the Deployment controller ---------------------------------------------------

    def set_replicas(self, n: int, t: int) -> None:
        current = self.pods
        if n == current:
            return
        self.replica_changes.append((t, current, n))
        if n > current:
            for _ in range(n - current):
                bisect.insort(self.starting, t + self.cfg.cold_start.sample(self.rng))
            return
        remove = current - n
        # The ReplicaSet deletes pods that are not Ready first (the newest of them first).
        drop_starting = min(remove, len(self.starting))
        if drop_starting:
            del self.starting[len(self.starting) - drop_starting :]
        remove -= drop_starting
        if remove and self.ready:
            share = remove / self.ready
            serving = self.in_flight - self.draining_work
            moved = serving * share
            self.ready -= remove
            if self.cfg.graceful_scale_in:
                self.draining_work += moved
                self.draining_pods += remove if moved > 0 else 0
            elif moved > 0:
                self._lose(moved, t)

    def _lose(self, amount: float, t: int) -> None:
        """Kill `amount` of the in-flight work: it never completes."""
        if self.in_flight <= 0:
            return
        keep = 1.0 - amount / self.in_flight
        # The controller acts before step(t): completions due at t are still in flight.
        start = max(0, t)
        self.completions[start : start + 1 + self.horizon] *= keep
        self.in_flight -= amount
        self.lost += amount

    # --- one second ----------------------------------------------------------------

    def step(self, t: int) -> None:
        self.now = t
        starting = self.starting
        while starting and starting[0] <= t:
            starting.pop(0)
            self.ready += 1
        done = self.completions[t]
        if done:
            if self.draining_work > 0:
                share = min(1.0, self.draining_work / self.in_flight) if self.in_flight > 0 else 1.0
                before = self.draining_work
                self.draining_work = max(0.0, before - done * share)
                self.draining_pods *= self.draining_work / before if before > 0 else 0.0
                if self.draining_work < 1e-9:
                    self.draining_work = self.draining_pods = 0.0
            self.in_flight = max(0.0, self.in_flight - done)
        self.waiting += self.arrivals[t]
        concurrency = self.cfg.concurrency
        free = self.ready * concurrency - (self.in_flight - self.draining_work)
        started = 0.0
        if free > 0 and self.waiting > 0:
            started = min(free, self.waiting)
            if self.integral:
                started = math.floor(started + 1e-9)
            if started > 0:
                self.waiting -= started
                self.in_flight += started
                self._schedule(t, started)
        pods = self.ready + len(starting)
        self.rec_starts[t] = started
        self.rec_pods[t] = pods
        self.rec_ready[t] = self.ready
        self.rec_waiting[t] = self.waiting
        self.rec_in_flight[t] = self.in_flight
        self.rec_billed[t] = pods + self.draining_pods
        self.rec_busy_gpus[t] = self.in_flight / concurrency * self.cfg.gpus_per_replica

    def _schedule(self, t: int, started: float) -> None:
        if self.per_request is not None:
            first = self.next_request
            count = int(started)
            self.next_request = first + count
            completions = self.completions
            for ticks in self.service_ticks[first : first + count]:
                completions[t + ticks] += 1.0
        else:
            assert self.pmf is not None
            if len(self.pmf) == 1:
                self.completions[t + 1] += started
            else:
                self.completions[t + 1 : t + 1 + len(self.pmf)] += started * self.pmf

    # --- after the run -----------------------------------------------------------------

    def busy_gpu_seconds(self) -> float:
        """Work-seconds / concurrency x GPUs per replica: the floor's numerator, in
        the seconds the world holds slots for."""
        if self.per_request is not None:
            work = float(self.per_request.sum())
        else:
            work = float(self.arrivals.sum()) * self.cfg.service.mean(self.trace)
        return work / self.cfg.concurrency * self.cfg.gpus_per_replica
