"""Engine: metadata → config (memoised) → shared reading → Decision, with a fake source factory."""

from __future__ import annotations

import logging
import random
from collections.abc import AsyncIterator

import pytest

from scaler.clock import ManualClock
from scaler.config import ConfigError, Mode, TriggerConfig
from scaler.engine import Engine, Evaluation, ObjectRef, SourceFactory
from scaler.signals.base import QueueReading, Source, SourceError
from scaler.signals.cache import POLLED_READING_AGE, ReadingCache

METADATA = {
    "source": "sqs",
    "queueURL": "https://sqs.us-east-1.amazonaws.com/123456789012/jobs",
    "queueLength": "4",
    "activationQueueLength": "2",
}
REF = ObjectRef(namespace="ml", name="llm")


class FakeQueue:
    """A queue source whose reading the test sets; counts reads."""

    def __init__(self, key: str, reading: object) -> None:
        self._key = key
        self.reading = reading
        self.error: SourceError | None = None
        self.reads = 0

    @property
    def key(self) -> str:
        return self._key

    @property
    def description(self) -> str:
        return f"fake queue {self._key!r}"

    def read(self) -> object:
        self.reads += 1
        if self.error is not None:
            raise self.error
        return self.reading

    def close(self) -> None:
        pass


class FakeFactory(SourceFactory):
    """One fake queue per queue URL, so triggers on the same queue share a key."""

    def __init__(self) -> None:
        super().__init__()
        self.queues: dict[str, FakeQueue] = {}
        self.built = 0

    def queue(self, url: str) -> FakeQueue:
        if url not in self.queues:
            self.queues[url] = FakeQueue(f"fake|{url}", QueueReading(waiting=0, in_flight=0))
        return self.queues[url]

    def queue_source(self, cfg: TriggerConfig) -> Source | None:
        self.built += 1
        assert cfg.sqs is not None
        return self.queue(cfg.sqs.queue_url)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start=10.0)


@pytest.fixture
async def cache(clock: ManualClock) -> AsyncIterator[ReadingCache]:
    cache = ReadingCache(clock, ttl=2.0, timeout=5.0)
    yield cache
    cache.close()


@pytest.fixture
def factory() -> FakeFactory:
    return FakeFactory()


async def test_evaluate_returns_the_decision(
    cache: ReadingCache, clock: ManualClock, factory: FakeFactory
) -> None:
    engine = Engine(cache, clock, factory)
    factory.queue(METADATA["queueURL"]).reading = QueueReading(waiting=7, in_flight=2)
    ev = await engine.evaluate(REF, METADATA)
    assert isinstance(ev, Evaluation)
    assert ev.ref == REF
    assert ev.config.queue_length == 4.0
    assert ev.signals.queue == QueueReading(waiting=7, in_flight=2)
    assert ev.decision.desired == pytest.approx(9 / 4)
    assert ev.decision.metric_value == 3
    assert ev.decision.active is True
    assert ev.decision.winner == "queue"
    assert ev.ages == {"queue": 0.0}


async def test_evaluate_reports_the_age_of_a_shared_reading(
    cache: ReadingCache, clock: ManualClock, factory: FakeFactory
) -> None:
    engine = Engine(cache, clock, factory)
    factory.queue(METADATA["queueURL"]).reading = QueueReading(waiting=1, in_flight=0)
    await engine.evaluate(REF, METADATA)
    clock.advance(0.4)  # within the polled reading age
    other = ObjectRef("ml", "other")
    ev = await engine.evaluate(other, {**METADATA, "mode": "job"})
    assert ev.ages == {"queue": pytest.approx(0.4)}
    assert ev.config.mode is Mode.JOB
    assert factory.queues[METADATA["queueURL"]].reads == 1  # two objects, one read
    assert ev.decision.active is False  # 1 waiting is not above activationQueueLength 2


async def test_evaluate_raises_source_errors_and_does_not_observe_them(
    cache: ReadingCache, clock: ManualClock, factory: FakeFactory
) -> None:
    seen: list[Evaluation] = []
    engine = Engine(cache, clock, factory, observer=seen.append)
    factory.queue(METADATA["queueURL"]).error = SourceError("fake queue: cannot connect")
    with pytest.raises(SourceError, match="fake queue: cannot connect"):
        await engine.evaluate(REF, METADATA)
    assert seen == []


