"""The engine: request metadata → typed config → shared readings → decision.

The server, `explain` and the simulator all go through `Engine.evaluate`; they
differ only in the sources (real or simulated) and the clock they inject.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from scaler.clock import Clock
from scaler.config import SourceKind, TriggerConfig, parse_trigger
from scaler.policy import Decision, Signals, decide
from scaler.signals.base import QueueReading, Source, SourceError
from scaler.signals.cache import ReadingCache

log = logging.getLogger(__name__)


class SourceFactory:
    """Builds the real source objects for a trigger config. Cheap: clients are
    created lazily on first read, and the cache keeps one source per key."""

    def __init__(self, timeout: float = 5.0) -> None:
        self.timeout = timeout

    def queue_source(self, cfg: TriggerConfig) -> Source | None:
        if cfg.source is SourceKind.SQS and cfg.sqs is not None:
            from scaler.signals.sqs import SqsSource

            return SqsSource(cfg.sqs, timeout=self.timeout)
        if cfg.source is SourceKind.RABBITMQ and cfg.rabbitmq is not None:
            from scaler.signals.rabbitmq import rabbitmq_source

            return rabbitmq_source(cfg.rabbitmq, timeout=self.timeout)
        return None


@dataclass(frozen=True)
class ObjectRef:
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class Evaluation:
    """One answer and everything that went into it (for metrics, logs, explain)."""

    ref: ObjectRef
    config: TriggerConfig
    signals: Signals
    ages: Mapping[str, float]  # seconds since each signal was read
    decision: Decision


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
    ) -> None:
        self.cache = cache
        self.clock = clock
        self.sources = sources or SourceFactory(timeout=cache.timeout)
        self._observer = observer
        self._memo = _ConfigMemo()
        self._warned_unknown: OrderedDict[tuple[ObjectRef, str], None] = OrderedDict()

    def config(self, ref: ObjectRef, metadata: Mapping[str, str]) -> TriggerConfig:
        """Parse (memoised) and validate. Raises ConfigError."""
        memo_key = tuple(sorted(metadata.items()))
        cfg = self._memo.items.get(memo_key)
        if cfg is None:
            cfg = parse_trigger(metadata)
            self._memo.items[memo_key] = cfg
            if len(self._memo.items) > self._memo.limit:
                self._memo.items.popitem(last=False)
        else:
            self._memo.items.move_to_end(memo_key)
        self._warn_unknown(ref, cfg)
        return cfg

    async def evaluate(self, ref: ObjectRef, metadata: Mapping[str, str]) -> Evaluation:
        """Read the trigger's signals (shared, cached) and decide.
        Raises ConfigError or SourceError."""
        cfg = self.config(ref, metadata)
        ages: dict[str, float] = {}
        queue: QueueReading | None = None
        source = self.sources.queue_source(cfg)
        if source is not None:
            reading = await self.cache.get(source)
            if not isinstance(reading.value, QueueReading):
                raise SourceError(f"{source.description}: returned no queue reading")
            queue = reading.value
            ages["queue"] = reading.age(self.clock.monotonic())
        signals = Signals(queue=queue)
        decision = decide(signals, cfg, self.clock.monotonic())
        evaluation = Evaluation(ref=ref, config=cfg, signals=signals, ages=ages, decision=decision)
        if self._observer is not None:
            self._observer(evaluation)
        return evaluation

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
