"""Job mode's pre-warm pulses (engine.job_pulse) against KEDA's ScaledJob loop: with the
`accurate` strategy KEDA creates `maxScale - pending` Jobs per poll, so a pulse creates
at most maxPrewarmJobs Jobs only while the Jobs it created are still pending for the
whole hold (the hold ends before they can be Ready), whatever the cold start; and only
the polled evaluations (GetMetrics, IsActive), which KEDA's ScaledJob loop reads, start
a pulse: a StreamIsActive tick does not (docs/forecast.md, Job mode)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import pytest
from test_engine_forecast import METADATA, REF, Factory, clock_at

from scaler._proto import externalscaler_pb2 as pb
from scaler.config import COLD_START_BOUNDS
from scaler.engine import Engine, job_pulse, job_pulse_hold, job_pulse_period
from scaler.observability import Metrics
from scaler.server import ExternalScalerServicer, Shutdown
from scaler.signals.base import ArrivalReading
from scaler.signals.cache import ReadingCache


def keda_accurate_polls(
    cold_start: float, polling: float, n: int = 2, horizon: float | None = None
) -> tuple[list[int], int]:
    """KEDA's accurate polls on an empty queue against job_pulse, the forecast floor
    `n` whenever a pulse asks. A Job is pending until Ready, `cold_start` after it is
    created (pendingPodConditions [Ready]); a pre-warmed Job that finds no message
    exits 2 cold starts later (docs/forecast.md). Returns the Jobs created by each
    pulse and the most Jobs alive at once."""
    horizon = horizon if horizon is not None else 7 * cold_start + 1
    started: float | None = None
    jobs: list[float] = []  # creation times
    per_pulse: list[int] = []
    peak = 0
    t = 0.0
    while t < horizon:
        ask, begun = job_pulse(t, started, cold_start)
        if begun != started:
            per_pulse.append(0)
            started = begun
        max_scale = n if ask else 0
        pending = sum(1 for c in jobs if t < c + cold_start)
        new = max(0, max_scale - pending)  # accurate, far below maxReplicaCount
        jobs += [t] * new
        if per_pulse:
            per_pulse[-1] += new
        peak = max(peak, sum(1 for c in jobs if t < c + 3 * cold_start))
        t += polling
    return per_pulse, peak


@pytest.mark.parametrize("cold_start", [10, 12, 15, 20, 30, 40, 45, 56, 60, 180, 300, 3600])
@pytest.mark.parametrize("polling", [5, 10, 15, 30, 60])
def test_a_pulse_creates_at_most_max_prewarm_jobs_whatever_the_cold_start(
    cold_start: float, polling: float
) -> None:
    per_pulse, peak = keda_accurate_polls(float(cold_start), float(polling), n=2)
    assert len(per_pulse) >= 2, per_pulse  # the pulse ends, and the next one comes
    # The poll that starts a pulse sees it (the earlier Jobs have exited), and the
    # polls inside its hold find its Jobs still pending: exactly 2 each time.
    assert per_pulse == [2] * len(per_pulse), per_pulse
    assert peak <= 2


def test_the_repro_cold_start_20s_polling_10s() -> None:
    """The audit's case (before the fix: 6 Jobs per pulse, 60 in 600 s, 6 alive)."""
    per_pulse, peak = keda_accurate_polls(20.0, 10.0, n=2, horizon=600.0)
    assert per_pulse == [2] * 10 and peak == 2


def test_the_hold_ends_before_a_cold_start_and_the_pulse_always_ends() -> None:
    low, high = COLD_START_BOUNDS
    cold = low
    while cold <= high:
        hold, period = job_pulse_hold(cold), job_pulse_period(cold)
        assert 0 < hold < cold
        assert hold <= 45.0
        assert period >= hold + cold and period == 3 * cold
        cold *= 1.1
    assert job_pulse_hold(300.0) == 45.0  # long cold starts: as before
    assert job_pulse_hold(20.0) == pytest.approx(16.0)
    # 3 cold starts after the pulse began, a poll starts the next one.
    assert job_pulse(60.0, 0.0, 20.0) == (True, 60.0)
    assert job_pulse(59.0, 0.0, 20.0) == (False, 0.0)
    assert job_pulse(15.9, 0.0, 20.0) == (True, 0.0)
    assert job_pulse(16.0, 0.0, 20.0) == (False, 0.0)


# --- the engine, driven as KEDA's ScaledJob loop drives it ------------------------------


def job_metadata(cold_start: int) -> dict[str, str]:
    return {**METADATA, "mode": "job", "maxPrewarmJobs": "3", "coldStartSeconds": str(cold_start)}


@pytest.fixture
def factory() -> Factory:
    f = Factory()
    f.arrival.reading = ArrivalReading(rate=2.0)  # what the history says of 12:00 UTC
    return f


