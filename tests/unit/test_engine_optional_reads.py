"""The forecast's optional reads (arrivalQuery, coldStartQuery) never delay an
answer once their source has answered: a refresh past the TTL runs in the
background (single flight, through the cache) and the answer does without it. And
a GPU query Prometheus rejects is bad metadata naming its key."""

from __future__ import annotations

import asyncio
import threading
import time
import warnings
from collections.abc import AsyncIterator

import pytest

from scaler.clock import ManualClock
from scaler.config import TriggerConfig
from scaler.engine import Engine, ObjectRef, SourceFactory
from scaler.signals.base import (
    ArrivalReading,
    ColdStartReading,
    GpuReading,
    QueueReading,
    Source,
    SourceError,
    SourceRejectedQuery,
)
from scaler.signals.cache import ReadingCache

REF = ObjectRef("ml", "llm")
METADATA = {
    "source": "sqs",
    "queueURL": "https://sqs.us-east-1.amazonaws.com/123456789012/jobs",
    "queueLength": "4",
    "prometheusServerAddress": "http://127.0.0.1:9090",
    "arrivalQuery": "sum(rate(requests_total[1m]))",
    "coldStartQuery": "max(cold_start_seconds)",
    "replicaThroughput": "0.5",
    "forecast": "advisory",
}
TIMEOUT = 5.0


class Fake:
    """A source whose reads can be held until released (a slow or hung Prometheus)."""

    def __init__(self, key: str, reading: object) -> None:
        self.key = key
        self.description = f"fake {key}"
        self.reading = reading
        self.error: Exception | None = None
        self.reads = 0
        self.release = threading.Event()
        self.release.set()

    def read(self) -> object:
        self.reads += 1
        self.release.wait(TIMEOUT)
        if self.error is not None:
            raise self.error
        return self.reading

    def close(self) -> None:
        pass


class Factory(SourceFactory):
    def __init__(self) -> None:
        super().__init__()
        self.queue = Fake("queue", QueueReading(waiting=0, in_flight=0))
        self.gpu = Fake("gpu", GpuReading(busy_gpus=0, series=1))
        self.arrival = Fake("arrival", ArrivalReading(rate=2.0))
        self.cold_start = Fake("cold", ColdStartReading(seconds=120.0))

    def queue_source(self, cfg: TriggerConfig) -> Source | None:
        return self.queue

    def gpu_source(self, cfg: TriggerConfig) -> Source | None:
        return self.gpu

    def arrival_source(self, cfg: TriggerConfig) -> Source | None:
        return self.arrival if cfg.forecast.arrival_query is not None else None

    def cold_start_source(self, cfg: TriggerConfig) -> Source | None:
        return self.cold_start if cfg.forecast.cold_start_query is not None else None


@pytest.fixture
async def setup() -> AsyncIterator[tuple[Engine, Factory, ManualClock]]:
    clock = ManualClock(start=100.0)
    cache = ReadingCache(clock, ttl=2.0, timeout=TIMEOUT)
    factory = Factory()
    engine = Engine(cache, clock, factory)
    try:
        yield engine, factory, clock
    finally:
        for source in (factory.queue, factory.gpu, factory.arrival, factory.cold_start):
            source.release.set()
        await engine.close()
        cache.close()


async def timed(engine: Engine, metadata: dict[str, str] = METADATA):  # type: ignore[no-untyped-def]
    started = time.monotonic()
    ev = await engine.evaluate(REF, metadata)
    return ev, time.monotonic() - started


async def test_the_first_read_is_waited_for(setup: tuple[Engine, Factory, ManualClock]) -> None:
    # Nothing known yet: the first answer has the measured rate and cold start.
    engine, factory, _ = setup
    ev, _ = await timed(engine)
    assert ev.signals.arrival_rate == pytest.approx(2.0) and ev.signals.cold_start == 120
    assert factory.arrival.reads == 1 and factory.cold_start.reads == 1


async def test_a_slow_arrival_read_does_not_delay_the_answers(
    setup: tuple[Engine, Factory, ManualClock],
) -> None:
    engine, factory, clock = setup
    await engine.evaluate(REF, METADATA)
    factory.arrival.release.clear()  # Prometheus now answers slowly
    factory.arrival.reading = ArrivalReading(rate=8.0)
    clock.advance(30)
    for _ in range(5):  # one refresh for them all (single flight)
        ev, took = await timed(engine)
        assert took < 1.0
        assert ev.signals.arrival_rate == pytest.approx(2.0)  # the last reading, 30 s old
        read = next(r for r in ev.reads if r.name == "arrival")
        assert read.age == pytest.approx(30.0)
    assert factory.arrival.reads == 2
    factory.arrival.release.set()
    await engine.refreshed()
    ev, _ = await timed(engine)
    assert ev.signals.arrival_rate == pytest.approx(8.0)
    assert factory.arrival.reads == 2


