"""Busy GPUs from a real Prometheus scraping a fake dcgm-exporter, through the
project's real gRPC server: the figures, the roles, the errors."""

from __future__ import annotations

import asyncio
import logging
import time

import grpc
import pytest

# The Prometheus and fake dcgm-exporter fixtures (gpu_exporter, prometheus, gpus, own_prometheus).
pytest_plugins = ["prometheus_fixture"]
pytestmark = pytest.mark.integration

SD_WORKERS = 'namespace="ai",pod=~"sd-worker-.*"'
LLM_SERVER = 'namespace="ai",pod="llm-server-0"'


def gpu_metadata(prom, **extra: str) -> dict[str, str]:
    meta = {"prometheusServerAddress": prom.url, "gpuSelector": SD_WORKERS}
    meta.update(extra)
    return meta


async def test_reads_busy_gpus_after_a_scrape(start_scaler, prometheus, gpus):
    scaler = await start_scaler()
    meta = gpu_metadata(prometheus, gpuTargetUtilization="60")  # GPU-only: demand by default
    spec = await scaler.stub.GetMetricSpec(scaler.ref(meta))
    assert spec.metricSpecs[0].metricName == "gpu-namespace-ai-pod-sd-worker"

    # 80 % + 40 % on the two workers: 1.2 busy GPUs; at a 60 % target that is 2 replicas.
    # The LLM server's and the other team's GPUs are busy too, and must not count.
    gpus({"sd-worker-0": 80, "sd-worker-1": 40, "llm-server-0": 100, "batch-0": 100})
    value = await scaler.metric(meta)
    assert value.metricValueFloat == pytest.approx(1.2 / 0.6)
    assert value.metricValue == 2
    assert await scaler.active(meta) is True

    # The reason is visible on /metrics: the GPU term and its win.
    labels = (
        ("metric", "gpu-namespace-ai-pod-sd-worker"),
        ("name", "worker"),
        ("namespace", "default"),
        ("term", "gpu"),
    )
    assert (await scaler.samples("prewarm_term_replicas"))[labels] == pytest.approx(2.0)
    assert (await scaler.samples("prewarm_term_winner"))[labels] == 1.0
    assert (await scaler.samples("prewarm_busy_gpus"))[labels[:3]] == pytest.approx(1.2)

    # Idle GPUs: 0 busy, inactive (a real zero, from a successful query).
    gpus({"llm-server-0": 100})
    await _eventually_metric(scaler, meta, 0.0)
    assert await scaler.active(meta) is False


async def test_guard_holds_the_busy_replicas_with_a_gpu_query(start_scaler, prometheus, gpus):
    scaler = await start_scaler()
    # The LLM server has 2 GPUs per replica; a user-written query, guard role.
    meta = {
        "prometheusServerAddress": prometheus.url,
        "gpuQuery": f"sum(DCGM_FI_DEV_GPU_UTIL{{{LLM_SERVER}}}) / 100",
        "gpusPerReplica": "2",
        "gpuRole": "guard",
        "metricName": "llm",
    }
    gpus({"llm-server-0": 90})  # 2 GPUs at 90 %: 1.8 busy GPUs = 0.9 of a replica
    value = await scaler.metric(meta)
    assert value.metricValueFloat == pytest.approx(0.9)
    assert value.metricValue == 1  # the HPA keeps the one busy replica
    assert await scaler.active(meta) is True

    # 2 % on each of the 2 GPUs: 0.04 busy GPUs, under the activation level
    # (5 % of one replica's 2 GPUs = 0.1): no floor, inactive.
    gpus({"llm-server-0": 2})
    await _eventually_metric(scaler, meta, 0.0)
    assert await scaler.active(meta) is False


async def test_selector_matching_nothing_is_zero_busy_gpus(start_scaler, prometheus):
    scaler = await start_scaler()
    meta = gpu_metadata(prometheus, gpuSelector='namespace="no-such-namespace"')
    value = await scaler.metric(meta)
    assert value.metricValueFloat == 0.0
    assert await scaler.active(meta) is False


