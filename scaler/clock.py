"""Time, injected: the engine and the policy never read a global clock, so the
simulator can drive them on a simulated one."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (ages, TTLs)."""
        ...

    def wall(self) -> float:
        """Unix time in seconds (timestamps shown to people)."""
        ...


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()


class ManualClock:
    """A clock that moves only when told to (tests and the simulator)."""

    def __init__(self, start: float = 0.0, wall_offset: float = 1_700_000_000.0) -> None:
        self.now = start
        self._wall_offset = wall_offset

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return self.now + self._wall_offset

    def advance(self, seconds: float) -> None:
        self.now += seconds


class ScaledClock:
    """A clock running `speed` times faster than the system's, from `start`
    (its monotonic reading) and `start_wall` (its Unix time) at creation.

    `make demo` shares one between the server (cache TTLs, the forecast's time
    of day), the simulated fleet and KEDA's emulated loops, so minutes of
    workload time pass in wall seconds with every period at its real length."""

    def __init__(
        self, speed: float, start: float = 0.0, start_wall: float = 0.0, paused: bool = False
    ) -> None:
        if speed <= 0:
            raise ValueError("speed must be > 0")
        self.speed = speed
        self._start = start
        self._start_wall = start_wall
        self._origin: float | None = None if paused else time.monotonic()

    def resume(self) -> None:
        """Start a paused clock: it reads `start` until then (while things are set up)."""
        if self._origin is None:
            self._origin = time.monotonic()

    def _elapsed(self) -> float:
        return 0.0 if self._origin is None else (time.monotonic() - self._origin) * self.speed

    def monotonic(self) -> float:
        return self._start + self._elapsed()

    def wall(self) -> float:
        return self._start_wall + self._elapsed()

    def real_seconds(self, seconds: float) -> float:
        """How many system seconds `seconds` on this clock take."""
        return seconds / self.speed
