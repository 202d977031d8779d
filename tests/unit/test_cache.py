"""ReadingCache: TTL reuse, single flight, cached errors, timeouts, isolation, eviction."""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from scaler.clock import ManualClock
from scaler.signals.base import QueueReading, SourceError
from scaler.signals.cache import Reading, ReadingCache


class FakeSource:
    """A source whose read() returns successive values, or raises what it is told to.
    `gate`, when set, makes read() block until the gate opens (a slow source)."""

    def __init__(self, key: str = "fake|q", *, fail: Exception | None = None) -> None:
        self._key = key
        self.fail = fail
        self.reads = 0
        self.closed = 0
        self.gate: threading.Event | None = None
        self.started = threading.Event()  # set by a read that blocks on the gate
        self.finished = threading.Event()  # set when a gated read returns

    @property
    def key(self) -> str:
        return self._key

    @property
    def description(self) -> str:
        return f"fake queue {self._key!r}"

    def read(self) -> QueueReading:
        self.reads += 1
        if self.gate is not None:
            # Only a gated read: a read made before the gate was set must not look like
            # the blocked refresh a test then waits for (under load the refresh had not
            # started yet when the test went on).
            self.started.set()
            self.gate.wait(10)
            self.finished.set()
        if self.fail is not None:
            raise self.fail
        return QueueReading(waiting=float(self.reads), in_flight=0.0)

    def close(self) -> None:
        self.closed += 1


class LoopSource(FakeSource):
    """A source whose read is a coroutine (a client driven by the event loop, as the
    AMQP source's is): the cache awaits it on the loop, in no pool thread."""

    def __init__(self, key: str = "loop|q", *, fail: Exception | None = None) -> None:
        super().__init__(key, fail=fail)
        self.threads: list[threading.Thread] = []
        self.release: asyncio.Event | None = None  # when set, read() waits for it

    async def read(self) -> QueueReading:  # type: ignore[override]
        self.threads.append(threading.current_thread())
        self.reads += 1
        if self.release is not None:
            await self.release.wait()
        if self.fail is not None:
            raise self.fail
        return QueueReading(waiting=float(self.reads), in_flight=0.0)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start=100.0)


@pytest.fixture
async def make_cache(clock: ManualClock) -> AsyncIterator[Callable[..., ReadingCache]]:
    caches: list[ReadingCache] = []

    def make(**kwargs: object) -> ReadingCache:
        kwargs.setdefault("ttl", 2.0)
        kwargs.setdefault("timeout", 5.0)
        cache = ReadingCache(clock, **kwargs)  # type: ignore[arg-type]
        caches.append(cache)
        return cache

    yield make
    for cache in caches:
        cache.close()


async def test_reading_reused_within_ttl(clock: ManualClock, make_cache: Callable[..., ReadingCache]) -> None:
    cache = make_cache(ttl=2.0)
    source = FakeSource()
    first = await cache.get(source)
    clock.advance(1.999)
    second = await cache.get(source)
    assert second is first
    assert source.reads == 1
    assert cache.reads == 1
    assert first.value == QueueReading(waiting=1.0, in_flight=0.0)
    assert first.read_at == 100.0
    assert first.age(clock.monotonic()) == pytest.approx(1.999)


async def test_fresh_is_what_get_would_answer_without_a_read(
    clock: ManualClock, make_cache: Callable[..., ReadingCache]
) -> None:
    """The engine's fast path: the cached outcome within the TTL, else None (get() must read)."""
    cache = make_cache(ttl=2.0)
    source = FakeSource()
    assert cache.fresh(source) is None  # never read
    first = await cache.get(source)
    clock.advance(1.999)
    assert cache.fresh(source) is first
    clock.advance(0.001)
    assert cache.fresh(source) is None  # stale: the next get() reads
    assert source.reads == 1
    failing = FakeSource("fake|down", fail=SourceError("fake queue 'fake|down': cannot connect"))
    with pytest.raises(SourceError):
        await cache.get(failing)
    cached = cache.fresh(failing)
    assert isinstance(cached, SourceError) and str(cached) == "fake queue 'fake|down': cannot connect"
    assert cache.fresh(failing) is not cached  # a copy per caller, as get() raises
    assert failing.reads == 1


