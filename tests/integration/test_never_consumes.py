"""The scaler only inspects queues: after 100 GetMetrics + IsActive pairs (each one
a fresh source read), every message is still there, never received or delivered."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration

CALLS = 100
MESSAGES = 5


async def _call_pairs(scaler, metadata) -> None:
    for i in range(CALLS):
        await scaler.metric(metadata, name=f"worker-{i % 7}")
        await scaler.active(metadata, name=f"worker-{i % 7}")


async def test_sqs_messages_untouched(start_scaler, sqs_queue):
    # A TTL of a microsecond: every call reads the queue for real.
    scaler = await start_scaler(cache_ttl=1e-6)
    sqs_queue.send(MESSAGES)
    sqs_queue.send(2, delay_seconds=300)
    before = sqs_queue.counts()

    await _call_pairs(scaler, sqs_queue.metadata(scaleOnDelayed="true"))

    assert scaler.server.cache.reads >= CALLS  # the queue really was read, many times
    assert sqs_queue.counts() == before == {"visible": MESSAGES, "in_flight": 0, "delayed": 2}
    # Had the scaler ever received a message, SQS would count that receive.
    received = sqs_queue.receive(MESSAGES, visibility_timeout=300)
    assert [m["Attributes"]["ApproximateReceiveCount"] for m in received] == ["1"] * MESSAGES


@pytest.mark.parametrize("via", ["amqp", "http"])
async def test_rabbitmq_messages_untouched(start_scaler, rabbit, via):
    scaler = await start_scaler(cache_ttl=1e-6)
    rabbit.publish(MESSAGES)
    if via == "http":
        await rabbit.wait_management(ready=MESSAGES, unacknowledged=0)

    await _call_pairs(scaler, rabbit.metadata(via))

    assert scaler.server.cache.reads >= CALLS
    assert rabbit.counts() == (MESSAGES, 0)  # all still ready; no consumer was ever left
    # A message that had been delivered and given back would come out redelivered.
    channel = rabbit.channel()
    redelivered = []
    for _ in range(MESSAGES):
        method, _props, _body = channel.basic_get(queue=rabbit.name, auto_ack=True)
        assert method is not None
        redelivered.append(method.redelivered)
    assert redelivered == [False] * MESSAGES
