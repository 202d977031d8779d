"""The forecaster on synthetic series with known answers (pure: time passed in)."""

from __future__ import annotations

import math
import random

import pytest

from scaler.forecast.model import DAY, STEP, Forecaster, ForecastState, Tuning

T0 = 1_700_006_400.0  # a midnight UTC (1_700_006_400 % 86_400 == 0)


def daily(wall: float) -> float:
    """Busy from 08:00 to 20:00 UTC (a smooth hump peaking at 14:00 at 10/s), zero at night."""
    hour = (wall % DAY) / 3600
    if 8 <= hour <= 20:
        return 10.0 * math.sin(math.pi * (hour - 8) / 12)
    return 0.0


def feed(model: Forecaster, start: float, end: float, rate=daily, every: float = STEP) -> None:
    wall = start
    while wall < end:
        model.observe(wall + every / 2, rate(wall + every / 2))
        wall += every


def test_cold_until_a_day_then_recovers_the_daily_pattern() -> None:
    model = Forecaster()
    feed(model, T0, T0 + 2 * 3600)
    outlook = model.outlook(T0 + 2 * 3600, 300)
    assert outlook.state is ForecastState.COLD
    assert outlook.reason == "cold: 2.0 h of history (needs 24 h)"
    feed(model, T0 + 2 * 3600, T0 + 4 * DAY)
    # Noon on day 5, predicted from the morning: within 10 % of the true rate.
    feed(model, T0 + 4 * DAY, T0 + 4 * DAY + 10 * 3600)
    now = T0 + 4 * DAY + 10 * 3600
    for ahead in (300, 1800, 3600):
        assert model.predict(now, ahead) == pytest.approx(daily(now + ahead), rel=0.1)
    outlook = model.outlook(now, 300)
    assert outlook.state is ForecastState.READY, outlook.reason
    assert outlook.upper >= outlook.peak >= outlook.rate > 0


def test_night_predicts_nothing_and_the_morning_is_seen_a_cold_start_ahead() -> None:
    model = Forecaster()
    feed(model, T0, T0 + 5 * DAY + 3 * 3600)  # up to 03:00
    night = model.outlook(T0 + 5 * DAY + 3 * 3600, 300)
    assert night.expected_arrivals < 1
    feed(model, T0 + 5 * DAY + 3 * 3600, T0 + 5 * DAY + 7.9 * 3600)  # up to 07:54, still zero
    assert daily(T0 + 5 * DAY + 7.9 * 3600) == 0
    morning = model.outlook(T0 + 5 * DAY + 7.9 * 3600, 600)  # demand starts at 08:00, within L
    assert morning.expected_arrivals >= 1


def test_step_change_is_followed() -> None:
    model = Forecaster()
    feed(model, T0, T0 + 3600, rate=lambda w: 2.0)
    feed(model, T0 + 3600, T0 + 3900, rate=lambda w: 8.0)
    assert model.predict(T0 + 3900, 60) == pytest.approx(8.0, rel=0.05)


def test_long_zero_stretch_and_bad_values() -> None:
    model = Forecaster()
    feed(model, T0, T0 + 2 * DAY, rate=lambda w: 0.0)
    for bad in (math.nan, math.inf, -1.0):
        model.observe(T0 + 2 * DAY + 1, bad)
    assert model.ignored == 3
    outlook = model.outlook(T0 + 2 * DAY + 60, 300)
    assert outlook.rate == 0 and outlook.expected_arrivals == 0
    assert outlook.state is not ForecastState.GATED  # zero error on both sides is not worse than naive


def test_gaps_are_missing_data_not_zeros() -> None:
    model = Forecaster()
    feed(model, T0, T0 + 2 * DAY, rate=lambda w: 5.0)
    # Six hours without any observation, then the same level again.
    feed(model, T0 + 2 * DAY + 6 * 3600, T0 + 2 * DAY + 6 * 3600 + 600, rate=lambda w: 5.0)
    assert model.predict(T0 + 2 * DAY + 6 * 3600 + 600, 300) == pytest.approx(5.0, rel=0.05)


