"""The forecast in the engine, with fake sources and a fake clock: pre-warm from zero,
off and advisory, the warm start and its failure, shared series, cold start in use."""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from scaler.clock import ManualClock
from scaler.config import TriggerConfig, parse_trigger
from scaler.engine import Engine, Evaluation, ObjectRef, SourceFactory, _forecast_reason, _view
from scaler.forecast.demand import DemandKind, DemandSeries
from scaler.forecast.model import DAY, Forecaster, ForecastState, Outlook
from scaler.policy import smoothed_rate
from scaler.signals.base import ArrivalReading, ColdStartReading, QueueReading, Source, SourceError
from scaler.signals.cache import ReadingCache

MIDNIGHT = 1_700_006_400.0  # a midnight UTC
QUEUE_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/jobs"
METADATA = {
    "source": "sqs",
    "queueURL": QUEUE_URL,
    "queueLength": "4",
    "prometheusServerAddress": "http://prometheus:9090",
    "arrivalQuery": "sum(rate(requests_total[1m]))",
    "coldStartSeconds": "300",
}
REF = ObjectRef("ml", "llm")
# A RabbitMQ queue read through the management API (its publish rate is the capacity
# term's arrival rate), replicaThroughput set, the forecast off.
RABBIT_CAPACITY = {
    "source": "rabbitmq",
    "host": "http://guest:guest@rabbitmq:15672/",
    "queueName": "jobs",
    "queueLength": "4",
    "replicaThroughput": "0.5",
    "forecast": "off",
}


def daily(wall: float) -> float:
    """None at night; from 07:00 UTC a ramp to 2 requests/s at 09:00, level until 17:00,
    down to none at 19:00. (A step from zero straight to full load is smoothed by the
    model's hourly profile: see docs/forecast.md.)"""
    hour = (wall % DAY) / 3600
    if 7 <= hour < 9:
        return hour - 7
    if 9 <= hour < 17:
        return 2.0
    if 17 <= hour < 19:
        return 19 - hour
    return 0.0


