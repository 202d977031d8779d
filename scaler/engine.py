"""The engine: request metadata → typed config → shared readings → decision.

The server, `explain` and the simulator all go through `Engine.evaluate`; they
differ only in the sources (real or simulated) and the clock they inject.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from scaler.access import AccessPolicy, check_access
from scaler.clock import Clock
from scaler.config import SourceKind, TriggerConfig, parse_trigger
from scaler.policy import Decision, Signals, decide
from scaler.signals.base import GpuReading, QueueReading, Source, SourceError, SourceRejectedQuery
from scaler.signals.cache import Reading, ReadingCache

log = logging.getLogger(__name__)


class SourceFactory:
    """Builds the real source objects for a trigger config.

    Sources are kept per source config (bounded), so the hot path (GetMetrics,
    IsActive, stream ticks) reuses one object and its client instead of
    building a source per call. A source closed by the cache's idle eviction
    reopens its client lazily if it is asked for again.
    """

    def __init__(self, timeout: float = 5.0, limit: int = 4096, failure_ttl: float = 2.0) -> None:
        self.timeout = timeout
        self._limit = limit
        self._made: OrderedDict[object, Source] = OrderedDict()
        from scaler.signals.rabbitmq import AmqpConnections

        # One AMQP connection per broker, vhost and credentials, for all their queues;
        # a broker's connection failure is remembered for failure_ttl (the cache TTL).
        self.amqp_connections = AmqpConnections(failure_ttl)

    def queue_source(self, cfg: TriggerConfig) -> Source | None:
        sqs, rabbitmq = cfg.sqs, cfg.rabbitmq
        if cfg.source is SourceKind.SQS and sqs is not None:
            from scaler.signals.sqs import SqsSource

            return self._kept(sqs, lambda: SqsSource(sqs, timeout=self.timeout))
        if cfg.source is SourceKind.RABBITMQ and rabbitmq is not None:
            from scaler.signals.rabbitmq import rabbitmq_source

            return self._kept(
                rabbitmq,
                lambda: rabbitmq_source(rabbitmq, timeout=self.timeout, connections=self.amqp_connections),
            )
        return None

    def gpu_source(self, cfg: TriggerConfig) -> Source | None:
        gpu = cfg.gpu
        if gpu is not None:
            from scaler.signals.prometheus import PrometheusSource

            return self._kept(gpu, lambda: PrometheusSource(gpu, timeout=self.timeout))
        return None

    def _kept(self, source_config: object, make: Callable[[], Source]) -> Source:
        source = self._made.get(source_config)
        if source is None:
            source = self._made[source_config] = make()
            if len(self._made) > self._limit:
                self._made.popitem(last=False)
        else:
            self._made.move_to_end(source_config)
        return source


@dataclass(frozen=True)
class ObjectRef:
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class SignalRead:
    """The outcome of reading one of a trigger's signals: a value or an error."""

    name: str  # "queue" or "gpu"
    description: str  # the source, without credentials
    value: QueueReading | GpuReading | None = None
    age: float | None = None  # seconds since the value was read (it may come from the cache)
    error: SourceError | None = None


@dataclass(frozen=True)
class Evaluation:
    """One answer and everything that went into it (for metrics, logs, explain)."""

    ref: ObjectRef
    config: TriggerConfig
    signals: Signals
    ages: Mapping[str, float]  # seconds since each signal was read
    decision: Decision
    reads: tuple[SignalRead, ...] = ()


DecisionObserver = Callable[[Evaluation], None]


@dataclass
class _ConfigMemo:
    """Parsed configs by metadata, bounded (KEDA re-sends the same map every poll)."""

    limit: int = 4096
    items: OrderedDict[tuple[tuple[str, str], ...], TriggerConfig] = field(default_factory=OrderedDict)


