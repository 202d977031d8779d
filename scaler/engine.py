"""The engine: request metadata → typed config → shared readings → decision.

The server, `explain` and the simulator all go through `Engine.evaluate`; they
differ only in the sources (real or simulated) and the clock they inject.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import logging
import math
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, TypeVar

from scaler.access import AccessPolicy, check_access
from scaler.clock import Clock
from scaler.config import (
    COLD_START_BOUNDS,
    ConfigError,
    ForecastMode,
    Mode,
    RabbitProtocol,
    SourceKind,
    TriggerConfig,
    parse_trigger,
)
from scaler.forecast.demand import (
    WARM_START_RETRY,
    WARM_START_SPAN,
    WARM_START_STEP,
    DemandKind,
    DemandSeries,
    DemandStore,
)
from scaler.forecast.model import Forecaster, ForecastState, Outlook, Tuning
from scaler.policy import (
    RECURRING_RISES,
    Decision,
    RateHistory,
    SampledRate,
    Signals,
    decide,
    hold_window,
    is_quiet,
    recurring_hold_window,
    sampled_rate,
)
from scaler.signals.base import (
    HTTP_POOL_PER_HOST,
    ArrivalReading,
    ColdStartReading,
    GpuReading,
    QueueReading,
    SharedHTTPPools,
    Source,
    SourceError,
    SourceRejectedQuery,
    without_frames,
)
from scaler.signals.cache import POLLED_READING_AGE, Reading, ReadingCache
from scaler.signals.errors import unexpected

log = logging.getLogger(__name__)


class SourceFactory:
    """Builds the real source objects for a trigger config.

    Sources are kept per source config (bounded), so the hot path (GetMetrics,
    IsActive, stream ticks) reuses one object and its client instead of
    building a source per call. A source closed by the cache's idle eviction
    reopens its client lazily if it is asked for again.
    """

    def __init__(
        self,
        timeout: float = 5.0,
        limit: int = 4096,
        failure_ttl: float = 2.0,
        http_per_host: int = HTTP_POOL_PER_HOST,
    ) -> None:
        """`http_per_host`: the HTTP connections kept per server, the reads the cache
        runs against one endpoint at once (ReadingCache.endpoint_limit)."""
        self.timeout = timeout
        self._limit = limit
        self._made: OrderedDict[object, Source] = OrderedDict()
        self._by_identity: dict[int, tuple[object, Source]] = {}
        from scaler.signals.rabbitmq import AmqpConnections

        # One AMQP connection per broker, vhost and credentials, for all their queues;
        # a broker's connection failure is remembered for failure_ttl (the cache TTL).
        self.amqp_connections = AmqpConnections(failure_ttl)
        # And one set of HTTP connection pools for the management API's and Prometheus's
        # reads: a bounded number of connections per server, not one per queue or query.
        self.http_pools = SharedHTTPPools(http_per_host)

    def close(self) -> None:
        """Close the shared HTTP pools' idle connections (the server's stop, after the
        cache has closed every source: each source leaves the shared pools open for
        the others). A read still stuck in its client keeps its own connection."""
        self.http_pools.close_all()

    def queue_source(self, cfg: TriggerConfig) -> Source | None:
        sqs, rabbitmq = cfg.sqs, cfg.rabbitmq
        if cfg.source is SourceKind.SQS and sqs is not None:
            from scaler.signals.sqs import SqsSource

            return self._kept(sqs, lambda: SqsSource(sqs, timeout=self.timeout))
        if cfg.source is SourceKind.RABBITMQ and rabbitmq is not None:
            from scaler.signals.rabbitmq import rabbitmq_source

            return self._kept(
                rabbitmq,
                lambda: rabbitmq_source(
                    rabbitmq,
                    timeout=self.timeout,
                    connections=self.amqp_connections,
                    http_pools=self.http_pools,
                ),
            )
        return None

    def gpu_source(self, cfg: TriggerConfig) -> Source | None:
        gpu = cfg.gpu
        if gpu is not None:
            from scaler.signals.prometheus import PrometheusSource

            null_ok = gpu.ignore_null_values
            return self._kept(
                gpu,
                lambda: PrometheusSource(
                    gpu, timeout=self.timeout, ignore_null_values=null_ok, pools=self.http_pools
                ),
            )
        return None

    def arrival_source(self, cfg: TriggerConfig) -> Source | None:
        """The arrivalQuery's source (requests/s; offers history() for the warm start)."""
        query = cfg.forecast.arrival_query
        if query is None:
            return None
        from scaler.signals.prometheus import PrometheusSource

        return self._kept(
            ("arrival", query),
            lambda: PrometheusSource(query, timeout=self.timeout, reads="arrival", pools=self.http_pools),
        )

    def cold_start_source(self, cfg: TriggerConfig) -> Source | None:
        """The coldStartQuery's source (seconds)."""
        query = cfg.forecast.cold_start_query
        if query is None:
            return None
        from scaler.signals.prometheus import PrometheusSource

        return self._kept(
            ("cold start", query),
            lambda: PrometheusSource(query, timeout=self.timeout, reads="cold start", pools=self.http_pools),
        )

    def _kept(self, source_config: object, make: Callable[[], Source]) -> Source:
        # The engine memoises parsed configs, so the hot path asks with the same
        # config object every call: found by identity, without hashing and
        # comparing the dataclass (its enums hash in Python).
        known = self._by_identity.get(id(source_config))
        if known is not None and known[0] is source_config:
            return known[1]
        source = self._made.get(source_config)
        if source is None:
            source = self._made[source_config] = make()
            if len(self._made) > self._limit:
                self._made.popitem(last=False)
        else:
            self._made.move_to_end(source_config)
        if len(self._by_identity) >= self._limit:
            self._by_identity.clear()  # refilled by the next calls
        # The config is kept with its source, so its id cannot be reused meanwhile.
        self._by_identity[id(source_config)] = (source_config, source)
        return source


class ObjectRef(NamedTuple):
    """A ScaledObject or ScaledJob. A named tuple rather than a frozen dataclass:
    one is made and hashed on every rpc, and a tuple does both in C."""

    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class SignalRead:
    """The outcome of reading one of a trigger's signals: a value or an error."""

    name: str  # "queue", "gpu", "arrival" or "cold start"
    description: str  # the source, without credentials
    value: QueueReading | GpuReading | ArrivalReading | ColdStartReading | None = None
    age: float | None = None  # seconds since the value was read (it may come from the cache)
    error: SourceError | None = None
    read_at: float | None = None  # monotonic time the value was read
    # The forecast's reads: their failure leaves the forecast to its model (or the
    # configured cold start), never fails the answer.
    optional: bool = False


# The forecast's (optional) signals.
ARRIVAL = "arrival"
COLD_START = "cold start"
# An optional signal's refresh is waited for at most this long (a healthy Prometheus
# answers in milliseconds, so answers keep a fresh rate); past it, its last reading
# is answered while the refresh runs on in the background, for at most
# OPTIONAL_READING_MAX_AGE after it was read (KEDA polls every 30 s and the HPA
# every 15 s, by default; arrivalQuery is itself a rate over a range).
OPTIONAL_READ_WAIT = 0.5
OPTIONAL_READING_MAX_AGE = 60.0
COLD_START_REFRESH = 300.0  # seconds between coldStartQuery reads (a slow-moving figure)
ACTIVATION_ARRIVALS = 1.0  # demand is "expected" when at least one arrival is expected within L