def test_clock_jump_back_is_ignored_briefly_and_reanchors_when_large() -> None:
    model = Forecaster()
    feed(model, T0, T0 + DAY, rate=lambda w: 3.0)
    ignored = model.ignored
    model.observe(T0 + DAY - 90, 100.0)  # a minute and a half back: a late reading, ignored
    assert model.ignored == ignored + 1
    model.observe(T0 + DAY - 5 * 3600, 3.0)  # five hours back: the clock moved, start again from here
    assert model.ignored == ignored + 1
    feed(model, T0 + DAY - 5 * 3600 + 60, T0 + DAY - 4 * 3600, rate=lambda w: 3.0)
    assert model.predict(T0 + DAY - 4 * 3600, 300) == pytest.approx(3.0, rel=0.05)
    # Forward jumps are gaps: no error, the forecast goes on.
    model.observe(T0 + 10 * DAY, 3.0)
    model.outlook(T0 + 10 * DAY + 120, 300)


def test_restart_from_the_same_history_agrees() -> None:
    first, second = Forecaster(), Forecaster()
    feed(first, T0, T0 + 3 * DAY)
    feed(second, T0, T0 + 3 * DAY)
    a, b = first.outlook(T0 + 3 * DAY + 60, 300), second.outlook(T0 + 3 * DAY + 60, 300)
    assert a == b


def test_gated_when_worse_than_naive() -> None:
    """A series that alternates at random each minute around a daily pattern the
    model believes in, then flips: the pattern is wrong, and the gate closes."""
    model = Forecaster()
    feed(model, T0, T0 + 3 * DAY)
    # From day 4 on, the hump moves by twelve hours: the profile is now wrong.
    feed(model, T0 + 3 * DAY, T0 + 3 * DAY + 10 * 3600, rate=lambda w: daily(w + DAY / 2))
    outlook = model.outlook(T0 + 3 * DAY + 10 * 3600, 600)
    assert outlook.state is ForecastState.GATED, outlook.reason
    assert outlook.reason.startswith("gated: error ") and outlook.reason.endswith("x naive")
    assert outlook.error_ratio is not None and outlook.error_ratio > 1


def test_memory_is_bounded() -> None:
    model = Forecaster()
    feed(model, T0, T0 + 3 * DAY)
    sizes = [len(getattr(model, name)) for name in ("_daily", "_weekly", "_pending_f", "_residuals")]
    feed(model, T0 + 3 * DAY, T0 + 6 * DAY)
    assert sizes == [len(getattr(model, name)) for name in ("_daily", "_weekly", "_pending_f", "_residuals")]


def burst_at_10_32(wall: float) -> float:
    """2/s all day, 20/s for the three minutes from 10:32 UTC (a daily batch sender)."""
    minute = (wall % DAY) / 60
    return 20.0 if 10 * 60 + 32 <= minute < 10 * 60 + 35 else 2.0


def test_a_daily_burst_is_in_the_upper_rate_one_cold_start_ahead() -> None:
    model = Forecaster()
    feed(model, T0, T0 + 3 * DAY + 10 * 3600 + 29 * 60, rate=burst_at_10_32)  # up to 10:29 on day 4
    now = T0 + 3 * DAY + 10 * 3600 + 29 * 60
    # The hourly profile smooths the burst away: the point forecast stays near 2/s...
    ahead = model.outlook(now, 300)  # the window 10:29 - 10:34 holds the burst's minutes
    assert ahead.peak < 5
    # ...the recurring peak keeps it (every past day had 20/s at 10:32), and raises the upper rate.
    assert ahead.recurring == pytest.approx(20.0)
    assert ahead.upper >= 20.0
    # The window must reach the burst's minute: 10:29 + 120 s ends at 10:31.
    assert model.outlook(now, 120).recurring == pytest.approx(2.0)
    # A window touching the minute of now + L counts it: 10:29 + 180 s = 10:32:00.
    assert model.outlook(now, 180).recurring == pytest.approx(20.0)