async def test_unaggregated_query_is_unavailable_asking_for_aggregation(start_scaler, prometheus):
    scaler = await start_scaler()
    meta = {"prometheusServerAddress": prometheus.url, "gpuQuery": 'DCGM_FI_DEV_GPU_UTIL{namespace="ai"}'}
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await scaler.metric(meta)
    assert info.value.code() is grpc.StatusCode.UNAVAILABLE
    details = info.value.details()
    assert "4 series" in details and "aggregate" in details
    assert prometheus.url in details


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("vector(0) / 0", "NaN"),
        ("vector(1) / 0", "infinite"),
        ("DCGM_FI_DEV_GPU_UTIL[1m]", "range vector"),
        ("vector(-1)", "negative"),
    ],
)
async def test_answers_that_are_not_a_busy_gpu_count_are_unavailable(start_scaler, prometheus, query, says):
    scaler = await start_scaler()
    meta = {"prometheusServerAddress": prometheus.url, "gpuQuery": query}
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await scaler.active(meta)
    assert info.value.code() is grpc.StatusCode.UNAVAILABLE
    assert says in info.value.details()


async def test_invalid_query_is_invalid_argument_with_prometheus_message(start_scaler, prometheus, caplog):
    caplog.set_level(logging.DEBUG)
    scaler = await start_scaler()
    bad = "sum(DCGM_FI_DEV_GPU_UTIL{"
    token = "tok-3f9a1c-very-secret"
    password = "pw-77d2-very-secret"
    expected = prometheus.query(bad)
    assert expected["errorType"] == "bad_data"
    meta = {
        "prometheusServerAddress": prometheus.url.replace("http://", f"http://alice:{password}@"),
        "gpuQuery": bad,
    }
    for auth_meta in (
        meta,
        {**meta, "prometheusServerAddress": prometheus.url, "prometheusBearerToken": token},
    ):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await scaler.metric(auth_meta)
        assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        details = info.value.details()
        assert expected["error"] in details  # Prometheus's own words
        assert token not in details and password not in details
    assert token not in caplog.text and password not in caplog.text
    page = await scaler.scrape()
    assert token not in page and password not in page


async def test_invalid_query_ends_a_stream_with_invalid_argument(start_scaler, prometheus):
    """external-push: the stream ends with the status IsActive answers, instead of
    staying open and silent forever."""
    scaler = await start_scaler()
    bad = "sum(DCGM_FI_DEV_GPU_UTIL{"
    expected = prometheus.query(bad)["error"]
    meta = {"prometheusServerAddress": prometheus.url, "gpuQuery": bad}
    stream = scaler.stub.StreamIsActive(scaler.ref(meta))
    try:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await asyncio.wait_for(stream.read(), 5)
    finally:
        stream.cancel()
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert expected in (info.value.details() or "")
    samples = await scaler.samples("prewarm_rpc_total")
    assert samples[(("code", "INVALID_ARGUMENT"), ("method", "StreamIsActive"))] == 1


async def test_unknown_prometheus_address_is_refused_as_metadata(start_scaler):
    scaler = await start_scaler()
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await scaler.stub.GetMetricSpec(
            scaler.ref({"prometheusServerAddress": "prometheus:9090", "gpuSelector": SD_WORKERS})
        )
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "prometheusServerAddress" in info.value.details()


async def test_queue_and_gpu_guard_against_real_rabbitmq(start_scaler, prometheus, gpus, rabbit):
    scaler = await start_scaler()
    meta = rabbit.metadata(
        "amqp", queueLength="5", prometheusServerAddress=prometheus.url, gpuSelector=SD_WORKERS
    )
    # Nothing waiting, but both workers' GPUs are busy: the guard holds 2 replicas
    # (the queue alone would let the pool go to zero).
    gpus({"sd-worker-0": 100, "sd-worker-1": 40})
    value = await scaler.metric(meta)
    # The guard counts working GPUs (above the 5 % activation level): 2, where the
    # summed duty cycle (1.4) would hold too few.
    assert value.metricValueFloat == pytest.approx(2.0)
    assert value.metricValue == 2
    assert await scaler.active(meta) is True

    # A backlog: the queue's need wins over the guard.
    rabbit.publish(20)
    await _eventually_metric(scaler, meta, 4.0)  # past the cache TTL
    winners = await scaler.samples("prewarm_term_winner")
    won = {
        dict(labels)["term"] for labels, v in winners.items() if v == 1.0 and dict(labels)["name"] == "worker"
    }
    assert won == {"queue"}