@dataclass(frozen=True)
class ForecastView:
    """The forecast for one evaluation: what it expects, and whether it is used."""

    mode: ForecastMode
    demand: DemandKind
    state: ForecastState
    reason: str  # the model's state, e.g. "cold: 2.0 h of history (needs 24 h)"
    cold_start: float  # seconds: the look-ahead L in use
    cold_start_measured: bool  # True: from coldStartQuery; False: coldStartSeconds
    rate: float  # predicted mean arrivals/s over [now, now + L]
    upper: float  # the upper quantile of the peak rate in the window (or the recurring peak if higher)
    expected_arrivals: float
    floor: float  # replicas (Jobs in job mode) it asks for
    used: bool  # in the answer (mode auto, model ready, and not job mode without maxPrewarmJobs)
    error_ratio: float | None
    warm_start: str | None  # how the history was loaded (arrival series)
    # Job mode: seconds until pre-warm Jobs may be asked for again (None: not waiting).
    jobs_next_in: float | None = None
    # The usual (or recent highest) peak minute in the window on past days (arrivals/s).
    recurring: float = 0.0
    # The model's outlook the view was made from (the model keeps one per 10 s while
    # it does not change): Engine.answer reuses a decision while it is the same one.
    outlook: Outlook | None = field(default=None, compare=False, repr=False)

    @property
    def recurring_from(self) -> str:
        """Which estimate of past days `recurring` is: their average at each minute,
        or their recent highest (where that scored better at the quantile)."""
        return "recent highest" if self.outlook is not None and self.outlook.recurring_envelope else "average"


@dataclass(frozen=True)
class Evaluation:
    """One answer and everything that went into it (for metrics, logs, explain)."""

    ref: ObjectRef
    config: TriggerConfig
    signals: Signals
    ages: Mapping[str, float]  # seconds since each signal was read
    decision: Decision
    reads: tuple[SignalRead, ...] = ()
    forecast: ForecastView | None = None  # None: forecast off, or no demand series


DecisionObserver = Callable[[Evaluation], None]


class _Reusable(NamedTuple):
    """An evaluation and what it was made from (see Engine.answer). A named tuple:
    one is made for every evaluation anew, and a frozen dataclass's field-by-field
    __init__ was most of that cost."""

    config: TriggerConfig
    # Each reading it was made from: (source, value, when it was read). The time as
    # well as the value: the capacity term's memory is timed by it (a new reading is
    # a new input there even where a source hands back the same value object).
    readings: tuple[tuple[Source, object, float | None], ...]
    outlook: Outlook | None
    series: tuple[str, DemandKind] | None  # the demand series the outlook came from
    evaluation: Evaluation
    queue_read_at: float | None  # when the queue reading it was made from was taken


REUSABLE_LIMIT = 10_000  # objects whose last evaluation is kept for Engine.answer
# Sources whose per-source memory the engine keeps (a measured cold start, an averaged
# publish rate, when a queue was last quiet); the least recently read go first.
SOURCE_MEMORY_LIMIT = 4096


MemoKey = bytes | tuple[tuple[str, str], ...]

_K = TypeVar("_K")
_V = TypeVar("_V")


def _remember(store: OrderedDict[_K, _V], key: _K, value: _V, limit: int) -> None:
    """Keep `value` under `key` as the most recent entry, the least recently set
    going first beyond `limit` entries."""
    store[key] = value
    store.move_to_end(key)
    if len(store) > limit:
        store.popitem(last=False)


@dataclass
class _ConfigMemo:
    """Parsed configs, bounded (KEDA re-sends the same map every poll): by the
    sorted metadata, and by the key a caller gave for it (see Engine.config), which
    also keeps the object once config() has accepted the two together.
    Objects with the same metadata share one config.

    Bounded in entries and in the bytes its keys hold: with one request-bytes key
    per object, metadata at the parser's limits (100 values of 16 kB) would make
    16,384 entries tens of GB; the oldest go first."""

    limit: int = 16_384
    byte_limit: int = 64 * 1024 * 1024
    # key -> (config, the key's bytes, the object accepted with it or None)
    items: OrderedDict[MemoKey, tuple[TriggerConfig, int, ObjectRef | None]] = field(
        default_factory=OrderedDict
    )
    size: int = 0  # the bytes the keys hold

    def get(self, key: MemoKey) -> TriggerConfig | None:
        entry = self.items.get(key)
        if entry is None:
            return None
        self.items.move_to_end(key)
        return entry[0]

    def accepted(self, key: bytes) -> tuple[ObjectRef, TriggerConfig] | None:
        entry = self.items.get(key)
        if entry is None or entry[2] is None:
            return None
        self.items.move_to_end(key)
        return entry[2], entry[0]

    def accept(self, key: bytes, ref: ObjectRef) -> None:
        entry = self.items.get(key)
        if entry is not None and entry[2] != ref:
            self.items[key] = (entry[0], entry[1], ref)

    def put(self, key: MemoKey, cfg: TriggerConfig) -> None:
        old = self.items.pop(key, None)
        if old is not None:
            self.size -= old[1]
        size = len(key) if isinstance(key, bytes) else sum(len(k) + len(v) for k, v in key)
        self.items[key] = (cfg, size, None)
        self.size += size
        # The newest entry stays even alone over byte_limit: it is the one in use.
        while len(self.items) > self.limit or (self.size > self.byte_limit and len(self.items) > 1):
            _, (_, dropped, _) = self.items.popitem(last=False)
            self.size -= dropped


