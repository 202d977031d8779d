"""Demand series: one Forecaster per series, shared by the triggers that read it.

The engine keys a series by what it is read from (the arrival query's source
key, or the queue's key plus how the rate is derived), feeds it one observation
per new reading (not per call: a hundred objects polling one queue must not
count its arrivals a hundred times), and asks it for an outlook. Pure: no I/O,
times passed in. Bounded: at most `limit` series (least recently used dropped),
and series no trigger has asked about for `idle_after` seconds are dropped.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field
from enum import StrEnum

from scaler.forecast.model import Forecaster, Tuning
from scaler.signals.base import QueueReading

# Warm start: one range query of this much history at this step (7 days at 60 s
# is 10,080 points, under Prometheus's 11,000-point limit per query).
WARM_START_SPAN = 7 * 86_400.0
WARM_START_STEP = 60.0
WARM_START_RETRY = 300.0  # seconds before a failed warm start is tried again


class DemandKind(StrEnum):
    ARRIVAL = "arrivalQuery"  # the user's own request rate
    PUBLISH = "publish rate"  # RabbitMQ's management API
    INFERRED = "inferred from the queue"  # growth of the queue: a lower bound


@dataclass
class DemandSeries:
    kind: DemandKind
    model: Forecaster = field(default_factory=Forecaster)
    last_read_at: float | None = None  # monotonic time of the reading last fed
    last_used: float = 0.0
    # Inferred series: the previous queue total and its (monotonic) read_at.
    previous_total: float | None = None
    previous_read_at: float | None = None
    # Warm start (arrival series): None = not tried; else what happened.
    warm_start: str | None = None
    warm_loaded: bool = False
    warm_retry_at: float = -math.inf  # monotonic; no attempt before
    warming: bool = False

    def feed(self, read_at: float, wall: float, rate: float) -> bool:
        """Observe `rate` if this reading was not fed yet. True when fed. `wall` is
        the wall time the reading was taken at (not the time it is fed)."""
        if self.last_read_at is not None and read_at <= self.last_read_at:
            return False
        self.last_read_at = read_at
        self.model.observe(wall, rate)
        return True

    def feed_queue(self, read_at: float, wall: float, queue: QueueReading) -> bool:
        """Inferred arrivals: the growth of everything in the queue since the
        last reading, per second. Arrivals consumed between two readings are not
        seen, so this is a lower bound of the real rate.

        The growth is timed by the readings' own monotonic times (`read_at`, which
        only grows from one reading fed to the next), never by when they are fed
        nor by the wall clock: a reading first used late, or a wall clock stepped
        back between two readings, neither stretches, shrinks nor drops a growth.
        `wall` (the reading's wall time) only places it in the day."""
        if self.last_read_at is not None and read_at <= self.last_read_at:
            return False
        self.last_read_at = read_at
        total = queue.waiting + (queue.in_flight or 0.0) + queue.delayed
        previous, previous_at = self.previous_total, self.previous_read_at
        self.previous_total, self.previous_read_at = total, read_at
        if previous is None or previous_at is None or read_at <= previous_at:
            return False
        self.model.observe(wall, max(0.0, total - previous) / (read_at - previous_at))
        return True


class DemandStore:
    def __init__(self, limit: int = 4096, idle_after: float = 3600.0, tuning: Tuning | None = None) -> None:
        self._limit = limit
        self._idle_after = idle_after
        self.tuning = tuning  # the models' constants (None: the defaults)
        self._series: OrderedDict[str, DemandSeries] = OrderedDict()

    def get(self, key: str, kind: DemandKind, now: float) -> DemandSeries:
        series = self._series.get(key)
        if series is None or series.kind is not kind:
            series = self._series[key] = DemandSeries(kind=kind, model=Forecaster(self.tuning))
            if len(self._series) > self._limit:
                self._series.popitem(last=False)
        else:
            self._series.move_to_end(key)
        series.last_used = now
        return series

    def evict_idle(self, now: float) -> int:
        stale = [k for k, s in self._series.items() if now - s.last_used > self._idle_after and not s.warming]
        for key in stale:
            del self._series[key]
        return len(stale)

    def __len__(self) -> int:
        return len(self._series)
