"""The capacity term's hold (policy.burst_level, RateHistory, held_rate):
hand-computed cases with explicit times."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scaler.config import TriggerConfig, parse_trigger
from scaler.policy import (
    HOLD_BUCKET_S,
    HOLD_BUCKETS,
    RateHistory,
    Signals,
    burst_level,
    capacity_queue_term,
    decide,
    hold_window,
)
from scaler.signals.base import QueueReading

SQS = {"source": "sqs", "queueURL": "https://sqs.us-east-1.amazonaws.com/1/q", "queueLength": "4"}


def cfg(**extra: str) -> TriggerConfig:
    return parse_trigger({**SQS, "replicaThroughput": "1.5", **extra})


# --- burst_level: one rate per 10 s bucket, oldest first ------------------------------


def test_bursts_from_a_low_rate_are_held_at_the_level_of_a_tenth_of_the_window() -> None:
    # 60 buckets (600 s): the level is the 6th highest. Six buckets at 30/s rose from
    # 1/s (under a quarter of 30): held, now that the rate is back to 1/s.
    rates = [1.0] * 20 + [30.0] * 6 + [1.0] * 34
    assert burst_level(rates) == 30.0
    # five buckets are under a tenth: the level is 1/s, which never rose from under 0.25
    assert burst_level([1.0] * 20 + [30.0] * 5 + [1.0] * 35) == 0.0
    # two bursts of three buckets make the tenth together
    assert burst_level([1.0] * 10 + [30.0] * 3 + [0.0] * 20 + [30.0] * 3 + [0.0] * 24) == 30.0


def test_a_rate_that_falls_or_a_steady_one_is_not_held() -> None:
    # a steady 30/s that stops: no rise in the window, so nothing is held (the HPA's
    # scale-down window releases its replicas as it did)
    assert burst_level([30.0] * 20 + [0.0] * 40) == 0.0
    # a rate falling through the evening
    assert burst_level([30.0 - 0.4 * i for i in range(60)]) == 0.0
    # a noisy steady rate: never under a quarter of its level
    assert burst_level([10.0 + (-1.0) ** i for i in range(60)]) == 0.0
    # a rise from under a quarter counts; from a third it does not
    assert burst_level([7.0] * 54 + [30.0] * 6) == 30.0
    assert burst_level([10.0] * 54 + [30.0] * 6) == 0.0
    assert burst_level([]) == 0.0


def test_a_ramp_from_zero_holds_nothing_above_the_rate_it_reaches() -> None:
    # a wake from nothing rises too, but the level held is then the rate itself
    # (held_rate only matters where it exceeds the current rate)
    rates = [0.0] * 10 + [float(i) for i in range(1, 21)] + [20.0] * 30
    assert burst_level(rates) == 20.0


# --- RateHistory: the buckets ----------------------------------------------------------


def test_nothing_fed_holds_nothing() -> None:
    assert RateHistory().rates(100.0, 600.0) == []
    assert RateHistory().held(100.0, 600.0) == 0.0


def test_a_bucket_keeps_its_highest_reading_and_one_without_readings_the_last() -> None:
    history = RateHistory()
    history.feed(0.0, 5.0)
    history.feed(3.0, 9.0)  # the same bucket: its highest, 9
    history.feed(7.0, 2.0)
    # no reading for 100 s: the buckets between hold the last rate read (2), which
    # stood until the next reading
    history.feed(107.0, 1.0)
    assert history.rates(107.0, 110.0) == [9.0] + [2.0] * 9 + [1.0]
    # a shorter window: its last buckets
    assert history.rates(107.0, 30.0) == [2.0, 2.0, 1.0]
    # asked later with no new reading: the last rate stood
    assert history.rates(137.0, 30.0) == [1.0, 1.0, 1.0]


def test_only_the_buckets_since_the_first_reading_count() -> None:
    history = RateHistory()
    history.feed(1000.0, 4.0)
    history.feed(1010.0, 1.0)
    assert history.rates(1010.0, 600.0) == [4.0, 1.0]


def test_an_older_reading_or_a_non_finite_rate_changes_nothing() -> None:
    history = RateHistory()
    history.feed(100.0, 2.0)
    history.feed(50.0, 50.0)
    history.feed(101.0, float("nan"))
    history.feed(float("inf"), 50.0)
    assert history.rates(100.0, 600.0) == [2.0]


def test_the_ring_covers_the_longest_window_and_no_more() -> None:
    history = RateHistory()
    history.feed(0.0, 100.0)
    for i in range(1, HOLD_BUCKETS + 5):
        history.feed(i * HOLD_BUCKET_S, 1.0)
    # the 100/s bucket fell out of the ring
    assert history.rates((HOLD_BUCKETS + 4) * HOLD_BUCKET_S, 7200.0) == [1.0] * HOLD_BUCKETS


def test_held_is_the_burst_level_of_the_window() -> None:
    # readings every 10 s: background 1/s, a two-minute burst at 30/s, then a gap
    history = RateHistory()
    for i in range(60):
        history.feed(i * 10.0, 30.0 if 20 <= i < 32 else 1.0 if i < 20 else 0.0)
    assert history.held(590.0, 600.0) == 30.0
    # the burst has left a 120 s window: nothing rose there
    assert history.held(590.0, 120.0) == 0.0
    assert history.held(590.0, 0.0) == 0.0


# --- the capacity term -----------------------------------------------------------------


def test_hold_window_is_hold_seconds_else_the_cold_start() -> None:
    assert hold_window(cfg(), 300.0) == 300.0
    assert hold_window(cfg(holdSeconds="900"), 300.0) == 900.0
    assert hold_window(cfg(holdSeconds="0"), 300.0) == 0.0


def test_the_capacity_term_serves_the_held_rate_in_a_gap() -> None:
    # a gap after bursts: nothing waiting or in flight, the averaged rate down to
    # 0.3/s, the bursts' rate 27/s: serving 27 / 1.5 = 18 replicas, not 0.2
    reading = QueueReading(waiting=0, in_flight=0)
    term = capacity_queue_term(reading, cfg(), 0.3, 600.0, held_rate=27.0)
    assert term.replicas == pytest.approx(18.0)
    assert "27/s held (the bursts' rate in the last 600s; now 0.3/s)" in term.reason
    # activation is the plain term's: nothing waiting or in flight is inactive, so
    # KEDA's cooldown still scales an idle workload to zero
    assert term.active is False
    # a held rate under the current one changes nothing, and says nothing
    steady = capacity_queue_term(QueueReading(waiting=0, in_flight=60), cfg(), 30.0, 300.0, held_rate=20.0)
    assert steady.replicas == pytest.approx(20.0) and "held" not in steady.reason
    # the backlog's growth is the current rate's, not the held one: 20 busy replicas'
    # worth in flight (80 / 4) serve 30/s, more than the 3/s arriving
    burst = capacity_queue_term(QueueReading(waiting=300, in_flight=80), cfg(), 3.0, 300.0, held_rate=15.0)
    assert burst.replicas == pytest.approx(20.0 + 300 / (1.5 * 300))


def test_decide_passes_the_held_rate_to_the_capacity_term() -> None:
    signals = Signals(
        queue=QueueReading(waiting=0, in_flight=4), arrival_rate=1.5, cold_start=600.0, held_rate=15.0
    )
    decision = decide(signals, cfg(), 0.0)
    assert decision.desired == pytest.approx(10.0) and decision.active is True


@given(st.lists(st.floats(min_value=0, max_value=1e6, allow_nan=False), max_size=400))
def test_the_burst_level_is_one_of_the_rates_or_nothing_and_never_held_by_a_fall(rates: list[float]) -> None:
    level = burst_level(rates)
    assert level == 0.0 or level in rates
    assert level <= max(rates, default=0.0)
    # the same rates in falling order never rose: nothing is held
    assert burst_level(sorted(rates, reverse=True)) == 0.0


@given(
    st.lists(
        st.tuples(st.floats(min_value=0, max_value=1e5), st.floats(min_value=0, max_value=1e3)), max_size=200
    ),
    st.floats(min_value=10, max_value=3600),
)
def test_a_history_holds_no_more_than_it_was_fed(readings: list[tuple[float, float]], window: float) -> None:
    history = RateHistory()
    at = 0.0
    for gap, rate in readings:
        at += gap
        history.feed(at, rate)
    rates = history.rates(at, window)
    assert len(rates) <= min(HOLD_BUCKETS, -(-window // HOLD_BUCKET_S))
    assert all(rate in {r for _, r in readings} for rate in rates)
    assert history.held(at, window) <= max((r for _, r in readings), default=0.0)
