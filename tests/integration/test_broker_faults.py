"""A broker that hangs must cost its own queues an UNAVAILABLE, and nothing else.

Through a loopback TCP proxy the test controls (tests/integration/faults.py),
against the real server and the real RabbitMQ: a broker that accepts TCP and
then stalls, and an open connection that freezes (a peer gone without a FIN).
"""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest

pytest_plugins = ["faults"]
pytestmark = pytest.mark.integration

READY = 3


async def test_a_stalled_broker_does_not_starve_healthy_sources(start_scaler, rabbit, amqp_proxy):
    # Few read threads, a short timeout, many queues on a broker that accepts and
    # stalls, one queue on a healthy broker: the healthy one answers every poll.
    rabbit.publish(READY)
    amqp_proxy.stall()
    scaler = await start_scaler(read_threads=4, source_timeout=1.0, cache_ttl=0.5)
    stalled = [
        {"source": "rabbitmq", "host": amqp_proxy.url("amqp"), "queueName": f"stalled-{i}"} for i in range(12)
    ]
    healthy = rabbit.metadata("amqp", queueLength="1")

    polls = 10
    for _ in range(polls):
        answers = await asyncio.gather(
            *(scaler.metric(meta, name=f"stalled-{i}") for i, meta in enumerate(stalled)),
            scaler.metric(healthy, name="healthy"),
            return_exceptions=True,
        )
        *stalled_answers, healthy_answer = answers
        assert not isinstance(healthy_answer, BaseException), healthy_answer
        assert healthy_answer.metricValueFloat == READY
        for i, answer in enumerate(stalled_answers):
            assert isinstance(answer, grpc.aio.AioRpcError), answer
            assert answer.code() is grpc.StatusCode.UNAVAILABLE
            assert f"'stalled-{i}'" in (answer.details() or "")
        await asyncio.sleep(0.1)
    # One connection attempt per broker at a time, and a failure remembered for the
    # cache TTL: not one attempt per queue per poll (that would be 120).
    assert amqp_proxy.accepted <= polls + 2, amqp_proxy.accepted


async def test_a_stalled_broker_says_what_to_check(start_scaler, amqp_proxy):
    amqp_proxy.stall()
    scaler = await start_scaler(source_timeout=1.0)
    meta = {"source": "rabbitmq", "host": amqp_proxy.url("amqp"), "queueName": "jobs"}
    expected = f"cannot connect to 127.0.0.1:{amqp_proxy.port}: no answer within 1s while connecting"
    # pika's own deadline starts in the read's thread and is up to 0.5 s ahead of the
    # scaler's backstop; on a loaded machine a late thread lets the backstop answer
    # first, with its plainer "no answer within 1s". The next reads say it all.
    deadline = time.monotonic() + 10
    while True:
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await scaler.metric(meta)
        details = failure.value.details() or ""
        assert failure.value.code() is grpc.StatusCode.UNAVAILABLE
        if expected in details or time.monotonic() > deadline:
            break
        assert "no answer within 1s" in details or "has still not returned" in details, details
        await asyncio.sleep(0.3)  # past the cache TTL
    # pika's AMQPConnectorStackTimeout, in words, with the host.
    assert expected in details, details
    assert "check that RabbitMQ is up and reachable" in details, details
    assert "guest" not in details.replace("'guest'", "")  # no credential (the user name is one too)


async def test_a_frozen_connection_ends_at_the_source_timeout(start_scaler, rabbit, amqp_proxy, wait_until):
    rabbit.publish(READY)
    scaler = await start_scaler(source_timeout=1.0, cache_ttl=0.2)
    meta = {"source": "rabbitmq", "host": amqp_proxy.url("amqp"), "queueName": rabbit.name}
    meta["queueLength"] = "1"
    assert (await scaler.metric(meta)).metricValueFloat == READY  # the shared connection is open

    amqp_proxy.freeze()
    await asyncio.sleep(0.3)  # past the cache TTL: the next call reads again
    asked = time.monotonic()
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await scaler.metric(meta)
    assert failure.value.code() is grpc.StatusCode.UNAVAILABLE
    assert time.monotonic() - asked < 1.0 + 1.0
    # The source's own deadline on the open connection ended the read (not only the
    # cache's backstop, which would leave pika waiting in its thread). On a loaded
    # machine a late read thread lets the backstop answer first; then the reads
    # answering again after the thaw, below, show that the read still ended.
    details = failure.value.details() or ""
    own = f"no answer from 127.0.0.1:{amqp_proxy.port} within 1s on an open connection"
    assert own in details or details.endswith("no answer within 1s"), details
    # The healthy broker, directly, is unaffected meanwhile.
    direct = await scaler.metric(rabbit.metadata("amqp", queueLength="1"), name="direct")
    assert direct.metricValueFloat == READY

    # The read itself ended (pika has no deadline there; without one it waits minutes
    # for the broker's heartbeat, holding the connection): once the network is back,
    # the next reads reconnect and answer.
    amqp_proxy.thaw()

    async def answers() -> bool:
        try:
            return (await scaler.metric(meta)).metricValueFloat == READY
        except grpc.aio.AioRpcError:
            return False

    await wait_until(answers, timeout=5, interval=0.2, what="the queue to answer again after the freeze")
