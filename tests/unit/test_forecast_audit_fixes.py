"""Fixes from an audit of the forecaster (docs/decisions.md, Forecast): the warm start
reads hours with no point as the live read does (0), readings are fed at their own
wall time and the inferred growth is timed by the readings, and a clock stepped back
by minutes re-anchors the model instead of freezing it."""

from __future__ import annotations

from test_engine_forecast import (
    METADATA,
    MIDNIGHT,
    REF,
    Factory,
    Fake,
    clock_at,
    daily,
    evaluate_at,
)

from scaler.clock import ManualClock
from scaler.config import parse_trigger
from scaler.engine import Engine, SignalRead
from scaler.forecast.demand import WARM_START_SPAN, WARM_START_STEP, DemandKind, DemandSeries
from scaler.forecast.model import DAY, STEP, Forecaster, ForecastState
from scaler.signals.base import ArrivalReading, QueueReading
from scaler.signals.cache import ReadingCache


class Recording(Forecaster):
    """A model that records what it is fed."""

    def __init__(self) -> None:
        super().__init__()
        self.fed: list[tuple[float, float]] = []

    def observe(self, wall: float, rate: float) -> None:
        self.fed.append((wall, rate))
        super().observe(wall, rate)


# --- 1. the warm start reads steps with no point as 0 -----------------------------


class AbsentAtZero(Fake):
    """Prometheus's answer for a counter exported by the workload's own pods: no
    series (no point) while the workload is at zero; the live read of that is 0."""

    def __init__(self, key: str, reading: object, retention: float = WARM_START_SPAN) -> None:
        super().__init__(key, reading)
        self.retention = retention

    def history(self, start: float, end: float, step: float) -> list[tuple[float, float]]:
        self.history_calls += 1
        points = []
        wall = start
        while wall <= end:
            if wall >= end - self.retention and daily(wall) > 0:
                points.append((wall, daily(wall)))
            wall += step
        return points


async def test_hours_with_no_point_do_not_wake_at_night() -> None:
    """Audit finding 1: the nights had no point, took the nearest busy hour's rate in
    the daily profile, and the model woke the workload at night (active, floor 1)."""
    for hour in (1.0, 3.0, 23.0):
        factory = Factory()
        factory.arrival = AbsentAtZero("arrival", ArrivalReading(rate=0.0))
        ev = await evaluate_at(hour, factory, METADATA)
        assert ev.forecast is not None, hour
        assert ev.forecast.floor == 0 and ev.decision.active is False, (hour, ev.forecast)
        assert ev.forecast.rate < 0.05, (hour, ev.forecast)
        assert ev.forecast.warm_start is not None and "read as 0" in ev.forecast.warm_start


async def test_morning_is_still_woken_from_a_history_with_no_points_at_night() -> None:
    factory = Factory()
    factory.arrival = AbsentAtZero("arrival", ArrivalReading(rate=0.0))
    ev = await evaluate_at(6.95, factory, METADATA)  # 06:57, demand from 07:00
    assert ev.forecast is not None and ev.forecast.used, ev.forecast
    assert ev.decision.active is True


async def test_steps_before_the_first_point_stay_unknown() -> None:
    """Retention shorter than the range: the history starts at the first point, not
    with days of zeros before it."""
    factory = Factory()
    factory.arrival = AbsentAtZero("arrival", ArrivalReading(rate=0.0), retention=2 * DAY)
    ev = await evaluate_at(12.0, factory, METADATA)
    assert ev.forecast is not None and ev.forecast.warm_start is not None
    # Two days (the first point, 12:00 two days ago, to now), not seven.
    assert ev.forecast.warm_start.startswith("loaded 2881 points (2.0 d of history;"), ev.forecast.warm_start


def test_absent_steps_as_zero() -> None:
    from scaler.engine import _absent_steps_as_zero

    assert _absent_steps_as_zero([], 1000.0, 60.0) == []
    points = [(120.0, 1.0), (240.0, 2.0)]
    assert _absent_steps_as_zero(points, 400.0, 60.0) == [
        (120.0, 1.0),
        (180.0, 0.0),
        (240.0, 2.0),
        (300.0, 0.0),
        (360.0, 0.0),
    ]
    # A complete grid is left as it is (the simulator's history, Prometheus with every step).
    full = [(float(t), 1.0) for t in range(0, 601, 60)]
    assert _absent_steps_as_zero(full, 600.0, 60.0) is full
    # Bounded by the warm start's span, whatever the times.
    far = _absent_steps_as_zero([(0.0, 1.0)], 1e12, WARM_START_STEP)
    assert len(far) == WARM_START_SPAN / WARM_START_STEP + 1


# --- 2. readings fed at their own wall time; growth timed by the readings ---------


def _sqs_engine() -> tuple[Engine, ManualClock, object]:
    meta = {k: v for k, v in METADATA.items() if k not in ("arrivalQuery", "prometheusServerAddress")}
    clock = ManualClock(start=0.0, wall_offset=MIDNIGHT)
    engine = Engine(ReadingCache(clock, ttl=2.0), clock, Factory())
    return engine, clock, parse_trigger(meta)