async def test_refreshed_after_ttl(clock: ManualClock, make_cache: Callable[..., ReadingCache]) -> None:
    cache = make_cache(ttl=2.0)
    source = FakeSource()
    await cache.get(source)
    clock.advance(2.0)
    fresh = await cache.get(source)
    assert source.reads == 2
    assert fresh.value == QueueReading(waiting=2.0, in_flight=0.0)
    assert fresh.read_at == 102.0


async def test_same_key_shares_the_first_source_object(make_cache: Callable[..., ReadingCache]) -> None:
    cache = make_cache()
    first, second = FakeSource("k"), FakeSource("k")
    await cache.get(first)
    await cache.get(second)
    assert first.reads == 1
    assert second.reads == 0
    assert cache.source("k") is first
    assert cache.source("other") is None


async def test_single_flight(make_cache: Callable[..., ReadingCache]) -> None:
    cache = make_cache()
    source = FakeSource()
    source.gate = threading.Event()
    waiters = [asyncio.ensure_future(cache.get(source)) for _ in range(50)]
    await asyncio.to_thread(source.started.wait, 5)
    await asyncio.sleep(0.01)
    assert not any(w.done() for w in waiters)  # all of them wait on the one read
    source.gate.set()
    readings = await asyncio.gather(*waiters)
    assert source.reads == 1
    assert cache.reads == 1
    assert all(r is readings[0] for r in readings)


async def test_one_caller_giving_up_does_not_cancel_the_shared_read(
    make_cache: Callable[..., ReadingCache],
) -> None:
    cache = make_cache()
    source = FakeSource()
    source.gate = threading.Event()
    impatient = asyncio.ensure_future(cache.get(source))
    patient = asyncio.ensure_future(cache.get(source))
    await asyncio.to_thread(source.started.wait, 5)
    impatient.cancel()
    source.gate.set()
    reading = await patient
    assert reading.value == QueueReading(waiting=1.0, in_flight=0.0)
    assert impatient.cancelled()
    assert source.reads == 1


async def test_error_cached_for_ttl_then_retried(
    clock: ManualClock, make_cache: Callable[..., ReadingCache]
) -> None:
    cache = make_cache(ttl=2.0)
    source = FakeSource(fail=SourceError("fake queue 'fake|q': cannot connect"))
    for _ in range(3):
        with pytest.raises(SourceError, match=r"^fake queue 'fake\|q': cannot connect$"):
            await cache.get(source)
        clock.advance(0.5)
    assert source.reads == 1  # a down source is not hammered
    clock.advance(0.5)  # now 2 s after the failure
    source.fail = None
    reading = await cache.get(source)
    assert source.reads == 2
    assert reading.value == QueueReading(waiting=2.0, in_flight=0.0)


async def test_recovered_source_clears_the_error(
    clock: ManualClock, make_cache: Callable[..., ReadingCache]
) -> None:
    cache = make_cache(ttl=1.0)
    source = FakeSource()
    await cache.get(source)
    clock.advance(1.0)
    source.fail = SourceError("fake: down")
    with pytest.raises(SourceError):
        await cache.get(source)
    clock.advance(1.0)
    source.fail = None
    assert (await cache.get(source)).value == QueueReading(waiting=3.0, in_flight=0.0)