async def test_a_failing_arrival_source_is_retried_in_the_background(
    setup: tuple[Engine, Factory, ManualClock],
) -> None:
    # The audit's case: Prometheus unreachable, each read ends at the client's
    # timeout. Each answer waited for the retry of the expired error.
    engine, factory, clock = setup
    factory.arrival.error = SourceError("fake arrival: cannot connect")
    ev, _ = await timed(engine)
    assert next(r for r in ev.reads if r.name == "arrival").error is not None
    factory.arrival.release.clear()  # the retry hangs until its timeout
    clock.advance(2.5)
    ev, took = await timed(engine)
    assert took < 1.0
    read = next(r for r in ev.reads if r.name == "arrival")
    assert read.optional and read.error is not None and "cannot connect" in str(read.error)
    assert ev.decision is not None  # answered from the queue
    assert factory.arrival.reads == 2  # retried, in the background


async def test_an_expired_reading_is_answered_only_up_to_a_minute_old(
    setup: tuple[Engine, Factory, ManualClock],
) -> None:
    engine, factory, clock = setup
    await engine.evaluate(REF, METADATA)
    factory.arrival.release.clear()
    clock.advance(61)
    ev, took = await timed(engine)
    assert took < 1.0
    read = next(r for r in ev.reads if r.name == "arrival")
    assert read.error is not None and "61s old" in str(read.error)


async def test_a_cold_start_read_in_the_background_is_taken(
    setup: tuple[Engine, Factory, ManualClock],
) -> None:
    # coldStartQuery is read every 300 s: a background refresh's outcome must be kept
    # when it comes, not only when an answer finds it within the TTL.
    engine, factory, clock = setup
    assert (await engine.evaluate(REF, METADATA)).signals.cold_start == 120
    factory.cold_start.reading = ColdStartReading(seconds=200.0)
    factory.cold_start.release.clear()
    clock.advance(301)
    ev, took = await timed(engine)
    assert took < 1.0 and ev.signals.cold_start == 120  # the last measurement, meanwhile
    factory.cold_start.release.set()
    await engine.refreshed()
    clock.advance(30)  # the next poll, the refresh's reading past the TTL
    assert (await engine.evaluate(REF, METADATA)).signals.cold_start == 200
    assert factory.cold_start.reads == 2


async def test_a_rejected_optional_query_stays_invalid_while_refreshed(
    setup: tuple[Engine, Factory, ManualClock],
) -> None:
    # A PromQL error is bad metadata: still refused at every poll, not only within a TTL.
    engine, factory, clock = setup
    factory.arrival.error = SourceRejectedQuery("fake arrival: Prometheus rejected the query")
    for _ in range(2):
        with pytest.raises(SourceRejectedQuery, match="metadata key 'arrivalQuery'"):
            await engine.evaluate(REF, METADATA)
        clock.advance(30)


async def test_close_leaves_no_pending_refresh(setup: tuple[Engine, Factory, ManualClock]) -> None:
    engine, factory, clock = setup
    await engine.evaluate(REF, METADATA)
    factory.arrival.release.clear()
    clock.advance(30)
    await engine.evaluate(REF, METADATA)
    assert engine._refreshes
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        await engine.close()
    assert not engine._refreshes
    await asyncio.sleep(0)


@pytest.mark.parametrize(
    ("gpu", "key"),
    [({"gpuQuery": "sum(x"}, "gpuQuery"), ({"gpuSelector": 'namespace="ai"'}, "gpuSelector")],
)
async def test_a_rejected_gpu_query_names_its_metadata_key(
    setup: tuple[Engine, Factory, ManualClock], gpu: dict[str, str], key: str
) -> None:
    engine, factory, _ = setup
    factory.gpu.error = SourceRejectedQuery("fake gpu: Prometheus rejected the query: parse error")
    metadata = {
        "source": "sqs",
        "queueURL": "https://sqs.us-east-1.amazonaws.com/123456789012/jobs",
        "prometheusServerAddress": "http://127.0.0.1:9090",
        **gpu,
    }
    with pytest.raises(SourceRejectedQuery, match=f"metadata key '{key}': fake gpu: Prometheus rejected"):
        await engine.evaluate(REF, metadata)