async def test_engine_pulse_at_a_20s_cold_start_creates_at_most_max_prewarm_jobs(factory: Factory) -> None:
    """KEDA polls every 10 s (GetMetrics, then IsActive); the floor is 3 while a pulse
    asks (2/s expected: 40 arrivals within 20 s). Before the fix the 45 s hold
    outlasted the cold start, and the polls at 20 s and 30 s created 3 more each."""
    meta = job_metadata(20)
    clock = clock_at(12.0)
    cache = ReadingCache(clock, ttl=2.0, timeout=5.0)
    engine = Engine(cache, clock, factory)
    try:
        jobs: list[float] = []
        created_at: dict[float, int] = {}
        for poll in range(0, 300, 10):
            t = float(poll)
            metric = await engine.evaluate(REF, meta)  # GetMetrics
            active = await engine.evaluate(REF, meta)  # IsActive
            max_scale = int(metric.decision.desired) if active.decision.active else 0
            pending = sum(1 for c in jobs if t < c + 20)
            new = max(0, max_scale - pending)
            jobs += [t] * new
            if new:
                created_at[t] = new
            clock.advance(10)
        # One pulse per 3 cold starts, 3 Jobs each, all at the poll that starts it.
        assert created_at == {0.0: 3, 60.0: 3, 120.0: 3, 180.0: 3, 240.0: 3}
    finally:
        await engine.close()
        cache.close()


async def test_a_stream_tick_does_not_start_or_use_up_a_pulse(factory: Factory) -> None:
    """An external-push ScaledJob: a stream tick at t=0 evaluates the object, KEDA's
    first poll comes at t=60 (pollingInterval 60 s, beyond the 45 s hold). Before the
    fix the tick started the pulse, whose hold had ended when the poll came."""
    meta = job_metadata(180)
    clock = clock_at(12.0)
    cache = ReadingCache(clock, ttl=2.0, timeout=5.0)
    engine = Engine(cache, clock, factory)
    try:
        cfg = engine.config(REF, meta)
        tick = await engine.answer(REF, cfg, polled=False)
        assert tick.decision.desired == 3  # what a poll would be answered now
        assert engine._job_pulses == {}  # but nothing started
        clock.advance(60)
        tick = await engine.answer(REF, cfg, polled=False)
        assert tick.decision.desired == 3
        poll = await engine.answer(REF, cfg)  # the poll starts the pulse and sees it
        assert poll.decision.desired == 3 and poll.decision.active
        clock.advance(40)
        assert (await engine.answer(REF, cfg, polled=False)).decision.desired == 3  # in the hold
        clock.advance(10)  # the hold (45 s) has ended: stream ticks and polls agree
        tick = await engine.answer(REF, cfg, polled=False)
        assert tick.decision.desired == 0 and tick.forecast is not None
        assert tick.forecast.jobs_next_in == pytest.approx(3 * 180 - 50)
        assert (await engine.answer(REF, cfg)).decision.desired == 0
        # Ticks all through the period move nothing: the next pulse is the poll's, at 540 s.
        for _ in range(48):
            clock.advance(10)
            await engine.answer(REF, cfg, polled=False)
        assert clock.monotonic() - 100.0 == pytest.approx(590.0)
        assert (await engine.answer(REF, cfg)).decision.desired == 0
        clock.advance(10)
        assert (await engine.answer(REF, cfg)).decision.desired == 3
    finally:
        await engine.close()
        cache.close()


class _Context:
    async def abort(self, code: object, details: str) -> None:
        raise AssertionError(f"aborted: {code} {details}")


async def test_the_server_stream_tick_does_not_start_a_pulse(
    factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The servicer's StreamIsActive evaluates with polled=False: a tick at t=0 leaves
    the pulse to KEDA's poll (GetMetrics) at t=60."""
    meta = job_metadata(180)
    clock = clock_at(12.0)
    cache = ReadingCache(clock, ttl=2.0, timeout=5.0)
    engine = Engine(cache, clock, factory)
    svc = ExternalScalerServicer(engine, Metrics(), 1.0, Shutdown())
    request = pb.ScaledObjectRef(name=REF.name, namespace=REF.namespace, scalerMetadata=meta)

    async def no_pause(self: Shutdown, seconds: float) -> None:
        await asyncio.sleep(0)

    monkeypatch.setattr(Shutdown, "pause", no_pause)
    try:
        stream = svc.StreamIsActive(request, _Context())
        assert isinstance(stream, AsyncGenerator)
        first = await anext(stream)
        assert first.result is True  # a poll now would be asked for the Jobs
        await stream.aclose()
        assert engine._job_pulses == {}
        clock.advance(60)
        metric_name = engine.config(REF, meta).metric_name
        reply = await svc.GetMetrics(
            pb.GetMetricsRequest(scaledObjectRef=request, metricName=metric_name),
            _Context(),
        )
        assert reply.metricValues[0].metricValueFloat == 3
        assert len(engine._job_pulses) == 1
    finally:
        await engine.close()
        cache.close()