async def test_evaluate_rejects_a_reading_of_the_wrong_kind(
    cache: ReadingCache, clock: ManualClock, factory: FakeFactory
) -> None:
    engine = Engine(cache, clock, factory)
    factory.queue(METADATA["queueURL"]).reading = {"waiting": 3}
    with pytest.raises(SourceError, match="returned no queue reading"):
        await engine.evaluate(REF, METADATA)


async def test_bad_metadata_is_a_config_error_before_any_read(
    cache: ReadingCache, clock: ManualClock, factory: FakeFactory
) -> None:
    engine = Engine(cache, clock, factory)
    with pytest.raises(ConfigError) as info:
        await engine.evaluate(REF, {**METADATA, "queueLength": "0"})
    assert info.value.key == "queueLength"
    assert factory.built == 0
    assert cache.reads == 0


async def test_observer_called_with_each_evaluation(
    cache: ReadingCache, clock: ManualClock, factory: FakeFactory
) -> None:
    seen: list[Evaluation] = []
    engine = Engine(cache, clock, factory, observer=seen.append)
    first = await engine.evaluate(REF, METADATA)
    second = await engine.evaluate(ObjectRef("ml", "b"), METADATA)
    assert seen == [first, second]
    assert [e.ref.name for e in seen] == ["llm", "b"]


def test_config_is_memoised_by_metadata(cache: ReadingCache, clock: ManualClock) -> None:
    engine = Engine(cache, clock, FakeFactory())
    first = engine.config(REF, METADATA)
    # Same map in another order, for another object: the same parsed config.
    reordered = dict(reversed(list(METADATA.items())))
    assert engine.config(ObjectRef("x", "y"), reordered) is first
    changed = engine.config(REF, {**METADATA, "queueLength": "8"})
    assert changed is not first
    assert changed.queue_length == 8.0


def test_config_memo_key_stands_for_its_metadata(cache: ReadingCache, clock: ManualClock) -> None:
    engine = Engine(cache, clock, FakeFactory())
    first = engine.config(REF, METADATA, memo_key=b"request-1")
    # Another key for the same metadata shares the parsed config (found by content).
    assert engine.config(ObjectRef("x", "y"), METADATA, memo_key=b"request-2") is first
    # A known key answers without reading the map again.
    assert engine.config(REF, {}, memo_key=b"request-1") is first
    changed = engine.config(REF, {**METADATA, "queueLength": "8"}, memo_key=b"request-3")
    assert changed is not first and changed.queue_length == 8.0
    # Refusals are never memoised: a bad map raises under any key, every time.
    for _ in range(2):
        with pytest.raises(ConfigError, match="'mode'"):
            engine.config(REF, {**METADATA, "mode": "batch"}, memo_key=b"request-4")


def test_an_accepted_request_is_found_by_its_bytes_alone(cache: ReadingCache, clock: ManualClock) -> None:
    from scaler.access import AccessPolicy, Patterns

    engine = Engine(cache, clock, FakeFactory())
    assert engine.accepted_config(b"request-1") is None  # never seen: config() must run
    cfg = engine.config(REF, METADATA, memo_key=b"request-1")
    accepted = engine.accepted_config(b"request-1")
    assert accepted is not None and accepted[0] == REF and accepted[1] is cfg
    # Keyed by the bytes config() accepted, not by the metadata: another key for the
    # same map is not accepted until config() has accepted it for its object.
    assert engine.accepted_config(b"request-2") is None
    engine.config(ObjectRef("x", "y"), METADATA, memo_key=b"request-2")
    assert engine.accepted_config(b"request-2") == (ObjectRef("x", "y"), cfg)
    # Neither a map the parser refuses nor one the access policy refuses is ever
    # accepted: config() runs, and refuses, every time.
    with pytest.raises(ConfigError):
        engine.config(REF, {**METADATA, "mode": "batch"}, memo_key=b"request-3")
    assert engine.accepted_config(b"request-3") is None
    guarded = Engine(
        cache,
        clock,
        FakeFactory(),
        access=AccessPolicy(allowed_hosts=Patterns.parse("*.svc.cluster.local", what="host pattern")),
    )
    for _ in range(2):
        with pytest.raises(ConfigError, match="queueURL"):
            guarded.config(REF, METADATA, memo_key=b"request-1")
        assert guarded.accepted_config(b"request-1") is None


