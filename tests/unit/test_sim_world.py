"""The simulated world: pods serve nothing until Ready, FIFO service at the
configured concurrency, and conservation of work (served, waiting or lost)."""

from __future__ import annotations

import numpy as np
import pytest

from scaler.sim.run import Scenario, keda_queue_policy, results, simulate
from scaler.sim.traces import Trace
from scaler.sim.world import ColdStart, ModelError, ServiceModel, World, WorldConfig


def trace_of(counts: list[float], name: str = "t") -> Trace:
    return Trace(name=name, counts=np.asarray(counts, dtype=float), bin_s=1.0)


def test_a_pod_serves_nothing_until_ready() -> None:
    cfg = WorldConfig(
        concurrency=1, service=ServiceModel("constant", 2.0), cold_start=ColdStart("constant", 100)
    )
    world = World(trace_of([5] + [0] * 199), cfg)
    world.set_replicas(1, 0)
    for t in range(world.steps):
        world.step(t)
    starts = world.rec_starts
    assert starts[:100].sum() == 0
    # From t = 100, one slot, 2 s per request: starts at 100, 102, 104, 106, 108.
    assert list(np.flatnonzero(starts)) == [100, 102, 104, 106, 108]
    assert world.rec_pods[0] == 1  # billed from creation


def test_concurrency_and_service_time_set_the_throughput() -> None:
    cfg = WorldConfig(
        concurrency=3, service=ServiceModel("constant", 4.0), cold_start=ColdStart("constant", 0)
    )
    world = World(trace_of([30] + [0] * 99), cfg)
    world.set_replicas(2, -1)
    for t in range(world.steps):
        world.step(t)
    # 6 slots, 4 s each: 6 requests every 4 s, so 30 requests start by t = 16.
    assert world.rec_starts[0] == 6 and world.rec_starts[4] == 6
    assert np.flatnonzero(world.rec_starts)[-1] == 16
    assert world.busy_gpu_seconds() == pytest.approx(30 * 4 / 3)


def _bursty() -> Trace:
    rng = np.random.default_rng(3)
    counts = np.zeros(4 * 3600)
    for start in (600, 4000, 9000):
        counts[start : start + 900] = rng.poisson(6, 900)
    return trace_of(list(counts), "bursty")


@pytest.mark.parametrize("graceful", [True, False])
def test_every_arrival_is_served_waiting_or_lost(graceful: bool) -> None:
    cfg = WorldConfig(
        concurrency=4,
        service=ServiceModel("lognormal", 3.0, 0.6),
        cold_start=ColdStart("uniform", 60, 180),
        graceful_scale_in=graceful,
    )
    scenario = Scenario(_bursty(), cfg, peak_replicas=10)
    run = simulate(scenario, keda_queue_policy(4.0, 0, 100))
    world = run.world
    arrivals = world.arrivals.sum()
    completed = world.completions[: world.steps].sum()
    assert completed + world.in_flight + world.waiting + world.lost == pytest.approx(arrivals, rel=1e-9)
    assert world.rec_starts.sum() == pytest.approx(completed + world.in_flight + world.lost, rel=1e-9)
    assert len(world.replica_changes) > 4  # it scaled up and down around the bursts
    if graceful:
        assert world.lost == 0
    else:
        assert world.lost > 0  # scale-in during a burst's tail killed work
    row = results(scenario, run)
    assert row["lost_work"] == world.lost
    assert row["unserved_share"] == 0  # the drain tail lets everything finish


def requests_trace(times: list[float], service_s: list[float]) -> Trace:
    """A per-request trace with the given arrival and service times."""
    at = np.array(times)
    return Trace(
        "requests",
        counts=np.bincount(at.astype(int), minlength=12).astype(float),
        bin_s=1.0,
        request_times=at,
        service_s=np.array(service_s),
    )


def one_slot_world(trace: Trace) -> World:
    """The trace served to the end by one Ready replica with one slot."""
    cfg = WorldConfig(concurrency=1, service=ServiceModel("trace"), cold_start=ColdStart("constant", 0))
    world = World(trace, cfg)
    world.set_replicas(1, -1)
    for t in range(world.steps):
        world.step(t)
    return world