async def test_repeated_cached_error_does_not_grow_its_traceback(
    make_cache: Callable[..., ReadingCache],
) -> None:
    # The cached exception is raised to every caller within the TTL; its traceback
    # must not accumulate every caller's frames.
    class QueueGone(SourceError):
        pass

    cache = make_cache(ttl=60.0)
    source = FakeSource(fail=QueueGone("fake: queue does not exist"))
    depths = []
    for _ in range(20):
        with pytest.raises(QueueGone, match=r"^fake: queue does not exist$") as info:
            await cache.get(source)
        depth, tb = 0, info.value.__traceback__
        while tb is not None:
            depth, tb = depth + 1, tb.tb_next
        depths.append(depth)
    assert depths[-1] == depths[1]
    assert source.reads == 1


async def test_timeout_is_a_source_error(make_cache: Callable[..., ReadingCache]) -> None:
    cache = make_cache(timeout=0.05)
    source = FakeSource()
    source.gate = threading.Event()
    try:
        with pytest.raises(SourceError) as info:
            await cache.get(source)
        assert str(info.value) == "fake queue 'fake|q': no answer within 0.05s"
    finally:
        source.gate.set()


@pytest.mark.parametrize(
    ("failure", "message"),
    [
        (
            ConnectionResetError("amqp://user:hunter2@127.0.0.1 reset"),
            "cannot read the source: the server closed the connection",
        ),
        (
            KeyError("amqp://user:hunter2@127.0.0.1"),
            "unexpected error while reading (KeyError); the scaler's debug log has the details",
        ),
    ],
)
async def test_unmapped_exception_reads_plainly_without_its_text(
    make_cache: Callable[..., ReadingCache], failure: Exception, message: str
) -> None:
    """A failure no source mapped: the kind of failure in words when it is a
    connection failure, else the error's type; never its text (it may hold a URL
    with a password)."""
    cache = make_cache()
    source = FakeSource(fail=failure)
    with pytest.raises(SourceError) as info:
        await cache.get(source)
    assert str(info.value) == f"fake queue 'fake|q': {message}"
    assert "hunter2" not in str(info.value)
    assert info.value.__cause__ is None


async def test_slow_source_does_not_delay_another(make_cache: Callable[..., ReadingCache]) -> None:
    cache = make_cache(timeout=10.0)
    slow, fast = FakeSource("slow|q"), FakeSource("fast|q")
    slow.gate = threading.Event()
    slow_read = asyncio.ensure_future(cache.get(slow))
    try:
        await asyncio.to_thread(slow.started.wait, 5)
        reading = await asyncio.wait_for(cache.get(fast), 2.0)
        assert reading.value == QueueReading(waiting=1.0, in_flight=0.0)
        assert not slow_read.done()
    finally:
        slow.gate.set()
    assert (await slow_read).value == QueueReading(waiting=1.0, in_flight=0.0)


async def test_evict_idle_closes_sources(clock: ManualClock, make_cache: Callable[..., ReadingCache]) -> None:
    cache = make_cache(idle_evict_after=60.0)
    idle, busy = FakeSource("idle|q"), FakeSource("busy|q")
    await cache.get(idle)
    await cache.get(busy)
    clock.advance(50.0)
    await cache.get(busy)
    clock.advance(10.0)
    assert await cache.evict_idle() == 0  # exactly 60 s idle is not yet "more than" 60 s
    clock.advance(0.5)
    assert await cache.evict_idle() == 1
    assert idle.closed == 1
    assert busy.closed == 0
    assert cache.source("idle|q") is None
    assert cache.source("busy|q") is busy
    # Asked for again later: a fresh read through the new object.
    again = FakeSource("idle|q")
    await cache.get(again)
    assert again.reads == 1


async def test_evict_idle_survives_a_failing_close(
    clock: ManualClock, make_cache: Callable[..., ReadingCache]
) -> None:
    cache = make_cache(idle_evict_after=1.0)
    source = FakeSource()

    def broken_close() -> None:
        raise OSError("already closed")

    source.close = broken_close  # type: ignore[method-assign]
    await cache.get(source)
    clock.advance(2.0)
    assert await cache.evict_idle() == 1
    assert cache.source(source.key) is None


