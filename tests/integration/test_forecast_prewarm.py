"""Pre-warm end to end: the real gRPC server warm-starts its forecast from a real
Prometheus holding eight days of backfilled arrivals (promtool), for an empty queue
on the real RabbitMQ.

Two workloads with the same daily ramp: one whose daily start is two minutes from
now (within the 300 s cold start: woken now, before its first message), one whose
start is four hours away (left asleep). `forecast: off` and `advisory` never wake.
Costs about 5 s (promtool, Prometheus start, one 7-day range query per series).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator

import pytest
import requests
from conftest import CALL_TIMEOUT, RabbitQueue, ScalerHandle
from prometheus_client.parser import text_string_to_metric_families
from prometheus_fixture import GpuExporter, PrometheusServer, gpu_exporter, start_prometheus

from scaler import explain

__all__ = ["gpu_exporter"]  # the fixture, used through prometheus_with_history

DAY = 86_400
METRIC = "prewarm_e2e_requests_per_second"
ONSETS = {"soon": 120, "later": 4 * 3600}  # seconds from now to each workload's daily start


def daily_ramp(seconds_since_onset: float) -> float:
    """Requests/s a given time after the day's start: up to 2/s over two hours,
    level for six, down over two, then nothing until the next day's start."""
    t = seconds_since_onset % DAY / 3600
    if t < 2:
        return t
    if t < 8:
        return 2.0
    if t < 10:
        return 10 - t
    return 0.0


def history(now: float) -> str:
    """Eight days of both workloads' arrival rate, one sample a minute, up to now."""
    start = int(now) - 8 * DAY
    start -= start % 60
    lines = [f"# HELP {METRIC} Requests per second into the workload.", f"# TYPE {METRIC} gauge"]
    for name, offset in ONSETS.items():
        onset = now + offset
        for stamp in range(start, int(now) - 30, 60):
            lines.append(f'{METRIC}{{workload="{name}"}} {daily_ramp(stamp - onset):.6f} {stamp}')
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def prometheus_with_history(gpu_exporter: GpuExporter) -> Iterator[PrometheusServer]:
    server = start_prometheus(gpu_exporter, openmetrics=history(time.time()))
    yield server
    server.stop()


@pytest.fixture
async def scaler(start_scaler: Callable[..., Awaitable[ScalerHandle]]) -> ScalerHandle:
    # The warm start is one 7-day range query, bounded by the source timeout: FAST_SETTINGS'
    # 1 s is too tight on a busy CI machine (the forecast would start cold, and rightly
    # not wake anything), so this module's scaler allows 5 s, the production default.
    return await start_scaler(source_timeout=5.0)


def metadata(
    rabbit: RabbitQueue, prometheus: PrometheusServer, workload: str, **extra: str
) -> dict[str, str]:
    return rabbit.metadata(
        "amqp",
        prometheusServerAddress=prometheus.url,
        arrivalQuery=f'{METRIC}{{workload="{workload}"}}',
        coldStartSeconds="300",
        **extra,
    )


async def test_history_is_backfilled(prometheus_with_history: PrometheusServer) -> None:
    answer = prometheus_with_history.query(f"count_over_time({METRIC}[8d])")
    counts = sorted(float(r["value"][1]) for r in answer["data"]["result"])
    assert len(counts) == 2 and counts[0] > 7 * 1440  # both series, over a week of minutes


async def test_daily_start_within_the_cold_start_wakes_an_empty_queue(
    scaler: ScalerHandle, rabbit: RabbitQueue, prometheus_with_history: PrometheusServer
) -> None:
    meta = metadata(rabbit, prometheus_with_history, "soon")
    started = time.monotonic()
    active = await scaler.stub.IsActive(scaler.ref(meta), timeout=CALL_TIMEOUT)
    assert active.result is True  # the queue is empty: only the forecast can say so
    assert time.monotonic() - started < FAST_SETTINGS_TIMEOUT_BOUND
    value = await scaler.metric(meta)
    assert value.metricValueFloat == pytest.approx(1.0)  # no replicaThroughput: wake one replica
    assert rabbit.counts()[0] == 0  # nothing was consumed, nothing was published
    gauges = metrics(scaler)
    labels = {"namespace": "default", "name": "worker"}
    assert gauges[("prewarm_forecast_state", (*labels.values(), "ready"))] == 1
    assert gauges[("prewarm_forecast_used", tuple(labels.values()))] == 1
    assert gauges[("prewarm_term_winner", (*labels.values(), "forecast"))] == 1