def test_per_request_service_times_are_whole_requests() -> None:
    world = one_slot_world(requests_trace([0.1, 0.2, 0.3, 5.0], [3.0, 1.0, 2.0, 1.0]))
    # FIFO on one slot: request 0 at 0 (3 s), 1 at 3 (1 s), 2 at 4 (2 s), 3 at 6.
    assert list(np.flatnonzero(world.rec_starts)) == [0, 3, 4, 6]
    assert world.busy_gpu_seconds() == pytest.approx(7.0)


def test_the_floor_counts_the_whole_seconds_the_world_holds_slots_for() -> None:
    # Sub-second requests hold a slot for a whole step: the floor and one replica's
    # rate must count what the world serves (0.3 s -> 1 s, 2.6 s -> 3 s), or every
    # "x floor" figure of a trace of short requests is overstated.
    trace = requests_trace([0.0, 0.1, 0.2, 5.0], [0.3, 0.3, 2.6, 0.4])
    assert ServiceModel("trace").mean(trace) == pytest.approx((1 + 1 + 3 + 1) / 4)
    world = one_slot_world(trace)
    busy_steps = float(world.rec_in_flight.sum())  # one slot: in flight = busy that second
    assert world.busy_gpu_seconds() == pytest.approx(busy_steps) == pytest.approx(6.0)
    # A distribution model: the mean of the rounded steps it completes in.
    lognormal = ServiceModel("lognormal", 2.0, 0.5)
    steps = lognormal.completion_pmf()
    assert lognormal.mean(trace) == pytest.approx(float((np.arange(1, len(steps) + 1) * steps).sum()))
    assert lognormal.mean(trace) == pytest.approx(2.0, abs=0.02)


def test_models_parse_and_reject_bad_text() -> None:
    assert ServiceModel.parse("2.5") == ServiceModel("constant", 2.5)
    assert ServiceModel.parse("lognormal:3:0.4").sigma == 0.4
    assert ColdStart.parse("uniform:60:120") == ColdStart("uniform", 60, 120)
    with pytest.raises(ModelError, match="cold start 'soon'"):
        ColdStart.parse("soon")
    with pytest.raises(ModelError, match="service model 'gamma:2'"):
        ServiceModel.parse("gamma:2")
    assert ServiceModel.parse("tokens:0:0.03").decode_s_per_token == 0.03
    assert ColdStart.parse("0") == ColdStart("constant", 0)


@pytest.mark.parametrize(
    "text",
    # Zero-second requests (no busy time, a division by zero for the floor), negative
    # spreads and non-finite numbers (float() takes them) were accepted.
    [
        "0",
        "constant:0",
        "lognormal:0",
        "lognormal:2:-1",
        "constant:nan",
        "tokens:0:0",
        "tokens:-1:0.03",
        "2:3",
    ],
)
def test_service_models_that_cannot_serve_are_refused(text: str) -> None:
    with pytest.raises(ModelError, match=f"service model '{text}'"):
        ServiceModel.parse(text)


@pytest.mark.parametrize("text", ["inf", "uniform:0:inf", "lognormal:inf:1", "-1", "uniform:5:1"])
def test_cold_starts_that_never_end_or_run_backwards_are_refused(text: str) -> None:
    with pytest.raises(ModelError, match=f"cold start '{text}'"):
        ColdStart.parse(text)
    pmf = ServiceModel("lognormal", 4.0, 0.5).completion_pmf()
    assert pmf.sum() == pytest.approx(1.0)
    assert (np.arange(1, len(pmf) + 1) * pmf).sum() == pytest.approx(4.0, rel=0.05)


def test_queue_waits_are_fifo_from_arrival_to_start() -> None:
    """10 requests in second 0, one Ready slot, 2 s each: request j starts at 2j
    (spread over that second), so waits run from 0 to about 18 s."""
    from scaler.sim.run import static_policy

    cfg = WorldConfig(
        concurrency=1, service=ServiceModel("constant", 2.0), cold_start=ColdStart("constant", 0)
    )
    scenario = Scenario(trace_of([10] + [0] * 59), cfg, peak_replicas=1)
    row = results(scenario, simulate(scenario, static_policy(1)))
    assert row["wait_max_s"] == pytest.approx(18.0, abs=1.0)
    assert row["wait_p50_s"] == pytest.approx(9.0, abs=1.0)
    assert row["slo_violation_share"] == 0.0
    assert row["gpu_hours"] == pytest.approx(60 / 3600)  # one replica for the trace's 60 s
    assert row["floor_gpu_hours"] == pytest.approx(20 / 3600)
