"""The forecast's gauges and the 'decision changed' log when the forecast wins."""

from __future__ import annotations

import dataclasses
import logging

import pytest
from test_observability import CFG, A, evaluation, labels

from scaler.clock import ManualClock
from scaler.config import ForecastMode
from scaler.engine import Evaluation, ForecastView
from scaler.forecast.demand import DemandKind
from scaler.forecast.model import ForecastState
from scaler.observability import DecisionRecorder, Metrics
from scaler.policy import Decision, Signals, Term

VIEW = ForecastView(
    mode=ForecastMode.AUTO,
    demand=DemandKind.ARRIVAL,
    state=ForecastState.READY,
    reason="ready: error 0.90x naive, 7.0 d of history",
    cold_start=240.0,
    cold_start_measured=True,
    rate=1.5,
    upper=2.5,
    expected_arrivals=360.0,
    floor=3.0,
    used=True,
    error_ratio=0.9,
    warm_start="loaded 10080 points (7.0 d of history)",
)


def with_forecast(view: ForecastView | None) -> Evaluation:
    forecast = Term(name="forecast", replicas=3.0, active=True, reason="forecast: 360 arrivals expected")
    queue = Term(name="queue", replicas=0.0, active=False, reason="0 waiting")
    decision = Decision(desired=3.0, active=True, winner="forecast", terms=(queue, forecast))
    return Evaluation(ref=A, config=CFG, signals=Signals(), ages={}, decision=decision, forecast=view)


def value(metrics: Metrics, name: str, **extra: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels(A, **extra))


def test_forecast_gauges_are_set_and_dropped_with_the_forecast(caplog: pytest.LogCaptureFixture) -> None:
    metrics = Metrics()
    recorder = DecisionRecorder(metrics, ManualClock())
    with caplog.at_level(logging.INFO, logger="scaler.decision"):
        recorder(with_forecast(VIEW))
    assert value(metrics, "prewarm_forecast_state", state="ready") == 1
    assert value(metrics, "prewarm_forecast_state", state="gated") == 0
    assert value(metrics, "prewarm_forecast_used") == 1
    assert value(metrics, "prewarm_forecast_rate") == 1.5
    assert value(metrics, "prewarm_forecast_upper_rate") == 2.5
    assert value(metrics, "prewarm_forecast_floor") == 3.0
    assert value(metrics, "prewarm_forecast_error_ratio") == 0.9
    assert value(metrics, "prewarm_cold_start_seconds") == 240
    assert value(metrics, "prewarm_cold_start_measured") == 1
    record = next(r for r in caplog.records if r.getMessage() == "decision changed")
    assert record.__dict__["winner"] == "forecast"
    assert "forecast: 360 arrivals expected" in record.__dict__["reason"]
    assert record.__dict__["forecast"] == "auto, ready: error 0.90x naive, 7.0 d of history"
    # Advisory: computed and shown, not used.
    recorder(with_forecast(dataclasses.replace(VIEW, mode=ForecastMode.ADVISORY, used=False)))
    assert value(metrics, "prewarm_forecast_used") == 0
    assert value(metrics, "prewarm_forecast_floor") == 3.0
    # The trigger no longer has a forecast (forecast: off): its series go.
    recorder(evaluation(A, 1.0))
    assert value(metrics, "prewarm_forecast_state", state="ready") is None
    assert value(metrics, "prewarm_cold_start_seconds") is None


def test_forecast_series_expire_with_the_object() -> None:
    metrics = Metrics()
    clock = ManualClock()
    recorder = DecisionRecorder(metrics, clock, object_ttl=60)
    recorder(with_forecast(VIEW))
    clock.advance(61)
    assert recorder.expire() == 1
    assert value(metrics, "prewarm_forecast_rate") is None
    assert value(metrics, "prewarm_forecast_state", state="ready") is None
