"""StreamIsActive (KEDA's external-push): the current state at once, `true` within
2 s of the first message in an empty queue, `false` once the queue drains."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest

from scaler._proto import externalscaler_pb2_grpc as pb_grpc

pytestmark = pytest.mark.integration

PUSH_WITHIN_S = 2.0


async def _next_state(stream, timeout: float) -> bool:
    return bool((await asyncio.wait_for(stream.read(), timeout)).result)


async def _push_cycle(scaler, metadata, publish_one, drain) -> None:
    stream = scaler.stub.StreamIsActive(scaler.ref(metadata))
    try:
        assert await _next_state(stream, PUSH_WITHIN_S) is False  # the current state, at once

        await asyncio.to_thread(publish_one)
        published = time.monotonic()
        assert await _next_state(stream, PUSH_WITHIN_S) is True
        assert time.monotonic() - published < PUSH_WITHIN_S

        await asyncio.to_thread(drain)
        assert await _next_state(stream, PUSH_WITHIN_S) is False
    finally:
        stream.cancel()


async def test_rabbitmq_stream_pushes_changes(scaler_server, rabbit):
    def drain() -> None:
        assert rabbit.take_one()

    await _push_cycle(scaler_server, rabbit.metadata("amqp"), lambda: rabbit.publish(1), drain)


async def test_sqs_stream_pushes_changes(scaler_server, sqs_queue):
    def drain() -> None:
        (message,) = sqs_queue.receive(1)
        sqs_queue.client.delete_message(QueueUrl=sqs_queue.url, ReceiptHandle=message["ReceiptHandle"])

    await _push_cycle(scaler_server, sqs_queue.metadata(), lambda: sqs_queue.send(1), drain)


async def test_an_idle_stream_reads_its_queue_every_interval_not_every_ttl(start_scaler, rabbit):
    """While the answer is `false`, each tick reads a reading newer than the last:
    the wake from zero is not held back by the cache TTL (30 s here). Once active,
    the stream answers from the cache like any other call (no read per tick)."""
    scaler = await start_scaler(cache_ttl=30.0, stream_interval=0.2)
    stream = scaler.stub.StreamIsActive(scaler.ref(rabbit.metadata("amqp")))
    try:
        assert await _next_state(stream, PUSH_WITHIN_S) is False
        await asyncio.sleep(0.5)
        reads_idle = scaler.server.cache.reads
        assert reads_idle >= 2  # read again while idle, well within the TTL
        await asyncio.to_thread(rabbit.publish, 1)
        assert await _next_state(stream, PUSH_WITHIN_S) is True  # not after 30 s
        reads_active = scaler.server.cache.reads
        await asyncio.sleep(1.0)  # five ticks while active
        assert scaler.server.cache.reads == reads_active
    finally:
        stream.cancel()


async def test_stream_sends_only_changes(scaler_server, rabbit):
    """More messages while already active change nothing: no repeated `true`."""
    rabbit.publish(1)
    stream = scaler_server.stub.StreamIsActive(scaler_server.ref(rabbit.metadata("amqp")))
    try:
        assert await _next_state(stream, PUSH_WITHIN_S) is True
        await asyncio.to_thread(rabbit.publish, 3)
        with pytest.raises(TimeoutError):
            # several stream intervals (0.2 s) and cache TTLs pass without a message
            await _next_state(stream, 1.0)
    finally:
        stream.cancel()


async def test_a_stream_whose_client_vanished_ends(start_scaler, rabbit, wait_until):
    """The client's connection freezes (gone without a FIN: a node lost, a
    partition). The server's keepalive ping goes unanswered, the connection is
    closed, the stream's handler ends, and its source is no longer read."""
    from faults import TcpProxy

    scaler = await start_scaler(keepalive_time=1.0, keepalive_timeout=1.0)
    proxy = TcpProxy(scaler.server.port)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{proxy.port}")
    try:
        stream = pb_grpc.ExternalScalerStub(channel).StreamIsActive(scaler.ref(rabbit.metadata("amqp")))
        assert await _next_state(stream, PUSH_WITHIN_S) is False
        proxy.freeze()

        async def stream_ended() -> bool:
            samples = await scaler.samples("prewarm_rpc_total")
            return samples.get((("code", "CANCELLED"), ("method", "StreamIsActive")), 0) == 1

        await wait_until(stream_ended, timeout=10, interval=0.2, what="the stream's handler to end")
        reads = scaler.server.cache.reads
        await asyncio.sleep(1.0)  # five stream intervals, five cache TTLs
        assert scaler.server.cache.reads == reads, "the vanished client's source is still read"
        stream.cancel()
    finally:
        await channel.close(grace=0)
        proxy.close()
