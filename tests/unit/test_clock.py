"""ScaledClock: the demo's sped-up time (monotonic and wall move together, `speed`
times faster than the system clock; paused until resumed). Costs milliseconds."""

from __future__ import annotations

import pytest

from scaler import clock as clock_module
from scaler.clock import ScaledClock


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


def test_a_scaled_clock_runs_speed_times_faster_from_its_start(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeTime()
    monkeypatch.setattr(clock_module.time, "monotonic", fake.monotonic)
    clock = ScaledClock(60.0, start=500.0, start_wall=1_700_000_500.0)
    assert (clock.monotonic(), clock.wall()) == (500.0, 1_700_000_500.0)
    fake.now += 2.5
    assert (clock.monotonic(), clock.wall()) == (650.0, 1_700_000_650.0)
    assert clock.real_seconds(300.0) == 5.0


def test_a_paused_clock_reads_its_start_until_resumed(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeTime()
    monkeypatch.setattr(clock_module.time, "monotonic", fake.monotonic)
    clock = ScaledClock(10.0, start=7.0, start_wall=107.0, paused=True)
    fake.now += 30.0
    assert (clock.monotonic(), clock.wall()) == (7.0, 107.0)
    clock.resume()
    fake.now += 1.0
    assert (clock.monotonic(), clock.wall()) == (17.0, 117.0)
    clock.resume()  # resuming a running clock changes nothing
    assert clock.monotonic() == 17.0


def test_a_scaled_clock_needs_a_positive_speed() -> None:
    with pytest.raises(ValueError, match="speed"):
        ScaledClock(0.0)