def test_config_memo_is_bounded_in_the_bytes_its_keys_hold(cache: ReadingCache, clock: ManualClock) -> None:
    engine = Engine(cache, clock, FakeFactory())
    memo = engine._memo
    memo.byte_limit = 10_000
    big = "x" * 3_000
    configs = [
        engine.config(
            ObjectRef(f"o{i}", "ns"), {**METADATA, "note": big + str(i)}, memo_key=bytes(3_000) + bytes([i])
        )
        for i in range(4)
    ]
    # Each object left two keys of about 3 kB (its request bytes and its sorted map):
    # the oldest went until the keys hold at most 10 kB, and the count agrees.
    assert memo.size <= memo.byte_limit
    assert memo.size == sum(size for _, size, _ in memo.items.values())
    assert len(memo.items) == 3
    # The newest object's config is still found by its request bytes; the first's is not.
    assert engine.config(REF, {}, memo_key=bytes(3_000) + bytes([3])) is configs[3]
    assert memo.get(bytes(3_000) + bytes([0])) is None
    # A key over the whole budget is kept, alone (it is the one in use).
    memo.put(b"y" * 12_000, configs[0])
    assert list(memo.items) == [b"y" * 12_000]
    assert memo.size == 12_000


def test_config_raises_config_error_every_time(cache: ReadingCache, clock: ManualClock) -> None:
    engine = Engine(cache, clock, FakeFactory())
    bad = {**METADATA, "mode": "batch"}
    for _ in range(2):
        with pytest.raises(ConfigError, match="'mode'"):
            engine.config(REF, bad)