async def test_close_closes_every_source(clock: ManualClock) -> None:
    cache = ReadingCache(clock)
    sources = [FakeSource(f"k{i}") for i in range(3)]
    for source in sources:
        await cache.get(source)
    cache.close()
    assert [s.closed for s in sources] == [1, 1, 1]


async def test_on_read_observer(clock: ManualClock, make_cache: Callable[..., ReadingCache]) -> None:
    seen: list[tuple[str, float, SourceError | None]] = []
    cache = make_cache(ttl=1.0, on_read=lambda s, seconds, err: seen.append((s.key, seconds, err)))
    source = FakeSource()
    await cache.get(source)
    await cache.get(source)  # cached: no read, no observation
    assert seen == [("fake|q", 0.0, None)]
    clock.advance(1.0)
    source.fail = SourceError("fake: down")
    with pytest.raises(SourceError):
        await cache.get(source)
    assert len(seen) == 2
    key, _seconds, error = seen[1]
    assert key == "fake|q"
    assert isinstance(error, SourceError)
    assert str(error) == "fake: down"


async def test_a_hung_source_holds_at_most_one_thread(
    clock: ManualClock, make_cache: Callable[..., ReadingCache]
) -> None:
    # A read stuck past the timeout keeps its pool thread; the next TTL must not
    # start another one for the same key (hung sources would drain the pool and
    # starve healthy ones), and it still answers an error at once.
    cache = make_cache(ttl=1.0, timeout=0.1)
    hung = FakeSource("hung|q")
    hung.gate = threading.Event()
    try:
        with pytest.raises(SourceError, match="no answer within"):
            await cache.get(hung)
        clock.advance(5)
        with pytest.raises(SourceError, match="previous read has still not returned"):
            await cache.get(hung)
        await asyncio.to_thread(hung.started.wait, 5)  # the one read (late on a loaded machine)
        assert hung.reads == 1
    finally:
        hung.gate.set()
    await asyncio.to_thread(hung.finished.wait, 5)  # the stuck thread returns
    cache.timeout = 5.0  # the last read is healthy: a loaded machine must not fail it
    deadline = time.monotonic() + 5
    while True:  # until its future is marked done, which follows in that thread
        clock.advance(5)
        try:
            reading = await cache.get(hung)
            break
        except SourceError as exc:
            if "previous read has still not returned" not in str(exc) or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.01)
    assert hung.reads == 2
    assert reading.value == QueueReading(waiting=2.0, in_flight=0.0)


async def test_failing_and_recovery_are_logged_once_each(
    clock: ManualClock, make_cache: Callable[..., ReadingCache], caplog: pytest.LogCaptureFixture
) -> None:
    cache = make_cache(ttl=1.0)
    source = FakeSource()
    caplog.set_level(logging.INFO, logger="scaler.signals.cache")
    await cache.get(source)
    assert not caplog.records  # healthy: nothing logged per read

    source.fail = SourceError("fake queue 'fake|q': cannot connect to 127.0.0.1:1: connection refused")
    for _ in range(3):  # three failed reads, one warning
        clock.advance(1.0)
        with pytest.raises(SourceError):
            await cache.get(source)
    (failing,) = caplog.records
    assert failing.levelno == logging.WARNING
    assert failing.getMessage() == (
        "source failing: fake queue 'fake|q': cannot connect to 127.0.0.1:1: connection refused"
    )
    assert failing.source == "fake queue 'fake|q'"  # type: ignore[attr-defined]

    source.fail = None
    for _ in range(2):  # recovered: one line, then quiet again
        clock.advance(1.0)
        await cache.get(source)
    assert len(caplog.records) == 2
    recovered = caplog.records[1]
    assert recovered.levelno == logging.INFO
    assert recovered.getMessage() == "source recovered: fake queue 'fake|q' (failed for 3s)"


