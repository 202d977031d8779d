"""Management-API reads share a few connections to the broker, not one per queue:
with a keep-alive connection per queue a scaler reading a thousand queues held a
thousand connections to the real broker and ran it out of file descriptors
(bench/bench_memory.py --via http). Against the real RabbitMQ."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from conftest import RABBIT_HTTP_URL, RabbitQueue

from scaler.config import parse_trigger
from scaler.engine import SourceFactory
from scaler.signals.base import SourceError
from scaler.signals.rabbitmq import RabbitHttpSource, shared_http_pools

pytestmark = pytest.mark.integration

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
    pools = shared_http_pools()
    sources = [_source(rabbit, name, pools) for name in queues]

    def all_read() -> bool:
        try:
            readings = [source.read() for source in sources]
        except SourceError:  # a new queue's counts appear at the broker's next stats emission
            return False
        return all(r.waiting == 0 and r.in_flight == 0 for r in readings)

    await wait_until(all_read, timeout=30, interval=0.5, what="counts for every new queue")
    # One pool, for the broker's host, and one connection serves reads made one after
    # another, whatever the number of queues.
    (pool,) = _pools(pools)
    opened = pool.num_connections
    assert 1 <= opened <= 2, opened
    # A source closed (the cache evicts idle ones) leaves the shared connections to the rest.
    sources[0].close()
    for source in sources[1:]:
        source.read()
    assert _pools(pools) == [pool]
    assert pool.num_connections == opened
    for source in sources[1:]:
        source.close()


def test_the_servers_sources_share_the_factorys_pools(rabbit, queues):
    factory = SourceFactory()
    first, second = (
        factory.queue_source(parse_trigger(rabbit.metadata("http", queueName=name))) for name in queues[:2]
    )
    assert isinstance(first, RabbitHttpSource) and isinstance(second, RabbitHttpSource)
    url = f"{RABBIT_HTTP_URL}/api/queues"
    assert first._session.get_adapter(url) is second._session.get_adapter(url) is factory.http_pools
