"""The capacity-aware queue term (replicaThroughput known): hand-computed cases,
when it applies and when the plain term stays, activation unchanged; its hold of a
burst's rate (burst_level, RateHistory, held_rate) with explicit times."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scaler.config import TriggerConfig, parse_trigger
from scaler.policy import (
    HOLD_BUCKET_S,
    HOLD_BUCKETS,
    RATE_SAMPLE_S,
    RECURRING_HOLD_S,
    RateAverage,
    RateHistory,
    Signals,
    burst_level,
    capacity_queue_term,
    decide,
    hold_window,
    is_quiet,
    queue_term,
    recurring_hold_window,
    sampled_rate,
    smoothed_rate,
)
from scaler.signals.base import QueueReading

SQS = {"source": "sqs", "queueURL": "https://sqs.us-east-1.amazonaws.com/1/q", "queueLength": "4"}


def cfg(**extra: str) -> TriggerConfig:
    return parse_trigger({**SQS, "replicaThroughput": "1.5", **extra})


@pytest.mark.parametrize(
    ("waiting", "in_flight", "rate", "cold_start", "replicas"),
    [
        # steady load, no backlog: 30 req/s at 1.5 req/s per replica = 20 replicas
        # (the plain term asks for the 60 in flight / 4 = 15 busy ones: no headroom)
        (0, 60, 30.0, 300, 20.0),
        # a burst: 4500 waiting during a 300 s cold start. Plain: (4500 + 20) / 4 = 1130
        # replicas. Capacity: serving max(20 / 4, 27 / 1.5) = 18; the 5 busy replicas
        # serve 7.5/s, so 19.5/s pile up for 300 s: backlog 4500 + 5850 = 10350,
        # drained over 300 s at 1.5/s per replica = 23 -> 41
        (4500, 20, 27.0, 300, 41.0),
        # waking from zero: 225 waiting, 3/s, nothing in flight: capacity 2 + (225 + 3 * 300)
        # / (1.5 * 300) = 4.5, but nothing consumes, so the plain term: 225 / 4 = 56.25
        (225, 0, 3.0, 300, 56.25),
        # one replica consuming (4 in flight): not waking. serving max(1, 2) = 2; the busy
        # replica serves 1.5/s, 1.5/s pile up for 300 s: (225 + 450) / (1.5 * 300) = 1.5 -> 3.5
        (225, 4, 3.0, 300, 3.5),
        # in flight beyond what the rate needs (a rate just dropped): the busy replicas
        # 40 / 4 = 10 stay (they serve 15/s > 3/s: nothing piles up); + 300 / (1.5 * 100) = 2 -> 12
        (300, 40, 3.0, 100, 12.0),
        # nothing at all: scale to zero
        (0, 0, 0.0, 300, 0.0),
        # a rate of 0 and a backlog behind 4 in flight: serving 1; 90 / (1.5 * 60) = 1 -> 2
        (90, 4, 0.0, 60, 2.0),
        # the same while waking (nothing in flight): the plain term, 90 / 4 = 22.5
        (90, 0, 0.0, 60, 22.5),
    ],
)
def test_capacity_term_hand_computed(
    waiting: float, in_flight: float, rate: float, cold_start: float, replicas: float
) -> None:
    term = capacity_queue_term(QueueReading(waiting=waiting, in_flight=in_flight), cfg(), rate, cold_start)
    assert term.name == "queue"
    assert term.replicas == pytest.approx(replicas)
    assert "capacity" in term.reason and "plain" in term.reason


def test_decide_uses_it_only_with_a_rate_and_a_cold_start() -> None:
    reading = QueueReading(waiting=4500, in_flight=20)
    plain = queue_term(reading, cfg()).replicas
    assert plain == pytest.approx(1130)
    # no measured rate (e.g. SQS without arrivalQuery): the plain term
    assert decide(Signals(queue=reading), cfg(), 0.0).desired == pytest.approx(plain)
    fused = decide(Signals(queue=reading, arrival_rate=27.0, cold_start=300.0), cfg(), 0.0)
    assert fused.winner == "queue" and fused.desired == pytest.approx(41.0) and fused.replicas == 41


def test_without_replica_throughput_or_in_job_mode_the_plain_term_stays() -> None:
    reading = QueueReading(waiting=4500, in_flight=20)
    signals = Signals(queue=reading, arrival_rate=27.0, cold_start=300.0)
    no_throughput = parse_trigger(SQS)
    assert decide(signals, no_throughput, 0.0).desired == pytest.approx(1130)
    job = cfg(mode="job")
    assert decide(signals, job, 0.0).desired == pytest.approx(4500 / 4)


def test_activation_and_keep_alive_are_the_plain_terms() -> None:
    # an empty queue with a rate reading is not woken by the queue term
    idle = decide(
        Signals(queue=QueueReading(waiting=0, in_flight=0), arrival_rate=0.2, cold_start=300.0), cfg(), 0
    )
    assert idle.active is False
    # in-flight work keeps the pool active even at activationQueueLength
    busy = decide(
        Signals(queue=QueueReading(waiting=0, in_flight=3), arrival_rate=0.0, cold_start=300.0),
        cfg(activationQueueLength="5"),
        0.0,
    )
    assert busy.active is True and busy.desired == pytest.approx(3 / 4)


def test_drain_seconds_paces_the_backlog_not_the_rate() -> None:
    # The docs' burst: 4500 waiting, 20 in flight, 27/s, cold start 300 s. Backlog at
    # Ready 4500 + 19.5 * 300 = 10350; drainSeconds 60: 10350 / (1.5 * 60) = 115,
    # + serving 18 = 133 (over the cold start it was 18 + 23 = 41).
    reading = QueueReading(waiting=4500, in_flight=20)
    term = capacity_queue_term(reading, cfg(drainSeconds="60"), 27.0, 300.0)
    assert term.replicas == pytest.approx(133.0)
    assert "drained over drainSeconds 60s" in term.reason
    # no backlog: drainSeconds changes nothing (the rate's replicas only)
    steady = capacity_queue_term(QueueReading(waiting=0, in_flight=60), cfg(drainSeconds="60"), 30.0, 300.0)
    assert steady.replicas == pytest.approx(20.0)
    # default: over the cold start in use
    assert "drained over the cold start" in capacity_queue_term(reading, cfg(), 27.0, 300.0).reason


def test_waking_asks_at_least_the_plain_term_and_says_so() -> None:
    # nothing in flight and messages waiting: no replica consumes; the plain term wins
    waking = capacity_queue_term(QueueReading(waiting=225, in_flight=0), cfg(), 3.0, 300.0)
    assert waking.replicas == pytest.approx(225 / 4) and "waking" in waking.reason
    # a source that cannot tell in-flight messages (None) is not taken for a wake
    unknown = capacity_queue_term(QueueReading(waiting=225, in_flight=None), cfg(), 3.0, 300.0)
    assert unknown.replicas == pytest.approx(4.5) and "waking" not in unknown.reason
    # the capacity term above the plain one stays (a tiny backlog at a high rate)
    small = capacity_queue_term(QueueReading(waiting=1, in_flight=0), cfg(), 30.0, 300.0)
    assert small.replicas == pytest.approx(20 + (1 + 30 * 300) / (1.5 * 300))
    assert "waking" not in small.reason


def test_delayed_messages_are_backlog_with_scale_on_delayed() -> None:
    # 100 delayed, 4 in flight, 3/s, cold start 300 s. Without scaleOnDelayed they are
    # not work: serving max(1, 2) = 2, nothing waits: 2 (the plain term 4 / 4 = 1).
    reading = QueueReading(waiting=0, in_flight=4, delayed=100)
    assert capacity_queue_term(reading, cfg(), 3.0, 300.0).replicas == pytest.approx(2.0)
    # With it they are work to come, as in the plain term (104 / 4 = 26): drained over the
    # cold start, 2 + 100 / (1.5 * 300); none waits, so the pool is not short: no growth.
    delayed = capacity_queue_term(reading, cfg(scaleOnDelayed="true"), 3.0, 300.0)
    assert delayed.replicas == pytest.approx(2 + 100 / 450)
    assert "0 waiting + 100 delayed" in delayed.reason
    # Only delayed messages and nothing in flight: a wake, the plain term (100 / 4).
    idle = QueueReading(waiting=0, in_flight=0, delayed=100)
    waking = capacity_queue_term(idle, cfg(scaleOnDelayed="true"), 3.0, 300.0)
    assert waking.replicas == pytest.approx(25.0) and "waking" in waking.reason
    assert waking.active
    assert capacity_queue_term(idle, cfg(), 3.0, 300.0).replicas == pytest.approx(2.0)


def test_a_backlog_from_quiet_asks_the_plain_term_for_one_cold_start() -> None:
    # minReplicaCount 1 after silence: one replica consumes (4 in flight), 225 waiting,
    # 3/s, cold start 300 s. The capacity term asks 3.5 (see the hand-computed cases);
    # the queue was quiet 120 s ago, so the work came from silence: the plain term,
    # (225 + 4) / 4 = 57.25, as stock KEDA asks.
    reading = QueueReading(waiting=225, in_flight=4)
    waking = capacity_queue_term(reading, cfg(), 3.0, 300.0, since_quiet=120.0)
    assert waking.replicas == pytest.approx(229 / 4)
    assert "waking (quiet 120s ago): the plain term" in waking.reason
    # a cold start after the quiet, the capacity term sizes the pool again
    later = capacity_queue_term(reading, cfg(), 3.0, 300.0, since_quiet=300.0)
    assert later.replicas == pytest.approx(3.5) and "waking" not in later.reason
    # never seen quiet: the capacity term
    assert capacity_queue_term(reading, cfg(), 3.0, 300.0, since_quiet=None).replicas == pytest.approx(3.5)
    # nothing waiting: no wake, whenever the quiet was (the rate's replicas only)
    steady = capacity_queue_term(QueueReading(waiting=0, in_flight=4), cfg(), 3.0, 300.0, since_quiet=10.0)
    assert steady.replicas == pytest.approx(2.0) and "waking" not in steady.reason
    # the window is the cold start in use: drainSeconds paces the drain, not the wake
    paced = capacity_queue_term(reading, cfg(drainSeconds="60"), 3.0, 300.0, since_quiet=120.0)
    assert paced.replicas == pytest.approx(229 / 4) and "waking" in paced.reason


def test_decide_passes_since_quiet_to_the_capacity_term() -> None:
    reading = QueueReading(waiting=225, in_flight=4)
    quiet = Signals(queue=reading, arrival_rate=3.0, cold_start=300.0, since_quiet=60.0)
    assert decide(quiet, cfg(), 0.0).desired == pytest.approx(229 / 4)
    busy = Signals(queue=reading, arrival_rate=3.0, cold_start=300.0)
    assert decide(busy, cfg(), 0.0).desired == pytest.approx(3.5)


@pytest.mark.parametrize(
    ("waiting", "in_flight", "rate", "quiet"),
    [
        (0, 0, 0.0, True),
        (0, 0, 0.9 / 60, True),  # under one request a minute
        (0, 0, 1.0 / 60, False),  # a busy queue's gap: its average rate is still up
        (1, 0, 0.0, False),  # a message waits
        (0, 1, 0.0, False),  # one in flight
        (0, None, 0.0, False),  # in-flight work unknown (AMQP): could hide a busy pool
    ],
)
def test_is_quiet(waiting: float, in_flight: float | None, rate: float, quiet: bool) -> None:
    assert is_quiet(QueueReading(waiting=waiting, in_flight=in_flight), rate) is quiet


MINUTE_5S = 1 - math.exp(-5 / 60)  # the minute's weight for a reading 5 s after the last
UNKNOWN = RateAverage(10.0, 4.0, 4.0, 0.0, 0.0)  # one reading so far: no noise known


@pytest.mark.parametrize(
    ("previous", "read_at", "rate", "expected"),
    [
        (None, 10.0, 4.0, (10.0, 4.0)),  # the first reading as it is
        (UNKNOWN, 10.0, 9.0, (10.0, 4.0)),  # the same reading again: unchanged
        # the noise not known yet (less than a minute of it): the minute
        (UNKNOWN, 15.0, 6.0, (15.0, 4.0 + MINUTE_5S * 2.0)),
        (UNKNOWN, 15.0, 0.0, (15.0, 4.0 * math.exp(-5 / 60))),
        (UNKNOWN, 40.0, -3.0, (40.0, 4.0 * math.exp(-0.5))),  # a negative rate counts as 0
        # a minute later the noise is known: one change of 6 is a variance of 18, r = 0.16^2 / 18,
        # a weight under the minute's: one time constant
        (UNKNOWN, 70.0, 10.0, (70.0, 4.0 + (1 - math.exp(-1.0)) * 6.0)),
        (UNKNOWN, 5.0, 1.0, (5.0, 1.0)),  # an older reading (a clock reset): afresh
        (UNKNOWN, 40.0, math.nan, (10.0, 4.0)),  # not a reading
        # past the forecaster's MAX_RATE: a corrupt sample, not a reading (squared, 1e200
        # would overflow the noise estimate)
        (UNKNOWN, 40.0, 1e200, (10.0, 4.0)),
        (RateAverage(100.0, 4.0, 4.0, 8.0, 1.0), 105.0, 1e200, (100.0, 4.0)),
        # noise known: s^2 = 2 at 10/s, r = (0.04 * 10)^2 / 2 = 0.08, w = 0.16 / 1.08 (about a 31 s
        # time constant at 5 s readings) rather than the minute's 0.080
        (RateAverage(100.0, 10.0, 10.0, 2.0, 1.0), 105.0, 12.0, (105.0, 10.0 + 0.16 / 1.08 * 2.0)),
        # a quiet rate: s^2 = 0.5 at 20/s, r = 0.8^2 / 0.5 = 1.28 >= 1: the reading as it is
        (RateAverage(100.0, 20.0, 20.0, 0.5, 1.0), 105.0, 21.0, (105.0, 21.0)),
        # a noisy rate: s^2 = 8 at 4/s, r = 0.16^2 / 8, 2r / (1 + r) = 0.0064 < the minute's
        (RateAverage(100.0, 4.0, 4.0, 8.0, 1.0), 105.0, 8.0, (105.0, 4.0 + MINUTE_5S * 4.0)),
        # idle (average 0): the minute, whatever the noise
        (RateAverage(100.0, 0.0, 0.0, 0.5, 1.0), 105.0, 3.0, (105.0, MINUTE_5S * 3.0)),
        # no noise at all (the same reading twice): nothing to average out
        (RateAverage(100.0, 5.0, 6.0, 0.0, 1.0), 105.0, 6.0, (105.0, 6.0)),
    ],
)
def test_smoothed_rate_hand_computed(
    previous: RateAverage | None, read_at: float, rate: float, expected: tuple[float, float]
) -> None:
    got = smoothed_rate(previous, read_at, rate)
    assert got.read_at == expected[0] and got.value == pytest.approx(expected[1])


def test_smoothed_rate_learns_the_noise_from_changes_between_readings() -> None:
    # 5 s after the first reading: learn = 1 - e^(-5/600) of half the squared change (2),
    # and that much history covered
    learn = 1 - math.exp(-5 / 600)
    got = smoothed_rate(UNKNOWN, 15.0, 6.0)
    assert got.last == 6.0
    assert got.noise == pytest.approx(learn * 2.0) and got.covered == pytest.approx(learn)
    # a steady ramp (+1/s every 5 s, no noise) reads as a variance of 0.5 per reading, not as
    # the distance from the lagging average: at 20/s, r = 0.8^2 / 0.5 > 1, the average follows
    ramp = RateAverage(100.0, 20.0, 20.0, 0.5, 1.0)
    for step in range(1, 4):
        ramp = smoothed_rate(ramp, 100.0 + 5 * step, 20.0 + step)
    assert ramp.value == pytest.approx(23.0) and ramp.noise == pytest.approx(0.5)


def test_sampled_rate_counts_the_last_reading_of_each_interval() -> None:
    # Readings at 0, 5 and 10 s are one 15 s interval: none is counted yet, and the
    # latest is used as if it were (a first reading: itself).
    state = sampled_rate(None, 0.0, 2.0)
    state = sampled_rate(state, 5.0, 4.0)
    state = sampled_rate(state, 10.0, 6.0)
    assert state.counted is None and state.value == 6.0
    # 16 s is the next interval: 10 s's reading is counted, and 16 s's used on top of it
    # (6 s later: 6 + (1 - e^(-6/60)) * 2, the noise not known yet)
    state = sampled_rate(state, 16.0, 8.0)
    assert state.counted == smoothed_rate(None, 10.0, 6.0)
    assert state.value == pytest.approx(6.0 + (1 - math.exp(-6 / 60)) * 2.0)
    assert sampled_rate(state, 16.0, 9.0) is state  # the same reading again
    assert sampled_rate(state, 17.0, math.nan) is state  # not a reading: the state stands
    assert sampled_rate(state, 17.0, 1e300) is state
    afresh = sampled_rate(state, 12.0, 3.0)  # older: afresh
    assert afresh == (None, smoothed_rate(None, 12.0, 3.0)) and afresh.value == 3.0
    # a first reading that is not one leaves nothing to count, and the next starts
    nothing = sampled_rate(None, 0.0, math.inf)
    assert nothing.counted is None and nothing.value == 0.0
    started = sampled_rate(nothing, 1.0, 3.0)
    assert started == (None, smoothed_rate(None, 1.0, 3.0)) and started.value == 3.0


@given(
    rates=st.lists(st.floats(0.0, 50.0), min_size=120, max_size=120),
    asked=st.sets(st.integers(0, 119), max_size=20),
)
def test_sampled_rate_does_not_depend_on_how_often_it_is_asked(rates: list[float], asked: set[int]) -> None:
    # One reading a second for two minutes, against only the last second of each
    # interval and the seconds asked: at each second asked, the same rate.
    every, sparse = None, None
    for second, rate in enumerate(rates):
        every = sampled_rate(every, float(second), rate)
        if second in asked or second % RATE_SAMPLE_S == RATE_SAMPLE_S - 1:
            sparse = sampled_rate(sparse, float(second), rate)
        if second in asked:
            assert sparse is not None and every.value == sparse.value


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


def test_bursts_that_came_back_are_held_only_once_they_have() -> None:
    # 180 buckets (1800 s): the level is the 18th highest. One burst of 20 buckets at
    # 30/s rose once: held with rises=1, not with 2.
    once = [1.0] * 60 + [30.0] * 20 + [0.0] * 100
    assert burst_level(once) == 30.0
    assert burst_level(once, rises=2) == 0.0
    # two bursts of 10 buckets, the rate under a quarter between them: it came back
    twice = [1.0] * 60 + [30.0] * 10 + [2.0] * 50 + [30.0] * 10 + [0.0] * 50
    assert burst_level(twice, rises=2) == 30.0
    # a dip to a third between them is one burst, not two
    dip = [1.0] * 60 + [30.0] * 10 + [10.0] * 50 + [30.0] * 10 + [0.0] * 50
    assert burst_level(dip) == 30.0 and burst_level(dip, rises=2) == 0.0
    # a burst that comes back lower: the level of the tenth is the lower one, and both
    # rose to it
    uneven = [0.0] * 60 + [40.0] * 9 + [0.0] * 50 + [20.0] * 9 + [0.0] * 52
    assert burst_level(uneven, rises=2) == 20.0
    # a steady rate never rose: nothing, however many times asked
    assert burst_level([10.0 + (-1.0) ** i for i in range(180)], rises=2) == 0.0


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


@given(
    st.lists(
        st.tuples(st.floats(min_value=0, max_value=400), st.floats(min_value=0, max_value=1e3)),
        min_size=1,
        max_size=300,
    ),
    st.floats(min_value=0, max_value=5000),
    st.floats(min_value=10, max_value=7200),
)
def test_the_window_is_each_buckets_highest_reading_else_the_last_rate(
    readings: list[tuple[float, float]], later: float, window: float
) -> None:
    # RateHistory.rates slices its ring; this is the bucket-by-bucket definition, with
    # no ring: each bucket's highest reading, a bucket without one the rate read before.
    history = RateHistory()
    peaks: dict[int, float] = {}
    last_rate = 0.0
    at = 0.0
    for gap, rate in readings:
        at += gap
        history.feed(at, rate)
        bucket = math.floor(at / HOLD_BUCKET_S)
        if peaks and bucket > max(peaks):
            for skipped in range(max(peaks) + 1, bucket):
                peaks[skipped] = last_rate
        peaks[bucket] = max(peaks.get(bucket, rate), rate)
        last_rate = rate
    first, last = min(peaks), max(peaks)
    now = math.floor((at + later) / HOLD_BUCKET_S)
    span = min(HOLD_BUCKETS, max(1, math.ceil(window / HOLD_BUCKET_S)))
    start = max(first, now - span + 1, last - HOLD_BUCKETS + 1)
    expected = [peaks[b] if b <= last else last_rate for b in range(start, now + 1)]
    assert history.rates(at + later, window) == expected


def test_a_level_found_is_kept_only_until_a_reading_changes_the_history() -> None:
    # Levels are kept per (bucket, window, rises) between readings; a reading in the
    # same bucket that raises it must be seen at once.
    history = RateHistory()
    history.feed(0.0, 1.0)
    history.feed(10.0, 1.0)
    assert history.held(12.0, 20.0) == 0.0  # 1/s then 1/s: no rise
    history.feed(11.0, 1.0)  # the same rate again: nothing changes
    assert history.held(12.0, 20.0) == 0.0
    history.feed(12.0, 30.0)  # the same bucket, now at 30/s: it rose from 1/s
    assert history.held(12.0, 20.0) == 30.0
    assert history.held(12.0, 20.0, rises=2) == 0.0


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


def test_bursts_that_came_back_are_held_for_half_an_hour_only_with_hold_seconds_unset() -> None:
    assert recurring_hold_window(cfg(), 120.0) == RECURRING_HOLD_S == 1800.0
    # a cold start of half an hour or more: its own hold is as long
    assert recurring_hold_window(cfg(), 1800.0) == 0.0
    assert recurring_hold_window(cfg(), 3600.0) == 0.0
    # holdSeconds set (0 included) is the whole hold
    assert recurring_hold_window(cfg(holdSeconds="120"), 120.0) == 0.0
    assert recurring_hold_window(cfg(holdSeconds="0"), 120.0) == 0.0


def test_the_reason_says_the_bursts_came_back_when_that_hold_wins() -> None:
    reading = QueueReading(waiting=0, in_flight=0)
    term = capacity_queue_term(reading, cfg(), 0.3, 120.0, held_rate=27.0, held_window=1800.0)
    assert term.replicas == pytest.approx(18.0)
    assert "27/s held (bursts that came back in the last 1800s; now 0.3/s)" in term.reason
    # the hold window itself: the bursts' rate, as before
    term = capacity_queue_term(reading, cfg(), 0.3, 120.0, held_rate=27.0, held_window=120.0)
    assert "27/s held (the bursts' rate in the last 120s; now 0.3/s)" in term.reason


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