def test_the_recurring_peak_is_an_average_over_days_and_needs_the_daily_profile() -> None:
    model = Forecaster()
    feed(model, T0, T0 + 10 * 3600 + 29 * 60, rate=burst_at_10_32)  # day 1, before its burst
    assert model.outlook(T0 + 10 * 3600 + 29 * 60, 300).recurring == 0.0  # cold: not used
    feed(model, T0 + 10 * 3600 + 29 * 60, T0 + 2 * DAY + 10 * 3600, rate=burst_at_10_32)
    # From now on the burst stops coming: each day weighs 20 %, so it fades (20 -> 16.4 after a day).
    feed(model, T0 + 2 * DAY + 10 * 3600, T0 + 3 * DAY + 10 * 3600 + 29 * 60, rate=lambda w: 2.0)
    faded = model.outlook(T0 + 3 * DAY + 10 * 3600 + 29 * 60, 300)
    assert faded.recurring == pytest.approx(20.0 + 0.2 * (2.0 - 20.0), rel=1e-6)
    # A burst that came every day until it stopped: the envelope did no better than the average.
    assert not faded.recurring_envelope


def burst_every_other_day(wall: float) -> float:
    """The 10:32 burst on even days only (a sender that does not run every day)."""
    return burst_at_10_32(wall) if int((wall - T0) // DAY) % 2 == 0 else 2.0


def test_a_burst_on_some_days_only_is_kept_at_its_height_by_the_envelope() -> None:
    model = Forecaster()
    now = T0 + 6 * DAY + 10 * 3600 + 29 * 60  # 10:29 on day 6; bursts came on days 0, 2 and 4
    feed(model, T0, now, rate=burst_every_other_day)
    # The average over days holds part of the burst; the envelope of recent days' highest
    # minutes holds it faded by 15 % for the day it skipped. At the default quantile 0.9 a
    # missed burst weighs 9 times an idle replica, and the envelope scored better: it is used.
    upper = model.outlook(now, 300, quantile=0.9)
    assert upper.recurring_envelope
    assert upper.recurring == pytest.approx(2.0 + 0.85 * 18.0, rel=1e-6)
    assert upper.upper >= upper.recurring
    # At the median, over- and under-estimates weigh the same, and the average wins.
    median = model.outlook(now, 300, quantile=0.5)
    assert not median.recurring_envelope
    assert 2.0 < median.recurring < upper.recurring
    # The benchmark's seam forces either estimate, whatever the score.
    for estimate, envelope in (("average", False), ("envelope", True)):
        forced = Forecaster(Tuning(recurring_estimate=estimate))
        feed(forced, T0, now, rate=burst_every_other_day)
        for quantile in (0.5, 0.9):
            assert forced.outlook(now, 300, quantile=quantile).recurring_envelope is envelope


def test_bursts_at_random_minutes_keep_the_average() -> None:
    rng = random.Random(7)
    # Ten 3-minute bursts a day, each day at new random minutes.
    starts = {day: [rng.randrange(0, 1437) for _ in range(10)] for day in range(8)}

    def random_bursts(wall: float) -> float:
        day, minute = int((wall - T0) // DAY), int((wall % DAY) // 60)
        return 20.0 if any(s <= minute < s + 3 for s in starts[day]) else 2.0

    model = Forecaster()
    feed(model, T0, T0 + 7 * DAY, rate=random_bursts)
    # The envelope would pre-warm every minute a burst ever came at; it scored worse up to
    # the default quantile. (At 0.97, a miss weighs 32 idle replicas and the two about tie.)
    for quantile in (0.5, 0.75, 0.9):
        assert not model.outlook(T0 + 7 * DAY, 300, quantile=quantile).recurring_envelope


@pytest.mark.parametrize("every", [120.0, 240.0])
def test_readings_minutes_apart_are_scored_and_the_forecast_gets_ready(every: float) -> None:
    # A workload at zero is read when KEDA polls it: with pollingInterval 120 the
    # 1, 3 and 5-minute forecasts never met a reading in their exact target minute,
    # and at the default 300 s cold start the forecast stayed cold for good.
    model = Forecaster()
    feed(model, T0, T0 + 4 * DAY, every=every)
    now = T0 + 4 * DAY + 12 * 3600
    feed(model, T0 + 4 * DAY, now, every=every)
    outlook = model.outlook(now, 300)
    assert outlook.state is ForecastState.READY, outlook.reason
    assert outlook.error_ratio is not None and outlook.error_ratio < 1


def test_a_reading_past_any_real_rate_is_ignored_and_corrupts_nothing() -> None:
    model = Forecaster()
    feed(model, T0, T0 + 3 * DAY)
    for bad in (1e308, 1e308, 1e39, 2e7):
        model.observe(T0 + 3 * DAY + 3 * 3600 + 30, bad)  # 03:00, when nothing arrives
    assert model.ignored == 4
    feed(model, T0 + 3 * DAY + 3 * 3600 + 60, T0 + 5 * DAY + 2.9 * 3600)
    night = model.outlook(T0 + 5 * DAY + 2.9 * 3600, 300)  # the next 03:00, two days on
    assert all(math.isfinite(x) for x in (night.rate, night.upper, night.recurring))
    assert night.upper < 1  # no floor held up by the bad minute
    feed(model, T0 + 5 * DAY + 2.9 * 3600, T0 + 5 * DAY + 12 * 3600 - 600)
    noon = model.outlook(T0 + 5 * DAY + 12 * 3600 - 600, 600)
    assert noon.state is ForecastState.READY, noon.reason  # not NaN, not gated for good
    assert noon.rate == pytest.approx(daily(T0 + 12 * 3600 - 300), rel=0.2)


def test_the_gate_judges_the_model_with_its_profile_afresh() -> None:
    # The first day's model (level and trend only) is usually worse than naive, so
    # the gate closes on day 1; it must not stay closed for the model with its
    # profile, whose first ratios are scored from zero.
    model = Forecaster()
    rng = random.Random(28)
    level, wall = 5.0, T0 + 30
    seen_day_one_gated = False
    while not model._daily_ready:
        level = max(0.0, level + rng.gauss(0, 0.3))
        hour = (wall % DAY) / 3600
        model.observe(wall, level + 2 * math.sin(2 * math.pi * hour / 24) + 2 + rng.gauss(0, 0.5))
        seen_day_one_gated |= model.gated[2] == 1  # HORIZONS[2] = 300 s
        wall += STEP
    assert seen_day_one_gated
    assert model.gated[2] == 0


@pytest.mark.parametrize("cold_start", [10.0, 30.0])
def test_arrivals_are_expected_within_a_cold_start_shorter_than_a_minute(cold_start: float) -> None:
    model = Forecaster()
    feed(model, T0, T0 + 3 * DAY, rate=lambda w: 0.05)
    outlook = model.outlook(T0 + 3 * DAY + 60, cold_start)
    assert outlook.rate == pytest.approx(0.05, rel=0.05)
    assert outlook.expected_arrivals == pytest.approx(0.05 * cold_start, rel=0.05)


def test_the_error_ratio_is_finite_when_naive_is_perfect() -> None:
    # A series that goes flat once its profile is in: naive's error is exactly 0.
    model = Forecaster()
    feed(model, T0, T0 + DAY)
    feed(model, T0 + DAY, T0 + DAY + 14 * 3600, rate=lambda w: 0.0)
    outlook = model.outlook(T0 + DAY + 14 * 3600, 300)
    assert outlook.error_ratio is not None and math.isfinite(outlook.error_ratio)
    assert outlook.state is ForecastState.GATED  # still worse than naive
