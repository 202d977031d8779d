"""Prometheus metrics, structured logs, and the per-decision record.

Metric labels carry names (namespace, object, metric, source kind), never a URL
or anything else that may hold a credential. Per-object series are dropped when
an object has not been asked about for `object_ttl` seconds, so cardinality is
bounded by the objects that are live.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import logging
import math
import re
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

from scaler import __version__
from scaler.clock import Clock
from scaler.engine import Evaluation, ForecastView, ObjectRef
from scaler.policy import counted_messages
from scaler.signals.base import Source, SourceError

log = logging.getLogger("scaler.decision")

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class RpcTally:
    """prewarm_rpc_total and prewarm_rpc_duration_seconds: kept as plain numbers
    (added to on the event loop, the rpcs' hot path: no lock and no labels()
    lookup per call) and exported as a counter and a histogram when /metrics is
    read (another thread: copies taken under the GIL, so at worst one call is in
    the count and not yet in the latency sum)."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str], int] = {}
        # method -> one count per latency bucket, one for +Inf, then the sum of seconds
        self._latency: dict[str, list[float]] = {}

    def count(self, method: str, code: str) -> None:
        key = (method, code)
        self._counts[key] = self._counts.get(key, 0) + 1

    def observe(self, method: str, seconds: float) -> None:
        latency = self._latency.get(method)
        if latency is None:
            latency = self._latency[method] = [0.0] * (len(_LATENCY_BUCKETS) + 2)
        latency[bisect.bisect_left(_LATENCY_BUCKETS, seconds)] += 1  # the first bucket with le >= seconds
        latency[-1] += seconds

    def collect(self) -> Iterator[Metric]:
        total = CounterMetricFamily(
            "prewarm_rpc", "gRPC calls answered, by method and status code", labels=["method", "code"]
        )
        for (method, code), n in sorted(dict(self._counts).items()):
            total.add_metric([method, code], n)
        yield total
        seconds = HistogramMetricFamily(
            "prewarm_rpc_duration_seconds", "gRPC call latency, by method", labels=["method"]
        )
        for method, latency in sorted(dict(self._latency).items()):
            latency = list(latency)
            buckets: list[tuple[str, float]] = []
            cumulative = 0.0
            for bound, in_bucket in zip((*_LATENCY_BUCKETS, math.inf), latency[:-1], strict=True):
                cumulative += in_bucket
                buckets.append((floatToGoString(bound), cumulative))
            seconds.add_metric([method], buckets, latency[-1])
        yield seconds


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=lambda: CollectorRegistry(auto_describe=True))

    def __post_init__(self) -> None:
        r = self.registry
        self.rpcs = RpcTally()
        r.register(self.rpcs)
        # Which version each replica runs (during a rolling upgrade: count by (version)).
        build = Gauge("prewarm_build_info", "1, labelled with the running version", ["version"], registry=r)
        build.labels(__version__).set(1)
        self.source_reads = Counter(
            "prewarm_source_reads_total",
            "Source reads (cache misses), by source kind",
            ["source"],
            registry=r,
        )
        self.source_errors = Counter(
            "prewarm_source_errors_total",
            "Failed source reads, by source kind",
            ["source"],
            registry=r,
        )
        self.source_seconds = Histogram(
            "prewarm_source_read_duration_seconds",
            "Source read latency, by source kind",
            ["source"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        labels = ["namespace", "name", "metric"]
        self.counted_work = Gauge(
            "prewarm_counted_work",
            "Messages counted as work (job mode: unclaimed backlog)",
            labels,
            registry=r,
        )
        self.busy_gpus = Gauge(
            "prewarm_busy_gpus",
            "Busy GPUs read from Prometheus (sum of utilisation, in GPUs)",
            labels,
            registry=r,
        )
        self.desired = Gauge(
            "prewarm_desired",
            "Desired replicas (Jobs in job mode), unrounded: the metric value",
            labels,
            registry=r,
        )
        self.active = Gauge(
            "prewarm_active",
            "1 when the trigger is active",
            labels,
            registry=r,
        )
        self.term = Gauge(
            "prewarm_term_replicas",
            "Replicas each decision term asks for",
            [*labels, "term"],
            registry=r,
        )
        self.winner = Gauge(
            "prewarm_term_winner",
            "1 for the term that set the desired value",
            [*labels, "term"],
            registry=r,
        )
        # The capacity-aware queue term's rates (absent without replicaThroughput; the
        # held rate also with holdSeconds 0): what the server remembers between reads,
        # which a one-shot explain cannot show.
        self.arrival_rate = Gauge(
            "prewarm_arrival_rate",
            "Arrivals per second the capacity-aware queue term uses (arrivalQuery's as read, else "
            "the queue's publish rate averaged)",
            labels,
            registry=r,
        )
        self.held_rate = Gauge(
            "prewarm_held_rate",
            "Arrivals per second the capacity term holds: the bursts' rate within holdSeconds "
            "(0 when no burst)",
            labels,
            registry=r,
        )
        # The forecast (absent for triggers with forecast: off or no demand series).
        self.forecast_state = Gauge(
            "prewarm_forecast_state",
            "1 for the forecast's state: cold (too little history), gated (worse than naive), ready",
            [*labels, "state"],
            registry=r,
        )
        self.forecast_used = Gauge(
            "prewarm_forecast_used",
            "1 when the forecast is in the answer (mode auto and ready, or gated with its "
            "recurring-peak floor); 0 when advisory, cold or otherwise gated",
            labels,
            registry=r,
        )
        self.forecast_rate = Gauge(
            "prewarm_forecast_rate",
            "Predicted arrivals per second, mean over the next cold start",
            labels,
            registry=r,
        )
        self.forecast_upper_rate = Gauge(
            "prewarm_forecast_upper_rate",
            "Upper quantile (forecastQuantile) of the peak predicted arrivals/s within the cold start",
            labels,
            registry=r,
        )
        self.forecast_floor = Gauge(
            "prewarm_forecast_floor",
            "Replicas (Jobs) the forecast asks for, whether or not it is used",
            labels,
            registry=r,
        )
        self.forecast_error_ratio = Gauge(
            "prewarm_forecast_error_ratio",
            "The forecast's recent error over the naive forecast's at the cold start (NaN before scored)",
            labels,
            registry=r,
        )
        self.cold_start = Gauge(
            "prewarm_cold_start_seconds",
            "The cold start in use: the forecast's look-ahead",
            labels,
            registry=r,
        )
        self.cold_start_measured = Gauge(
            "prewarm_cold_start_measured",
            "1 when the cold start in use comes from coldStartQuery, 0 when from coldStartSeconds",
            labels,
            registry=r,
        )

    def rpc_done(self, method: str, code: str, seconds: float) -> None:
        """Count one answered rpc and its latency."""
        self.rpcs.count(method, code)
        self.rpcs.observe(method, seconds)

    def observe_read(self, source: Source, seconds: float, error: SourceError | None) -> None:
        kind = source.key.split("|", 1)[0]
        self.source_reads.labels(kind).inc()
        self.source_seconds.labels(kind).observe(seconds)
        if error is not None:
            self.source_errors.labels(kind).inc()


# Objects whose series the recorder keeps at once (as many as Engine keeps answers
# for); past it the least recently seen are dropped early, so a client inventing
# names cannot grow /metrics without bound within object_ttl.
MAX_RECORDED_OBJECTS = 10_000


# The capacity term's (arrival, held) rates of an object without that term.
NO_RATES: tuple[float | None, float | None] = (None, None)


class DecisionRecorder:
    """Publishes each evaluation as gauges, logs changed decisions, and drops the
    series of objects not seen for `object_ttl` seconds."""

    def __init__(
        self,
        metrics: Metrics,
        clock: Clock,
        object_ttl: float = 900.0,
        max_objects: int = MAX_RECORDED_OBJECTS,
    ) -> None:
        self._metrics = metrics
        self._clock = clock
        self._object_ttl = object_ttl
        self._max_objects = max_objects
        self._lock = threading.Lock()
        # (ref, metric) -> (last seen, last decision key, term names)
        self._seen: dict[tuple[ObjectRef, str], tuple[float, tuple[int, bool, str], tuple[str, ...]]] = {}
        # Markers with forecast series, and the view last published for each (the
        # gauges are set again only when it changes: the outlook moves every few seconds).
        self._with_forecast: dict[tuple[ObjectRef, str], ForecastView] = {}
        # Markers and the gauge values last set for each (see __call__).
        self._published: dict[tuple[ObjectRef, str], tuple[object, ...]] = {}
        # Markers with the capacity term's rates, and the (arrival, held) rates last set.
        self._published_rates: dict[tuple[ObjectRef, str], tuple[float | None, float | None]] = {}
        # Markers and the evaluation last recorded for each.
        self._recorded: dict[tuple[ObjectRef, str], Evaluation] = {}

    def __call__(self, ev: Evaluation) -> None:
        marker = (ev.ref, ev.config.metric_name)
        with self._lock:
            seen = self._seen.get(marker)
            if seen is not None and self._recorded.get(marker) is ev:
                # The same evaluation answered again (Engine.answer): everything is
                # published and logged already; only the object was asked about now.
                self._seen[marker] = (self._clock.monotonic(), seen[1], seen[2])
                return
        m, d = self._metrics, ev.decision
        labels = (ev.ref.namespace, ev.ref.name, ev.config.metric_name)
        queue_term = next((t for t in d.terms if t.name == "queue"), None)
        marker_terms = tuple(t.name for t in d.terms)
        # The gauges' values: set again only when one changed (most calls answer
        # from a cached reading with the same decision, and every labels() lookup
        # costs on the hot path).
        queue = ev.signals.queue
        values = (
            counted_messages(queue, ev.config) if queue_term is not None and queue is not None else None,
            ev.signals.gpu.busy_gpus if ev.signals.gpu is not None else None,
            d.desired,
            d.active,
            tuple((t.name, t.replicas) for t in d.terms),
            d.winner,
        )
        # The capacity term's rates move with nearly every reading, so they are
        # compared apart: a new rate does not set every other gauge again.
        rates = (ev.signals.arrival_rate, ev.signals.held_rate)
        with self._lock:
            changed = self._published.get(marker) != values
            self._published[marker] = values
            had = self._published_rates.get(marker, NO_RATES)
            if rates != had:  # most calls: the same rates, or none (no capacity term)
                if rates == NO_RATES:
                    del self._published_rates[marker]
                else:
                    self._published_rates[marker] = rates
        if rates != had:
            _set_or_remove(m.arrival_rate, labels, rates[0], had=had[0] is not None)
            _set_or_remove(m.held_rate, labels, rates[1], had=had[1] is not None)
        if changed:
            if values[0] is not None:
                m.counted_work.labels(*labels).set(values[0])
            if values[1] is not None:
                m.busy_gpus.labels(*labels).set(values[1])
            m.desired.labels(*labels).set(d.desired)
            m.active.labels(*labels).set(1 if d.active else 0)
            for term in d.terms:
                m.term.labels(*labels, term.name).set(term.replicas)
                m.winner.labels(*labels, term.name).set(1 if term.name == d.winner else 0)
        with self._lock:
            previous = self._seen.get(marker)
            self._seen[marker] = (self._clock.monotonic(), d.key(), marker_terms)
            over = len(self._seen) - self._max_objects if previous is None else 0
            self._recorded[marker] = ev
            published = self._with_forecast.get(marker)
            if ev.forecast is not None:
                self._with_forecast[marker] = ev.forecast
            else:
                self._with_forecast.pop(marker, None)
        if ev.forecast is not None:
            if ev.forecast != published:
                _set_forecast(m, labels, ev)
        elif published is not None:
            _remove_forecast_series(m, labels)
        if previous is not None and previous[2] != marker_terms:
            # Terms this trigger no longer has (its metadata changed): drop their
            # series rather than leave their last values standing. Only on a
            # change: the hot path never tries to remove what is not there.
            _remove_term_series(m, labels, set(previous[2]) - set(marker_terms), kept=set(marker_terms))
        if over > 0:
            # A batch at a time: a client inventing names costs one sort per 1 %.
            self._drop(self._least_recently_seen(over + self._max_objects // 100, keep=marker))
        if previous is None or previous[1] != d.key():
            log.info(
                "decision changed",
                extra={
                    "object": str(ev.ref),
                    "metric": ev.config.metric_name,
                    "replicas": d.replicas,
                    "desired": round(d.desired, 3),
                    "active": d.active,
                    "winner": d.winner,
                    "reason": "; ".join(f"{t.name}: {t.reason}" for t in d.terms),
                    "forecast": (
                        f"{ev.forecast.mode.value}, {ev.forecast.reason}" if ev.forecast is not None else None
                    ),
                    "previous_replicas": previous[1][0] if previous else None,
                },
            )

    def expire(self) -> int:
        """Remove series of objects not seen for object_ttl. Returns how many."""
        now = self._clock.monotonic()
        with self._lock:
            stale = [k for k, v in self._seen.items() if now - v[0] > self._object_ttl]
        return self._drop(stale)

    def _least_recently_seen(self, count: int, keep: tuple[ObjectRef, str]) -> list[tuple[ObjectRef, str]]:
        with self._lock:
            ordered = sorted((k for k in self._seen if k != keep), key=lambda k: self._seen[k][0])
        return ordered[:count]

    def _drop(self, markers: list[tuple[ObjectRef, str]]) -> int:
        """Remove the markers' series. Returns how many were there."""
        with self._lock:
            stale = [k for k in markers if k in self._seen]
            dropped = [(k, self._seen.pop(k)[2]) for k in stale]
            with_rates = {k for k in stale if self._published_rates.pop(k, None) is not None}
            for k in stale:
                self._published.pop(k, None)
                self._recorded.pop(k, None)
            with_forecast = {k for k in stale if self._with_forecast.pop(k, None) is not None}
        m = self._metrics
        for (ref, metric), terms in dropped:
            labels = (ref.namespace, ref.name, metric)
            _remove(m.desired, labels)
            _remove(m.active, labels)
            if (ref, metric) in with_rates:
                _remove(m.arrival_rate, labels)
                _remove(m.held_rate, labels)
            _remove_term_series(m, labels, set(terms))
            if (ref, metric) in with_forecast:
                _remove_forecast_series(m, labels)
        return len(dropped)


FORECAST_STATES = ("cold", "gated", "ready")


def _set_forecast(m: Metrics, labels: tuple[str, ...], ev: Evaluation) -> None:
    view = ev.forecast
    assert view is not None
    for state in FORECAST_STATES:
        m.forecast_state.labels(*labels, state).set(1 if view.state.value == state else 0)
    m.forecast_used.labels(*labels).set(1 if view.used else 0)
    m.forecast_rate.labels(*labels).set(view.rate)
    m.forecast_upper_rate.labels(*labels).set(view.upper)
    m.forecast_floor.labels(*labels).set(view.floor)
    m.forecast_error_ratio.labels(*labels).set(view.error_ratio if view.error_ratio is not None else math.nan)
    m.cold_start.labels(*labels).set(view.cold_start)
    m.cold_start_measured.labels(*labels).set(1 if view.cold_start_measured else 0)


def _remove_forecast_series(m: Metrics, labels: tuple[str, ...]) -> None:
    for state in FORECAST_STATES:
        _remove(m.forecast_state, (*labels, state))
    for gauge in (
        m.forecast_used,
        m.forecast_rate,
        m.forecast_upper_rate,
        m.forecast_floor,
        m.forecast_error_ratio,
        m.cold_start,
        m.cold_start_measured,
    ):
        _remove(gauge, labels)


def _remove_term_series(
    m: Metrics, labels: tuple[str, ...], terms: set[str], kept: frozenset[str] | set[str] = frozenset()
) -> None:
    """Drop the series that exist because of these terms: each term's own, and the
    signal gauges behind them (counted work for the queue, busy GPUs for a GPU term)
    unless a kept term still reads that signal (gpuRole demand → guard: both are
    GPU terms, and busy GPUs were just set for the new one)."""
    for term in terms:
        _remove(m.term, (*labels, term))
        _remove(m.winner, (*labels, term))
    if "queue" in terms and "queue" not in kept:
        _remove(m.counted_work, labels)
    gpu_terms = {"gpu", "gpu-guard"}
    if terms & gpu_terms and not kept & gpu_terms:
        _remove(m.busy_gpus, labels)


def _set_or_remove(gauge: Gauge, labels: tuple[str, ...], value: float | None, *, had: bool) -> None:
    """Set the series, or drop it when the value is gone (and only then: the hot path
    never tries to remove what is not there)."""
    if value is not None:
        gauge.labels(*labels).set(value)
    elif had:
        _remove(gauge, labels)


def _remove(gauge: Gauge, labels: tuple[str, ...]) -> None:
    with contextlib.suppress(KeyError):
        gauge.remove(*labels)


# --- logs -------------------------------------------------------------------

_STANDARD_ATTRS = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


# User info in a URL (scheme://user:password@host): a logged traceback holds the
# exception's text, and a library's message may quote the URL it was given. It runs to
# the authority's last '@', as urlsplit reads it: the parser accepts a password with a
# raw '@' (amqp://svc:s3cr@t@host/), and stopping at the first left the rest shown.
_URL_USER_INFO = re.compile(r"(?<=://)[^/?#\s]+@")


def _without_user_info(text: str) -> str:
    return _URL_USER_INFO.sub("***@", text)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and any `extra`."""

    def __init__(self) -> None:
        super().__init__()
        self.converter = time.gmtime  # the timestamp ends in Z

    def formatException(self, ei: Any) -> str:
        return _without_user_info(super().formatException(ei))

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    def formatException(self, ei: Any) -> str:
        return _without_user_info(super().formatException(ei))

    def format(self, record: logging.LogRecord) -> str:
        base = super().format(record)
        extras = [
            f"{k}={v}" for k, v in vars(record).items() if k not in _STANDARD_ATTRS and not k.startswith("_")
        ]
        return base + (" " + " ".join(extras) if extras else "")


def setup_logging(fmt: str = "json", level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        formatter: logging.Formatter = JsonFormatter()
    else:
        formatter = TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Client libraries are chatty and some log URLs; keep them to warnings.
    for noisy in ("botocore", "boto3", "urllib3", "prometheus_api_client"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # pika logs every failed connect at ERROR with a traceback; the scaler reports
    # the failure itself (UNAVAILABLE, source error metrics).
    logging.getLogger("pika").setLevel(logging.CRITICAL)
