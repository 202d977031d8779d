"""The scaling decision: pure functions from (signals, config, now) to a Decision.

No I/O and no clock reads here: everything the decision depends on is an
argument, so the server, `explain` and the simulator all share this code.

The answer's unit is replicas (or Jobs, in job mode): KEDA gets
`metricValueFloat = desired` against `targetSizeFloat = 1`, so the HPA's
`ceil(value / 1)` is the replica count.

The terms, each in replicas, each with its own active flag:
- "queue": counted work / queueLength (see queue_term);
- "gpu" (gpuRole demand) or "gpu-guard" (gpuRole guard): from busy GPUs (see gpu_term);
- "forecast": the forecast floor, when the forecaster provides one.
desired = the largest term (ties go to the earlier term: queue, then GPU, then
forecast); active = any term active. In-flight work (in deployment mode, whether
or not it is counted in the metric) and busy GPUs are the keep-alive guards: a pool
with nothing waiting but work in progress stays active, so KEDA's cooldown never
scales a working pool to zero.
"""

from __future__ import annotations

import dataclasses
import math
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from scaler.config import COLD_START_BOUNDS, GpuConfig, GpuRole, Mode, RabbitMeasure, TriggerConfig
from scaler.forecast.model import MAX_RATE
from scaler.signals.base import GpuReading, QueueReading


@dataclass(frozen=True)
class Signals:
    """What was read for one trigger. None = not configured for this trigger."""

    queue: QueueReading | None = None
    gpu: GpuReading | None = None
    # Replicas the forecast says will be needed one cold start from now (filled
    # by the forecaster); None when there is no forecast.
    forecast_floor: float | None = None
    # Why the forecast asks for that floor (the term's reason), from the engine.
    forecast_reason: str | None = None
    # The measured arrival rate (requests/s: arrivalQuery, else the queue's publish
    # rate, which the engine averages over at most a minute: see smoothed_rate) and
    # the cold start in use (seconds), for the capacity-aware queue term (see
    # capacity_queue_term); None when unknown.
    arrival_rate: float | None = None
    cold_start: float | None = None
    # Seconds since the queue was last seen quiet (nothing waiting or in flight, and
    # its arrival rate under QUIET_RATE), from the engine's memory of earlier
    # readings; None when it has not been seen quiet (or cannot tell in-flight work).
    since_quiet: float | None = None
    # The arrival rate the capacity term holds (see burst_level): the bursts' rate in
    # the hold window (holdSeconds, else the cold start in use), or with holdSeconds
    # unset the rate of bursts that came back within RECURRING_HOLD_S where that is
    # higher; None when not measured or the hold is off. held_window: the window it
    # was found in (None: the hold window).
    held_rate: float | None = None
    held_window: float | None = None


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
        """The deprecated int64 metric: the replicas the HPA derives from
        `metricValueFloat`, so a KEDA reading either field gets the same count."""
        return hpa_replicas(self.desired)

    @property
    def replicas(self) -> int:
        return self.metric_value

    def key(self) -> tuple[int, bool, str]:
        """What must change for the decision to count as changed (for logs)."""
        return (self.replicas, self.active, self.winner)


# The largest answer: far above any maxReplicaCount (Kubernetes' replica counts are
# int32, and the HPA clamps to maxReplicaCount anyway), and within what the answer can
# carry: the int64 `metricValue` (desired 1e30 failed GetMetrics with ValueError) and
# KEDA's int64 milli-quantity (9.2e15). An infinite ask (KEDA reads inf as 0) is this too.
MAX_DESIRED = 1e9


def keda_milli(value: float) -> int:
    """The value as KEDA hands it to the HPA, in thousandths: KEDA formats it with
    `%.3f` (rounded to nearest, pkg/scalers/scaler.go: quantityFromFloat64) and
    treats NaN, infinities and negatives as 0. Python's `%.3f` rounds exactly as
    Go's does (correctly rounded from the binary value, ties to even)."""
    if not math.isfinite(value) or value < 0:
        return 0
    return int(f"{value:.3f}".replace(".", ""))


