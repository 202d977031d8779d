"""/metrics, scraped over HTTP from the running server: rpc counts by method and
code, source reads by kind, and the per-object gauges."""

from __future__ import annotations

import grpc
import pytest

import scaler

pytestmark = pytest.mark.integration

# The Prometheus server (prometheus_fixture) for the capacity term's arrivalQuery.
pytest_plugins = ["prometheus_fixture"]


def _labels(**labels: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels.items()))


async def test_rpc_source_and_object_series(scaler_server, sqs_queue, rabbit, free_port):
    sqs_queue.send(6)
    rabbit.publish(3)
    sqs_meta = sqs_queue.metadata(queueLength="4")
    rabbit_meta = rabbit.metadata("amqp", queueLength="2", metricName="rabbit-backlog")
    unreachable = rabbit.metadata("amqp")
    unreachable["host"] = f"amqp://guest:guest@127.0.0.1:{free_port()}/"

    await scaler_server.metric(sqs_meta, name="sqs-worker")  # GetMetricSpec + GetMetrics
    await scaler_server.metric(rabbit_meta, name="rabbit-worker")
    assert await scaler_server.active(sqs_meta, name="sqs-worker") is True
    with pytest.raises(grpc.aio.AioRpcError):  # INVALID_ARGUMENT
        await scaler_server.active({"source": "nope"})
    with pytest.raises(grpc.aio.AioRpcError):  # UNAVAILABLE
        await scaler_server.active(unreachable, name="broken")

    # Which version this replica runs: the package's.
    assert await scaler_server.samples("prewarm_build_info") == {_labels(version=scaler.__version__): 1}
    rpcs = await scaler_server.samples("prewarm_rpc_total")
    assert rpcs[_labels(method="GetMetricSpec", code="OK")] == 2
    assert rpcs[_labels(method="GetMetrics", code="OK")] == 2
    assert rpcs[_labels(method="IsActive", code="OK")] == 1
    assert rpcs[_labels(method="IsActive", code="INVALID_ARGUMENT")] == 1
    assert rpcs[_labels(method="IsActive", code="UNAVAILABLE")] == 1
    latencies = await scaler_server.samples("prewarm_rpc_duration_seconds_count")
    assert latencies[_labels(method="IsActive")] == 3

    reads = await scaler_server.samples("prewarm_source_reads_total")
    assert reads[_labels(source="sqs")] >= 1
    assert reads[_labels(source="rabbitmq")] >= 2  # the good queue and the unreachable one
    errors = await scaler_server.samples("prewarm_source_errors_total")
    assert errors[_labels(source="rabbitmq")] >= 1
    assert errors.get(_labels(source="sqs"), 0) == 0

    sqs_object = _labels(namespace="default", name="sqs-worker", metric=f"sqs-{sqs_queue.name}")
    rabbit_object = _labels(namespace="default", name="rabbit-worker", metric="rabbit-backlog")
    counted = await scaler_server.samples("prewarm_counted_work")
    desired = await scaler_server.samples("prewarm_desired")
    active = await scaler_server.samples("prewarm_active")
    assert (counted[sqs_object], desired[sqs_object], active[sqs_object]) == (6, 1.5, 1)
    assert (counted[rabbit_object], desired[rabbit_object], active[rabbit_object]) == (3, 1.5, 1)
    # The object whose source failed has no made-up values.
    assert not any(("name", "broken") in labels for labels in desired)


async def test_the_capacity_terms_rates_are_series_of_their_object(scaler_server, sqs_queue, prometheus):
    # What the server remembers between reads (the rate average, the held burst rate)
    # is on /metrics, where a one-shot explain cannot show it. arrivalQuery reads a
    # constant 2.5 requests/s from the real Prometheus server.
    capacity = sqs_queue.metadata(
        queueLength="4",
        replicaThroughput="1",
        coldStartSeconds="120",
        prometheusServerAddress=prometheus.url,
        arrivalQuery="vector(2.5)",
        forecast="off",
    )
    without_hold = dict(capacity, holdSeconds="0", metricName="no-hold")
    plain = sqs_queue.metadata(queueLength="4", metricName="plain")
    value = await scaler_server.metric(capacity, name="capacity")
    assert value.metricValueFloat == pytest.approx(2.5)  # 2.5/s at 1/s a replica, nothing waiting
    await scaler_server.metric(without_hold, name="capacity")
    await scaler_server.metric(plain, name="plain")

    arrival = await scaler_server.samples("prewarm_arrival_rate")
    held = await scaler_server.samples("prewarm_held_rate")
    with_hold = _labels(namespace="default", name="capacity", metric=f"sqs-{sqs_queue.name}")
    hold_off = _labels(namespace="default", name="capacity", metric="no-hold")
    assert arrival[with_hold] == pytest.approx(2.5)
    assert held[with_hold] == 0.0  # a steady rate is no burst
    assert arrival[hold_off] == pytest.approx(2.5)
    assert hold_off not in held
    assert not any(("name", "plain") in labels for labels in arrival)
