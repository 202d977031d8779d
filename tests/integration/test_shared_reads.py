"""Many objects on the same queue share one source read per cache TTL (and
concurrent callers share one read in flight), whatever their number."""

from __future__ import annotations

import asyncio
import time

import pytest

pytestmark = pytest.mark.integration

OBJECTS = 50


async def _round(scaler, metas) -> None:
    """One KEDA poll for every object at once: GetMetrics + IsActive each."""
    calls = []
    for i, meta in enumerate(metas):
        calls.append(scaler.metric(meta, name=f"worker-{i}"))
        calls.append(scaler.active(meta, name=f"worker-{i}"))
    await asyncio.gather(*calls)


async def test_concurrent_calls_share_one_read(start_scaler, rabbit):
    # A long TTL, so the whole round fits in it: exactly one read.
    scaler = await start_scaler(cache_ttl=30)
    rabbit.publish(4)
    # Different triggers (targets, activation) on one queue and one credential: one source.
    metas = [
        rabbit.metadata("amqp", queueLength=str(1 + i % 5), activationQueueLength="0") for i in range(OBJECTS)
    ]

    await _round(scaler, metas)

    assert scaler.server.cache.reads == 1
    reads = await scaler.samples("prewarm_source_reads_total")
    assert reads[(("source", "rabbitmq"),)] == 1


async def test_one_read_per_ttl_under_steady_polling(start_scaler, rabbit, sqs_queue):
    ttl = 0.25
    scaler = await start_scaler(cache_ttl=ttl)
    rabbit.publish(2)
    sqs_queue.send(2)
    rabbit_metas = [rabbit.metadata("amqp") for _ in range(OBJECTS)]
    sqs_metas = [sqs_queue.metadata() for _ in range(OBJECTS)]

    started = time.monotonic()
    rounds = 0
    while time.monotonic() - started < 1.5:
        await asyncio.gather(_round(scaler, rabbit_metas), _round(scaler, sqs_metas))
        rounds += 1
    elapsed = time.monotonic() - started

    # Each queue is read at most once per TTL (a read starts only a TTL after the
    # last one finished), so two queues: at most 2 * (elapsed / ttl + 1) reads,
    # against 4 * OBJECTS calls per round.
    assert rounds >= 2
    assert scaler.server.cache.reads <= 2 * (elapsed / ttl + 1)
    assert scaler.server.cache.reads >= 2  # both queues were really read