class Engine:
    def __init__(
        self,
        cache: ReadingCache,
        clock: Clock,
        sources: SourceFactory | None = None,
        observer: DecisionObserver | None = None,
        access: AccessPolicy | None = None,
        forecast_tuning: Tuning | None = None,  # the forecaster's constants (a benchmark seam)
        polled_reading_age: float = POLLED_READING_AGE,
    ) -> None:
        self.cache = cache
        self.clock = clock
        # How old a queue reading a polled answer may be made from (POLLED_READING_AGE).
        self.polled_reading_age = polled_reading_age
        self.sources = sources or SourceFactory(
            timeout=cache.timeout, failure_ttl=cache.ttl, http_per_host=cache.endpoint_limit
        )
        self._observer = observer
        # The operator's limits on hosts and on the scaler's own cloud identity.
        self.access = access or AccessPolicy()
        self._memo = _ConfigMemo()
        self._warned_unknown: OrderedDict[tuple[ObjectRef, str], None] = OrderedDict()
        self.demand = DemandStore(tuning=forecast_tuning)
        # coldStartQuery source key -> (sane seconds or None, monotonic time of the last read)
        self._cold_starts: OrderedDict[str, tuple[float | None, float]] = OrderedDict()
        # Job mode: when each object's last pre-warm pulse started (see job_pulse).
        self._job_pulses: OrderedDict[tuple[ObjectRef, str], float] = OrderedDict()
        # The capacity term's publish rate averaged per queue (policy.sampled_rate):
        # queue source key -> the average, its noise estimate and the latest reading.
        self._rates: OrderedDict[str, SampledRate] = OrderedDict()
        # The capacity term's waking: queue source key -> when (monotonic read_at) the
        # queue was last read quiet (policy.is_quiet).
        self._quiet_at: OrderedDict[str, float] = OrderedDict()
        # The capacity term's hold: the rate it used, per rate source key (the queue's,
        # or arrivalQuery's), over the longest hold window (policy.RateHistory).
        self._rate_histories: OrderedDict[str, RateHistory] = OrderedDict()
        # Engine.answer: the last evaluation per (object, config), while reusable.
        self._reusable: dict[tuple[ObjectRef, int], _Reusable] = {}
        # Warm starts run as their own tasks (read_signals); held here until done.
        self._warm_starts: set[asyncio.Task[None]] = set()
        # The optional signals' (arrivalQuery, coldStartQuery) refreshes running in
        # the background, by source key (read_signals waits for one only briefly once
        # the cache holds an outcome of it).
        self._refreshes: dict[str, asyncio.Task[Reading[object]]] = {}
        # arrivalQuery sources that feed a forecast's demand series (see _demand_series).
        self._forecast_arrivals: OrderedDict[str, None] = OrderedDict()

    def config(
        self, ref: ObjectRef, metadata: Mapping[str, str], *, memo_key: bytes | None = None
    ) -> TriggerConfig:
        """Parse (memoised), validate, and check against the access policy (before
        any source exists, so a refused host is never connected to). Raises ConfigError.
        `memo_key`: bytes that stand for this object and this metadata and nothing
        else may (the server passes its request serialized, which costs less than
        sorting the map); once accepted, accepted_config finds both by it."""
        cfg = self._memo.get(memo_key) if memo_key is not None else None
        if cfg is None:
            by_content = tuple(sorted(metadata.items()))
            cfg = self._memo.get(by_content)
            if cfg is None:
                cfg = parse_trigger(metadata)
                self._memo.put(by_content, cfg)
            if memo_key is not None:
                self._memo.put(memo_key, cfg)
        try:
            check_access(cfg, ref.namespace, self.access)
        except ConfigError as exc:
            raise exc.as_written(metadata) from None
        self._warn_unknown(ref, cfg)
        if memo_key is not None:
            self._memo.accept(memo_key, ref)
        return cfg

    def accepted_config(self, memo_key: bytes) -> tuple[ObjectRef, TriggerConfig] | None:
        """The object and config that config() last accepted with `memo_key`, by
        those bytes alone: nothing built, parsed or checked again (the same bytes
        name the same object and metadata, and the access policy is fixed). None:
        call config(). The server's hot path: building the object from the request
        and checking it again were two thirds of finding its config."""
        return self._memo.accepted(memo_key)

    async def evaluate(
        self, ref: ObjectRef, metadata: Mapping[str, str], *, queue_newer_than: float | None = None
    ) -> Evaluation:
        """Read the trigger's signals (shared, cached) and decide.
        Raises ConfigError or SourceError."""
        return await self.evaluate_config(ref, self.config(ref, metadata), queue_newer_than=queue_newer_than)

    async def evaluate_config(
        self,
        ref: ObjectRef,
        cfg: TriggerConfig,
        *,
        queue_newer_than: float | None = None,
        polled: bool = True,
    ) -> Evaluation:
        """evaluate() for a config already parsed with config(). Raises SourceError.
        `queue_newer_than`: the queue's reading must have been taken after this
        (monotonic) time, the read_at of the last reading the caller answered from
        (see ReadingCache.get). `polled`: see decide; a polled evaluation's queue
        reading is also at most polled_reading_age old."""
        reads = await self.read_signals(
            cfg, queue_newer_than=self._queue_newer_than(queue_newer_than, polled)
        )
        raise_failures(reads)
        evaluation = self.decide(ref, cfg, reads, polled=polled)
        if self._observer is not None:
            self._observer(evaluation)
        return evaluation

    async def answer(
        self,
        ref: ObjectRef,
        cfg: TriggerConfig,
        *,
        queue_newer_than: float | None = None,
        polled: bool = True,
    ) -> Evaluation:
        """evaluate_config(), for the answers of GetMetrics and IsActive: the last
        evaluation for the object and config is answered again (and handed to the
        observer again) while everything it was made from is unchanged: the same
        cached readings and the same forecast outlook. The decision is a pure
        function of those (policy.decide does not depend on `now`), so the answer
        is the one a new evaluation would give; its `ages` are those of when it
        was made (explain calls evaluate). With `queue_newer_than` it evaluates
        anew (see evaluate_config). `polled=False` for a StreamIsActive tick (see
        decide); a polled answer is made from a queue reading at most
        polled_reading_age old. Raises SourceError."""
        if queue_newer_than is None:
            reused = self.answer_again(ref, cfg, polled=polled)
            if reused is not None:
                return reused
        return await self.answer_anew(ref, cfg, queue_newer_than=queue_newer_than, polled=polled)

    async def answer_anew(
        self,
        ref: ObjectRef,
        cfg: TriggerConfig,
        *,
        queue_newer_than: float | None = None,
        polled: bool = True,
    ) -> Evaluation:
        """answer() without trying the kept evaluation first (for a caller that just
        did, with answer_again): evaluate, and keep the result while it is reusable."""
        evaluation = await self.evaluate_config(ref, cfg, queue_newer_than=queue_newer_than, polled=polled)
        reusable = self._reusable_from(cfg, evaluation)
        if reusable is not None:
            if len(self._reusable) >= REUSABLE_LIMIT:
                self._reusable.clear()  # refilled by the next calls
            self._reusable[(ref, id(cfg))] = reusable
        return evaluation

    def answer_again(self, ref: ObjectRef, cfg: TriggerConfig, *, polled: bool = True) -> Evaluation | None:
        """answer()'s common case, with no coroutine: the kept evaluation, handed
        to the observer again, while everything it was made from is unchanged (and,
        `polled`, its queue reading at most polled_reading_age old); None when
        answer() must evaluate."""
        kept = self._reusable.get((ref, id(cfg)))
        if kept is None or kept.config is not cfg or not self._unchanged(kept):
            return None
        newer_than, read_at = self._queue_newer_than(None, polled), kept.queue_read_at
        if newer_than is not None and read_at is not None and read_at <= newer_than:
            return None
        if self._observer is not None:
            self._observer(kept.evaluation)
        return kept.evaluation

    def _queue_newer_than(self, newer_than: float | None, polled: bool) -> float | None:
        """The time the queue reading must have been taken after: the caller's
        `newer_than`, and for a polled answer no earlier than polled_reading_age ago."""
        if not polled:
            return newer_than
        bound = self.clock.monotonic() - self.polled_reading_age
        return bound if newer_than is None else max(newer_than, bound)

    def _reusable_from(self, cfg: TriggerConfig, evaluation: Evaluation) -> _Reusable | None:
        """What evaluation was made from, when nothing else (time included) went
        into it: not with an arrivalQuery or coldStartQuery (read on their own
        schedules) or job mode's pre-warm pulses (timed). replicaThroughput's
        per-queue memory (the averaged publish rate, the hold's history, when the
        queue was last quiet) is a function of the queue readings fed to it, each
        counted once, and its terms are timed by the reading's read_at, not now:
        with the same reading it answers the same (tests/unit/test_engine.py
        checks reuse against evaluating anew along random sequences)."""
        fc = cfg.forecast
        reads_queries = fc.arrival_query is not None or fc.cold_start_query is not None
        if reads_queries and _reads_prometheus_demand(cfg):
            return None
        if fc.mode is not ForecastMode.OFF:
            if cfg.mode is Mode.JOB:
                return None
            if evaluation.forecast is None or evaluation.forecast.outlook is None:
                return None
        wanted = self._wanted_signals(cfg)
        if len(wanted) != len(evaluation.reads):
            return None
        readings: list[tuple[Source, object, float | None]] = []
        queue_source, queue_read_at = None, None
        for (name, source, _), read in zip(wanted, evaluation.reads, strict=True):
            if read.value is None:
                return None
            readings.append((source, read.value, read.read_at))
            if name == "queue":
                queue_source, queue_read_at = source, read.read_at
        outlook, series = None, None
        if evaluation.forecast is not None:
            if queue_source is None:
                return None
            outlook, series = evaluation.forecast.outlook, _queue_series_key(cfg, queue_source)
        return _Reusable(cfg, tuple(readings), outlook, series, evaluation, queue_read_at)

    def _unchanged(self, kept: _Reusable) -> bool:
        """Whether every input of the kept evaluation is still the current one."""
        for source, value, read_at in kept.readings:
            outcome = self.cache.fresh(source)
            if not isinstance(outcome, Reading) or outcome.value is not value or outcome.read_at != read_at:
                return False
        if kept.outlook is None or kept.series is None:
            return kept.outlook is None
        # The series as _demand_series finds it (kept in use), with no reading to
        # feed: the same readings were fed when the evaluation was made.
        series = self.demand.get(*kept.series, self.clock.monotonic())
        fc = kept.config.forecast
        return series.model.outlook(self.clock.wall(), fc.cold_start_seconds, fc.quantile) is kept.outlook

    async def read_signals(
        self, cfg: TriggerConfig, *, queue_newer_than: float | None = None
    ) -> tuple[SignalRead, ...]:
        """Read every signal the trigger uses, concurrently, through the shared
        cache. Never raises a SourceError: each read carries its own outcome.

        The required signals (queue, GPU) are waited for. An optional one (the
        forecast's arrivalQuery and coldStartQuery) is waited for in full only the
        first time its source is read: after that a reading or error past the TTL
        starts a refresh (see _optional_outcome) that this answer waits for at most
        OPTIONAL_READ_WAIT, doing without it past that, so a slow or down
        Prometheus does not delay the answers by its timeout."""
        wanted = self._wanted_signals(cfg)
        warm = self._warm_start_due(cfg)
        # Every reading fresh in the cache is the common case (KEDA polls far more
        # often than the TTL runs out): answered without scheduling tasks.
        outcomes: list[object] = []
        refreshing: dict[int, asyncio.Task[Reading[object]]] = {}
        for i, (name, source, _) in enumerate(wanted):
            outcome: object = self.cache.fresh(source)
            if name == "queue" and queue_newer_than is not None and _taken_by(outcome, queue_newer_than):
                outcome = None  # a queue reading taken by then does not count: get() reads again
            elif name in (ARRIVAL, COLD_START):
                outcome, refresh = self._optional_outcome(source, outcome)
                if refresh is not None:
                    refreshing[i] = refresh
            outcomes.append(outcome)
        if warm is None and not refreshing and all(outcome is not None for outcome in outcomes):
            return self._signal_reads(cfg, wanted, outcomes)
        missing = [i for i, outcome in enumerate(outcomes) if outcome is None]
        read = await asyncio.gather(
            *(
                self.cache.get(wanted[i][1], queue_newer_than if wanted[i][0] == "queue" else None)
                for i in missing
            ),
            *(_within(task, OPTIONAL_READ_WAIT, outcomes[i]) for i, task in refreshing.items()),
            *([asyncio.shield(self._warm_start_task(*warm))] if warm is not None else []),
            return_exceptions=True,
        )
        for i, outcome in zip([*missing, *refreshing], read, strict=False):
            outcomes[i] = outcome
        return self._signal_reads(cfg, wanted, outcomes)

    def _optional_outcome(
        self, source: Source, fresh: object
    ) -> tuple[object, asyncio.Task[Reading[object]] | None]:
        """What an optional signal answers with, given the cache's fresh outcome
        (None: none within the TTL), and the refresh to wait for first (briefly):
        that fresh outcome, no refresh; the first time, None (wait for the read);
        else a refresh, and what to answer if it is not back in time: the last
        reading up to OPTIONAL_READING_MAX_AGE old, a query it rejected (bad
        metadata; the refresh says when that changes), or the source as
        unavailable for this answer."""
        if fresh is not None:
            return fresh, None
        last = self.cache.last(source)
        if last is None:
            return None, None
        refresh = self._refresh_in_background(source)
        if isinstance(last, Reading):
            age = last.age(self.clock.monotonic())
            if age <= OPTIONAL_READING_MAX_AGE:
                return last, refresh
            stale = SourceError(f"{source.description}: the last reading is {age:.0f}s old; reading it again")
            return stale, refresh
        if isinstance(last, SourceRejectedQuery):
            return copy.copy(last), refresh
        return SourceError(f"{last} (being read again)"), refresh

    def _refresh_in_background(self, source: Source) -> asyncio.Task[Reading[object]]:
        """The read of an optional source through the cache (single flight) running
        in the background, started unless one already runs; its outcome is kept
        when it comes, whether or not an answer still waits for it."""
        key = source.key
        running = self._refreshes.get(key)
        if running is not None:
            return running
        task = asyncio.ensure_future(self.cache.get(source))
        self._refreshes[key] = task

        def done(task: asyncio.Task[Reading[object]]) -> None:
            if self._refreshes.get(key) is task:
                del self._refreshes[key]
            if task.cancelled():
                return
            error = task.exception()  # retrieved, so never "never retrieved"
            if error is None:
                self._optional_refreshed(source, task.result())
            elif isinstance(error, SourceError):
                self._optional_refreshed(source, without_frames(error))
            else:  # a bug: logged here, since no answer may wait for it
                log.error("reading %s failed unexpectedly", source.description, exc_info=error)

        task.add_done_callback(done)
        return task

    def _optional_refreshed(self, source: Source, outcome: Reading[object] | SourceError) -> None:
        """Take a background refresh's outcome (the cache keeps it too). A measured
        cold start is taken at once (it is read every COLD_START_REFRESH, so the next
        answers might never find it within the TTL); an arrival reading is fed to its demand series, if the
        forecast keeps one, with the wall time it was read at."""
        key = source.key
        now = self.clock.monotonic()
        value = outcome.value if isinstance(outcome, Reading) else None
        if isinstance(value, ColdStartReading):
            assert isinstance(outcome, Reading)
            read = SignalRead(COLD_START, source.description, value=value, read_at=outcome.read_at)
            self._remember_cold_start(key, read, now)
        elif isinstance(outcome, SourceError) and key in self._cold_starts:
            self._remember_cold_start(key, SignalRead(COLD_START, source.description, error=outcome), now)
        elif isinstance(value, ArrivalReading) and key in self._forecast_arrivals:
            assert isinstance(outcome, Reading)
            series = self.demand.get(key, DemandKind.ARRIVAL, now)
            series.feed(outcome.read_at, self.clock.wall() - outcome.age(now), value.rate)

    async def close(self) -> None:
        """Cancel the refreshes still running in the background (the server's stop):
        the reads themselves belong to the cache, which its close ends."""
        tasks = list(self._refreshes.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._refreshes.clear()

    async def refreshed(self) -> None:
        """Wait for the refreshes running in the background (tests)."""
        while self._refreshes:
            await asyncio.gather(*self._refreshes.values(), return_exceptions=True)

    def evaluate_config_sync(self, ref: ObjectRef, cfg: TriggerConfig, *, polled: bool = True) -> Evaluation:
        """evaluate_config() with no event loop and no thread pool: for drivers whose
        sources are in memory (the simulator). Same cache, decision and observer;
        `polled` as for evaluate_config (False: a StreamIsActive tick)."""
        reads = self.read_signals_sync(cfg, queue_newer_than=self._queue_newer_than(None, polled))
        raise_failures(reads)
        evaluation = self.decide(ref, cfg, reads, polled=polled)
        if self._observer is not None:
            self._observer(evaluation)
        return evaluation

    def read_signals_sync(
        self, cfg: TriggerConfig, *, queue_newer_than: float | None = None
    ) -> tuple[SignalRead, ...]:
        """read_signals(), each read in the caller's thread (ReadingCache.get_sync)."""
        wanted = self._wanted_signals(cfg)
        warm = self._warm_start_due(cfg)
        if warm is not None:
            series, source, history = warm
            end = self.clock.wall()
            try:
                loaded = self._warm_model(history(end - WARM_START_SPAN, end, WARM_START_STEP), end)
                self._warm_loaded(series, source, *loaded)
            except Exception as exc:
                self._warm_failed(series, source, exc)
        outcomes: list[object] = []
        for name, source, _ in wanted:
            try:
                outcomes.append(self.cache.get_sync(source, queue_newer_than if name == "queue" else None))
            except SourceError as exc:
                outcomes.append(exc)
        return self._signal_reads(cfg, wanted, outcomes)

    def _wanted_signals(self, cfg: TriggerConfig) -> list[tuple[str, Source, type]]:
        """(signal name, source, expected reading type) for each signal the trigger uses."""
        wanted: list[tuple[str, Source, type]] = []
        queue_source = self.sources.queue_source(cfg)
        if queue_source is not None:
            wanted.append(("queue", queue_source, QueueReading))
        # Only asked for when configured, so queue-only factories need no gpu_source.
        gpu_source = self.sources.gpu_source(cfg) if cfg.gpu is not None else None
        if gpu_source is not None:
            wanted.append(("gpu", gpu_source, GpuReading))
        if _reads_prometheus_demand(cfg):
            arrival = self.sources.arrival_source(cfg) if cfg.forecast.arrival_query is not None else None
            if arrival is not None:
                wanted.append((ARRIVAL, arrival, ArrivalReading))
            cold_start = (
                self.sources.cold_start_source(cfg) if cfg.forecast.cold_start_query is not None else None
            )
            if cold_start is not None and self._cold_start_due(cold_start):
                wanted.append((COLD_START, cold_start, ColdStartReading))
        return wanted

    def _signal_reads(
        self, cfg: TriggerConfig, wanted: list[tuple[str, Source, type]], outcomes: Sequence[object]
    ) -> tuple[SignalRead, ...]:
        """Each read's outcome (a Reading or an exception) as a SignalRead."""
        now = self.clock.monotonic()
        reads: list[SignalRead] = []
        for (name, source, expected), outcome in zip(wanted, outcomes, strict=True):
            optional = name in (ARRIVAL, COLD_START)
            key = _query_key(cfg, name)
            if isinstance(outcome, SourceRejectedQuery) and key is not None:
                # A PromQL error in a query is bad metadata, not an outage:
                # INVALID_ARGUMENT naming the key, like any other bad key.
                rejected = SourceRejectedQuery(f"metadata key {key!r}: {outcome}")
                reads.append(SignalRead(name, source.description, error=rejected))
            elif isinstance(outcome, SourceError):
                reads.append(SignalRead(name, source.description, error=outcome, optional=optional))
            elif isinstance(outcome, BaseException):
                raise outcome
            elif not isinstance(outcome, Reading) or not isinstance(outcome.value, expected):
                error = SourceError(f"{source.description}: returned no {name} reading")
                reads.append(SignalRead(name, source.description, error=error, optional=optional))
            else:
                value = outcome.value
                assert isinstance(value, QueueReading | GpuReading | ArrivalReading | ColdStartReading)
                reads.append(
                    SignalRead(
                        name,
                        source.description,
                        value=value,
                        age=outcome.age(now),
                        read_at=outcome.read_at,
                        optional=optional,
                    )
                )
            if name == COLD_START:
                self._remember_cold_start(source.key, reads[-1], now)
        return tuple(reads)

    # --- the forecast's reads ------------------------------------------------------

    def _cold_start_due(self, source: Source) -> bool:
        known = self._cold_starts.get(source.key)
        return known is None or self.clock.monotonic() - known[1] >= COLD_START_REFRESH

    def _remember_cold_start(self, key: str, read: SignalRead, now: float) -> None:
        low, high = COLD_START_BOUNDS
        seconds = read.value.seconds if isinstance(read.value, ColdStartReading) else None
        sane = seconds if seconds is not None and low <= seconds <= high else None
        previous = self._cold_starts.get(key)
        if read.error is not None and previous is not None and previous[0] is not None:
            sane = previous[0]  # Prometheus failing for a moment: the last measurement still holds
        if sane is None and read.error is None:
            log.warning(
                "coldStartQuery answered an implausible cold start; using coldStartSeconds",
                extra={"source": read.description, "seconds": seconds, "bounds": [low, high]},
            )
        _remember(self._cold_starts, key, (sane, now), SOURCE_MEMORY_LIMIT)

    def _warm_start_due(
        self, cfg: TriggerConfig
    ) -> tuple[DemandSeries, Source, Callable[[float, float, float], object]] | None:
        """An arrival series to load history into: not loaded yet, no attempt in
        flight, and no failed attempt within WARM_START_RETRY."""
        if cfg.forecast.mode is ForecastMode.OFF or cfg.forecast.arrival_query is None:
            return None
        source = self.sources.arrival_source(cfg)
        history = getattr(source, "history", None)
        if source is None or history is None:
            return None
        now = self.clock.monotonic()
        series = self.demand.get(source.key, DemandKind.ARRIVAL, now)
        if series.warm_loaded or series.warming or now < series.warm_retry_at:
            return None
        series.warming = True
        return series, source, history

    def _warm_start_task(
        self, series: DemandSeries, source: Source, history: Callable[[float, float, float], object]
    ) -> asyncio.Task[None]:
        """The warm start as a task of its own: the call that started it waits for it
        (shielded), and a cancelled call (KEDA gone, a stream reopened) leaves it to
        finish; inside that call it was cancelled with it and the series stayed
        `warming`, never loaded, retried or evicted."""
        task = asyncio.ensure_future(self._warm_start(series, source, history))
        self._warm_starts.add(task)
        task.add_done_callback(self._warm_starts.discard)
        return task

    async def _warm_start(
        self, series: DemandSeries, source: Source, history: Callable[[float, float, float], object]
    ) -> None:
        """Load the series' recent history with one range query, bounded by the
        source timeout. Never raises: a failure leaves the forecast cold, retried later."""
        end = self.clock.wall()

        def load() -> tuple[Forecaster, str]:
            # The model is built in the thread too: replaying a week of points takes
            # about a quarter of a second, which on the event loop would hold up
            # every answer (and the health checks) for each series warm-started.
            return self._warm_model(history(end - WARM_START_SPAN, end, WARM_START_STEP), end)

        try:
            loaded = await asyncio.wait_for(asyncio.to_thread(load), self.cache.timeout)
            self._warm_loaded(series, source, *loaded)
        except Exception as exc:
            self._warm_failed(series, source, exc)
        except BaseException as exc:  # cancelled (the loop closing): retried as any failure
            self._warm_failed(series, source, exc)
            raise

    def _warm_model(self, points: object, end: float | None = None) -> tuple[Forecaster, str]:
        """A model fed the history's points up to `end` (the range query's end), and
        what was loaded.

        The history is fed as the live reads would have seen it: the arrival source
        reads a query that matches no series as 0 (no request came in; the arrival
        source is built with ignore_null_values, and no key changes that), while a
        range query leaves such steps out. A workload at zero whose counter is
        exported by its own pods has no series at night: fed as they come, the
        nights were never seen and the daily profile gave them the nearest busy
        hour's rate (Forecaster._fill_daily), a wake at night from no evidence and
        a gate closed for days once the live 0s came in. So each step with no point
        after the first point returned, up to `end`, is fed as 0; the steps before
        the first point stay unknown (retention shorter than the range, a series
        not yet created), never days of zeros."""
        assert isinstance(points, list)
        fed = _absent_steps_as_zero(points, end, WARM_START_STEP) if end is not None else points
        model = Forecaster(self.demand.tuning)
        for wall, rate in fed:
            model.observe(wall, rate)
        days = (fed[-1][0] - fed[0][0]) / 86_400 if fed else 0.0
        absent = len(fed) - len(points)
        zeros = f"; {absent} step{'s' if absent > 1 else ''} with no value read as 0" if absent else ""
        return model, f"loaded {len(fed)} points ({days:.1f} d of history{zeros})"

    def _warm_loaded(self, series: DemandSeries, source: Source, model: Forecaster, loaded: str) -> None:
        series.model = model
        series.last_read_at = None
        series.warming = False
        series.warm_loaded = True
        series.warm_start = loaded
        log.info("forecast warm start", extra={"source": source.description, "loaded": loaded})

    def _warm_failed(self, series: DemandSeries, source: Source, exc: BaseException) -> None:
        if isinstance(exc, SourceError):
            reason = str(exc)
        elif isinstance(exc, TimeoutError):
            reason = f"no answer within {self.cache.timeout:g}s"
        else:  # a library surprise or a malformed answer: its kind, never its text
            reason = unexpected(exc)
        series.warming = False
        series.warm_start = f"failed, retried in {WARM_START_RETRY:g}s: {reason}"
        series.warm_retry_at = self.clock.monotonic() + WARM_START_RETRY
        log.warning("forecast warm start failed", extra={"source": source.description, "error": reason})

    def decide(
        self, ref: ObjectRef, cfg: TriggerConfig, reads: tuple[SignalRead, ...], *, polled: bool = True
    ) -> Evaluation:
        """The decision from successful reads (see raise_failures). `polled`: whether
        KEDA's polling loop reads this answer (GetMetrics, IsActive; explain and the
        simulator stand for a poll), False for a StreamIsActive tick: only a polled
        evaluation starts a job-mode pre-warm pulse (_pulse)."""
        queue = next((r.value for r in reads if isinstance(r.value, QueueReading)), None)
        gpu = next((r.value for r in reads if isinstance(r.value, GpuReading)), None)
        signals = Signals(queue=queue, gpu=gpu)
        if cfg.forecast.replica_throughput is not None and queue is not None:
            # The capacity-aware queue term (policy.capacity_queue_term): the measured
            # arrival rate and the cold start in use.
            source = self.sources.queue_source(cfg)
            queue_key = source.key if source is not None else None
            rate_read = _rate_read(reads)
            rate, history_point = self._capacity_rate(rate_read, queue_key)
            cold_start = self._cold_start_in_use(cfg)[0]
            held_rate, held_window = self._held_rate(cfg, rate_read, history_point, queue_key, cold_start)
            signals = dataclasses.replace(
                signals,
                arrival_rate=rate,
                cold_start=cold_start,
                since_quiet=self._since_quiet(reads, rate, queue_key),
                held_rate=held_rate,
                held_window=held_window,
            )
        view = self._forecast(ref, cfg, reads, polled=polled)
        if view is not None and view.used:
            signals = dataclasses.replace(
                signals, forecast_floor=view.floor, forecast_reason=_forecast_reason(view, cfg)
            )
        ages = {r.name: r.age for r in reads if r.age is not None}
        decision = decide(signals, cfg, self.clock.monotonic())
        return Evaluation(
            ref=ref, config=cfg, signals=signals, ages=ages, decision=decision, reads=reads, forecast=view
        )

    # --- the forecast ---------------------------------------------------------------

    def _forecast(
        self, ref: ObjectRef, cfg: TriggerConfig, reads: tuple[SignalRead, ...], *, polled: bool = True
    ) -> ForecastView | None:
        """Feed the trigger's demand series with this evaluation's new reading and
        ask it what comes within the cold start. Never raises: a forecast problem
        leaves the answer to the live signals."""
        fc = cfg.forecast
        if fc.mode is ForecastMode.OFF:
            return None
        try:
            series = self._demand_series(cfg, reads)
            if series is None:
                return None
            cold_start, measured = self._cold_start_in_use(cfg)
            outlook = series.model.outlook(self.clock.wall(), cold_start, fc.quantile)
            view = _view(cfg, series, outlook, cold_start, measured)
            if cfg.mode is Mode.JOB and view.used and view.floor > 0:
                view = self._pulse(ref, cfg, view, polled=polled)
            return view
        except Exception:  # a bug in the forecast must not fail the rpc
            log.exception("forecast failed; answering from the live signals")
            return None

    def _demand_series(self, cfg: TriggerConfig, reads: tuple[SignalRead, ...]) -> DemandSeries | None:
        """The trigger's demand series, fed with this evaluation's reading if new:
        arrivalQuery, else the management API's publish rate, else the queue's growth.

        A reading is fed at the wall time it was read (now's wall time less its age),
        as _optional_refreshed feeds one: a cached reading is first used up to a
        stream tick or a slow co-read later, and timed by its first use, the
        inferred rate's growth was divided by the gap between two evaluations
        instead of two readings."""
        now = self.clock.monotonic()
        wall_now = self.clock.wall()

        def wall(read_at: float) -> float:
            return wall_now - max(0.0, now - read_at)

        if cfg.forecast.arrival_query is not None:
            source = self.sources.arrival_source(cfg)
            if source is None:
                return None
            series = self.demand.get(source.key, DemandKind.ARRIVAL, now)
            _remember(self._forecast_arrivals, source.key, None, SOURCE_MEMORY_LIMIT)
            arrival = next((r for r in reads if r.name == ARRIVAL), None)
            value = arrival.value if arrival is not None else None
            if arrival is not None and isinstance(value, ArrivalReading) and arrival.read_at is not None:
                series.feed(arrival.read_at, wall(arrival.read_at), value.rate)
            return series
        queue_source = self.sources.queue_source(cfg) if cfg.source is not None else None
        if queue_source is None:
            return None
        key, kind = _queue_series_key(cfg, queue_source)
        publish = kind is DemandKind.PUBLISH
        series = self.demand.get(key, kind, now)
        queue_read = next((r for r in reads if isinstance(r.value, QueueReading)), None)
        if queue_read is not None and queue_read.read_at is not None:
            value = queue_read.value
            assert isinstance(value, QueueReading)
            if publish:
                # No publish_details yet: nothing was ever published, a rate of 0.
                series.feed(queue_read.read_at, wall(queue_read.read_at), value.publish_rate or 0.0)
            else:
                series.feed_queue(queue_read.read_at, wall(queue_read.read_at), value)
        return series

    def _pulse(self, ref: ObjectRef, cfg: TriggerConfig, view: ForecastView, *, polled: bool) -> ForecastView:
        """The view as the object's pre-warm pulse has it (job_pulse). Only a polled
        evaluation starts a pulse: a stream tick (which KEDA ignores for a ScaledJob)
        answers what a poll would now, and changes nothing, so it can neither start
        a pulse between polls nor let its hold run out before a poll sees it."""
        key = (ref, cfg.metric_name)
        now = self.clock.monotonic()
        ask, started = job_pulse(now, self._job_pulses.get(key), view.cold_start)
        if polled:
            _remember(self._job_pulses, key, started, 10_000)
        if ask:
            return view
        next_in = started + job_pulse_period(view.cold_start) - now
        return dataclasses.replace(view, floor=0.0, jobs_next_in=next_in)

    def _capacity_rate(
        self, read: tuple[str, float, float | None] | None, queue_key: str | None
    ) -> tuple[float | None, tuple[float, float] | None]:
        """The measured arrival rate (_rate_read; None when no rate is read), and
        the (monotonic time, rate) the hold's history is fed (None: nothing yet).
        arrivalQuery's as it answers (its range is already an average), fed as
        read; the publish rate, a 5 s sample, averaged over at most a minute, as
        long as its measured noise needs (policy.smoothed_rate), counting one
        reading per RATE_SAMPLE_S (policy.sampled_rate: how often the engine is
        asked does not change it), one average per queue, keyed by the queue
        source's key, and the history fed the average as counted, so the levels
        held do not depend on that either."""
        if read is None:
            return None, None
        name, rate, read_at = read
        if name == ARRIVAL or queue_key is None or read_at is None:
            return rate, (read_at, rate) if read_at is not None else None
        sampled = sampled_rate(self._rates.get(queue_key), read_at, rate)
        _remember(self._rates, queue_key, sampled, SOURCE_MEMORY_LIMIT)
        counted = sampled.counted
        return sampled.value, (counted.read_at, counted.value) if counted is not None else None

    def _held_rate(
        self,
        cfg: TriggerConfig,
        read: tuple[str, float, float | None] | None,
        history_point: tuple[float, float] | None,
        queue_key: str | None,
        cold_start: float,
    ) -> tuple[float | None, float | None]:
        """The rate the capacity term holds and the window it was found in, after
        feeding the history `history_point` (_capacity_rate): the burst level of the
        hold window (policy.hold_window), or, where higher, that of bursts that came
        back within policy.recurring_hold_window; (None, None) when no rate is read
        or the hold is off. One history per rate source (arrivalQuery's, else the
        queue's), so many objects on one queue share it (a point fed again changes
        nothing)."""
        window = hold_window(cfg, cold_start)
        if read is None or read[2] is None or window <= 0:
            return None, None
        if read[0] == ARRIVAL:
            source = self.sources.arrival_source(cfg)
            key = source.key if source is not None else None
        else:
            key = queue_key
        if key is None:
            return None, None
        history = self._rate_histories.get(key)
        if history is None:
            history = RateHistory()
        _remember(self._rate_histories, key, history, SOURCE_MEMORY_LIMIT)
        if history_point is not None:
            history.feed(*history_point)
        held = history.held(read[2], window)
        recurring = recurring_hold_window(cfg, cold_start)
        if recurring > 0:
            came_back = history.held(read[2], recurring, rises=RECURRING_RISES)
            if came_back > held:
                return came_back, recurring
        return held, window

    def _since_quiet(
        self, reads: tuple[SignalRead, ...], rate: float | None, queue_key: str | None
    ) -> float | None:
        """Seconds from the last reading of the trigger's queue that found it quiet
        (policy.is_quiet, with the capacity term's rate) to this one; None when it
        has not been seen quiet. One memory per queue, so many objects on one
        queue agree."""
        read = next((r for r in reads if isinstance(r.value, QueueReading)), None)
        if rate is None or read is None or read.read_at is None or queue_key is None:
            return None
        assert isinstance(read.value, QueueReading)
        if is_quiet(read.value, rate):
            _remember(self._quiet_at, queue_key, read.read_at, SOURCE_MEMORY_LIMIT)
        quiet_at = self._quiet_at.get(queue_key)
        if quiet_at is None or read.read_at < quiet_at:  # never quiet, or an older reading
            return None
        return read.read_at - quiet_at

    def _cold_start_in_use(self, cfg: TriggerConfig) -> tuple[float, bool]:
        """coldStartQuery's last sane answer, else coldStartSeconds."""
        source = self.sources.cold_start_source(cfg) if cfg.forecast.cold_start_query is not None else None
        if source is not None:
            known = self._cold_starts.get(source.key)
            if known is not None and known[0] is not None:
                return known[0], True
        return cfg.forecast.cold_start_seconds, False

    def _warn_unknown(self, ref: ObjectRef, cfg: TriggerConfig) -> None:
        for key in cfg.unknown_keys:
            marker = (ref, key)
            if marker in self._warned_unknown:
                continue
            self._warned_unknown[marker] = None
            if len(self._warned_unknown) > 10_000:
                self._warned_unknown.popitem(last=False)
            log.warning(
                "unknown metadata key ignored (a typo?)",
                extra={"object": str(ref), "key": key},
            )


def _reads_prometheus_demand(cfg: TriggerConfig) -> bool:
    """Whether arrivalQuery and coldStartQuery are read: for the forecast, and for the
    capacity-aware queue term, whose arrival rate and look-ahead they are. `forecast:
    off` turns off the forecast, not that term: with replicaThroughput they are read."""
    return cfg.forecast.mode is not ForecastMode.OFF or (
        cfg.mode is Mode.DEPLOYMENT and cfg.forecast.replica_throughput is not None
    )


# Job mode: a pulse asks for the pre-warm Jobs during its hold: PREWARM_JOB_HOLD
# seconds, and never more than PREWARM_JOB_HOLD_SHARE of the cold start, so that it
# ends before the Jobs it created can be Ready (no longer pending, when KEDA's
# accurate strategy would create them again). A pulse starts only at a polled
# evaluation (GetMetrics/IsActive), so the poll that starts it sees it whatever
# the pollingInterval; the hold need only span that poll's two calls (and KEDA's
# retry), and a later poll inside it finds the Jobs still pending. Then not again
# until job_pulse_period: 3 cold starts after the pulse began (a pre-warmed Job
# starts in one and waits up to two for a message; docs/forecast.md), and never
# before the hold and one cold start have passed.
PREWARM_JOB_HOLD = 45.0
PREWARM_JOB_HOLD_SHARE = 0.8


def job_pulse_hold(cold_start: float) -> float:
    """Seconds a pulse asks for the pre-warm Jobs: min(45 s, 0.8 x cold start)."""
    return min(PREWARM_JOB_HOLD, PREWARM_JOB_HOLD_SHARE * cold_start)


def job_pulse_period(cold_start: float) -> float:
    """Seconds from a pulse's start to the earliest next one: 3 cold starts, and at
    least the hold plus a cold start (so that a pulse always ends)."""
    return max(3 * cold_start, job_pulse_hold(cold_start) + cold_start)


def job_pulse(now: float, started: float | None, cold_start: float) -> tuple[bool, float]:
    """Whether to ask for the pre-warm Jobs now, and when the current pulse began.

    KEDA's accurate strategy creates `value - pending` Jobs at every poll and does
    not subtract running ones: a pre-warmed Job that is Ready and waiting for a
    message is no longer pending, so a steady floor would start more Jobs at every
    poll. A pulse asks once (for job_pulse_hold seconds, which end before the Jobs
    it created can be Ready, so they are still pending at any poll inside it), then
    waits until those Jobs have had time to find a message or exit
    (job_pulse_period)."""
    if started is None or now - started >= job_pulse_period(cold_start):
        return True, now
    return now - started < job_pulse_hold(cold_start), started


def _view(
    cfg: TriggerConfig, series: DemandSeries, outlook: Outlook, cold_start: float, measured: bool
) -> ForecastView:
    """The floor from an outlook: while at least one arrival is expected within
    the cold start, the replicas the upper quantile of the peak rate needs at
    replicaThroughput (at least 1), or 1 without it; in job mode, one Job per
    expected arrival up to maxPrewarmJobs. Nothing while none is expected. With
    replicaThroughput (deployment mode) the recurring peak also expects demand
    when at least one arrival at its rate fits in the cold start.

    While the model is gated (its point forecast worse than naive) a deployment
    with replicaThroughput keeps the recurring-peak floor only: the replicas for
    the peak minute of [now, now + L] on past days (Outlook.recurring: their
    average, or their recent highest where that has scored better). The
    gate judges the point forecast; the recurring peak extrapolates nothing (it
    is what this minute of the day usually brought), and it only raises."""
    fc = cfg.forecast
    floor = 0.0
    sized = cfg.mode is Mode.DEPLOYMENT and fc.replica_throughput is not None
    recurring_only = outlook.state is ForecastState.GATED and sized
    # The recurring peak expects demand on its own in every state: a small daily
    # batch in a quiet hour is what the hourly point forecast smooths below one
    # arrival, and a model that beats naive must not wake less than a gated one.
    recurring_expected = sized and outlook.recurring * cold_start >= ACTIVATION_ARRIVALS
    if recurring_only:
        assert fc.replica_throughput is not None
        if recurring_expected:
            floor = max(1.0, outlook.recurring / fc.replica_throughput)
    elif outlook.expected_arrivals >= ACTIVATION_ARRIVALS or recurring_expected:
        if cfg.mode is Mode.JOB:
            floor = float(min(fc.max_prewarm_jobs, math.ceil(outlook.expected_arrivals)))
        elif fc.replica_throughput is not None:
            floor = max(1.0, outlook.upper / fc.replica_throughput)
        else:
            floor = 1.0
    used = (
        fc.mode is ForecastMode.AUTO
        and (outlook.usable or (recurring_only and floor > 0))
        and not (cfg.mode is Mode.JOB and fc.max_prewarm_jobs == 0)
    )
    return ForecastView(
        mode=fc.mode,
        demand=series.kind,
        state=outlook.state,
        reason=outlook.reason,
        cold_start=cold_start,
        cold_start_measured=measured,
        rate=outlook.rate,
        upper=outlook.upper,
        expected_arrivals=outlook.expected_arrivals,
        floor=floor,
        used=used,
        error_ratio=outlook.error_ratio,
        warm_start=series.warm_start,
        recurring=outlook.recurring,
        outlook=outlook,
    )


def _rate_read(reads: tuple[SignalRead, ...]) -> tuple[str, float, float | None] | None:
    """Requests/s arriving now, as (signal name, rate, read_at): arrivalQuery's
    reading, else the queue's publish rate (RabbitMQ's management API); None when
    neither is read. (The queue's growth is not used: under a backlog it is
    arrivals minus service.)"""
    for read in reads:
        if isinstance(read.value, ArrivalReading) and math.isfinite(read.value.rate):
            return (read.name, max(0.0, read.value.rate), read.read_at)
    for read in reads:
        if isinstance(read.value, QueueReading) and read.value.publish_rate is not None:
            return (read.name, read.value.publish_rate, read.read_at)
    return None


def _forecast_reason(view: ForecastView, cfg: TriggerConfig) -> str:
    measured = " (measured)" if view.cold_start_measured else ""
    window = f"within the {view.cold_start:g}s cold start{measured}"
    if view.jobs_next_in is not None:
        return (
            f"{view.expected_arrivals:.3g} arrivals expected {window}; pre-warm Jobs already asked for, "
            f"again in {view.jobs_next_in:.0f}s (3 cold starts after the last)"
        )
    if view.floor <= 0:
        return f"no demand expected {window} ({view.expected_arrivals:.2g} arrivals; {view.reason})"
    if view.state is ForecastState.GATED:
        return (
            f"forecast: {view.reason}; recurring peak {view.recurring:.3g}/s (the peak minute {window}, "
            f"{view.recurring_from} of past days) / replicaThroughput {cfg.forecast.replica_throughput:g} = "
            f"{view.floor:.3g} replicas"
        )
    if cfg.mode is Mode.JOB:
        how = f"{view.floor:g} Jobs (maxPrewarmJobs {cfg.forecast.max_prewarm_jobs})"
    elif cfg.forecast.replica_throughput is not None:
        how = (
            f"upper {view.upper:.3g}/s (q{cfg.forecast.quantile:g}) / replicaThroughput "
            f"{cfg.forecast.replica_throughput:g} = {view.floor:.3g} replicas"
        )
        if view.expected_arrivals < ACTIVATION_ARRIVALS:  # woken by the recurring peak alone
            how = (
                f"recurring peak {view.recurring:.3g}/s (the peak minute {window}, "
                f"{view.recurring_from} of past days); {how}"
            )
    else:
        how = "wake 1 replica (no replicaThroughput)"
    return f"forecast: {view.expected_arrivals:.3g} arrivals expected {window} at {view.rate:.3g}/s; {how}"


def _absent_steps_as_zero(
    points: list[tuple[float, float]], end: float, step: float
) -> list[tuple[float, float]]:
    """`points` (a range query's answer) with a 0 at every step of
    its grid from the first point to `end` that has no point (Engine._warm_model).
    The grid is the first point's time plus whole steps (Prometheus evaluates a
    range query at start + k * step); a point counts for the step it is nearest.
    Returned in time order, or as they came when none is absent."""
    if not points or not step > 0:
        return points
    first = min(wall for wall, _ in points)
    # Bounded by the warm start's span: a stray time cannot make a huge list.
    last = min(math.floor((end - first) / step + 1e-9), math.ceil(WARM_START_SPAN / step))
    have = {round((wall - first) / step) for wall, _ in points}
    absent = [(first + k * step, 0.0) for k in range(last + 1) if k not in have]
    if not absent:
        return points
    return sorted(points + absent, key=lambda point: point[0])


def _queue_series_key(cfg: TriggerConfig, queue_source: Source) -> tuple[str, DemandKind]:
    """The demand series of a trigger without arrivalQuery: the management API's
    publish rate (RabbitMQ over HTTP), else the queue's growth."""
    publish = cfg.rabbitmq is not None and cfg.rabbitmq.protocol is RabbitProtocol.HTTP
    kind = DemandKind.PUBLISH if publish else DemandKind.INFERRED
    return f"{queue_source.key}|{kind.name.lower()}", kind


async def _within(task: asyncio.Task[Reading[object]], seconds: float, otherwise: object) -> object:
    """The task's reading (or its SourceError raised) if it is done within
    `seconds`, else `otherwise`; the task itself runs on either way."""
    try:
        return await asyncio.wait_for(asyncio.shield(task), seconds)
    except TimeoutError:
        return otherwise


def _query_key(cfg: TriggerConfig, name: str) -> str | None:
    """The metadata key a Prometheus signal's query comes from (None: not a query)."""
    if name == ARRIVAL:
        return "arrivalQuery"
    if name == COLD_START:
        return "coldStartQuery"
    if name == "gpu" and cfg.gpu is not None:
        return "gpuQuery" if cfg.gpu.selector is None else "gpuSelector"
    return None


def _taken_by(outcome: object, when: float) -> bool:
    """Whether a cached outcome is a reading taken at or before `when`."""
    return isinstance(outcome, Reading) and outcome.read_at <= when


def raise_failures(reads: tuple[SignalRead, ...]) -> None:
    """Raise when any signal failed: a decision from part of the signals could
    scale a working pool away. A query the source rejects as invalid wins (it is
    a metadata problem no retry fixes); several failures are reported together.
    The forecast's own reads (optional) never fail the answer."""
    errors = [r.error for r in reads if r.error is not None and not r.optional]
    if not errors:
        return
    rejected = next((e for e in errors if isinstance(e, SourceRejectedQuery)), None)
    if rejected is not None:
        raise rejected
    if len(errors) == 1:
        raise errors[0]
    raise SourceError("; ".join(str(e) for e in errors))
