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


async def test_polled_calls_answer_from_a_reading_no_older_than_the_polled_reading_age(start_scaler, rabbit):
    """GetMetrics and IsActive (KEDA's polls and HPA syncs) read the queue again once
    the shared reading is older than --polled-reading-age, though the TTL still holds
    it, as KEDA's own scalers read at each call; with the age at the TTL they answer
    from the shared reading."""
    fresh = await start_scaler(cache_ttl=30, polled_reading_age=0.2)
    shared = await start_scaler(cache_ttl=30, polled_reading_age=30)
    meta = rabbit.metadata("amqp", queueLength="1", activationQueueLength="0")
    rabbit.publish(2)
    assert (await fresh.metric(meta)).metricValueFloat == pytest.approx(2.0)
    assert (await shared.metric(meta)).metricValueFloat == pytest.approx(2.0)
    rabbit.publish(3)
    await asyncio.sleep(0.3)
    assert (await fresh.metric(meta)).metricValueFloat == pytest.approx(5.0)
    assert await fresh.active(meta)
    assert fresh.server.cache.reads == 2  # the IsActive right after shared the new read
    assert (await shared.metric(meta)).metricValueFloat == pytest.approx(2.0)  # the TTL's reading
    assert shared.server.cache.reads == 1
