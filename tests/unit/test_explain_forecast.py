"""`explain` shows the forecast: its state, the cold start in use, what it predicts,
whether it is used; a failing forecast read is shown but never fails the report."""

from __future__ import annotations

import dataclasses
import json
import textwrap

from test_observability_forecast import VIEW

from scaler.engine import SignalRead
from scaler.explain import build_report, format_text, load_target, to_json
from scaler.forecast.model import ForecastState, Outlook
from scaler.policy import Signals, decide
from scaler.signals.base import ArrivalReading, QueueReading, SourceError

MANIFEST = textwrap.dedent(
    """\
    apiVersion: keda.sh/v1alpha1
    kind: ScaledObject
    metadata: {name: llm, namespace: ai}
    spec:
      scaleTargetRef: {name: llm}
      minReplicaCount: 0
      triggers:
        - type: external
          metadata:
            scalerAddress: prewarm.keda:6000
            source: sqs
            queueURL: https://sqs.us-east-1.amazonaws.com/1/jobs
            prometheusServerAddress: http://prometheus:9090
            arrivalQuery: sum(rate(http_requests_total{app="llm"}[1m]))
            replicaThroughput: "0.5"
    """
)


def report(view=VIEW, arrival_error: bool = False):  # type: ignore[no-untyped-def]
    target = load_target(MANIFEST, None, {})
    from scaler.config import parse_trigger

    cfg = parse_trigger(target.metadata)
    queue = SignalRead("queue", "sqs queue jobs", value=QueueReading(waiting=0, in_flight=0), age=0.1)
    arrival = (
        SignalRead("arrival", "prometheus", error=SourceError("prometheus: down"), optional=True)
        if arrival_error
        else SignalRead("arrival", "prometheus", value=ArrivalReading(rate=1.2), age=0.1, optional=True)
    )
    signals = Signals(
        queue=QueueReading(waiting=0, in_flight=0),
        forecast_floor=view.floor,
        forecast_reason="forecast: 360 arrivals expected within the 240s cold start",
    )
    decision = decide(signals, cfg, 0.0)
    return build_report(target, cfg, (queue, arrival), decision, forecast=view)


def test_text_and_json_show_the_forecast() -> None:
    rep = report()
    assert rep["ok"] and rep["winner"] == "forecast"
    fc = json.loads(to_json(rep))["forecast"]
    assert fc["state"] == "ready" and fc["used"] is True
    assert fc["cold_start_s"] == 240 and fc["cold_start_from"] == "coldStartQuery"
    assert fc["demand_series"] == "arrivalQuery" and fc["floor"] == 3.0
    text = format_text(rep)
    assert "Forecast (auto): ready: error 0.90x naive, 7.0 d of history; used in the answer" in text
    assert "cold start in use: 240s (from coldStartQuery)" in text
    assert "1.2 requests/s" in text
    assert "forecast: 360 arrivals expected within the 240s cold start" in text


def test_the_recurring_peak_and_where_it_came_from_are_shown() -> None:
    # No recurring peak (the model has none yet): no line, and JSON says 0 from the average.
    fc = json.loads(to_json(report()))["forecast"]
    assert fc["recurring_peak_rate"] == 0.0 and fc["recurring_from"] == "average"
    assert "recurring peak" not in format_text(report())
    outlook = Outlook(
        state=ForecastState.READY,
        reason=VIEW.reason,
        horizon=240.0,
        history=7 * 86_400.0,
        rate=1.5,
        peak=1.8,
        upper=2.5,
        expected_arrivals=360.0,
        error_ratio=0.9,
        recurring=2.5,
        recurring_envelope=True,
    )
    rep = report(dataclasses.replace(VIEW, recurring=2.5, outlook=outlook))
    fc = json.loads(to_json(rep))["forecast"]
    assert fc["recurring_peak_rate"] == 2.5 and fc["recurring_from"] == "recent highest"
    assert "recurring peak: 2.5/s in the window (recent highest of past days at each minute)" in format_text(
        rep
    )


def test_advisory_and_a_failing_arrival_read() -> None:
    rep = report(dataclasses.replace(VIEW, used=False, mode=VIEW.mode.ADVISORY), arrival_error=True)
    assert rep["ok"] is True  # the forecast's read failing never fails the answer
    assert "advisory: shown, never used" in format_text(rep)
    assert any(s["name"] == "arrival" and "error" in s and s["optional"] for s in rep["signals"])


def test_the_capacity_terms_wake_and_drain_are_explained() -> None:
    # The queue term's reason says how it was sized: the drain horizon, and at a wake
    # (messages waiting, none in flight) that it asked what stock KEDA asks.
    from scaler.config import parse_trigger

    target = load_target(MANIFEST, None, {})
    for extra, waiting, in_flight, says in (
        ({}, 300.0, 0.0, "waking (nothing in flight): the plain term, 60"),  # 300 / queueLength 5
        ({"drainSeconds": "60"}, 300.0, 4.0, "drained over drainSeconds 60s"),
    ):
        cfg = parse_trigger({**target.metadata, **extra})
        reading = QueueReading(waiting=waiting, in_flight=in_flight)
        queue = SignalRead("queue", "sqs queue jobs", value=reading, age=0.1)
        arrival = SignalRead("arrival", "prometheus", value=ArrivalReading(rate=1.2), age=0.1, optional=True)
        decision = decide(Signals(queue=reading, arrival_rate=1.2, cold_start=300.0), cfg, 0.0)
        text = format_text(build_report(target, cfg, (queue, arrival), decision))
        assert says in text, text