def test_unknown_key_warned_once_per_object(
    cache: ReadingCache, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    engine = Engine(cache, clock, FakeFactory())
    typo = {**METADATA, "queueLenght": "3"}
    with caplog.at_level(logging.WARNING, logger="scaler.engine"):
        for _ in range(3):
            engine.config(REF, typo)
        engine.config(ObjectRef("ml", "second"), typo)
        engine.config(REF, {**typo, "scalerAddress": "prewarm:6000"})  # KEDA's key: no warning
    warnings = [r for r in caplog.records if r.name == "scaler.engine" and r.levelno == logging.WARNING]
    assert [(r.__dict__["object"], r.__dict__["key"]) for r in warnings] == [
        ("ml/llm", "queueLenght"),
        ("ml/second", "queueLenght"),
    ]
    assert all("unknown metadata key" in r.getMessage() for r in warnings)


def test_unknown_key_warning_never_carries_the_value(
    cache: ReadingCache, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    engine = Engine(cache, clock, FakeFactory())
    with caplog.at_level(logging.WARNING, logger="scaler.engine"):
        engine.config(REF, {**METADATA, "awsSecretKey": "s3cr3t-value"})
    assert len(caplog.records) == 1
    assert "s3cr3t-value" not in caplog.text
    assert "s3cr3t-value" not in repr(caplog.records[0].__dict__)


def test_real_factory_keeps_one_source_per_source_config() -> None:
    # The hot path must not build a source (and its client) per call.
    from scaler.config import parse_trigger

    factory = SourceFactory(timeout=1.0, limit=2)
    rabbit = {"source": "rabbitmq", "host": "http://u:p@127.0.0.1:15672/", "queueName": "q"}
    first = factory.queue_source(parse_trigger(rabbit))
    again = factory.queue_source(parse_trigger({**rabbit, "queueLength": "9"}))  # same queue
    other = factory.queue_source(parse_trigger({**rabbit, "queueName": "other"}))
    assert first is not None and first is again
    assert other is not first and other is not None and other.key != first.key
    # Bounded: past the limit the oldest is forgotten (and rebuilt when asked again).
    factory.queue_source(parse_trigger({**rabbit, "queueName": "third"}))
    assert factory.queue_source(parse_trigger(rabbit)) is not first


# --- answer(): the last evaluation reused while its inputs are unchanged ------------


def observed(
    cache: ReadingCache, clock: ManualClock, factory: FakeFactory
) -> tuple[Engine, list[Evaluation], FakeQueue, TriggerConfig]:
    """An engine whose observer keeps every evaluation, its queue with 9 messages, the config."""
    seen: list[Evaluation] = []
    engine = Engine(cache, clock, factory, observer=seen.append)
    queue = factory.queue(METADATA["queueURL"])
    queue.reading = QueueReading(waiting=7, in_flight=2)
    return engine, seen, queue, engine.config(REF, METADATA)


async def test_answer_reuses_the_evaluation_while_its_inputs_are_unchanged(
    cache: ReadingCache, clock: ManualClock, factory: FakeFactory
) -> None:
    engine, seen, queue, cfg = observed(cache, clock, factory)
    first = await engine.answer(REF, cfg)
    clock.advance(0.4)
    again = await engine.answer(REF, cfg)
    assert again is first
    assert seen == [first, first]  # the observer hears of every answer
    assert (await engine.evaluate(REF, METADATA)).decision == first.decision  # what a new one says
    assert queue.reads == 1
    queue.reading = QueueReading(waiting=40, in_flight=0)
    clock.advance(1.0)  # within the TTL: a stream tick answers from the same reading
    assert (await engine.answer(REF, cfg, polled=False)) is first
    clock.advance(1.0)  # the reading's TTL ran out: a new reading, a new evaluation
    changed = await engine.answer(REF, cfg, polled=False)
    assert changed is not first
    assert changed.decision.desired == pytest.approx(10.0)
    assert (await engine.answer(REF, cfg)) is changed
    # Another object on the same queue has an evaluation of its own.
    other = ObjectRef("ml", "other")
    assert (await engine.answer(other, engine.config(other, METADATA))).ref == other


async def test_a_polled_answer_reads_the_queue_afresh_and_a_stream_tick_shares_the_reading(
    cache: ReadingCache, clock: ManualClock, factory: FakeFactory
) -> None:
    """GetMetrics and IsActive (polled) answer from a queue reading at most
    polled_reading_age old, as KEDA's own scalers read at each call; the objects on one
    queue whose calls come within it share the read. A stream tick answers from the
    cache's reading for its whole TTL."""
    engine, _, queue, cfg = observed(cache, clock, factory)
    assert engine.polled_reading_age == POLLED_READING_AGE < cache.ttl
    first = await engine.answer(REF, cfg)
    other = ObjectRef("ml", "other")
    clock.advance(0.4)
    other_first = await engine.answer(other, engine.config(other, METADATA))
    assert other_first.ages == {"queue": pytest.approx(0.4)}
    assert queue.reads == 1  # one read for both objects' calls within the age
    clock.advance(0.2)  # past the age, within the TTL
    assert (await engine.answer(REF, cfg, polled=False)) is first  # a stream tick
    assert engine.answer_again(REF, cfg, polled=False) is first
    assert engine.answer_again(REF, cfg) is None  # a polled call must read again
    queue.reading = QueueReading(waiting=40, in_flight=0)
    polled = await engine.answer(REF, cfg)
    assert queue.reads == 2
    assert polled.ages == {"queue": 0.0}
    assert polled.decision.desired == pytest.approx(10.0)
    # The fresh reading is the cache's now: the other object's next call answers from it.
    assert (await engine.answer(other, engine.config(other, METADATA))).decision.desired == pytest.approx(
        10.0
    )
    assert queue.reads == 2
    # The age is the engine's setting (the server's --polled-reading-age).
    relaxed = Engine(cache, clock, factory, polled_reading_age=cache.ttl)
    clock.advance(1.5)
    assert (await relaxed.answer(REF, cfg)).ages == {"queue": pytest.approx(1.5)}
    assert queue.reads == 2


def test_a_polled_simulated_evaluation_reads_the_queue_afresh(
    cache: ReadingCache, clock: ManualClock, factory: FakeFactory
) -> None:
    """evaluate_config_sync (the simulator's) keeps the same reading age as answer()."""
    engine = Engine(cache, clock, factory)
    cfg = engine.config(REF, METADATA)
    queue = factory.queue(METADATA["queueURL"])
    queue.reading = QueueReading(waiting=1, in_flight=0)
    engine.evaluate_config_sync(REF, cfg)
    clock.advance(1.0)
    assert engine.evaluate_config_sync(REF, cfg, polled=False).ages == {"queue": 1.0}
    assert queue.reads == 1
    assert engine.evaluate_config_sync(REF, cfg).ages == {"queue": 0.0}
    assert queue.reads == 2


async def test_answer_again_is_the_reuse_without_a_coroutine(
    cache: ReadingCache, clock: ManualClock, factory: FakeFactory
) -> None:
    engine, seen, queue, cfg = observed(cache, clock, factory)
    assert engine.answer_again(REF, cfg) is None  # nothing kept yet: answer() must evaluate
    first = await engine.answer(REF, cfg)
    assert engine.answer_again(REF, cfg) is first
    assert seen == [first, first]
    # answer_anew evaluates even while the kept one holds, and keeps what it made.
    anew = await engine.answer_anew(REF, cfg)
    assert anew is not first and anew.decision == first.decision
    assert engine.answer_again(REF, cfg) is anew
    # Another config for the same object (its metadata changed) is not answered from it.
    assert engine.answer_again(REF, engine.config(REF, {**METADATA, "queueLength": "8"})) is None
    clock.advance(2.0)  # the reading's TTL ran out
    assert engine.answer_again(REF, cfg) is None
    assert queue.reads == 1


async def test_answer_evaluates_again_when_the_forecast_outlook_moves(
    clock: ManualClock, factory: FakeFactory
) -> None:
    from scaler.forecast.model import OUTLOOK_RESOLUTION

    cache = ReadingCache(clock, ttl=3600.0, timeout=5.0)  # the reading itself stays
    try:
        engine = Engine(cache, clock, factory)
        cfg = engine.config(REF, METADATA)  # forecast: auto by default
        first = await engine.answer(REF, cfg)
        assert first.forecast is not None
        assert (await engine.answer(REF, cfg)) is first
        clock.advance(OUTLOOK_RESOLUTION)  # the model's next outlook
        moved = await engine.answer(REF, cfg)
        assert moved is not first
        assert moved.forecast is not None and moved.forecast.outlook is not first.forecast.outlook
    finally:
        cache.close()


@pytest.mark.parametrize(
    ("extra", "reused"),
    [
        ({"forecast": "off"}, True),
        ({"mode": "job"}, False),  # pre-warm Jobs are asked for in timed pulses
        # Its per-queue memory is fed each reading once (see the sequences below).
        ({"replicaThroughput": "2"}, True),
        ({"replicaThroughput": "2", "forecast": "off"}, True),
    ],
)
async def test_answer_reuses_only_what_is_a_function_of_its_inputs(
    cache: ReadingCache, clock: ManualClock, factory: FakeFactory, extra: dict[str, str], reused: bool
) -> None:
    engine = Engine(cache, clock, factory)
    cfg = engine.config(REF, {**METADATA, **extra})
    first = await engine.answer(REF, cfg)
    assert ((await engine.answer(REF, cfg)) is first) is reused


@pytest.mark.parametrize("seed", range(6))
async def test_a_reused_capacity_answer_is_what_evaluating_anew_gives(
    cache: ReadingCache, clock: ManualClock, factory: FakeFactory, seed: int
) -> None:
    """replicaThroughput's answers are reused (answer_again) only because its per-queue
    memory (averaged rate, hold history, last quiet reading) changes with a new reading
    alone, and its terms are timed by the reading, not by now. Along random sequences
    of readings, clock steps, polls and stream ticks, for two objects on one queue, each
    answer equals that of a twin engine on the same cache that always evaluates anew.
    The fake hands back the same value object until the reading is set again, as a
    source may: a new read of it is still a new input (its read_at)."""
    rng = random.Random(seed)
    engine = Engine(cache, clock, factory)
    twin = Engine(cache, clock, factory)
    queue = factory.queue(METADATA["queueURL"])
    capacity = {**METADATA, "replicaThroughput": "2", "coldStartSeconds": "120"}
    objects = [
        (REF, {**capacity, "forecast": "off"}),
        (ObjectRef("ml", "other"), {**capacity, "replicaThroughput": "3", "holdSeconds": "60"}),
    ]
    reused = anew = 0
    last: dict[ObjectRef, Evaluation] = {}
    for _ in range(1500):
        clock.advance(rng.choice([0.1, 0.3, 0.7, 1.5, 4.0, 11.0, 25.0, 70.0]))
        if rng.random() < 0.3:
            waiting, in_flight = rng.choice([(0, 0), (0, 2), (3, 1), (40, 6)])
            rate = rng.choice([0.0, 0.0, 0.4, 3.0, 12.0])
            queue.reading = QueueReading(waiting=waiting, in_flight=in_flight, publish_rate=rate)
        ref, meta = rng.choice(objects)
        polled = rng.random() < 0.6
        answered = await engine.answer(ref, engine.config(ref, meta), polled=polled)
        expected = await twin.evaluate_config(ref, twin.config(ref, meta), polled=polled)
        assert answered.signals == expected.signals
        assert answered.decision == expected.decision
        if answered is last.get(ref):
            reused += 1
        else:
            anew += 1
        last[ref] = answered
    assert reused > 50 and anew > 50  # both paths were walked


async def test_answer_raises_once_the_source_fails(
    cache: ReadingCache, clock: ManualClock, factory: FakeFactory
) -> None:
    engine = Engine(cache, clock, factory)
    queue = factory.queue(METADATA["queueURL"])
    cfg = engine.config(REF, METADATA)
    await engine.answer(REF, cfg)
    queue.error = SourceError("fake queue: cannot connect")
    clock.advance(2.0)
    with pytest.raises(SourceError, match="cannot connect"):
        await engine.answer(REF, cfg)
    with pytest.raises(SourceError, match="cannot connect"):
        await engine.answer(REF, cfg)  # the cached error, not the evaluation from before


def test_the_decision_does_not_depend_on_now() -> None:
    """answer() reuses a decision while its inputs are unchanged: that holds only while
    policy.decide is a function of (signals, config). A term that comes to depend on
    `now` must make Engine._reusable_from refuse the configs that use it."""
    from scaler.config import parse_trigger
    from scaler.policy import Signals, decide
    from scaler.signals.base import GpuReading

    gpu_meta = {"prometheusServerAddress": "http://127.0.0.1:9090", "gpuQuery": "vector(3)"}
    configs = [
        parse_trigger(METADATA),
        parse_trigger({**METADATA, "mode": "job"}),
        parse_trigger({**METADATA, **gpu_meta}),
    ]
    signals = [
        Signals(queue=QueueReading(waiting=w, in_flight=f), gpu=GpuReading(busy_gpus=g, series=1))
        for w, f, g in ((0, 0, 0.0), (1, 0, 0.5), (9, 3, 2.0), (100, 0, 0.0))
    ]
    for cfg in configs:
        for s in signals:
            assert decide(s, cfg, 0.0) == decide(s, cfg, 1e9), (cfg, s)


def test_http_sources_keep_as_many_connections_per_server_as_the_cache_reads_there_at_once() -> None:
    """The shared HTTP pools keep the connections the cache can use on one endpoint at
    once (more would sit idle; fewer would be opened and dropped on every busy read)."""
    from scaler.config import parse_trigger
    from scaler.server import ScalerServer, Settings
    from scaler.signals.rabbitmq import RabbitHttpSource

    cache = ReadingCache(ManualClock(), max_workers=80)
    engine = Engine(cache, ManualClock())
    assert cache.endpoint_limit == 20
    assert engine.sources.http_pools._pool_maxsize == 20  # requests keeps no public accessor
    meta = {"source": "rabbitmq", "host": "http://guest:guest@127.0.0.1:15672", "queueName": "jobs"}
    source = engine.sources.queue_source(parse_trigger(meta))
    assert isinstance(source, RabbitHttpSource)
    assert source._session.get_adapter("http://127.0.0.1:15672/api") is engine.sources.http_pools
    server = ScalerServer(Settings(host="127.0.0.1", port=0, metrics_port=None, read_threads=32))
    assert server.engine.sources.http_pools._pool_maxsize == server.cache.endpoint_limit == 8