def hpa_replicas(value: float) -> int:
    """The HPA's ceil(value / target 1) on the value it really sees (keda_milli):
    1.0007 reaches it as 1.001, so 2 replicas; float noise such as
    2.0000000000000004 reaches it as 2.000, so 2, not 3."""
    return -(-keda_milli(value) // 1000)


def counted_work(queue: QueueReading, cfg: TriggerConfig) -> float:
    """Messages that count as work in deployment mode: waiting, plus in-flight
    unless disabled, plus delayed if enabled."""
    work = queue.waiting
    if _counts_in_flight(cfg) and queue.in_flight is not None:
        work += queue.in_flight
    if cfg.sqs is not None and cfg.sqs.scale_on_delayed:
        work += queue.delayed
    return work


def counted_messages(queue: QueueReading, cfg: TriggerConfig) -> float:
    """The messages the queue term counts, in messages whatever its replicas are
    (capacity-aware, a publish rate): the unclaimed backlog in job mode, else
    counted_work."""
    return queue.waiting if cfg.mode is Mode.JOB else counted_work(queue, cfg)


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
    if cfg.rabbitmq is not None and cfg.rabbitmq.measure is RabbitMeasure.MESSAGE_RATE:
        return _message_rate_term(queue, cfg, work)
    parts = [f"{queue.waiting:g} waiting"]
    if _counts_in_flight(cfg) and queue.in_flight is not None:
        parts.append(f"{queue.in_flight:g} in flight")
    if cfg.sqs is not None and cfg.sqs.scale_on_delayed:
        parts.append(f"{queue.delayed:g} delayed")
    reason = f"({' + '.join(parts)}) / queueLength {cfg.queue_length:g}"
    # Keep-alive guard: messages in flight are being worked on by running pods.
    # Whatever activationQueueLength or scaleOnInFlight say about the metric,
    # an inactive answer here would let KEDA's cooldown scale busy pods to zero.
    keep_alive = bool(queue.in_flight) and work <= cfg.activation_queue_length
    if keep_alive:
        reason += f"; kept active: {queue.in_flight:g} in flight"
    return Term(
        name="queue",
        replicas=work / cfg.queue_length,
        active=work > cfg.activation_queue_length or keep_alive,
        reason=reason,
    )


def capacity_queue_term(
    queue: QueueReading,
    cfg: TriggerConfig,
    arrival_rate: float,
    cold_start: float,
    since_quiet: float | None = None,
    held_rate: float | None = None,
    held_window: float | None = None,
) -> Term:
    """The queue term when one replica's throughput is known (replicaThroughput)
    and the arrival rate is measured: the replicas that serve what arrives, plus
    those that drain, over the drain horizon D (drainSeconds, else one cold start),
    the backlog there will be when replicas asked for now are Ready.

        serving  = max(in_flight / queueLength, max(arrival_rate, held_rate) / replicaThroughput)
        backlog  = waiting (+ delayed, with scaleOnDelayed)
                   + max(0, arrival_rate - in_flight / queueLength * replicaThroughput) * L
                   (that growth while messages wait; 0 otherwise)
        replicas = serving + backlog / (replicaThroughput * D)        L = the cold start in use

    held_rate (RateHistory.held, burst_level) is the rate of the bursts in the
    hold window H (holdSeconds, else L): a gap in bursty traffic shorter than a
    cold start does not take the replicas of its bursts away, only for the next
    burst to wait a cold start for them (ski rental: keeping an idle replica for
    a cold start costs no more than starting it again). With holdSeconds unset it
    is also the rate of bursts that came back within RECURRING_HOLD_S
    (held_window), where that is higher.

    Waking: at least the plain term, as stock KEDA asks, while messages wait and
    either none is in flight (no replica is consuming, so every waiting message
    waits for a cold start whatever is asked) or the queue was quiet less than a
    cold start ago (since_quiet < L: the work arrived from silence, so the
    replicas there are the few a quiet queue keeps, minReplicaCount, and the rate
    average is still learning the new rate from nothing). Spreading that first
    backlog's drain over D would add D to the wait of requests that already
    waited up to a cold start; a cold start after the quiet the rate is learnt,
    the replicas asked at the wake are Ready, and the capacity term sizes the
    pool again.

    Why: replicas asked for now serve only once Ready, one cold start L from now.
    The plain term (counted work / queueLength, shown in the reason) turns the
    backlog that piles up during a cold start into backlog / queueLength replicas:
    a burst drives the workload to maxReplicaCount, whose pods arrive a cold start
    later, drain the queue in seconds and then idle through the HPA's scale-down
    window. Here the arrival rate is served at the utilisation replicaThroughput
    stands for (the pool keeps that headroom under a steady load, where the plain
    term asks for the busy replicas only); while messages wait, every ready
    replica is busy, so the backlog grows by the arrivals the busy replicas do not
    serve (in_flight / queueLength of them, at replicaThroughput: conservative)
    until the new replicas are Ready, and that backlog is drained over one more
    cold start, the time it took to build up. In-flight work keeps the replicas
    working on it, and activation and the keep-alive guard are the plain term's."""
    plain = queue_term(queue, cfg)
    throughput = cfg.forecast.replica_throughput
    assert throughput is not None and throughput > 0
    horizon = max(1.0, cold_start)
    drain = cfg.forecast.drain_seconds if cfg.forecast.drain_seconds is not None else horizon
    rate = max(0.0, arrival_rate)
    held = max(rate, held_rate or 0.0)
    in_flight = queue.in_flight or 0.0
    busy = in_flight / cfg.queue_length
    serving = max(busy, held / throughput)
    # Delayed messages are work to come when scaleOnDelayed says so, as in the plain
    # term; they do not mean the ready replicas are saturated, so no growth from them.
    delayed = queue.delayed if cfg.sqs is not None and cfg.sqs.scale_on_delayed else 0.0
    pending = queue.waiting + delayed
    growth = max(0.0, rate - busy * throughput) if queue.waiting > 0 else 0.0
    backlog = pending + growth * horizon
    replicas = serving + backlog / (throughput * drain)
    over = "the cold start" if cfg.forecast.drain_seconds is None else f"drainSeconds {drain:g}s"
    counted = f"{queue.waiting:g} waiting" + (f" + {delayed:g} delayed" if delayed else "")
    arriving = f"{rate:.3g}/s"
    if held > rate:
        window = hold_window(cfg, cold_start)
        if held_window is not None and held_window > window:
            seen = f"bursts that came back in the last {held_window:g}s"
        else:
            seen = f"the bursts' rate in the last {window:g}s"
        arriving = f"{held:.3g}/s held ({seen}; now {rate:.3g}/s)"
    reason = (
        f"capacity: max({in_flight:g} in flight / queueLength {cfg.queue_length:g}, "
        f"{arriving} / replicaThroughput {throughput:g}) + backlog at Ready ({counted} "
        f"+ {growth:.3g}/s unserved * {horizon:g}s) drained over {over} = {replicas:.3g} "
        f"(plain {plain.replicas:.3g})"
    )
    # In flight None (unknown) is neither consuming nor idle: not waking.
    from_zero = pending > 0 and queue.in_flight == 0
    from_quiet = pending > 0 and since_quiet is not None and since_quiet < horizon
    if (from_zero or from_quiet) and plain.replicas > replicas:
        replicas = plain.replicas
        why = "nothing in flight" if from_zero else f"quiet {since_quiet:.0f}s ago"
        reason += f"; waking ({why}): the plain term, {replicas:.3g}"
    return dataclasses.replace(plain, replicas=replicas, reason=reason)


# The publish rate the capacity term uses is an exponential average as short as its
# measured noise allows: a 5 s publish-rate sample of Poisson arrivals is noisy (about
# 20 % at 4/s), and the HPA keeps the highest replica count asked in its 5-minute
# scale-down window, so every upward blip became replicas held for minutes; but a
# fixed minute lags every ramp of a rate that is not that noisy. The average's
# relative standard error is held at RATE_PRECISION (what the minute gives Poisson
# arrivals at 4/s: 4.6 %), with a time constant of at most RATE_SMOOTHING_S. The
# noise is learnt over RATE_NOISE_S; until a minute of it is in, the full minute.
RATE_SMOOTHING_S = 60.0
RATE_NOISE_S = 600.0
RATE_PRECISION = 0.04


# A queue is quiet when nothing waits or is in flight and its arrival rate is under one
# request per RATE_SMOOTHING_S. The averaged rate of a queue that had work falls under
# that only after minutes of silence (about 5 minutes from 3/s), so the gaps between the
# requests of a busy queue, or a pool that momentarily catches up, are not quiet.
QUIET_RATE = 1.0 / RATE_SMOOTHING_S


def is_quiet(queue: QueueReading, arrival_rate: float) -> bool:
    """Whether the queue is quiet (see QUIET_RATE); never when in-flight work is
    unknown (AMQP), which could hide a busy pool."""
    return (
        queue.in_flight is not None
        and queue.waiting <= 0
        and queue.in_flight <= 0
        and arrival_rate < QUIET_RATE
    )


class RateAverage(NamedTuple):
    """One queue's averaged publish rate (see smoothed_rate)."""

    read_at: float  # monotonic seconds of the last reading fed
    value: float  # the average (requests/s)
    last: float  # the last reading's rate
    # Exponential average (time constant RATE_NOISE_S, from 0) of half the squared
    # change between successive readings, and the weight of its history so far
    # (1 - exp(-span / RATE_NOISE_S)): noise / covered estimates one reading's variance.
    noise: float
    covered: float


def smoothed_rate(previous: RateAverage | None, read_at: float, rate: float) -> RateAverage:
    """The average after a reading of `rate` taken at `read_at` (monotonic seconds),
    each reading counted once (a reading seen again, same read_at, changes nothing).
    The first reading, or one older than the last (a clock reset), starts afresh.

        average += w * (rate - average)
        w = max(1 - exp(-dt / RATE_SMOOTHING_S), min(1, 2r / (1 + r))),
        r = (RATE_PRECISION * average)^2 / s^2

    Why: an exponential average with weight w of readings with independent noise
    of variance s^2 has variance s^2 * w / (2 - w); w = 2r / (1 + r) is the
    largest weight (the shortest average, the least lag on a ramp) that keeps its
    standard error within RATE_PRECISION of the average. s^2 is half the mean
    squared change between successive readings, which a ramp barely moves (the
    change between readings, not the distance from a lagging average). A quiet
    rate is followed within seconds; a noisy one (per-request LLM traffic) keeps
    the minute; an idle one (average 0), or one whose noise is not yet known,
    the minute."""
    # Not a reading, and the average stands: a non-finite rate, or one past the
    # forecaster's MAX_RATE (a corrupt sample; squared, past about 1e154, it would
    # overflow the noise estimate).
    if not math.isfinite(rate) or rate > MAX_RATE:
        return previous if previous is not None else RateAverage(read_at, 0.0, 0.0, 0.0, 0.0)
    rate = max(0.0, rate)
    if previous is None or read_at < previous.read_at:
        return RateAverage(read_at, rate, rate, 0.0, 0.0)
    if read_at == previous.read_at:
        return previous
    elapsed = read_at - previous.read_at
    learn = 1.0 - math.exp(-elapsed / RATE_NOISE_S)
    noise = previous.noise + learn * ((rate - previous.last) ** 2 / 2 - previous.noise)
    covered = previous.covered + learn * (1.0 - previous.covered)
    average = previous.value
    weight = 1.0 - math.exp(-elapsed / RATE_SMOOTHING_S)
    if covered >= 1.0 - math.exp(-RATE_SMOOTHING_S / RATE_NOISE_S) and average > 0:
        variance = noise / covered
        if variance <= 0:
            weight = 1.0  # no noise at all: nothing to average out
        else:
            r = (RATE_PRECISION * average) ** 2 / variance
            weight = max(weight, min(1.0, 2 * r / (1 + r)))
    return RateAverage(read_at, average + weight * (rate - average), rate, noise, covered)


# The average counts one reading per RATE_SAMPLE_S interval (of the reading's monotonic
# time): the last one read in it, counted when a reading of a later interval comes. How
# often the engine is asked is the caller's: KEDA's polls and the HPA's syncs (an
# `external` trigger), a stream that evaluates every second (`external-push`, a new
# reading each cache TTL), several objects on one queue, the simulator. Counting every
# reading made the average a function of that: readings 2 s apart share most of their
# 5 s publish-rate sample, so their changes understated its noise and the average
# shortened (bench/bench_stream_cadence.py: Prewarm's GPU-hours -6.6 to +8.4 % apart on
# the evaluation's cases between the stream's every second and the polls and syncs
# alone; -3.5 to +3.7 % counting one per 15 s). 15 s is the HPA's sync period,
# the most often a replica count is acted on. A decision still uses the latest
# reading, as if it were counted (SampledRate.value).
RATE_SAMPLE_S = 15.0


class SampledRate(NamedTuple):
    """One queue's publish rate as the capacity term averages it (sampled_rate)."""

    counted: RateAverage | None  # the average of the readings counted (None: none yet)
    # The average with the latest reading, not counted yet, counted as well (its read_at
    # and last are that reading's): what a decision uses, made once per reading, since
    # every object on the queue and every stream tick on a cached reading asks; and what
    # `counted` becomes once a reading of a later interval comes.
    latest: RateAverage

    @property
    def value(self) -> float:
        return self.latest.value


def sampled_rate(previous: SampledRate | None, read_at: float, rate: float) -> SampledRate:
    """The state after a reading of `rate` at `read_at` (monotonic seconds): the
    latest reading of each RATE_SAMPLE_S interval is counted (smoothed_rate) when
    one of a later interval comes; a reading seen again changes nothing; the
    first, or one older than the latest (a clock reset), starts afresh. Not a
    reading (non-finite, past MAX_RATE): the state stands."""
    if not math.isfinite(rate) or rate > MAX_RATE or not math.isfinite(read_at):
        return (
            previous
            if previous is not None
            else SampledRate(None, RateAverage(-math.inf, 0.0, 0.0, 0.0, 0.0))
        )
    rate = max(0.0, rate)
    latest_at = previous.latest.read_at if previous is not None else -math.inf
    if previous is None or not math.isfinite(latest_at) or read_at < latest_at:
        return SampledRate(None, smoothed_rate(None, read_at, rate))
    if read_at == latest_at:
        return previous
    if math.floor(read_at / RATE_SAMPLE_S) == math.floor(latest_at / RATE_SAMPLE_S):
        return SampledRate(previous.counted, smoothed_rate(previous.counted, read_at, rate))
    return SampledRate(previous.latest, smoothed_rate(previous.latest, read_at, rate))


# The hold: the capacity term keeps the replicas of a burst's arrival rate for a hold
# window (holdSeconds, else the cold start in use) after it. Bursty traffic whose gaps
# are shorter than a cold start but longer than the HPA's 5-minute scale-down window
# otherwise lost its replicas in every gap and waited a cold start for them at the next
# burst (ski rental: keeping an idle replica for a cold start costs no more than
# starting it again). The level held (burst_level) is the averaged rate reached during
# at least HOLD_SHARE of the window, and only where the rate rose to it from under
# HOLD_RISE of it within the window: a burst. Without that rise a steady rate's noise,
# or a rate falling through the evening, was held too, for 1 to 7 % more GPU-hours and
# no shorter waits on the steady traces; with it they run as before (docs/forecast.md).
HOLD_SHARE = 0.1
HOLD_RISE = 0.25
HOLD_BUCKET_S = 10.0
HOLD_BUCKETS = math.ceil(COLD_START_BOUNDS[1] / HOLD_BUCKET_S)

# Bursts that come back: with holdSeconds unset, the term also holds the level of
# bursts that rose to it RECURRING_RISES times within the last RECURRING_HOLD_S (the
# rate fell under HOLD_RISE of it in between). Traffic whose bursts recur minutes
# apart (agents, batch senders: the code trace) kept losing their replicas in gaps
# longer than a cold start and the HPA's window; a fixed half-hour hold kept them
# (p95 37.6 s to 16.5 s for no more GPU-hours at a 120 s cold start) but also held
# the last burst of the day on traffic whose bursts do not come back (Twitter, 7 to
# 12 % more GPU-hours for the same waits). Asking for a burst to have come back keeps
# the code trace's gain and leaves Twitter as it was (docs/forecast.md).
RECURRING_HOLD_S = 1800.0
RECURRING_RISES = 2


def hold_window(cfg: TriggerConfig, cold_start: float) -> float:
    """The hold window in seconds: holdSeconds, else the cold start in use (0: off)."""
    hold = cfg.forecast.hold_seconds
    return cold_start if hold is None else hold


def recurring_hold_window(cfg: TriggerConfig, cold_start: float) -> float:
    """The window in which bursts that came back are held: RECURRING_HOLD_S with
    holdSeconds unset, where it is longer than the hold window; else 0 (none: an
    explicit holdSeconds, 0 included, is the whole hold)."""
    if cfg.forecast.hold_seconds is not None or cold_start >= RECURRING_HOLD_S:
        return 0.0
    return RECURRING_HOLD_S


def burst_level(
    rates: Sequence[float], share: float = HOLD_SHARE, rise: float = HOLD_RISE, rises: int = 1
) -> float:
    """The arrival rate to hold, from one rate per bucket of the window, oldest first:
    the level reached in at least `share` of the buckets (the k-th highest,
    k = ceil(share * buckets)), where the rate rose to it from under `rise` x that
    level (a bucket under it before one at it: a burst) at least `rises` times;
    else 0."""
    if not rates:
        return 0.0
    level = sorted(rates, reverse=True)[max(1, math.ceil(share * len(rates))) - 1]
    low = False
    seen = 0
    for rate in rates:
        if rate < level * rise:
            low = True
        elif rate >= level and low:
            seen += 1
            if seen >= rises:
                return level
            low = False
    return 0.0


class RateHistory:
    """One queue's averaged arrival rate over the longest hold window: the highest
    average read in each HOLD_BUCKET_S bucket (a bucket without a reading keeps the
    average read before it, which stood until the next). Fed once per reading by
    the engine, with the reading's monotonic time; a reading older than the last
    changes nothing. About 3 KB per queue.

    The levels found are kept until a reading changes the history: every object on
    the queue, and every evaluation of the same (cached) reading, asks for the same
    windows, which cost a sort each (bench/bench_hold.py)."""

    __slots__ = ("_first", "_last", "_last_rate", "_levels", "_peaks")

    def __init__(self) -> None:
        self._peaks = array("d", bytes(8 * HOLD_BUCKETS))  # a ring, by bucket number
        self._first = 0  # the first bucket fed
        self._last: int | None = None  # the last bucket fed
        self._last_rate = 0.0  # the last rate fed
        self._levels: dict[tuple[int, int, int], float] = {}  # (now, buckets, rises): level

    def feed(self, read_at: float, rate: float) -> None:
        if not math.isfinite(rate) or not math.isfinite(read_at):
            return
        rate = max(0.0, rate)
        bucket = math.floor(read_at / HOLD_BUCKET_S)
        last = self._last
        if bucket == last and rate == self._last_rate:
            return  # the same reading again (its bucket already holds at least it)
        self._levels.clear()
        if last is None:
            self._first = bucket
            self._peaks[bucket % HOLD_BUCKETS] = rate
        elif bucket == last:
            slot = bucket % HOLD_BUCKETS
            self._peaks[slot] = max(self._peaks[slot], rate)
        elif bucket > last:
            for skipped in range(max(last + 1, bucket - HOLD_BUCKETS + 1), bucket):
                self._peaks[skipped % HOLD_BUCKETS] = self._last_rate
            self._peaks[bucket % HOLD_BUCKETS] = rate
        else:
            return  # an older reading
        self._last = bucket
        self._last_rate = rate

    def rates(self, at: float, window_s: float) -> list[float]:
        """The buckets of the `window_s` seconds up to `at` (monotonic) since the
        first reading, oldest first; none when nothing was fed or the window is 0."""
        last = self._last
        if last is None or window_s <= 0 or not math.isfinite(at):
            return []
        now = math.floor(at / HOLD_BUCKET_S)
        span = min(HOLD_BUCKETS, max(1, math.ceil(window_s / HOLD_BUCKET_S)))
        start = max(self._first, now - span + 1, last - HOLD_BUCKETS + 1)
        # Buckets start..min(now, last) are in the ring (at most HOLD_BUCKETS of them,
        # so one slice or two where they wrap); those after the last fed kept its rate.
        end = min(now, last)
        out: list[float] = []
        if start <= end:
            head, tail = start % HOLD_BUCKETS, end % HOLD_BUCKETS
            if head <= tail:
                out = self._peaks[head : tail + 1].tolist()
            else:
                out = self._peaks[head:].tolist() + self._peaks[: tail + 1].tolist()
        out.extend([self._last_rate] * max(0, now - max(start, last + 1) + 1))
        return out

    def held(self, at: float, window_s: float, rises: int = 1) -> float:
        """The burst level (burst_level) of the window up to `at`, where the rate
        rose to it `rises` times."""
        if not math.isfinite(at) or window_s <= 0:
            return 0.0
        span = min(HOLD_BUCKETS, max(1, math.ceil(window_s / HOLD_BUCKET_S)))
        key = (math.floor(at / HOLD_BUCKET_S), span, rises)
        level = self._levels.get(key)
        if level is None:
            if len(self._levels) >= 8:  # asked at many times without a reading: keep few
                self._levels.clear()
            level = self._levels[key] = burst_level(self.rates(at, window_s), rises=rises)
        return level


def _uses_capacity_term(signals: Signals, cfg: TriggerConfig) -> bool:
    return (
        cfg.mode is Mode.DEPLOYMENT
        and cfg.forecast.replica_throughput is not None
        and signals.arrival_rate is not None
        and signals.cold_start is not None
        and not (cfg.rabbitmq is not None and cfg.rabbitmq.measure is RabbitMeasure.MESSAGE_RATE)
    )


def _message_rate_term(queue: QueueReading, cfg: TriggerConfig, messages: float) -> Term:
    """KEDA's rabbitmq `mode: MessageRate`: replicas = publish rate / value;
    active while the rate or the messages exceed the activation value (as KEDA
    decides it), or while messages are in flight (the keep-alive guard)."""
    # A queue with no publish recorded has no publish_details: KEDA reads 0.
    rate = queue.publish_rate if queue.publish_rate is not None else 0.0
    threshold = cfg.activation_queue_length
    reason = f"publish {rate:g}/s / value {cfg.queue_length:g}"
    if queue.publish_rate is None:
        reason += " (no publish recorded)"
    active = rate > threshold or messages > threshold
    if not active and queue.in_flight:
        active = True
        reason += f"; kept active: {queue.in_flight:g} in flight"
    return Term(name="queue", replicas=rate / cfg.queue_length, active=active, reason=reason)


def gpu_term(gpu: GpuReading, cfg: GpuConfig) -> Term:
    """The GPU term, from G = busy GPUs (the sum of utilisation in GPU units).

    Active while G > the activation level (GpuConfig.activation_busy_gpus): for
    demand, gpuActivationUtilization/100 * gpusPerReplica, i.e. while the pool
    carries more than the activation level of one replica's GPUs (idle GPUs read
    0 %, so it only filters noise; it applies to the sum, so many GPUs each idling
    at a few percent can add up past it); for guard, gpuActivationUtilization/100,
    i.e. while any GPU is counted above the level.

    - demand ("gpu"): replicas = G / (gpuTargetUtilization/100 * gpusPerReplica),
      the replicas that run the measured load at the target utilisation. Reported
      whether or not it is active, like the queue term.
    - guard ("gpu-guard"): replicas = G / gpusPerReplica while active, else 0.
      For the guard, G counts the GPUs busier than the activation level (the
      query built from gpuSelector does; see config.gpu_selector_query), so after
      the HPA's ceil this is the replicas whose GPUs are working. It never
      exceeds the replicas running (the query covers only the workload's GPUs),
      so the guard never adds capacity: it only holds the count from dropping
      below the busy replicas, and keeps the trigger active, while the queue
      term asks for more whenever there is a backlog.
    """
    busy = gpu.busy_gpus
    threshold = cfg.activation_busy_gpus
    active = busy > threshold
    per_replica = f"{cfg.gpus_per_replica:g} GPU{'' if cfg.gpus_per_replica == 1 else 's'} per replica"
    level = (
        f"{'active' if active else 'inactive'}: {busy:.3g} {'>' if active else '<='} {threshold:.3g} "
        f"busy GPUs (activation {cfg.activation_utilization:g}%)"
    )
    if cfg.role is GpuRole.DEMAND:
        return Term(
            name="gpu",
            replicas=busy / cfg.busy_gpus_per_replica_at_target,
            active=active,
            reason=f"{busy:.3g} busy GPUs / ({cfg.target_utilization:g}% target * {per_replica}); {level}",
        )
    return Term(
        name="gpu-guard",
        replicas=busy / cfg.gpus_per_replica if active else 0.0,
        active=active,
        reason=(f"floor {busy:.3g} busy GPUs / {per_replica}; " if active else "no floor; ") + level,
    )


def forecast_term(floor: float, reason: str | None = None) -> Term:
    """The forecast floor: replicas (Jobs in job mode) the predicted demand needs
    one cold start from now. Active while it asks for any: the engine sets a
    floor only while demand is expected within the cold start."""
    floor = max(0.0, floor)
    return Term(
        name="forecast",
        replicas=floor,
        active=floor > 0,
        reason=reason or f"forecast floor {floor:.3g} replicas",
    )


def decide(signals: Signals, cfg: TriggerConfig, now: float) -> Decision:
    """Fuse the terms: desired = the largest ask, active = any term active.

    Ties go to the earlier term (queue, then GPU, then forecast), so the winner
    is the most direct reason. `now` (monotonic seconds) is an explicit input so
    that time-dependent terms (forecast freshness) never read a clock.
    """
    del now  # no term depends on time yet
    terms: list[Term] = []
    if signals.queue is not None:
        if _uses_capacity_term(signals, cfg):
            assert signals.arrival_rate is not None and signals.cold_start is not None
            terms.append(
                capacity_queue_term(
                    signals.queue,
                    cfg,
                    signals.arrival_rate,
                    signals.cold_start,
                    signals.since_quiet,
                    signals.held_rate,
                    signals.held_window,
                )
            )
        else:
            terms.append(queue_term(signals.queue, cfg))
    if signals.gpu is not None and cfg.gpu is not None:
        terms.append(gpu_term(signals.gpu, cfg.gpu))
    if signals.forecast_floor is not None:
        terms.append(forecast_term(signals.forecast_floor, signals.forecast_reason))
    if not terms:
        return Decision(desired=0.0, active=False, winner="none", terms=())
    winner = terms[0]
    for term in terms[1:]:
        if term.replicas > winner.replicas:
            winner = term
    # An ask past any real fleet (an arrivalQuery in the wrong unit, an overflow) is
    # the most there is, never a failed answer or a zero: see MAX_DESIRED.
    desired = min(max(0.0, winner.replicas), MAX_DESIRED)
    return Decision(
        desired=desired,
        active=any(t.active for t in terms),
        winner=winner.name,
        terms=tuple(terms),
    )