class Engine:
    def __init__(
        self,
        cache: ReadingCache,
        clock: Clock,
        sources: SourceFactory | None = None,
        observer: DecisionObserver | None = None,
        access: AccessPolicy | None = None,
    ) -> None:
        self.cache = cache
        self.clock = clock
        self.sources = sources or SourceFactory(timeout=cache.timeout, failure_ttl=cache.ttl)
        self._observer = observer
        # The operator's limits on hosts and on the scaler's own cloud identity.
        self.access = access or AccessPolicy()
        self._memo = _ConfigMemo()
        self._warned_unknown: OrderedDict[tuple[ObjectRef, str], None] = OrderedDict()

    def config(self, ref: ObjectRef, metadata: Mapping[str, str]) -> TriggerConfig:
        """Parse (memoised), validate, and check against the access policy (before
        any source exists, so a refused host is never connected to). Raises ConfigError."""
        memo_key = tuple(sorted(metadata.items()))
        cfg = self._memo.items.get(memo_key)
        if cfg is None:
            cfg = parse_trigger(metadata)
            self._memo.items[memo_key] = cfg
            if len(self._memo.items) > self._memo.limit:
                self._memo.items.popitem(last=False)
        else:
            self._memo.items.move_to_end(memo_key)
        check_access(cfg, ref.namespace, self.access)
        self._warn_unknown(ref, cfg)
        return cfg

    async def evaluate(self, ref: ObjectRef, metadata: Mapping[str, str]) -> Evaluation:
        """Read the trigger's signals (shared, cached) and decide.
        Raises ConfigError or SourceError."""
        return await self.evaluate_config(ref, self.config(ref, metadata))

    async def evaluate_config(self, ref: ObjectRef, cfg: TriggerConfig) -> Evaluation:
        """evaluate() for a config already parsed with config(). Raises SourceError."""
        reads = await self.read_signals(cfg)
        raise_failures(reads)
        evaluation = self.decide(ref, cfg, reads)
        if self._observer is not None:
            self._observer(evaluation)
        return evaluation

    async def read_signals(self, cfg: TriggerConfig) -> tuple[SignalRead, ...]:
        """Read every signal the trigger uses, concurrently, through the shared
        cache. Never raises a SourceError: each read carries its own outcome."""
        wanted = self._wanted_signals(cfg)
        outcomes = await asyncio.gather(
            *(self.cache.get(source) for _, source, _ in wanted), return_exceptions=True
        )
        return self._signal_reads(wanted, outcomes)

    def evaluate_config_sync(self, ref: ObjectRef, cfg: TriggerConfig) -> Evaluation:
        """evaluate_config() with no event loop and no thread pool: for drivers whose
        sources are in memory (the simulator). Same cache, decision and observer."""
        reads = self.read_signals_sync(cfg)
        raise_failures(reads)
        evaluation = self.decide(ref, cfg, reads)
        if self._observer is not None:
            self._observer(evaluation)
        return evaluation

    def read_signals_sync(self, cfg: TriggerConfig) -> tuple[SignalRead, ...]:
        """read_signals(), each read in the caller's thread (ReadingCache.get_sync)."""
        wanted = self._wanted_signals(cfg)
        outcomes: list[object] = []
        for _, source, _ in wanted:
            try:
                outcomes.append(self.cache.get_sync(source))
            except SourceError as exc:
                outcomes.append(exc)
        return self._signal_reads(wanted, outcomes)

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
        return wanted

    def _signal_reads(
        self, wanted: list[tuple[str, Source, type]], outcomes: Sequence[object]
    ) -> tuple[SignalRead, ...]:
        """Each read's outcome (a Reading or an exception) as a SignalRead."""
        now = self.clock.monotonic()
        reads: list[SignalRead] = []
        for (name, source, expected), outcome in zip(wanted, outcomes, strict=True):
            if isinstance(outcome, SourceError):
                reads.append(SignalRead(name, source.description, error=outcome))
            elif isinstance(outcome, BaseException):
                raise outcome
            elif not isinstance(outcome, Reading) or not isinstance(outcome.value, expected):
                error = SourceError(f"{source.description}: returned no {name} reading")
                reads.append(SignalRead(name, source.description, error=error))
            else:
                value = outcome.value
                assert isinstance(value, QueueReading | GpuReading)
                reads.append(SignalRead(name, source.description, value=value, age=outcome.age(now)))
        return tuple(reads)

    def decide(self, ref: ObjectRef, cfg: TriggerConfig, reads: tuple[SignalRead, ...]) -> Evaluation:
        """The decision from successful reads (see raise_failures)."""
        queue = next((r.value for r in reads if isinstance(r.value, QueueReading)), None)
        gpu = next((r.value for r in reads if isinstance(r.value, GpuReading)), None)
        signals = Signals(queue=queue, gpu=gpu)
        ages = {r.name: r.age for r in reads if r.age is not None}
        decision = decide(signals, cfg, self.clock.monotonic())
        return Evaluation(ref=ref, config=cfg, signals=signals, ages=ages, decision=decision, reads=reads)

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


def raise_failures(reads: tuple[SignalRead, ...]) -> None:
    """Raise when any signal failed: a decision from part of the signals could
    scale a working pool away. A query the source rejects as invalid wins (it is
    a metadata problem no retry fixes); several failures are reported together."""
    errors = [r.error for r in reads if r.error is not None]
    if not errors:
        return
    rejected = next((e for e in errors if isinstance(e, SourceRejectedQuery)), None)
    if rejected is not None:
        raise rejected
    if len(errors) == 1:
        raise errors[0]
    raise SourceError("; ".join(str(e) for e in errors))