async def test_close_is_bounded_by_a_hung_read(make_cache: Callable[..., ReadingCache]) -> None:
    cache = make_cache(timeout=0.1)
    hung = FakeSource("hung|q")
    hung.gate = threading.Event()
    try:
        with pytest.raises(SourceError):
            await cache.get(hung)
        started = time.monotonic()
        # The wait gives the source's close a pool thread even on a loaded machine.
        assert await asyncio.to_thread(cache.close, 1.0) is False  # the read is still stuck
        assert time.monotonic() - started < 3.0
        assert hung.closed == 1
    finally:
        hung.gate.set()


# --- stale while refreshing, and readings newer than one already used -------------


async def _blocked_read_started(source: FakeSource) -> None:
    """Wait until a read of `source` has started (and is blocked on its gate)."""
    await asyncio.to_thread(source.started.wait, 5)
    source.started.clear()


async def test_a_reading_within_the_stale_grace_is_answered_while_its_refresh_runs(
    clock: ManualClock, make_cache: Callable[..., ReadingCache]
) -> None:
    cache = make_cache(ttl=2.0, stale_grace=0.4)
    source = FakeSource()
    first = await cache.get(source)
    source.gate = threading.Event()
    clock.advance(2.0)  # the TTL ran out: this caller starts the refresh, and does not wait for it
    assert await asyncio.wait_for(cache.get(source), 1) is first
    await _blocked_read_started(source)
    clock.advance(0.399)
    assert await asyncio.wait_for(cache.get(source), 1) is first
    assert source.reads == 2 and cache.reads == 2  # one refresh, not one per caller
    clock.advance(0.001)  # past TTL + grace: callers wait for the refresh
    waiting = asyncio.ensure_future(cache.get(source))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    source.gate.set()
    second = await waiting
    assert second.value == QueueReading(waiting=2.0, in_flight=0.0)
    assert cache.fresh(source) is second
    assert source.reads == 2


async def test_no_grace_by_default_and_none_for_a_cached_error(
    clock: ManualClock, make_cache: Callable[..., ReadingCache]
) -> None:
    plain = make_cache(ttl=2.0)
    source = FakeSource()
    await plain.get(source)
    clock.advance(2.0)
    assert (await plain.get(source)).value == QueueReading(waiting=2.0, in_flight=0.0)  # waited for it

    graceful = make_cache(ttl=2.0, stale_grace=0.4)
    failing = FakeSource("fake|down", fail=SourceError("fake queue 'fake|down': cannot connect"))
    with pytest.raises(SourceError):
        await graceful.get(failing)
    failing.fail = None
    clock.advance(2.1)  # an error past its TTL is never answered again: the caller waits for the read
    assert (await graceful.get(failing)).value == QueueReading(waiting=2.0, in_flight=0.0)


async def test_a_failed_refresh_is_the_answer_once_it_ends(
    clock: ManualClock, make_cache: Callable[..., ReadingCache]
) -> None:
    cache = make_cache(ttl=2.0, stale_grace=0.4)
    source = FakeSource()
    first = await cache.get(source)
    source.fail = SourceError("fake queue 'fake|q': cannot connect")
    source.gate = threading.Event()
    clock.advance(2.1)
    assert await cache.get(source) is first  # the refresh is in flight
    source.gate.set()
    for _ in range(100):  # the refresh ends (it fails) in its pool thread
        if cache.fresh(source) is not None:
            break
        await asyncio.sleep(0.01)
    with pytest.raises(SourceError, match="cannot connect"):
        await cache.get(source)


