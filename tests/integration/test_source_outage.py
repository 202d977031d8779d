"""A stopped broker: the polling rpcs answer UNAVAILABLE, naming the source, within
the read timeout; the stream stays open and never pushes a false "inactive"."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest

pytestmark = pytest.mark.integration

SOURCE_TIMEOUT = 1.0  # set by each test
SLACK = 2.0


async def _assert_unavailable(call, source_name: str) -> None:
    started = time.monotonic()
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await call()
    elapsed = time.monotonic() - started
    assert failure.value.code() == grpc.StatusCode.UNAVAILABLE, failure.value.details()
    assert source_name in failure.value.details()
    assert elapsed < SOURCE_TIMEOUT + SLACK, f"answered after {elapsed:.2f}s"


async def _assert_stream_silent(stream, seconds: float) -> None:
    """Nothing arrives (no made-up `false`) and the stream stays open."""
    # Not wait_for(stream.read()): a cancelled read cancels the whole call.
    next_message = asyncio.ensure_future(stream.read())
    done, _ = await asyncio.wait({next_message}, timeout=seconds)
    assert not done, f"the stream sent {next_message.result()!r} while the source was down"
    assert not stream.done()
    stream.cancel()


async def test_stopped_sqs_server_is_unavailable(start_scaler, moto_sqs_dedicated):
    scaler = await start_scaler(source_timeout=SOURCE_TIMEOUT)
    queue_url = moto_sqs_dedicated.client.create_queue(QueueName="outage-queue")["QueueUrl"]
    moto_sqs_dedicated.client.send_message(QueueUrl=queue_url, MessageBody="job")
    meta = {
        "source": "sqs",
        "queueURL": queue_url,
        "awsRegion": "us-east-1",
        "awsEndpoint": moto_sqs_dedicated.endpoint,
        "awsAccessKeyID": "AKIDTEST",
        "awsSecretAccessKey": "test-secret",
    }
    assert await scaler.active(meta) is True  # reads fine while the server is up
    stream = scaler.stub.StreamIsActive(scaler.ref(meta))
    assert (await asyncio.wait_for(stream.read(), 2)).result is True

    await asyncio.to_thread(moto_sqs_dedicated.stop)
    await asyncio.sleep(0.3)  # past the cache TTL: the next answer needs a fresh read

    await _assert_unavailable(lambda: scaler.metric(meta), "outage-queue")
    await _assert_unavailable(lambda: scaler.active(meta), "outage-queue")
    await _assert_stream_silent(stream, 1.0)


async def test_stopped_rabbitmq_is_unavailable(start_scaler, rabbit, rabbit_broker, wait_until):
    scaler = await start_scaler(source_timeout=SOURCE_TIMEOUT)
    rabbit.publish(1)
    await rabbit.wait_management(ready=1, unacknowledged=0)
    amqp, http = rabbit.metadata("amqp"), rabbit.metadata("http")
    assert await scaler.active(amqp) is True
    assert await scaler.active(http) is True
    stream = scaler.stub.StreamIsActive(scaler.ref(amqp))
    assert (await asyncio.wait_for(stream.read(), 2)).result is True

    await asyncio.to_thread(rabbit_broker.ctl, "stop_app")
    try:
        await asyncio.sleep(0.3)  # past the cache TTL
        for meta in (amqp, http):
            await _assert_unavailable(lambda meta=meta: scaler.metric(meta), rabbit.name)
            await _assert_unavailable(lambda meta=meta: scaler.active(meta), rabbit.name)
        await _assert_stream_silent(stream, 1.0)
    finally:
        await asyncio.to_thread(rabbit_broker.ctl, "start_app")
        await asyncio.to_thread(rabbit_broker.ctl, "await_startup", "--timeout", "60", timeout=90)
        await wait_until(
            rabbit_broker.answers, timeout=60, interval=0.5, what="RabbitMQ to answer on 5672 and 15672 again"
        )

    # Back up: the scaler reconnects by itself (its kept AMQP connection died with the broker).
    rabbit.declare()  # the non-durable queue did not survive the restart
    rabbit.publish(2)
    assert await scaler.active(amqp) is True
