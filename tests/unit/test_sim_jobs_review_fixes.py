"""Review fixes to the ScaledJob simulation (scaler/sim/jobs.py), each computed by hand:
F8 a real warm-up (scored_from_s), F9a the worker's idle wait, F9b whole per-bin counts.
Each test fails on the code before its fix."""

from __future__ import annotations

import numpy as np
import pytest

from scaler.sim.jobs import (
    JobPolicy,
    JobWorld,
    prewarm_job_metadata,
    simulate_jobs,
    whole_arrivals,
    worker_idle_wait_s,
)
from scaler.sim.traces import Trace
from scaler.sim.world import ColdStart, ServiceModel, WorldConfig

# Pods take 100 s to Ready (Pending for the first 50 s); work takes 10 s; KEDA polls every 30 s.
CFG = WorldConfig(
    concurrency=1,
    service=ServiceModel("constant", 10.0),
    cold_start=ColdStart("constant", 100),
    drain_tail_s=300,
)
DEFAULT = JobPolicy("p", "default", prewarm=False, pending_until_ready=False)


def two_bursts() -> Trace:
    """5 messages at second 0 and 5 at second 1000. The first are seen at the poll at 30
    (5 Jobs, alive 30..139: Ready at 130, done at 140); the second at the poll at 1020
    (5 Jobs alive 1020..1129): 5 x 110 Job-seconds each, waits 130 s and 120 s."""
    counts = np.zeros(1500)
    counts[0] = counts[1000] = 5
    return Trace("two bursts", counts=counts, bin_s=1.0)


# --- F8: a warm-up ----------------------------------------------------------------------------


def test_the_warm_up_is_history_and_only_what_follows_is_scored_and_billed() -> None:
    whole = simulate_jobs(two_bursts(), CFG, DEFAULT)
    assert (whole["messages"], whole["jobs_created"]) == (10, 10)
    assert whole["gpu_hours"] == pytest.approx(2 * 5 * 110 / 3600)
    row = simulate_jobs(two_bursts(), CFG, DEFAULT, scored_from_s=900)
    assert (row["messages"], row["jobs_created"], row["jobs_without_work"]) == (5, 5, 0)
    assert row["gpu_hours"] == pytest.approx(5 * 110 / 3600)
    assert row["floor_gpu_hours"] == pytest.approx(5 * 10 / 3600)
    assert row["wait_p50_s"] == row["wait_p99_s"] == pytest.approx(120.0)
    assert row["cold_start_waits"] == 5 and row["unserved"] == 0


def test_a_job_alive_across_the_warm_up_is_billed_for_its_seconds_after_it() -> None:
    # The first burst's Jobs live 30..139: from 100 on, 40 s each are billed (the ScaledObject
    # path bills replicas the same way); they were created before 100, so they are not counted.
    row = simulate_jobs(two_bursts(), CFG, DEFAULT, scored_from_s=100)
    assert row["gpu_hours"] == pytest.approx((5 * 40 + 5 * 110) / 3600)
    assert (row["messages"], row["jobs_created"]) == (5, 5)


def test_no_warm_up_is_the_whole_trace_as_before() -> None:
    default = simulate_jobs(two_bursts(), CFG, DEFAULT)
    assert simulate_jobs(two_bursts(), CFG, DEFAULT, scored_from_s=0) == default


# --- F9a: the worker's idle wait --------------------------------------------------------------


def test_a_job_that_finds_no_message_waits_the_idle_wait_given() -> None:
    # accurate without pendingPodConditions: 5 Jobs at the poll at 30 (Ready at 130, done at 140,
    # 5 x 110 s), 5 more at 90 (their pods left Pending at 80); those are Ready at 190, find the
    # queue empty and wait: 5 x (100 + idle wait) s.
    burst = Trace("burst", counts=np.array([5.0] + [0.0] * 299), bin_s=1.0)
    accurate = JobPolicy("p", "accurate", prewarm=False, pending_until_ready=False)
    generic = simulate_jobs(burst, CFG, accurate)
    assert generic["gpu_hours"] == pytest.approx((5 * 110 + 5 * 160) / 3600)  # the generic 60 s
    worker = simulate_jobs(burst, CFG, accurate, idle_wait_s=240)
    assert worker["gpu_hours"] == pytest.approx((5 * 110 + 5 * 340) / 3600)
    assert worker["jobs_without_work"] == generic["jobs_without_work"] == 5


def test_the_workers_idle_wait_is_twice_the_triggers_cold_start_seconds() -> None:
    assert worker_idle_wait_s(dict(prewarm_job_metadata(), coldStartSeconds="120")) == 240.0
    assert worker_idle_wait_s(prewarm_job_metadata()) == 600.0  # coldStartSeconds' default, 300


# --- F9b: a count series replays its counts ---------------------------------------------------


def per_minute(counts: list[float]) -> Trace:
    """A `timestamp_s,count` file as traces.load_trace reads it: each minute spread evenly."""
    return Trace("per minute", counts=np.repeat(np.asarray(counts, dtype=float) / 60, 60), bin_s=60.0)


def test_each_bin_keeps_its_whole_count_at_seconds_inside_it() -> None:
    counts = [3, 0, 5, 1, 2, 7]
    placed = whole_arrivals(per_minute(counts).counts, 60, np.random.default_rng(0))
    assert placed.sum() == sum(counts)
    assert placed.reshape(-1, 60).sum(axis=1).tolist() == counts
    assert np.array_equal(placed, np.floor(placed))
    again = whole_arrivals(per_minute(counts).counts, 60, np.random.default_rng(0))
    assert np.array_equal(placed, again)  # seeded


def test_a_count_trace_runs_as_many_messages_as_it_holds() -> None:
    # 3 a minute for 30 minutes: rounding each second at random gave 88 (the review's 91 vs 90).
    trace = per_minute([3.0] * 30)
    row = simulate_jobs(trace, CFG, DEFAULT)
    assert row["messages"] == 90 == trace.total


def test_a_fractional_bin_rounds_to_a_neighbouring_whole_count_and_a_cut_bin_keeps_to_its_seconds() -> None:
    rng = np.random.default_rng(3)
    for _ in range(20):
        placed = whole_arrivals(np.full(60, 2.5 / 60), 60, rng)  # a rate-scaled bin: 2 or 3
        assert placed.sum() in (2, 3)
    # A slice 30 s into a per-minute file: its bins straddle the file's (2 + 0, 0 + 2,
    # 0 + 3, then 3 in the last 30 s); a second with no rate never gets a message.
    cut = per_minute([0, 4, 0, 6]).counts[30:]
    placed = whole_arrivals(cut, 60, np.random.default_rng(4))
    assert not placed[cut == 0].any()
    assert [placed[a:b].sum() for a, b in ((0, 60), (60, 120), (120, 180), (180, 210))] == [2, 2, 3, 3]


def test_a_per_request_trace_is_replayed_as_it_is() -> None:
    times = np.array([0.0, 0.4, 7.0, 7.2, 7.9, 100.5])
    counts = np.bincount(times.astype(int), minlength=200).astype(float)
    trace = Trace("requests", counts=counts, bin_s=1.0, request_times=times)
    assert np.array_equal(JobWorld(trace, CFG).arrival_times, times)
    assert np.array_equal(JobWorld(trace, CFG).arrivals[:200], counts)
    assert simulate_jobs(trace, CFG, DEFAULT)["messages"] == len(times)
