"""The demo's pure parts: its pods' accounting (draining pods billed until their
work is done, as the simulator bills them) and its arrivalQuery source (the
warm start's history never reaches past the clock). Costs well under a second."""

from __future__ import annotations

import numpy as np
import pytest

from scaler.clock import ManualClock
from scaler.demo import TRACE_EPOCH, Pods, TraceArrivals, main


def test_a_pod_scaled_in_while_working_is_billed_until_its_last_message_is_done() -> None:
    pods = Pods(concurrency=2, cold_start_s=10.0)
    pods.set_replicas(2, now=0.0)
    assert pods.ready(10.0) == 2
    pods.assign("a", sent=10.0, now=10.0, service_s=20.0)
    pods.assign("b", sent=10.0, now=10.0, service_s=20.0)  # one on each pod (in turn)
    pods.set_replicas(1, now=12.0)
    assert pods.replicas == 1 and len(pods.draining) == 1
    assert pods.billed == 2  # the draining pod still holds its GPU
    assert pods.finished(29.0) == [] and pods.billed == 2
    assert sorted(pods.finished(30.0)) == ["a", "b"]
    assert pods.draining == [] and pods.billed == 1


def test_an_idle_pod_scaled_in_is_not_billed() -> None:
    pods = Pods(concurrency=2, cold_start_s=10.0)
    pods.set_replicas(3, now=0.0)
    pods.assign("a", sent=11.0, now=11.0, service_s=20.0)
    pods.set_replicas(1, now=12.0)  # the newest go first; the one holding "a" is the oldest
    assert pods.replicas == 1 and pods.draining == [] and pods.billed == 1
    assert pods.finished(31.0) == ["a"]


def test_pods_not_ready_are_deleted_before_ready_ones() -> None:
    pods = Pods(concurrency=1, cold_start_s=10.0)
    pods.set_replicas(1, now=0.0)
    pods.set_replicas(2, now=20.0)  # starting until 30
    pods.assign("a", sent=21.0, now=21.0, service_s=5.0)
    pods.set_replicas(1, now=22.0)
    assert pods.starting(22.0) == 0 and pods.ready(22.0) == 1 and pods.draining == []
    assert pods.finished(26.0) == ["a"]


def test_a_message_starts_when_its_slot_could_have_received_it() -> None:
    pods = Pods(concurrency=1, cold_start_s=10.0)
    pods.set_replicas(1, now=0.0)
    # Sent before the pod was Ready, received later: it starts at Ready (10), not at receipt.
    assert pods.assign("a", sent=5.0, now=13.0, service_s=20.0) == 10.0
    assert pods.free_slots(13.0) == 0
    assert pods.finished(30.0) == ["a"]
    # Sent while the slot was busy, received after the demo loop's delay: it starts when
    # the slot fell free (30), so the loop's latency is charged to nobody.
    assert pods.assign("b", sent=25.0, now=33.0, service_s=20.0) == 30.0


def test_arrivals_read_the_last_minute_and_history_stops_at_now() -> None:
    counts = np.zeros(600)
    counts[100:160] = 2.0  # 2 messages a second for a minute
    clock = ManualClock(start=0.0, wall_offset=TRACE_EPOCH)
    source = TraceArrivals(counts, clock, gaps=((300.0, 360.0),))
    clock.now = 160.0
    assert source.read().rate == 2.0
    clock.now = 400.0
    points = source.history(TRACE_EPOCH, TRACE_EPOCH + 10_000, 60.0)
    times = [int(wall - TRACE_EPOCH) for wall, _ in points]
    # None past now (400); none whose minute touches the gap [300, 360).
    assert times == [60, 120, 180, 240, 300]
    rates = dict(zip(times, (rate for _, rate in points), strict=True))
    assert rates == {60: 0.0, 120: 40 / 60, 180: 80 / 60, 240: 0.0, 300: 0.0}


@pytest.mark.parametrize(
    ("flag", "value", "expected"),
    [
        ("--duration", "4", "a whole number >= 5"),
        ("--speed", "inf", "a number > 0"),  # crashed with OverflowError
        ("--cold-start", "-1", "a number >= 0"),
        ("--start", "-5", "a whole number >= 0"),
    ],
)
def test_bad_flags_are_refused_naming_the_flag(
    flag: str, value: str, expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([flag, value])
    assert exit_info.value.code == 2
    assert f"argument {flag}: expected {expected}, got {value!r}" in capsys.readouterr().err
