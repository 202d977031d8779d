"""HTTP sources share a few connections per server, not one per queue or query
(base.SharedHTTPPools): with a keep-alive connection per queue a scaler reading a
thousand queues through RabbitMQ's management API held a thousand connections to the
broker, which stopped answering (bench/bench_memory.py --via http), and Prometheus
accepts 512 connections by default. Against the real RabbitMQ and Prometheus."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from conftest import RABBIT_HTTP_URL, RabbitQueue

from scaler.config import parse_trigger
from scaler.engine import SourceFactory
from scaler.signals.base import GpuReading, SharedHTTPPools, SourceError
from scaler.signals.prometheus import PrometheusSource
from scaler.signals.rabbitmq import RabbitHttpSource

pytestmark = pytest.mark.integration

# The Prometheus server (prometheus_fixture).
pytest_plugins = ["prometheus_fixture"]

QUEUES = 24


@pytest.fixture
def queues(rabbit: RabbitQueue) -> Iterator[list[str]]:
    channel = rabbit.channel()
    names = [f"{rabbit.name}-{i}-{uuid.uuid4().hex[:4]}" for i in range(QUEUES)]
    for name in names:
        channel.queue_declare(queue=name)
    yield names
    channel = rabbit.channel()
    for name in names:
        channel.queue_delete(queue=name)


def assert_shared(pools: object, sources: list[Any]) -> None:
    """After each source read once: one pool (the server's host), whose one connection
    served reads made one after another, whatever the number of sources; and a source
    closed (the cache evicts idle ones) leaves the pool and its connection to the rest,
    and reads again through them when its key comes back (the factory hands out the
    same source). Closes the sources."""
    (pool,) = _pools(pools)
    opened = pool.num_connections  # type: ignore[attr-defined]
    assert 1 <= opened <= 2, opened
    sources[0].close()
    for source in sources[1:]:
        source.read()
    assert _pools(pools) == [pool]
    assert pool.num_connections == opened  # type: ignore[attr-defined]
    sources[0].read()
    assert _pools(pools) == [pool]
    assert pool.num_connections == opened  # type: ignore[attr-defined]
    sources[0].close()
    for source in sources[1:]:
        source.close()


def _pools(pools: object) -> list[object]:
    """The connection pools the shared adapter holds, one per host (urllib3's)."""
    container = pools.poolmanager.pools  # type: ignore[attr-defined]
    keys = list(container.keys())  # urllib3's container has keys() but no iteration
    return [container[key] for key in keys]


def _source(rabbit: RabbitQueue, name: str, pools: object) -> RabbitHttpSource:
    cfg = parse_trigger(rabbit.metadata("http", queueName=name)).rabbitmq
    assert cfg is not None
    return RabbitHttpSource(cfg, timeout=5.0, pools=pools)  # type: ignore[arg-type]


async def test_reads_of_many_queues_share_a_few_connections(rabbit, queues, wait_until):
    pools = SharedHTTPPools()
    sources = [_source(rabbit, name, pools) for name in queues]

    def all_read() -> bool:
        try:
            readings = [source.read() for source in sources]
        except SourceError:  # a new queue's counts appear at the broker's next stats emission
            return False
        return all(r.waiting == 0 and r.in_flight == 0 for r in readings)

    await wait_until(all_read, timeout=30, interval=0.5, what="counts for every new queue")
    assert_shared(pools, sources)


def test_the_servers_sources_share_the_factorys_pools(rabbit, queues):
    factory = SourceFactory()
    first, second = (
        factory.queue_source(parse_trigger(rabbit.metadata("http", queueName=name))) for name in queues[:2]
    )
    assert isinstance(first, RabbitHttpSource) and isinstance(second, RabbitHttpSource)
    url = f"{RABBIT_HTTP_URL}/api/queues"
    assert first._session.get_adapter(url) is second._session.get_adapter(url) is factory.http_pools


async def test_the_servers_stop_closes_the_shared_connections(start_scaler, rabbit, queues):
    """Each source leaves the shared pools open when it closes (for the others); the
    server's stop closes them once every source is closed, so it leaves no idle
    keep-alive connection to the broker behind."""
    handle = await start_scaler()
    for name in queues[:3]:
        # A new queue's counts come at the broker's next stats emission: an error till then.
        with contextlib.suppress(grpc.aio.AioRpcError):
            await handle.metric(rabbit.metadata("http", queueName=name))
    pools = handle.server.engine.sources.http_pools
    (pool,) = _pools(pools)
    held = [conn for conn in pool.pool.queue if conn is not None and conn.sock is not None]
    assert held  # the reads' keep-alive connection, idle in the pool
    await handle.server.stop()
    assert _pools(pools) == []
    assert all(conn.sock is None for conn in held)


def test_prometheus_queries_share_a_few_connections(prometheus):
    pools = SharedHTTPPools()
    queries = [f"vector({i})" for i in range(QUEUES)]
    sources = [
        PrometheusSource(parse_trigger(_gpu_query(prometheus, q)).gpu, timeout=5.0, pools=pools)  # type: ignore[arg-type]
        for q in queries
    ]
    readings = [source.read() for source in sources]
    assert all(isinstance(r, GpuReading) for r in readings)
    assert [r.busy_gpus for r in readings] == [float(i) for i in range(QUEUES)]  # type: ignore[union-attr]
    assert_shared(pools, sources)
    factory = SourceFactory()
    first, second = (factory.gpu_source(parse_trigger(_gpu_query(prometheus, q))) for q in queries[:2])
    assert isinstance(first, PrometheusSource) and isinstance(second, PrometheusSource)
    first.read()
    second.read()
    assert len(_pools(factory.http_pools)) == 1
    first.close()
    second.close()


def _gpu_query(prometheus, query: str) -> dict[str, str]:
    return {"prometheusServerAddress": prometheus.url, "gpuQuery": query}