def test_inferred_rate_is_timed_by_the_readings_not_their_first_use() -> None:
    """Audit finding 2: a queue growing at exactly 2/s, read every 2 s, each reading
    first used 0 or 1.9 s after it was read: the model learnt 19.8/s for the minute."""
    engine, clock, cfg = _sqs_engine()
    model = Recording()
    series = None
    for k in range(30):
        read_at = 2.0 * k
        late = 1.9 if k % 2 else 0.0
        clock.now = read_at + late
        reading = QueueReading(waiting=2.0 * read_at, in_flight=0)
        reads = (SignalRead("queue", "fake", value=reading, age=late, read_at=read_at),)
        if series is None:
            engine.decide(REF, cfg, reads)  # creates the series; the first reading has no growth
            series = next(iter(engine.demand._series.values()))
            series.model = model
            continue
        engine.decide(REF, cfg, reads)
    assert series is not None and series.kind is DemandKind.INFERRED
    assert len(model.fed) == 29
    assert all(abs(rate - 2.0) < 1e-9 for _, rate in model.fed), model.fed
    # Each at the wall time it was read.
    assert [wall for wall, _ in model.fed] == [MIDNIGHT + 2.0 * k for k in range(1, 30)]


async def test_arrival_reading_is_fed_at_the_wall_time_it_was_read() -> None:
    engine, clock, cfg = _sqs_engine()
    cfg = parse_trigger(METADATA)
    model = Recording()
    engine.demand.get(Factory().arrival.key, DemandKind.ARRIVAL, 0.0).model = model
    clock.now = 100.0
    reads = (SignalRead("arrival", "fake", value=ArrivalReading(rate=3.0), age=40.0, read_at=60.0),)
    engine.decide(REF, cfg, reads)
    assert model.fed == [(MIDNIGHT + 60.0, 3.0)]


def test_growth_across_a_wall_clock_step_back_is_kept() -> None:
    """The wall clock stepped back between two readings: the growth was dropped
    (wall <= previous wall); it is timed by the readings' monotonic times."""
    model = Recording()
    series = DemandSeries(DemandKind.INFERRED, model=model)
    assert series.feed_queue(10.0, MIDNIGHT + 1000.0, QueueReading(waiting=0, in_flight=0)) is False
    assert series.feed_queue(12.0, MIDNIGHT + 990.0, QueueReading(waiting=4, in_flight=2)) is True
    assert model.fed == [(MIDNIGHT + 990.0, 3.0)]
    assert series.feed_queue(12.0, MIDNIGHT + 995.0, QueueReading(waiting=9, in_flight=0)) is False  # fed


# --- 3. a clock stepped back by minutes re-anchors --------------------------------


def _steady_then_burst() -> tuple[Forecaster, float]:
    model = Forecaster()
    t0 = MIDNIGHT
    for i in range(int(3 * DAY // 30)):
        model.observe(t0 + i * 30, 1.0)  # a steady 1/s for 3 days
    t = t0 + 3 * DAY
    model.observe(t, 50.0)  # one minute at 50/s
    model.observe(t + 30, 50.0)
    model.observe(t + 60, 1.0)  # the next minute opens: the burst's minute is closed
    return model, t + 90


def test_clock_back_by_minutes_reanchors_and_the_burst_fades() -> None:
    """Audit finding 3: stepped back 90 minutes, every reading was ignored and the
    burst's deviation served unfaded (50/s) for the 90 minutes."""
    for back in (5 * 60, 90 * 60):
        model, t = _steady_then_burst()
        start = t - back
        for s in range(0, 5 * 60, 30):
            model.observe(start + s, 1.0)
        assert model.ignored == 0, back
        outlook = model.outlook(start + 5 * 60, 300)
        assert outlook.state is ForecastState.READY, (back, outlook)
        assert outlook.rate < 2.0, (back, outlook)


def test_clock_back_reanchor_keeps_answering() -> None:
    """Right after the step back the model still forecasts (not cold for a minute)."""
    model, t = _steady_then_burst()
    model.observe(t - 600, 1.0)
    outlook = model.outlook(t - 600, 300)
    assert outlook.state is ForecastState.READY, outlook
    assert outlook.history >= 3 * DAY


def test_a_reading_a_minute_or_two_late_is_still_ignored() -> None:
    model, t = _steady_then_burst()
    model.observe(t - STEP, 100.0)  # the previous minute (closed): late, ignored
    model.observe(t - 2 * STEP - 20, 100.0)  # two minutes back: late, ignored
    assert model.ignored == 2
    outlook = model.outlook(t, 300)
    assert outlook.rate < 60.0


async def test_clock_back_in_the_engine_feeds_the_readings() -> None:
    """A server whose wall clock steps back 30 minutes keeps feeding its arrival series."""
    factory = Factory()
    factory.arrival = AbsentAtZero("arrival", ArrivalReading(rate=2.0))
    clock = clock_at(12.0)
    engine = Engine(ReadingCache(clock, ttl=2.0, timeout=5.0), clock, factory)
    try:
        await engine.evaluate(REF, METADATA)
        series = engine.demand.get(factory.arrival.key, DemandKind.ARRIVAL, clock.monotonic())
        ignored = series.model.ignored
        clock._wall_offset -= 1800  # the wall clock steps back half an hour
        for _ in range(20):
            clock.advance(15.0)
            await engine.evaluate(REF, METADATA)
        assert series.model.ignored == ignored
    finally:
        await engine.close()