async def test_stream_pushes_active_for_the_pre_warm(
    scaler: ScalerHandle, rabbit: RabbitQueue, prometheus_with_history: PrometheusServer
) -> None:
    """external-push: the first message on the stream is already `true`, queue empty."""
    stream = scaler.stub.StreamIsActive(scaler.ref(metadata(rabbit, prometheus_with_history, "soon")))
    try:
        first = await asyncio.wait_for(stream.read(), 10)
        assert first.result is True
    finally:
        stream.cancel()


async def test_daily_start_hours_away_stays_asleep(
    scaler: ScalerHandle, rabbit: RabbitQueue, prometheus_with_history: PrometheusServer
) -> None:
    meta = metadata(rabbit, prometheus_with_history, "later")
    active = await scaler.stub.IsActive(scaler.ref(meta), timeout=CALL_TIMEOUT)
    assert active.result is False
    gauges = metrics(scaler)
    assert gauges[("prewarm_forecast_state", ("default", "worker", "ready"))] == 1  # warm, and says no


@pytest.mark.parametrize("mode", ["off", "advisory"])
async def test_off_and_advisory_never_wake(
    start_scaler: Callable[..., Awaitable[ScalerHandle]],
    rabbit: RabbitQueue,
    prometheus_with_history: PrometheusServer,
    mode: str,
) -> None:
    scaler = await start_scaler(source_timeout=5.0)
    meta = metadata(rabbit, prometheus_with_history, "soon", forecast=mode)
    active = await scaler.stub.IsActive(scaler.ref(meta), timeout=CALL_TIMEOUT)
    assert active.result is False
    gauges = metrics(scaler)
    if mode == "advisory":  # computed and shown, never used
        assert gauges[("prewarm_forecast_floor", ("default", "worker"))] == 1
        assert gauges[("prewarm_forecast_used", ("default", "worker"))] == 0
    else:
        assert not any(name.startswith("prewarm_forecast") for name, _ in gauges)


# The warm start is bounded by the source timeout (5 s here), plus the reads.
FAST_SETTINGS_TIMEOUT_BOUND = 10.0


def metrics(scaler: ScalerHandle) -> dict[tuple[str, tuple[str, ...]], float]:
    """The scaler's /metrics: (name, (namespace, object[, state or term])) -> value."""
    text = requests.get(f"http://127.0.0.1:{scaler.server.metrics_port}/metrics", timeout=5).text
    found: dict[tuple[str, tuple[str, ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            extra = labels.get("state") or labels.get("term")
            key = (labels.get("namespace", ""), labels.get("name", ""), *([extra] if extra else []))
            found[(sample.name, key)] = sample.value
    return found


def test_explain_shows_the_warm_started_forecast(
    rabbit: RabbitQueue, prometheus_with_history: PrometheusServer
) -> None:
    """`prewarm explain` warm-starts like a restarted server, and says why it wakes."""
    manifest = {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": "worker", "namespace": "default"},
        "spec": {
            "scaleTargetRef": {"name": "worker"},
            "triggers": [{"type": "external", "metadata": metadata(rabbit, prometheus_with_history, "soon")}],
        },
    }
    report = explain.run(manifest, trigger=None, environ={}, timeout=5.0)
    assert report["ok"] and report["winner"] == "forecast"
    assert report["forecast"]["state"] == "ready" and report["forecast"]["used"]
    assert report["forecast"]["warm_start"].startswith("loaded ")
    text = explain.format_text(report)
    assert "Forecast (auto): ready: error" in text
    assert "cold start in use: 300s (from coldStartSeconds)" in text