async def test_newer_than_reads_again_within_the_ttl_and_shares_the_read(
    clock: ManualClock, make_cache: Callable[..., ReadingCache]
) -> None:
    cache = make_cache(ttl=2.0)
    source = FakeSource()
    first = await cache.get(source)
    clock.advance(0.5)
    source.gate = threading.Event()
    wakers = [asyncio.ensure_future(cache.get(source, newer_than=first.read_at)) for _ in range(5)]
    await _blocked_read_started(source)
    # Callers without newer_than answer from the reading within its TTL meanwhile.
    assert await asyncio.wait_for(cache.get(source), 1) is first
    assert cache.fresh(source) is first
    assert not any(w.done() for w in wakers)
    source.gate.set()
    newer = await asyncio.gather(*wakers)
    assert all(r is newer[0] for r in newer)
    assert newer[0].read_at == 100.5 and newer[0].value == QueueReading(waiting=2.0, in_flight=0.0)
    assert source.reads == 2  # one read for all five
    # A reading already newer than asked for is answered without a read.
    assert await cache.get(source, newer_than=first.read_at) is newer[0]
    assert source.reads == 2


async def test_newer_than_does_not_retry_a_cached_error(
    clock: ManualClock, make_cache: Callable[..., ReadingCache]
) -> None:
    cache = make_cache(ttl=2.0)
    source = FakeSource(fail=SourceError("fake queue 'fake|q': cannot connect"))
    with pytest.raises(SourceError):
        await cache.get(source)
    clock.advance(0.5)
    with pytest.raises(SourceError):
        await cache.get(source, newer_than=99.0)
    assert source.reads == 1  # a down source is retried once per TTL, streams or not


async def cyclic_garbage_of(times: int, read: Callable[[], Awaitable[None]], clock: ManualClock) -> int:
    """Objects the cyclic collector finds after `times` reads, one TTL apart."""
    gc.collect()
    gc.disable()
    try:
        for _ in range(times):
            clock.advance(2.0)
            await read()
        return gc.collect()
    finally:
        gc.enable()


@pytest.mark.parametrize("where", ["in a thread", "on the loop"])
async def test_reads_leave_no_cyclic_garbage(
    clock: ManualClock, make_cache: Callable[..., ReadingCache], where: str
) -> None:
    # The server reads every queue once per TTL: garbage in reference cycles piles up
    # for the cyclic collector, whose collections stop the event loop (every answer).
    cache = make_cache()
    source = FakeSource("q") if where == "in a thread" else LoopSource("q")
    await cache.get(source)  # the first read makes the entry (and the pool's thread)

    async def read() -> None:
        await cache.get(source)

    assert await cyclic_garbage_of(20, read, clock) == 0
    assert source.reads == 21


async def test_hung_reads_of_many_keys_do_not_starve_a_healthy_source(
    make_cache: Callable[..., ReadingCache],
) -> None:
    # Distinct queues behind one tarpitting endpoint each hold a thread (one per key)
    # until every pool thread is stuck; a healthy source's read then waited in the
    # pool's queue past its deadline and failed, blamed on itself.
    cache = make_cache(timeout=0.2, max_workers=4)
    gate = threading.Event()
    hung = [FakeSource(f"hung|q{i}") for i in range(4)]
    for source in hung:
        source.gate = gate
    try:
        outcomes = await asyncio.gather(*(cache.get(s) for s in hung), return_exceptions=True)
        assert all("no answer within 0.2s" in str(o) for o in outcomes)
        cache.timeout = 5.0  # the healthy read's own deadline: roomy on a loaded machine
        reading = await asyncio.wait_for(cache.get(FakeSource("healthy|q")), 10.0)
        assert reading.value == QueueReading(waiting=1.0, in_flight=0.0)
    finally:
        gate.set()


class EndpointSource(FakeSource):
    """A FakeSource on a named endpoint (server) whose reads each take `delay` s."""

    def __init__(self, key: str, endpoint: str, delay: float = 0.0, **kwargs: Any) -> None:
        super().__init__(key, **kwargs)
        self.endpoint = endpoint
        self.delay = delay

    def read(self) -> QueueReading:
        time.sleep(self.delay)
        return super().read()


