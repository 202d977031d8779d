"""One slow source never delays the others: while a GetMetrics waits on a host that
accepts and never answers, a GetMetrics for a real RabbitMQ queue answers at once
(same source kind, same server, same connection)."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest

pytestmark = pytest.mark.integration

SOURCE_TIMEOUT = 3.0
# A correctness bound (the healthy read must not queue behind the hung one, which
# would take SOURCE_TIMEOUT), not a speed target: a second below the timeout, room
# for a loaded machine's scheduling.
UNBLOCKED_BOUND = SOURCE_TIMEOUT - 1.0
READY = 4
QUEUE_LENGTH = 2.0


async def test_a_hung_source_does_not_delay_a_healthy_one(start_scaler, silent_server, rabbit, wait_until):
    rabbit.publish(READY)
    await rabbit.wait_management(ready=READY, unacknowledged=0)
    scaler = await start_scaler(source_timeout=SOURCE_TIMEOUT)
    slow = silent_server.rabbit_http_metadata()

    started = time.monotonic()
    slow_call = asyncio.ensure_future(scaler.metric(slow, name="slow-worker"))
    await wait_until(lambda: silent_server.connections > 0, timeout=5, what="the slow source's read")

    for protocol in ("http", "amqp"):  # the management API (as the slow one) and AMQP
        meta = rabbit.metadata(protocol, queueLength=f"{QUEUE_LENGTH:g}")
        asked = time.monotonic()
        value = await scaler.metric(meta, name=f"healthy-{protocol}")
        took = time.monotonic() - asked

        assert value.metricValueFloat == pytest.approx(READY / QUEUE_LENGTH), protocol
        assert took < UNBLOCKED_BOUND, f"{protocol}: answered after {took:.2f}s behind a hung source"
        assert not slow_call.done(), "the slow source answered: nothing showed the healthy one unblocked"

    # And the hung one still gets its own answer, at its timeout, naming the source.
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await slow_call
    elapsed = time.monotonic() - started
    assert failure.value.code() == grpc.StatusCode.UNAVAILABLE, failure.value
    assert "'slow-queue'" in (failure.value.details() or "")
    assert SOURCE_TIMEOUT - 0.5 <= elapsed < SOURCE_TIMEOUT + 2.0, f"answered after {elapsed:.2f}s"