async def test_stopped_prometheus_is_unavailable_within_the_timeout(
    start_scaler, own_prometheus, gpu_exporter
):
    timeout = 1.0
    scaler = await start_scaler(source_timeout=timeout, cache_ttl=0.1)
    meta = gpu_metadata(own_prometheus)
    assert (await scaler.metric(meta)).metricValueFloat >= 0.0  # it answers while Prometheus runs

    # Hung (accepts connections, never answers): UNAVAILABLE after the timeout, not later.
    own_prometheus.pause()
    time.sleep(0.2)  # past the cache TTL
    started = time.monotonic()
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await scaler.metric(meta)
    elapsed = time.monotonic() - started
    assert info.value.code() is grpc.StatusCode.UNAVAILABLE
    assert own_prometheus.url in info.value.details()
    assert elapsed < timeout + 1.5

    # Stopped (connection refused): UNAVAILABLE at once, naming the server.
    own_prometheus.stop()
    time.sleep(0.2)
    started = time.monotonic()
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await scaler.active(meta)
    assert info.value.code() is grpc.StatusCode.UNAVAILABLE
    assert "cannot connect" in info.value.details()
    assert own_prometheus.url in info.value.details()
    assert time.monotonic() - started < timeout + 1.5


async def _eventually_metric(scaler, meta, expected: float, timeout: float = 5.0) -> None:
    """The scaler's cache may hold the previous reading for one TTL."""
    deadline = time.monotonic() + timeout
    while True:
        value = (await scaler.metric(meta)).metricValueFloat
        if value == pytest.approx(expected):
            return
        assert time.monotonic() < deadline, f"metric stayed {value}, expected {expected}"
        await asyncio.sleep(0.1)


async def test_promql_execution_error_is_unavailable_with_prometheus_message(start_scaler, prometheus):
    # Valid PromQL that fails when evaluated (HTTP 422): matching on Hostname alone pairs
    # several GPUs of one node with several, which PromQL refuses (many-to-many).
    query = "sum(DCGM_FI_DEV_GPU_UTIL * on(Hostname) DCGM_FI_DEV_GPU_UTIL)"
    direct = prometheus.get("/api/v1/query", query=query)
    assert direct.status_code == 422 and direct.json()["errorType"] == "execution"
    scaler = await start_scaler()
    meta = {"prometheusServerAddress": prometheus.url, "gpuQuery": query}
    for call in (scaler.metric, scaler.active):  # an error, never a zero or inactive
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call(meta)
        assert info.value.code() is grpc.StatusCode.UNAVAILABLE
        details = info.value.details()
        assert prometheus.url in details and "HTTP 422" in details
        # Prometheus's own words; which node's duplicates it names first may vary per query.
        assert "many-to-many matching not allowed" in details
        assert "found duplicate series for the match group" in details


async def test_ignore_null_values_false_makes_no_series_unavailable(start_scaler, prometheus, gpus):
    """KEDA's ignoreNullValues: a selector that matches no series (a dead
    dcgm-exporter) is 0 by default and UNAVAILABLE with "false"; idle GPUs that do
    have series are 0 either way (the guard's query counts them as 0, not absent)."""
    scaler = await start_scaler()
    gpus({})  # every GPU idle, every series present
    nothing = 'namespace="ai",pod="no-such-pod"'
    lenient = gpu_metadata(prometheus, gpuSelector=nothing)
    strict = gpu_metadata(prometheus, gpuSelector=nothing, ignoreNullValues="false")
    assert (await scaler.metric(lenient)).metricValueFloat == 0
    assert await scaler.active(lenient) is False
    for call in (lambda: scaler.metric(strict), lambda: scaler.active(strict)):
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await call()
        assert failure.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "matched no series" in (failure.value.details() or "")
        assert "ignoreNullValues" in (failure.value.details() or "")
    # The same workload's idle GPUs are a real 0, for demand and for the guard.
    for role in ("demand", "guard"):
        idle = gpu_metadata(prometheus, gpuRole=role, ignoreNullValues="false")
        assert (await scaler.metric(idle, name=f"idle-{role}")).metricValueFloat == 0
    gpus({"sd-worker-0": 90})
    busy = gpu_metadata(prometheus, gpuRole="guard", ignoreNullValues="false")
    assert (await scaler.metric(busy, name="busy-guard")).metricValueFloat == 1