async def test_a_slowly_failing_server_holds_at_most_its_share_of_the_pool(
    make_cache: Callable[..., ReadingCache],
) -> None:
    # An unreachable server: each of its keys' reads ends at the client's own timeout,
    # inside the cache's deadline, so none counts as stuck. Its 16 keys held all 8
    # threads, and a healthy source's read waited in the pool's queue behind two
    # rounds of them (0.9 s) past its deadline (0.75 s), failing, blamed on itself.
    cache = make_cache(timeout=0.5, max_workers=8)
    assert cache.endpoint_limit == 2
    down = SourceError("fake server: cannot connect (timed out)")
    slow = [EndpointSource(f"slow|q{i}", "slow:9090", delay=0.45, fail=down) for i in range(16)]
    healthy = EndpointSource("healthy|q", "healthy:9090")
    outcomes = await asyncio.gather(*(cache.get(s) for s in [*slow, healthy]), return_exceptions=True)
    reading = outcomes[-1]
    assert not isinstance(reading, BaseException), reading
    assert reading.value == QueueReading(waiting=1.0, in_flight=0.0)
    # The server's reads past its share waited on the event loop, and say why they failed.
    assert all(isinstance(o, SourceError) for o in outcomes[:-1])
    assert any("reads of the same server still running" in str(o) for o in outcomes[:-1])
    assert sum(s.reads for s in slow) < 16


async def test_the_endpoint_share_frees_as_reads_return(make_cache: Callable[..., ReadingCache]) -> None:
    cache = make_cache(timeout=5.0, max_workers=4)
    sources = [EndpointSource(f"q{i}", "broker:15672", delay=0.05) for i in range(6)]
    readings = await asyncio.gather(*(cache.get(s) for s in sources))
    assert [r.value.waiting for r in readings] == [1.0] * 6  # one at a time, none failed
    for _ in range(100):  # the last release is scheduled on the loop by the thread
        if not cache._endpoints:
            break
        await asyncio.sleep(0.01)
    assert cache._endpoints == {}


class FreshErrorSource(FakeSource):
    """A source down the way a client reports it: a new exception per read, raised
    from a lower-level one."""

    def read(self) -> QueueReading:
        self.reads += 1
        try:
            raise OSError("connection refused")
        except OSError as exc:
            raise SourceError(f"{self.description}: cannot connect") from exc


async def test_failed_reads_leave_no_cyclic_garbage(
    clock: ManualClock, make_cache: Callable[..., ReadingCache]
) -> None:
    # Through an outage every key fails once per TTL; the cached error's traceback
    # held the read's frame, which held the entry, which held the error: a cycle
    # per failed read for the collector.
    cache = make_cache()
    source = FreshErrorSource("down|q")
    with pytest.raises(SourceError):
        await cache.get(source)

    async def read() -> None:
        with pytest.raises(SourceError, match="cannot connect"):
            await cache.get(source)

    assert await cyclic_garbage_of(20, read, clock) == 0
    assert source.reads == 21


async def test_evict_idle_leaves_a_source_whose_read_is_still_running(
    clock: ManualClock, make_cache: Callable[..., ReadingCache]
) -> None:
    # A server dripping bytes keeps a read alive past every timeout; closing its
    # source would wait for the read's lock, and with it the housekeeping.
    cache = make_cache(timeout=0.2, idle_evict_after=60.0)
    gate = threading.Event()
    dripping, idle = FakeSource("dripping|q"), FakeSource("idle|q")
    dripping.gate = gate
    try:
        with pytest.raises(SourceError, match=r"no answer within 0\.2s"):
            await cache.get(dripping)
        await cache.get(idle)
        clock.advance(61.0)
        assert await cache.evict_idle() == 1
        assert (dripping.closed, idle.closed) == (0, 1)
    finally:
        gate.set()
    assert dripping.finished.wait(5)
    for _ in range(100):
        if await cache.evict_idle() == 1:
            break
        await asyncio.sleep(0.01)
    assert dripping.closed == 1


