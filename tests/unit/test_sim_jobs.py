"""ScaledJob emulation: Jobs created per poll by each strategy, with pending Jobs
counted as KEDA counts them, computed by hand for a 5-message burst."""

from __future__ import annotations

import numpy as np
import pytest

from scaler.sim.jobs import JobPolicy, simulate_jobs
from scaler.sim.traces import Trace
from scaler.sim.world import ColdStart, ServiceModel, WorldConfig

# 5 messages during second 0 (KEDA's poll at 0 came first, so it sees them at 30); pods take
# 100 s to Ready (Pending for the first 50 s); work takes 10 s.
BURST = Trace("burst", counts=np.array([5.0] + [0.0] * 299), bin_s=1.0)
CFG = WorldConfig(
    concurrency=1,
    service=ServiceModel("constant", 10.0),
    cold_start=ColdStart("constant", 100),
    drain_tail_s=300,
)


@pytest.mark.parametrize(
    ("strategy", "until_ready", "jobs"),
    [
        # default: maxScale - running. Poll 30: 5; later polls 5 - 5 = 0.
        ("default", False, 5),
        # accurate: maxScale - pending. Poll 30: 5; poll 60: 5 - 5 pending = 0; poll 90: the pods left
        # Pending at 80 (still loading), so 5 - 0 = 5 more; poll 120: the new 5 are Pending: 0.
        ("accurate", False, 10),
        # with pendingPodConditions ["Ready"] a loading pod stays pending: only the first 5.
        ("accurate", True, 5),
        # eager: min(max - running - pending, maxScale) = 5 at polls 30, 60, 90 and 120 (the
        # messages are taken only at 130).
        ("eager", False, 20),
    ],
)
def test_jobs_per_strategy_for_a_burst(strategy: str, until_ready: bool, jobs: int) -> None:
    row = simulate_jobs(BURST, CFG, JobPolicy("p", strategy, prewarm=False, pending_until_ready=until_ready))
    assert row["jobs_created"] == jobs
    assert row["jobs_per_message"] == jobs / 5
    assert row["jobs_without_work"] == jobs - 5
    assert row["unserved"] == 0
    assert row["wait_p50_s"] == pytest.approx(130.0)  # the poll at 30, then a cold start


def test_prewarm_job_mode_goes_through_the_engine_and_matches_keda_without_a_forecast() -> None:
    keda = simulate_jobs(BURST, CFG, JobPolicy("k", "accurate", prewarm=False, pending_until_ready=True))
    ours = simulate_jobs(BURST, CFG, JobPolicy("p", "accurate", prewarm=True, pending_until_ready=True))
    assert ours["jobs_created"] == keda["jobs_created"] == 5


@pytest.mark.parametrize(("strategy", "until_ready"), [("accurate", True), ("eager", False)])
def test_a_job_ready_on_a_polls_second_takes_its_message_before_the_poll(
    strategy: str, until_ready: bool
) -> None:
    """Cold start 120 s: the Jobs created at the poll at 30 are Ready at 150, itself a
    poll. A worker receives within milliseconds of Ready, so KEDA's poll sees the queue
    empty and creates nothing more (before, every Job got a duplicate)."""
    aligned = WorldConfig(
        concurrency=1,
        service=ServiceModel("constant", 10.0),
        cold_start=ColdStart("constant", 120),
        drain_tail_s=300,
    )
    row = simulate_jobs(
        BURST, aligned, JobPolicy("p", strategy, prewarm=False, pending_until_ready=until_ready)
    )
    expected = 5 if until_ready else 20  # eager: 5 at each of the polls 30, 60, 90 and 120, none at 150
    assert row["jobs_created"] == expected
    assert row["jobs_without_work"] == expected - 5
    assert row["wait_p50_s"] == pytest.approx(150.0)


def test_keda_never_creates_more_jobs_than_messages_at_a_queue_length_under_1() -> None:
    """KEDA's maxScale is ceil(5 / 0.5) = 10, but scaleTo, which caps the Jobs it
    creates in a poll, is the metric value itself, 5 (scaledjob/metrics.go): the poll
    at 30 creates 5 Jobs, not 10, and with a 20 s cold start they have taken the 5
    messages before the poll at 60."""
    quick = WorldConfig(
        concurrency=1,
        service=ServiceModel("constant", 10.0),
        cold_start=ColdStart("constant", 20),
        drain_tail_s=300,
    )
    policy = JobPolicy("k", "default", prewarm=False, pending_until_ready=False, queue_length=0.5)
    row = simulate_jobs(BURST, quick, policy)
    assert row["jobs_created"] == 5 and row["jobs_without_work"] == 0