class Fake:
    def __init__(self, key: str, reading: object) -> None:
        self._key = key
        self.reading = reading
        self.error: Exception | None = None
        self.reads = 0
        self.history_calls = 0
        self.history_error: Exception | None = None

    @property
    def key(self) -> str:
        return self._key

    @property
    def description(self) -> str:
        return f"fake {self._key}"

    def read(self) -> object:
        self.reads += 1
        if self.error is not None:
            raise self.error
        return self.reading

    def history(self, start: float, end: float, step: float) -> list[tuple[float, float]]:
        self.history_calls += 1
        if self.history_error is not None:
            raise self.history_error
        n = int((end - start) // step)
        return [(start + i * step, daily(start + i * step)) for i in range(n)]

    def close(self) -> None:
        pass


class Factory(SourceFactory):
    def __init__(self) -> None:
        super().__init__()
        self.queue = Fake("queue", QueueReading(waiting=0, in_flight=0))
        self.arrival = Fake("arrival", ArrivalReading(rate=0.0))
        self.cold_start = Fake("cold", ColdStartReading(seconds=120.0))

    def queue_source(self, cfg: TriggerConfig) -> Source | None:
        return self.queue

    def arrival_source(self, cfg: TriggerConfig) -> Source | None:
        return self.arrival if cfg.forecast.arrival_query is not None else None

    def cold_start_source(self, cfg: TriggerConfig) -> Source | None:
        return self.cold_start if cfg.forecast.cold_start_query is not None else None


def clock_at(hour: float) -> ManualClock:
    """A clock whose wall time is `hour` UTC eight days after MIDNIGHT."""
    return ManualClock(start=100.0, wall_offset=MIDNIGHT + 8 * DAY + hour * 3600 - 100.0)


@pytest.fixture
def factory() -> Factory:
    return Factory()


async def engine_at(hour: float, factory: Factory) -> AsyncIterator[tuple[Engine, ManualClock]]:
    clock = clock_at(hour)
    cache = ReadingCache(clock, ttl=2.0, timeout=5.0)
    engine = Engine(cache, clock, factory)
    try:
        yield engine, clock
    finally:
        await engine.close()
        cache.close()


async def evaluate_at(hour: float, factory: Factory, metadata: dict[str, str]):  # type: ignore[no-untyped-def]
    async for engine, _clock in engine_at(hour, factory):
        return await engine.evaluate(REF, metadata)
    raise AssertionError


async def test_empty_queue_is_woken_a_cold_start_before_the_usual_start(factory: Factory) -> None:
    ev = await evaluate_at(6.95, factory, METADATA)  # 06:57, demand from 07:00
    assert factory.arrival.history_calls == 1  # the warm start: one range query
    assert ev.forecast is not None and ev.forecast.used, ev.forecast
    assert ev.decision.active is True
    assert ev.decision.winner == "forecast"
    assert ev.decision.replicas == 1  # no replicaThroughput: wake one replica
    term = next(t for t in ev.decision.terms if t.name == "forecast")
    assert "arrivals expected within the 300s cold start" in term.reason


async def test_not_woken_in_the_dead_of_night(factory: Factory) -> None:
    ev = await evaluate_at(3.0, factory, METADATA)
    assert ev.forecast is not None and ev.forecast.state.value == "ready", ev.forecast
    assert ev.decision.active is False
    assert ev.decision.desired == 0


@pytest.mark.parametrize("mode", ["off", "advisory"])
async def test_off_and_advisory_never_wake(factory: Factory, mode: str) -> None:
    ev = await evaluate_at(6.95, factory, {**METADATA, "forecast": mode})
    assert ev.decision.active is False
    assert all(t.name != "forecast" for t in ev.decision.terms)
    if mode == "off":
        assert ev.forecast is None and factory.arrival.reads == 0 and factory.arrival.history_calls == 0
    else:
        assert ev.forecast is not None and not ev.forecast.used and ev.forecast.floor == 1.0


async def test_replica_throughput_sets_the_floor_and_the_floor_only_raises(factory: Factory) -> None:
    meta = {**METADATA, "replicaThroughput": "0.5"}
    ev = await evaluate_at(12.0, factory, meta)
    assert ev.forecast is not None
    assert ev.decision.desired == pytest.approx(ev.forecast.upper / 0.5)
    assert ev.decision.desired >= 2 / 0.5 * 0.95
    # With replicaThroughput the queue term is capacity-aware: the measured rate's
    # replicas (2 / 0.5 = 4) plus the backlog when new replicas are Ready (3000 + the
    # 2/s the one busy replica (4 in flight / 4) does not serve at 0.5/s, 1.5/s * 300 s
    # = 3450) drained over the 300 s cold start (3450 / 150 = 23).
    factory.queue.reading = QueueReading(waiting=3000, in_flight=4)
    factory.arrival.reading = ArrivalReading(rate=2.0)
    ev = await evaluate_at(12.0, factory, meta)
    assert ev.signals.arrival_rate == pytest.approx(2.0) and ev.signals.cold_start == 300
    assert ev.decision.winner == "queue"
    assert ev.decision.desired == pytest.approx(2.0 / 0.5 + 3450 / (0.5 * 300))  # 4 + 23 = 27
    # waking (nothing in flight: no replica consumes): the plain term, 3000 / 4
    factory.queue.reading = QueueReading(waiting=3000, in_flight=0)
    ev = await evaluate_at(12.0, factory, meta)
    assert ev.decision.desired == pytest.approx(750.0) and "waking" in ev.decision.terms[0].reason


async def test_the_capacity_terms_publish_rate_is_averaged_over_a_minute_once_per_reading(
    factory: Factory,
) -> None:
    # RabbitMQ's publish rate (a 5 s sample) through policy.smoothed_rate: the first
    # reading as it is, then an exponential average (time constant 60 s) of new
    # readings, not of evaluations (policy.sampled_rate: one counted per 15 s).
    meta = RABBIT_CAPACITY
    factory.queue.reading = QueueReading(waiting=0, in_flight=0, publish_rate=2.0)
    async for engine, clock in engine_at(12.0, factory):
        ev = await engine.evaluate(REF, meta)
        assert ev.signals.arrival_rate == pytest.approx(2.0)
        factory.queue.reading = QueueReading(waiting=0, in_flight=0, publish_rate=8.0)
        ev = await engine.evaluate(REF, meta)  # the cached reading again (TTL 2 s): unchanged
        assert ev.signals.arrival_rate == pytest.approx(2.0)
        clock.advance(30)
        ev = await engine.evaluate(REF, meta)  # 30 s later: 2 + (1 - e^-0.5) * 6
        assert ev.signals.arrival_rate == pytest.approx(2.0 + (1 - math.exp(-0.5)) * 6.0)
        assert ev.decision.desired == pytest.approx(ev.signals.arrival_rate / 0.5)


async def test_the_capacity_terms_rate_is_the_same_however_often_the_engine_is_asked(
    factory: Factory,
) -> None:
    # policy.sampled_rate in the engine: of the readings in one 15 s interval only the
    # last is counted, so an engine that also read the queue at 16 and 20 s (a stream
    # asking each second) and one that did not agree from the next interval on.
    meta = RABBIT_CAPACITY
    readings = {0: 2.0, 16: 9.0, 20: 0.5, 24: 3.0, 31: 5.0}

    async def rates(seconds: list[int]) -> list[float | None]:
        got = []
        async for engine, clock in engine_at(12.0, factory):
            clock.advance(-clock.monotonic() % 15)  # from an interval's start
            start = clock.monotonic()
            for second in seconds:
                clock.advance(start + second - clock.monotonic())
                factory.queue.reading = QueueReading(waiting=0, in_flight=0, publish_rate=readings[second])
                got.append((await engine.evaluate(REF, meta)).signals.arrival_rate)
        return got

    every = await rates([0, 16, 20, 24, 31])
    sparse = await rates([0, 24, 31])
    assert every[-1] == pytest.approx(sparse[-1])
    assert every[1] == pytest.approx(smoothed_rate(smoothed_rate(None, 0.0, 2.0), 16.0, 9.0).value)
    assert every[-1] != pytest.approx(every[3])  # 31 s's reading moved it


async def test_a_backlog_from_quiet_wakes_with_the_plain_term_for_one_cold_start(factory: Factory) -> None:
    # The engine remembers when each queue was last read quiet (nothing waiting or in
    # flight, averaged rate under one a minute) and passes the time since to the
    # capacity term (policy.capacity_queue_term: waking for one cold start).
    meta = {**RABBIT_CAPACITY, "coldStartSeconds": "300"}
    factory.queue.reading = QueueReading(waiting=0, in_flight=0, publish_rate=0.0)
    async for engine, clock in engine_at(12.0, factory):
        ev = await engine.evaluate(REF, meta)
        assert ev.signals.since_quiet == 0.0 and ev.decision.active is False
        # 60 s later a surge: one replica (minReplicaCount 1) busy, 200 waiting
        clock.advance(60)
        factory.queue.reading = QueueReading(waiting=200, in_flight=4, publish_rate=3.0)
        ev = await engine.evaluate(REF, meta)
        assert ev.signals.since_quiet == pytest.approx(60.0)
        assert ev.decision.desired == pytest.approx(204 / 4)  # the plain term
        assert "waking (quiet 60s ago)" in ev.decision.terms[0].reason
        # a cold start after the quiet: the capacity term again
        clock.advance(240)
        ev = await engine.evaluate(REF, meta)
        assert ev.signals.since_quiet == pytest.approx(300.0)
        assert "waking" not in ev.decision.terms[0].reason
        assert ev.decision.desired < 204 / 4
        # the queue drained, but its averaged rate is still up: a gap, not quiet
        clock.advance(30)
        factory.queue.reading = QueueReading(waiting=0, in_flight=0, publish_rate=0.0)
        ev = await engine.evaluate(REF, meta)
        assert ev.signals.arrival_rate is not None and ev.signals.arrival_rate > 1 / 60
        assert ev.signals.since_quiet == pytest.approx(330.0)


# Readings of a queue in bursts: nothing at all, then 6/s with 20 in flight.
QUIET_QUEUE = QueueReading(waiting=0, in_flight=0, publish_rate=0.0)
BURST_QUEUE = QueueReading(waiting=0, in_flight=20, publish_rate=6.0)


class ReadingsEvery10s:
    """Evaluates REF `count` times, 10 s apart, with the queue reading `reading`;
    returns the last evaluation."""

    def __init__(self, engine: Engine, clock: ManualClock, factory: Factory, meta: dict[str, str]) -> None:
        self.engine, self.clock, self.factory, self.meta = engine, clock, factory, meta

    async def __call__(self, count: int, reading: QueueReading) -> Evaluation:
        self.factory.queue.reading = reading
        for _ in range(count):
            ev = await self.engine.evaluate(REF, self.meta)
            self.clock.advance(10)
        return ev

    async def a_quiet_minute_then_a_burst(self) -> Evaluation:
        """A minute quiet, then four minutes of BURST_QUEUE."""
        await self(6, QUIET_QUEUE)
        return await self(24, BURST_QUEUE)


async def test_the_capacity_term_holds_a_bursts_rate_through_a_gap_shorter_than_a_cold_start(
    factory: Factory,
) -> None:
    # policy.RateHistory, one per queue, fed the averaged rate at each reading: a quiet
    # minute, a four-minute burst at 6/s, then a gap. The averaged rate falls in the
    # gap, but the bursts' rate in the last 600 s cold start is still held, so the
    # replicas that served it stay (about 6 / 0.5 = 12).
    meta = {**RABBIT_CAPACITY, "coldStartSeconds": "600"}
    async for engine, clock in engine_at(12.0, factory):
        readings = ReadingsEvery10s(engine, clock, factory, meta)
        await readings.a_quiet_minute_then_a_burst()
        ev = await readings(24, QUIET_QUEUE)
        assert ev.signals.arrival_rate is not None and ev.signals.arrival_rate < 0.2
        held = ev.signals.held_rate
        assert held is not None and 5.5 < held < 6.0
        assert ev.decision.desired == pytest.approx(held / 0.5)
        assert "/s held (the bursts' rate in the last 600s" in ev.decision.terms[0].reason
        # another object on the queue, with the hold off: the averaged rate's replicas
        off = await engine.evaluate(ObjectRef("ml", "other"), {**meta, "holdSeconds": "0"})
        assert off.signals.held_rate is None and off.decision.desired < 0.4
        # a cold start after the burst: nothing held, and the workload inactive
        ev = await readings(60, QUIET_QUEUE)
        assert ev.signals.held_rate == 0.0 and ev.decision.desired < 0.01
        assert ev.decision.active is False


async def test_the_capacity_term_holds_bursts_that_came_back_for_half_an_hour(factory: Factory) -> None:
    # policy.recurring_hold_window: with holdSeconds unset, a burst whose rate came back
    # (it fell under a quarter in between) is held for RECURRING_HOLD_S, though the
    # cold start (120 s) is shorter than the gap.
    meta = {**RABBIT_CAPACITY, "coldStartSeconds": "120"}
    async for engine, clock in engine_at(12.0, factory):
        readings = ReadingsEvery10s(engine, clock, factory, meta)
        await readings.a_quiet_minute_then_a_burst()
        # ten minutes after one burst: no hold (it has not come back)
        ev = await readings(60, QUIET_QUEUE)
        assert ev.signals.held_rate == 0.0 and ev.decision.desired < 0.2
        # it comes back; ten minutes after the second, its rate is held
        await readings(24, BURST_QUEUE)
        ev = await readings(60, QUIET_QUEUE)
        held = ev.signals.held_rate
        assert held is not None and 5.5 < held < 6.0 and ev.signals.held_window == 1800.0
        assert ev.decision.desired == pytest.approx(held / 0.5)
        assert "/s held (bursts that came back in the last 1800s" in ev.decision.terms[0].reason
        # activity is the plain term's: nothing waiting or in flight is inactive
        assert ev.decision.active is False
        # another object on the queue with holdSeconds set to the cold start: that hold only
        other = await engine.evaluate(ObjectRef("ml", "other"), {**meta, "holdSeconds": "120"})
        assert other.signals.held_rate == 0.0 and other.decision.desired < 0.2
        # half an hour after the first burst began it has left the window: only one rise
        # is in it, and nothing is held
        ev = await readings(90, QUIET_QUEUE)
        assert ev.signals.held_rate == 0.0 and ev.decision.desired < 0.01


async def test_a_queue_without_in_flight_counts_is_never_quiet(factory: Factory) -> None:
    # AMQP cannot tell in-flight messages: an empty ready count could hide a busy pool
    meta = {**METADATA, "replicaThroughput": "0.5", "forecast": "advisory"}
    factory.queue.reading = QueueReading(waiting=0, in_flight=None)
    factory.arrival.reading = ArrivalReading(rate=0.0)
    ev = await evaluate_at(12.0, factory, meta)
    assert ev.signals.arrival_rate == 0.0 and ev.signals.since_quiet is None


async def test_an_arrival_query_rate_is_used_as_it_answers(factory: Factory) -> None:
    # its range (rate(...[1m])) is already an average: not averaged again
    meta = {**METADATA, "replicaThroughput": "0.5", "forecast": "advisory"}
    factory.arrival.reading = ArrivalReading(rate=2.0)
    async for engine, clock in engine_at(12.0, factory):
        await engine.evaluate(REF, meta)
        factory.arrival.reading = ArrivalReading(rate=8.0)
        clock.advance(30)
        ev = await engine.evaluate(REF, meta)
        assert ev.signals.arrival_rate == pytest.approx(8.0)


async def test_forecast_off_keeps_the_capacity_term_on_arrival_and_cold_start_queries(
    factory: Factory,
) -> None:
    # `forecast: off` turns off the forecast, not the capacity-aware queue term: with
    # replicaThroughput, arrivalQuery is still its rate and coldStartQuery its look-ahead.
    meta = {
        **METADATA,
        "replicaThroughput": "0.5",
        "forecast": "off",
        "coldStartQuery": "histogram_quantile(0.95, ...)",
    }
    factory.queue.reading = QueueReading(waiting=300, in_flight=4)
    factory.arrival.reading = ArrivalReading(rate=2.0)
    ev = await evaluate_at(12.0, factory, meta)
    assert ev.forecast is None and factory.arrival.history_calls == 0  # no forecast, no warm start
    assert ev.signals.arrival_rate == pytest.approx(2.0) and ev.signals.cold_start == 120  # measured
    # 2 / 0.5 = 4 serving, plus (300 + 1.5/s * 120 s) / (0.5 * 120) = 8 to drain
    assert ev.decision.desired == pytest.approx(4 + 480 / 60)
    assert "capacity" in ev.decision.terms[0].reason
    # Without replicaThroughput nothing uses them: not read.
    reads = factory.arrival.reads, factory.cold_start.reads
    plain = {k: v for k, v in meta.items() if k != "replicaThroughput"}
    ev = await evaluate_at(12.0, factory, plain)
    assert (factory.arrival.reads, factory.cold_start.reads) == reads
    assert ev.decision.desired == pytest.approx(304 / 4)


@pytest.mark.parametrize(
    ("metadata", "reused"),
    [
        (RABBIT_CAPACITY, True),  # the publish rate comes with the queue reading
        # arrivalQuery is the capacity term's rate, read on its own schedule: evaluated anew.
        ({**METADATA, "replicaThroughput": "0.5", "forecast": "off"}, False),
        ({**METADATA, "forecast": "off"}, True),  # nothing reads arrivalQuery
    ],
)
async def test_the_capacity_term_is_answered_again_unless_a_query_feeds_it(
    factory: Factory, metadata: dict[str, str], reused: bool
) -> None:
    factory.queue.reading = QueueReading(waiting=30, in_flight=2, publish_rate=1.5)
    factory.arrival.reading = ArrivalReading(rate=2.0)
    async for engine, clock in engine_at(12.0, factory):
        cfg = engine.config(REF, metadata)
        first = await engine.answer(REF, cfg)
        clock.advance(0.2)
        assert ((await engine.answer(REF, cfg)) is first) is reused


async def test_job_mode_starts_at_most_max_prewarm_jobs(factory: Factory) -> None:
    meta = {**METADATA, "mode": "job", "maxPrewarmJobs": "3"}
    ev = await evaluate_at(12.0, factory, meta)
    assert ev.decision.winner == "forecast" and ev.decision.desired == 3
    ev = await evaluate_at(12.0, factory, {**meta, "maxPrewarmJobs": "0"})
    assert ev.decision.active is False and ev.forecast is not None and not ev.forecast.used


async def test_a_failed_warm_start_is_cold_never_an_error_and_is_retried(factory: Factory) -> None:
    factory.arrival.history_error = SourceError("fake arrival: cannot connect")
    async for engine, clock in engine_at(6.95, factory):
        ev = await engine.evaluate(REF, METADATA)
        assert ev.forecast is not None and ev.forecast.state.value == "cold"
        assert ev.forecast.warm_start is not None and "cannot connect" in ev.forecast.warm_start
        assert ev.decision.active is False
        clock.advance(10)
        await engine.evaluate(REF, METADATA)
        assert factory.arrival.history_calls == 1  # not hammered
        factory.arrival.history_error = None
        clock.advance(300)
        ev = await engine.evaluate(REF, METADATA)
        assert factory.arrival.history_calls == 2
        assert ev.forecast is not None and ev.forecast.warm_start is not None
        assert ev.forecast.warm_start.startswith("loaded")


async def test_a_call_cancelled_during_the_warm_start_leaves_it_to_finish(factory: Factory) -> None:
    # KEDA goes away (or a stream is reopened) while the range query runs: the warm
    # start still loads, and the next answer has the warm-started forecast. Inside the
    # call it was cancelled with it, and the series stayed "warming" for good.
    released = threading.Event()
    history = factory.arrival.history

    def slow_history(start: float, end: float, step: float) -> list[tuple[float, float]]:
        released.wait(5.0)
        return history(start, end, step)

    factory.arrival.history = slow_history  # type: ignore[method-assign]
    async for engine, _clock in engine_at(12.0, factory):
        call = asyncio.ensure_future(engine.evaluate(REF, METADATA))
        await asyncio.sleep(0.05)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        released.set()
        for _ in range(100):  # the range query returns at once now; the model is built
            await asyncio.sleep(0.05)
            ev = await engine.evaluate(REF, METADATA)
            if ev.forecast is not None and ev.forecast.warm_start is not None:
                break
        assert factory.arrival.history_calls == 1
        assert ev.forecast is not None and ev.forecast.warm_start is not None
        assert ev.forecast.warm_start.startswith("loaded")
        assert ev.decision.winner == "forecast"


async def test_a_failing_arrival_source_does_not_fail_the_answer(factory: Factory) -> None:
    factory.arrival.error = SourceError("fake arrival: cannot connect")
    ev = await evaluate_at(12.0, factory, METADATA)
    assert ev.decision.active is True  # the model (warm-started) still knows the pattern
    assert ev.decision.winner == "forecast"
    read = next(r for r in ev.reads if r.name == "arrival")
    assert read.optional and read.error is not None


async def test_objects_on_one_series_feed_it_once_per_reading(factory: Factory) -> None:
    async for engine, clock in engine_at(12.0, factory):
        for i in range(20):
            await engine.evaluate(ObjectRef("ml", f"obj-{i}"), METADATA)
        assert len(engine.demand) == 1
        series = engine.demand.get(factory.arrival.key, next(iter(engine.demand._series.values())).kind, 0)
        assert series.last_read_at == clock.monotonic()
        assert factory.arrival.reads == 1


async def test_cold_start_query_used_when_sane_else_the_configured_value(factory: Factory) -> None:
    meta = {**METADATA, "coldStartQuery": "histogram_quantile(0.95, ...)"}
    ev = await evaluate_at(12.0, factory, meta)
    assert ev.forecast is not None and ev.forecast.cold_start == 120 and ev.forecast.cold_start_measured
    factory.cold_start.reading = ColdStartReading(seconds=5 * 3600.0)  # not plausible
    ev = await evaluate_at(12.0, factory, meta)
    assert ev.forecast is not None and ev.forecast.cold_start == 300 and not ev.forecast.cold_start_measured
    factory.cold_start.error = SourceError("fake cold: down")
    ev = await evaluate_at(12.0, factory, meta)
    assert ev.forecast is not None and ev.forecast.cold_start == 300
    assert math.isfinite(ev.decision.desired)


async def test_inferred_series_without_arrival_query(factory: Factory) -> None:
    meta = {k: v for k, v in METADATA.items() if k not in ("arrivalQuery", "prometheusServerAddress")}
    async for engine, clock in engine_at(12.0, factory):
        ev = await engine.evaluate(REF, meta)
        assert ev.forecast is not None and ev.forecast.demand.value == "inferred from the queue"
        assert ev.forecast.state.value == "cold"
        assert all(t.name != "forecast" for t in ev.decision.terms)  # cold: contributes nothing
        clock.advance(30)
        factory.queue.reading = QueueReading(waiting=30, in_flight=0)
        await engine.evaluate(REF, meta)
        series = next(iter(engine.demand._series.values()))
        assert series.previous_total == 30


def test_demand_store_is_bounded_and_drops_idle_series() -> None:
    from scaler.forecast.demand import DemandKind, DemandStore

    store = DemandStore(limit=3, idle_after=3600)
    for i in range(5):
        store.get(f"s{i}", DemandKind.INFERRED, now=float(i))
    assert len(store) == 3  # the least recently used went first
    store.get("s4", DemandKind.INFERRED, now=4000.0)
    assert store.evict_idle(now=4000.0) == 2  # s2, s3: not asked about for an hour
    assert len(store) == 1


async def test_job_mode_asks_for_pre_warm_jobs_in_a_pulse(factory: Factory) -> None:
    """KEDA's accurate strategy does not subtract running Jobs: a steady floor would
    start more idle Jobs at every poll. The pulse asks once, then waits 3 cold starts."""
    meta = {**METADATA, "mode": "job", "maxPrewarmJobs": "3"}
    async for engine, clock in engine_at(12.0, factory):
        assert (await engine.evaluate(REF, meta)).decision.desired == 3
        clock.advance(30)  # the next poll, within the pulse: the Jobs are still pending
        assert (await engine.evaluate(REF, meta)).decision.desired == 3
        clock.advance(30)
        ev = await engine.evaluate(REF, meta)
        assert ev.decision.desired == 0 and ev.decision.active is False
        term = next(t for t in ev.decision.terms if t.name == "forecast")
        assert "pre-warm Jobs already asked for, again in 840s" in term.reason
        clock.advance(840)
        assert (await engine.evaluate(REF, meta)).decision.desired == 3
        # Another object on the same queue has its own pulse.
        assert (await engine.evaluate(ObjectRef("ml", "other"), meta)).decision.desired == 3


async def test_publish_rate_series_for_the_management_api(factory: Factory) -> None:
    meta = {"source": "rabbitmq", "host": "http://guest:guest@rabbit:15672/", "queueName": "prompts"}
    factory.queue.reading = QueueReading(waiting=0, in_flight=0, publish_rate=3.5)
    async for engine, clock in engine_at(12.0, factory):
        ev = await engine.evaluate(REF, meta)
        assert ev.forecast is not None and ev.forecast.demand.value == "publish rate"
        clock.advance(120)
        ev = await engine.evaluate(REF, meta)
        series = next(iter(engine.demand._series.values()))
        assert series.model.predict(clock.wall(), 60) == pytest.approx(3.5)


async def test_a_promql_error_in_arrival_query_is_bad_metadata(factory: Factory) -> None:
    from scaler.signals.base import SourceRejectedQuery

    factory.arrival.error = SourceRejectedQuery("fake arrival: Prometheus rejected the query: parse error")
    with pytest.raises(SourceRejectedQuery, match="metadata key 'arrivalQuery': fake arrival: Prometheus"):
        await evaluate_at(12.0, factory, METADATA)


async def test_a_measured_cold_start_survives_a_failed_read(factory: Factory) -> None:
    meta = {**METADATA, "coldStartQuery": "max(x)"}
    async for engine, clock in engine_at(12.0, factory):
        assert (await engine.evaluate(REF, meta)).forecast.cold_start == 120  # type: ignore[union-attr]
        factory.cold_start.error = SourceError("fake cold: down")
        clock.advance(301)
        ev = await engine.evaluate(REF, meta)
        await engine.refreshed()  # the cold start is read again in the background
        assert factory.cold_start.reads == 2
        assert ev.forecast is not None and ev.forecast.cold_start == 120 and ev.forecast.cold_start_measured


def gated_outlook(recurring: float, envelope: bool = False) -> Outlook:
    return Outlook(
        state=ForecastState.GATED,
        reason="gated: error 1.10x naive",
        horizon=300.0,
        history=3 * DAY,
        rate=1.0,
        peak=1.2,
        upper=max(1.5, recurring),
        expected_arrivals=300.0,
        error_ratio=1.1,
        recurring=recurring,
        recurring_envelope=envelope,
    )


def test_gated_keeps_the_recurring_peak_floor_only_with_replica_throughput() -> None:
    series = DemandSeries(kind=DemandKind.ARRIVAL)
    with_throughput = parse_trigger({**METADATA, "replicaThroughput": "0.5"})
    view = _view(with_throughput, series, gated_outlook(6.0), 300.0, False)
    # the usual peak minute on past days, 6/s, at 0.5/s per replica: 12 replicas, used while gated
    assert view.used and view.floor == pytest.approx(12.0) and view.recurring == 6.0
    assert "recurring peak 6/s (the peak minute within the 300s cold start, average of past days)" in (
        _forecast_reason(view, with_throughput)
    )
    # the reason says when the peak is the recent highest (the envelope scored better)
    envelope = _view(with_throughput, series, gated_outlook(6.0, envelope=True), 300.0, False)
    assert "6/s (the peak minute within the 300s cold start, recent highest of past days)" in (
        _forecast_reason(envelope, with_throughput)
    )
    # fewer than one arrival at that rate within the cold start: no floor, not used
    quiet = _view(with_throughput, series, gated_outlook(0.002), 300.0, False)
    assert quiet.floor == 0.0 and not quiet.used
    # without replicaThroughput (or in job mode, or advisory) a gated forecast stays out
    assert not _view(parse_trigger(METADATA), series, gated_outlook(6.0), 300.0, False).used
    job = parse_trigger({**METADATA, "mode": "job", "maxPrewarmJobs": "3", "replicaThroughput": "0.5"})
    assert not _view(job, series, gated_outlook(6.0), 300.0, False).used
    advisory = parse_trigger({**METADATA, "replicaThroughput": "0.5", "forecast": "advisory"})
    assert not _view(advisory, series, gated_outlook(6.0), 300.0, False).used


def ready_outlook(expected: float, recurring: float) -> Outlook:
    return Outlook(
        state=ForecastState.READY,
        reason="ready: error 0.52x naive",
        horizon=300.0,
        history=8 * DAY,
        rate=expected / 300.0,
        peak=expected / 300.0,
        upper=max(expected / 300.0 * 1.5, recurring),
        expected_arrivals=expected,
        error_ratio=0.52,
        recurring=recurring,
    )


def test_ready_wakes_for_a_recurring_peak_as_gated_does() -> None:
    """A small daily batch in a quiet hour is what the hourly point forecast smooths
    below one arrival; a model that beats naive must not wake less than a gated one."""
    series = DemandSeries(kind=DemandKind.ARRIVAL)
    with_throughput = parse_trigger({**METADATA, "replicaThroughput": "0.5"})
    # 0.5 arrivals expected by the point forecast, but the usual minute brings 0.1/s:
    # 30 arrivals at that rate fit in the 300 s cold start
    view = _view(with_throughput, series, ready_outlook(0.5, 0.1), 300.0, False)
    assert view.used and view.floor == 1.0
    assert "recurring peak 0.1/s (the peak minute within the 300s cold start, average of past days)" in (
        _forecast_reason(view, with_throughput)
    )
    gated = _view(
        with_throughput, series, replace(ready_outlook(0.5, 0.1), state=ForecastState.GATED), 300.0, False
    )
    assert gated.floor == view.floor
    # sized by the recurring peak where it is the upper rate: 3/s at 0.5/s is 6 replicas
    assert _view(with_throughput, series, ready_outlook(0.5, 3.0), 300.0, False).floor == pytest.approx(6.0)
    # under one arrival at the recurring rate within the cold start: nothing, as before
    assert _view(with_throughput, series, ready_outlook(0.5, 0.002), 300.0, False).floor == 0.0
    # without replicaThroughput the recurring peak does not expect demand on its own
    assert _view(parse_trigger(METADATA), series, ready_outlook(0.5, 0.1), 300.0, False).floor == 0.0


def test_a_trained_model_wakes_before_a_daily_batch_in_a_quiet_hour() -> None:
    """Eight days of the daytime traffic plus one minute at 0.1/s at 03:00: at 02:57 the
    model is ready, its point forecast expects under one arrival, and the floor is 1."""
    model = Forecaster()
    for i in range(int(8 * DAY // 30)):
        wall = MIDNIGHT + i * 30
        model.observe(wall, 0.1 if int(wall % DAY) // 60 == 180 else daily(wall))
    now = MIDNIGHT + 8 * DAY + 2 * 3600 + 57 * 60
    for wall in range(int(MIDNIGHT + 8 * DAY), int(now), 30):  # the quiet night so far
        model.observe(float(wall), daily(wall))
    outlook = model.outlook(now, 300.0)
    assert outlook.state is ForecastState.READY
    assert outlook.expected_arrivals < 1 and outlook.recurring == pytest.approx(0.1, rel=0.05)
    cfg = parse_trigger({**METADATA, "replicaThroughput": "0.5"})
    view = _view(cfg, DemandSeries(kind=DemandKind.ARRIVAL, model=model), outlook, 300.0, False)
    assert view.used and view.floor == 1.0