class HangingCloseSource(FakeSource):
    def __init__(self, key: str, gate: threading.Event) -> None:
        super().__init__(key)
        self.close_gate = gate

    def close(self) -> None:
        self.close_gate.wait(10)
        super().close()


async def test_evict_idle_waits_for_closes_at_most_a_timeout(
    clock: ManualClock, make_cache: Callable[..., ReadingCache], caplog: pytest.LogCaptureFixture
) -> None:
    cache = make_cache(timeout=0.2, idle_evict_after=60.0)
    gate = threading.Event()
    try:
        await cache.get(HangingCloseSource("hangs|q", gate))
        clock.advance(61.0)
        with caplog.at_level(logging.WARNING, logger="scaler.signals.cache"):
            assert await asyncio.wait_for(cache.evict_idle(), 5.0) == 1
        assert "still closing" in caplog.text
    finally:
        gate.set()


async def test_last_is_the_latest_outcome_however_old(
    clock: ManualClock, make_cache: Callable[..., ReadingCache]
) -> None:
    cache = make_cache(ttl=2.0)
    source = FakeSource()
    assert cache.last(source) is None  # never read
    await cache.get(source)
    clock.advance(600.0)  # far past the TTL: fresh() has nothing, last() still does
    assert cache.fresh(source) is None
    last = cache.last(source)
    assert isinstance(last, Reading) and last.value == QueueReading(waiting=1.0, in_flight=0.0)
    source.fail = SourceError("fake queue 'fake|q': cannot connect")
    with pytest.raises(SourceError):
        await cache.get(source)
    clock.advance(600.0)
    error = cache.last(source)  # the error now, not the reading before it
    assert isinstance(error, SourceError) and "cannot connect" in str(error)
    assert error is not cache.last(source)  # a copy per caller


async def test_a_coroutine_read_is_awaited_on_the_loop_and_shared(
    clock: ManualClock, make_cache: Callable[..., ReadingCache]
) -> None:
    cache = make_cache()
    source = LoopSource()
    source.release = asyncio.Event()
    first = [asyncio.ensure_future(cache.get(source)) for _ in range(5)]
    await asyncio.sleep(0)
    source.release.set()
    readings = await asyncio.gather(*first)
    assert {r.value for r in readings} == {QueueReading(waiting=1.0, in_flight=0.0)}  # one read, shared
    assert source.threads == [threading.current_thread()]  # the loop's thread, not the pool's
    assert cache.reads == 1
    clock.advance(2.0)  # past the TTL: read again
    assert (await cache.get(source)).value == QueueReading(waiting=2.0, in_flight=0.0)


async def test_a_coroutine_read_past_the_timeout_is_cancelled_and_a_source_error(
    make_cache: Callable[..., ReadingCache],
) -> None:
    cache = make_cache(timeout=0.05)
    source = LoopSource()
    source.release = asyncio.Event()  # never set: a client that never answers
    with pytest.raises(SourceError) as info:
        await cache.get(source)
    assert str(info.value) == "fake queue 'loop|q': no answer within 0.05s"
    # Nothing is left running: the next read is not refused as "still not returned".
    source.release.set()
    with pytest.raises(SourceError):  # the error is cached for the TTL
        await cache.get(source)
    assert source.reads == 1


async def test_a_coroutine_reads_errors_are_cached_as_a_threads_are(
    make_cache: Callable[..., ReadingCache],
) -> None:
    cache = make_cache()
    source = LoopSource(fail=SourceError("fake queue 'loop|q': connection refused"))
    for _ in range(2):
        with pytest.raises(SourceError, match="connection refused"):
            await cache.get(source)
    assert source.reads == 1


def test_get_sync_refuses_a_source_that_reads_on_an_event_loop(clock: ManualClock) -> None:
    cache = ReadingCache(clock)
    try:
        with pytest.raises(TypeError, match="reads on an event loop"):
            cache.get_sync(LoopSource())
    finally:
        cache.close()
